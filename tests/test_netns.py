"""Every network namespace, against the real kernel (issue 15).

The tests build real namespaces (and always remove them): named ones (``ip
netns add``, holders inside via ``ip netns exec``), unnamed ones (``unshare
--net``), a named one with no process left whose sockets a host process holds
(it setns()ed in, opened them and setns()ed back), one whose creator handed
its sockets over SCM_RIGHTS and exited, a process that setns()es after
opening sockets, and one namespace per family procnet lists (tcp, udp, unix,
raw, packet, netlink, mptcp). Each holder reports its own sockets (inode, fd,
the namespace the socket was made in, the kernel's protocol name): that is the
truth, not a scanner. Checked on both backends:

- ``netns="all"``: every socket in its namespace (``Connection.netns``) with
  exactly its owners; ``Snapshot.namespaces`` names, members and sources;
- ``nsenter --net=<ns> ss -anpeO``: the same owners in every namespace;
- ``netns=None``: the other namespaces' sockets counted in ``unlisted`` and
  ``other_netns``, ``complete`` False; ``netns=`` a name path, a pid, an inode;
- without CAP_SYS_ADMIN (setpriv) the text route where a member exists, the
  process-less namespaces named with an error; as nobody likewise;
- a Poller(netns="all") sees a namespace's listener open and close.

The pure backend enters namespaces only where Python has ``os.setns`` (3.12+);
before that it reads a member's ``PID/net`` text and cannot list a namespace
without a member: those sockets must then be counted, not dropped.
"""
import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

import procnet
from conftest import run_as_nobody

pytestmark = [pytest.mark.root, pytest.mark.live]

HERE = os.path.dirname(os.path.abspath(__file__))
HOLDER = os.path.join(HERE, "netns_holder.py")
PKG = os.path.dirname(os.path.dirname(procnet.__file__))
PREFIX = "pnt-"
FAMILIES = ("tcp", "udp", "unix", "raw", "packet", "netlink", "mptcp")
# ss's netids for the families, and the query that lists them all (netlink apart: no owners)
SS_QUERY = "tcp,udp,raw,unix,packet,mptcp"
PURE_ENTERS = hasattr(os, "setns")


def _need_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    for tool in ("ip", "unshare", "nsenter", "ss", "setpriv"):
        if not shutil.which(tool):
            pytest.skip("needs %s" % tool)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(("ip",) + args, capture_output=True, text=True, timeout=30, check=check)


def _drop_stale() -> None:
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX):
            _ip("netns", "del", name, check=False)


def ns_inode(path: str) -> int:
    return os.stat(path).st_ino


HOST_NS = ns_inode("/proc/self/ns/net")


class Holder:
    """One netns_holder.py process (with its wrapper's argv in front)."""

    def __init__(self, prefix, steps, pass_fds=(), wait=True) -> None:
        self.proc = subprocess.Popen(list(prefix) + [sys.executable, HOLDER, json.dumps(steps)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     pass_fds=pass_fds, env=dict(os.environ, PYTHONPATH=PKG))
        self.info = None
        if wait:
            self.read()

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise RuntimeError("holder failed (exit %s)" % self.proc.returncode)
        self.info = json.loads(line)
        return self.info

    @property
    def pid(self) -> int:
        return self.info["pid"]

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for pid in (self.info or {}).get("children", ()):
            try:
                os.kill(pid, 9)
            except OSError:
                pass


class World:
    """The namespaces, holders and the sockets they made (the truth)."""

    def __init__(self) -> None:
        self.holders = []
        self.names = []                 # ip netns names created
        self.ns = {}                    # label (name or "unnamed-N") -> inode
        self.path = {}                  # inode -> a file that enters it
        self.members = collections.defaultdict(set)    # inode -> holder pids in it
        self.expected = {}              # inode -> dict(label, ns, owners, proto, fd, pid)

    def netns_add(self, name: str) -> int:
        _ip("netns", "add", name)
        self.names.append(name)
        ino = ns_inode("/run/netns/" + name)
        self.ns[name] = ino
        self.path[ino] = "/run/netns/" + name
        return ino

    def hold(self, prefix, steps, member_of=None, **kw) -> Holder:
        h = Holder(prefix, steps, **kw)
        self.holders.append(h)
        if kw.get("wait", True):
            self.note(h, member_of)
        return h

    def note(self, h: Holder, member_of=None) -> None:
        if member_of is not None:
            self.members[member_of].add(h.pid)
            self.members[member_of].update(h.info["children"])
        for label, s in h.info["socks"].items():
            owners = {(h.pid, s["fd"])} | {(c, s["fd"]) for c in h.info["children"]}
            self.expected[s["inode"]] = dict(s, label=label, owners=owners, pid=h.pid)

    def in_ns(self, ino: int):
        return {i: e for i, e in self.expected.items() if e["ns"] == ino}

    def close(self) -> None:
        for h in self.holders:
            h.close()
        for name in self.names:
            _ip("netns", "del", name, check=False)


@pytest.fixture(scope="module")
def world():
    _need_tools()
    _drop_stale()
    w = World()
    try:
        _build(w)
        yield w
    finally:
        w.close()


def _build(w: World) -> None:
    me = os.getpid()
    # named, with processes inside
    a = w.netns_add(PREFIX + "a")
    w.hold(["ip", "netns", "exec", PREFIX + "a"],
           [["lo"], ["open", "a.est", "tcp_est"], ["open", "a.udp", "udp"], ["open", "a.unix", "unix"],
            ["open", "a.pair", "unix_pair"]], member_of=a)
    b = w.netns_add(PREFIX + "b")
    w.hold(["ip", "netns", "exec", PREFIX + "b"],
           [["open", "b.tcp", "tcp"], ["open", "b.udp", "udp"], ["fork"]], member_of=b)
    # unnamed
    for i, steps in enumerate(([["lo"], ["open", "u0.est", "tcp_est"], ["open", "u0.unix", "unix"]],
                               [["open", "u1.tcp", "tcp"], ["open", "u1.udp", "udp"], ["fork"]])):
        h = Holder(["unshare", "--net"], steps)
        w.holders.append(h)
        ino = ns_inode("/proc/%d/ns/net" % h.pid)
        w.ns["unnamed-%d" % i] = ino
        w.path[ino] = "/proc/%d/ns/net" % h.pid
        w.note(h, member_of=ino)
    # named, no process left: a host process went in, opened, came back
    orphan = w.netns_add(PREFIX + "orphan")
    w.hold([], [["setns", "/run/netns/" + PREFIX + "orphan"], ["open", "orphan.tcp", "tcp"],
                ["open", "orphan.udp", "udp"], ["setns", "/proc/%d/ns/net" % me]], member_of=HOST_NS)
    # named, its creator handed its sockets off over SCM_RIGHTS and exited
    w.netns_add(PREFIX + "handoff")
    ours, theirs = socket.socketpair()
    try:
        recv = w.hold([], [["recv", ours.fileno(), ["handoff.tcp", "handoff.udp"]]],
                      pass_fds=(ours.fileno(),), wait=False)
        send = Holder(["ip", "netns", "exec", PREFIX + "handoff"],
                      [["open", "handoff.tcp", "tcp"], ["open", "handoff.udp", "udp"],
                       ["send", theirs.fileno(), ["handoff.tcp", "handoff.udp"]], ["exit"]],
                      pass_fds=(theirs.fileno(),))
        send.proc.wait(10)
        recv.read()
        w.note(recv, member_of=HOST_NS)
    finally:
        ours.close()
        theirs.close()
    # a process that setns()es after opening sockets: a member of b holding host sockets
    w.hold([], [["open", "mover.host_tcp", "tcp"], ["open", "mover.host_udp", "udp"],
                ["setns", "/run/netns/" + PREFIX + "b"], ["open", "mover.b_tcp", "tcp"]], member_of=b)
    # one namespace per family
    for fam in FAMILIES:
        ino = w.netns_add(PREFIX + "f-" + fam)
        w.hold(["ip", "netns", "exec", PREFIX + "f-" + fam], [["open", "f.%s" % fam, fam]], member_of=ino)
    # the truth's own check: every socket was made where the test meant it
    for e in w.expected.values():
        head, rest = e["label"].split(".", 1)
        if head == "mover":
            want = HOST_NS if rest.startswith("host") else b
        elif head == "f":
            want = w.ns[PREFIX + "f-" + rest]
        elif head in ("u0", "u1"):
            want = w.ns["unnamed-" + head[1]]
        else:
            want = w.ns[PREFIX + head]
        assert e["ns"] == want, e


def _unreachable(w: World, backend: str) -> set:
    """Namespaces this backend cannot list as root: the process-less ones for
    the pure backend without os.setns (no member whose PID/net it could read)."""
    if backend == "pure" and not PURE_ENTERS:
        return {w.ns[PREFIX + "orphan"], w.ns[PREFIX + "handoff"]}
    return set()


def _by_inode(snap):
    out = collections.defaultdict(list)
    for c in snap:
        out[c.inode].append(c)
    return out


def _owners(c):
    return {(o.pid, o.fd) for o in c.owners}


def _check_found(snap, expected: dict, where: str) -> None:
    """Each expected socket in `snap`, in its namespace, with exactly its owners."""
    by = _by_inode(snap)
    for ino, e in expected.items():
        conns = by.get(ino)
        assert conns, "%s: %s (inode %d, netns %d) not listed" % (where, e["label"], ino, e["ns"])
        for c in conns:
            assert c.netns == e["ns"], (where, e["label"], c)
            assert _owners(c) == e["owners"], (where, e["label"], c)


def _proto_counts(expected: dict) -> collections.Counter:
    return collections.Counter(e["proto"] for e in expected.values())


def test_all_namespaces(impl, world):
    snap = impl.connections("all", netns="all")
    gone = _unreachable(world, impl.name)
    reach = {i: e for i, e in world.expected.items() if e["ns"] not in gone}
    _check_found(snap, reach, impl.name)
    by = _by_inode(snap)
    lost = {i: e for i, e in world.expected.items() if e["ns"] in gone}
    assert not set(lost) & set(by), "listed from a namespace that could not be listed"
    entered = impl.name == "native" or PURE_ENTERS
    for label, ino in world.ns.items():
        ns = snap.namespaces[ino]
        assert ns.inode == ino
        if not label.startswith("unnamed"):
            assert label in ns.names, ns
        assert world.members[ino] <= set(ns.pids), ns
        if ino in gone:
            assert ns.source == "" and ns.error, ns
        else:
            assert ns.source == ("netlink" if entered else "procfs"), ns
            assert ns.error == "", ns
    for name in (PREFIX + "orphan", PREFIX + "handoff"):
        assert snap.namespaces[world.ns[name]].pids == ()
    assert HOST_NS in snap.namespaces
    # nothing of ours dropped: what could not be listed is counted
    for proto, n in _proto_counts(lost).items():
        assert snap.unlisted.get(proto, 0) >= n, (proto, snap.unlisted)
    assert gone <= set(snap.other_netns) | {i for i, ns in snap.namespaces.items() if ns.error}
    if gone:
        assert not snap.complete
    assert not set(world.ns.values()) - gone & set(snap.other_netns)


def test_both_backends_agree(both, world):
    """Where both list a namespace, they list our sockets alike (netns, owners, fields)."""
    native, pure = (impl.connections("all", netns="all") for impl in both)
    gone = _unreachable(world, "pure")
    n, p = _by_inode(native), _by_inode(pure)
    textless = {}
    for ino, e in world.expected.items():
        if e["ns"] in gone:
            continue
        if e["proto"].startswith("MPTCP") and not PURE_ENTERS:
            # mptcp has no text table: where pure reads text, a socket is there only
            # as its tcp subflow (a listener), else counted in unlisted, not dropped
            if ino not in p:
                textless[e["proto"]] = textless.get(e["proto"], 0) + 1
            continue
        key = lambda c: (c.proto, c.laddr, c.raddr, c.state, c.netns, c.owners)   # noqa: E731
        assert sorted(map(key, n[ino])) == sorted(map(key, p[ino])), e["label"]
    for proto, count in textless.items():
        assert pure.unlisted.get(proto, 0) >= count, (proto, pure.unlisted)
        assert not pure.complete


_USERS = re.compile(r'users:\(\((.*?)\)\)')
_USER = re.compile(r'\("(?:[^"\\]|\\.)*",pid=(\d+),fd=(\d+)\)')


def _ss(path: str, query: str):
    """`ss -anpeO` inside the namespace: [(netid, inode or None, {(pid, fd)}, line)]."""
    out = subprocess.run(["nsenter", "--net=" + path, "ss", "-A", query, "-anpeO"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = []
    for line in out.stdout.splitlines()[1:]:
        tok = line.split()
        if len(tok) < 6:
            continue
        m = re.search(r"\bino:(\d+)", line)
        ino = int(m.group(1)) if m else None
        if tok[0].startswith("u_") and tok[5].isdigit():      # unix: the inode follows the path
            ino = int(tok[5])
        users = set()
        m = _USERS.search(line)
        if m:
            users = {(int(p), int(f)) for p, f in _USER.findall("(" + m.group(1) + ")")}
        rows.append((tok[0], ino, users, line))
    return rows


def test_matches_ss_in_every_namespace(impl, world):
    """procnet's owners of our sockets == `nsenter --net=NS ss -anpeO`'s, namespace by namespace."""
    gone = _unreachable(world, impl.name)
    for ino, path in world.path.items():
        if ino in gone:
            continue
        snap = impl.connections("all", netns=path)
        assert set(snap.namespaces) == {ino}
        by = _by_inode(snap)
        rows = _ss(path, SS_QUERY)
        nl = _ss(path, "netlink")
        for sino, e in world.in_ns(ino).items():
            conns = by.get(sino)
            assert conns, (path, e["label"])
            if e["proto"] == "NETLINK":     # ss names no netlink owners: match the port id
                assert any("0:%d" % conns[0].laddr in r[3].split() for r in nl), (e, conns)
                continue
            mine = [r for r in rows if r[1] == sino] or \
                [r for r in rows if r[1] is None and (e["pid"], e["fd"]) in r[2]]   # raw: no ino
            assert mine, (path, e["label"], "not in ss")
            for r in mine:
                assert r[2] == e["owners"], (e["label"], r[3])
            for c in conns:
                assert _owners(c) == mine[0][2], (e["label"], c, mine[0][3])
                assert c.netns == ino


def test_netns_none_counts_other_namespaces(impl, world):
    snap = impl.connections("all")
    by = _by_inode(snap)
    assert set(snap.namespaces) == {HOST_NS}
    here = world.in_ns(HOST_NS)
    _check_found(snap, here, "host")
    away = {i: e for i, e in world.expected.items() if e["ns"] != HOST_NS}
    assert not set(away) & set(by), "another namespace's socket listed with netns=None"
    for proto, n in _proto_counts(away).items():
        assert snap.unlisted.get(proto, 0) >= n, (proto, n, snap.unlisted)
    assert set(e["ns"] for e in away.values()) <= set(snap.other_netns)
    assert HOST_NS not in snap.other_netns
    assert not snap.complete


def test_kind_filter_counts_members_of_other_namespaces(impl, world):
    """kind="tcp": only TCP is counted, and what members of other namespaces hold is."""
    away = {i: e for i, e in world.expected.items() if e["ns"] != HOST_NS}
    held_away = {i: e for i, e in away.items() if e["pid"] not in world.members[HOST_NS]}
    tcp = impl.connections("tcp")
    assert tcp.unlisted.get("TCP", 0) >= _proto_counts(held_away)["TCP"]
    assert not {"UDP", "UNIX-STREAM", "NETLINK", "PACKET", "RAW"} & set(tcp.unlisted), tcp.unlisted
    assert not tcp.complete


@pytest.mark.xfail(strict=True, reason="a kind-filtered snapshot (not CL_ALL) does not ask the "
                   "sockets held by processes of a listed namespace for their own namespace "
                   "(pn_classify_unlisted): another namespace's sockets received over SCM_RIGHTS "
                   "or kept across setns() go uncounted")
def test_kind_filter_counts_sockets_held_from_here(impl, world):
    away = {i: e for i, e in world.expected.items() if e["ns"] != HOST_NS}
    tcp = impl.connections("tcp")
    assert tcp.unlisted.get("TCP", 0) >= _proto_counts(away)["TCP"], tcp.unlisted


@pytest.mark.parametrize("how", ["path", "pid", "inode", "proc_path"])
def test_select_one(impl, world, how):
    a = world.ns[PREFIX + "a"]
    pid = min(world.members[a])
    arg = {"path": "/run/netns/" + PREFIX + "a", "pid": pid, "inode": a,
           "proc_path": "/proc/%d/ns/net" % pid}[how]
    snap = impl.connections("all", netns=arg)
    assert set(snap.namespaces) == {a}
    assert snap.namespaces[a].names == (PREFIX + "a",)
    assert all(c.netns == a for c in snap), [c for c in snap if c.netns != a][:3]
    _check_found(snap, world.in_ns(a), how)
    assert HOST_NS in snap.other_netns


def test_select_one_with_a_mover(impl, world):
    """netns=b: the mover (a member of b) holds host sockets: counted, the host in other_netns."""
    b = world.ns[PREFIX + "b"]
    snap = impl.connections("all", netns="/run/netns/" + PREFIX + "b")
    _check_found(snap, world.in_ns(b), "b")
    by = _by_inode(snap)
    host_of_mover = {i: e for i, e in world.in_ns(HOST_NS).items() if e["label"].startswith("mover")}
    assert len(host_of_mover) == 2
    assert not set(host_of_mover) & set(by)
    for proto, n in _proto_counts(host_of_mover).items():
        assert snap.unlisted.get(proto, 0) >= n
    assert HOST_NS in snap.other_netns
    assert not snap.complete


def test_unknown_namespace_is_an_error(impl, world):
    with pytest.raises(procnet.ProcNetError):
        impl.connections("tcp", netns=0xFFFFFFF0)
    with pytest.raises(procnet.ProcNetError):
        impl.connections("tcp", netns="/etc/hostname")
    for other in ("uts", "mnt", "user"):        # nsfs files too, of other namespace types
        with pytest.raises(procnet.ProcNetError, match="not a network namespace"):
            impl.connections("tcp", netns="/proc/self/ns/" + other)


PROBE = r"""
import json, sys
import procnet
out = {}
for backend in sys.argv[1].split(","):
    try:
        s = procnet.connections("all", netns="all", backend=backend)
    except Exception as e:
        out[backend] = {"error": "%s: %s" % (type(e).__name__, e)}
        continue
    out[backend] = {
        "namespaces": {str(i): [n.source, n.error, list(n.pids), list(n.names)] for i, n in s.namespaces.items()},
        "socks": {str(c.inode): [c.netns, sorted([o.pid, o.fd] for o in c.owners)] for c in s},
        "unlisted": s.unlisted, "other_netns": list(s.other_netns), "complete": s.complete}
print(json.dumps(out))
"""


def _probe(prefix, backends=("native", "pure"), runner=None):
    argv = [sys.executable, "-c", PROBE, ",".join(backends)]
    if runner is not None:
        out = runner(argv)
    else:
        out = subprocess.run(prefix + argv, capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, PYTHONPATH=PKG))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_without_cap_sys_admin(world):
    """Root without CAP_SYS_ADMIN cannot setns: the text route where a member
    exists; the process-less namespaces named, with source "" and an error,
    their sockets counted in unlisted."""
    drop = ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin"]
    res = _probe(drop)
    gone = {world.ns[PREFIX + "orphan"], world.ns[PREFIX + "handoff"]}
    for backend, r in res.items():
        assert "error" not in r, r
        ns = {int(k): v for k, v in r["namespaces"].items()}
        for label, ino in world.ns.items():
            source, error, pids, names = ns[ino]
            if ino in gone:
                assert source == "" and error and pids == [], (backend, label, ns[ino])
            else:
                assert source == "procfs", (backend, label, ns[ino])
        assert ns[HOST_NS][0] in ("netlink", "procfs", "netlink+procfs")
        socks = {int(k): v for k, v in r["socks"].items()}
        lost = {}
        for ino, e in world.expected.items():
            if e["ns"] in gone:
                assert ino not in socks
                lost[ino] = e
                continue
            if e["proto"].startswith("MPTCP") and ino not in socks:
                lost[ino] = e   # no text table for mptcp: counted in unlisted, never dropped
                continue
            assert ino in socks, (backend, e["label"])
            assert socks[ino][0] == e["ns"], (backend, e["label"], socks[ino])
            assert {tuple(o) for o in socks[ino][1]} == e["owners"], (backend, e["label"])
        for proto, n in _proto_counts(lost).items():
            assert r["unlisted"].get(proto, 0) >= n, (backend, proto, r["unlisted"])
        assert not r["complete"]


def test_as_nobody(world):
    """nobody: namespaces whose members are root's are not readable (ns/net
    needs ptrace rights); a bind-mounted one is still named, with an error; a
    namespace of nobody's own process is listed from its PID/net text."""
    run_as_nobody([sys.executable, "-c", "pass"])   # skips where nobody cannot run this interpreter
    name = PREFIX + "nobody"
    _ip("netns", "add", name)
    h = None
    try:
        ino = ns_inode("/run/netns/" + name)
        h = Holder(["ip", "netns", "exec", name, "setpriv", "--reuid=nobody", "--regid=nogroup",
                    "--clear-groups"], [["open", "n.tcp", "tcp"], ["open", "n.unix", "unix"]])
        res = _probe(None, runner=run_as_nobody)
        for backend, r in res.items():
            assert "error" not in r, r
            ns = {int(k): v for k, v in r["namespaces"].items()}
            assert ns[ino][0] == "procfs" and h.pid in ns[ino][2], (backend, ns.get(ino))
            assert name in ns[ino][3]
            socks = {int(k): v for k, v in r["socks"].items()}
            for s in h.info["socks"].values():
                assert socks[s["inode"]] == [ino, [[h.pid, s["fd"]]]], (backend, s)
            for label in (PREFIX + "a", PREFIX + "orphan"):
                source, error, pids, names = ns[world.ns[label]]
                assert source == "" and error and label in names, (backend, label, ns[world.ns[label]])
            assert not r["complete"]
    finally:
        if h is not None:
            h.close()
        _ip("netns", "del", name, check=False)


def test_poller_sees_a_namespace_come_and_go(impl):
    _need_tools()
    name = PREFIX + "poll"
    _ip("netns", "del", name, check=False)
    poller = procnet.Poller("tcp", netns="all", backend=impl.name)
    h = None
    try:
        poller.poll()
        _ip("netns", "add", name)
        ino = ns_inode("/run/netns/" + name)
        h = Holder(["ip", "netns", "exec", name], [["open", "p.tcp", "tcp"]])
        s = h.info["socks"]["p.tcp"]
        p = poller.poll()
        opened = [c for c in p.opened if c.inode == s["inode"]]
        assert opened and all(c.netns == ino and _owners(c) == {(h.pid, s["fd"])} for c in opened), p.changes
        assert p.snapshot.namespaces[ino].names == (name,)
        h.close()
        h = None
        _ip("netns", "del", name)
        deadline = time.monotonic() + 5
        while True:
            p = poller.poll()
            closed = [c.conn for c in p.changes if c.event == "close" and c.conn.inode == s["inode"]]
            if closed or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert closed and all(c.netns == ino for c in closed), p.changes
        assert ino not in p.snapshot.namespaces
    finally:
        poller.close()
        if h is not None:
            h.close()
        _ip("netns", "del", name, check=False)


def _setns_python():
    """An interpreter with os.setns (3.12+) to run the pure backend's netlink
    route: PROCNET_TEST_SETNS_PYTHON, python3.1x on PATH, or a pyenv version."""
    import glob
    cands = [os.environ.get("PROCNET_TEST_SETNS_PYTHON", "")]
    cands += [shutil.which("python3.%d" % m) or "" for m in range(12, 20)]
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    cands += sorted(glob.glob(os.path.join(root, "versions", "3.1[2-9]*", "bin", "python3")))
    for c in cands:
        if not c:
            continue
        try:
            out = subprocess.run([c, "-c", "import os; print(hasattr(os, 'setns'))"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.stdout.strip() == "True":
            return c
    return None


@pytest.mark.skipif(PURE_ENTERS, reason="this interpreter has os.setns: the tests above cover it")
def test_pure_setns_route_on_a_newer_python(world):
    """The pure backend under Python >= 3.12 enters every namespace (os.setns),
    the process-less ones too, and finds every socket with exactly its owners."""
    py = _setns_python()
    if py is None:
        pytest.skip("no Python >= 3.12 here to run the pure backend's os.setns route")
    out = subprocess.run([py, "-c", PROBE, "pure"], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=PKG))
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout)["pure"]
    assert "error" not in r, r
    ns = {int(k): v for k, v in r["namespaces"].items()}
    for label, ino in world.ns.items():
        assert ns[ino][0] == "netlink" and not ns[ino][1], (label, ns[ino])
    socks = {int(k): v for k, v in r["socks"].items()}
    for ino, e in world.expected.items():
        assert socks.get(ino, [None])[0] == e["ns"], e["label"]
        assert {tuple(o) for o in socks[ino][1]} == e["owners"], e["label"]
    assert not set(world.ns.values()) & set(r["other_netns"])


HEX = "0123456789abcdef" * 4


def _cgroup_move(pid: int, hierarchy: str, rel: str) -> str:
    """Move pid into a new v1 cgroup <hierarchy>/<rel>; the directory made."""
    path = os.path.join("/sys/fs/cgroup", hierarchy, rel)
    os.makedirs(path)
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(pid))
    return path


def _cgroup_undo(pid: int, path: str, hierarchy: str) -> None:
    try:
        with open(os.path.join("/sys/fs/cgroup", hierarchy, "cgroup.procs"), "w") as f:
            f.write(str(pid))
    except OSError:
        pass            # (gone)
    top = os.path.join("/sys/fs/cgroup", hierarchy)
    while path != top:
        try:
            os.rmdir(path)
        except OSError:
            break
        path = os.path.dirname(path)


def test_container_names(impl):
    """Names from /run/docker/netns and from member processes' cgroup paths
    (docker, cri, nspawn): a holder in a namespace per runtime, placed in a
    cgroup named as that runtime names its containers (cgroup v1 hierarchies)."""
    _need_tools()
    cases = [("systemd", "docker/" + HEX, "docker:" + HEX[:12]),
             ("cpu", "kubepods/besteffort/pod1234/" + HEX[::-1], "cri:" + HEX[::-1][:12]),
             ("pids", "machine.slice/machine-pnt\\x2dbox.scope", "nspawn:pnt-box")]
    if not all(os.access(os.path.join("/sys/fs/cgroup", h, "cgroup.procs"), os.W_OK) for h, _, _ in cases):
        pytest.skip("needs writable cgroup v1 hierarchies (systemd, cpu, pids)")
    made_docker_dir = not os.path.isdir("/run/docker/netns")
    holders, groups, names, mounts = [], [], [], []
    try:
        os.makedirs("/run/docker/netns", exist_ok=True)
        for i, (hier, rel, want) in enumerate(cases):
            name = "%sc%d" % (PREFIX, i)
            _ip("netns", "add", name)
            names.append(name)
            h = Holder(["ip", "netns", "exec", name], [["open", "c.tcp", "tcp"]])
            holders.append(h)
            groups.append((h.pid, _cgroup_move(h.pid, hier, rel), hier))
        dock = "/run/docker/netns/pntdock0"
        open(dock, "w").close()
        mounts.append(dock)
        subprocess.run(["mount", "--bind", "/run/netns/" + names[0], dock], check=True)
        snap = impl.connections("tcp", netns="all")
        for (hier, rel, want), name, h in zip(cases, names, holders):
            ino = ns_inode("/run/netns/" + name)
            extra = ("docker-netns:pntdock0",) if name == names[0] else ()
            assert snap.namespaces[ino].names == (name,) + extra + (want,), snap.namespaces[ino]
            s = h.info["socks"]["c.tcp"]
            assert [c.netns for c in snap if c.inode == s["inode"]] == [ino]
        one = impl.connections("tcp", netns=dock)
        assert list(one.namespaces) == [ns_inode("/run/netns/" + names[0])]
    finally:
        for m in mounts:
            subprocess.run(["umount", m], capture_output=True)
            os.unlink(m)
        if made_docker_dir:
            shutil.rmtree("/run/docker", ignore_errors=True)
        for pid, path, hier in groups:
            _cgroup_undo(pid, path, hier)
        for h in holders:
            h.close()
        for name in names:
            _ip("netns", "del", name, check=False)


@pytest.mark.xfail(strict=True, reason="namespaces are discovered from /proc/PID/ns/net (the "
                   "thread-group leader's) and bind mounts: one that only a non-leader thread "
                   "is in (a CNI plugin's or ss -N's helper thread) is never listed, only counted")
def test_all_lists_a_namespace_only_a_thread_is_in(impl):
    """A thread unshare()s a namespace of its own and listens there; its
    process stays in ours. netns="all" must list that listener."""
    import ctypes
    import threading
    libc = ctypes.CDLL(None, use_errno=True)
    box, ready, done = {}, threading.Event(), threading.Event()

    def run():
        try:
            if libc.unshare(0x40000000) != 0:        # CLONE_NEWNET, this thread only
                raise OSError(ctypes.get_errno(), "unshare")
            s = socket.socket()
            s.bind(("0.0.0.0", 0))
            s.listen(1)
            box["sock"], box["ns"] = s, ns_inode("/proc/thread-self/ns/net")
        except OSError as e:
            box["error"] = e
        finally:
            ready.set()
        done.wait(60)
        if "sock" in box:
            box["sock"].close()

    _need_tools()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        ready.wait(10)
        if "error" in box:
            pytest.skip("cannot unshare a thread's network namespace: %s" % box["error"])
        ino = os.fstat(box["sock"].fileno()).st_ino
        snap = impl.connections("all", netns="all")
        # counted at least (nothing dropped) ...
        assert box["ns"] in snap.namespaces or box["ns"] in snap.other_netns
        # ... but it should be listed: "all" is every namespace of the host
        assert [c.netns for c in snap if c.inode == ino] == [box["ns"]]
    finally:
        done.set()
        t.join(10)
