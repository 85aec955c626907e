"""The Poller on live processes: after every step of a scripted churn, a poll
equals a fresh connections(), on both backends, and each change is reported
exactly once with the right socket and owners.

The steps are the ones that break naive caches: a fork sharing a listener, an
fd number of a *shared* socket reused for another socket by dup2 (the /proc
fd dentry and its inode number stay the same), an fd passed over a unix
socket, an exec that keeps the fds under a new name, closes and exits.
Comparisons are restricted to the actors' processes: the rest of the host may
change between two calls.
"""
import json
import os
import socket
import subprocess
import sys

import pytest

import procnet

pytestmark = pytest.mark.live

ACTOR = os.path.join(os.path.dirname(__file__), "poller_actor.py")
KIND = ("tcp", "udp", "unix")


class Actor:
    def __init__(self, ctrl: socket.socket, pid: int, proc=None) -> None:
        self.ctrl, self.pid, self.proc = ctrl, pid, proc

    @classmethod
    def spawn(cls) -> "Actor":
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        proc = subprocess.Popen([sys.executable, ACTOR, str(theirs.fileno())], pass_fds=[theirs.fileno()])
        theirs.close()
        hello = json.loads(mine.recv(4096))
        return cls(mine, hello["pid"], proc)

    def do(self, op: str, fds=(), **kw):
        socket.send_fds(self.ctrl, [json.dumps(dict(op=op, **kw)).encode()], list(fds))
        if op == "exit":
            return None
        return json.loads(self.ctrl.recv(4096))

    def fork(self) -> "Actor":
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.do("fork", fds=[theirs.fileno()])
        theirs.close()
        hello = json.loads(mine.recv(4096))
        return Actor(mine, hello["pid"])


def project(snap, pids):
    """inode -> sorted (pid, fd, name) of the actors, for sockets they hold."""
    out = {}
    for c in snap:
        mine = sorted((o.pid, o.fd, o.name) for o in c.owners if o.pid in pids)
        if mine:
            out[(c.proto, c.inode)] = (c.laddr, c.state, mine)
    return out


def events(poll, inodes):
    return sorted((c.event, c.conn.inode, [o[:2] for o in c.conn.owners],
                   [o[:2] for o in c.old.owners] if c.old is not None else None)
                  for c in poll.changes if c.conn.inode in inodes)


@pytest.fixture
def actors():
    made = []
    yield made
    for a in made:
        try:
            os.kill(a.pid, 9)
        except OSError:
            pass
        if a.proc is not None:
            a.proc.wait(timeout=10)


def test_poll_equals_fresh_snapshot_through_churn(actors, both, tmp_path):
    # the walk's owner cache is under test: "auto" could move a Poller to BPF
    pollers = [procnet.Poller(KIND, backend=b, owner_source="procfs") for b in ("native", "pure")]
    pids = set()

    def step(expect_events=None, watch=()):
        polls = [p.poll() for p in pollers]
        fresh = [procnet.connections(KIND, backend=b, owner_source="procfs") for b in ("native", "pure")]
        want = project(fresh[0], pids)
        assert project(fresh[1], pids) == want
        for p in polls:
            assert project(p.snapshot, pids) == want
        if expect_events is not None:
            for p in polls:
                assert events(p, set(watch)) == sorted(expect_events)
        # reported once: a second poll with nothing changed says nothing of them
        for p in pollers:
            again = p.poll()
            assert events(again, set(watch)) == []
        return polls

    step()
    a = Actor.spawn()
    actors.append(a)
    pids.add(a.pid)
    step()
    lst = a.do("listen")
    L, lfd = lst["inode"], lst["fd"]
    step([("open", L, [(a.pid, lfd)], None)], [L])

    b = a.fork()                          # b shares the listener
    actors.append(b)
    pids.add(b.pid)
    step([("owners", L, [(a.pid, lfd), (b.pid, lfd)], [(a.pid, lfd)])], [L])
    # the cache really is used: the actors that did nothing were not walked
    assert all(p.poll().procs_cached >= 2 for p in pollers)

    # a's fd number of the shared listener now holds a new socket
    N = a.do("dup2_new", fd=lfd)["inode"]
    step([("owners", L, [(b.pid, lfd)], [(a.pid, lfd), (b.pid, lfd)]),
          ("open", N, [(a.pid, lfd)], None)], [L, N])

    c = Actor.spawn()
    actors.append(c)
    pids.add(c.pid)
    step()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    U = os.fstat(u.fileno()).st_ino
    got = c.do("recv_fd", fds=[u.fileno()])          # passed over a unix socket
    u.close()
    step([("open", U, [(c.pid, got["fds"][0])], None)], [U])

    # exec keeps the fds, under a new name: not an owner change, but it shows
    link = str(tmp_path / "pnexec")
    os.symlink(sys.executable, link)
    b.ctrl.send(json.dumps({"op": "exec", "path": link}).encode())
    assert json.loads(b.ctrl.recv(4096))["ok"] == "exec"
    polls = step([], [L])
    with open("/proc/%d/comm" % b.pid) as f:
        comm = f.read().rstrip("\n")          # under qemu-user: the emulator's name
    if not os.environ.get("PROCNET_EMULATED"):
        assert comm == "pnexec"
    for p in polls:
        assert project(p.snapshot, pids)[("tcp", L)][2] == [(b.pid, lfd, comm)]

    a.do("close", fd=lfd)
    step([("close", N, [(a.pid, lfd)], None)], [N])

    many = [c.do("udp") for _ in range(20)]
    step([("open", m["inode"], [(c.pid, m["fd"])], None) for m in many], [m["inode"] for m in many])
    for m in many[:10]:
        c.do("close", fd=m["fd"])
    step([("close", m["inode"], [(c.pid, m["fd"])], None) for m in many[:10]],
         [m["inode"] for m in many])

    b.do("exit")                          # the last holder of the listener
    for _ in range(100):
        if not os.path.exists("/proc/%d" % b.pid):
            break
        import time
        time.sleep(0.02)
    step([("close", L, [(b.pid, lfd)], None)], [L])

    # a process that starts and ends between two polls leaves no trace
    d = Actor.spawn()
    d.do("listen")
    d.do("exit")
    d.proc.wait(timeout=10)
    step()
    for p in pollers:
        p.close()


REUSE = r"""
import os, signal, sys, time
import procnet
sys.path.insert(0, sys.argv[2])
from live_sockets import sleeping_holder

def holder():
    pid, ino, _ = sleeping_holder()
    return pid, ino

def owners(poll):
    return {c.inode: [o.pid for o in c.owners] for c in poll.snapshot}

p = procnet.Poller("tcp", backend=sys.argv[1])
a, a_ino = holder()
time.sleep(0.3)
p.poll()
assert p.poll().procs_cached >= 1 and owners(p.poll())[a_ino] == [a]
os.kill(a, signal.SIGKILL)
os.waitpid(a, 0)
with open("/proc/sys/kernel/ns_last_pid", "w") as f:
    f.write(str(a - 1))
b, b_ino = holder()
assert b == a, (a, b)
time.sleep(0.3)
got = owners(p.poll())
assert got.get(b_ino) == [b] and a_ino not in got, got
print("ok")
"""


@pytest.mark.parametrize("backend", ["native", "pure"])
def test_a_reused_pid_is_walked(backend):
    """A real pid reuse: in a pid namespace of its own (ns_last_pid), a
    sleeping holder is killed and another takes its pid; the poll after
    names the new one's socket and not the old one's."""
    import shutil
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1)")
    out = subprocess.run(["unshare", "-pf", "--mount-proc", sys.executable, "-c", REUSE, backend,
                          os.path.dirname(__file__)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
