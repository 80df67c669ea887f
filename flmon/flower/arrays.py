"""What a Flower ``Array`` really holds, read from its bytes without copying them.

An ``Array`` carries ``dtype`` and ``shape`` fields *and* ``.npy`` bytes; ``Array.numpy()``
trusts only the bytes (``np.load``), so a client can declare ``float32`` and send text,
complex numbers or a truncated buffer. :func:`layout` reads the ``.npy`` header (a few
hundred bytes) and checks that the buffer holds exactly the data it announces;
:func:`view` then maps the data as a read-only numpy array without the copy
``Array.numpy()`` makes, so a whole round can be inspected one array at a time.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass

import numpy as np
from flwr.app import Array
from numpy.typing import NDArray

NUMPY_STYPE = "numpy.ndarray"
ALLOWED_KINDS = frozenset("biuf")
"""numpy dtype kinds a model array may have: bool, signed/unsigned integer, float."""


class ArrayFormatError(ValueError):
    """An Array whose bytes are not a plain numeric ``.npy`` buffer."""


@dataclass(frozen=True)
class Layout:
    """Dtype, shape and data offset of an Array's ``.npy`` bytes."""

    dtype: np.dtype[np.generic]
    shape: tuple[int, ...]
    fortran_order: bool
    offset: int

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


MAGIC = b"\x93NUMPY"
MAX_HEADER_BYTES = 10_000
"""numpy's own limit on a ``.npy`` header (``np.load``'s default ``max_header_size``)."""


@functools.lru_cache(maxsize=1024)
def _parse_header(header: bytes) -> tuple[np.dtype[np.generic], tuple[int, ...], bool]:
    """Parse a whole ``.npy`` header (magic included); cached, as every client of a round
    sends the same few headers and numpy parses them with ``ast.literal_eval``."""
    stream = io.BytesIO(header)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, SyntaxError...
        raise ArrayFormatError(f"unreadable .npy header: {type(exc).__name__}") from None
    return dtype, tuple(int(n) for n in shape), bool(fortran)


def layout(array: Array) -> Layout:
    """The layout of ``array``'s bytes.

    Raises
    ------
    ArrayFormatError
        Not ``numpy.ndarray`` serialised, an unreadable header, a dtype that is not bool,
        integer or float (text, complex, object, structured), or a buffer whose length is
        not exactly the header plus the announced data.
    """
    if array.stype != NUMPY_STYPE:
        raise ArrayFormatError(f"serialisation type {array.stype!r}, expected {NUMPY_STYPE}")
    data = array.data
    if not isinstance(data, bytes) or len(data) < 10 or data[:6] != MAGIC:
        raise ArrayFormatError("not a .npy buffer")
    if data[6:8] == b"\x01\x00":
        start, size = 10, int.from_bytes(data[8:10], "little")
    elif data[6:8] == b"\x02\x00":
        start, size = 12, int.from_bytes(data[8:12], "little")
    else:
        raise ArrayFormatError(f".npy version {data[6]}.{data[7]} not accepted")
    if size > MAX_HEADER_BYTES or start + size > len(data):
        raise ArrayFormatError("unreadable .npy header: too long")
    dtype, shape, fortran = _parse_header(data[:start + size])
    if dtype.kind not in ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype:
        raise ArrayFormatError(f"dtype {dtype.str} is not a numeric model dtype")
    found = Layout(dtype=dtype, shape=shape, fortran_order=fortran, offset=start + size)
    expected = found.offset + found.size * dtype.itemsize
    if len(data) != expected:
        raise ArrayFormatError(f"{len(data)} bytes, expected {expected} for "
                               f"{dtype.str}{list(found.shape)}")
    return found


def view(array: Array, known: Layout | None = None) -> NDArray[np.generic]:
    """``array``'s elements as a flat, read-only view in C order (no copy when C-ordered)."""
    lay = known if known is not None else layout(array)
    flat = np.frombuffer(array.data, dtype=lay.dtype, count=lay.size, offset=lay.offset)
    if lay.fortran_order and len(lay.shape) > 1:
        return np.ascontiguousarray(flat.reshape(lay.shape, order="F")).ravel()
    return flat
