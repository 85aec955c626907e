"""Bad arguments: every error names the argument and shows the value as given,
from connections(), Poller(), lookup() and watch(), on both backends, and
before any work is done (watch() is checked when called, not at next())."""
import threading

import pytest

import procnet
from procnet import ProcNetError
from procfs_tree import inet_line, make_tree, sock

BAD = [
    ({"kind": 5}, "kind", "5"),
    ({"kind": b"tcp"}, "kind", "b'tcp'"),
    ({"kind": [5]}, "kind", "5"),
    ({"state": 10}, "state", "10"),
    ({"state": [10, "LISTEN"]}, "state", "10"),
    ({"state": [["LISTEN"]]}, "state", "['LISTEN']"),
    ({"state": b"LISTEN"}, "state", "b'LISTEN'"),
    ({"pid": 1.5}, "pid", "1.5"),
    ({"pid": "12"}, "pid", "'12'"),
    ({"pid": b"12"}, "pid", "b'12'"),
    ({"pid": [1, "x"]}, "pid", "[1, 'x']"),
    ({"pid": -1}, "pid", "-1"),
    ({"uid": "root"}, "uid", "'root'"),
    ({"uid": 1.0}, "uid", "1.0"),
    ({"uid": [0, 1]}, "uid", "[0, 1]"),
    ({"uid": -1}, "uid", "-1"),
    ({"uid": 2 ** 32}, "uid", "4294967296"),
    ({"lport": "80"}, "lport", "'80'"),
    ({"rport": 1.5}, "rport", "1.5"),
    ({"byteorder": []}, "byteorder", "[]"),
    ({"proc_root": 5}, "proc_root", "5"),
    ({"threads": 1.5}, "threads", "1.5"),
    ({"threads": -1}, "threads", "-1"),
    ({"threads": 2 ** 31}, "threads", "2147483648"),       # the core's int32: refused here, not at poll()
]


def split(kw):
    kw = dict(kw)
    return kw.pop("kind", "tcp"), kw


@pytest.mark.parametrize("kw,name,shown", BAD, ids=[repr(b[0]) for b in BAD])
def test_connections_names_the_argument(impl, kw, name, shown):
    kind, kw = split(kw)
    with pytest.raises(ValueError) as ei:
        impl.connections(kind, **kw)
    msg = str(ei.value)
    assert name in msg and shown in msg, msg
    assert "iterable" not in msg


@pytest.mark.parametrize("kw,name,shown", BAD, ids=[repr(b[0]) for b in BAD])
def test_poller_names_the_argument(impl, kw, name, shown):
    kind, kw = split(kw)
    with pytest.raises(ValueError) as ei:
        procnet.Poller(kind, backend=impl.name, **kw)
    assert name in str(ei.value) and shown in str(ei.value)


@pytest.fixture
def tree(tmp_path):
    return make_tree(str(tmp_path / "proc"), net={"tcp": [
        inet_line(0, "0100007F:0050", "00000000:0000", 0x0A, 111)]},
        procs={100: {"fd": {3: sock(111)}}})


@pytest.mark.parametrize("kw,name,shown", [b for b in BAD if "proc_root" not in b[0]],
                         ids=[repr(b[0]) for b in BAD if "proc_root" not in b[0]])
def test_lookup_names_the_argument(impl, tree, kw, name, shown):
    with procnet.Poller("tcp", proc_root=tree, backend=impl.name) as p:
        with pytest.raises(ValueError) as ei:
            p.lookup(**kw)
        assert name in str(ei.value) and shown in str(ei.value)


@pytest.mark.parametrize("interval", [float("nan"), float("inf"), -1, -0.5, 1e300, "1", None, True,
                                      threading.TIMEOUT_MAX * 2])
def test_watch_refuses_a_bad_interval_when_called(impl, tree, interval):
    with procnet.Poller("tcp", proc_root=tree, backend=impl.name) as p:
        with pytest.raises(ValueError) as ei:
            p.watch(interval)               # raised here, not at the first next()
        assert "interval" in str(ei.value) and repr(interval) in str(ei.value)
        assert p.last is None               # nothing was polled


def test_watch_takes_any_real_number(impl, tree):
    from fractions import Fraction
    for interval in (0, 0.0, Fraction(1, 100), 2 ** 30):
        with procnet.Poller("tcp", proc_root=tree, backend=impl.name) as p:
            it = p.watch(interval)
            assert next(it).event == "open"        # the first poll's socket
            p.stop()
            assert list(it) == []


def test_watch_on_a_closed_poller_raises(impl, tree):
    p = procnet.Poller("tcp", proc_root=tree, backend=impl.name)
    p.close()
    with pytest.raises(ProcNetError, match="closed"):
        p.watch(0)
    with pytest.raises(ProcNetError, match="closed"):
        p.poll()
    with pytest.raises(ProcNetError, match="closed"):
        with p:
            pass



def test_the_whole_range_of_uid_and_threads_is_taken(impl, tmp_path):
    """uids are 32-bit unsigned (the CLI's --user takes 0..4294967295); threads
    up to the core's int32 (the core caps its workers)."""
    root = make_tree(str(tmp_path), net={"tcp": [
        inet_line(0, "0100007F:0050", "00000000:0000", 10, 111, uid=3000000000),
        inet_line(1, "0100007F:0051", "00000000:0000", 10, 112, uid=0)]})
    got = impl.connections("tcp", proc_root=root, uid=3000000000, threads=2 ** 31 - 1)
    assert [(c.inode, c.uid) for c in got] == [(111, 3000000000)]
    assert list(impl.connections("tcp", proc_root=root, uid=2 ** 32 - 1)) == []
    with procnet.Poller("tcp", proc_root=root, backend=impl.name, threads=2 ** 31 - 1, uid=0) as p:
        assert [c.inode for c in p.poll().snapshot] == [112]
