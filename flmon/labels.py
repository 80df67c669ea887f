"""Bounded ``client`` label values.

A federation of hospitals has tens of clients; a cross-device one may have 100,000.
``ClientLabeler`` gives the first ``max_labels`` distinct clients a label value of
their own and folds every later one into ``client="_other"``, so the series count
stays bounded whatever the number of clients.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from typing import Literal, NamedTuple

from flmon.catalog import OTHER_CLIENTS

ClientIdentity = Literal["node_id", "pseudonym", "none"]

DEFAULT_MAX_CLIENT_LABELS = 50
_MAX_REMEMBERED_FOLDS = 1_000_000


class ClientLabel(NamedTuple):
    """A client's label ``value``; ``own`` is False for folded clients (skip their
    gauges); ``new_fold`` is True the first time a client is folded."""

    value: str
    own: bool
    new_fold: bool = False


class ClientLabeler:
    """Map Flower node ids to bounded label values.

    Parameters
    ----------
    max_labels
        Distinct clients that get their own value; later ones share ``"_other"``.
    identity
        ``node_id``: the node id as a string; ``pseudonym``: a keyed hash of it (stable
        for a key, unlinkable without it); ``none``: no client has a value of its own
        (aggregate-only: counters add up under ``"_other"``, per-client gauges are not
        kept).
    pseudonym_key
        Secret key for ``pseudonym`` (bytes or str, at least 16 bytes).
    """

    def __init__(
        self,
        max_labels: int = DEFAULT_MAX_CLIENT_LABELS,
        identity: ClientIdentity = "node_id",
        pseudonym_key: bytes | str | None = None,
    ) -> None:
        if max_labels < 0:
            raise ValueError("max_client_labels must be >= 0")
        if identity not in ("node_id", "pseudonym", "none"):
            raise ValueError(
                f"client_identity must be node_id, pseudonym or none, not {identity!r}"
            )
        key = pseudonym_key.encode() if isinstance(pseudonym_key, str) else pseudonym_key
        if identity == "pseudonym" and (key is None or len(key) < 16):
            raise ValueError("client_identity='pseudonym' needs a pseudonym_key of >= 16 bytes")
        if key is not None and identity == "pseudonym":
            from flmon.logs import register_secret

            register_secret(key.decode("utf-8", "replace"))  # never written to a log
        self.max_labels = 0 if identity == "none" else max_labels
        self.identity = identity
        self._key = key or b""
        self._assigned: dict[int, str] = {}
        self._folded: set[int] = set()
        self._lock = threading.Lock()

    def _value(self, node_id: int) -> str:
        if self.identity == "pseudonym":
            digest = hmac.new(self._key, str(node_id).encode(), hashlib.sha256).hexdigest()
            return f"p-{digest[:12]}"
        return str(node_id)

    def label(self, node_id: int) -> ClientLabel:
        """Return the label of ``node_id``, assigning or folding it on first sight."""
        with self._lock:
            value = self._assigned.get(node_id)
            if value is not None:
                return ClientLabel(value, True)
            if len(self._assigned) < self.max_labels:
                value = self._value(node_id)
                self._assigned[node_id] = value
                return ClientLabel(value, True)
            new_fold = node_id not in self._folded
            if new_fold and len(self._folded) < _MAX_REMEMBERED_FOLDS:
                self._folded.add(node_id)
            return ClientLabel(OTHER_CLIENTS, False, new_fold)

    @property
    def tracked(self) -> int:
        with self._lock:
            return len(self._assigned)

    @property
    def folded(self) -> int:
        with self._lock:
            return len(self._folded)
