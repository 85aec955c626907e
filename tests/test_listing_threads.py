"""One namespace's tables listed on two threads (csrc/listing.c, native).

Where a listing holds more than one of the host's big tables (TCP's hashes,
unix) and threads are allowed, the core dumps them side by side: a helper
thread with a sock_diag socket of its own takes jobs beside the caller's.
The rows must come exactly as from one thread: in table order, unix paths
intact, and never one of our own dump sockets in the netlink table (the
caller lists that one after the helper's socket is closed). Where the helper
cannot start or open its socket, the caller lists everything.

The helper is observed through an LD_PRELOAD shim that logs each
socket(AF_NETLINK, ..., NETLINK_SOCK_DIAG) with its thread, and can make the
helper's attempt fail (socket() or pthread_create()).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest

from c_build import compiled, preload
from live_sockets import inet_set

pytestmark = pytest.mark.live

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* socket(): log NETLINK_SOCK_DIAG ones (tid, inode); SHIM_FAIL_SOCKET=1 refuses them
 * on any thread but the process's first. pthread_create(): SHIM_FAIL_THREAD=1
 * refuses every one. */
int socket(int domain, int type, int protocol)
{
    static int (*real)(int, int, int);
    if (!real)
        real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    if (domain != AF_NETLINK || protocol != 4)
        return real(domain, type, protocol);
    long tid = syscall(SYS_gettid);
    if (getenv("SHIM_FAIL_SOCKET") && tid != getpid()) {
        errno = EMFILE;
        return -1;
    }
    int fd = real(domain, type, protocol);
    struct stat st;
    const char *log = getenv("SHIM_LOG");
    if (fd >= 0 && log && fstat(fd, &st) == 0) {
        FILE *f = fopen(log, "a");
        if (f) { fprintf(f, "%ld %lu\n", tid, (unsigned long)st.st_ino); fclose(f); }
    }
    return fd;
}

int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!real)
        real = dlsym(RTLD_NEXT, "pthread_create");
    if (getenv("SHIM_FAIL_THREAD"))
        return EAGAIN;
    return real(t, a, fn, arg);
}
"""

# The child: lists (owners=False: no walk threads), prints what it saw of the
# parent's sockets and of one it binds (CHILD_BIND), every row's table and the
# inodes of the sock_diag netlink rows.
CHILD = textwrap.dedent("""
    import json, os, sys
    import procnet
    from procnet import _tables as T
    kw = json.loads(sys.argv[1])
    mine = set(json.loads(sys.argv[2]))
    if os.environ.get("CHILD_BIND"):
        import socket
        u = socket.socket(socket.AF_UNIX)
        u.bind(os.environ["CHILD_BIND"])
        mine.add(os.fstat(u.fileno()).st_ino)
    snap = procnet.connections("all", backend="native", **kw)
    rows = [(c.proto, c.laddr, c.raddr, c.state, c.inode, c.rx_queue, c.tx_queue, c.uid)
            for c in snap]
    diag = [c.inode for c in snap if c.proto == "netlink" and c.protocol == 4]
    print(json.dumps({"mine": [r for r in rows if r[4] in mine],
                      "tables": [T.TABLE_INDEX[c.proto] for c in snap],
                      "statuses": snap.tables, "diag": diag}))
""")


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    return compiled(tmp_path_factory, "shim", SHIM, shared=True)


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """TCP (v4, v6, established), UDP and unix sockets with odd paths."""
    d = tmp_path_factory.mktemp("unix")
    socks = []
    for af, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        socks += inet_set(af, host)
    for i, name in enumerate(["a b", "tab\there", "long" * 5, "é"]):
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        u.bind(str(d / ("%d %s" % (i, name))))
        u.listen()
        socks.append(u)
    a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.bind(b"\0procnet-listing-threads\0x")
    socks.append(a)
    socks += list(socket.socketpair())
    yield socks
    for s in socks:
        s.close()


def run_child(shim, held, tmp_path, env_extra=None, prefix=(), **kw):
    log = tmp_path / "diag.log"
    if log.exists():
        log.unlink()
    env = dict(os.environ, LD_PRELOAD=preload(shim), SHIM_LOG=str(log), PROCNET_BACKEND="native")
    env.update(env_extra or {})
    mine = [os.fstat(s.fileno()).st_ino for s in held]
    out = subprocess.run([*prefix, sys.executable, "-c", CHILD, json.dumps(kw), json.dumps(mine)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    dumps = [tuple(map(int, line.split())) for line in log.read_text().splitlines()] \
        if log.exists() else []
    return got, dumps


def two_cpus():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one usable CPU: the core lists on one thread")
    import procnet
    if procnet.connections("tcp4", owners=False).sources.get("tcp") != "netlink":
        pytest.skip("no sock_diag here (qemu-user refuses NETLINK_SOCK_DIAG): text only")


def test_two_threads_list_as_one(shim, held, tmp_path):
    two_cpus()
    one, dumps1 = run_child(shim, held, tmp_path, threads=1, owners=False)
    two, dumps2 = run_child(shim, held, tmp_path, owners=False)
    assert len(dumps1) == 1                       # threads=1: the caller's socket alone
    assert len({tid for tid, _ in dumps2}) == 2, dumps2   # and the helper's, on its thread
    # every socket of ours, in the same order with the same fields (unix paths re-based)
    assert two["mine"] == one["mine"]
    assert len(one["mine"]) == len(held)
    paths = sorted(r[1] for r in two["mine"] if r[0] == "unix" and r[1])
    assert any(p.endswith("0 a b") for p in paths) and "@procnet-listing-threads@x" in paths
    # rows in table order, every table read
    assert two["tables"] == sorted(two["tables"])
    assert two["statuses"] == one["statuses"]


@pytest.mark.parametrize("threads", [None, 1])
def test_no_dump_socket_of_ours_is_a_row(shim, held, tmp_path, threads):
    """The netlink table is listed after the helper's socket is closed, and
    the caller's own is left out as ever."""
    two_cpus()
    for _ in range(5):
        got, dumps = run_child(shim, held, tmp_path, threads=threads)
        assert len(dumps) == (2 if threads is None else 1)
        assert got["diag"] and not {ino for _, ino in dumps} & set(got["diag"])


def test_paths_of_a_namespace_listed_after_another(shim, held, tmp_path):
    """netns="all" from a namespace of its own: the host's namespace (lower
    inode) is listed first, so the child's unix paths land after the host's
    in the strings the rows point into."""
    two_cpus()
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1)")
    path = str(tmp_path / "child sock")
    runs = []
    for threads in (1, None):
        if os.path.exists(path):
            os.unlink(path)
        got, dumps = run_child(shim, held, tmp_path, {"CHILD_BIND": path}, ("unshare", "-n"),
                               threads=threads, owners=False, netns="all")
        runs.append(got)
    held_inodes = {os.fstat(s.fileno()).st_ino for s in held}
    one, two = ([r for r in got["mine"] if r[4] in held_inodes] for got in runs)
    assert two == one and len(two) == len(held)
    for got in runs:     # the child's own socket, its path intact
        assert [r[:2] for r in got["mine"] if r[4] not in held_inodes] == [["unix", path]]


@pytest.mark.parametrize("fail", ["SHIM_FAIL_SOCKET", "SHIM_FAIL_THREAD"])
def test_a_helper_that_cannot_start_leaves_it_to_the_caller(shim, held, tmp_path, fail):
    two_cpus()
    one, _ = run_child(shim, held, tmp_path, threads=1, owners=False)
    got, tids = run_child(shim, held, tmp_path, {fail: "1"}, owners=False)
    assert got["mine"] == one["mine"] and got["statuses"] == one["statuses"]
    assert set(got["statuses"].values()) <= {"read", "missing"}
    assert got["tables"] == sorted(got["tables"])


def test_a_process_pinned_to_one_cpu_lists_on_one_thread(shim, held, tmp_path):
    two_cpus()
    if not shutil.which("taskset"):
        pytest.skip("no taskset(1)")
    cpu = str(min(os.sched_getaffinity(0)))
    one, _ = run_child(shim, held, tmp_path, threads=1, owners=False)
    got, dumps = run_child(shim, held, tmp_path, prefix=("taskset", "-c", cpu), owners=False)
    assert len(dumps) == 1 and got["mine"] == one["mine"]
