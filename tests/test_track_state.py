"""procnet/_track.py's decisions, from made-up kernel records (no BPF needed).

Each rule: which record makes the next poll list (and which may not), lost
records, the periodic resync, rows whose expiry nothing reports, a change
recorded before it is made (this poll and the next), the poller's own
records while it lists, and an fd table shared across processes (tracking
stops for good).
"""

import pytest

from procnet import _track as T
from procnet._records import R_STATE, R_TABLE
from procnet._tables import TABLE_INDEX, TCP_STATES

from track_helpers import has_volatile_rows

TCP, UDP, UNIX = 0, 2, 10
HOLDER, STRANGER, NS, OTHER_NS = 100, 200, 4026531840, 4026532000
def Conn(state, table=TCP):
    """A row as has_volatile_rows reads it: the raw table and state fields."""
    row = [0] * (max(R_TABLE, R_STATE) + 1)
    row[R_TABLE], row[R_STATE] = table, TCP_STATES.index(state)
    return tuple(row)


class Kernel:
    """A made-up tracker: records queued by the test, a lost counter."""

    def __init__(self):
        self.queue, self.lost = [], 0

    def read(self):
        out, self.queue = self.queue, []
        return out, self.lost

    def add(self, kind, tgid=0, tid=0, other=0, netns=0, table=T.TABLE_NONE):
        self.queue.append((kind, tgid, tid, other, netns, table))


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def world():
    k, clock = Kernel(), Clock()
    st = T.TrackState(k.read, frozenset((TCP, UDP)), frozenset((NS,)), resync=10.0, clock=clock)
    assert st.check() == "first poll"
    st.listed(False, [HOLDER], clock(), frozenset((NS,)))
    assert st.check() is None
    return k, clock, st


def listed(st, clock, conns=(Conn("LISTEN"),), holders=(HOLDER,), netns=frozenset((NS,))):
    st.listed(has_volatile_rows(conns), list(holders), clock(), netns)


@pytest.mark.parametrize("rec, dirty", [
    ((T.SOCK, 0, 0, 0, NS, TCP), True),               # a table it lists, in its namespace
    ((T.SOCK, 0, 0, 0, NS, UNIX), False),             # a table it does not list
    ((T.SOCK, 0, 0, 0, OTHER_NS, TCP), False),        # another namespace
    ((T.SOCK, 0, 0, 0, 0, TCP), True),                # namespace unknown: counts
    ((T.SOCK, 0, 0, 0, NS, T.TABLE_NONE), True),      # table unknown: counts
    ((T.NEW, STRANGER, 5, 41, NS, TCP), True),        # anyone's new socket of a listed table
    ((T.NEW, STRANGER, 5, 41, OTHER_NS, TCP), False),     # the socket's namespace decides,
    ((T.NEW, STRANGER, 5, 41, NS, UNIX), False),
    ((T.NEW, STRANGER, 5, 426, 0, T.TABLE_NONE), True),   # io_uring_enter: any socket, anywhere
    ((T.FDS, STRANGER, 5, 3, NS, TCP), True),         # a listed socket closed, bound...: by anyone
    ((T.FDS, HOLDER, 5, 3, NS, UNIX), False),         # a socket it does not list
    ((T.FDS, HOLDER, 5, 33, NS, T.TABLE_NONE), True),  # a holder's dup2, exec...
    ((T.FDS, STRANGER, 5, 33, NS, T.TABLE_NONE), False),   # ... nobody else's
    ((T.EXIT, HOLDER, 5, 0, NS, T.TABLE_NONE), True),
    ((T.EXIT, STRANGER, 5, 0, NS, T.TABLE_NONE), False),
    ((T.FORK, HOLDER, 0, 300, 0, T.TABLE_NONE), True),
    ((T.FORK, STRANGER, 0, 300, 0, T.TABLE_NONE), False),
    ((T.COMM, HOLDER, 0, 0, 0, T.TABLE_NONE), True),
    ((T.COMM, STRANGER, 0, 0, 0, T.TABLE_NONE), False),
])
def test_which_records_make_the_next_poll_list(world, rec, dirty):
    k, clock, st = world
    k.add(*rec)
    assert (st.check() is not None) == dirty


def test_any_namespace_when_it_lists_all(world):
    k, clock, _ = world
    st = T.TrackState(k.read, frozenset((TCP,)), None, clock=clock)
    listed(st, clock, netns=None)
    k.add(T.SOCK, netns=OTHER_NS, table=TCP)
    assert st.check() == "a socket changed"


def test_lost_records_and_the_periodic_resync(world):
    k, clock, st = world
    k.lost = 3
    assert "lost" in st.check()
    listed(st, clock)
    assert st.check() is None                 # the same count again: nothing new lost
    clock.now += 9.9
    assert st.check() is None
    clock.now += 0.2
    assert st.check() == "periodic resync"
    assert st.check() == "periodic resync"    # stays until a full poll
    listed(st, clock)
    assert st.check() is None


@pytest.mark.parametrize("state", ["SYN_RECV", "FIN_WAIT2", "TIME_WAIT", "NEW_SYN_RECV"])
def test_rows_whose_expiry_is_not_reported_keep_polls_listing(world, state):
    k, clock, st = world
    listed(st, clock, conns=[Conn("LISTEN"), Conn(state)])
    assert st.check() is not None
    listed(st, clock)
    assert st.check() is None


def test_a_change_recorded_before_it_is_made_lists_twice(world):
    k, clock, st = world
    k.add(T.SOCK_PRE, netns=NS, table=TCP)
    assert st.check() is not None
    listed(st, clock)
    assert st.check() == "a change recorded before it was made"
    listed(st, clock)
    assert st.check() is None


def test_an_exit_lists_twice(world):
    k, clock, st = world
    k.add(T.EXIT, HOLDER, 5, 0, NS)            # recorded before the fd table goes
    assert st.check() == "a process exited"
    listed(st, clock)
    assert st.check() == "a change recorded before it was made"
    listed(st, clock)
    assert st.check() is None


def test_a_threads_own_table_dropped_is_a_socket_change(world):
    k, clock, st = world
    k.add(T.SOCK_PRE, STRANGER, 7, 0, 0, T.TABLE_NONE)     # any process: its thread's sockets
    assert st.check() is not None
    listed(st, clock)
    assert st.check() is not None


def test_a_process_that_let_go_while_it_listed_still_counts(world):
    k, clock, st = world
    k.add(T.FDS, HOLDER, 5, 33, NS)            # made during the listing that no longer sees it
    listed(st, clock, holders=())
    assert st.check() == "a process changed its fds or sockets"
    listed(st, clock, holders=())
    k.add(T.FDS, HOLDER, 5, 33, NS)            # after: it holds nothing any more
    assert st.check() is None


def test_a_process_named_while_it_listed_is_a_holder_after(world):
    k, clock, st = world
    k.add(T.FORK, HOLDER, 0, 301)              # a child the walk did not see
    listed(st, clock)
    assert st.check() is not None
    listed(st, clock)
    k.add(T.FDS, 301, 9, 33, NS)
    assert st.check() is None                  # the listing after saw it hold nothing


def test_the_namespaces_are_the_last_listings(world):
    k, clock, st = world
    listed(st, clock, netns=frozenset((OTHER_NS,)))     # polled from a thread elsewhere
    k.add(T.SOCK, netns=OTHER_NS, table=TCP)
    assert st.check() == "a socket changed"


def test_only_those_rows_are_volatile():
    assert not has_volatile_rows([Conn(s) for s in TCP_STATES if s not in
                                  ("SYN_RECV", "FIN_WAIT2", "TIME_WAIT", "NEW_SYN_RECV")])
    assert has_volatile_rows([Conn("LISTEN"), Conn("TIME_WAIT", TABLE_INDEX["mptcp6"])])
    assert not has_volatile_rows([Conn("TIME_WAIT", TABLE_INDEX["udp"])])   # not a TCP code there


def test_sctp_rows_keep_polls_listing(world):
    k, clock, st = world
    listed(st, clock, conns=[Conn("LISTEN", TABLE_INDEX["sctp"])])
    assert st.check() is not None
    listed(st, clock)
    assert st.check() is None


def test_a_failed_poll_lists_next_time(world):
    k, clock, st = world
    st.forget()
    assert st.check() == "the last poll failed"


def test_a_shared_fd_table_stops_tracking(world):
    k, clock, st = world
    k.add(T.FORK_SHARE, STRANGER, 0, 301)      # not a holder: cannot matter
    assert st.check() is None and st.off is None
    k.add(T.FORK_SHARE, HOLDER, 0, 301)
    assert st.check() is not None and "CLONE_FILES" in st.off


def test_a_tracked_answer_keeps_every_snapshot_attribute():
    """A tracked poll and a lookup from the tracked state are the last listing's
    sockets with all of its attributes (Snapshot._like), the per-table ones
    narrowed to the lookup's tables."""
    from procnet._records import Snapshot
    per_table = {"tcp": 1, "udp": 2}
    s = Snapshot([], denied_pids=(7,), skipped=dict(per_table),
                 tables={"tcp": "read", "udp": "missing"}, sources={"tcp": "netlink", "udp": "proc"},
                 backend="native", processes=3, pids_hidden=True, owner_source="procfs",
                 namespaces={5: None},
                 unlisted={"netlink": 1}, other_netns={9: 2})
    same = s._like(s)
    assert same is not s and list(same) == list(s)
    assert {a: getattr(same, a) for a in Snapshot.__slots__} == {a: getattr(s, a) for a in Snapshot.__slots__}
    narrowed = s._like([], ["udp"])
    assert (narrowed.skipped, narrowed.tables, narrowed.sources) == ({"udp": 2}, {"udp": "missing"},
                                                                     {"udp": "proc"})
    for a in set(Snapshot.__slots__) - {"skipped", "tables", "sources"}:
        assert getattr(narrowed, a) == getattr(s, a), a


# -- what a poll may list alone (carry): only sockets named, in listed namespaces --

TCP6, UDP6 = 1, 3     # listed with TCP and UDP: IPV6_ADDRFORM moves a socket between them


@pytest.mark.parametrize("rec, fresh, any_netns", [
    ((T.SOCK, STRANGER, 5, 0, NS, TCP), {NS: 1 << TCP | 1 << TCP6}, 0),
    ((T.NEW, STRANGER, 5, 41, NS, UDP), {NS: 1 << UDP | 1 << UDP6}, 0),
    ((T.FDS, HOLDER, 5, 3, NS, UDP), {NS: 1 << UDP | 1 << UDP6}, 0),     # a holder's close of a socket
])
def test_a_named_socket_lists_its_table_alone(world, rec, fresh, any_netns):
    k, clock, st = world
    k.add(*rec)
    assert st.check() is not None
    c = st.carry([NS])
    assert c == T.Carry(fresh, any_netns, (rec[1],))


@pytest.mark.parametrize("rec", [
    (T.SOCK, 0, 0, 0, 0, TCP),                        # namespace unknown
    (T.SOCK, 0, 0, 0, NS, T.TABLE_NONE),              # table unknown
    (T.FDS, HOLDER, 5, 33, NS, T.TABLE_NONE),         # a holder's dup2, exec...
    (T.EXIT, HOLDER, 5, 0, NS, T.TABLE_NONE),
    (T.FORK, HOLDER, 0, 300, 0, T.TABLE_NONE),
    (T.COMM, HOLDER, 0, 0, 0, T.TABLE_NONE),
])
def test_anything_else_lists_everything(world, rec):
    k, clock, st = world
    k.add(T.SOCK, STRANGER, 5, 0, NS, UDP)
    k.add(*rec)
    assert st.check() is not None
    assert st.carry([NS]) is None


def test_nothing_to_carry_when_clean_lost_resync_or_volatile(world):
    k, clock, st = world
    assert st.check() is None and st.carry([NS]) is None
    k.add(T.SOCK, STRANGER, 5, 0, NS, UDP)
    k.lost = 1
    st.check()
    assert st.carry([NS]) is None
    listed(st, clock)
    clock.now += 11
    k.add(T.SOCK, STRANGER, 5, 0, NS, UDP)
    assert st.check() is not None and st.carry([NS]) is None      # the resync is whole
    listed(st, clock, conns=[Conn("TIME_WAIT")])
    k.add(T.SOCK, STRANGER, 5, 0, NS, UDP)
    assert st.check() is not None and st.carry([NS]) is None


def test_a_carried_poll_does_not_put_off_the_resync(world):
    k, clock, st = world
    clock.now += 6
    k.add(T.SOCK, STRANGER, 5, 0, NS, UDP)
    st.check()
    assert st.carry([NS]) is not None
    st.listed(False, [HOLDER], clock(), frozenset((NS,)), whole=False)
    clock.now += 4.5
    assert st.check() == "periodic resync" and st.carry([NS]) is None


def test_unix_lists_in_every_namespace(world):
    """A unix row shows its peer, which may be another namespace's socket."""
    k, clock, _ = world
    st = T.TrackState(k.read, frozenset((TCP, UNIX)), None, clock=clock)
    listed(st, clock, netns=None)
    k.add(T.FDS, STRANGER, 5, 3, OTHER_NS, UNIX)
    k.add(T.SOCK, STRANGER, 5, 0, NS, TCP)
    st.check()
    assert st.carry([NS, OTHER_NS]) == T.Carry({NS: 1 << TCP | 1 << TCP6}, 1 << UNIX, (STRANGER,))
    assert st.carry([NS, OTHER_NS]).tables_in(OTHER_NS) == 1 << UNIX
    assert st.carry([0]) is None          # a namespace of unknown inode: nothing placed


def test_every_pid_named_is_read_again(world):
    """Records of processes that hold nothing still name whose fds to read:
    a fork's child, an exec -- any of them may hold a socket by the next listing."""
    k, clock, st = world
    k.add(T.FORK, STRANGER, 0, 301, 0, T.TABLE_NONE)
    k.add(T.FDS, 302, 302, 33, NS, T.TABLE_NONE)
    k.add(T.SOCK, 303, 303, 0, NS, UDP)
    st.check()
    assert st.carry([NS]).recheck == (STRANGER, 301, 302, 303)
    listed(st, clock)
    k.add(T.SOCK, 304, 304, 0, NS, UDP)
    st.check()
    assert st.carry([NS]).recheck == (304,)     # a listing reads them: they start afresh


def test_a_socket_changed_before_the_record_lists_its_table_twice(world):
    k, clock, st = world
    k.add(T.SOCK_PRE, STRANGER, 5, 0, NS, TCP)
    assert st.check() is not None
    assert st.carry([NS]).fresh == {NS: 1 << TCP | 1 << TCP6}
    st.listed(False, [HOLDER], clock(), frozenset((NS,)), whole=False)
    assert st.check() == "a change recorded before it was made"
    assert st.carry([NS]).fresh == {NS: 1 << TCP | 1 << TCP6}


def test_processes_sharing_an_fd_table_are_always_read_again(world):
    """clone(CLONE_FILES) of a process that holds nothing does not stop
    tracking, but a socket either makes is the other's too: both are read on
    every poll that carries, whatever the records name."""
    k, clock, st = world
    k.add(T.FORK_SHARE, STRANGER, 0, 301, 0, T.TABLE_NONE)
    assert st.check() is None and st.off is None
    listed(st, clock)
    k.add(T.SOCK, 301, 301, 0, NS, UDP)
    st.check()
    assert st.carry([NS]).recheck == (STRANGER, 301)
    listed(st, clock)
    k.add(T.SOCK, 500, 500, 0, NS, UDP)
    st.check()
    assert st.carry([NS]).recheck == (STRANGER, 301, 500)


def test_a_socket_leaving_a_listed_v6_table_counts(world):
    """IPV6_ADDRFORM moves a udp6/tcp6 socket to udp/tcp, and the record names
    where it ends: a poller of the v6 table alone must list it again."""
    k, clock, _ = world
    st = T.TrackState(k.read, frozenset((UDP6,)), frozenset((NS,)), clock=clock)
    listed(st, clock)
    k.add(T.SOCK, STRANGER, 5, 0, NS, UDP)
    assert st.check() is not None
    assert st.carry([NS]).fresh == {NS: 1 << UDP | 1 << UDP6}


def test_listing_every_namespace_sees_namespaces_come_and_go(world):
    """netns="all": a namespace made or entered by a process that holds no
    socket has rows no record names (its kernel netlink sockets), and the exit
    of a process in another namespace may have been its last member's."""
    k, clock, _ = world
    st = T.TrackState(k.read, frozenset((TCP, UDP)), None, clock=clock)
    st.listed(False, [HOLDER], clock(), None, found=frozenset((NS, OTHER_NS)), own=NS)
    assert st.check() is None
    k.add(T.FDS, STRANGER, 5, 33, NS, T.TABLE_NONE)          # a dup2 where it was: nothing
    k.add(T.EXIT, STRANGER, 5, 0, NS, T.TABLE_NONE)          # an exit in the poller's own
    assert st.check() is None
    NEW_NS = 4026539999
    for rec in [(T.FDS, STRANGER, 5, 272, NEW_NS, T.TABLE_NONE),     # unshare, setns
                (T.FORK, STRANGER, 0, 301, NEW_NS, T.TABLE_NONE),    # clone(CLONE_NEWNET)
                (T.EXIT, STRANGER, 5, 0, OTHER_NS, T.TABLE_NONE)]:   # its last member?
        st.listed(False, [HOLDER], clock(), None, found=frozenset((NS, OTHER_NS)), own=NS)
        k.add(*rec)
        assert st.check() is not None and st.carry([NS, OTHER_NS]) is None
    # a poller of given namespaces has no such rule: its namespaces are named
    st = T.TrackState(k.read, frozenset((TCP,)), frozenset((NS,)), clock=clock)
    listed(st, clock)
    k.add(T.FDS, STRANGER, 5, 272, NEW_NS, T.TABLE_NONE)
    assert st.check() is None
