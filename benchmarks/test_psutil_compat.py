"""procnet.psutil_compat vs psutil: the same rows, in a fraction of the time.

Groups (per scale):

- "psutil compat all": ``net_connections("all")`` -- compat as a caller gets it
  (the BPF owner source where it loads), compat with the /proc walk, psutil.
- "psutil compat process": ``Process(pid).net_connections("all")`` of one
  process holding 100 sockets among the workload's -- compat's default route
  (pidfd_getfd: only that process's fds are read), compat through a procnet
  snapshot limited to the pid (every table listed), psutil (every table parsed).
"""
import os
import socket

import pytest

from procnet import psutil_compat as compat

from conftest import group, psutil_or_skip

HUNDRED = 100


def _hold_hundred(w: int) -> list:
    """Child body: 100 sockets of the common kinds (returned: the caller holds them)."""
    socks = []
    srv = socket.create_server(("127.0.0.1", 0), backlog=64)
    for _ in range(20):                                   # 40: tcp established, both ends
        c = socket.create_connection(srv.getsockname())
        socks += [c, srv.accept()[0]]
    srv.close()
    for _ in range(10):                                   # 10: tcp listeners
        socks.append(socket.create_server(("127.0.0.1", 0)))
    for i in range(20):                                   # 20: udp bound, half connected
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        if i % 2:
            u.connect(("127.0.0.1", 9))
        socks.append(u)
    for _ in range(15):                                   # 30: unix socketpairs
        socks += list(socket.socketpair())
    assert len(socks) == HUNDRED
    os.write(w, b"k")
    os.close(w)
    return socks


@pytest.fixture(scope="session")
def hundred(workload):
    """pid of a process holding exactly 100 sockets, beside the workload."""
    r, w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.close(go_w)
            held = _hold_hundred(w)
            os.read(go_r, 1)            # until the session ends
            del held
        finally:
            os._exit(0)
    os.close(w)
    os.close(go_r)
    assert os.read(r, 1) == b"k"
    os.close(r)
    yield pid
    os.close(go_w)
    os.waitpid(pid, 0)


def test_compat_all(benchmark, workload):
    group(benchmark, "psutil compat all", workload)
    rows = benchmark(compat.net_connections, "all")
    pids = set(workload.pids)
    assert sum(1 for r in rows if r.pid in pids) >= len(workload.expected) * 0.9


def test_compat_all_walk(benchmark, workload):
    group(benchmark, "psutil compat all", workload)
    benchmark(compat.net_connections, "all", owner_source="procfs")


def test_psutil_all(benchmark, workload):
    psutil = psutil_or_skip()
    group(benchmark, "psutil compat all", workload)
    benchmark(psutil.net_connections, "all")


def test_compat_process(benchmark, workload, hundred):
    group(benchmark, "psutil compat process", workload)
    rows = benchmark(lambda: compat.Process(hundred).net_connections("all"))
    assert len(rows) == HUNDRED


def test_compat_process_snapshot(benchmark, workload, hundred):
    group(benchmark, "psutil compat process", workload)
    rows = benchmark(lambda: compat.Process(hundred, via="procnet").net_connections("all"))
    assert len(rows) == HUNDRED


def test_psutil_process(benchmark, workload, hundred):
    psutil = psutil_or_skip()
    group(benchmark, "psutil compat process", workload)
    rows = benchmark(lambda: psutil.Process(hundred).net_connections("all"))
    assert len(rows) == HUNDRED
