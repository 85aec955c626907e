"""Change tracking for a Poller: does its last poll still hold?

The kernel side (csrc/bpf/change_track.bpf.h, read by csrc/change_track.c)
records what can change the answer: a process's fd table or name, a socket
created, bound, connected, closed, a TCP state change. This module decides
from those records, without reading any table, whether a Poller's last poll
still holds ("clean": the poll answers from it) or must list again ("dirty").
It errs towards dirty: a record it cannot place, a lost record, an expired
interval all make the next poll list everything (a resync).

When every record that mattered named its socket's table and namespace, the
poll lists only those (``scope``: a Carry, PN_Q_CARRY in the core): the last
poll's rows of every other table are carried over, and only the processes
records named (``recheck``: every pid of every record since the last
listing) have their fds read; the others' cached fds stand. Anything else --
a process's fd table, exit, fork, name; a lost record; the periodic resync --
lists everything and reads every process's identity, as before.

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
from typing import Callable, Dict, FrozenSet, Iterable, List, NamedTuple, Optional, Set, Tuple

from . import _tables as T

# PN_CHG_* (csrc/procnet.h)
NEW, FDS, EXIT, FORK, FORK_SHARE, COMM, SOCK, SOCK_PRE = 1, 2, 3, 4, 5, 6, 7, 8
TABLE_NONE = 255
# (rows that leave unreported -- TIME_WAIT, SYN_RECV...: the core counts them,
# pn_result.nvolatile, volatile_row in csrc/snapshot.c)
DEFAULT_RESYNC = 10.0
# setsockopt(IPV6_ADDRFORM) moves a TCP or UDP socket from the v6 table to the
# v4 one, and its record names the table it ends in: both are listed
_SIBLING = {T.TABLE_INDEX[a]: T.TABLE_INDEX[b] for a, b in (
    ("tcp", "tcp6"), ("tcp6", "tcp"), ("udp", "udp6"), ("udp6", "udp"),
    ("udplite", "udplite6"), ("udplite6", "udplite"))}

Record = Tuple[int, int, int, int, int, int]      # (kind, tgid, tid, other, netns, table)
ANY_NETNS = -1      # a scope entry for a table in every listed namespace


class Carry(NamedTuple):
    """A poll that lists only what records named (PN_Q_CARRY)."""
    fresh: Dict[int, int]       # namespace inode -> bit per table listed afresh in it
    any_netns: int              # bit per table listed afresh in every namespace
    recheck: Tuple[int, ...]    # pids whose fds are read (sorted); the rest come from the cache

    def tables_in(self, netns: int) -> int:
        return self.fresh.get(netns, 0) | self.any_netns


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
        self._pre_scope: Set[Tuple[int, int]] = set()   # the same, for a named socket
        self._scope: Set[Tuple[int, int]] = set()       # (netns, table) records named
        self._full = True               # the next listing must be whole (not scope alone)
        self._recheck: Set[int] = set()  # every pid records named since the last listing
        # processes that share an fd table with another process (clone(CLONE_FILES)
        # of a non-holder): a change one makes is the other's too, unrecorded
        self._sharers: Set[int] = set()
        self._no_carry = False
        self._found: Optional[FrozenSet[int]] = None    # netns None: the namespaces listed
        self._own_ns = 0
        self.dirty: Optional[str] = "first poll"    # why the next poll must list, or None
        self.off: Optional[str] = None  # tracking given up for good, and why

    # -- deciding -------------------------------------------------------------

    def _mark(self, why: str, scoped: bool = False) -> None:
        if not scoped:
            self._full = True
        if self.dirty is None:
            self.dirty = why

    def _relevant(self, rec: Record) -> Optional[str]:
        kind, tgid, _tid, other, netns, table = rec
        self._recheck.add(tgid)
        if kind in (NEW, FORK, FORK_SHARE):     # may hold sockets from now on
            self._recheck.add(other if kind != NEW else tgid)
            if kind != FORK_SHARE:
                self._named.add(other if kind == FORK else tgid)
            else:
                self._sharers.update((tgid, other))
        if table != TABLE_NONE:                 # the record names its socket
            # (its v6 sibling counts too: IPV6_ADDRFORM moves a socket out of it)
            if (table not in self._tables and _SIBLING.get(table) not in self._tables) or (
                    self._netns is not None and netns and netns not in self._netns):
                return None
            # a unix socket's row shows its peer, which may live in another
            # namespace: a unix record lists unix in every namespace
            where = ANY_NETNS if table == T.UNIX else netns
            if not where:
                self._full = True               # no namespace to place it in
            for t in (table, _SIBLING.get(table, table)):
                self._scope.add((where, t))
                if kind == SOCK_PRE:
                    self._pre_scope.add((where, t))
            return _WHY.get(kind, "a socket changed")
        if kind in (SOCK, SOCK_PRE, NEW):       # a socket of a kind it cannot name
            if kind == SOCK_PRE:
                self._pre_next = True
            return _WHY.get(kind, "a socket changed")
        if self._found is not None and netns and kind in (FDS, FORK, EXIT):
            # listing every namespace: one a process entered or made (unshare,
            # setns, clone) that the last listing did not list is new (its kernel
            # netlink sockets are rows no record names); the exit of a process in
            # another namespace than the poller's may have been its last member's
            if netns not in self._found:
                return "a process is in a namespace the last listing did not list"
            if kind == EXIT and netns != self._own_ns:
                return "a process left a namespace (its last member?)"
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
                self._mark(why, scoped=rec[5] != TABLE_NONE)
                if self.off is not None:
                    return

    def check(self) -> Optional[str]:
        """Before a poll: why it must list (None: the last poll holds)."""
        self.absorb()
        if self._volatile:
            self._mark("rows whose expiry is not reported (TIME_WAIT, SYN_RECV)")
        elif self._clock() - self._last_full >= self._resync:
            self._mark("periodic resync")
        return self.dirty

    def share(self, pids: Optional[Iterable[int]]) -> None:
        """Processes found sharing an fd table with another (None: it cannot
        be told, and no poll carries: every listing reads every process)."""
        if pids is None:
            self._no_carry = True
        else:
            self._sharers.update(pids)

    def carry(self, listed_netns: Iterable[int]) -> Optional[Carry]:
        """After check() said the poll must list: what to list, when the
        records allow less than everything (None: list everything).
        `listed_netns`: the namespaces this poll's plan lists."""
        if self._full or self.dirty is None or self._no_carry:
            return None
        fresh: Dict[int, int] = {}
        any_netns = 0
        listed = set(listed_netns)
        if 0 in listed:
            return None             # a namespace of unknown inode: records cannot be placed in it
        for netns, table in self._scope:
            if netns == ANY_NETNS:
                any_netns |= 1 << table
            elif netns in listed:
                fresh[netns] = fresh.get(netns, 0) | 1 << table
            # (a namespace the plan no longer lists: nothing of it to carry)
        return Carry(fresh, any_netns, tuple(sorted(self._recheck | self._sharers)))

    def listed(self, volatile: bool, holders: Iterable[int], started: float,
               netns: Optional[FrozenSet[int]], whole: bool = True,
               found: Optional[FrozenSet[int]] = None, own: int = 0) -> None:
        """After a poll (begun at `started` on this clock) of namespaces
        `netns` (None: any) that listed everything (`whole`) or what carry()
        said: what it saw. `volatile`: whether its rows include any whose
        leaving nothing reports (pn_result.nvolatile). `holders`: the pids
        the walk found holding a socket, and those it could not read. With
        `netns` None, `found`: the namespaces that poll listed, and `own` the
        poller's (its namespaces come and go with processes: see _relevant)."""
        new = set(holders)
        self._netns = netns
        self._found, self._own_ns = (found, own) if netns is None else (None, 0)
        pre, pre_scope = self._pre_next, self._pre_scope
        # records made while it listed: judged against the holders of both
        # listings and whoever records named meanwhile (one may have let go of
        # its last socket after the listing and before the walk reached it)
        self._holders = self._holders | new | self._named
        self._named = set()
        self.dirty = None
        self._full = False
        self._scope = set()
        self._recheck = set()
        self._pre_next = False
        self._pre_scope = set()
        self.absorb()
        self._holders = new | self._named
        self._volatile = volatile
        if whole:
            self._last_full = started       # the periodic resync is a whole listing
        if pre:
            self._mark("a change recorded before it was made")
        if pre_scope:
            self._scope |= pre_scope
            self._mark("a change recorded before it was made", scoped=True)

    def forget(self) -> None:
        """The poller lost its state (an error mid-poll): list next time."""
        self.dirty = "the last poll failed"
        self._full = True


__all__ = ["TrackState", "Carry", "DEFAULT_RESYNC", "Record"]
