"""The public calls, shared by both backends."""
import errno
import gc
import os
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional, Union

from . import _backend
from ._records import Connection, Snapshot, build
from ._errors import ProcNetError, ProcRootError
from . import _tables as T
from ._records import NetNS
from ._plan import SOURCE_NAMES, Plan, plan
from ._netns import NetnsArg
from ._request import Query, make_query, pids_hidden

PathLike = Union[str, "os.PathLike[str]"]


def connections(kind: Union[str, Iterable[str]] = "inet", *, owners: bool = True, proc_root: PathLike = "/proc",
                backend: Optional[str] = None, byteorder: Optional[str] = None,
                state: Union[str, Iterable[str], None] = None, lport: Optional[int] = None,
                rport: Optional[int] = None, pid: Union[int, Iterable[int], None] = None,
                uid: Optional[int] = None, threads: Optional[int] = None,
                source: Optional[str] = None, laddr: Optional[str] = None,
                owner_source: Optional[str] = None, netns: NetnsArg = None) -> Snapshot:
    """Every socket of the host (of `kind`) with every process that holds it.

    Args:
        kind: which tables: psutil's ``"inet"`` (default), ``"inet4"``, ``"inet6"``,
            ``"tcp"``, ``"tcp4"``, ``"tcp6"``, ``"udp"``, ``"udp4"``, ``"udp6"``,
            ``"unix"``, plus ``"udplite"``, ``"raw"``, ``"icmp"``, ``"packet"``,
            ``"netlink"``, and ``"all"`` for every table; one table of a family
            (``"udplite4"``, ``"raw6"``, ``"icmp4"``...); or several of these,
            e.g. ``("tcp", "udplite")``.
        owners: walk ``<proc_root>/PID/fd`` to find owners (the costly part);
            False lists sockets only, with empty ``owners``.
        proc_root: a procfs mount or any tree laid out like one (fixtures,
            a container's /proc, text captured on another machine).
        backend: ``"native"`` or ``"pure"``; default: $PROCNET_BACKEND, else
            native when it was built.
        byteorder: how the kernel that printed the tables orders its words:
            ``"native"`` (this host; the default), ``"little"`` or ``"big"`` --
            for text captured on a machine of the other byte order.
        state, lport, rport, uid, laddr: keep only sockets in these states
            (names as in :attr:`Connection.state`), with this local / remote
            port, this uid, or bound to this local IP address (``"127.0.0.1"``,
            ``"::1"``; exact, so an IPv4 address does not match
            ``::ffff:127.0.0.1``; inet sockets only). Applied in the kernel
            where the netlink source serves, else while decoding the text --
            always before owners are joined.
        pid: keep only sockets held by this pid (or any of several); only
            those processes' fds are walked.
        threads: owner-walk threads (0/None: one per CPU, at most 4). With
            more than one, the caller's namespace's big tables (TCP, unix)
            are also dumped on two threads; 1 does everything on the
            caller's thread.
        source: where the socket tables come from: ``"auto"`` (default, or
            $PROCNET_SOURCE) uses netlink sock_diag for each table where it
            works and that table's /proc/net text otherwise (and always for a
            proc_root that is not this host's /proc); ``"netlink"`` insists;
            ``"procfs"`` reads the text. ``Snapshot.sources`` says which served
            each table. Fields the two report differently: see the README.
        owner_source: how owners are found: ``"auto"`` (default, or
            $PROCNET_OWNER_SOURCE) uses the BPF owner source when it can be
            loaded (root or CAP_BPF+CAP_PERFMON, libbpf, kernel 5.8+ with BTF)
            and pays here -- once loaded in this process, or when the host has
            more than ``BPF_BREAK_EVEN`` sockets -- and the /proc/PID/fd walk
            otherwise; ``"bpf"`` insists (native backend, this host's /proc);
            ``"procfs"`` always walks. ``Snapshot.owner_source`` says which served.
            A filtered call (``lport=8080``) still has to look at every fd of
            every process to find all owners: it costs a whole walk (or one
            BPF scan); only a :class:`Poller` can do less.

        netns: which network namespaces: None (default) the caller's --
            sockets of other namespaces are counted in ``Snapshot.unlisted``
            and ``other_netns``, not listed; ``"all"`` every namespace of the
            host (every process's ``/proc/PID/ns/net`` and the bind mounts
            under /run/netns and /run/docker/netns); or one, given as its
            inode (``4026532481``), a pid in it, or a path (``/run/netns/NAME``,
            ``/proc/PID/ns/net``). Each is listed over netlink from inside it
            (root: CAP_SYS_ADMIN) or from a member process's ``/proc/PID/net``
            text. ``Connection.netns`` and ``Snapshot.namespaces`` say which.

    Returns:
        A :class:`Snapshot` (a list of :class:`Connection`) that also says what
        could not be read: ``denied_pids``, ``skipped`` lines, ``tables``.

    Raises:
        ValueError: an unknown kind or a bad filter value (the message names it).
        ProcNetError: ``source="netlink"`` where a table cannot be dumped.
        ProcRootError: proc_root is missing or not procfs-like.
        BackendUnavailable: ``backend="native"`` but the C core was not built.
    """
    return _connections(make_query(
        kind, owners=owners, proc_root=proc_root, byteorder=byteorder, threads=threads, state=state,
        lport=lport, rport=rport, pid=pid, uid=uid, source=source, laddr=laddr,
        owner_source=owner_source, netns=netns), backend)


@contextmanager
def _bulk_allocation() -> Iterator[None]:
    """Pause the cyclic GC while one snapshot's records are created.

    A snapshot allocates one tracked tuple per socket; with tens of thousands
    the collector runs again and again over objects that cannot form cycles,
    which cost ~40% of the Python-side time at 50 000 sockets. Only re-enables
    what it disabled, so a caller's gc.disable() and other threads are safe.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _connections(q: Query, backend: Optional[str], *, repeated: bool = False) -> Snapshot:
    """connections() for a resolved query (also the test hook for netlink_deny).
    `repeated`: the caller will call again and again (see _plan.plan)."""
    with _bulk_allocation():
        return _take(q, backend, repeated)


def _take(q: Query, backend: Optional[str], repeated: bool = False) -> Snapshot:
    name, impl = _backend.resolve(backend)
    p = plan(q, impl, repeated=repeated)
    with _root_errors(q):
        records, ctx, meta = impl.snapshot(q, p)
    return _finish(q, p, name, build(records, ctx), meta)


@contextmanager
def _root_errors(q: Query) -> Iterator[None]:
    try:
        yield
    except ProcRootError:
        raise
    except OSError as e:   # the root vanished or changed between the check and the walk
        raise ProcRootError(e.errno or errno.EIO, e.strerror or "cannot read proc_root",
                            q.proc_root) from None


def _namespace_meta(q: Query, p: Plan, meta: dict) -> None:
    """Snapshot.namespaces, unlisted and other_netns from what the core said."""
    status = meta.pop("_netns_status", ())
    raw_unlisted = meta.pop("_unlisted", ())
    found = p.found or {}
    if p.listings is None:
        # the caller's own: listed by whatever served its tables
        src = "+".join(sorted(set(meta["sources"].values()) - {""})) or SOURCE_NAMES[p.source]
        namespaces = {p.self_netns: NetNS(p.self_netns, source=src)} if p.self_netns else {}
        read_in = {p.self_netns: sum(1 << T.TABLE_INDEX[name] for name, st in meta["tables"].items()
                                     if st == "read")}
    else:
        namespaces = {}
        read_in = {}
        for inode, source, err, tables_read in status:
            f = found.get(inode)
            namespaces[inode] = NetNS(inode, f.names if f else (), f.pids if f else (),
                                      SOURCE_NAMES.get(source, ""),
                                      os.strerror(err) if err and not source else "")
            if source:                  # not the ones refused
                read_in[inode] = tables_read
    counts: dict = {}
    others: dict = {}
    every_kind = q.tables == T.ALL_TABLES
    for _inode, ns, _pid, proto in raw_unlisted:
        if not proto:
            continue        # gone since the walk (a race, never a loss), or no socket to ask
        table = T.TABLE_INDEX.get(T.PROTO_TABLES.get(proto, ""), -1)
        if not (every_kind or table in q.tables):
            continue
        if ns in read_in and table >= 0 and read_in[ns] >> table & 1:
            continue        # in no table of its own namespace, which was read: unbound or closed
        counts[proto] = counts.get(proto, 0) + 1
        if ns and ns not in read_in:
            others[ns] = others.get(ns, 0) + 1
    meta["namespaces"] = namespaces
    meta["unlisted"] = counts
    meta["other_netns"] = dict(sorted(others.items()))


def _check_meta(q: Query, meta: dict) -> None:
    """Raise for what the caller insisted on and did not get; add pids_hidden."""
    meta.pop("_stats", None)
    if q.source == "netlink":
        refused = [ns for ns in meta.get("namespaces", {}).values() if not ns.source]
        if refused:
            raise ProcNetError("source='netlink' cannot list network namespace %s (%s); use "
                               "source='auto' to fall back to /proc/PID/net text" % (
                                   refused[0].inode, refused[0].error or "not entered"))
        failed = {t: st for t, st in meta["tables"].items() if st.startswith("error")}
        if failed:
            raise ProcNetError("source='netlink' cannot dump %s (%s); use source='auto' to fall "
                               "back to /proc/net text" % (", ".join(failed), "; ".join(
                                   "%s: %s" % kv for kv in failed.items())))
    if q.owners:
        meta["pids_hidden"] = pids_hidden(q.proc_root)


def _finish(q: Query, p: Plan, name: str, conns: Iterable[Connection], meta: dict) -> Snapshot:
    """The Snapshot of a call's records (filtered by the core already)."""
    _namespace_meta(q, p, meta)
    _check_meta(q, meta)
    return Snapshot(conns, backend=name, **meta)
