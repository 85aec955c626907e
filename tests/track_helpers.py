"""What the change-tracking tests share (tests/test_track_*.py): a network
namespace of the test's own, waiting for a tracked poll, forked children, and
the comparison of a poll with a fresh snapshot of the namespace."""
import collections
import ctypes
import fcntl
import functools
import os
import signal
import socket
import struct
import threading
import time

import pytest

import procnet
from procnet import _tables
from procnet._records import R_STATE, R_TABLE

KIND = ("tcp", "udp", "unix")
libc = ctypes.CDLL(None, use_errno=True)


def lo_up_in_a_new_netns():
    """Move this thread (only) into a new network namespace, loopback up."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:                        # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, req))[1]   # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))   # SIOCSIFFLAGS: IFF_UP


def private_netns(test):
    """Run `test` on a thread unshared into a new network namespace, loopback up."""
    @functools.wraps(test)
    def run(*args, **kw):
        box = {}

        def body():
            try:
                try:
                    lo_up_in_a_new_netns()
                except OSError as e:
                    box["skip"] = "cannot unshare a network namespace: %s" % e
                    return
                test(*args, **kw)
            except BaseException as e:               # pytest's outcomes too: re-raised below
                box["error"] = e

        t = threading.Thread(target=body)
        t.start()
        t.join()
        if "skip" in box:
            pytest.skip(box["skip"])
        if "error" in box:
            raise box["error"]
    return run


def wait_tracked(p, budget=5.0):
    """Poll until a poll is answered from the tracked state, and return it. The
    host's socket holders make changes of their own (a busy machine for a second
    or more): pause a little between tries, and say why the polls listed (and
    which rows expire unreported) if none held."""
    why = collections.Counter()
    deadline = time.monotonic() + budget
    i = 0
    while True:
        r = p.poll()
        if r.tracked:
            return r
        why[r.listed_because] += 1
        if time.monotonic() >= deadline:
            break
        time.sleep(0.001 * (i % 10))
        i += 1
    volatile = [(c.proto, str(c.laddr), str(c.raddr), c.state) for c in r.snapshot
                if c.state in ("SYN_RECV", "FIN_WAIT2", "TIME_WAIT", "NEW_SYN_RECV")]
    pytest.fail("no poll was answered from the tracked state in %.0f s (tracking: %s); why they "
                "listed: %s; rows whose expiry is not reported: %s"
                % (budget, p.tracking, why.most_common(), volatile))


def rows(snap):
    """Every socket of the namespace as (table, inode, laddr, raddr, state, owners)."""
    return {(c.proto, c.inode, str(c.laddr), str(c.raddr), c.state,
             tuple(sorted((o.pid, o.fd, o.name) for o in c.owners))) for c in snap}


def fresh(kind=KIND):
    return rows(procnet.connections(kind, backend="native", owner_source="procfs"))


def tracked_poller(kind=KIND, **kw):
    p = procnet.Poller(kind, backend="native", track=True, **kw)
    assert p.tracking == "kernel"
    return p


def assert_next_poll_fresh(p, kind=KIND):
    r = p.poll()
    want = fresh(kind)          # after the poll: its own sockets are records too
    got = rows(r.snapshot)
    assert got == want, "tracked=%s only in poll %s, only in fresh %s" % (
        r.tracked, sorted(got - want), sorted(want - got))


def unshare_net():
    if libc.unshare(0x40000000) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")


def child(fn):
    """Fork a child running fn() then exiting; its pid."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn()
        except BaseException:
            code = 1
        os._exit(code)
    return pid


def reap(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    os.waitpid(pid, 0)


def no_stale_poll(scenario, tries=6):
    """Run `scenario` (returns the poll made right after its event and a fresh
    snapshot's rows taken after it) until its poll is answered from the tracked
    state: that one must equal the fresh rows. A poll that listed is checked too,
    and tried again: the host's own changes (a socket holder's fcntl anywhere)
    make a poll list and can hide a stale answer."""
    for attempt in range(tries):
        if attempt:
            lo_up_in_a_new_netns()      # nothing a try left behind (a FIN_WAIT2 row) stays
        r, want = scenario()
        got = rows(r.snapshot)
        assert got == want, "tracked=%s only in poll %s, only in fresh %s" % (
            r.tracked, sorted(got - want), sorted(want - got))
        if r.tracked:
            return


def xfail_bug(reason):
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason="bug: " + reason)


def poll_and_fresh(p, kind):
    r = p.poll()
    return r, fresh(kind)


# The rule the core counts rows whose leaving nothing reports by
# (pn_result.nvolatile, volatile_row in csrc/snapshot.c): TCP's and MPTCP's
# SYN_RECV, FIN_WAIT2, TIME_WAIT, NEW_SYN_RECV; any SCTP row.
VOLATILE_STATES = frozenset(_tables.TCP_STATES.index(n) for n in
                            ("SYN_RECV", "FIN_WAIT2", "TIME_WAIT", "NEW_SYN_RECV"))


def has_volatile_rows(rows_):
    """Does a listing (raw rows) hold any row the rule calls volatile?"""
    for r in rows_:
        if r[R_TABLE] in _tables.TCP_TABLES | _tables.MPTCP_TABLES:
            if r[R_STATE] in VOLATILE_STATES:
                return True
        elif r[R_TABLE] in _tables.SCTP_TABLES:
            return True
    return False
