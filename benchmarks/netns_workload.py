#!/usr/bin/env python3
"""The socket workload spread over network namespaces (for benchmarks/test_netns.py).

``NetnsWorkload(N, K)`` runs K copies of ``workload.py`` (each N/K sockets,
one worker, seed = its index), each inside its own named namespace
(``ip netns add procnet-nsb-I``, lo up, ``ip netns exec``); with
``spread=False`` the same K copies run in the caller's namespace instead, so
that both layouts hold exactly the same sockets in the same processes and
differ only in how many namespaces they are spread over. ``expected`` maps
inode -> owner pids (from each copy's own report, as in workload.py).

Root only (ip netns). Everything is removed on exit, also on failure; stale
namespaces of a killed run are deleted by the next one.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "workload.py")
PREFIX = "procnet-nsb-"
BATCH = 10            # copies started at once (2 cores: do not fork 100 interpreters together)


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(("ip",) + args, check=check, capture_output=True, timeout=60)


def drop_stale() -> None:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.split() and line.split()[0].startswith(PREFIX):
            _ip("netns", "del", line.split()[0], check=False)


def _read_dump(path: str, p: subprocess.Popen) -> dict:
    """The copy's --dump, which it writes just after its ready line."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            if p.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class NetnsWorkload:
    """N sockets in K workload copies, in K namespaces (spread) or in ours."""

    def __init__(self, sockets: int, namespaces: int, *, spread: bool = True, hold: float = 1800.0) -> None:
        self.sockets, self.k, self.spread, self.hold = sockets, namespaces, spread, hold
        self.names: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.expected: dict[int, set[int]] = {}
        self.tmp = tempfile.mkdtemp(prefix="procnet-nsb-")

    def __enter__(self) -> "NetnsWorkload":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        drop_stale()
        t0 = time.monotonic()
        each = [self.sockets // self.k + (i < self.sockets % self.k) for i in range(self.k)]
        for start in range(0, self.k, BATCH):
            batch = []
            for i in range(start, min(self.k, start + BATCH)):
                prefix = []
                if self.spread:
                    name = "%s%03d" % (PREFIX, i)
                    _ip("netns", "add", name)
                    self.names.append(name)
                    _ip("-n", name, "link", "set", "lo", "up")
                    prefix = ["ip", "netns", "exec", name]
                dump = os.path.join(self.tmp, "%d.json" % i)
                p = subprocess.Popen(prefix + [sys.executable, WORKLOAD, "--sockets", str(each[i]),
                                               "--workers", "1", "--seed", str(i), "--dump", dump,
                                               "--hold", str(self.hold)],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
                self.procs.append(p)
                batch.append((p, dump))
            for p, dump in batch:
                line = p.stdout.readline()
                if not line.startswith("workload:"):
                    raise RuntimeError("a workload copy failed to start (exit %s)" % p.poll())
                for ino, pids in _read_dump(dump, p)["expected"].items():
                    self.expected[int(ino)] = set(pids)
        self.startup = time.monotonic() - t0
        if len(self.expected) != self.sockets:
            raise RuntimeError("expected %d sockets, the copies hold %d" % (self.sockets, len(self.expected)))

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)        # workload.py tears its workers down
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        self.procs = []
        for name in self.names:
            _ip("netns", "del", name, check=False)
        self.names = []
        for f in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, f))
        os.rmdir(self.tmp)
