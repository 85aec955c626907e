"""The churn generator for tests/test_churn.py (stdlib only, run as a script).

In a session of its own, made a child subreaper, it forks short-lived
children (at most CHURN_CAP at a time) that open loopback/unix sockets, hand
one to a sibling with SCM_RIGHTS, dup2 one socket over another's fd number,
fork a grandchild that shares them, close some and exit. Every process logs
its ground truth before it exits -- each (pid, fd, socket inode) it held and
from when to when -- and whoever reaps a process logs its lifetime.
See test_churn.py for how the log is checked.

    python churn_generator.py SECONDS LOG_PATH CAP SEED
"""
import gc
import json
import os
import random
import socket
import stat
import sys
import time

COMM = "pnchurn"            # the churn processes' name (inherited from the generator)
CHURN_CAP = 24              # churn children alive at once (each may add one grandchild)
FIXED_FD = 60               # a free fd number children dup2 onto
monotonic = time.monotonic


# ---------------------------------------------------------------------------
# The generator and its children (stdlib only: run as a script, no pytest).

class _Truth:
    """The sockets one process holds, and the ground-truth lines it will log.

    Every (fd, socket) gets two intervals: an outer one, surely containing the
    time it was held (clock read before it was opened, after it was closed),
    and an inner one, surely inside it (after it was opened, before it was
    closed). Sockets are kept referenced so the GC never closes one unlogged.
    A third time bounds when the socket is surely in the kernel's tables: one
    end of a connected tcp pair leaves them (reset, CLOSE) when the other end
    closes, though its fd is still held.
    """

    def __init__(self, t_fork: float) -> None:
        t_in = monotonic()      # after the fork: every inherited fd is held now
        self.pid = os.getpid()
        self.held = {}          # fd -> (inode, t_open, t_in_open, how)
        self.keep = []
        self.lines = []
        self.peer = {}          # fd -> fd of the other end of a tcp connection
        self.unlisted = {}      # fd -> time after which its socket may be out of the tables
        # whatever socket fds came with the fork, held since (at most) t_fork
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            try:
                st = os.fstat(fd)
            except OSError:
                continue        # the listing's own directory fd, closed by now
            if stat.S_ISSOCK(st.st_mode):
                self.held[fd] = (st.st_ino, t_fork, t_in, "inherited")

    def add(self, fd: int, t_open: float, how: str) -> None:
        """fd holds a socket now, and did not before t_open."""
        assert fd not in self.held, (fd, self.held)
        ino = os.fstat(fd).st_ino
        self.held[fd] = (ino, t_open, monotonic(), how)

    def drop(self, fd: int, t_in_close: float) -> None:
        """fd's socket, held until at least t_in_close, is no longer held."""
        ino, t_open, t_in_open, how = self.held.pop(fd)
        other = self.peer.pop(fd, None)
        if other is not None:
            del self.peer[other]
            self.unlisted[other] = t_in_close
        listed = min(t_in_close, self.unlisted.pop(fd, t_in_close))
        self.lines.append("T %d %d %d %r %r %s %r %r %r\n" % (
            self.pid, fd, ino, t_open, monotonic(), how, t_in_open, t_in_close, listed))

    def sock(self, make, how: str = "new") -> socket.socket:
        t0 = monotonic()
        s = make()
        self.keep.append(s)
        self.add(s.fileno(), t0, how)
        return s

    def close(self, s: socket.socket) -> None:
        fd, t = s.fileno(), monotonic()
        s.close()
        self.drop(fd, t)

    def close_fd(self, fd: int) -> None:
        t = monotonic()
        os.close(fd)
        self.drop(fd, t)

    def dup2(self, src: int, dst: int) -> None:
        """dup2 src over dst; a socket object that owned dst must be detach()ed first."""
        t0 = monotonic()
        os.dup2(src, dst)
        if dst in self.held:
            self.drop(dst, t0)
        self.add(dst, t0, "dup2")

    def lifetime(self, pid: int, t_fork: float, t_reap: float, status: int) -> None:
        self.lines.append("L %d %r %r %d\n" % (pid, t_fork, t_reap, status))

    def dump(self) -> bytes:
        """The log lines; sockets still held are held until exit ("-": the reaper knows when)."""
        t_in = monotonic()
        tail = ["T %d %d %d %r - %s %r %r %r\n" % (self.pid, fd, ino, t0, how, t_in0, t_in,
                                                    min(t_in, self.unlisted.get(fd, t_in)))
                for fd, (ino, t0, t_in0, how) in sorted(self.held.items())]
        return "".join(self.lines + tail).encode()


_HAVE_V6 = False


def _tcp_listen() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    return s


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def _udp6() -> socket.socket:
    if not _HAVE_V6:
        return _udp()
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("::1", 0))
    return s


def _unix_dgram() -> socket.socket:
    return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)


_LINGER0 = (1).to_bytes(4, sys.byteorder) + (0).to_bytes(4, sys.byteorder)   # struct linger {1, 0}


def _open_some(tr: _Truth, rng: random.Random, k: int) -> list:
    out = []
    for _ in range(k):
        what = rng.randrange(6)
        if what == 0:
            out.append(tr.sock(_tcp_listen))
        elif what == 1:
            out.append(tr.sock(_udp))
        elif what == 2:
            out.append(tr.sock(_udp6))
        elif what == 3:
            out.append(tr.sock(_unix_dgram))
        elif what == 4:
            t0 = monotonic()
            p, q = socket.socketpair()
            tr.keep += [p, q]
            tr.add(p.fileno(), t0, "new")
            tr.add(q.fileno(), t0, "new")
            out += [p, q]
        else:
            # a connected tcp pair; RST on close (linger 0) leaves no TIME_WAIT behind
            lst = tr.sock(_tcp_listen)
            c = tr.sock(lambda: socket.create_connection(lst.getsockname()))
            a = tr.sock(lambda: lst.accept()[0])
            for s in (c, a):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
            tr.peer[c.fileno()], tr.peer[a.fileno()] = a.fileno(), c.fileno()
            out += [lst, c, a]
    return out


def _nap(rng: random.Random) -> None:
    time.sleep(rng.uniform(0, 0.006))


def _role_plain(tr, rng, log_fd):
    socks = _open_some(tr, rng, rng.randint(1, 3))
    _nap(rng)
    for s in socks:
        if rng.random() < 0.4:
            tr.close(s)
    if rng.random() < 0.5:
        _open_some(tr, rng, 1)          # likely reuses a freed fd number
    _nap(rng)


def _role_dup2(tr, rng, log_fd):
    a = tr.sock(rng.choice((_tcp_listen, _udp, _udp6, _unix_dgram)))
    b = tr.sock(rng.choice((_tcp_listen, _udp, _udp6, _unix_dgram)))
    _nap(rng)
    dst = a.detach()                    # dst's socket is closed by the dup2 itself
    tr.dup2(b.fileno(), dst)
    if rng.random() < 0.5:
        tr.close(b)
    if rng.random() < 0.5:
        tr.dup2(dst, FIXED_FD)          # a second name for it, at a high number
        if rng.random() < 0.5:
            c = tr.sock(_udp)
            tr.dup2(c.fileno(), FIXED_FD)   # ... replaced by yet another socket
    _nap(rng)


def _role_fork(tr, rng, log_fd):
    _open_some(tr, rng, rng.randint(1, 2))
    t_fork = monotonic()
    pid = os.fork()
    if pid == 0:
        _run_child(_role_plain, t_fork, log_fd, rng.getrandbits(32), ())
    _nap(rng)
    _, status = os.waitpid(pid, 0)
    tr.lifetime(pid, t_fork, monotonic(), status)


def _role_send(tr, rng, log_fd, a, b):
    tr.close(b)                         # the receiver's end
    x = tr.sock(rng.choice((_tcp_listen, _udp, _udp6, _unix_dgram)))
    try:
        socket.send_fds(a, [b"x"], [x.fileno()])
    except (BrokenPipeError, ConnectionResetError):
        pass                            # no receiver: its fork failed
    if rng.random() < 0.5:
        tr.close(x)                     # the receiver's copy lives on
    _nap(rng)


def _role_recv(tr, rng, log_fd, a, b):
    tr.close(a)                         # the sender's end
    b.settimeout(10)
    t0 = monotonic()
    _msg, fds, _flags, _addr = socket.recv_fds(b, 16, 4)
    for fd in fds:
        tr.add(fd, t0, "received")
    if fds and rng.random() < 0.5:
        tr.dup2(fds[0], FIXED_FD)
        tr.close_fd(fds[0])
    _nap(rng)


def _run_child(role, t_fork: float, log_fd: int, seed: int, args: tuple) -> None:
    """The body of every forked churn process; never returns."""
    status = 1
    tr = None
    try:
        tr = _Truth(t_fork)
        role(tr, random.Random(seed), log_fd, *args)
        status = 0
    except BaseException as e:          # logged, and the exit status says so
        try:
            msg = "E %d %s: %s\n" % (os.getpid(), role.__name__, repr(e).replace("\n", " "))
            os.write(log_fd, msg.encode())
        except BaseException:
            pass
    finally:
        try:
            if tr is not None:
                os.write(log_fd, tr.dump())
        finally:
            os._exit(status)


def _generator_main(argv) -> int:
    global _HAVE_V6
    duration, log_path, cap, seed, t_start = (float(argv[0]), argv[1], int(argv[2]),
                                              int(argv[3]), float(argv[4]))
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(COMM)
    except OSError:
        pass
    try:   # orphans (a grandchild outliving its parent) come back to us: counted, reaped
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)      # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass
    me = _Truth(t_start)                # our own sockets are ground truth too
    t0 = monotonic()
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:
        probe = None
    if probe is not None:
        me.keep.append(probe)
        me.add(probe.fileno(), t0, "probe")
        try:
            probe.bind(("::1", 0))
            _HAVE_V6 = True
        except OSError:
            pass
        me.close(probe)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    rng = random.Random(seed)
    live = {}                           # pid -> time before its fork
    stats = {"forked": 0, "fork_failures": 0, "nonzero_exits": 0, "orphans": 0, "max_live": 0}
    roles = [_role_plain] * 4 + [_role_dup2] * 3 + [_role_fork] * 2 + ["pass"] * 2

    def spawn(role, args=()):
        t_fork = monotonic()
        try:
            pid = os.fork()
        except OSError:
            stats["fork_failures"] += 1
            time.sleep(0.01)
            return
        if pid == 0:
            _run_child(role, t_fork, log_fd, rng.getrandbits(32) ^ stats["forked"], args)
        live[pid] = t_fork
        stats["forked"] += 1

    def reap(block: bool) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            t_reap = monotonic()
            if status:
                stats["nonzero_exits"] += 1
            t_fork = live.pop(pid, None)
            if t_fork is None:
                stats["orphans"] += 1
            else:
                me.lifetime(pid, t_fork, t_reap, status)
            block = False
        if len(me.lines) > 500:
            os.write(log_fd, "".join(me.lines).encode())
            me.lines[:] = []

    gc.collect()
    gc.freeze()                         # children then share the heap untouched
    t0 = monotonic()
    deadline = t0 + duration
    while monotonic() < deadline:
        while len(live) < cap:
            role = rng.choice(roles)
            if role == "pass" and len(live) + 2 > cap:
                role = _role_plain
            if role == "pass":
                t_pair = monotonic()
                a, b = socket.socketpair()   # stream: the receiver sees EOF if the sender fails
                me.add(a.fileno(), t_pair, "pair")
                me.add(b.fileno(), t_pair, "pair")
                spawn(_role_send, (a, b))
                spawn(_role_recv, (a, b))
                me.close(a)
                me.close(b)
            else:
                spawn(role)
            stats["max_live"] = max(stats["max_live"], len(live))
        reap(True)
    while live:
        reap(True)
    reap(False)
    stats["seconds"] = monotonic() - t0
    os.write(log_fd, me.dump())
    os.close(log_fd)
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_generator_main(sys.argv[1:]))
