"""`procnet -c --events`: the CLI's continuous mode on the Poller, one line per change."""
import json
import os
import select
import socket
import subprocess
import sys
import time

import pytest

import procnet
from procfs_tree import be_words, inet_line, le_words, make_tree, sock

ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(procnet.__file__)))


def read_lines(p, want, timeout=20.0):
    """Lines from p.stdout until `want(lines)` is true (or the time is up)."""
    lines, buf, end = [], b"", time.monotonic() + timeout
    fd = p.stdout.fileno()
    while time.monotonic() < end and not want(lines):
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            lines += [json.loads(l) if l.startswith(b"{") else l.decode() for l in done]
    return lines


@pytest.mark.live
@pytest.mark.parametrize("backend", ["native", "pure"])
def test_json_events_follow_a_connection(backend):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "procnet", "--events", "--json", "-tanp", "-c", "0.1",
                          "--port", str(port), "--backend", backend],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        first = read_lines(p, lambda ls: len(ls) >= 1)
        assert [(e["event"], e["laddr"]["port"], e["state"]) for e in first] == [("open", port, "LISTEN")]
        assert [o["pid"] for o in first[0]["owners"]] == [os.getpid()]
        c = socket.create_connection(("127.0.0.1", port))
        a, _ = srv.accept()
        opened = read_lines(p, lambda ls: len(ls) >= 2)
        assert sorted((e["event"], e["state"]) for e in opened) == [("open", "ESTABLISHED")] * 2
        assert {e["inode"] for e in opened} == {os.fstat(c.fileno()).st_ino, os.fstat(a.fileno()).st_ino}
        # the accepted end goes to a child: its owner set changes, once (the
        # child says when it let go of the client end: under emulation it may
        # run seconds late, and a poll meanwhile sees it hold that end too)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(c.fileno())
            os.write(ready_w, b"k")
            time.sleep(30)
            os._exit(0)
        os.close(ready_w)
        assert os.read(ready_r, 1) == b"k"
        os.close(ready_r)
        a_ino, srv_ino = os.fstat(a.fileno()).st_ino, os.fstat(srv.fileno()).st_ino
        a.close()

        def owners_of(e):
            return sorted({o["pid"] for o in e["owners"]})

        def settled(ls):
            return any(e["inode"] == a_ino and owners_of(e) == [pid] for e in ls) and \
                any(e["inode"] == srv_ino and owners_of(e) == sorted([os.getpid(), pid]) for e in ls)
        # the child shares the listener, and takes the accepted end over (a poll
        # may see the moment between the fork and the close: both then own it)
        owners = read_lines(p, settled)
        assert settled(owners)
        assert {(e["event"], e["inode"]) for e in owners} == {("owners", a_ino), ("owners", srv_ino)}
        c_ino = os.fstat(c.fileno()).st_ino
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()                         # RST: both ends gone, no TIME_WAIT row
        closed = read_lines(p, lambda ls: len(ls) >= 3)
        assert sorted((e["event"], e["inode"]) for e in closed) == sorted(
            [("close", a_ino), ("close", c_ino), ("owners", srv_ino)])
        assert read_lines(p, lambda ls: False, timeout=0.5) == []      # each change once
    finally:
        p.kill()
        p.communicate(timeout=10)
        srv.close()


def test_text_events_on_a_fixture_tree(tmp_path):
    root = str(tmp_path / "proc")
    lo = (le_words if sys.byteorder == "little" else be_words)(bytes([127, 0, 0, 1]))  # as this kernel prints
    make_tree(root, {"tcp": [inet_line(0, lo + ":0050", "00000000:0000", 0x0A, 111)]},
              {42: {"comm": "web", "fd": {3: sock(111)}}})
    r = subprocess.run([sys.executable, "-m", "procnet", "--events", "-tlnp", "--proc-root", root],
                       capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["open", "tcp", "127.0.0.1:80", "0.0.0.0:*", "LISTEN", "42/web"]


def test_version_says_whether_bpf_serves():
    r = subprocess.run([sys.executable, "-m", "procnet", "--version"], capture_output=True, text=True,
                       env=ENV, timeout=60)
    assert r.returncode == 0
    assert "BPF owner source: available" in r.stdout or "BPF owner source: unavailable (" in r.stdout
