"""Churn: processes start and end by the hundred per second while snapshots run.

A generator process (this file run as a script, in a session of its own, made
a child subreaper) forks short-lived children, at most CHURN_CAP at a time,
that open a few loopback/unix sockets, hand one to a sibling with SCM_RIGHTS,
dup2 one socket over the fd number of another, fork a grandchild that shares
them, close some and exit with the rest. Every process logs its ground truth
before it exits: each (pid, fd, socket inode) it held, and from when to when
(CLOCK_MONOTONIC, taken so that the logged interval contains the real one:
before the socket was created / the fork / the recvmsg, after the close / the
dup2 returned; "until exit" is closed by the reaper's waitpid time). Whoever
reaps a process logs its lifetime (before fork, after waitpid).

Meanwhile this test snapshots in a loop ("all" tables, owners) on both
backends, with source="auto" (netlink) and source="procfs" (text) in turn.
Then it checks:

- no snapshot raised, nothing crashed, every churn process exited 0, was
  reaped by its parent (no orphan reached the subreaper), and nothing of the
  generator's session is left over (no zombie);
- no churn process is ever reported in denied_pids (root may read them all:
  one that exits mid-walk is gone, not denied);
- every owner a snapshot reported for a churn process (a pid that was one of
  ours at the time of the call) really held that socket at that fd: the
  (pid, fd, inode) triple is in the ground truth, and one of the intervals over
  which it was held overlaps the snapshot call; its name is the churn comm (or
  None when the process was gone before its name was read);
- and the other way round, no owner is lost: a socket a churn process surely
  held at one fd over the whole call (the logs also keep an inner interval:
  clock read after the open, before the close) and that was surely in the
  kernel's tables all that time (a tcp end whose peer closed is reset and
  leaves them while still held) is in the snapshot with that owner.

PROCNET_CHURN_SECONDS sets the duration (default 8); the rate achieved and the
snapshots done are printed (-s) and recorded as properties.
"""
import bisect
import gc
import json
import os
import random
import signal
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


# ---------------------------------------------------------------------------
# The test.

import subprocess  # noqa: E402

import pytest  # noqa: E402  (below the generator: its process need not load pytest)

pytestmark = pytest.mark.live


def _parse_log(path):
    truth, lifetimes, errors = {}, {}, []
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] == "T":
                pid, fd, ino = int(w[1]), int(w[2]), int(w[3])
                t1 = None if w[5] == "-" else float(w[5])
                t_open, t_in_open, t_in_close, listed = float(w[4]), float(w[7]), float(w[8]), float(w[9])
                if not (t_open <= t_in_open <= t_in_close and listed <= t_in_close and
                        (t1 is None or t_in_close <= t1)):
                    errors.append("inconsistent times: %r" % line)
                truth.setdefault((pid, fd, ino), []).append((t_open, t1, w[6], t_in_open, listed))
            elif w[0] == "L":
                lifetimes.setdefault(int(w[1]), []).append((float(w[2]), float(w[3]), int(w[4])))
            elif w[0] == "E":
                errors.append(line.strip())
            else:
                errors.append("unparsable log line: %r" % line)
    return truth, lifetimes, errors


def _session_members(sid: int):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:       # field 6, session
            out.append((int(name), fields[0].decode()))
    return out


def test_churn_owners_are_true(both, tmp_path, record_property):
    duration = float(os.environ.get("PROCNET_CHURN_SECONDS", "8"))
    log_path = str(tmp_path / "truth.log")
    seed = random.randrange(1 << 30)
    t_gen0 = monotonic()
    with open(tmp_path / "generator.out", "wb") as out:
        gen = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), str(duration), log_path, str(CHURN_CAP),
             str(seed), repr(t_gen0)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    plan = [(both[0], "auto"), (both[1], "auto"), (both[0], "procfs"), (both[1], "procfs")]
    observations = []           # (t0, t1, plan index, [(pid, fd, inode, name)])
    errors = []
    denied = {}
    done = [0] * len(plan)
    hard_stop = monotonic() + duration + 120
    try:
        i = 0
        while gen.poll() is None:
            if monotonic() > hard_stop:
                pytest.fail("the churn generator did not finish in %.0f s" % (duration + 120))
            k = i % len(plan)
            impl, source = plan[k]
            i += 1
            t0 = monotonic()
            try:
                snap = impl.connections("all", source=source)
                rows = [(o.pid, o.fd, c.inode, o.name) for c in snap for o in c.owners]
            except Exception as e:      # counted; the test fails below with every one
                errors.append("%s/%s: %r" % (impl.name, source, e))
                continue
            t1 = monotonic()
            done[k] += 1
            observations.append((t0, t1, k, rows))
            for p in snap.denied_pids:
                denied.setdefault(p, set()).add(plan[k][0].name)
            bad_tables = {t: v for t, v in snap.tables.items() if v not in ("read", "missing")}
            if bad_tables or snap.skipped:
                errors.append("%s/%s: tables %r skipped %r" % (impl.name, source, bad_tables, snap.skipped))
    finally:
        if gen.poll() is None:
            os.killpg(gen.pid, signal.SIGKILL)
        gen.wait()
        t_gen1 = monotonic()
        leftovers = _session_members(gen.pid)
        if leftovers:
            try:
                os.killpg(gen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    gen_out = (tmp_path / "generator.out").read_text()
    assert gen.returncode == 0, gen_out
    assert not leftovers, "churn processes left behind: %r" % leftovers
    stats = json.loads(gen_out.strip().splitlines()[-1])

    truth, lifetimes, child_errors = _parse_log(log_path)
    lifetimes[gen.pid] = [(t_gen0, t_gen1, 0)]
    assert not child_errors, child_errors[:20]
    assert stats["nonzero_exits"] == 0 and stats["orphans"] == 0, stats
    assert all(st == 0 for lts in lifetimes.values() for _, _, st in lts)
    processes = sum(len(v) for v in lifetimes.values()) - 1          # grandchildren too

    # "held until exit": until the reaper's waitpid returned
    for (pid, fd, ino), spans in truth.items():
        for n, (a, b, how, ia, ib) in enumerate(spans):
            if b is None:
                ends = [tr for tf, tr, _ in lifetimes.get(pid, ()) if tf <= a <= tr]
                assert ends, "no lifetime logged for pid %d holding fd %d" % (pid, fd)
                spans[n] = (a, ends[0], how, ia, ib)

    checked = foreign = 0
    seen_how = {}
    bad_triple, bad_time, bad_name = [], [], []
    for t0, t1, k, rows in observations:
        for pid, fd, ino, name in rows:
            lts = lifetimes.get(pid)
            if not lts:
                continue
            if not any(tf <= t1 and tr >= t0 for tf, tr, _ in lts):
                foreign += 1            # that pid number, but not ours at the time
                continue
            checked += 1
            where = "%s/%s" % (plan[k][0].name, plan[k][1])
            spans = truth.get((pid, fd, ino))
            if not spans:
                bad_triple.append((where, pid, fd, ino, name))
            elif not any(a <= t1 and b >= t0 for a, b, *_ in spans):
                bad_time.append((where, pid, fd, ino, spans, (t0, t1)))
            else:
                for a, b, how, *_ in spans:
                    if a <= t1 and b >= t0:
                        seen_how[how] = seen_how.get(how, 0) + 1
            if name not in (COMM, None):
                bad_name.append((where, pid, fd, ino, name))

    # the other way round: a socket held at one fd and in the tables over the
    # whole call (by the inner interval) must be in the snapshot with that owner
    inner = sorted((ia, ib, pid, fd, ino) for (pid, fd, ino), spans in truth.items()
                   for _, _, _, ia, ib in spans)
    starts = [x[0] for x in inner]
    longest = max((ib - ia for ia, ib, *_ in inner), default=0)
    must = 0
    missing = {}
    for t0, t1, k, rows in observations:
        seen = {(pid, fd, ino) for pid, fd, ino, _ in rows}
        for ia, ib, pid, fd, ino in inner[bisect.bisect_left(starts, t0 - longest):
                                          bisect.bisect_right(starts, t0)]:
            if ib >= t1:
                must += 1
                if (pid, fd, ino) not in seen:
                    missing.setdefault("%s/%s" % (plan[k][0].name, plan[k][1]), []).append(
                        (pid, fd, ino, round(t0, 6), round(t1, 6), round(ia, 6), round(ib, 6)))

    rate = processes / stats["seconds"]
    summary = {
        "seconds": round(stats["seconds"], 2), "processes": processes,
        "processes_per_s": round(rate, 1), "max_live_children": stats["max_live"],
        "fork_failures": stats["fork_failures"],
        "snapshots": {"%s/%s" % (p[0].name, p[1]): n for p, n in zip(plan, done)},
        "owner_rows_checked": checked, "rows_for_pids_not_ours_then": foreign, "checked_by_how": seen_how,
        "ground_truth_triples": len(truth), "denied_pids": {p: sorted(b) for p, b in sorted(denied.items())},
        "exceptions": len(errors), "held_throughout_a_call": must,
        "held_throughout_but_missing": {k: len(v) for k, v in missing.items()},
    }
    print("\nchurn:", json.dumps(summary))
    for key in ("processes_per_s", "seconds", "processes", "owner_rows_checked"):
        record_property("churn_" + key, summary[key])
    record_property("churn_snapshots", summary["snapshots"])

    assert not errors, errors[:20]
    assert not bad_triple, "owners that never held that socket at that fd: %r" % bad_triple[:20]
    assert not bad_time, "owners reported outside the time they held it: %r" % bad_time[:20]
    assert not bad_name, "owners of churn processes with a foreign name: %r" % bad_name[:20]
    assert not missing, "sockets held by a churn process over a whole call but not reported: %r" % (
        {k: v[:10] for k, v in missing.items()},)
    # the test and the churn are root: a churn process that exits mid-walk is
    # gone (skipped), never "denied"
    ours_denied = sorted(p for p in denied if p in lifetimes)
    assert not ours_denied, "churn pids reported as denied: %r" % ours_denied[:20]
    # not vacuous: the loop ran on every backend and source, and saw churn processes
    assert all(done), summary["snapshots"]
    assert checked > 0 and processes > 0, summary
