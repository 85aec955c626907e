"""procnet: which process owns this socket? -- fast, for every Linux box.

>>> import procnet
>>> for c in procnet.connections("tcp", state="LISTEN"):          # doctest: +SKIP
...     print(c.laddr, [(o.pid, o.name) for o in c.owners])

Every call can be pointed at another procfs tree (``proc_root=``) and forced
to a backend (``backend="native" | "pure"`` or ``PROCNET_BACKEND``).
"""
from typing import Any

from ._api import connections
from ._records import Address, Connection, NetNS, Owner, Snapshot, VsockAddress, XdpAddress
from ._errors import BackendUnavailable, ProcNetError, ProcRootError
from ._tables import KINDS as _KINDS
from ._version import __version__

KINDS = tuple(sorted(_KINDS))
"""The valid values of connections(kind=...)."""

__all__ = [
    "Address", "BackendUnavailable", "Change", "Connection", "KINDS", "NetNS", "Owner", "Poll", "Poller",
    "ProcNetError", "ProcRootError", "Snapshot", "VsockAddress", "XdpAddress", "__version__",
    "backend", "connections",
]

_LAZY = {"Poller", "Poll", "Change"}


def __getattr__(name: str) -> Any:
    # `backend` is resolved on first use so that importing procnet stays cheap;
    # the poller module (threading, time) is loaded when first named.
    if name == "backend":
        from ._backend import resolve
        return resolve()[0]
    if name in _LAZY:
        from . import poller
        return getattr(poller, name)
    raise AttributeError("module 'procnet' has no attribute %r" % name)
