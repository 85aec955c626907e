"""procnet.psutil_compat: psutil's contract, the owner psutil picks, its defects, install().

Sockets of this test's own (the Edges fixture: a listener shared with a forked
child on several fds, unix paths with spaces and NULs, TIME_WAIT, IPv4-mapped
IPv6, bound-but-idle sockets no table psutil reads lists) are compared with the
real psutil row by row; psutil's own contract checks (types, enums, kinds, an
unknown kind, per-process equals system-wide filtered by pid) are re-expressed
for the compat layer. The workload-scale comparison is test_psutil_compat_live.py.
"""
import collections
import errno
import ipaddress
import os
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import procnet
from procnet import psutil_compat as compat
from test_psutil_compat_live import psutil_call, psutil_view, PsutilCannotParse

psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.live
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATUSES = {getattr(psutil, n) for n in dir(psutil) if n.startswith("CONN_")}
LINGER0 = b"\x01\x00\x00\x00\x00\x00\x00\x00"


def _socket_fds(pid):
    """fd -> socket inode of `pid` (read from /proc directly)."""
    out = {}
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except OSError:
            continue
        if link.startswith("socket:["):
            out[int(name)] = int(link[8:-1])
    return out


def _sockets_of_pids_above(pid):
    """The socket inodes held by any process with a higher pid."""
    held = set()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) > pid:
            try:
                held.update(_socket_fds(int(name)).values())
            except OSError:
                pass
    return held


def fds_of(pid, sock_inode):
    """The fds of `pid` on the socket with this inode, ascending (read from /proc directly)."""
    out = []
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, name)) == "socket:[%d]" % sock_inode:
                out.append(int(name))
        except FileNotFoundError:
            pass
    return sorted(out)


class Edges:
    """The sockets and the child process the tests look at; close() undoes everything."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="procnet-compat-")
        self.socks = {}
        self.child = 0
        S = socket
        self.add("tcp_shared", S.AF_INET, S.SOCK_STREAM, ("127.0.0.1", 0), listen=True)
        self.dup = os.dup(self.socks["tcp_shared"].fileno())          # the same socket on two fds
        self.add("unix_spaces", S.AF_UNIX, S.SOCK_STREAM, os.path.join(self.tmp, "my app.sock"), listen=True)
        self.unix_dup = os.dup(self.socks["unix_spaces"].fileno())
        self.add("unix_abstract", S.AF_UNIX, S.SOCK_DGRAM, b"\0procnet-compat\0nul-%d" % os.getpid())
        self.add("unix_seqpacket", S.AF_UNIX, S.SOCK_SEQPACKET, os.path.join(self.tmp, "seq"), listen=True)
        self.add("udp_any", S.AF_INET, S.SOCK_DGRAM, ("0.0.0.0", 0))
        self.add("udp6_any", S.AF_INET6, S.SOCK_DGRAM, ("::", 0))   # every kind has a row here
        self.add("udp_conn", S.AF_INET, S.SOCK_DGRAM, ("127.0.0.1", 0))
        self.socks["udp_conn"].connect(("127.0.0.1", 9))
        self.add("tcp_idle", S.AF_INET, S.SOCK_STREAM, ("127.0.0.1", 0))      # bound, never listens
        self.socks["udp_unbound"] = S.socket(S.AF_INET, S.SOCK_DGRAM)          # in no table
        # IPv4-mapped: a dual-stack listener and a connection to it over IPv4
        self.add("tcp6_dual", S.AF_INET6, S.SOCK_STREAM, ("::", 0), listen=True, v6only=False)
        c = S.create_connection(("127.0.0.1", self.socks["tcp6_dual"].getsockname()[1]))
        self.socks["tcp6_mapped_client"] = c
        self.socks["tcp6_mapped"] = self.socks["tcp6_dual"].accept()[0]
        # TIME_WAIT: the side that closes first keeps it, with no owner (inode 0)
        srv = S.create_server(("127.0.0.1", 0))
        cl = S.create_connection(srv.getsockname())
        acc = srv.accept()[0]
        self.tw_port = cl.getsockname()[1]
        cl.close()
        time.sleep(0.05)
        acc.close()
        srv.close()
        self.ports = {s.getsockname()[1] for s in self.socks.values()
                      if s.family != S.AF_UNIX and s.getsockname()[1]} | {self.tw_port}
        self.inode = {k: os.fstat(s.fileno()).st_ino for k, s in self.socks.items()}
        r, w = os.pipe()
        self.child = os.fork()
        if self.child == 0:                       # holds every fd of ours until told to go
            os.close(w)
            try:
                os.dup(self.socks["tcp_shared"].fileno())    # a third fd, the child's highest
                os.read(r, 1)
            finally:
                os._exit(0)
        os.close(r)
        self._go = w
        time.sleep(0.1)
        self.pids = {os.getpid(), self.child}

    def add(self, name, fam, typ, addr, listen=False, v6only=None):
        s = socket.socket(fam, typ)
        if v6only is not None:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        s.bind(addr)
        if listen:
            s.listen(8)
        self.socks[name] = s

    def mine(self, row):
        """Rows of these sockets: ours or the child's, or the TIME_WAIT one (no owner)."""
        if getattr(row, "pid", None) in self.pids:
            return True
        return (row.family != socket.AF_UNIX and row.status == "TIME_WAIT"
                and self.tw_port in (row.laddr[1], row.raddr[1]))

    def close(self):
        if self.child:
            os.close(self._go)
            os.waitpid(self.child, 0)
        for s in self.socks.values():
            s.close()
        os.close(self.dup)
        os.close(self.unix_dup)
        for name in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, name))
        os.rmdir(self.tmp)


@pytest.fixture(scope="module")
def edges():
    e = Edges()
    try:
        yield e
    finally:
        e.close()


def rows_for(edges, kind, backend=None, **kw):
    return [r for r in compat.net_connections(kind, backend=backend, **kw) if edges.mine(r)]


# ---------------------------------------------------------------------------
# the same rows as psutil, for every kind and backend


@pytest.mark.parametrize("kind", compat.KINDS)
def test_edges_match_psutil(impl, edges, kind):
    try:
        want = collections.Counter(r for r in psutil_call(psutil.net_connections, kind) if edges.mine(r))
    except PsutilCannotParse as e:
        pytest.skip("psutil cannot parse /proc/net/unix now (documented defect): %s" % e)
    got = collections.Counter(psutil_view(r) for r in rows_for(edges, kind, impl.name))
    assert got == want
    if kind in ("all", "tcp4"):
        assert any(r.status == "TIME_WAIT" for r in got)


@pytest.mark.parametrize("kind", compat.KINDS)
@pytest.mark.parametrize("via,backend", [("pidfd", None), ("procnet", "native"), ("procnet", "pure")])
def test_process_matches_psutil(edges, kind, via, backend):
    for pid in sorted(edges.pids):
        try:
            want = collections.Counter(psutil_call(psutil.Process(pid).net_connections, kind))
        except PsutilCannotParse as e:
            pytest.skip("psutil cannot parse /proc/net/unix now (documented defect): %s" % e)
        got = compat.Process(pid, via=via, backend=backend).net_connections(kind)
        assert collections.Counter(map(psutil_view, got)) == want, (pid, kind)


def test_rows_read_from_the_contract_equal_the_properties(impl):
    """_rows reads procnet's raw records; here is the same from the public properties."""
    snap = impl.connections(("inet", "unix"))
    ref = []
    for c in snap:
        if c.proto in ("tcp", "tcp6") and c.state == "CLOSE":
            continue
        if c.family == socket.AF_UNIX:
            head = (c.family, c.type, c.laddr, "", "NONE")
        else:
            la = (c.laddr.ip, c.laddr.port) if c.laddr.port else ()
            ra = (c.raddr.ip, c.raddr.port) if c.raddr.port else ()
            st = c.state if c.proto in ("tcp", "tcp6") else "NONE"
            head = (c.family, socket.SOCK_STREAM if c.proto in ("tcp", "tcp6") else socket.SOCK_DGRAM,
                    la, ra, st)
        if not c.owners:
            ref.append((-1,) + head + (None,))
            continue
        last = max(o.pid for o in c.owners)
        fds = sorted(o.fd for o in c.owners if o.pid == last)
        for fd in (fds if c.family == socket.AF_UNIX else fds[:1]):
            ref.append((fd,) + head + (last,))
    got = [tuple(tuple(x) if type(x).__name__ == "addr" else x for x in r) for r in compat._rows(snap)]
    assert got == ref


# ---------------------------------------------------------------------------
# which owner: psutil's (the last pid in /proc order, its first fd), or all


def test_shared_socket_names_the_last_pid_and_its_first_fd(impl, edges):
    ino = edges.inode["tcp_shared"]
    port = edges.socks["tcp_shared"].getsockname()[1]
    rows = [r for r in rows_for(edges, "tcp4", impl.name) if r.laddr and r.laddr.port == port]
    child_fds = fds_of(edges.child, ino)
    assert len(child_fds) == 3 and len(fds_of(os.getpid(), ino)) == 2
    last = max(edges.pids)          # the child, unless pids wrapped around between us
    assert [(r.pid, r.fd) for r in rows] == [(last, fds_of(last, ino)[0])]
    every = [r for r in rows_for(edges, "tcp4", impl.name, all_owners=True) if r.laddr and r.laddr.port == port]
    assert sorted((r.pid, r.fd) for r in every) == sorted(
        [(os.getpid(), fd) for fd in fds_of(os.getpid(), ino)] + [(edges.child, fd) for fd in child_fds])
    assert {r[:-1] for r in every} >= {r[:-1] for r in rows}


def test_unix_gets_a_row_per_fd_of_the_last_pid(impl, edges):
    ino = edges.inode["unix_spaces"]
    path = edges.socks["unix_spaces"].getsockname()
    rows = [r for r in rows_for(edges, "unix", impl.name) if r.laddr == path]
    last = max(edges.pids)
    assert sorted((r.pid, r.fd) for r in rows) == [(last, fd) for fd in fds_of(last, ino)]
    mine = compat.Process(os.getpid()).net_connections("unix")
    assert sorted(r.fd for r in mine if r.laddr == path) == fds_of(os.getpid(), ino)


def test_process_all_owners_gives_every_fd(edges):
    ino = edges.inode["tcp_shared"]
    port = edges.socks["tcp_shared"].getsockname()[1]
    for via in ("pidfd", "procnet"):
        p = compat.Process(edges.child, via=via)
        assert [r.fd for r in p.net_connections("tcp4") if r.laddr.port == port] == fds_of(edges.child, ino)[:1]
        assert [r.fd for r in p.net_connections("tcp4", all_owners=True)
                if r.laddr.port == port] == fds_of(edges.child, ino)


# ---------------------------------------------------------------------------
# psutil's contract checks (its test_connections), re-expressed


def check_row(row, with_pid):
    """psutil's check_connection_ntuple, for a compat row."""
    fields = ("fd", "family", "type", "laddr", "raddr", "status") + (("pid",) if with_pid else ())
    assert row._fields == fields and len(row) == len(fields)
    assert type(row).__name__ == ("sconn" if with_pid else "pconn")
    assert type(row) is (psutil._ntuples.sconn if with_pid else psutil._ntuples.pconn)
    assert isinstance(row.fd, int) and row.fd >= -1
    assert isinstance(row.family, socket.AddressFamily)
    assert row.family in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)
    assert isinstance(row.type, socket.SocketKind)
    assert row.status in STATUSES and isinstance(row.status, str)
    if with_pid:
        assert (row.pid is None) == (row.fd == -1)
        assert row.pid is None or (isinstance(row.pid, int) and row.pid > 0)
    if row.family == socket.AF_UNIX:
        assert isinstance(row.laddr, str) and row.raddr == "" and row.status == "NONE"
        return
    assert row.type in (socket.SOCK_STREAM, socket.SOCK_DGRAM)
    for a in (row.laddr, row.raddr):
        assert a == () or (type(a) is psutil._ntuples.addr and a == (a.ip, a.port))
        if a:
            ipaddress.ip_address(a.ip)
            socket.inet_pton(row.family, a.ip)
            assert 0 < a.port < 65536
    if row.type == socket.SOCK_DGRAM:
        assert row.status == "NONE"
    if row.status == "LISTEN":
        assert row.raddr == ()


@pytest.mark.parametrize("kind", compat.KINDS)
def test_rows_have_psutils_types(impl, edges, kind):
    rows = compat.net_connections(kind, backend=impl.name)
    assert rows
    for r in rows:
        check_row(r, True)
    fams = {r.family for r in rows}
    types = {(r.family, r.type) for r in rows if r.family != socket.AF_UNIX}
    table = {"tcp": {socket.SOCK_STREAM}, "udp": {socket.SOCK_DGRAM}}
    for k in ("tcp", "udp"):
        if kind.startswith(k):
            assert {t for _, t in types} <= table[k]
    if kind in ("inet4", "tcp4", "udp4"):
        assert fams == {socket.AF_INET}
    if kind in ("inet6", "tcp6", "udp6"):
        assert fams == {socket.AF_INET6}
    if kind == "unix":
        assert fams == {socket.AF_UNIX}
    for r in compat.Process(os.getpid()).net_connections(kind):
        check_row(r, False)


@pytest.mark.parametrize("bad", ["foo", "udplite", "raw", "packet", "ALL", "", None, 1, ("tcp",)])
def test_unknown_kind_is_psutils_valueerror(bad):
    with pytest.raises(ValueError) as mine:
        compat.net_connections(bad)
    with pytest.raises(ValueError) as theirs:
        psutil.net_connections(bad)
    assert str(mine.value) == str(theirs.value)
    with pytest.raises(ValueError):
        compat.Process(os.getpid()).net_connections(bad)
    assert set(compat.KINDS) == set(psutil._common.conn_tmap)


@pytest.mark.parametrize("kind", compat.KINDS)
def test_process_equals_system_wide_filtered_by_pid(impl, edges, kind):
    """psutil's compare_procsys_connections: for a process that no higher pid shares with."""
    last = max(edges.pids)          # the child, unless pids wrapped around between us
    # a process forked by the test run after the child (another module's helper
    # that outlived its test, inheriting our fds) would share with a higher pid:
    # psutil's comparison is about the sockets no higher pid holds
    shared = _sockets_of_pids_above(last)
    fd_inode = _socket_fds(last)
    for via, backend in (("pidfd", None), ("procnet", impl.name)):
        proc = sorted((r for r in compat.Process(last, via=via, backend=backend).net_connections(kind)
                       if fd_inode.get(r.fd) not in shared), key=repr)
        system = sorted((r[:-1] for r in compat.net_connections(kind, backend=impl.name)
                         if r.pid == last and fd_inode.get(r.fd) not in shared), key=repr)
        assert proc and [tuple(r) for r in proc] == [tuple(r) for r in system]
        # and for every process, with every owner
        me = os.getpid()
        proc = compat.Process(me, via=via, backend=backend).net_connections(kind, all_owners=True)
        system = [r[:-1] for r in compat.net_connections(kind, backend=impl.name, all_owners=True) if r.pid == me]
        assert sorted(map(tuple, proc), key=repr) == sorted(map(tuple, system), key=repr)


def test_connections_is_the_old_name(edges):
    p = compat.Process(edges.child)
    assert p.connections("all") == p.net_connections("all")
    assert p.pid == edges.child and str(edges.child) in repr(p)


# ---------------------------------------------------------------------------
# where psutil is wrong


def test_unix_path_with_spaces_is_whole(impl, edges):
    """psutil keeps a unix path only when it is one token: 'my app.sock' becomes ''."""
    path = edges.socks["unix_spaces"].getsockname()
    assert " " in path
    ours = {r.laddr for r in rows_for(edges, "unix", impl.name)}
    assert path in ours
    try:
        theirs = {r.laddr for r in psutil_call(psutil.net_connections, "unix") if edges.mine(r)}
    except PsutilCannotParse as e:
        pytest.skip(str(e))
    assert path not in theirs and "" in theirs
    assert any(r.laddr == path for r in compat.Process(os.getpid()).net_connections("unix"))


def test_abstract_name_as_proc_prints_it(impl, edges):
    want = "@procnet-compat@nul-%d" % os.getpid()
    assert want in {r.laddr for r in rows_for(edges, "unix", impl.name)}
    for via in ("pidfd", "procnet"):
        assert want in {r.laddr for r in compat.Process(os.getpid(), via=via).net_connections("unix")}


def test_newline_in_unix_path_is_a_row_not_an_error(impl):
    """psutil raises RuntimeError on the line the newline splits (when the rest has a space)."""
    tmp = tempfile.mkdtemp(prefix="procnet-compat-nl-")
    path = os.path.join(tmp, "evil\nname with space")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(path)
        rows = compat.net_connections("unix", backend=impl.name, source="netlink")
        assert [r.laddr for r in rows if r.pid == os.getpid() and r.laddr == path] == [path]
        # the text source: cut at the newline (as psutil), the rest counted as a skipped line
        text = compat.net_connections("unix", backend=impl.name, source="procfs")
        assert path.split("\n")[0] in {r.laddr for r in text if r.pid == os.getpid()}
        with pytest.raises(RuntimeError, match="malformed line"):
            psutil.net_connections("unix")
    finally:
        s.close()
        os.unlink(path)
        os.rmdir(tmp)


def test_identical_rows_are_not_merged(impl):
    """psutil returns a set: two ownerless rows that look alike are one. Compat: one per socket."""
    snap = impl.connections("unix")
    rows = compat._rows(snap)
    unowned = collections.Counter(r for r in rows if r.pid is None)
    assert sum(unowned.values()) == sum(1 for c in snap if not c.owners)
    # one row per ownerless socket, one per fd of the last pid for the others
    assert len(rows) == sum(1 for c in snap if not c.owners) + sum(
        len([o for o in c.owners if o.pid == c.owners[-1].pid]) for c in snap if c.owners)


def test_sockets_psutil_never_lists_are_not_rows(impl, edges):
    """A TCP socket bound but idle (netlink lists it in CLOSE) and an unbound UDP one."""
    idle = edges.socks["tcp_idle"].getsockname()[1]
    assert not [r for r in compat.net_connections("tcp4", backend=impl.name) if r.laddr and r.laddr.port == idle]
    for via in ("pidfd", "procnet"):
        rows = compat.Process(os.getpid(), via=via).net_connections("all")
        assert not [r for r in rows if r.family == socket.AF_INET and r.laddr and r.laddr.port == idle]
        assert edges.socks["udp_unbound"].fileno() not in {r.fd for r in rows}
        assert edges.socks["tcp_idle"].fileno() not in {r.fd for r in rows}


# ---------------------------------------------------------------------------
# Process: errors, routes


def dead_pid():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def waiting_child():
    """A child that exits when the returned fd is closed: (pid, fd)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            os.read(r, 1)
        finally:
            os._exit(0)
    os.close(r)
    return pid, w


def test_process_errors_are_psutils():
    pid = dead_pid()
    with pytest.raises(psutil.NoSuchProcess) as e:
        compat.Process(pid)
    assert e.value.pid == pid
    assert compat.NoSuchProcess is psutil.NoSuchProcess and compat.AccessDenied is psutil.AccessDenied
    with pytest.raises(ValueError):
        compat.Process(-1)
    with pytest.raises(TypeError):
        compat.Process("1")
    with pytest.raises(ValueError):
        compat.Process(os.getpid(), via="magic")
    assert compat.Process().pid == os.getpid()


@pytest.mark.parametrize("via", ["auto", "pidfd", "procnet"])
def test_process_gone_before_the_call(via):
    pid, w = waiting_child()
    p, q = compat.Process(pid, via=via), psutil.Process(pid)
    os.close(w)
    os.waitpid(pid, 0)
    with pytest.raises(psutil.NoSuchProcess):
        p.net_connections()
    with pytest.raises(psutil.NoSuchProcess):
        q.net_connections()


def test_no_ptrace_rights_falls_back_to_a_snapshot(edges, monkeypatch):
    real = compat._libc_syscall()

    def refuse(nr, *args):
        if nr == compat.SYS_pidfd_getfd:
            raise OSError(errno.EPERM, "Operation not permitted")
        return real(nr, *args)
    monkeypatch.setattr(compat, "_syscall", refuse)
    want = compat.Process(edges.child, via="procnet").net_connections("all")
    assert compat.Process(edges.child).net_connections("all") == want
    with pytest.raises(procnet.ProcNetError, match="pidfd"):
        compat.Process(edges.child, via="pidfd").net_connections("all")


def test_syn_sent_takes_the_snapshot_route():
    """A connecting socket has no peer name yet: pidfd cannot give its raddr."""
    srv = socket.create_server(("127.0.0.1", 0), backlog=0)
    clients = []
    try:
        for _ in range(4):                      # the full accept queue drops the later SYNs
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(srv.getsockname())
            clients.append(c)
        time.sleep(0.1)
        rows = {r.fd: r for r in compat.Process(os.getpid()).net_connections("tcp4")}
        waiting = [rows[c.fileno()] for c in clients if rows[c.fileno()].status == "SYN_SENT"]
        if not waiting:
            pytest.skip("no connection stayed in SYN_SENT")
        assert all(r.raddr == srv.getsockname() for r in waiting)
        assert collections.Counter(rows.values()) == collections.Counter(
            compat.Process(os.getpid(), via="procnet").net_connections("tcp4"))
        with pytest.raises(procnet.ProcNetError):
            compat.Process(os.getpid(), via="pidfd").net_connections("tcp4")
    finally:
        for c in clients:
            c.close()
        srv.close()


def test_pidfd_leaves_no_fd_behind(edges):
    before = set(os.listdir("/proc/self/fd"))
    for _ in range(3):
        compat.Process(edges.child, via="pidfd").net_connections("all")
    assert set(os.listdir("/proc/self/fd")) == before


# ---------------------------------------------------------------------------
# install() / uninstall()


def test_install_patches_a_live_psutil(edges):
    orig_sys, orig_proc = psutil.net_connections, psutil.Process.net_connections
    compat.install()
    try:
        compat.install()                                  # idempotent
        assert compat.installed()
        assert psutil.net_connections is not orig_sys and psutil.net_connections.__wrapped__ is orig_sys
        assert psutil.Process.net_connections is not orig_proc
        got = [r for r in psutil.net_connections("all") if r.pid in edges.pids]
        assert collections.Counter(got) == collections.Counter(
            r for r in compat.net_connections("all") if r.pid in edges.pids)
        p = psutil.Process(edges.child)
        assert p.net_connections("all") == compat.Process(edges.child).net_connections("all")
        with pytest.warns(DeprecationWarning):
            assert p.connections("all") == p.net_connections("all")
        with pytest.raises(ValueError):
            psutil.net_connections("foo")
        with pytest.raises(ValueError):
            p.net_connections("foo")
    finally:
        assert compat.uninstall()
    assert psutil.net_connections is orig_sys
    assert psutil.Process.net_connections is orig_proc
    assert not compat.uninstall() and not compat.installed()


def test_installed_process_call_on_a_dead_process():
    pid, w = waiting_child()
    p = psutil.Process(pid)
    os.close(w)
    os.waitpid(pid, 0)
    compat.install()
    try:
        with pytest.raises(psutil.NoSuchProcess):
            p.net_connections()
    finally:
        compat.uninstall()


SITECUSTOMIZE = """
from procnet import psutil_compat
psutil_compat.install()
"""

PROGRAM = """
import json, socket, psutil
s = socket.create_server(("127.0.0.1", 0))
rows = [r for r in psutil.net_connections("tcp4") if r.laddr and r.laddr.port == s.getsockname()[1]]
print(json.dumps({"module": psutil.net_connections.__module__, "rows": [[r.fd, r.pid, r.status] for r in rows],
                  "proc": psutil.Process().net_connections.__func__.__module__
                  if hasattr(psutil.Process().net_connections, "__func__") else "?"}))
"""


def test_sitecustomize_pattern(tmp_path):
    """The README's pattern: install() in a sitecustomize.py the program never sees."""
    import json
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]))
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["module"] == "procnet.psutil_compat" and res["proc"] == "procnet.psutil_compat"
    assert len(res["rows"]) == 1 and res["rows"][0][2] == "LISTEN" and res["rows"][0][1] > 0


# ---------------------------------------------------------------------------
# psutil is optional


NO_PSUTIL = """
import sys
sys.modules["psutil"] = None            # as if not installed
import procnet
procnet.connections("all")
assert "procnet.psutil_compat" not in sys.modules
from procnet import psutil_compat as c
rows = c.net_connections("all")
r = rows[0]
assert type(r).__name__ == "sconn" and r._fields == ("fd", "family", "type", "laddr", "raddr", "status", "pid")
inet = [x for x in rows if x.laddr and not isinstance(x.laddr, str)]
assert type(inet[0].laddr).__name__ == "addr" and inet[0].laddr._fields == ("ip", "port")
import socket
own = socket.create_server(("127.0.0.1", 0))
assert type(c.Process().net_connections("all")[0]).__name__ == "pconn"
assert issubclass(c.NoSuchProcess, procnet.ProcNetError) and c.NoSuchProcess.__name__ == "NoSuchProcess"
try:
    c.Process(2 ** 22 + 12345)
except c.NoSuchProcess as e:
    assert e.pid == 2 ** 22 + 12345 and "not found" in str(e)
else:
    raise AssertionError("no NoSuchProcess")
try:
    c.install()
except ImportError:
    print("ok")
"""


def test_without_psutil():
    s = socket.create_server(("127.0.0.1", 0))          # at least one inet row
    try:
        out = subprocess.run([sys.executable, "-c", NO_PSUTIL], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=REPO), timeout=60)
    finally:
        s.close()
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_import_procnet_does_not_import_psutil():
    code = "import sys, procnet; procnet.connections('tcp'); print('psutil' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=REPO), timeout=60)
    assert out.stdout.strip() == "False", out.stderr


# ---------------------------------------------------------------------------
# the owner source: BPF whenever it loads (psutil's callers poll), else the walk


def test_asks_the_plan_for_a_repeated_caller(monkeypatch):
    # psutil's callers poll: compat says so (repeated=True), and _plan decides
    from procnet import _api
    seen = []
    real = _api._connections

    def spy(q, backend, **kw):
        seen.append((q.owner_source, backend, kw))
        return real(q, backend, **kw)
    monkeypatch.setattr(_api, "_connections", spy)
    monkeypatch.delenv("PROCNET_OWNER_SOURCE", raising=False)
    compat.net_connections("tcp")
    compat.net_connections("tcp", owner_source="procfs", backend="pure")
    assert seen == [("auto", None, {"repeated": True}), ("procfs", "pure", {"repeated": True})]


class _FakeBackend:
    """What _plan asks of a backend about BPF."""

    def __init__(self, loads):
        self.loads, self.loaded, self.tried = loads, False, 0

    def bpf_loaded(self):
        return self.loaded

    def bpf_may_load(self):
        return self.loads or not self.tried

    def bpf_load(self):
        self.tried += 1
        self.loaded = self.loads
        return None if self.loads else "no BPF here (test)"

    def can_enter_netns(self):
        return False


def test_plan_for_repeated_callers_loads_bpf_at_any_size(monkeypatch):
    from procnet import _plan
    from procnet._request import make_query
    monkeypatch.delenv("PROCNET_OWNER_SOURCE", raising=False)
    monkeypatch.setattr(_plan, "expected_sockets", lambda root: 10)      # a quiet host
    q = make_query("tcp", owners=True, proc_root="/proc")
    assert _plan.plan(q, _FakeBackend(True)).owner_source == _plan.OWN_PROCFS   # one-shot: the walk
    p = _plan.plan(q, _FakeBackend(True), repeated=True)
    assert (p.owner_source, p.walk_fallback) == (_plan.OWN_BPF, True)
    refusing = _FakeBackend(False)
    assert _plan.plan(q, refusing, repeated=True).owner_source == _plan.OWN_PROCFS
    assert _plan.plan(q, refusing, repeated=True).owner_source == _plan.OWN_PROCFS
    assert refusing.tried == 1                                  # a refusal is remembered
    explicit = make_query("tcp", owners=True, proc_root="/proc", owner_source="procfs")
    assert _plan.plan(explicit, _FakeBackend(True), repeated=True).owner_source == _plan.OWN_PROCFS


def test_bpf_owners_give_the_walks_rows(edges):
    try:
        bpf = compat.net_connections("all", owner_source="bpf")
    except procnet.ProcNetError as e:
        pytest.skip("no BPF owner source here: %s" % e)
    walk = compat.net_connections("all", owner_source="procfs")
    assert collections.Counter(r for r in bpf if edges.mine(r)) == collections.Counter(
        r for r in walk if edges.mine(r))


def fd_flags(pid, fd):
    with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
        return int(next(line for line in f if line.startswith("flags:")).split()[1], 8)


def test_pidfd_route_leaves_the_owners_sockets_blocking(edges):
    """Borrowed fds share the owner's file flags: a default timeout must not make them non-blocking."""
    fds = [(pid, s.fileno()) for pid in sorted(edges.pids) for s in edges.socks.values()]
    before = {k: fd_flags(*k) for k in fds}
    assert any(not v & os.O_NONBLOCK for v in before.values())
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5.0)
    try:
        for pid in sorted(edges.pids):
            assert compat.Process(pid, via="pidfd").net_connections("all")
    finally:
        socket.setdefaulttimeout(old)
    assert {k: fd_flags(*k) for k in fds} == before


# ---------------------------------------------------------------------------
# a real caller, unchanged: OpenTelemetry's system-metrics instrumentation


def test_opentelemetry_system_metrics_through_install(edges, monkeypatch):
    sm = pytest.importorskip("opentelemetry.instrumentation.system_metrics")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    calls = []
    real = compat.net_connections

    def spy(*a, **kw):
        calls.append(a)
        return real(*a, **kw)
    monkeypatch.setattr(compat, "net_connections", spy)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    inst = sm.SystemMetricsInstrumentor(config={"system.network.connections": ["family", "type"]})
    compat.install()
    try:
        inst.instrument(meter_provider=provider)
        data = reader.get_metrics_data()
    finally:
        inst.uninstrument()
        compat.uninstall()
    assert calls == [("inet",)]
    points = [p for rm in data.resource_metrics for sc in rm.scope_metrics for m in sc.metrics
              if m.name == "system.network.connections" for p in m.data.data_points]
    listen = sum(p.value for p in points if p.attributes.get("state") == "LISTEN"
                 and p.attributes.get("protocol") == "tcp")
    assert listen >= 2                  # at least the edges' tcp listeners
