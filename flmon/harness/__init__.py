"""Deprecated: the local stack is :mod:`flmon.stack`.

``import flmon.harness`` (or any ``flmon.harness.<module>``) warns ``DeprecationWarning``
and gives the same module objects as ``flmon.stack`` (``flmon.harness.flower is
flmon.stack.flower``), so classes and ``isinstance`` checks stay the same.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

from flmon.stack import *  # noqa: F403  (the same names as before)
from flmon.stack import __all__ as __all__

_OLD = __name__
_NEW = "flmon.stack"

warnings.warn("flmon.harness is deprecated; import flmon.stack instead",
              DeprecationWarning, stacklevel=2)


class _AliasLoader(importlib.abc.Loader):
    """Loads ``flmon.harness.X`` as the already imported ``flmon.stack.X``."""

    def __init__(self, target: str) -> None:
        self._target = target
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self._target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run; the import system set the alias spec, put the module's own back."""
        module.__spec__ = self._spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Maps ``flmon.harness.X`` to ``flmon.stack.X``."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_OLD + "."):
            return None
        new = _NEW + fullname[len(_OLD):]
        if importlib.util.find_spec(new) is None:
            return None
        warnings.warn(f"{fullname} is deprecated; import {new} instead",
                      DeprecationWarning, stacklevel=2)
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())
