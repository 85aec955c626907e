"""Backend selection: PROCNET_BACKEND, the backend= argument, and the default.

The native backend is imported on first use, not when procnet is imported, so
``import procnet`` stays cheap for tools that only sometimes take a snapshot.
"""
import os
from types import ModuleType
from typing import Dict, Optional, Tuple

from ._errors import BackendUnavailable, ProcNetError

BACKENDS = ("native", "pure")
_loaded: Dict[str, ModuleType] = {}
_native_error: Optional[str] = None


def _load(name: str) -> ModuleType:
    global _native_error
    mod = _loaded.get(name)
    if mod is not None:
        return mod
    if name == "native":
        if _native_error is not None:
            raise BackendUnavailable("the native backend is unavailable: " + _native_error)
        try:
            from . import _native as mod
        except ImportError as e:
            _native_error = str(e) or type(e).__name__
            raise BackendUnavailable("the native backend is unavailable: " + _native_error) from None
    else:
        from ._pure import snapshot as mod      # the twin's entry points (see _pure/__init__)
    _loaded[name] = mod
    return mod


def resolve(name: Optional[str] = None) -> Tuple[str, ModuleType]:
    """(name, module) of the backend to use: argument, else PROCNET_BACKEND, else native if built."""
    if name is None:
        env = os.environ.get("PROCNET_BACKEND", "")
        if env:
            if env not in BACKENDS:
                raise ProcNetError("PROCNET_BACKEND=%r: must be one of %s" % (env, ", ".join(BACKENDS)))
            name = env
    if name is None:
        try:
            return "native", _load("native")
        except BackendUnavailable:
            return "pure", _load("pure")
    if name not in BACKENDS:
        raise ValueError("unknown backend %r; valid backends: %s" % (name, ", ".join(BACKENDS)))
    return name, _load(name)


def native_error() -> Optional[str]:
    """Why the native backend cannot load, or None if it can."""
    try:
        _load("native")
    except BackendUnavailable:
        return _native_error
    return None
