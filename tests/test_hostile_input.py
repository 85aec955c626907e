"""Hostile proc_root trees and odd input: both backends end, refuse and count alike.

A FIFO or a character device where a table or a comm file should be used to
hang (open/read of a FIFO), spin (the C reader on /dev/zero) or exhaust memory
(the pure reader): each case runs in a child with a timeout, so a regression
fails the test instead of hanging the suite.
"""
import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

import procnet
from procfs_tree import inet_line, make_tree, sock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(procnet.__file__)))
LINE = inet_line(0, "0100007F:1F90", "00000000:0000", 0x0A, 111)
LINE6 = inet_line(0, "0" * 32 + ":1F90", "0" * 32 + ":0000", 0x0A, 111)
LINE2 = inet_line(1, "0100007F:1F91", "00000000:0000", 0x0A, 222)
FIFO_STATUS = "error: not a regular file"

CHILD = """
import json, sys, procnet
kind, root, backend = sys.argv[1:4]
s = procnet.connections(kind, proc_root=root, backend=backend, owner_source="procfs")
print(json.dumps({"tables": s.tables, "skipped": s.skipped, "complete": s.complete,
                  "rows": sorted([c.inode, sorted([o.pid, o.fd, o.name] for o in c.owners)] for c in s)}))
"""


def isolated(impl, kind, root):
    """connections(kind, proc_root=root) in a child that must end within the timeout."""
    try:
        p = subprocess.run([sys.executable, "-c", CHILD, kind, root, impl.name], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, PYTHONPATH=REPO))
    except subprocess.TimeoutExpired:
        pytest.fail("connections(%r) on %s did not end (%s backend)" % (kind, root, impl.name))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def char_device(path):
    """A /dev/zero-like node (major 1, minor 5): reads never end."""
    if os.geteuid() != 0:
        pytest.skip("mknod of a character device needs root")
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))


@pytest.mark.parametrize("node", ["fifo", "chardev"])
def test_special_file_at_a_table_is_refused(impl, tmp_path, node):
    root = make_tree(str(tmp_path / "proc"), net={"tcp6": [LINE6]},
                     procs={42: {"fd": {3: sock(111)}}})
    path = os.path.join(root, "net", "tcp")
    os.mkfifo(path) if node == "fifo" else char_device(path)
    r = isolated(impl, "tcp", root)
    # the table fails with its reason; the other table still reads
    assert r["tables"] == {"tcp": FIFO_STATUS, "tcp6": "read"} and r["complete"] is False
    assert r["rows"] == [[111, [[42, 3, "proc42"]]]]


def test_directory_at_a_table_is_refused(impl, tmp_path):
    root = make_tree(str(tmp_path / "proc"))
    os.mkdir(os.path.join(root, "net", "tcp"))
    s = impl.connections("tcp4", proc_root=root)
    assert s.tables == {"tcp": "error: " + os.strerror(errno.EISDIR)} and not s.complete


@pytest.mark.parametrize("node", ["fifo", "chardev"])
def test_special_file_at_comm_is_an_unknown_name(impl, tmp_path, node):
    root = make_tree(str(tmp_path / "proc"), net={"tcp": [LINE, LINE2]},
                     procs={42: {"comm": None, "fd": {3: sock(111)}}, 43: {"fd": {4: sock(222)}}})
    path = os.path.join(root, "42", "comm")
    os.mkfifo(path) if node == "fifo" else char_device(path)
    r = isolated(impl, "tcp4", root)
    assert r["tables"] == {"tcp": "read"} and r["complete"] is True
    assert r["rows"] == [[111, [[42, 3, None]]], [222, [[43, 4, "proc43"]]]]


@pytest.fixture
def sparse_dir(tmp_path):
    """Where a 1 GiB sparse file reads fast: tmpfs (reading holes on ext4 costs seconds)."""
    if not os.path.isdir("/dev/shm"):
        yield str(tmp_path)
        return
    d = tempfile.mkdtemp(prefix="procnet-hostile-", dir="/dev/shm")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_oversized_table_fails_and_ends(impl, sparse_dir):
    # a sparse regular file one byte past the cap (1 GiB of NULs, no newline):
    # read to the cap, then the table fails as too large, nothing else lost
    from procnet._pure import file_read
    root = make_tree(os.path.join(sparse_dir, "proc"), net={"tcp6": []})
    with open(os.path.join(root, "net", "tcp"), "wb") as f:
        f.write((LINE + "\n").encode())
        f.truncate(file_read.MAX_FILE + 1)
    s = impl.connections("tcp", proc_root=root, owners=False)
    assert s.tables == {"tcp": "error: " + os.strerror(errno.EFBIG), "tcp6": "read"}
    assert list(s) == [] and s.skipped == {} and not s.complete


def test_table_at_the_cap_is_read(impl, sparse_dir):
    # exactly MAX_FILE bytes is still a table: the cap refuses only what is past it
    from procnet._pure import file_read
    root = make_tree(os.path.join(sparse_dir, "proc"))
    body = (LINE + "\n").encode()
    with open(os.path.join(root, "net", "tcp"), "wb") as f:
        f.write(b"header\n" + body)
        f.truncate(file_read.MAX_FILE - 1)     # one long NUL line: malformed, counted
        f.seek(0, os.SEEK_END)
        f.write(b"\n")
    s = impl.connections("tcp4", proc_root=root, owners=False)
    assert s.tables == {"tcp": "read"} and [c.inode for c in s] == [111]
    assert s.skipped == {"tcp": 1}


@pytest.mark.parametrize("headers", [False, True])
def test_missing_header_is_counted(both, tmp_path, headers):
    # a first line that decodes as data is not a header: counted in skipped
    root = make_tree(str(tmp_path / "proc"), net={"tcp": [LINE, LINE2]}, headers=headers)
    got = []
    for impl in both:
        s = impl.connections("tcp4", proc_root=root, owners=False)
        got.append(([c.inode for c in s], s.skipped, s.complete))
    assert got[0] == got[1]
    assert got[0] == (([111, 222], {}, True) if headers else ([222], {"tcp": 1}, False))


def test_missing_header_in_other_tables(both, tmp_path):
    unix = "0000000000000000: 00000002 00000000 00010000 0001 01 333 /run/a.sock"
    packet = "0000000000000000 3        3  0003   2     1 0      0      444"
    netlink = "0000000000000000 0   1234       00000000 0        0        0     2        0        555"
    root = make_tree(str(tmp_path / "proc"), headers=False,
                     net={"unix": [unix, unix], "packet": [packet, packet], "netlink": [netlink, netlink]})
    got = []
    for impl in both:
        s = impl.connections("all", proc_root=root, owners=False)
        got.append((sorted((c.proto, c.inode) for c in s), s.skipped))
    assert got[0] == got[1]
    assert got[0] == ([("netlink", 555), ("packet", 444), ("unix", 333)],
                      {"unix": 1, "packet": 1, "netlink": 1})


def test_only_a_data_line(both, tmp_path):
    # one line, no newline, no header: counted, not silently dropped
    root = make_tree(str(tmp_path / "proc"), net={"tcp": LINE})
    for impl in both:
        s = impl.connections("tcp4", proc_root=root, owners=False)
        assert (list(s), s.skipped, s.complete) == ([], {"tcp": 1}, False), impl


def test_long_lines_stream_alike(both, tmp_path):
    # overlong lines that straddle the reads, as header and as body, with
    # good lines between: both backends split and count the same way
    long = "x" * 5000
    text = long + "\n" + LINE + "\n" + "y" * 300000 + "\n" + LINE2 + "\n" + "z" * 4097
    root = make_tree(str(tmp_path / "proc"), net={"tcp": text})
    got = []
    for impl in both:
        s = impl.connections("tcp4", proc_root=root, owners=False)
        got.append(([c.inode for c in s], s.skipped))
    assert got[0] == got[1] == ([111, 222], {"tcp": 2})


POLL_CHILD = """
import json, sys, procnet
root, backend = sys.argv[1:3]
with procnet.Poller("tcp4", proc_root=root, backend=backend, owner_source="procfs") as p:
    polls = [p.poll(), p.poll()]
print(json.dumps([sorted([c.inode, sorted([o.pid, o.fd, o.name] for o in c.owners)] for c in x.snapshot)
                  for x in polls]))
"""


@pytest.mark.parametrize("node", ["fifo", "chardev"])
def test_special_files_in_a_process_dir_under_a_poller(impl, tmp_path, node):
    # the owner cache reads PID/stat and task/TID/schedstat: unreadable there
    # means "walk it", never a hang
    root = make_tree(str(tmp_path / "proc"), net={"tcp": [LINE]}, procs={42: {"fd": {3: sock(111)}}})
    os.makedirs(os.path.join(root, "42", "task", "42"))
    for rel in ("stat", "schedstat", "task/42/stat", "task/42/schedstat"):
        path = os.path.join(root, "42", rel)
        os.mkfifo(path) if node == "fifo" else char_device(path)
    try:
        p = subprocess.run([sys.executable, "-c", POLL_CHILD, root, impl.name], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, PYTHONPATH=REPO))
    except subprocess.TimeoutExpired:
        pytest.fail("a Poller on %s did not end (%s backend)" % (root, impl.name))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [[[111, [[42, 3, "proc42"]]]]] * 2


def test_fifo_for_a_directory_is_refused_alike(both, tmp_path):
    # PID/fd is opened O_DIRECTORY: a FIFO there fails at once (ENOTDIR) and
    # the pid is reported, as a directory we may not read would be
    root = make_tree(str(tmp_path / "proc"), net={"tcp": [LINE]},
                     procs={42: {"fd_dir": False}, 43: {"fd": {3: sock(111)}}})
    os.mkfifo(os.path.join(root, "42", "fd"))
    got = []
    for impl in both:
        s = impl.connections("tcp4", proc_root=root)
        got.append(([(c.inode, [o[:2] for o in c.owners]) for c in s], s.denied_pids))
    assert got[0] == got[1] == ([(111, [(43, 3)])], (42,))
