"""Change tracking for a Poller: does its last poll still hold?

The kernel side (csrc/bpf/change_track.bpf.h, read by csrc/change_track.c)
records what can change the answer: a process's fd table or name, a socket
created, bound, connected, closed, a TCP state change. This module decides
from those records, without reading any table, whether a Poller's last poll
still holds ("clean": the poll answers from it) or must list again ("dirty").
It errs towards dirty: a record it cannot place, a lost record, an expired
interval all make the next poll list everything (a resync).

What it cannot see, and how it stays exact anyway:
- rows that leave with nothing reported: TIME_WAIT and SYN_RECV expiry (and a
  FIN_WAIT2 row that is a TIME_WAIT socket's), and SCTP associations, which
  come and go with the network without a state change of their socket: while
  the last poll holds any, every poll lists;
- a SYN_RECV row that appears (a request: no hook fires) is seen at its first
  SYN-ACK retransmit (the initial RTO, 1 s), if the handshake has not
  completed by then (which a state change reports);
- a change recorded before it is made (PN_CHG_SOCK_PRE: the tracepoint fires
  before the new state is stored): its table is listed in this poll and the
  next;
- the poller's own syscalls while it lists (it opens and closes netlink
  sockets and /proc files): the kernel does not record the polling thread
  while the core lists, nor the core's thread inside another namespace
  (pn_track_poll, pn_track_quiet);
- an exit is recorded before the fd table goes (and a thread's own table,
  after unshare(CLONE_FILES), is recorded as a socket change): listed in
  this poll and the next;
- a process that let go of its last socket while the listing ran is no holder
  of the new listing: records made meanwhile are judged against the holders
  of both listings and the processes records named;
- what the hooks may miss (io_uring's SQPOLL thread, seccomp's addfd, 32-bit
  processes on a 64-bit kernel, whose syscall numbers differ): a periodic
  resync bounds it (docs/change_tracking.md).
"""
import time
from operator import itemgetter
from typing import Callable, FrozenSet, Iterable, List, Optional, Set, Tuple

from . import _tables as T
from ._records import R_STATE, R_TABLE, Connection

# PN_CHG_* (csrc/procnet.h)
NEW, FDS, EXIT, FORK, FORK_SHARE, COMM, SOCK, SOCK_PRE = 1, 2, 3, 4, 5, 6, 7, 8
TABLE_NONE = 255
# rows that can leave the listing with nothing reported: TCP's (and MPTCP's)
# SYN_RECV, FIN_WAIT2, TIME_WAIT, NEW_SYN_RECV; any row of an SCTP table
# (associations come and go with the network)
VOLATILE_STATES = frozenset(T.TCP_STATES.index(n) for n in
                            ("SYN_RECV", "FIN_WAIT2", "TIME_WAIT", "NEW_SYN_RECV"))
_STATEFUL = T.TCP_TABLES | T.MPTCP_TABLES


def has_volatile_rows(conns: Iterable[Connection]) -> bool:
    """Does a listing hold rows whose leaving nothing reports? (From the raw
    fields: naming 50 000 states would cost more than the check.)"""
    for table, state in zip(map(itemgetter(R_TABLE), conns), map(itemgetter(R_STATE), conns)):
        if table in _STATEFUL:
            if state in VOLATILE_STATES:
                return True
        elif table in T.SCTP_TABLES:
            return True
    return False
DEFAULT_RESYNC = 10.0

Record = Tuple[int, int, int, int, int, int]      # (kind, tgid, tid, other, netns, table)
_WHY = {NEW: "a process gained a socket", FDS: "a process changed its fds or sockets",
        EXIT: "a process exited", FORK: "a process forked", COMM: "a process was renamed",
        SOCK: "a socket changed", SOCK_PRE: "a socket changed"}


class TrackState:
    """What a tracking Poller knows between polls; see the module's docstring.

    `read` returns the records made since its last call and the running
    count of lost ones (the core's Tracker.read). `tables`: the table numbers
    the poller lists; `netns`: the namespace inodes it lists (None: any).
    """

    def __init__(self, read: Callable[[], Tuple[List[Record], int]], tables: FrozenSet[int],
                 netns: Optional[FrozenSet[int]], resync: float = DEFAULT_RESYNC,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._tables = tables
        self._netns = netns
        self._resync = resync
        self._clock = clock
        self._holders: Set[int] = set()
        self._named: Set[int] = set()   # processes records said may hold sockets now
        self._lost = 0
        self._last_full = 0.0
        self._volatile = False
        self._pre_next = False          # a PRE record: list again after the next full poll
        self.dirty: Optional[str] = "first poll"    # why the next poll must list, or None
        self.off: Optional[str] = None  # tracking given up for good, and why

    # -- deciding -------------------------------------------------------------

    def _mark(self, why: str) -> None:
        if self.dirty is None:
            self.dirty = why

    def _relevant(self, rec: Record) -> Optional[str]:
        kind, tgid, _tid, other, netns, table = rec
        if kind in (NEW, FORK):                 # may hold sockets from now on
            self._named.add(other if kind == FORK else tgid)
        if table != TABLE_NONE:                 # the record names its socket
            if table not in self._tables or (self._netns is not None and netns and
                                             netns not in self._netns):
                return None
            if kind == SOCK_PRE:
                self._pre_next = True
            return _WHY.get(kind, "a socket changed")
        if kind in (SOCK, SOCK_PRE, NEW):       # a socket of a kind it cannot name
            if kind == SOCK_PRE:
                self._pre_next = True
            return _WHY.get(kind, "a socket changed")
        if kind == FORK_SHARE and tgid in self._holders:
            self.off = ("a process shares its fd table with another process "
                        "(clone(CLONE_FILES)): one can change the other's sockets unseen")
            return self.off
        if tgid in self._holders:
            if kind == EXIT:                    # before exit_files(): the table goes after
                self._pre_next = True
            return _WHY.get(kind, "a change")
        return None

    def absorb(self) -> None:
        """Take the kernel's records into `dirty`."""
        if self.off is not None:
            return
        recs, lost = self._read()
        if lost != self._lost:
            self._lost = lost
            self._mark("records were lost (%d so far)" % lost)
        for rec in recs:
            why = self._relevant(rec)
            if why is not None:
                self._mark(why)
                if self.off is not None:
                    return

    def check(self) -> Optional[str]:
        """Before a poll: why it must list (None: the last poll holds)."""
        self.absorb()
        if self.dirty is None:
            if self._volatile:
                self.dirty = "rows whose expiry is not reported (TIME_WAIT, SYN_RECV)"
            elif self._clock() - self._last_full >= self._resync:
                self.dirty = "periodic resync"
        return self.dirty

    def listed(self, conns: Iterable[Connection], holders: Iterable[int], started: float,
               netns: Optional[FrozenSet[int]]) -> None:
        """After a full poll (begun at `started` on this clock) of namespaces
        `netns` (None: any): what it saw. `holders`: the pids the walk found
        holding a socket, and those it could not read."""
        new = set(holders)
        self._netns = netns
        volatile = has_volatile_rows(conns)
        pre = self._pre_next
        # records made while it listed: judged against the holders of both
        # listings and whoever records named meanwhile (one may have let go of
        # its last socket after the listing and before the walk reached it)
        self._holders = self._holders | new | self._named
        self._named = set()
        self.dirty = None
        self._pre_next = False
        self.absorb()
        self._holders = new | self._named
        self._volatile = volatile
        self._last_full = started
        if pre:
            self._mark("a change recorded before it was made")

    def forget(self) -> None:
        """The poller lost its state (an error mid-poll): list next time."""
        self.dirty = "the last poll failed"


__all__ = ["TrackState", "DEFAULT_RESYNC", "VOLATILE_STATES", "Record", "has_volatile_rows"]
