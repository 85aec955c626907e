"""Change tracking in the kernel (Poller(track=...)) on live processes.

After every step of a scripted churn -- listen, connect and accept, fork, dup2
over a shared socket's fd, SCM_RIGHTS, exec with and without close-on-exec,
close_range, a thread making a socket, prctl renames, UDP autobind by sendto,
exits -- a tracking poll equals a fresh connections() on the actors' sockets
(addresses, states, owners; not tx/rx_queue, which tracking samples). Then
what must end in a full listing: records lost to a full ring buffer, a program
that fails to attach, an fd table shared between processes. And lookups from
the tracked state.

Each test runs on a thread of its own in a network namespace of its own
(the actors it forks are in it too, and the Poller lists it): the host's
TIME_WAIT rows, which make every poll list (their expiry is not reported),
and its traffic stay out. Needs what tracking needs (root, BTF, libbpf,
tracepoints): skipped otherwise with the reason.
"""
import ctypes
import functools
import json
import os
import socket
import sys
import threading

import pytest

import procnet
from procnet import _native
from procnet._errors import ProcNetError

from test_poller_live import ACTOR, Actor, actors, project  # noqa: F401  (actors: a fixture)
from track_helpers import private_netns, wait_tracked

pytestmark = pytest.mark.live

# not unix: this process's own control sockets with the actors are unix ones,
# and each change of theirs would make a poll list, hiding whether the
# actors' own changes were recorded
KIND = ("tcp", "udp")


def fresh(pids):
    return project(procnet.connections(KIND, backend="native", owner_source="procfs"), pids)


def tracked_poller(**kw):
    p = procnet.Poller(KIND, backend="native", track=True, **kw)
    assert p.tracking == "kernel"
    return p


def settle(p, pids, want):
    """wait_tracked(p), and its snapshot's sockets of `pids` are `want`. No fresh
    snapshot in between: it would be a change of its own."""
    r = wait_tracked(p)
    assert project(r.snapshot, pids) == want
    return r


@private_netns
def test_tracked_polls_equal_fresh_snapshots_through_churn(tracking, actors, tmp_path):
    p = tracked_poller()
    pids = set()

    def step(recorded=True):
        """After a change of the actors: the very next poll shows it, and it
        listed because of a record (a fresh snapshot of this process's is no
        change of the listed tables); then it settles on the new state."""
        want = fresh(pids)
        r = p.poll()
        assert project(r.snapshot, pids) == want
        if recorded:
            assert not r.tracked, "the change went unrecorded"
        settle(p, pids, want)
        return r

    step(recorded=False)
    a = Actor.spawn()                  # holds no tcp or udp socket: nothing listed changes
    actors.append(a)
    pids.add(a.pid)
    step(recorded=False)
    quiet = settle(p, pids, fresh(pids))
    assert quiet.changes == () and quiet.tracked

    lst = a.do("listen")
    L, lfd = lst["inode"], lst["fd"]
    step()
    b = a.fork()                                   # b shares the listener
    actors.append(b)
    pids.add(b.pid)
    step()
    N = a.do("dup2_new", fd=lfd)["inode"]          # a shared socket's fd number reused
    r = step()
    assert N in {c.inode for c in r.snapshot}

    c = Actor.spawn()
    actors.append(c)
    pids.add(c.pid)
    step(recorded=False)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    got = c.do("recv_fd", fds=[u.fileno()])        # SCM_RIGHTS
    u.close()
    step()

    port = a.do("listen")["fd"]
    lport = [s.laddr.port for s in procnet.connections("tcp", pid=a.pid) if s.state == "LISTEN"]
    conn = c.do("connect", port=max(lport))        # connect; a's listener has it in its queue
    step()
    c.do("reset", fd=conn["fd"])                   # a's end leaves on the RST: the network's doing
    step()

    th = c.do("thread_socket")                     # a socket made by another thread
    step()
    c.do("rename", name="pn-renamed")
    step()
    c.do("rename", name="pn-renamed")           # the same name: a record, no change
    step(recorded=False)
    ab = c.do("autobind")                          # unbound: in no table
    step()
    c.do("sendto", fd=ab["fd"], port=9)            # sendto binds it
    r = step()
    assert any(x.inode == ab["inode"] and x.laddr.port for x in r.snapshot)

    lo = min(got["fds"][0], th["fd"], ab["fd"])
    c.do("close_range", lo=lo, hi=lo + 64)
    step()

    link = str(tmp_path / "pnexec")
    os.symlink(sys.executable, link)
    b.ctrl.send(json.dumps({"op": "exec", "path": link}).encode())
    assert json.loads(b.ctrl.recv(4096))["ok"] == "exec"       # same fds, a new name
    step()
    a.ctrl.send(json.dumps({"op": "exec_cloexec", "path": link, "drop": [lfd, port]}).encode())
    assert json.loads(a.ctrl.recv(4096))["ok"] == "exec"       # close-on-exec drops two
    step()

    b.do("exit")
    c.do("exit")
    a.do("exit")
    for x in (a, c):
        x.proc.wait(timeout=10)
    # b is a's child, not ours: its control socket closing says its fds are gone
    # (else a fresh snapshot may still see them, and the poll after it not)
    b.ctrl.settimeout(10)
    assert b.ctrl.recv(4096) == b""
    step()
    p.close()
    assert p.tracking.startswith("off")


@private_netns
def test_a_tcp_state_change_is_listed_in_this_poll_and_the_next(tracking):
    p = tracked_poller()
    settle(p, set(), {})
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cl = socket.create_connection(srv.getsockname())
    acc, _ = srv.accept()
    try:
        r = p.poll()
        assert not r.tracked and r.listed_because == "a process gained a socket"   # socket()
        assert p._track.dirty == "a change recorded before it was made"
        r = p.poll()                         # the tracepoint fires before the state is stored
        assert not r.tracked and r.listed_because == "a change recorded before it was made"
        r = settle(p, set(), {})
        assert r.listed_because is None
    finally:
        for s in (cl, acc, srv):
            s.close()
        p.close()


@private_netns
def test_lost_records_end_in_a_full_listing(tracking, monkeypatch):
    monkeypatch.setattr(_native, "open_tracker",
                        functools.partial(_native.open_tracker, ringbuf_bytes=4096))
    p = tracked_poller()
    mine = {os.getpid()}
    settle(p, mine, fresh(mine))
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    for _ in range(3000):                       # ~6 000 records into a one-page ring buffer
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
    assert p._track is not None
    p._track.absorb()
    assert p._track.dirty and "lost" in p._track.dirty
    r = p.poll()
    assert not r.tracked
    assert project(r.snapshot, mine) == fresh(mine)
    held.close()
    p.close()


@pytest.mark.parametrize("prog", ["pn_track_sys_exit", "pn_track_set_state", "pn_track_fork"])
@private_netns
def test_a_program_that_fails_to_attach_means_no_tracking(tracking, monkeypatch, prog):
    monkeypatch.setattr(_native, "open_tracker", functools.partial(_native.open_tracker, skip=prog))
    with pytest.raises(ProcNetError, match=prog):
        procnet.Poller(KIND, backend="native", track=True)
    p = procnet.Poller(KIND, backend="native", track="auto")
    assert p.tracking.startswith("off: ") and prog in p.tracking
    mine = {os.getpid()}
    for _ in range(3):
        r = p.poll()
        assert not r.tracked and project(r.snapshot, mine) == fresh(mine)
    p.close()


@private_netns
def test_a_shared_fd_table_across_processes_stops_tracking(tracking):
    import platform
    nr = {"x86_64": 56, "aarch64": 220}.get(platform.machine())
    if nr is None:
        pytest.skip("clone's number and argument order on %s" % platform.machine())
    p = tracked_poller()
    keep = socket.socket()
    keep.bind(("127.0.0.1", 0))
    keep.listen()
    settle(p, {os.getpid()}, fresh({os.getpid()}))
    libc = ctypes.CDLL(None, use_errno=True)
    # clone(CLONE_FILES | SIGCHLD): a child process sharing this fd table
    pid = libc.syscall(nr, 0x400 | 17, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    assert pid > 0, os.strerror(ctypes.get_errno())
    os.waitpid(pid, 0)
    r = p.poll()
    assert not r.tracked and p.tracking.startswith("off: ") and "CLONE_FILES" in p.tracking
    assert project(r.snapshot, {os.getpid()}) == fresh({os.getpid()})
    keep.close()
    p.close()


@private_netns
def test_lookup_answers_from_the_tracked_state(tracking, monkeypatch):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    p = tracked_poller()
    settle(p, {os.getpid()}, fresh({os.getpid()}))
    calls = []
    real = _native.snapshot
    monkeypatch.setattr(_native, "snapshot", lambda *a, **k: calls.append(1) or real(*a, **k))
    for filters in ({"lport": port}, {"kind": "tcp", "lport": port, "state": "LISTEN"},
                    {"kind": "tcp", "state": "LISTEN"}, {"kind": "udp"}):
        got = None
        for _ in range(50):                     # the host may make changes of its own
            calls.clear()
            got = p.lookup(**filters)
            if not calls:
                break
            p.poll()
        assert not calls, "every lookup listed: %s" % p._track.dirty
        args = dict(kind=KIND)
        args.update(filters)
        want = procnet.connections(backend="native", owner_source="procfs", **args)
        mine = {os.getpid()}
        assert project(got, mine) == project(want, mine)
        assert got.tables == want.tables
    got = p.lookup(pid=os.getpid())            # not a narrowing of the poll: the core answers
    assert calls
    srv.close()
    p.close()


def test_tracking_is_refused_where_it_cannot_be_exact(tmp_path):
    (tmp_path / "net").mkdir()
    p = procnet.Poller("tcp", proc_root=str(tmp_path), track="auto")
    assert p.tracking.startswith("off: ") and "live /proc" in p.tracking
    with pytest.raises(ProcNetError, match="live /proc"):
        procnet.Poller("tcp", proc_root=str(tmp_path), track=True)
    with pytest.raises(ProcNetError, match="owner_source='bpf'"):
        procnet.Poller("tcp", owner_source="bpf", track=True)
    p = procnet.Poller("tcp", backend="pure", track="auto")
    assert p.tracking.startswith("off: ") and "pure" in p.tracking
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="track"):
            procnet.Poller("tcp", track=bad)
    for bad in (0, -1, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="resync"):
            procnet.Poller("tcp", track="auto", resync=bad)


def test_thread_exits_are_recorded_for_the_leader_and_the_last_thread(tracking):
    """A thread that exits leaves the fd table it shares: no record (a pool's
    threads would make every poll list). The leader's exit (a zombie leader
    shows no fds) and the last thread's (the table goes) are recorded."""
    import time
    t, why = _native.open_tracker()
    assert t is not None, why
    try:
        t.read()
        threads = [threading.Thread(target=lambda: None) for _ in range(5)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        pid = os.fork()
        if pid == 0:                      # the leader exits first, its thread later
            try:
                threading.Thread(target=lambda: (time.sleep(0.3), os._exit(0))).start()
                ctypes.CDLL(None).syscall({"x86_64": 60, "aarch64": 93}.get(os.uname().machine, 60), 0)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        recs, _ = t.read()
        exits = lambda who: sorted(r[2] for r in recs if r[0] == 3 and r[1] == who)  # noqa: E731
        assert exits(os.getpid()) == []
        assert len(exits(pid)) == 2 and pid in exits(pid)
    finally:
        t.close()


def test_fcntl_is_recorded_only_when_it_duplicates(tracking):
    """fcntl(F_SETFL, O_NONBLOCK) on a socket is what servers do all the time
    and changes no fd table: no record; F_DUPFD_CLOEXEC makes an fd: one."""
    import fcntl
    t, why = _native.open_tracker()
    assert t is not None, why
    s = socket.socket()
    try:
        t.read()
        fcntl.fcntl(s.fileno(), fcntl.F_SETFL, fcntl.fcntl(s.fileno(), fcntl.F_GETFL) | os.O_NONBLOCK)
        assert [r for r in t.read()[0] if r[1] == os.getpid() and r[0] == 2] == []
        d = fcntl.fcntl(s.fileno(), fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(d)
        kinds = [r[0] for r in t.read()[0] if r[1] == os.getpid()]
        assert kinds.count(2) == 2              # the dup, and the close of a socket fd
    finally:
        s.close()
        t.close()


def _vandalize(snap):
    """What a caller may do to a snapshot it was handed."""
    snap.clear()
    for d in (snap.tables, snap.sources, snap.namespaces, snap.other_netns):
        d.clear()
    snap.skipped["tcp"] = 7
    snap.unlisted["TCP"] = 99


@private_netns
def test_a_callers_changes_to_a_poll_are_not_the_next_polls(tracking):
    """A poll answered from the tracked state, and a lookup, come from the
    poller's own rows and attributes, not from the snapshot it handed out."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    mine = {os.getpid()}
    p = tracked_poller()
    try:
        settle(p, mine, fresh(mine))
        for _ in range(50):                         # the host may make changes of its own
            _vandalize(p.poll().snapshot)
            r = p.poll()
            if r.tracked:
                break
        assert r.tracked, p._track.dirty
        want = procnet.connections(KIND, backend="native", owner_source="procfs")
        assert project(r.snapshot, mine) == project(want, mine) != {}
        for a in ("tables", "sources", "skipped", "unlisted", "namespaces"):
            assert getattr(r.snapshot, a) == getattr(want, a), a
        _vandalize(r.snapshot)
        got = p.lookup(lport=port)
        assert [c.inode for c in got] == [c.inode for c in want if c.laddr.port == port]
        assert got.tables == want.tables and got.skipped == {}
    finally:
        srv.close()
        p.close()
