"""The network namespace a socket belongs to, as a label value.

procnet lists the sockets of one namespace: the one its tables are read for
(``<proc_root>/self/ns/net``, the reader's own). When connections carry their
namespace (``Connection.netns``, from the all-namespaces work) that wins. This
module is the one place that knows, so that work can replace it.
"""
import os
from typing import Any, Callable

from .._records import Connection


def netns_of(proc_root: Any) -> Callable[[Connection], str]:
    """A function giving a connection's network namespace inode as text
    (``"4026531840"``): its own ``netns`` if it has one, else the namespace
    of ``<proc_root>/self/ns/net`` (``""`` where that link is missing, as in
    a fixture tree)."""
    try:
        link = os.readlink(os.path.join(os.fspath(proc_root), "self", "ns", "net"))
    except OSError:
        link = ""

    def inode(ns: Any) -> str:                  # "net:[4026531840]", 4026531840 -> "4026531840"
        if isinstance(ns, int):
            return str(ns)
        ns = str(ns)
        return ns[5:-1] if ns.startswith("net:[") and ns.endswith("]") else ns

    default = inode(link)

    def netns(conn: Connection) -> str:
        ns = getattr(conn, "netns", None)
        return default if ns is None else inode(ns)
    return netns
