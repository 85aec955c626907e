"""The BPF owner source (owner_source="bpf") against the /proc/PID/fd walk, from Python.

tests/c/bpf/test_bpf.c pins the C layer; this file checks what a caller sees:
the same owners from both sources on a live workload with the awkward cases,
the recorded fallbacks (fixture tree, no libbpf, no privileges), the
environment variable, many threads through one loaded program, and a Poller.

By design the two sources differ in `processes` and `denied_pids`, and BPF
sees the fds of processes whose fd links root may not read (unreadable_pids()):
those are never compared.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import procnet
from procnet import ProcNetError, _backend
from conftest import REQUIRE_NATIVE, run_as_nobody, unreadable_pids
from procfs_tree import inet_line, make_tree, sock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(procnet.__file__)))

# Run in a fresh interpreter: "auto" is made to try BPF even on a quiet host
# (break-even 0) so that the fallback itself is exercised, not skipped.
PROBE = """
import json, procnet
from procnet import _backend, _plan
_plan.BPF_BREAK_EVEN = 0
def attempt(**kw):
    try:
        return procnet.connections("all", backend="native", **kw).owner_source
    except procnet.ProcNetError as e:
        return "ProcNetError: %s" % e
out = {"auto": attempt()}
out["status"] = list(_plan.bpf_status(_backend.resolve("native")[1]))
out["bpf"] = attempt(owner_source="bpf")
print(json.dumps(out))
"""


@pytest.fixture(scope="module", autouse=True)
def private_loader():
    # The loaded program is process-wide and makes every later "auto" call in
    # this pytest process use BPF; other files compare denied_pids with the
    # walk's. Give this module a loader of its own and put the old one back.
    if _backend.native_error() is not None:
        yield
        return
    from procnet import _native
    saved, _native.bpf = _native.bpf, _native._Bpf()
    yield
    _native.bpf = saved


@pytest.fixture
def native():
    err = _backend.native_error()
    if err is not None:
        (pytest.fail if REQUIRE_NATIVE else pytest.skip)("native backend not built: %s" % err)


@pytest.fixture
def bpf_ready(native):
    from procnet import _plan
    ok, why = _plan.bpf_status(_backend.resolve("native")[1])
    if not ok:
        pytest.skip("the BPF owner source cannot load here: %s" % why)


def run_probe(prefix=(), **env):
    base = {k: v for k, v in os.environ.items()
            if k not in ("PROCNET_OWNER_SOURCE", "PROCNET_LIBBPF", "PROCNET_BACKEND")}
    p = subprocess.run(list(prefix) + [sys.executable, "-c", PROBE], capture_output=True, text=True,
                       env=dict(base, PYTHONPATH=REPO, **env), timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.splitlines()[-1])


def owner_map(snap, skip, pids=None):
    """(proto, inode) -> sorted (pid, fd, name), without pids only BPF can see;
    with `pids`, only the sockets one of them holds (the host may churn)."""
    return {(c.proto, c.inode): sorted((o.pid, o.fd, o.name) for o in c.owners if o.pid not in skip)
            for c in snap if pids is None or any(o.pid in pids for o in c.owners)}


def snap(owner_source, **kw):
    s = procnet.connections("all", backend="native", owner_source=owner_source, **kw)
    assert s.owner_source == owner_source
    return s


class Workload:
    """Sockets test_bpf.c also covers, held by this process, its threads and children."""

    def __init__(self, live):
        self.live, self.children, self.pipes, self.socks = live, [], [], {}
        self.tmpdir = tempfile.mkdtemp(prefix="procnet-bpf-")
        self.stop = threading.Event()
        self.thread = None
        self.opath_fd = -1

    def _fork(self, keep, body=lambda: None):
        # the child closes what it inherited (live's sockets...) so that only
        # the intended sockets name it as an owner, then waits for teardown
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                for fd in os.listdir("/proc/self/fd"):
                    if int(fd) > 2 and int(fd) not in set(keep) | {r}:
                        try:
                            os.close(int(fd))
                        except OSError:
                            pass
                body()
                os.read(r, 1)
            finally:
                os._exit(0)
        os.close(r)
        self.children.append(pid)
        self.pipes.append(w)

    def open(self):
        s = self.socks
        s["shared"] = lst = socket.create_server(("127.0.0.1", 0))      # a prefork server
        for _ in range(2):
            self._fork([lst.fileno()])
        self.shared_children = list(self.children)
        # the receiving child is forked before the socket exists: it can only
        # hold it through SCM_RIGHTS, and tells us under which fd number
        s["pass_a"], pass_b = socket.socketpair()
        def receive():
            _, fds, _, _ = socket.recv_fds(pass_b, 16, 1)
            pass_b.sendall(str(fds[0]).encode())
        self._fork([pass_b.fileno()], receive)
        self.receiver = self.children[-1]
        self.static = {os.fstat(pass_b.fileno()).st_ino}
        pass_b.close()
        passed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        passed.bind(("127.0.0.1", 0))
        socket.send_fds(s["pass_a"], [b"x"], [passed.fileno()])
        self.passed_fd = int(s["pass_a"].recv(16))
        self.passed_inode = os.fstat(passed.fileno()).st_ino
        passed.close()
        # O_PATH on a bound unix socket's path: S_ISSOCK, yet not a socket fd
        path = os.path.join(self.tmpdir, "opath.sock")
        s["opath_unix"] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s["opath_unix"].bind(path)
        self.opath_fd = os.open(path, os.O_PATH)
        # a socket opened by a second task of this process (forks are done):
        # one fd table, so one owner, however many tasks share it
        ready = threading.Event()
        def hold():
            s["thread_udp"] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s["thread_udp"].bind(("127.0.0.1", 0))      # no table lists an unbound one
            ready.set()
            self.stop.wait()
        self.thread = threading.Thread(target=hold, daemon=True)
        self.thread.start()
        assert ready.wait(10)
        return self

    @property
    def inodes(self):
        """The sockets that stay put while the module runs (live's and ours)."""
        return self.static | {self.passed_inode} | set(self.live.expected()) | {
            os.fstat(x.fileno()).st_ino for x in self.socks.values()}

    @property
    def pids(self):
        return {os.getpid()} | set(self.children) | set(self.live.children)

    def close(self):
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)
        # sockets first: a receiver still in recv_fds (open failed) sees EOF;
        # then every child reads EOF on its pipe and exits, and is reaped
        for x in self.socks.values():
            x.close()
        for w in self.pipes:
            os.close(w)
        for pid in self.children:
            os.waitpid(pid, 0)
        if self.opath_fd >= 0:
            os.close(self.opath_fd)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


@pytest.fixture(scope="module")
def work(live):
    w = Workload(live)
    try:
        yield w.open()
    finally:
        w.close()                     # also after a failed open: always reap


@pytest.mark.live
def test_bpf_and_walk_agree_on_live_workload(bpf_ready, work):
    skip = set(unreadable_pids())
    me, pids = os.getpid(), work.pids
    b, p = snap("bpf"), snap("procfs")
    mine = owner_map(b, skip, pids)
    assert mine == owner_map(p, skip, pids)
    by_inode = {inode: owners for (_, inode), owners in mine.items()}
    for inode, (name, owners) in work.live.expected().items():
        assert {(o[0], o[1]) for o in by_inode[inode]} == owners, name
    shared = work.socks["shared"]
    assert {(o[0], o[1]) for o in by_inode[os.fstat(shared.fileno()).st_ino]} == \
        {(pid, shared.fileno()) for pid in [me] + work.shared_children}
    assert [(o[0], o[1]) for o in by_inode[work.passed_inode]] == [(work.receiver, work.passed_fd)]
    t = work.socks["thread_udp"]
    assert [(o[0], o[1]) for o in by_inode[os.fstat(t.fileno()).st_ino]] == [(me, t.fileno())]
    for s in (b, p):
        assert work.opath_fd not in {o.fd for c in s for o in c.owners if o.pid == me}
    # The whole host. A socket opened or closed between the two snapshots (any
    # process's: a poller's sock_diag socket, a test's) is in one listing only,
    # which the listing's timing decides, not the owner source: compare every
    # socket both list. Retried: an fd may move (fork, exit) in between.
    for _ in range(3):
        skip = set(unreadable_pids())
        a, w = owner_map(snap("bpf"), skip), owner_map(snap("procfs"), skip)
        both = a.keys() & w.keys()
        differ = {k: (a[k], w[k]) for k in both if a[k] != w[k]}
        if not differ:
            break
    assert differ == {}
    assert work.inodes <= {inode for _, inode in both}


# Run in a fresh network namespace, where the only netlink sockets are the
# kernel's and, during a call, procnet's own sock_diag socket: the listing
# must be the kernel's alone, call after call, whichever source reads the
# netlink table (its dump, or its text while the dump socket is open for
# the other tables) and whichever source finds owners.
OWN_SOCKET_PROBE = """
import json, sys
from procnet import _api, _request
backend, owner_source, deny = sys.argv[1], sys.argv[2], sys.argv[3:]
def kernel():
    with open("/proc/net/netlink") as f:
        return sorted(int(line.split()[-1]) for line in list(f)[1:])
before, calls = kernel(), []
for _ in range(5):
    q = _request.make_query(("netlink", "tcp"), owners=True, proc_root="/proc", source="auto",
                          owner_source=owner_source, netlink_deny=deny)
    s = _api._connections(q, backend)
    calls.append([s.sources["netlink"], s.owner_source,
                  sorted(c.inode for c in s if c.proto == "netlink"),
                  sorted([c.inode, [list(o[:2]) for o in c.owners]] for c in s if c.owners)])
print(json.dumps({"before": before, "after": kernel(), "calls": calls}))
"""


@pytest.mark.parametrize("table_source", ["netlink", "procfs"])
@pytest.mark.parametrize("owner_source", ["procfs", "bpf"])
def test_own_dump_socket_is_never_listed(impl, request, owner_source, table_source):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a network namespace of its own")
    if owner_source == "bpf":
        if impl.name == "pure":
            pytest.skip("the pure backend has no BPF owner source")
        request.getfixturevalue("bpf_ready")
    deny = ["netlink"] if table_source == "procfs" else []
    p = subprocess.run(["unshare", "--net", sys.executable, "-c", OWN_SOCKET_PROBE, impl.name,
                        owner_source] + deny, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=REPO))
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["before"] == r["after"]
    for call in r["calls"]:
        assert call == [table_source, owner_source, r["before"], []]


def test_fixture_tree_walks(impl, tmp_path):
    root = make_tree(str(tmp_path / "proc"), net={"tcp": [
        inet_line(0, "0100007F:1F90", "00000000:0000", 0x0A, 111)]}, procs={42: {"fd": {3: sock(111)}}})
    if impl.name == "native":
        from procnet import _plan
        _plan.bpf_status(_backend.resolve("native")[1])   # loaded (where it can be): "auto" must still walk the tree
    s = impl.connections("tcp", proc_root=root, owner_source="auto")
    assert s.owner_source == "procfs" and [(o.pid, o.fd) for o in s[0].owners] == [(42, 3)]
    with pytest.raises(ProcNetError, match="proc_root"):
        impl.connections("tcp", proc_root=root, owner_source="bpf")


def test_fresh_process_auto_uses_bpf(bpf_ready):
    # the control for the fallbacks below: the same probe, nothing taken away
    assert run_probe() == {"auto": "bpf", "status": [True, "loaded"], "bpf": "bpf"}


def test_no_libbpf_falls_back(bpf_ready):
    r = run_probe(PROCNET_LIBBPF="/nonexistent")
    assert r["status"][0] is False and "libbpf" in r["status"][1]
    assert r["bpf"].startswith("ProcNetError") and "libbpf" in r["bpf"]
    assert r["auto"] == "procfs"


# The first load under a periodic signal every 0.2 ms (a sampling profiler's
# pace): the verifier gives up with EAGAIN while a signal is pending, so the
# core loads with the thread's signals blocked (csrc/bpf_load.c).
SIGNALED = """
import json, signal, procnet
n = [0]
signal.signal(signal.SIGALRM, lambda *a: n.__setitem__(0, n[0] + 1))
signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
def attempt(f):
    try:
        return f()
    except procnet.ProcNetError as e:
        return "ProcNetError: %s" % e
out = {"bpf": attempt(lambda: procnet.connections("tcp", backend="native", owner_source="bpf").owner_source),
       "track": attempt(lambda: procnet.Poller("tcp", backend="native", track=True).tracking)}
signal.setitimer(signal.ITIMER_REAL, 0, 0)
out["signals"] = n[0]
print(json.dumps(out))
"""


def test_a_fast_periodic_signal_does_not_stop_the_load(bpf_ready):
    from procnet import _native
    tracker, why = _native.open_tracker()
    if tracker is not None:
        tracker.close()
    base = {k: v for k, v in os.environ.items() if k not in ("PROCNET_OWNER_SOURCE", "PROCNET_BACKEND")}
    p = subprocess.run([sys.executable, "-c", SIGNALED], capture_output=True, text=True,
                       env=dict(base, PYTHONPATH=REPO), timeout=120)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.splitlines()[-1])
    assert r["signals"] > 10, r               # the timer did fire through the loads
    assert r["bpf"] == "bpf", r
    if tracker is not None:                   # tracking loads here without signals: it must with
        assert r["track"] == "kernel", r


def _unprivileged(r):
    assert r["status"][0] is False and ("CAP_BPF" in r["status"][1] or "permi" in r["status"][1]), r
    assert r["bpf"].startswith("ProcNetError") and r["status"][1] in r["bpf"]
    assert r["auto"] == "procfs"


def test_without_capabilities_falls_back(bpf_ready):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to drop capabilities")
    _unprivileged(run_probe(["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"]))


def test_as_nobody_falls_back(bpf_ready):
    p = run_as_nobody([sys.executable, "-c", PROBE],
                      env={k: v for k, v in os.environ.items() if not k.startswith("PROCNET_")})
    assert p.returncode == 0, p.stderr
    _unprivileged(json.loads(p.stdout.splitlines()[-1]))


@pytest.mark.live
def test_many_threads_one_program(bpf_ready, work):
    # only the static sockets: each snapshot briefly holds a sock_diag netlink
    # socket of its own, which the other threads' snapshots may see
    skip = set(unreadable_pids())

    def mine(s):
        return {k: v for k, v in owner_map(s, skip, work.pids).items() if k[1] in work.inodes}
    want = mine(snap("procfs"))
    assert len(want) == len(work.inodes)
    start = threading.Barrier(8, timeout=60)       # all eight in the program at once

    def take(_):
        start.wait()
        return [mine(snap("bpf")) for _ in range(5)]
    with ThreadPoolExecutor(8) as pool:            # a thread's exception re-raises here
        results = [r for rs in pool.map(take, range(8)) for r in rs]
    assert len(results) == 40 and all(r == want for r in results)


def test_environment_variable(native):
    # BPF loaded in the probe (where it can be) and break-even 0: "auto" would
    # pick it, the variable must win; an explicit argument wins over it
    r = run_probe(PROCNET_OWNER_SOURCE="procfs")
    assert r["auto"] == "procfs"
    assert r["bpf"] == ("bpf" if r["status"][0] else "ProcNetError: owner_source='bpf' is unavailable: "
                        + r["status"][1])
    r = run_probe(PROCNET_OWNER_SOURCE="bogus")
    assert r["auto"].startswith("ProcNetError: PROCNET_OWNER_SOURCE='bogus'")
    with pytest.raises(ValueError, match="owner_source"):
        procnet.connections("all", owner_source="bogus")
    with pytest.raises(ProcNetError, match="native"):
        procnet.connections("all", backend="pure", owner_source="bpf")
    assert procnet.connections("all", backend="pure", owner_source="auto").owner_source == "procfs"


@pytest.mark.live
def test_c_level_bpf_tests():
    if os.environ.get("PROCNET_EMULATED"):
        pytest.skip("the C test is built for and run on the host (and in the sanitize tier), "
                    "not under qemu-user")
    p = subprocess.run(["sh", "tests/c/bpf/run_bpf.sh"], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    if p.returncode == 77:
        pytest.skip("tests/c/bpf/run_bpf.sh skipped: %s" % (p.stdout + p.stderr).strip())
    assert p.returncode == 0 and re.search(r"\b0 failed", p.stdout), p.stdout + p.stderr


@pytest.mark.live
def test_poller_with_bpf(bpf_ready, work):
    skip = set(unreadable_pids())
    with procnet.Poller("all", backend="native", owner_source="bpf") as poller:
        for _ in range(2):            # the first poll, then one that builds on it
            got = poller.poll().snapshot
            assert got.owner_source == "bpf"
            assert owner_map(got, skip, work.pids) == owner_map(snap("procfs"), skip, work.pids)


@pytest.mark.live
def test_poller_auto_moves_to_bpf_for_good_when_walks_stay_heavy(bpf_ready, monkeypatch):
    # A quiet host stays on the cached walk; a Poller whose polls keep reading
    # more links than a BPF scan costs moves to BPF after a few polls, and stays.
    from procnet import _plan
    quiet = procnet.Poller("all", backend="native")
    assert {quiet.poll().snapshot.owner_source for _ in range(6)} == {"procfs"}
    monkeypatch.setattr(_plan, "LINK_VS_BPF", 10 ** 9)     # every link read is "heavy"
    monkeypatch.setattr(_plan, "BPF_FIXED_SOCKETS", 0)
    busy = procnet.Poller("all", backend="native")
    sources = [busy.poll().snapshot.owner_source for _ in range(7)]
    first_bpf = sources.index("bpf")
    assert first_bpf >= 1 + _plan.HEAVY_POLLS - 1 and set(sources[first_bpf:]) == {"bpf"}, sources
    monkeypatch.setattr(_plan, "LINK_VS_BPF", 10)
    assert busy.poll().snapshot.owner_source == "bpf"              # for good
    quiet.close()
    busy.close()
