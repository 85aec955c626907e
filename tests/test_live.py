"""Live tests: real sockets of every kind, found with their exact owners; vs ss."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest


pytestmark = pytest.mark.live

EXPECT_PROTO = {
    "tcp_listen": "tcp", "tcp_client": "tcp", "tcp_accepted": "tcp", "shared": "tcp",
    "tcp6_listen": "tcp6", "tcp6_client": "tcp6", "tcp6_accepted": "tcp6", "tcp6_mapped": "tcp6",
    "udp": "udp", "udp_connected": "udp", "udp6": "udp6", "udplite": "udplite", "udplite6": "udplite6",
    "raw": "raw", "raw6": "raw6", "packet": "packet", "netlink": "netlink",
    "unix_stream": "unix", "unix_dgram": "unix", "unix_seqpacket": "unix", "unix_abstract": "unix",
    "unix_pair_a": "unix", "unix_pair_b": "unix",
}




def test_every_kind_found_with_exact_owners(impl, live):
    if os.geteuid() == 0:
        assert not {"raw", "raw6", "packet"} & set(live.skipped), live.skipped
    snap = impl.connections("all")
    got = {c.inode: c for c in snap}
    for inode, (name, owners) in live.expected().items():
        c = got.get(inode)
        assert c is not None, "%s (inode %d) not found" % (name, inode)
        assert c.proto == EXPECT_PROTO[name], name
        assert {(o.pid, o.fd) for o in c.owners} == owners, name
        assert all(o.name for o in c.owners), name


def test_fields_of_live_sockets(impl, live):
    got = {c.inode: c for c in impl.connections("all")}
    c = got[live.inode("tcp_listen")]
    assert c.laddr == live.socks["tcp_listen"].getsockname() and c.state == "LISTEN"
    assert c.uid == os.geteuid() and c.type == socket.SOCK_STREAM
    c = got[live.inode("tcp_client")]
    assert c.raddr == live.socks["tcp_listen"].getsockname() and c.state == "ESTABLISHED"
    c = got[live.inode("tcp6_listen")]
    assert c.laddr.ip == "::1" and c.family == socket.AF_INET6
    c = got[live.inode("tcp6_mapped")]
    assert c.laddr.ip == "::ffff:127.0.0.1" and c.is_ipv4_mapped
    c = got[live.inode("unix_stream")]
    assert c.laddr.endswith("stream with spaces.sock") and c.state == "LISTEN"
    c = got[live.inode("unix_abstract")]
    assert c.laddr == "@procnet-live-%d" % os.getpid()
    assert got[live.inode("unix_seqpacket")].type == socket.SOCK_SEQPACKET
    assert got[live.inode("unix_dgram")].type == socket.SOCK_DGRAM
    assert got[live.inode("udp_connected")].state == "ESTABLISHED"
    assert got[live.inode("udp")].state == "NONE"
    if "udplite" in live.socks:
        assert got[live.inode("udplite")].protocol == 136
    if "netlink" in live.socks:
        assert got[live.inode("netlink")].laddr == live.socks["netlink"].getsockname()[0]
    if "raw" in live.socks:
        assert got[live.inode("raw")].protocol == socket.IPPROTO_ICMP


def test_backends_agree_live(both, live):
    # the host changes between two calls; compare our own, static sockets
    mine = set(live.expected())
    a, b = ([c.as_tuple() for c in i.connections("all") if c.inode in mine] for i in both)
    assert sorted(a, key=repr) == sorted(b, key=repr) and len(a) == len(mine)


def _ss_owners():
    # names and paths on the host may be any bytes
    out = subprocess.run(["ss", "-tuwxanpeO"], capture_output=True, check=True).stdout.decode(
        "utf-8", "surrogateescape")
    owners = {}
    for line in out.splitlines()[1:]:
        users, _, rest = line.partition("users:(")
        if not rest:
            continue
        pairs = {(int(p), int(f)) for p, f in re.findall(r"pid=(\d+),fd=(\d+)", rest)}
        m = re.search(r"\bino:(\d+)", rest)
        if line.startswith(("u_", "v_")):
            ino = int(users.split()[-3])     # ... <path> <ino> <peer> <peer ino>
        elif m:
            ino = int(m.group(1))
        else:
            continue
        owners[ino] = pairs
    return owners


@pytest.mark.skipif(not shutil.which("ss"), reason="ss (iproute2) is not installed")
def test_against_ss(impl, live):
    ss = _ss_owners()
    ours = {c.inode: {(o.pid, o.fd) for o in c.owners} for c in impl.connections("all") if c.owners}
    comparable = set()
    for inode, (name, owners) in live.expected().items():
        if name in ("packet", "netlink", "udplite", "udplite6", "raw", "raw6"):
            continue                    # ss -tuwx does not list these (raw: without ino:)
        assert ss.get(inode) == owners == ours.get(inode), name
        comparable.add(inode)
    # host-wide: every socket both see, same owners (a socket may come or go in between)
    common = set(ss) & set(ours)
    assert comparable <= common
    differ = [i for i in common if ss[i] != ours[i]]
    if differ:                          # retry once against host churn
        ss, ours2 = _ss_owners(), {c.inode: {(o.pid, o.fd) for o in c.owners}
                                   for c in impl.connections("all") if c.owners}
        differ = [i for i in differ if i in ss and i in ours2 and ss[i] != ours2[i]]
    assert not differ


PING_SCRIPT = textwrap.dedent("""
    import json, os, socket, sys
    sys.path[:0] = %r
    with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
        f.write("0 2147483647")
    socket.if_nameindex()
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    s4.bind(("0.0.0.0", 0))
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)
    s6.bind(("::", 0))
    import procnet
    snap = procnet.connections("icmp", backend=%r)
    print(json.dumps({
        "want": [os.fstat(s.fileno()).st_ino for s in (s4, s6)],
        "got": {c.inode: [c.proto, [o.pid for o in c.owners], c.laddr.port] for c in snap},
        "ports": [s4.getsockname()[1], s6.getsockname()[1]],
        "pid": os.getpid()}))
""")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")
def test_ping_sockets_in_a_private_netns(impl):
    # ping sockets need net.ipv4.ping_group_range: set it in a network
    # namespace of our own rather than on the host
    import procnet
    pkg = os.path.dirname(os.path.dirname(procnet.__file__))
    out = subprocess.run(["unshare", "--net", sys.executable, "-c", PING_SCRIPT % ([pkg], impl.name)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    got = {int(k): v for k, v in r["got"].items()}
    (i4, i6), (p4, p6) = r["want"], r["ports"]
    assert got[i4] == ["icmp", [r["pid"]], p4]
    assert got[i6] == ["icmp6", [r["pid"]], p6]
