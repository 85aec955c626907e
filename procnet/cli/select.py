"""One snapshot for the command line: the options turned into a procnet.connections() call.

Filters go into the call wherever the core can apply them before owners are
joined (state, pid, one uid, and a port in listening mode); the rest is
applied here, in Python, on the decoded records.
"""
from typing import Any, Dict, FrozenSet, List, Tuple

from .. import _tables as T
from .._api import connections
from .._contract import Connection, Snapshot
from .args import INET, TCP, Options

# Tables whose sockets are rare but which only the "all" kind covers together
# with tcp/udp: probed (cheaply, without owners) before paying for "all".
_RARE_KINDS = ("udplite", "raw", "icmp")


def _covering_kind(tables: FrozenSet[str]) -> str:
    """The procnet kind with the fewest tables that holds all of `tables`."""
    want = {T.TABLE_INDEX[t] for t in tables}
    return min((k for k, s in T.KINDS.items() if want <= s), key=lambda k: (len(T.KINDS[k]), k))


def plan_kind(opts: Options) -> Tuple[str, FrozenSet[str]]:
    """(kind to ask for, tables to show).

    procnet.connections() takes one kind, and only "all" holds tcp or udp
    together with udplite, raw or icmp -- and "all" also reads the unix table,
    the biggest on most hosts. So when those rare tables come only along with
    -t/-u and unix is not wanted, they are probed first (no owner walk: a few
    hundred microseconds) and dropped if empty; -tulpn then reads "inet".
    A udplite/raw socket opened between the probe and the snapshot is missed,
    as it would be had it been opened just after the snapshot.
    """
    tables = opts.tables
    kind = _covering_kind(tables)
    if kind == "all" and "unix" not in tables:
        for rare in _RARE_KINDS:
            rare_tables = {T.TABLES[i] for i in T.KINDS[rare]} & tables
            if rare_tables and tables - rare_tables and not connections(
                    rare, owners=False, proc_root=opts.proc_root, backend=opts.backend):
                tables = tables - rare_tables
        kind = _covering_kind(tables) if tables else "tcp"
    return kind, tables


def api_arguments(opts: Options, tables: FrozenSet[str]) -> Tuple[Dict[str, Any], bool]:
    """(keyword arguments for connections(), whether the port filter is done by the core)."""
    kw: Dict[str, Any] = {
        "owners": opts.program or opts.json,
        "proc_root": opts.proc_root,
        "backend": opts.backend,
    }
    if opts.states:
        kw["state"] = opts.states
    elif opts.mode == "listening":
        kw["state"] = ("LISTEN",) if tables <= set(TCP) else ("LISTEN", "NONE")
    if opts.pids:
        kw["pid"] = opts.pids
    if len(opts.uids) == 1:
        kw["uid"] = opts.uids[0]
    # --port means local OR remote port; the core filters lport and rport
    # separately (AND), and a second call would walk every process's fds
    # again. So the port is filtered below, in Python -- except when listing
    # listeners, whose remote port is always 0: there "either" is "local".
    port_in_core = opts.mode == "listening" and len(opts.ports) == 1 and opts.ports[0] != 0
    if port_in_core:
        kw["lport"] = opts.ports[0]
    return kw, port_in_core


def take(opts: Options) -> Tuple[Snapshot, List[Connection]]:
    """The snapshot (for its completeness) and the connections to show, in table order."""
    kind, tables = plan_kind(opts)
    kw, port_in_core = api_arguments(opts, tables)
    snap = connections(kind, **kw)
    conns: List[Connection] = snap
    if {T.TABLES[i] for i in T.KINDS[kind]} != tables:
        conns = [c for c in conns if c.proto in tables]
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
    return snap, conns


def shown_tables(snap: Snapshot, opts: Options) -> Dict[str, str]:
    """snapshot.tables restricted to the tables the options show."""
    return {t: st for t, st in snap.tables.items() if t in opts.tables}


def is_inet(proto: str) -> bool:
    """An inet table (netstat's "Active Internet connections" section)."""
    return proto in INET
