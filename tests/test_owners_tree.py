"""Owner walk and join on fixture trees: sharing, order, names, denied pids, filters."""
import errno
import os
import shutil
import sys
import tempfile

import pytest

import procnet
from conftest import run_as_nobody
from procfs_tree import inet_line, make_tree, sock, unix_line

LISTEN = inet_line(0, "0100007F:1F90", "00000000:0000", 0x0A, 111)
EST = inet_line(1, "0100007F:1F90", "0100007F:C000", 0x01, 222)
TW = inet_line(2, "0100007F:1F90", "0100007F:C001", 0x06, 0)          # TIME_WAIT: inode 0
UDP = inet_line(0, "0100007F:0035", "00000000:0000", 0x07, 333, uid=53)


def tree(tmp_path, **extra_procs):
    procs = {
        # a prefork listener: parent and two children all hold inode 111
        300: {"comm": "nginx", "fd": {6: sock(111), 0: "/dev/null", 1: "pipe:[9]", 7: sock(222)}},
        40: {"comm": "nginx", "fd": {6: sock(111), 9: sock(111)}},
        1000: {"comm": "nginx", "fd": {6: sock(111)}},
        77: {"comm": "dns d", "fd": {3: sock(333), 4: "socket:[0]", 5: "anon_inode:[eventfd]"}},
        55: {"comm": None, "fd": {8: sock(444)}},            # no comm file: name unknown
        66: {"fd_dir": False},                                  # kernel thread-like: no fd dir
    }
    procs.update(extra_procs)
    make_tree(str(tmp_path), net={
        "tcp": [LISTEN, EST, TW], "udp": [UDP],
        "unix": [unix_line(444, "/run/a b.sock", listening=True), unix_line(445, None)],
    }, procs=procs)
    os.makedirs(os.path.join(str(tmp_path), "self"), exist_ok=True)        # non-numeric: ignored
    os.makedirs(os.path.join(str(tmp_path), "0099x"), exist_ok=True)
    return str(tmp_path)


def by_inode(snap):
    return {c.inode: c for c in snap}


def test_all_owners_sorted(impl, tmp_path):
    snap = impl.connections("all", proc_root=tree(tmp_path), byteorder="little")
    c = by_inode(snap)
    assert [(o.pid, o.fd, o.name) for o in c[111].owners] == [
        (40, 6, "nginx"), (40, 9, "nginx"), (300, 6, "nginx"), (1000, 6, "nginx")]
    assert c[111].pids == (40, 300, 1000)
    assert c[222].owners == ((300, 7, "nginx"),)
    assert c[333].owners == (procnet.Owner(77, 3, "dns d"),)
    assert c[444].owners == ((55, 8, None),)
    assert c[445].owners == ()
    tw = [x for x in snap if x.state == "TIME_WAIT"]
    assert len(tw) == 1 and tw[0].owners == () and tw[0].inode == 0
    assert snap.denied_pids == () and snap.complete
    assert snap.processes == 5          # pid 66 has no fd directory


def test_owners_false_skips_the_walk(impl, tmp_path):
    snap = impl.connections("all", owners=False, proc_root=tree(tmp_path))
    assert all(c.owners == () for c in snap) and snap.processes == 0


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_threads_do_not_change_the_answer(impl, tmp_path, threads):
    procs = {pid: {"comm": "w%d" % pid, "fd": {fd: sock(5000 + (pid * 7 + fd) % 50) for fd in range(3, 9)}}
             for pid in range(100, 260)}
    lines = [inet_line(i, "0100007F:%04X" % (1000 + i), "00000000:0000", 0x0A, 5000 + i) for i in range(50)]
    make_tree(str(tmp_path), net={"tcp": lines}, procs=procs)
    one = impl.connections("tcp", proc_root=str(tmp_path), threads=1, byteorder="little")
    many = impl.connections("tcp", proc_root=str(tmp_path), threads=threads, byteorder="little")
    assert [c.as_tuple() for c in one] == [c.as_tuple() for c in many]
    assert sum(len(c.owners) for c in many) == 160 * 6


def test_pid_filter_walks_only_those_pids(impl, tmp_path):
    snap = impl.connections("all", proc_root=tree(tmp_path), pid=[300, 77], byteorder="little")
    got = {c.inode: [o.pid for o in c.owners] for c in snap}
    # sockets without an owner among those pids are dropped; others keep only those owners
    assert got == {111: [300], 222: [300], 333: [77]}
    assert snap.processes == 2


def test_socket_filters(impl, tmp_path):
    root = tree(tmp_path)
    kw = dict(proc_root=root, byteorder="little")
    assert {c.inode for c in impl.connections("all", state="LISTEN", **kw)} == {111, 444}
    assert {c.inode for c in impl.connections("all", state=["ESTABLISHED", "TIME_WAIT"], **kw)} == {222, 0}
    assert {c.inode for c in impl.connections("all", lport=8080, **kw)} == {111, 222, 0}
    assert {c.inode for c in impl.connections("all", rport=0xC000, **kw)} == {222}
    assert {c.inode for c in impl.connections("all", uid=53, **kw)} == {333}
    assert {c.inode for c in impl.connections("udp", state="NONE", **kw)} == {333}
    assert {c.inode for c in impl.connections("unix", state="NONE", **kw)} == {445}


def test_missing_tables_are_not_errors(impl, tmp_path):
    make_tree(str(tmp_path), net={"tcp": [LISTEN]})
    snap = impl.connections("all", proc_root=str(tmp_path), byteorder="little")
    assert len(snap) == 1
    assert snap.tables["tcp"] == "read" and snap.tables["udplite6"] == "missing"
    assert snap.complete


def test_kind_selects_tables(impl, tmp_path):
    root = tree(tmp_path)
    assert {c.proto for c in impl.connections("inet", proc_root=root)} == {"tcp", "udp"}
    assert {c.proto for c in impl.connections("unix", proc_root=root)} == {"unix"}
    assert {c.proto for c in impl.connections("udp4", proc_root=root)} == {"udp"}
    assert set(impl.connections("tcp6", proc_root=root).tables) == {"tcp6"}


@pytest.mark.parametrize("make,errno_", [
    (lambda p: p / "nope", 2),
    (lambda p: (p / "file").write_text("x") and p / "file", 20),
    (lambda p: (p / "empty").mkdir() or p / "empty", 2),
])
def test_bad_proc_root(impl, tmp_path, make, errno_):
    root = make(tmp_path)
    with pytest.raises(procnet.ProcRootError) as ei:
        impl.connections(proc_root=str(root))
    assert ei.value.filename == str(root) and ei.value.errno == errno_
    assert ("No such file" in str(ei.value)) == (errno_ == 2 and root.name == "nope"), str(ei.value)
    assert str(root) in str(ei.value)
    assert isinstance(ei.value, procnet.ProcNetError) and isinstance(ei.value, OSError)


def test_symlink_loop_root(impl, tmp_path):
    os.symlink("loop", str(tmp_path / "loop"))
    with pytest.raises(procnet.ProcRootError) as ei:
        impl.connections(proc_root=str(tmp_path / "loop"))
    # the error says what failed, not that the root "is not a directory"
    assert ei.value.errno == errno.ELOOP and "symbolic links" in str(ei.value), ei.value


def test_pid_symlink_is_not_followed(impl, tmp_path):
    outside = tmp_path / "outside"
    make_tree(str(outside), procs={500: {"fd": {3: sock(111)}}})
    root = tmp_path / "root"
    make_tree(str(root), net={"tcp": [LISTEN]})
    os.symlink(str(outside / "500"), str(root / "500"))
    os.makedirs(str(root / "501"))
    os.symlink(str(outside / "500" / "fd"), str(root / "501" / "fd"))      # fd dir is a symlink
    snap = impl.connections("tcp", proc_root=str(root), byteorder="little")
    assert snap[0].owners == ()
    assert snap.denied_pids == (501,)   # its fd "directory" could not be opened as one


def test_parity_on_a_large_random_tree(both, tmp_path):
    import random
    rnd = random.Random(7)
    lines = []
    for i in range(3000):
        lines.append(inet_line(i, "%08X:%04X" % (rnd.getrandbits(32), rnd.getrandbits(16)),
                               "%08X:%04X" % (rnd.getrandbits(32), rnd.getrandbits(16)),
                               rnd.randint(1, 12), rnd.choice([0, rnd.getrandbits(20)]),
                               uid=rnd.randint(0, 70000)))
    unix = [unix_line(900000 + i, rnd.choice([None, "/p %d" % i, "@a%d" % i]), stype=rnd.choice([1, 2, 5]),
                      state=rnd.randint(1, 3), listening=rnd.random() < .2) for i in range(500)]
    procs = {pid: {"comm": "p%d" % pid, "fd": {fd: sock(rnd.choice([rnd.getrandbits(20), 900000 + fd]))
                                               for fd in range(rnd.randint(0, 30))}}
             for pid in rnd.sample(range(2, 40000), 150)}
    make_tree(str(tmp_path), net={"tcp": lines, "unix": unix}, procs=procs)
    a, b = (i.connections("all", proc_root=str(tmp_path)) for i in both)
    assert [c.as_tuple() for c in a] == [c.as_tuple() for c in b]
    assert (a.skipped, a.tables, a.denied_pids, a.processes) == (b.skipped, b.tables, b.denied_pids, b.processes)


NOBODY_SCRIPT = r"""
import json, sys
sys.path[:0] = %r
import procnet
s = procnet.connections("all", proc_root=%r, backend=%r, byteorder="little")
print(json.dumps({"denied": list(s.denied_pids), "owners": {c.inode: [o.pid for o in c.owners] for c in s},
                  "complete": s.complete}))
"""


def test_unreadable_fd_dirs_are_reported(impl):
    # As root nothing is unreadable, so read the tree as nobody; 0700 fd dirs
    # owned by root then behave like other users' /proc/PID/fd.
    root = tempfile.mkdtemp(prefix="procnet-denied-")
    try:
        os.chmod(root, 0o755)
        tree_root = os.path.join(root, "proc")
        make_tree(tree_root, net={"tcp": [LISTEN, EST]}, procs={
            10: {"fd": {3: sock(111)}}, 20: {"fd": {3: sock(111), 4: sock(222)}}})
        for dirpath, dirs, files in os.walk(root):
            for d in dirs:
                os.chmod(os.path.join(dirpath, d), 0o755)
            for f in files:
                if not os.path.islink(os.path.join(dirpath, f)):
                    os.chmod(os.path.join(dirpath, f), 0o644)
        os.chmod(os.path.join(tree_root, "20", "fd"), 0o700)      # like another user's process
        pkg = os.path.dirname(os.path.dirname(procnet.__file__))
        script = NOBODY_SCRIPT % ([pkg, os.path.dirname(__file__)], tree_root, impl.name)
        out = run_as_nobody([sys.executable, "-c", script])
        assert out.returncode == 0, out.stderr
        import json
        got = json.loads(out.stdout)
        assert got["denied"] == [20]
        assert got["owners"] == {"111": [10], "222": []}
        assert got["complete"] is False
    finally:
        shutil.rmtree(root)
