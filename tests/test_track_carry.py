"""Tracked polls that list only what the kernel's records named (issue 18).

When every record that mattered named its socket's table and namespace, a
tracking Poller lists only those tables there, carries every other table's
rows from its last poll (PN_Q_CARRY), and reads the fds of only the processes
records named. Such a poll (``Poll.carried``) must still equal a fresh
snapshot, in its own namespace and across namespaces (netns="all"), and the
core's count of rows whose leaving nothing reports must follow the rule
track_helpers.has_volatile_rows states.
"""
import os
import socket
import time

import pytest

import procnet
from procnet._records import R_STATE, R_TABLE

from track_helpers import (has_volatile_rows, lo_up_in_a_new_netns, private_netns, reap, rows,
                           wait_tracked)

KIND = ("tcp", "udp", "unix")


def fresh_snapshot(kind, **kw):
    return procnet.connections(kind, backend="native", owner_source="procfs", **kw)


def runs(snap):
    """The order of (namespace, table) blocks: a carried poll keeps a whole listing's."""
    out = []
    for c in snap:
        if not out or out[-1] != (c.netns, c.proto):
            out.append((c.netns, c.proto))
    return out


def carried_polls_equal_fresh(p, event, kind, tries=20, **kw):
    """Make `event` happen and poll, until a poll carries; every poll must
    equal a fresh snapshot taken right after it. The host's socket holders
    make changes of their own that list everything: those polls are checked
    and tried again."""
    for _ in range(tries):
        wait_tracked(p)                 # the next change is the event's alone
        event()
        r = p.poll()
        snap = fresh_snapshot(kind, **kw)
        want = rows(snap)
        got = rows(r.snapshot)
        assert got == want, "carried=%s only in poll %s, only in fresh %s" % (
            r.carried, sorted(got - want), sorted(want - got))
        assert runs(r.snapshot) == runs(snap)
        if r.carried:
            assert not r.tracked and r.listed_because
            return r
    pytest.fail("no poll carried in %d tries" % tries)


@private_netns
def test_a_poll_lists_only_the_tables_records_named(tracking):
    held = []
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    pair = socket.socketpair()
    held += [lst, *pair]
    p = procnet.Poller(KIND, backend="native", track=True)
    try:
        assert p.tracking == "kernel"

        def udp_bound():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            held.append(s)
        r = carried_polls_equal_fresh(p, udp_bound, KIND)
        # the listener and the pair were carried over, owners joined again
        mine = {(c.inode, tuple(o.pid for o in c.owners)) for c in r.snapshot}
        for s in (lst, *pair):
            assert (os.fstat(s.fileno()).st_ino, (os.getpid(),)) in mine

        carried_polls_equal_fresh(p, lambda: held.pop().close(), KIND)

        def connect():
            c = socket.create_connection(lst.getsockname())
            a, _ = lst.accept()
            held.extend((c, a))
        carried_polls_equal_fresh(p, connect, KIND)
    finally:
        p.close()
        for s in held:
            s.close()


class NsChild:
    """A process in a network namespace of its own (loopback up) holding a
    bound UDP socket, that binds one more per command."""

    def __init__(self):
        r_cmd, self.w_cmd = os.pipe()
        self.r_ack, w_ack = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 0
            try:
                os.close(self.w_cmd)
                os.close(self.r_ack)
                lo_up_in_a_new_netns()
                held = []
                while True:
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.bind(("127.0.0.1", 0))
                    held.append(s)
                    os.write(w_ack, b"k")
                    if os.read(r_cmd, 1) != b"n":
                        break
            except BaseException:
                code = 1
            os._exit(code)
        os.close(r_cmd)
        os.close(w_ack)
        assert os.read(self.r_ack, 1) == b"k"
        self.netns = os.stat("/proc/%d/ns/net" % self.pid).st_ino

    def one_more(self):
        os.write(self.w_cmd, b"n")
        assert os.read(self.r_ack, 1) == b"k"

    def close(self):
        os.close(self.w_cmd)
        os.close(self.r_ack)
        reap(self.pid)


def test_a_change_in_one_namespace_carries_the_others(tracking):
    """netns="all": a socket made in one namespace lists that namespace's
    table alone; another namespace's rows are carried. (UDP alone: the host's
    namespace may hold TIME_WAIT rows of earlier tests, which list every poll.)"""
    busy, idle = NsChild(), None
    p = None
    try:
        idle = NsChild()
        busy.one_more()
        kind = ("udp",)
        p = procnet.Poller(kind, netns="all", backend="native", track=True)
        assert p.tracking == "kernel"
        r = carried_polls_equal_fresh(p, busy.one_more, kind, netns="all")
        assert any(c.netns == idle.netns and c.pids == (idle.pid,) for c in r.snapshot)
        assert sum(1 for c in r.snapshot if c.netns == busy.netns and c.proto == "udp") >= 2
    finally:
        if p is not None:
            p.close()
        for ch in (busy, idle):
            if ch is not None:
                ch.close()


@private_netns
def test_the_cores_volatile_count_follows_the_rule(tracking):
    """pn_result.nvolatile (csrc/snapshot.c) counts what has_volatile_rows
    calls rows whose leaving nothing reports: here a TIME_WAIT and its peer."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    c = socket.create_connection(lst.getsockname())
    a, _ = lst.accept()
    c.close()                           # the client closes first: FIN_WAIT2, then TIME_WAIT
    a.close()
    p = procnet.Poller(("tcp", "udp"), backend="native")
    try:
        deadline = time.monotonic() + 5
        while True:
            snap = p.poll().snapshot
            if any(x.state == "TIME_WAIT" for x in snap) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        raw = [tuple(x) for x in snap]
        want = sum(1 for x in raw if has_volatile_rows([x]))
        assert want >= 1
        assert p._volatile == want
        assert has_volatile_rows(raw)
        assert all(x[R_TABLE] is not None and x[R_STATE] is not None for x in raw)
    finally:
        p.close()
        lst.close()


def test_an_untracked_poll_never_carries():
    with procnet.Poller("udp", backend="native") as p:
        assert not p.poll().carried
        assert not p.poll().carried


@private_netns
def test_only_a_poll_that_listed_well_is_carried_from(tracking):
    from procnet._plan import plan
    with procnet.Poller(("tcp", "udp"), backend="native", track=True) as p:
        p.poll()
        pl = plan(p._qt, p._impl, cached=True, polling=True)
        last = p.last
        assert p._may_carry(last, pl)
        bad = last._like(last)
        bad.tables = dict(last.tables, udp="error")     # a failed table is listed again
        assert not p._may_carry(bad, pl)
        bad.tables, bad.skipped = dict(last.tables), {"udp": 1}    # so is a malformed one
        assert not p._may_carry(bad, pl)
        assert not p._may_carry(None, pl)
