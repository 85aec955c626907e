"""Polling: the sockets now, what changed since the last poll, cheap lookups.

A :class:`Poller` keeps state between calls, in the core (csrc/cache.c or its
pure twin): per process, the socket fds its last walk found and what its
threads had run by then -- a process that has not run since cannot have
changed its fd table, so it is not walked again -- and the last poll's
records, so that a poll builds Python objects only for sockets that are new
or changed and keeps the others' objects. Every poll is exactly what a fresh
:func:`procnet.connections` would return at that moment.
"""
import numbers
import os
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union

from . import _backend
from ._api import PathLike, _bulk_allocation, _finish, _root_errors
from ._records import R_LPORT, R_TABLE, Connection, Snapshot, build
from ._tables import TABLES, VSOCK
from ._errors import ProcNetError
from ._fdshare import fd_table_sharers
from ._netns import NetnsArg
from ._plan import OWN_PROCFS, Plan, PollerPlanner, plan, tracked_netns, tracking_query, tracking_refusal
from ._request import Query, make_query
from ._track import DEFAULT_RESYNC, TrackState

_OPENED, _OWNERS, _MODIFIED = 1, 2, 3     # PN_CH_* in csrc/procnet.h


class Change(NamedTuple):
    """One thing that happened between two polls.

    ``event`` is ``"open"`` (a socket the previous poll did not have),
    ``"close"`` (one it had and this poll has not: ``conn`` is the socket as
    last seen) or ``"owners"`` (the same socket held by another set of
    (pid, fd): a fork, an exit, a close, an fd passed over a unix socket;
    ``old`` is the socket as the previous poll saw it).
    """

    event: str
    conn: Connection
    old: Optional[Connection] = None

    def as_dict(self) -> Dict[str, Any]:
        """JSON-ready: the event name, the socket's fields, and for "owners" the old owners."""
        d: Dict[str, Any] = {"event": self.event}
        d.update(self.conn.as_dict())
        if self.old is not None:
            d["old_owners"] = [o._asdict() for o in self.old.owners]
        return d


class Poll(NamedTuple):
    """The result of :meth:`Poller.poll`.

    ``snapshot`` is the current :class:`Snapshot`; ``changes`` every
    :class:`Change` since the previous poll (closes first, then opens and owner
    changes in snapshot order; on the first poll every socket is opened).
    ``procs_cached`` processes were known without reading their fd directory,
    ``fds_read`` fd links were read. ``tracked``: the poll was answered from
    the kernel's change records without listing anything (``Poller(track=...)``):
    its sockets are the last listing's (their ``tx_queue``/``rx_queue`` too), as
    are the snapshot's other attributes (``processes``, ``denied_pids``,
    ``unlisted``, ``other_netns``...). ``listed_because``: with tracking on, why
    this poll listed instead (the first poll, a record of a change, rows whose
    expiry is not reported, the periodic resync...); None otherwise.
    ``carried``: the poll listed only the tables (per namespace) the records
    named and read only the fds of processes they named; every other table's
    rows are the last listing's (their queues too), every other process's
    fds as the walk last found them.
    """

    snapshot: Snapshot
    changes: Tuple[Change, ...]
    procs_cached: int
    fds_read: int
    raw: "Optional[_RawChanges]" = None
    tracked: bool = False
    listed_because: Optional[str] = None
    carried: bool = False

    def select(self, keep: Callable[[Connection], bool]) -> Tuple[Change, ...]:
        """The changes as seen through a filter of one's own (`keep` on a
        Connection): a socket that starts to pass it is opened, one that stops
        is closed -- also when only its state or queues changed."""
        assert self.raw is not None
        return self.raw.select(keep)

    @property
    def opened(self) -> List[Connection]:
        return [c.conn for c in self.changes if c.event == "open"]

    @property
    def closed(self) -> List[Connection]:
        return [c.conn for c in self.changes if c.event == "close"]

    @property
    def owners_changed(self) -> List[Tuple[Connection, Connection]]:
        """(old, new) per socket whose owner set changed."""
        return [(c.old, c.conn) for c in self.changes if c.event == "owners"]  # type: ignore[misc]


class _RawChanges:
    """What the core said changed, before any filter of Python's."""

    __slots__ = ("prev", "new", "delta")

    def __init__(self, prev: List[Connection], new: List[Connection], delta: Dict[str, Any]) -> None:
        self.prev, self.new, self.delta = prev, new, delta

    def select(self, keep: Optional[Callable[[Connection], bool]]) -> Tuple[Change, ...]:
        prev, new, delta = self.prev, self.new, self.delta
        closed = [prev[j] for j in delta["closed"]]
        out = [Change("close", c) for c in closed if keep is None or keep(c)]
        prevs = delta["prev"]
        for k, kind in enumerate(delta["kind"]):
            if kind == _OPENED:
                if keep is None or keep(new[k]):
                    out.append(Change("open", new[k]))
            elif kind in (_OWNERS, _MODIFIED):
                old = prev[prevs[k]]
                was, now = (True, True) if keep is None else (keep(old), keep(new[k]))
                if was and now:
                    if kind == _OWNERS:
                        out.append(Change("owners", new[k], old))
                elif now:
                    out.append(Change("open", new[k]))       # it entered the filter
                elif was:
                    out.append(Change("close", old))         # it left it
        return tuple(out)


def _no_delta() -> Dict[str, Any]:
    """What the core says of a poll in which nothing changed."""
    return {"closed": [], "kind": [], "prev": []}


_CARRIED = frozenset(("read", "missing"))     # table statuses a poll may report again


def _listed_netns(p: Plan) -> List[int]:
    """The namespace inodes a plan lists (its own when it names none)."""
    return [li.inode for li in p.listings] if p.listings is not None else [p.self_netns]


def _thread_netns() -> int:
    """This thread's network namespace inode (0 if unknown)."""
    try:
        return os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        return 0


class Poller:
    """Poll the sockets of `kind` again and again, cheaply.

    Built with the arguments of :func:`procnet.connections` (owners are always
    found). ``poll()`` returns a :class:`Poll`; ``lookup(lport=8080)`` answers
    one question with the owner cache warm; ``watch(interval)`` yields the
    changes as they come until :meth:`stop`. Calls are serialised (one poll
    at a time); ``last`` may be read from any thread. Close it (or use it as a
    context manager) to release its state at once.

    ``track``: let the kernel say what changed (BPF programs on raw
    tracepoints; root, BTF, this system's /proc). A poll then lists nothing
    while nothing that can change the answer happened, and lists everything
    when something did, when a record was lost, while rows whose expiry the
    kernel does not report exist (TIME_WAIT, SYN_RECV), and every `resync`
    seconds. ``True`` raises ProcNetError when tracking cannot start, ``"auto"``
    polls without it then (``tracking`` says why). The price, which is why it
    is not the default: ``tx_queue``/``rx_queue`` are as of the last listing
    (they change with every packet, which nothing reports), and while the
    poller lives every syscall on the host pays the tracepoints (0.1-0.35 us,
    BENCHMARKS.md). docs/change_tracking.md: the hooks, guarantees, blind spots.
    """

    def __init__(self, kind: Union[str, Iterable[str]] = "inet", *, proc_root: PathLike = "/proc",
                 backend: Optional[str] = None, byteorder: Optional[str] = None,
                 state: Union[str, Iterable[str], None] = None, lport: Optional[int] = None,
                 rport: Optional[int] = None, pid: Union[int, Iterable[int], None] = None,
                 uid: Optional[int] = None, threads: Optional[int] = None,
                 source: Optional[str] = None, laddr: Optional[str] = None,
                 owner_source: Optional[str] = None, netns: NetnsArg = None,
                 track: Union[bool, str] = False, resync: float = DEFAULT_RESYNC) -> None:
        if not (track is True or track is False or (isinstance(track, str) and track == "auto")):
            raise ValueError("track must be False, True or 'auto', not %r" % (track,))
        if isinstance(resync, bool) or not isinstance(resync, numbers.Real) or not 0 < resync < 1e9:
            raise ValueError("resync must be a number of seconds above 0 and below 1e9, not %r" % (resync,))
        self._args: Dict[str, Any] = dict(
            kind=kind, proc_root=proc_root, byteorder=byteorder, state=state, lport=lport,
            rport=rport, pid=pid, uid=uid, threads=threads, source=source, laddr=laddr,
            owner_source=owner_source, netns=netns)
        self._q = make_query(owners=True, **self._args)
        self._backend, self._impl = _backend.resolve(backend)
        self._cache: Any = self._impl.Cache()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._all: List[Connection] = []     # the last poll, in the core's order, unfiltered
        self._last: Optional[Snapshot] = None
        # the last poll's attributes as the core gave them: the snapshot handed
        # out is the caller's to change, and a tracked poll answers from these
        self._meta: Optional[Snapshot] = None
        self._planner = PollerPlanner(self._impl)
        self._holders: List[int] = []
        self._volatile = 0              # rows of the last poll whose leaving nothing reports
        self._by_lport: Optional[Tuple[List[Connection], Dict[int, List[int]], List[int]]] = None
        self._track: Optional[TrackState] = None
        self._tracker: Any = None
        self._tracking = "off: not asked for (Poller(track=True))"
        if track:
            self._start_tracking(track is True, float(resync))

    def _start_tracking(self, required: bool, resync: float) -> None:
        why = tracking_refusal(self._q)
        tracker = None
        if why is None:
            tracker, why = self._impl.open_tracker()
        if tracker is None:
            if required:
                raise ProcNetError("procnet: cannot track changes in the kernel: %s" % why)
            self._tracking = "off: " + why
            return
        self._tracker = tracker
        self._track_pid = os.getpid()
        self._listed_ns = 0
        self._qt = tracking_query(self._q)
        p = plan(self._qt, self._impl, cached=True, polling=True)
        self._track = TrackState(tracker.read, self._q.tables,
                                 tracked_netns(self._qt, p), resync)
        # clones that share an fd table, made before the programs were attached
        self._track.share(fd_table_sharers(self._q.proc_root))
        self._tracking = "kernel"

    def _stop_tracking(self, why: str) -> None:
        if self._tracker is not None:
            self._tracker.close()
        self._tracker = self._track = None
        self._tracking = "off: " + why

    @property
    def tracking(self) -> str:
        """``"kernel"`` while the kernel's change records serve, else
        ``"off: <why>"``."""
        return self._tracking

    @property
    def backend(self) -> str:
        """``"native"`` or ``"pure"``."""
        return self._backend

    @property
    def last(self) -> Optional[Snapshot]:
        """The snapshot of the latest poll (None before the first)."""
        return self._last

    def poll(self) -> Poll:
        """Take the current snapshot and say what changed since the last poll."""
        with self._lock:
            self._open()
            q = self._q
            try:
                if self._track is not None:
                    return self._tracked_poll()
                return self._poll(q, self._planner.plan(q))
            except BaseException:
                # the core moved on and this side may not have: start afresh
                self._reset()
                raise

    def _tracked_poll(self) -> Poll:
        t = self._track
        assert t is not None
        if os.getpid() != self._track_pid:
            # a forked child: the ring buffer and its read position are the parent's
            self._tracker = None            # its programs stay the parent's to close
            self._stop_tracking("this process is a fork of the one that started tracking")
            return self._poll(self._q, self._planner.plan(self._q))
        try:
            why = t.check()
        except OSError as e:                # the tracker failed: never answer from it
            self._stop_tracking("reading the change records failed: %s" % e)
            return self._poll(self._q, self._planner.plan(self._q))
        if t.off is not None:
            self._stop_tracking(t.off)
            return self._poll(self._q, self._planner.plan(self._q))
        if why is None and self._q.netns is None and _thread_netns() != self._listed_ns:
            why = "polled from another network namespace than the last listing"
        if why is None and self._meta is not None:
            # the last answer again, from the poller's own rows and attributes
            snap = self._meta._like(self._all)
            self._last = snap
            return Poll(snap, (), 0, 0, _RawChanges(self._all, [], _no_delta()), True)
        qt = self._qt
        started = time.monotonic()
        try:
            # the namespaces are this poll's (a Poller may be polled from a thread elsewhere)
            p = plan(qt, self._impl, cached=True, polling=True)
            carry = t.carry(_listed_netns(p)) if self._may_carry(self._meta, p) else None
            res = self._poll(qt, p, self._tracker, carry)._replace(
                listed_because=why or "no earlier poll to answer from", carried=carry is not None)
            self._listed_ns = _thread_netns()
            t.listed(self._volatile > 0, self._holders + list(res.snapshot.denied_pids), started,
                     tracked_netns(qt, p), whole=carry is None,
                     found=frozenset(_listed_netns(p)), own=self._listed_ns)
        except OSError as e:
            if not isinstance(e, ProcNetError) and self._tracker is not None:
                self._stop_tracking("the change records failed: %s" % e)
                return self._poll(self._q, self._planner.plan(self._q))
            raise
        return res

    def _may_carry(self, last: Optional[Snapshot], p: Plan) -> bool:
        """May this poll carry over what the records did not name? Only from a
        last poll that listed every table well (or found it missing: a socket
        of it would be a record naming it), into a poll with owners from the
        cached walk, in the namespace of the last listing."""
        return (last is not None and p.owner_source == OWN_PROCFS and self._qt.owners and
                not last.skipped and all(v in _CARRIED for v in last.tables.values()) and
                _thread_netns() == self._listed_ns)

    def _reset(self) -> None:
        if self._cache is not None:
            # the new one first: an exception here (a signal handler's) leaves
            # the old cache in place, never a freed one
            old, self._cache = self._cache, self._impl.Cache()
            old.close()
        self._all = []
        self._last = None
        self._meta = None
        if self._track is not None:
            self._track.forget()

    def _poll(self, q: Query, p: Plan, tracker: Any = None, carry: Any = None) -> Poll:
        with _bulk_allocation(), _root_errors(q):
            if carry is None:
                recs, ctx, meta, delta = self._impl.poll(q, p, self._cache, tracker)
            else:
                recs, ctx, meta, delta = self._impl.poll(q, p, self._cache, tracker, carry)
            new = list(build(recs, ctx))
        prev = self._all
        if delta["nprev"] != len(prev):
            # the core kept another previous poll than this list: only a
            # rebase (a new root or user) can say that, and it hands all over
            if not delta["rebased"]:
                raise ProcNetError("procnet: poller out of step with its core")
            prev = []
        if delta["unchanged"]:
            current = prev                  # the common steady state: nothing to assemble
        else:
            combined = prev + new if new else prev
            current = list(map(combined.__getitem__, delta["take"]))
        stats = meta.pop("_stats")
        self._holders = stats.get("holders", [])
        self._volatile = stats.get("volatile", 0)
        self._planner.note(q, p, meta["owner_source"], stats["fds_read"])
        raw = _RawChanges(prev, new, delta)
        self._all = current
        snap = _finish(q, p, self._backend, current, meta)
        self._last = snap
        self._meta = snap._like(())
        return Poll(snap, raw.select(None), stats["procs_cached"], stats["fds_read"], raw)

    def lookup(self, **filters: Any) -> Snapshot:
        """Like :func:`procnet.connections` with this poller's arguments updated by
        `filters` (``lport=8080``, ``pid=...``, ``kind=...``; not ``proc_root``),
        served from the owner cache: only processes that ran since they were last
        looked at are walked."""
        bad = set(filters) - set(self._args) | ({"proc_root"} & set(filters))
        if bad:
            raise TypeError("lookup() got unexpected argument(s): %s" % ", ".join(sorted(bad)))
        args = dict(self._args)
        args.update(filters)
        q = make_query(owners=True, **args)
        with self._lock:
            self._open()
            if self._track is not None and self._meta is not None and \
                    self._narrows(filters, q) and self._track.check() is None:
                return self._from_state(q)
            p = self._planner.lookup_plan(q)
            with _bulk_allocation(), _root_errors(q):
                recs, ctx, meta = self._impl.snapshot(q, p, self._cache)
                conns = list(build(recs, ctx))
            return _finish(q, p, self._backend, conns, meta)

    _NARROWING = frozenset(("kind", "state", "lport", "rport", "uid", "laddr"))

    def _narrows(self, filters: Dict[str, Any], q: Query) -> bool:
        """Does the lookup only narrow what the last poll holds (its tables a
        subset, each other filter one the poller did not have, or the same)?"""
        if not set(filters) <= self._NARROWING or q.tables - self._q.tables:
            return False
        return all(self._args[k] is None or self._args[k] == v
                   for k, v in filters.items() if k != "kind")

    def _from_state(self, q: Query) -> Snapshot:
        """A lookup answered from the tracked state: the last poll's sockets
        that q keeps, with its metadata (for q's tables)."""
        from ._pure.table_reader import keep_sock      # the filters' one Python definition
        keep = keep_sock(q)
        tables = q.tables
        conns = [c for c in self._candidates(q) if c[R_TABLE] in tables and keep(c)]
        meta = self._meta
        assert meta is not None
        return meta._like(conns, (TABLES[t] for t in tables))

    def _candidates(self, q: Query) -> List[Connection]:
        """The last poll's sockets a lookup of q may keep, in order: by local
        port through an index made once per listing (keep_sock decides)."""
        if q.lport < 0:
            return self._all
        if self._by_lport is None or self._by_lport[0] is not self._all:
            idx: Dict[int, List[int]] = {}
            other: List[int] = []               # vsock keeps its port elsewhere
            for i, c in enumerate(self._all):
                if c[R_TABLE] == VSOCK:
                    other.append(i)
                else:
                    idx.setdefault(c[R_LPORT], []).append(i)
            self._by_lport = (self._all, idx, other)
        _, idx, other = self._by_lport
        hits = idx.get(q.lport, [])
        if other:
            hits = sorted(hits + other)
        return [self._all[i] for i in hits]

    def watch(self, interval: float = 1.0, *, initial: bool = True) -> Iterator[Change]:
        """Poll every `interval` seconds and yield each :class:`Change`, until
        :meth:`stop` or :meth:`close` (from any thread), or the caller stops
        iterating. With ``initial=False`` the sockets that exist when a poller
        polls for the first time are not reported as opened.

        Checked here, before the first ``next()``: a bad `interval` (not a
        number of seconds from 0 to ``threading.TIMEOUT_MAX``: NaN would
        poll without pause, infinity fail only at the first wait) raises
        ValueError, a closed poller ProcNetError."""
        if isinstance(interval, bool) or not isinstance(interval, numbers.Real) or \
                not 0 <= interval <= threading.TIMEOUT_MAX:        # NaN fails both
            raise ValueError("watch() interval must be a number of seconds from 0 to %d, not %r"
                             % (threading.TIMEOUT_MAX, interval))
        self._open()
        self._stopped.clear()           # now, not at the first next(): stop() may come first
        return self._watch(float(interval), initial)

    def _watch(self, interval: float, initial: bool) -> Iterator[Change]:
        while not self._stopped.is_set():
            t0 = time.monotonic()
            first = self._last is None
            try:
                p = self.poll()
            except ProcNetError:
                if self._cache is None:     # closed meanwhile: the end, not an error
                    return
                raise
            if initial or not first:
                yield from p.changes
            self._stopped.wait(max(0.0, interval - (time.monotonic() - t0)))

    def stop(self) -> None:
        """Make a running :meth:`watch` return after its current poll (any thread)."""
        self._stopped.set()

    def close(self) -> None:
        """Stop watching and release the poller's state (its cache, its
        tracking programs) now."""
        self._stopped.set()
        with self._lock:
            if self._cache is not None:
                self._cache.close()
                self._cache = None
            if self._track is not None:
                self._stop_tracking("closed")
            self._all = []

    def _open(self) -> None:
        if self._cache is None:
            raise ProcNetError("this Poller is closed")

    def __enter__(self) -> "Poller":
        self._open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<Poller %s backend=%s sockets=%s>" % (
            self._args["kind"], self._backend, len(self._all))
