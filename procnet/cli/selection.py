"""One snapshot for the command line: the options turned into a procnet.connections() call.

The call names exactly the tables shown, and filters go into it wherever the
core can apply them before owners are joined (state, pid, one uid, and a port
in listening mode); the rest is applied here, in Python, on the records.
"""
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple

from .. import _tables as T
from .._api import connections
from .._records import Connection, Snapshot
from .args import TCP, Options

if TYPE_CHECKING:         # a one-shot run (the core's renderers) does not import the Poller
    from ..poller import Change, Poller

def api_arguments(opts: Options, tables: FrozenSet[str]) -> Tuple[Dict[str, Any], bool]:
    """(keyword arguments for connections(), whether the core filters the port)."""
    kw: Dict[str, Any] = {
        "owners": opts.program or opts.json,
        "proc_root": opts.proc_root,
        "backend": opts.backend,
    }
    states = opts.states
    if not states and opts.mode == "listening":
        # a superset: c.listening decides below (unix NONE is not listening)
        states = ("LISTEN",) if tables <= set(TCP) else ("LISTEN", "NONE")
    if states:
        kw["state"] = states
    if opts.pids:
        kw["pid"] = opts.pids
    if len(opts.uids) == 1:
        kw["uid"] = opts.uids[0]
    if opts.netns is not None:
        kw["netns"] = opts.netns
    # --port means local OR remote port; the core filters lport and rport
    # separately (AND), and a second call would walk every process's fds
    # again. So the port is filtered below, in Python -- except when listing
    # listeners, whose remote port is always 0: there "either" is "local".
    port_in_core = opts.mode == "listening" and len(opts.ports) == 1 and opts.ports[0] != 0
    if port_in_core:
        kw["lport"] = opts.ports[0]
    return kw, port_in_core


class Taken(NamedTuple):
    """What one refresh shows."""

    snapshot: Snapshot              # for its completeness: denied_pids, skipped, backend
    connections: List[Connection]   # filtered, in table order
    tables: Dict[str, str]          # status of every table shown ("read", "missing", "error: ...")
    changes: "Sequence[Change]" = ()  # with a poller: what changed since its last poll (filtered)


def make_poller(opts: Options) -> "Poller":
    """The Poller behind -c: the same call, with the owner cache kept between refreshes."""
    from ..poller import Poller
    kw, _ = api_arguments(opts, opts.tables)
    del kw["owners"]
    return Poller(sorted(T.EXACT_KIND[t] for t in opts.tables), **kw)


def take(opts: Options, poller: "Optional[Poller]" = None) -> Taken:
    """The snapshot and the connections the options select."""
    tables = opts.tables
    kw, port_in_core = api_arguments(opts, tables)
    changes: "Sequence[Change]" = ()
    if poller is not None:
        polled = poller.poll()
        snap, changes = polled.snapshot, polled.changes
    else:
        snap = connections(sorted(T.EXACT_KIND[t] for t in tables), **kw)   # exactly the tables shown
    conns = _select(opts, port_in_core, snap)
    if poller is not None:
        # through the filters the core cannot apply, per socket, so that one
        # that starts or stops passing them (a bind turning into a listen) is
        # opened or closed (the state filter is the core's, as for the snapshot)
        changes = polled.select(lambda c: bool(_select(opts, port_in_core, [c])))
    return Taken(snap, conns, dict(snap.tables), changes)


def _select(opts: Options, port_in_core: bool, conns: List[Connection]) -> List[Connection]:
    """The filters the core cannot apply."""
    if opts.mode == "listening":
        conns = [c for c in conns if c.listening]
    elif opts.mode == "connected":
        conns = [c for c in conns if not c.listening]
    if opts.ports and not port_in_core:
        ports = frozenset(opts.ports)
        conns = [c for c in conns if c.raddr is not None and (
            c.laddr.port in ports or c.raddr.port in ports)]  # type: ignore[union-attr]
    if len(opts.uids) > 1:
        uids = frozenset(opts.uids)
        conns = [c for c in conns if c.uid in uids]
    return conns
