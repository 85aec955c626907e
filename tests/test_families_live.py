"""MPTCP sockets on this kernel's loopback (CONFIG_MPTCP=y, CONFIG_INET_MPTCP_DIAG=y):
found by both backends with exactly their owners, as ``ss -Maenp`` reports them."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import procnet

IPPROTO_MPTCP = 262

# A listener shared by a parent and its forked child, a connection (both ends,
# one in each process) and an IPv6 listener; prints what it made, holds it
# until stdin closes.
HOLDER = textwrap.dedent("""
    import json, os, socket, sys
    P = 262
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM, P)
    srv.bind(("127.0.0.1", 0)); srv.listen(7)
    six = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, P)
    six.bind(("::1", 0)); six.listen(3)
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM, P)
        cli.connect(srv.getsockname())
        os.write(w, json.dumps([cli.fileno(), cli.getsockname()[1]]).encode())
        os.read(0, 1)
        os._exit(0)
    acc, _ = srv.accept()
    cfd, cport = json.loads(os.read(r, 100))
    ino = lambda s: os.fstat(s.fileno()).st_ino
    print(json.dumps({"parent": os.getpid(), "child": child, "port": srv.getsockname()[1],
                      "port6": six.getsockname()[1], "cport": cport,
                      "listen": [ino(srv), srv.fileno()], "listen6": [ino(six), six.fileno()],
                      "accepted": [ino(acc), acc.fileno()], "client_fd": cfd}), flush=True)
    sys.stdin.read()
    os.waitpid(child, 0)
""")


@pytest.fixture(scope="module")
def mptcp():
    import socket
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP).close()
    except OSError as e:
        pytest.skip("no MPTCP here: %s" % e)
    p = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        info = json.loads(p.stdout.readline())
        yield info
    finally:
        p.stdin.close()
        p.wait(timeout=30)


def _client_inode(info):
    return os.stat("/proc/%d/fd/%d" % (info["child"], info["client_fd"])).st_ino


def expected(info):
    """inode -> (proto, lport, rport, state, owners) of what the holder made."""
    parent, child = info["parent"], info["child"]
    ino, fd = info["listen"]
    ino6, fd6 = info["listen6"]
    acc, afd = info["accepted"]
    # the child inherited every socket the parent had before fork()
    return {
        ino: ("mptcp", info["port"], 0, "LISTEN", ((parent, fd), (child, fd))),
        ino6: ("mptcp6", info["port6"], 0, "LISTEN", ((parent, fd6), (child, fd6))),
        acc: ("mptcp", info["port"], info["cport"], "ESTABLISHED", ((parent, afd),)),
        _client_inode(info): ("mptcp", info["cport"], info["port"], "ESTABLISHED",
                              ((child, info["client_fd"]),)),
    }


def found(snap, inodes):
    return {c.inode: (c.proto, c.laddr.port, c.raddr.port, c.state, tuple((o.pid, o.fd) for o in c.owners))
            for c in snap if c.inode in inodes}


def test_mptcp_sockets_and_their_owners(impl, mptcp):
    want = expected(mptcp)
    snap = impl.connections("mptcp")
    assert snap.tables == {"mptcp": "read", "mptcp6": "read"}
    assert snap.sources == {"mptcp": "netlink", "mptcp6": "netlink"}
    assert found(snap, want) == want
    for c in snap:
        if c.inode in want:
            assert c.protocol == IPPROTO_MPTCP and c.type.name == "SOCK_STREAM"
            assert c.laddr.ip == ("::1" if c.proto == "mptcp6" else "127.0.0.1")
    # their TCP subflows are in the tcp tables too, under the same inode (as ss -t
    # shows them): the same ports, not new sockets
    subflows = {c.inode: (c.laddr.port, c.raddr.port) for c in impl.connections("tcp", owners=False)
                if c.inode in want}
    assert all(ports == want[i][1:3] for i, ports in subflows.items())


def test_mptcp_filters(impl, mptcp):
    want = expected(mptcp)
    listeners = impl.connections("mptcp", state="LISTEN")
    assert {i for i in want if want[i][3] == "LISTEN"} <= {c.inode for c in listeners}
    assert all(c.state == "LISTEN" for c in listeners)
    on_port = impl.connections("mptcp4", lport=mptcp["port"])
    assert {c.inode for c in on_port} == {mptcp["listen"][0], mptcp["accepted"][0]}
    to_port = impl.connections("mptcp", rport=mptcp["port"], laddr="127.0.0.1")
    assert {c.inode for c in to_port} == {_client_inode(mptcp)}
    mine = impl.connections("mptcp", pid=mptcp["child"])
    assert {c.inode for c in mine} == {mptcp["listen"][0], mptcp["listen6"][0], _client_inode(mptcp)}


def _ss():
    p = subprocess.run(["ss", "-M", "-a", "-e", "-n", "-p"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines()[1:]:
        m = re.search(r"\bino:(\d+)", line)
        if not m:
            continue
        f = line.split()
        users = tuple(sorted((int(pid), int(fd)) for pid, fd in re.findall(r"pid=(\d+),fd=(\d+)", line)))
        lport = int(f[3].rsplit(":", 1)[1])
        peer = f[4].rsplit(":", 1)[1]
        state = {"ESTAB": "ESTABLISHED", "UNCONN": "CLOSE"}.get(f[0], f[0])
        out[int(m.group(1))] = (lport, 0 if peer == "*" else int(peer), state, users)
    return out


@pytest.mark.skipif(not shutil.which("ss"), reason="ss (iproute2) is not installed")
def test_mptcp_equals_ss(impl, mptcp):
    want = expected(mptcp)
    ss = _ss()
    snap = impl.connections("mptcp")
    ours = {c.inode: (c.laddr.port, c.raddr.port, c.state, tuple((o.pid, o.fd) for o in c.owners))
            for c in snap}
    for ino in want:
        assert ours[ino] == ss[ino], ino
    # every MPTCP socket ss lists (others' too), with the same owners; sockets
    # come and go between the two calls, so only those in both are compared
    both = set(ss) & set(ours)
    assert set(want) <= both
    assert {i: ours[i] for i in both} == {i: ss[i] for i in both}


def test_poller_follows_mptcp_sockets(impl):
    import socket
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP).close()
    except OSError as e:
        pytest.skip("no MPTCP here: %s" % e)
    with procnet.Poller("mptcp", backend=impl.name) as poller:
        poller.poll()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        ino = os.fstat(s.fileno()).st_ino
        p = poller.poll()
        opened = [c for c in p.opened if c.inode == ino]
        assert [(c.proto, c.state, [o.pid for o in c.owners]) for c in opened] == [
            ("mptcp", "LISTEN", [os.getpid()])]
        s.close()
        p = poller.poll()
        assert [c.inode for c in p.closed if c.inode == ino] == [ino]
