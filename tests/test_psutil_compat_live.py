"""procnet.psutil_compat against the real psutil, on a host running the benchmark workload.

Every psutil kind, both backends, as root and as the unprivileged user nobody:
the same multiset of rows as psutil.net_connections(kind), and the same rows as
psutil.Process(pid).net_connections(kind) through each route (pidfd_getfd, a
snapshot on each backend).

The host is live (other tests open and close sockets meanwhile), so rows are
compared where they cannot race:

- the workload's rows (a workload pid owns them), as a multiset: they do not
  change during the test, and psutil's set cannot merge two of them (each has
  its own (pid, fd)). One race remains even there: psutil's text read can
  skip a live socket while other sockets of the table close (the kernel
  resumes each read() by position), so rows missing from psutil's answer,
  with nothing in their place, are retried like the check below;
- as nobody, the root workload's rows (no owner nobody may see: pid None),
  by (family, type, laddr, raddr, status) taken from root's view, as sets:
  psutil merges identical ownerless rows;
- every other row present in both compat calls (one before, one after
  psutil's), of a process whose rows did not change between them, must be
  in psutil's answer: stable across the two calls (see stable()). A socket
  passed between processes is held by none while in flight and can still look
  stable, so this check (only) is retried, up to 10 times, before it fails;
  a difference in the workload's rows fails at once.

The only differences allowed are psutil's documented defects, applied to
compat's rows before comparing (see psutil_view): a unix path with whitespace
is '' in psutil. A unix path with a newline makes psutil raise RuntimeError;
the call is retried while another test holds such a socket, then skipped.
PROCNET_COMPAT_SCALE=sockets,workers sizes the workload (default 2000,40).
"""
import collections
import os
import pickle
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(os.path.dirname(HERE), "benchmarks")
sys.path.insert(0, BENCH)
from workload import Workload  # noqa: E402

from procnet import psutil_compat as compat  # noqa: E402

psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.live
N, M = (int(x) for x in os.environ.get("PROCNET_COMPAT_SCALE", "2000,40").split(","))
BACKENDS = ("native", "pure")
ROUTES = (("pidfd", None), ("procnet", "native"), ("procnet", "pure"))


class PsutilCannotParse(Exception):
    """psutil raised RuntimeError on a malformed /proc/net/unix line all along."""


def psutil_call(fn, *args, patience=20.0):
    """fn(*args), retried while psutil cannot parse /proc/net/unix (a newline in a path)."""
    end = time.monotonic() + patience
    while True:
        try:
            return fn(*args)
        except RuntimeError as e:
            if "malformed line" not in str(e):
                raise
            if time.monotonic() > end:
                raise PsutilCannotParse(str(e)) from None
            time.sleep(0.5)


def psutil_view(row):
    """A compat row as psutil shows it, given psutil's documented defects.

    A unix path is kept only when it is one whitespace-separated token
    (psutil: ``tokens[-1] if len(tokens) == 8 else ''``).
    """
    if row.family == socket.AF_UNIX and row.laddr:
        parts = row.laddr.split()
        path = parts[0] if len(parts) == 1 else ""
        if path != row.laddr:
            return row._replace(laddr=path)
    return row


def key(row):
    return tuple(row[1:6])


def differential(kind, backend, mine, ownerless=frozenset(), **kw):
    """Problems found comparing compat and psutil system-wide for one kind ([] = none),
    and how many rows the comparison covered."""
    problems = ["not run"]
    covered = 0
    for _attempt in range(10):
        a = compat.net_connections(kind, backend=backend, **kw)
        p = psutil_call(psutil.net_connections, kind)
        b = compat.net_connections(kind, backend=backend, **kw)
        a = [psutil_view(r) for r in a]
        b = [psutil_view(r) for r in b]
        hard, soft = [], []         # hard: the workload's rows differ; soft: a race, retried
        ca = collections.Counter(r for r in a if r.pid in mine)
        cb = collections.Counter(r for r in b if r.pid in mine)
        cp = collections.Counter(r for r in p if r.pid in mine)
        covered = sum(ca.values())
        if ca != cb:
            soft.append("workload rows changed between the compat calls")
        elif cp != ca:
            msg = "%s/%s workload rows: psutil only %s; compat only %s" % (
                kind, backend, list((cp - ca).elements())[:3], list((ca - cp).elements())[:3])
            # psutil reads /proc/net text over several read()s, and the kernel resumes
            # its walk by position: a socket closed elsewhere meanwhile can make it skip
            # a live one (seen for udp). Rows psutil lacks, with nothing in their place,
            # are retried; a row psutil has and compat has not, or differs in, is not.
            (soft if not cp - ca else hard).append(msg)
        if ownerless:
            sa = {r for r in a if r.pid is None and key(r) in ownerless}
            sb = {r for r in b if r.pid is None and key(r) in ownerless}
            sp = {r for r in p if r.pid is None and key(r) in ownerless}
            covered += len(sa)
            if sa != sb:
                soft.append("ownerless workload rows changed between the compat calls")
            elif sp != sa:
                hard.append("%s/%s ownerless workload rows: psutil only %s; compat only %s" % (
                    kind, backend, list(sp - sa)[:3], list(sa - sp)[:3]))
        lost = stable(a, b) - set(p)
        if lost:
            # a socket passed between processes (SCM_RIGHTS) is held by none while in
            # flight, yet can show the same row before and after: retried, not failed at once
            soft.append("%s/%s: %d stable rows not in psutil's answer, e.g. %s" % (
                kind, backend, len(lost), sorted(lost, key=repr)[:3]))
        if hard:
            return hard, covered
        if not soft:
            return [], covered
        problems = soft
    return problems, covered


def stable(a, b):
    """Rows in both compat answers, of processes whose rows did not change between them.

    A row alone is not enough: a process passing sockets around (SCM_RIGHTS)
    can show the same (pid, fd, addresses) before and after while the fd held
    another socket, or none, in between.
    """
    ca, cb = collections.defaultdict(collections.Counter), collections.defaultdict(collections.Counter)
    for rows, by in ((a, ca), (b, cb)):
        for r in rows:
            by[r.pid][r] += 1
    churn = {pid for pid in set(ca) | set(cb) if pid is not None and ca[pid] != cb[pid]}
    return {r for r in set(a) & set(b) if r.pid not in churn}


def per_process(pids):
    """Problems comparing Process(pid).net_connections(kind) with psutil's, every route."""
    problems, covered = [], 0
    for pid in pids:
        for kind in compat.KINDS:
            want = collections.Counter(psutil_call(psutil.Process(pid).net_connections, kind))
            for via, backend in ROUTES:
                got = collections.Counter(psutil_view(r) for r in compat.Process(
                    pid, via=via, backend=backend).net_connections(kind))
                covered += sum(got.values())
                if got != want:
                    problems.append("pid %d %s via %s/%s: psutil only %s; compat only %s" % (
                        pid, kind, via, backend, list((want - got).elements())[:3],
                        list((got - want).elements())[:3]))
    return problems, covered


def sample_pids(wl, n=4):
    """The first worker (two twins share its listeners), a twin, and a few others."""
    pids = sorted(wl.pids)
    return sorted(set(pids[:3] + pids[len(pids) // 2:len(pids) // 2 + n - 3] + pids[-1:]))


@pytest.fixture(scope="module")
def wl():
    with Workload(N, M) as w:
        yield w


@pytest.mark.parametrize("kind", compat.KINDS)
def test_system_wide_as_root(impl, wl, kind):
    try:
        problems, covered = differential(kind, impl.name, set(wl.pids))
    except PsutilCannotParse as e:
        pytest.skip("psutil cannot parse this host's /proc/net/unix now (documented defect): %s" % e)
    assert not problems, problems
    assert covered >= (1 if kind in ("udp6", "inet6", "tcp6") else N // 20)


@pytest.mark.parametrize("kind", compat.KINDS)
def test_system_wide_as_root_native_walk(wl, kind):
    """The native backend's /proc walk (the test above takes the BPF owner source where it loads)."""
    try:
        problems, covered = differential(kind, "native", set(wl.pids), owner_source="procfs")
    except PsutilCannotParse as e:
        pytest.skip("psutil cannot parse this host's /proc/net/unix now (documented defect): %s" % e)
    assert not problems, problems
    assert covered > 0


def test_per_process_as_root(wl):
    try:
        problems, covered = per_process(sample_pids(wl))
    except PsutilCannotParse as e:
        pytest.skip("psutil cannot parse this host's /proc/net/unix now (documented defect): %s" % e)
    assert not problems, problems
    assert covered > 0


# As nobody: a fresh interpreter started as root imports everything it needs
# (the interpreter may live under a 0700 /root), then drops to nobody for good
# -- no capabilities left -- and starts a workload of its own.
NOBODY_SCRIPT = r"""
import ctypes, os, pickle, pwd, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import test_psutil_compat_live as T
import procnet
from procnet import _backend
from workload import Workload
for b in ("native", "pure"):
    _backend.resolve(b)
T.compat._libc_syscall()
ownerless, root_pid = pickle.load(sys.stdin.buffer)
pw = pwd.getpwnam("nobody")
os.setgroups([])
os.setgid(pw.pw_gid)
os.setuid(pw.pw_uid)
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: our workers stay readable to us
out = {"uid": os.getuid(), "problems": [], "covered": {}, "skip": None}
try:
    with Workload(int(sys.argv[3]), int(sys.argv[4])) as wl:
        for kind in T.compat.KINDS:
            for backend in T.BACKENDS:
                pr, n = T.differential(kind, backend, set(wl.pids), ownerless)
                out["problems"] += pr
                out["covered"]["%s/%s" % (kind, backend)] = n
        pr, n = T.per_process(T.sample_pids(wl))
        out["problems"] += pr
        out["covered"]["process"] = n
        errs = []
        for make in (lambda: T.psutil.Process(root_pid).net_connections("all"),
                     lambda: T.compat.Process(root_pid).net_connections("all"),
                     lambda: T.compat.Process(root_pid, via="procnet", backend="pure").net_connections("all")):
            try:
                make()
                errs.append(None)
            except Exception as e:
                errs.append((type(e).__module__, type(e).__name__, getattr(e, "pid", None)))
        out["denied"] = errs
except T.PsutilCannotParse as e:
    out["skip"] = str(e)
sys.stdout.flush()
os.write(1, pickle.dumps(out))
"""


@pytest.mark.root
def test_as_nobody(wl):
    import pwd
    if os.geteuid() != 0:
        pytest.skip("needs root to become nobody")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    ownerless = frozenset(key(r) for r in compat.net_connections("all") if r.pid in set(wl.pids))
    proc = subprocess.run([sys.executable, "-c", NOBODY_SCRIPT, HERE, BENCH, "300", "8"],
                          input=pickle.dumps((ownerless, wl.pids[0])), capture_output=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    out = pickle.loads(proc.stdout)
    if out["skip"]:
        pytest.skip("psutil cannot parse this host's /proc/net/unix now (documented defect): %s" % out["skip"])
    assert out["uid"] != 0
    assert not out["problems"], out["problems"]
    # non-vacuous: nobody's workload rows and root's ownerless ones were compared
    assert all(n > 0 for n in out["covered"].values()), out["covered"]
    # a root process: psutil's AccessDenied, from both routes
    assert out["denied"] == [("psutil", "AccessDenied", wl.pids[0])] * 3, out["denied"]
