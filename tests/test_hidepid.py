"""Not root: snapshots as user nobody, on the host's /proc and on hidepid mounts.

(a) As nobody on the live /proc, each backend, source auto and procfs: no
    exception; a partial result -- every socket of the netns listed, the
    nobody process's own socket with its owner, the sockets this (root) test
    process holds with no owner; root's pids (1, this test's) in denied_pids;
    ``complete`` False.
(b) In a private mount namespace (``unshare --mount --propagation private``;
    the host's /proc is never touched) a fresh procfs is mounted on a temporary
    directory with a hidepid option, and nobody snapshots it as proc_root (text
    tables: netlink only serves the host's /proc):

    - ``hidepid=invisible`` (2) and ``ptraceable`` (4): other users' /proc/PID
      are not even listed, so they are neither owners nor denied; the result
      must still be sane (nobody's own socket owned, root's sockets listed
      without owners, no root pid anywhere);
    - ``hidepid=noaccess`` (1): the directories are listed but closed, so root's
      pids must be in denied_pids and ``complete`` False.

    Each option is tried by name, then by number; an option this kernel cannot
    mount is skipped. What each run reported is printed (-s).

Root is needed (to become nobody, to unshare and mount); without it, or
without setpriv/unshare, or where the sandbox refuses them, the tests skip.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

import procnet
from conftest import run_as_nobody

pytestmark = [pytest.mark.root, pytest.mark.live]

PKG = os.path.dirname(os.path.dirname(procnet.__file__))
NOBODY_UID = 65534

# Run as nobody: one snapshot per source with the backend given; every answer as JSON.
SCRIPT = r"""
import json, os, socket, sys
import procnet
root, theirs, backend = sys.argv[1], [int(i) for i in sys.argv[2].split(",")], sys.argv[3]
mine = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
mine.bind(("127.0.0.1", 0))
mine.listen(1)
my_ino = os.fstat(mine.fileno()).st_ino
out = {"me": [os.getpid(), mine.fileno()], "uid": os.getuid(), "runs": {}}
for source in ("auto", "procfs"):
    key = "%s/%s" % (backend, source)
    try:
        s = procnet.connections("all", proc_root=root, backend=backend, source=source)
    except Exception as e:
        out["runs"][key] = {"error": "%s: %s" % (type(e).__name__, e)}
        continue
    by = {c.inode: [[o.pid, o.fd, o.name] for o in c.owners] for c in s}
    owner_pids = sorted({o.pid for c in s for o in c.owners})
    uids = {}
    for p in owner_pids:
        try:
            uids[p] = os.stat("%s/%d" % (root, p)).st_uid
        except OSError:
            uids[p] = None          # gone since
    out["runs"][key] = {
        "n": len(s), "denied": list(s.denied_pids), "complete": s.complete,
        "pids_hidden": s.pids_hidden,
        "tables": s.tables, "sources": s.sources, "skipped": s.skipped,
        "processes": s.processes, "mine": by.get(my_ino),
        "theirs": {str(i): by.get(i) for i in theirs},
        "owner_uids": {str(p): u for p, u in uids.items()},
        "listed": sorted(int(n) for n in os.listdir(root) if n.isdigit()),
    }
print(json.dumps(out))
"""


@pytest.fixture
def root_sockets():
    """Sockets held by this (root) test process: {inode: name}."""
    socks = []
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    t.listen(1)
    socks.append(("tcp", t))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    socks.append(("udp", u))
    a, b = socket.socketpair()
    socks += [("unix_a", a), ("unix_b", b)]
    try:
        yield {os.fstat(s.fileno()).st_ino: name for name, s in socks}
    finally:
        for _, s in socks:
            s.close()


def _sock_diag_works() -> bool:
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4).close()     # NETLINK_SOCK_DIAG
    except OSError:
        return False            # e.g. under qemu-user
    return True


def _nobody_env():
    return dict(os.environ, PYTHONPATH=PKG)


def _require_nobody():
    if os.geteuid() != 0:
        pytest.skip("needs root to become nobody")
    # conftest's helper skips when nobody cannot run this interpreter or procnet
    probe = run_as_nobody([sys.executable, "-c", "import procnet._native, procnet._pure"])
    if probe.returncode != 0:
        pytest.skip("nobody cannot import procnet here: %s" % probe.stderr.strip()[-300:])


def _print(title, res):
    for key, r in res["runs"].items():
        if "error" in r:
            print("%s %s: ERROR %s" % (title, key, r["error"]))
            continue
        print("%s %s: %d sockets, %d processes walked, %d pids listed, denied %d%s, complete=%s, "
              "owner pids %s, sources %s"
              % (title, key, r["n"], r["processes"], len(r["listed"]), len(r["denied"]),
                 " (%s...)" % r["denied"][:5] if r["denied"] else "", r["complete"],
                 sorted(int(p) for p in r["owner_uids"]),
                 sorted(set(r["sources"].values()))))


def _common_checks(res, theirs, expect_sources, backend):
    me_pid, me_fd = res["me"]
    assert res["uid"] == NOBODY_UID
    assert set(res["runs"]) == {"%s/%s" % (backend, s) for s in ("auto", "procfs")}
    for key, r in res["runs"].items():
        assert "error" not in r, (key, r)
        # partial, not empty: nobody's own socket with its owner ...
        assert r["mine"] is not None and [o[:2] for o in r["mine"]] == [[me_pid, me_fd]], (key, r["mine"])
        # ... root's sockets listed, without an owner
        for ino, name in theirs.items():
            assert r["theirs"][str(ino)] == [], (key, name, r["theirs"][str(ino)])
        # every owner reported is a process nobody may read
        assert all(u in (NOBODY_UID, None) for u in r["owner_uids"].values()), (key, r["owner_uids"])
        assert 1 not in (int(p) for p in r["owner_uids"]) and os.getpid() not in (int(p) for p in r["owner_uids"])
        assert all(v in ("read", "missing") for v in r["tables"].values()), (key, r["tables"])
        assert not r["skipped"], (key, r["skipped"])
        src = key.split("/")[1]
        assert set(r["sources"].values()) <= expect_sources[src], (key, r["sources"])


def test_nobody_on_the_live_proc(impl, root_sockets, record_property):
    _require_nobody()
    out = run_as_nobody([sys.executable, "-c", SCRIPT, "/proc", ",".join(map(str, root_sockets)), impl.name])
    assert out.returncode == 0, out.stderr            # a crash is a procnet failure, not a skip
    res = json.loads(out.stdout)
    _print("nobody /proc", res)
    _common_checks(res, root_sockets, {"auto": {"netlink", "procfs"}, "procfs": {"procfs"}}, impl.name)
    for key, r in res["runs"].items():
        assert r["denied"], key
        assert 1 in r["denied"] and os.getpid() in r["denied"], (key, r["denied"][:20])
        assert r["complete"] is False, key
        record_property("denied_" + key.replace("/", "_"), len(r["denied"]))
    if _sock_diag_works():
        assert "netlink" in res["runs"][impl.name + "/auto"]["sources"].values()


HIDEPID = {
    "invisible": ("hidepid=invisible", "hidepid=2"),
    "ptraceable": ("hidepid=ptraceable", "hidepid=4"),
    "noaccess": ("hidepid=noaccess", "hidepid=1"),
}

# In the new mount namespace: mount, then drop to nobody; 97 = mount refused.
NS_SH = 'mount -t proc -o "$1" proc "$2" || exit 97; shift 2; exec setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"'


def _run_in_hidepid_ns(mode: str, theirs, backend: str):
    if not shutil.which("unshare") or not shutil.which("setpriv") or not shutil.which("mount"):
        pytest.skip("needs unshare, setpriv and mount")
    mnt = tempfile.mkdtemp(prefix="procnet-hidepid-")
    tried = []
    try:
        os.chmod(mnt, 0o755)
        for opt in HIDEPID[mode]:
            p = subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", NS_SH, "sh", opt, mnt,
                 sys.executable, "-c", SCRIPT, mnt, ",".join(map(str, theirs)), backend],
                capture_output=True, text=True, env=_nobody_env(), timeout=120)
            if p.returncode == 97:
                tried.append("%s: %s" % (opt, p.stderr.strip()))
                continue
            if p.returncode != 0 and p.stderr.startswith(("unshare:", "setpriv:")):
                pytest.skip("cannot enter a mount namespace as nobody here: %s" % p.stderr.strip())
            assert p.returncode == 0, (opt, p.returncode, p.stderr)
            return opt, json.loads(p.stdout)
        pytest.skip("this kernel mounts no procfs with %s: %s" % (mode, "; ".join(tried)))
    finally:
        # the mount lived in the namespace only; it went with the namespace
        os.rmdir(mnt)


@pytest.mark.parametrize("mode", ["invisible", "ptraceable"])
def test_hidepid_hides_other_users(impl, mode, root_sockets, record_property):
    _require_nobody()
    opt, res = _run_in_hidepid_ns(mode, root_sockets, impl.name)
    _print("nobody %s" % opt, res)
    _common_checks(res, root_sockets, {"auto": {"procfs"}, "procfs": {"procfs"}}, impl.name)
    for key, r in res["runs"].items():
        # root's processes are not listed, so neither walked nor denied
        assert 1 not in r["listed"] and os.getpid() not in r["listed"], (key, r["listed"][:20])
        assert 1 not in r["denied"] and os.getpid() not in r["denied"], (key, r["denied"])
        assert res["me"][0] in r["listed"]
        assert r["processes"] <= len(r["listed"])
        # nothing is denied, yet other users' owners are unknown: not complete
        assert r["complete"] is False and r["pids_hidden"] is True, key
        record_property("denied_" + key.replace("/", "_"), len(r["denied"]))
        record_property("complete_" + key.replace("/", "_"), r["complete"])


def test_hidepid_noaccess_is_denied(impl, root_sockets, record_property):
    _require_nobody()
    opt, res = _run_in_hidepid_ns("noaccess", root_sockets, impl.name)
    _print("nobody %s" % opt, res)
    _common_checks(res, root_sockets, {"auto": {"procfs"}, "procfs": {"procfs"}}, impl.name)
    for key, r in res["runs"].items():
        assert 1 in r["listed"] and os.getpid() in r["listed"], key
        assert 1 in r["denied"] and os.getpid() in r["denied"], (key, r["denied"][:20])
        assert r["complete"] is False, key
        record_property("denied_" + key.replace("/", "_"), len(r["denied"]))
