"""The Poller (issue 8): steady polls, polls under churn and warm lookups vs a full snapshot.

Group "poll" per scale, all native, netlink listing (the same socket source):
- poll_full: procnet.connections("all") with the /proc walk -- the reference;
- poll_full_bpf: the same with the BPF owner source (for comparison);
- poll_steady: Poller("all").poll() with nothing changed since the last poll;
- poll_churn_1pct: the same after 1 % of the host's sockets were replaced
  (closed, and as many new ones bound) by one process -- a busy server among
  idle ones; the replacing is not timed;
- lookup_warm: Poller.lookup(lport=P, kind="tcp") for one listening port,
  after a poll;
- poll_steady_tracked, poll_churn_1pct_tracked, lookup_warm_tracked: the same
  with Poller(track=True) (issue 18: the kernel says what changed; skipped
  where tracking cannot load). The churner's records name UDP sockets only,
  so a tracked poll after churn lists the UDP table alone and reads only the
  processes records named (Poll.carried), carrying the rest;
- poll_churn_1pct_tcp_tracked: the same with TCP listeners replaced: the
  TCP table, the host's largest, is listed again.

Group "syscall cost" (issue 18's price): one getppid() from Python with and
without a tracking Poller alive (its tracepoints run on every syscall).
"""
import os
import socket

import pytest

import procnet

from conftest import group


class Churner:
    """A child process holding n bound UDP sockets (or TCP listeners),
    replacing them all on request."""

    def __init__(self, n: int, tcp: bool = False) -> None:
        self.n = n
        self.ctl, theirs = socket.socketpair()
        self.pid = os.fork()
        if self.pid == 0:
            self.ctl.close()
            self._serve(theirs, n, tcp)
        theirs.close()
        self.ctl.recv(1)

    @staticmethod
    def _serve(ctl: socket.socket, n: int, tcp: bool) -> None:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        held = []
        try:
            while True:
                for s in held:
                    s.close()
                held = []
                for _ in range(n):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
                    s.bind(("127.0.0.1", 0))
                    if tcp:
                        s.listen()
                    held.append(s)
                ctl.send(b"k")
                if not ctl.recv(1):
                    break
        finally:
            os._exit(0)

    def replace(self) -> None:
        self.ctl.send(b"r")
        self.ctl.recv(1)

    def close(self) -> None:
        self.ctl.close()
        os.waitpid(self.pid, 0)


@pytest.fixture(scope="module")
def churner(workload):
    c = Churner(max(1, workload.host_sockets // 100))
    yield c
    c.close()


@pytest.fixture
def tcp_churner(workload):
    c = Churner(max(1, workload.host_sockets // 100), tcp=True)
    yield c
    c.close()


@pytest.fixture
def poller():
    p = procnet.Poller("all", backend="native")
    p.poll()
    p.poll()
    yield p
    p.close()


def test_poll_full(benchmark, workload, churner):
    group(benchmark, "poll", workload)
    benchmark(procnet.connections, "all", backend="native", owner_source="procfs")


def test_poll_full_bpf(benchmark, workload, churner):
    from procnet import _native, _plan
    if not _plan.bpf_status(_native)[0]:
        pytest.skip("BPF owner source unavailable")
    group(benchmark, "poll", workload)
    benchmark(procnet.connections, "all", backend="native", owner_source="bpf")


def test_poll_steady(benchmark, workload, churner, poller):
    group(benchmark, "poll", workload)
    r = benchmark(poller.poll)
    benchmark.extra_info["procs_cached"] = r.procs_cached
    benchmark.extra_info["fds_read"] = r.fds_read
    assert set(workload.expected) <= {c.inode for c in r.snapshot}


def test_poll_churn_1pct(benchmark, workload, churner, poller):
    group(benchmark, "poll", workload)
    r = benchmark.pedantic(poller.poll, setup=churner.replace, rounds=20, iterations=1)
    benchmark.extra_info["procs_cached"] = r.procs_cached
    benchmark.extra_info["fds_read"] = r.fds_read
    benchmark.extra_info["changes"] = len(r.changes)
    assert len(r.opened) >= churner.n


@pytest.fixture
def tracked():
    p = procnet.Poller("all", backend="native", track="auto")
    if p.tracking != "kernel":
        pytest.skip("change tracking unavailable: " + p.tracking)
    settle(p)
    yield p
    p.close()


def settle(p) -> None:
    """Poll until a poll is answered from the tracked state. Again in the
    test's body: pytest's output capture dup2()s over fds 1 and 2 between a
    fixture and the test, a change of this socket-holding process."""
    for _ in range(20):
        if p.poll().tracked:
            return


def test_poll_steady_tracked(benchmark, workload, churner, tracked):
    group(benchmark, "poll", workload)
    settle(tracked)
    r = benchmark(tracked.poll)
    benchmark.extra_info["tracked"] = r.tracked
    assert set(workload.expected) <= {c.inode for c in r.snapshot}


def test_poll_churn_1pct_tracked(benchmark, workload, churner, tracked):
    group(benchmark, "poll", workload)
    r = benchmark.pedantic(tracked.poll, setup=churner.replace, rounds=20, iterations=1)
    benchmark.extra_info["tracked"] = r.tracked
    benchmark.extra_info["carried"] = r.carried
    benchmark.extra_info["changes"] = len(r.changes)
    assert len(r.opened) >= churner.n


def test_poll_churn_1pct_tcp_tracked(benchmark, workload, churner, tcp_churner, tracked):
    group(benchmark, "poll", workload)
    settle(tracked)
    r = benchmark.pedantic(tracked.poll, setup=tcp_churner.replace, rounds=20, iterations=1)
    benchmark.extra_info["carried"] = r.carried
    benchmark.extra_info["changes"] = len(r.changes)
    assert len(r.opened) >= tcp_churner.n


def test_lookup_warm_tracked(benchmark, workload, churner, tracked):
    group(benchmark, "poll", workload)
    settle(tracked)
    port = next(c.laddr.port for c in tracked.last
                if c.inode in workload.expected and c.proto == "tcp" and c.state == "LISTEN")
    got = benchmark(tracked.lookup, kind="tcp", lport=port, state="LISTEN")
    benchmark.extra_info["listing_because"] = tracked._track.dirty if tracked._track else tracked.tracking
    fresh = procnet.connections("tcp", lport=port, state="LISTEN")
    assert sorted(c.inode for c in got) == sorted(c.inode for c in fresh)


def _getppid_loop(n: int = 10000) -> None:
    for _ in range(n):
        os.getppid()


def test_syscalls_untracked(benchmark):
    benchmark.group = "syscall cost (10 000 getppid)"
    benchmark(_getppid_loop)


def test_syscalls_tracked(benchmark, tracked):
    benchmark.group = "syscall cost (10 000 getppid)"
    benchmark(_getppid_loop)


def test_lookup_warm(benchmark, workload, churner, poller):
    group(benchmark, "poll", workload)
    port = next(c.laddr.port for c in poller.last
                if c.inode in workload.expected and c.proto == "tcp" and c.state == "LISTEN")
    got = benchmark(poller.lookup, kind="tcp", lport=port, state="LISTEN")
    # at 50k the workers' own 127.10.x.y addresses make a port listened on more than once
    fresh = procnet.connections("tcp", lport=port, state="LISTEN")
    assert sorted(c.inode for c in got) == sorted(c.inode for c in fresh)
    assert all(c.owners for c in got if c.inode in workload.expected) and len(got) >= 1
