#!/usr/bin/env python3
"""Reproducible socket workload: ground truth for procnet's tests and benchmarks.

Why: a socket->process mapper can only be checked and timed against a known
population.  ``Workload(N, M)`` forks M workers holding exactly N sockets, and
each process reports its own inodes (``os.fstat(fd).st_ino``) through a pipe,
so ``expected`` (inode -> owner pids) never comes from a scanner that could
share the tool's bugs.  Compare a tool on ``expected``'s inodes only: sockets
of the controller and the rest of the system are not in it.

Mix (same N, M, seed -> same mix): tcp4/tcp6 listeners and established pairs
(both ends held), udp4/udp6 bound and connected, unix stream/dgram on paths in
a private temp dir and on abstract names, unix socketpairs.  Each process also
holds non-socket fds (file, /dev/null, pipe, eventfd) and one socket on a
second (dup) fd, so scanners must skip non-sockets and dedupe per pid.  Every
TWIN_EVERY-th worker forks twins that share two listeners with it (worker 0
has two twins: three owners) and hold the accepted ends of its tcp/unix pairs.

Loopback only.  Worker i binds IPv4 to its own 127.10.x.y so bind(port 0) has
a full ephemeral range per worker at 50k sockets; IPv6 has only ::1 and stays
a minority.  TCP pairs use SO_LINGER 0: teardown leaves no TIME_WAIT rows.

Bounded lifetime: PR_SET_PDEATHSIG, a getppid() check every 2 s, ``lifetime``.
The controller kills and reaps everything and removes its temp dir on exit,
SIGINT, SIGTERM/SIGHUP (turned into SystemExit), atexit and failed start-up;
dirs of a SIGKILLed controller are swept by the next one.  Use it from the
thread that outlives it (PDEATHSIG fires when the forking *thread* exits).

Script: ``python benchmarks/workload.py --sockets 10000 --workers 200 [--hold S]``
"""
from __future__ import annotations

import argparse
import atexit
import ctypes
import gc
import json
import os
import random
import resource
import selectors
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from contextlib import suppress
from typing import Any, Iterator, Literal

PR_SET_PDEATHSIG = 1
TWIN_EVERY = 16
PREFIX = "procnet-wl-"
LINGER0 = struct.pack("ii", 1, 0)
AF_INET, AF_INET6, AF_UNIX = socket.AF_INET, socket.AF_INET6, socket.AF_UNIX
SOCK_STREAM, SOCK_DGRAM = socket.SOCK_STREAM, socket.SOCK_DGRAM
# kind -> (sockets it creates, weight in the mix, family, type, how).  Weights
# loosely follow a busy server: mostly established tcp and connected unix.
UNITS: dict[str, tuple[int, int, int, int, str]] = {
    "tcp4_est": (2, 20, AF_INET, SOCK_STREAM, "est"), "tcp6_est": (2, 6, AF_INET6, SOCK_STREAM, "est"),
    "tcp4_listen": (1, 4, AF_INET, SOCK_STREAM, "listen"), "tcp6_listen": (1, 2, AF_INET6, SOCK_STREAM, "listen"),
    "tcp4_listen_shared": (1, 0, AF_INET, SOCK_STREAM, "listen"),
    "tcp6_listen_shared": (1, 0, AF_INET6, SOCK_STREAM, "listen"),
    "udp4_bound": (1, 4, AF_INET, SOCK_DGRAM, "bound"), "udp4_conn": (1, 4, AF_INET, SOCK_DGRAM, "conn"),
    "udp6_bound": (1, 2, AF_INET6, SOCK_DGRAM, "bound"), "udp6_conn": (1, 2, AF_INET6, SOCK_DGRAM, "conn"),
    "unix_stream_est": (2, 12, AF_UNIX, SOCK_STREAM, "est"),
    "unix_stream_pair": (2, 10, AF_UNIX, SOCK_STREAM, "pair"),
    "unix_stream_listen_path": (1, 3, AF_UNIX, SOCK_STREAM, "listen"),
    "unix_stream_listen_abstract": (1, 3, AF_UNIX, SOCK_STREAM, "listen"),
    "unix_dgram_path": (1, 3, AF_UNIX, SOCK_DGRAM, "bound"),
    "unix_dgram_abstract": (1, 2, AF_UNIX, SOCK_DGRAM, "bound"),
    "unix_dgram_pair": (2, 3, AF_UNIX, SOCK_DGRAM, "pair"),
}
Scope = Literal["session", "package", "module", "class", "function"]
SPLITTABLE = {"tcp4_est", "tcp6_est", "unix_stream_est"}


def plan(index: int, budget: int, seed: int) -> tuple[list[str], int]:
    """Units for worker ``index`` totalling exactly ``budget`` sockets, and its twin count."""
    rng = random.Random(f"procnet-wl:{seed}:{index}")
    twins, units = 0, []
    if index % TWIN_EVERY == 0 and budget >= 2:
        twins, units = (2 if index == 0 else 1), ["tcp4_listen_shared", "tcp6_listen_shared"]
    left = budget - len(units)
    while left > 0:
        names = [k for k, u in UNITS.items() if u[0] <= left and u[1]]
        kind = rng.choices(names, [UNITS[k][1] for k in names])[0]
        units.append(kind)
        left -= UNITS[kind][0]
    return units, twins


def _addr4(index: int) -> str:
    return f"127.{10 + index // 62500}.{(index // 250) % 250}.{index % 250 + 1}"


def _raise_nofile(need: int) -> None:
    """Raise the soft limit, and the hard one where allowed (needs CAP_SYS_RESOURCE, not just uid 0)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if need <= soft:
        return
    with suppress(ValueError, OSError):
        return resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(need, hard)))
    if need > hard:
        raise OSError(f"need {need} fds but the RLIMIT_NOFILE hard limit {hard} cannot be raised: use more workers")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _detach(parent: int, keep_fd: int = -1) -> None:
    """First thing in every forked process: die with the parent, drop inherited state.

    With ``keep_fd`` (workers) every inherited fd but that one is closed; twins
    (keep_fd=-1) keep their fds, since they are meant to share the worker's."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # parent died before prctl took effect
        os._exit(1)
    gc.disable()  # never finalize inherited objects whose fds we are about to close
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    if keep_fd < 0:
        return
    # Inherited controller fds (pytest sockets, other workers' pipes) would
    # otherwise become extra, unreported owners.
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _hold(parent: int, deadline: float) -> None:
    while time.monotonic() < deadline and os.getppid() == parent:
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    os._exit(0)


class _Builder:
    """Creates one worker's sockets; ``own``/``twin``/``shared`` say who keeps each."""

    def __init__(self, index: int, tmpdir: str, tag: str) -> None:
        self.index, self.tmpdir, self.tag, self.n = index, tmpdir, tag, 0
        self.addr4 = _addr4(index)
        self.own: list[tuple[str, socket.socket]] = []
        self.twin: list[tuple[str, socket.socket]] = []
        self.shared: list[tuple[str, socket.socket]] = []
        self.helpers: dict[int, socket.socket] = {}

    def _addr(self, fam: int, abstract: bool = False) -> Any:
        if fam != AF_UNIX:
            return (self.addr4, 0) if fam == AF_INET else ("::1", 0)
        self.n += 1
        if abstract:
            return f"\0{PREFIX}{self.tag}-{self.index}-{self.n}"
        return os.path.join(self.tmpdir, f"w{self.index}-{self.n}.sock")

    def _est(self, fam: int) -> list[socket.socket]:
        """Connected pair via a hidden per-family listener (closed before reporting)."""
        if fam not in self.helpers:
            self.helpers[fam] = socket.socket(fam, SOCK_STREAM)
            self.helpers[fam].bind(self._addr(fam))
            self.helpers[fam].listen(64)
        c = socket.socket(fam, SOCK_STREAM)
        c.connect(self.helpers[fam].getsockname())
        pair = [c, self.helpers[fam].accept()[0]]
        if fam != AF_UNIX:  # RST on close: no TIME_WAIT rows left for the next run
            for s in pair:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        return pair

    def make(self, kind: str, split: bool) -> None:
        _, _, fam, typ, mode = UNITS[kind]
        if mode == "pair":
            socks = list(socket.socketpair(fam, typ))
        elif mode == "est":
            socks = self._est(fam)
        else:
            s = socket.socket(fam, typ)
            s.bind(self._addr(fam, kind.endswith("abstract")))
            if mode == "listen":
                s.listen(16)
            elif mode == "conn":  # connected udp: bound first, so no wildcard autobind
                s.connect((self.addr4, 9) if fam == AF_INET else ("::1", 9))
            socks = [s]
        if kind.endswith("_shared"):
            self.shared.append((kind, socks[0]))
        elif split:
            self.own.append((kind, socks[0]))
            self.twin.append((kind, socks[1]))
        else:
            self.own.extend((kind, s) for s in socks)

    def close_helpers(self) -> None:
        for s in self.helpers.values():
            name = s.getsockname()
            s.close()
            if isinstance(name, str) and name.startswith("/"):
                os.unlink(name)


def _report(socks: list[tuple[str, socket.socket]]) -> bytes:
    lines = [f"P {os.getpid()}"] + [f"S {os.fstat(s.fileno()).st_ino} {k}" for k, s in socks]
    return ("\n".join(lines) + "\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _nonsockets(index: int, tmpdir: str) -> list[int]:
    """Ordinary fds a real process has, so an fd scan meets non-socket links."""
    path = os.path.join(tmpdir, f"w{index}.dat")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, b"procnet workload\n")
    fds = [fd, os.open("/dev/null", os.O_RDONLY), *os.pipe()]
    if hasattr(os, "eventfd"):
        fds.append(os.eventfd(0))
    return fds


def _worker(index: int, units: list[str], twins: int, wfd: int, ctl: int,
            tmpdir: str, tag: str, lifetime: float) -> None:
    """Body of a forked worker; never returns (os._exit)."""
    _detach(ctl, wfd)
    deadline = time.monotonic() + lifetime
    _raise_nofile(sum(UNITS[k][0] for k in units) + 64)
    keep = _nonsockets(index, tmpdir)
    b = _Builder(index, tmpdir, tag)
    for kind in units:
        b.make(kind, split=twins > 0 and kind in SPLITTABLE)
    b.close_helpers()
    twin_out = b""
    if twins:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # twins are reaped by the kernel
        me = os.getpid()
        for t in range(twins):
            r, w = os.pipe()
            if os.fork() == 0:
                try:
                    _detach(me)
                    os.close(wfd)
                    os.close(r)
                    mine = b.shared + (b.twin if t == 0 else [])
                    for _, s in b.own + (b.twin if t else []):
                        s.close()
                    _write_all(w, _report(mine))
                    os.close(w)
                    _hold(me, deadline)
                finally:
                    os._exit(1)
            os.close(w)
            out = b"".join(iter(lambda: os.read(r, 1 << 16), b""))  # EOF if it dies;
            os.close(r)  # if it hangs, the controller's timeout fires
            if not out.startswith(b"P "):
                raise RuntimeError(f"twin {t} of worker {index} sent no report")
            twin_out += out
        for _, s in b.twin:
            s.close()
    mine = b.shared + b.own
    if mine:
        keep.append(os.dup(mine[0][1].fileno()))  # same socket on two fds of one pid
    _write_all(wfd, _report(mine) + twin_out + b"OK\n")
    os.close(wfd)
    _hold(ctl, deadline)


def _sweep_stale() -> None:
    """Remove temp dirs of controllers that died without cleaning up (SIGKILL)."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        if name.startswith(PREFIX):
            try:
                os.kill(int(name[len(PREFIX):].split("-")[0]), 0)
            except ProcessLookupError:
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            except (ValueError, PermissionError):
                pass


class Workload:
    """Context manager: M forked workers holding exactly N loopback/unix sockets.

    After ``__enter__``: ``pids`` (workers and their twins), ``expected``
    (inode -> owner pids, as reported by the owners), ``counts`` (sockets, not
    pairs, per kind, plus ``total`` (== N), ``shared`` = inodes with 2+ owners,
    ``split_pairs`` = accepted ends held by a twin), ``startup`` (seconds).
    """

    def __init__(self, sockets: int, workers: int, *, lifetime: float = 600.0,
                 seed: int = 0, timeout: float | None = None) -> None:
        if workers < 1 or sockets < 0:
            raise ValueError("need workers >= 1 and sockets >= 0")
        self.sockets, self.workers, self.lifetime, self.seed = sockets, workers, lifetime, seed
        self.timeout = timeout if timeout is not None else 60.0 + sockets / 500
        self.pids: list[int] = []
        self.expected: dict[int, set[int]] = {}
        self.counts: dict[str, int] = {}
        self.tmpdir = ""
        self.startup = 0.0
        self._children: list[int] = []
        self._pgid = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "Workload":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_signal(self, signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    def _start(self) -> None:
        t0 = time.monotonic()
        _sweep_stale()
        self.tmpdir = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
        tag = os.path.basename(self.tmpdir)[len(PREFIX):]
        atexit.register(self.close)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(sig) == signal.SIG_DFL:
                    self._old[sig] = signal.signal(sig, self._on_signal)
        _raise_nofile(self.workers + 256)
        M, N = self.workers, self.sockets
        plans = [plan(i, N // M + (i < N % M), self.seed) for i in range(M)]
        ctl, pipes = os.getpid(), {}
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()  # fewer copy-on-write faults in 500 children
        try:
            for i, (units, twins) in enumerate(plans):
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    try:
                        with suppress(OSError):
                            os.setpgid(0, self._pgid)
                        _worker(i, units, twins, w, ctl, self.tmpdir, tag, self.lifetime)
                    except BaseException as e:
                        os.write(w, f"\nE {type(e).__name__}: {e}\n".encode())
                    finally:
                        os._exit(1)
                os.close(w)
                with suppress(OSError):
                    os.setpgid(pid, self._pgid)  # both sides set it: no race
                self._pgid = self._pgid or pid
                self._children.append(pid)
                pipes[r] = (i, pid)
        finally:
            gc.unfreeze()
        self._collect(pipes, time.monotonic() + self.timeout)
        self.startup = time.monotonic() - t0

    def _collect(self, pipes: dict[int, tuple[int, int]], deadline: float) -> None:
        """Read every worker's report; fail loudly on death, error or timeout."""
        sel, bufs = selectors.DefaultSelector(), {r: bytearray() for r in pipes}
        for r in pipes:
            sel.register(r, selectors.EVENT_READ)
        kinds: dict[int, str] = {}
        try:
            while bufs:
                ready = sel.select(max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise TimeoutError(f"{len(bufs)} workers not ready after {self.timeout:.0f}s")
                for key, _ in ready:
                    r = int(key.fd)
                    chunk = os.read(r, 1 << 16)
                    if chunk:
                        bufs[r] += chunk
                        continue
                    sel.unregister(r)
                    os.close(r)
                    text, (i, wpid) = bufs.pop(r).decode(), pipes[r]
                    if not text.endswith("OK\n"):
                        last = text.strip().splitlines()[-1:] or ["died without a report"]
                        raise RuntimeError(f"worker {i} (pid {wpid}) failed: {last[0]}")
                    pid = 0
                    for line in text.splitlines():
                        tok = line.split()
                        if tok[0] == "P":
                            pid = int(tok[1])
                            self.pids.append(pid)
                        elif tok[0] == "S":
                            self.expected.setdefault(int(tok[1]), set()).add(pid)
                            kinds[int(tok[1])] = tok[2]
        finally:
            for r in bufs:
                os.close(r)
            sel.close()
        for kind in kinds.values():
            self.counts[kind] = self.counts.get(kind, 0) + 1
        self.counts = dict(sorted(self.counts.items()))
        self.counts["total"] = len(self.expected)
        self.counts["shared"] = sum(len(p) > 1 for p in self.expected.values())
        twins = set(self.pids) - set(self._children)
        self.counts["split_pairs"] = sum(  # accepted ends held by a twin only
            1 for ino, k in kinds.items() if k in SPLITTABLE and self.expected[ino] <= twins)
        if len(self.expected) != self.sockets:
            raise RuntimeError(f"expected {self.sockets} sockets, workers hold {len(self.expected)}")

    def close(self) -> None:
        """Kill and reap everything we started, remove the temp dir. Idempotent."""
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        twins = [p for p in self.pids if p not in self._children]
        for pid in twins:  # first, so their (SIGCHLD-ignoring) parents reap them
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 2.0
        while twins and time.monotonic() < end:
            twins = [p for p in twins if os.path.exists(f"/proc/{p}")]
            time.sleep(0.01)
        if self._pgid:  # catches twins of workers that died before reporting
            with suppress(OSError):
                os.killpg(self._pgid, signal.SIGKILL)
        for pid in self._children:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self._children, self._pgid = [], 0
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = ""
        atexit.unregister(self.close)


def workload_fixture(sockets: int, workers: int, *, scope: Scope = "module", **kw: Any) -> Any:
    """Pytest fixture factory: ``wl = workload_fixture(1000, 50)`` in a test module/conftest."""
    import pytest

    @pytest.fixture(scope=scope)
    def _fixture() -> Iterator[Workload]:
        with Workload(sockets, workers, **kw) as wl:
            yield wl
    return _fixture


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sockets", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hold", type=float, default=None, help="seconds to hold (default: until Ctrl-C)")
    ap.add_argument("--dump", help="write {pids, counts, expected} as JSON to this file")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored (`cmd &`)
    lifetime = max(600.0, (a.hold or 0) + 60) if a.hold is not None else 86400.0
    with Workload(a.sockets, a.workers, lifetime=lifetime, seed=a.seed) as wl:
        print(f"workload: startup={wl.startup:.2f}s pids={len(wl.pids)} "
              f"range={min(wl.pids)}-{max(wl.pids)} counts={json.dumps(wl.counts)}", flush=True)
        if a.dump:
            with open(a.dump, "w") as f:
                json.dump({"pids": wl.pids, "counts": wl.counts,
                           "expected": {str(k): sorted(v) for k, v in wl.expected.items()}}, f)
        try:
            end = time.monotonic() + (a.hold if a.hold is not None else float("inf"))
            while time.monotonic() < end:
                time.sleep(min(1.0, end - time.monotonic()))
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
