"""Many threads snapshotting at once: same answers as one thread.

The C core holds no global state and runs with the GIL released (cffi's
default for API-mode calls), so concurrent calls must neither interfere nor
serialise on Python.
"""
import threading

import pytest

from procfs_tree import inet_line, make_tree, sock, unix_line


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("threads"))
    lines = [inet_line(i, "0100007F:%04X" % (2000 + i), "00000000:0000", 0x0A, 7000 + i) for i in range(400)]
    unix = [unix_line(9000 + i, "/run/s %d" % i, listening=i % 2 == 0) for i in range(200)]
    procs = {pid: {"comm": "t%d" % pid, "fd": {fd: sock(7000 + (pid + fd) % 400) for fd in range(3, 12)}}
             for pid in range(100, 160)}
    procs[99] = {"comm": "u", "fd": {fd: sock(9000 + fd) for fd in range(200)}}
    make_tree(root, net={"tcp": lines, "unix": unix}, procs=procs)
    return root


def test_eight_threads_agree(impl, tree):
    want = [c.as_tuple() for c in impl.connections("all", proc_root=tree, byteorder="little")]
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                got = impl.connections("all", proc_root=tree, byteorder="little")
                results.append([c.as_tuple() for c in got])
        except BaseException as e:          # reported below, in the test's thread
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 160 and all(r == want for r in results)


def test_live_threads_agree(impl, live):
    mine = set(live.expected())
    want = sorted((c.as_tuple() for c in impl.connections("all") if c.inode in mine), key=repr)
    out = []

    def work():
        out.append(sorted((c.as_tuple() for c in impl.connections("all") if c.inode in mine), key=repr))
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [want] * 8
