"""Change tracking (Poller(track=True)) probed as a hostile user would: processes
and threads (fork, exec, spawn, signal handlers, leaders and threads that exit,
threads in other namespaces, pollers polling at once, interrupted polls).

The promise: a poll answered from the tracked state (``Poll.tracked``), and a
lookup answered from it, equal a fresh ``connections(owner_source="procfs")``
in sockets, addresses, states and owners (not tx/rx_queue). Each test makes
one thing happen that the kernel-side records or the user-side decisions may
miss, then compares the next poll with a fresh snapshot of its private
network namespace (everything in it is the test's own). Sockets that move or
appear unseen: test_track_hostile_sockets.py.
"""
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import procnet

from track_helpers import (assert_next_poll_fresh, child, fresh, libc, no_stale_poll,
                           poll_and_fresh, private_netns, reap, rows, tracked_poller,
                           unshare_net, wait_tracked as settle)

pytestmark = pytest.mark.live

SYS_EXIT = {"x86_64": 60, "aarch64": 93}.get(platform.machine())


def bpf_fds():
    n = 0
    for f in os.listdir("/proc/self/fd"):
        try:
            n += "bpf" in os.readlink("/proc/self/fd/" + f)
        except OSError:
            pass
    return n


def test_open_close_cycles_release_links_maps_and_fds(tracking):
    before = (len(os.listdir("/proc/self/fd")), bpf_fds())
    for i in range(20):
        p = tracked_poller(("udp",))
        p.poll()
        if i % 2:
            p.close()
        del p
    import gc
    gc.collect()
    assert (len(os.listdir("/proc/self/fd")), bpf_fds()) == before


@private_netns
def test_threads_polling_at_once_then_a_tracked_poll_is_fresh(tracking):
    p = tracked_poller()
    stop = threading.Event()
    errors = []

    def poll():
        try:
            while not stop.is_set():
                p.poll()
        except Exception as e:              # pragma: no cover (the failure)
            errors.append(e)

    def churn():
        while not stop.is_set():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
    # the workers must share the test's namespace
    ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY)

    def inside(f):
        def run():
            libc.setns(ns, 0x40000000)
            f()
        return run
    ths = [threading.Thread(target=inside(poll)) for _ in range(3)] + \
        [threading.Thread(target=inside(churn))]
    for t in ths:
        t.start()
    time.sleep(1.0)
    stop.set()
    for t in ths:
        t.join()
    os.close(ns)
    assert not errors
    settle(p)
    keep = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    keep.bind(("127.0.0.1", 0))
    assert_next_poll_fresh(p)
    keep.close()
    p.close()


@private_netns
def test_spawned_child_and_a_thread_that_execs(tracking):
    p = tracked_poller()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    os.set_inheritable(u.fileno(), True)
    settle(p)
    pid = os.posix_spawn("/bin/sleep", ["sleep", "1"], os.environ)     # vfork + exec
    assert_next_poll_fresh(p)
    os.waitpid(pid, 0)
    assert_next_poll_fresh(p)
    r, w = os.pipe()

    def body():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        os.set_inheritable(s.fileno(), True)
        os.read(r, 1)
        threading.Thread(target=os.execv, args=("/bin/sleep", ["sleep", "2"])).start()
        time.sleep(5)
    pid = child(body)
    try:
        time.sleep(0.2)
        settle(p)
        os.write(w, b"g")                  # a non-leader thread execs: de_thread
        time.sleep(0.3)
        assert_next_poll_fresh(p)
    finally:
        reap(pid)
    assert_next_poll_fresh(p)
    u.close()
    p.close()


@private_netns
def test_stopped_churner_first_polls_are_fresh(tracking):
    p = tracked_poller()

    def churn():
        keep = []
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(64)
        linger = b"\1\0\0\0\0\0\0\0"       # SO_LINGER 0: no TIME_WAIT rows
        for i in range(10 ** 9):
            k = i % 4
            if k == 0:
                x = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                x.bind(("127.0.0.1", 0))
                keep.append(x)
            elif k == 1:
                c = socket.socket()
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                c.connect(srv.getsockname())
                a, _ = srv.accept()
                a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                keep += [c, a]
            elif k == 2:
                keep.append(socket.socketpair()[0])
            elif keep:
                keep.pop(random.randrange(len(keep))).close()
            if len(keep) > 40:
                keep.pop(0).close()
    pid = child(churn)
    try:
        checked = 0
        for _ in range(40):
            os.kill(pid, signal.SIGCONT)
            t0 = time.monotonic()
            while time.monotonic() - t0 < random.uniform(0.001, 0.01):
                p.poll()
            os.kill(pid, signal.SIGSTOP)
            while open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] != "T":
                time.sleep(0.0005)
            polls = [p.poll() for _ in range(3)]
            want = fresh()
            for r in polls:
                if r.tracked:
                    checked += 1
                    assert rows(r.snapshot) == want
        assert checked
    finally:
        reap(pid)
        p.close()


@private_netns
def test_polled_from_a_thread_in_another_netns(tracking):
    kind = ("udp",)

    def scenario():
        p = tracked_poller(kind)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        box = {}
        ready, go = threading.Event(), threading.Event()

        def other():
            try:
                unshare_net()                       # before the settle: its record is old
                ready.set()
                go.wait()
                box["ok"] = poll_and_fresh(p, kind)
            except BaseException as e:
                box["e"] = e
        t = threading.Thread(target=other)
        t.start()
        ready.wait()
        settle(p)
        go.set()
        t.join()
        u.close()
        p.close()
        if "e" in box:
            raise box["e"]
        return box["ok"]
    no_stale_poll(scenario)


SIGNAL_SCRIPT = textwrap.dedent("""
    import ctypes, os, signal, socket, sys
    import procnet
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.unshare(0x40000000) == 0          # the main thread: signals run here
    p = procnet.Poller("udp", backend="native", track=True)
    held = []
    def handler(sig, frame):
        if not held:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("127.0.0.1", 0))
            held.append(u)
    signal.signal(signal.SIGALRM, handler)
    def rows(snap):
        return {(c.inode, str(c.laddr)) for c in snap}
    for i in range(400):                        # the bug showed within a few
        p._track.dirty = "a listing, please"
        signal.setitimer(signal.ITIMER_REAL, 0.0001 * (1 + i % 20))
        p.poll()
        signal.setitimer(signal.ITIMER_REAL, 0)
        if held:
            r = p.poll()
            if r.tracked and rows(r.snapshot) != rows(procnet.connections("udp", owner_source="procfs")):
                print("STALE")
                sys.exit(0)
            held.pop().close()
            p._track.dirty = "again"
    print("HELD")
""")


def test_a_socket_made_by_a_signal_handler_during_a_listing(tracking):
    out = subprocess.run([sys.executable, "-c", SIGNAL_SCRIPT], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "STALE" not in out.stdout, out.stdout


@private_netns
def test_a_forked_child_polling_does_not_take_the_parents_records(tracking):
    kind = ("udp",)

    def scenario():
        p = tracked_poller(kind)
        r, w = os.pipe()
        r2, w2 = os.pipe()

        def body():
            os.read(r, 1)
            p.poll()
            os.write(w2, b"d")
            os.read(r, 1)
        pid = child(body)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            settle(p)
            u.bind(("127.0.0.1", 0))
            os.write(w, b"g")
            os.read(r2, 1)
            return poll_and_fresh(p, kind)
        finally:
            reap(pid)
            u.close()
            for fd in (r, w, r2, w2):
                os.close(fd)
            p.close()
    no_stale_poll(scenario)


@pytest.mark.skipif(SYS_EXIT is None, reason="exit syscall number of this architecture unknown")
@private_netns
def test_socket_calls_of_a_process_whose_leader_exited(tracking):
    kind = ("udp",)

    def scenario():
        r, w = os.pipe()
        r2, w2 = os.pipe()

        def body():
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

            def worker():
                os.read(r, 1)
                u.bind(("127.0.0.1", 0))
                os.write(w2, b"b")
                os.read(r, 1)
            threading.Thread(target=worker).start()
            time.sleep(0.1)
            libc.syscall(SYS_EXIT, 0)           # the leader thread alone
        pid = child(body)
        time.sleep(0.3)
        p = tracked_poller(kind)
        try:
            settle(p)
            os.write(w, b"g")
            os.read(r2, 1)
            return poll_and_fresh(p, kind)
        finally:
            reap(pid)
            for fd in (r, w, r2, w2):
                os.close(fd)
            p.close()
    no_stale_poll(scenario)


@private_netns
def test_an_interrupted_poll_loses_no_records(tracking):
    p = tracked_poller(("udp",))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    settle(p)
    real = p._track._read

    def read_then_interrupted():
        real()
        raise KeyboardInterrupt("a signal just after the records were read")
    v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v.bind(("127.0.0.1", 0))
    p._track._read = read_then_interrupted
    with pytest.raises(KeyboardInterrupt):
        p.poll()
    p._track._read = real
    try:
        got = p.lookup(lport=port)
        assert len(got) == 1, "lookup(lport=%d) found %d rows" % (port, len(got))
        no_stale_poll(lambda: poll_and_fresh(p, ("udp",)), tries=1)
    finally:
        u.close()
        v.close()
        p.close()


@private_netns
def test_two_tracking_pollers_in_one_process_both_answer_tracked(tracking):
    p1, p2 = tracked_poller(), tracked_poller()
    keep = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    keep.bind(("127.0.0.1", 0))
    n1 = n2 = 0
    for _ in range(30):
        n1 += p1.poll().tracked
        n2 += p2.poll().tracked
    keep.close()
    p1.close()
    p2.close()
    assert n1 and n2


def test_track_takes_only_true_false_or_auto():
    for bad in (1.0, 1 + 0j):
        try:
            p = procnet.Poller("udp", backend="pure", track=bad)
        except ValueError:
            continue
        raise AssertionError("track=%r accepted: tracking %s" % (bad, p.tracking))


@private_netns
def test_a_short_lived_thread_in_the_listed_namespace(tracking):
    kind = ("udp",)
    r, w = os.pipe()

    def body():
        unshare_net()
        os.write(w, b"1")
        time.sleep(120)
    pid = child(body)
    os.read(r, 1)
    path = "/proc/%d/ns/net" % pid
    ino = os.stat(path).st_ino
    nsfd = os.open(path, os.O_RDONLY)
    p = tracked_poller(kind, netns=ino)
    held = []

    def worker():
        libc.setns(nsfd, 0x40000000)
        time.sleep(random.uniform(0, 0.003))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        held.append(s)

    def sockets(snap):
        return {(c.inode, str(c.laddr), tuple(sorted(o[:2] for o in c.owners))) for c in snap}
    try:
        for _ in range(100):
            settle(p)
            p._track.dirty = "a listing, please"
            t = threading.Thread(target=worker)
            t.start()
            p.poll()
            t.join()
            after = p.poll()
            if after.tracked:
                want = procnet.connections(kind, netns=ino, backend="native", owner_source="procfs")
                assert sockets(after.snapshot) == sockets(want)
    finally:
        reap(pid)
        for s in held:
            s.close()
        for fd in (nsfd, r, w):
            os.close(fd)
        p.close()


@private_netns
def test_exit_of_a_thread_with_its_own_fd_table(tracking):
    kind = ("udp",)

    def scenario():
        p = tracked_poller(kind)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        go, ready = threading.Event(), threading.Event()

        def own_table():
            assert libc.unshare(0x400) == 0          # CLONE_FILES: a copy of the table
            ready.set()
            go.wait()
        t = threading.Thread(target=own_table)
        t.start()
        ready.wait()
        u.close()                 # the process's table lets go; the thread's copy holds it
        try:
            settle(p)
            go.set()
            t.join()
            for _ in range(100):
                if not procnet.connections(kind, backend="native"):
                    break
                time.sleep(0.002)
            return poll_and_fresh(p, kind)
        finally:
            go.set()
            t.join()
            p.close()
    no_stale_poll(scenario)


# A 64-bit process making a syscall through the 32-bit entry (int $0x80): the
# kernel runs it as a 32-bit process's (ia32 numbers, TS_COMPAT), as it runs
# every syscall of a 32-bit program; here it makes a unix socket (ia32 359).
_IA32_SOCKET = r"""
#include <unistd.h>
int main(void)
{
    char b;
    long fd;
    if (read(0, &b, 1) != 1)
        return 2;
    __asm__ volatile ("int $0x80" : "=a"(fd) : "a"(359L), "b"(1L), "c"(1L), "d"(0L)
                      : "memory", "r8", "r9", "r10", "r11");
    if (fd < 0)
        return 3;
    if (write(1, "k", 1) != 1)
        return 4;
    return read(0, &b, 1) < 0;          /* hold the socket until told */
}
"""


@pytest.fixture(scope="module")
def ia32_socket(tmp_path_factory):
    if platform.machine() != "x86_64":
        pytest.skip("the 32-bit entry is x86_64's")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("ia32")
    (d / "s.c").write_text(_IA32_SOCKET)
    subprocess.run([cc, "-O1", "-o", str(d / "s"), str(d / "s.c")], check=True)
    return str(d / "s")


@private_netns
def test_a_32_bit_syscall_is_recorded(tracking, ia32_socket):
    """ia32 numbers are not the build's: a 32-bit socket() (359; 64-bit 359 is
    another call) must still make the next poll list (issue 18: 32-bit
    processes were a known stale answer)."""
    p = tracked_poller(("unix",))
    proc = subprocess.Popen([ia32_socket], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        settle(p)
        proc.stdin.write(b"x")
        proc.stdin.flush()
        if proc.stdout.read(1) != b"k":
            proc.wait()
            pytest.skip("no 32-bit syscalls here (rc %s)" % proc.returncode)
        r, want = poll_and_fresh(p, ("unix",))
        assert rows(r.snapshot) == want, "tracked=%s" % r.tracked
        assert not r.tracked
        assert any(proc.pid in c.pids for c in r.snapshot)
    finally:
        proc.kill()
        proc.wait()
        p.close()


# P clones C with CLONE_FILES (no CLONE_THREAD): two processes, one fd table.
# On a byte on stdin C binds a UDP socket (a record names C only); P spins.
_SHARED_FILES = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
static char stack[1 << 16];
static int child(void *arg)
{
    char c;
    (void)arg;
    if (read(0, &c, 1) != 1)
        return 1;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0)
        return 2;
    printf("k\n");
    fflush(stdout);
    pause();
    return 0;
}
int main(void)
{
    pid_t c = clone(child, stack + sizeof stack, CLONE_FILES | SIGCHLD, NULL);
    printf("%d %d\n", (int)getpid(), (int)c);
    fflush(stdout);
    for (volatile unsigned long x = 0;; x++)
        if ((x & 0xfffff) == 0)
            usleep(1000);
}
"""


@pytest.fixture(scope="module")
def shared_files(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("shared")
    (d / "s.c").write_text(_SHARED_FILES)
    subprocess.run([cc, "-O1", "-o", str(d / "s"), str(d / "s.c")], check=True)
    return str(d / "s")


@private_netns
def test_processes_sharing_an_fd_table_from_before_tracking(tracking, shared_files):
    """Cloned before the poller started (no record of it): a socket C makes is
    P's too. A poll that reads only the processes records named would miss
    P (found by a review); kcmp finds the pair when tracking starts."""
    from procnet._fdshare import fd_table_sharers
    proc = subprocess.Popen([shared_files], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    p, pid_c = None, None
    try:
        pid_p, pid_c = map(int, proc.stdout.readline().split())
        assert {pid_p, pid_c} <= fd_table_sharers()
        p = tracked_poller(("udp",))
        settle(p)
        proc.stdin.write(b"x")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"k\n"
        r, want = poll_and_fresh(p, ("udp",))
        assert rows(r.snapshot) == want, "carried=%s" % r.carried
        assert any(set(c.pids) == {pid_p, pid_c} for c in r.snapshot)
    finally:
        if pid_c is not None:
            os.kill(pid_c, signal.SIGKILL)      # P's child, not ours: init reaps it
        proc.kill()
        proc.wait()
        if p is not None:
            p.close()


@pytest.mark.skipif(shutil.which("unshare") is None, reason="no unshare(1)")
def test_a_namespace_made_by_a_process_holding_no_socket(tracking):
    """netns="all": `unshare -n sleep` makes a namespace with kernel netlink
    sockets and no record naming any of them (found by a hostile probe); its
    unshare (a process in a namespace the last listing did not list) must
    make the next poll list, and its exit too."""
    kind = ("netlink",)
    p = tracked_poller(kind, netns="all")
    proc = subprocess.Popen(["sh", "-c", "read x; exec unshare -n sleep 60"], stdin=subprocess.PIPE)
    try:
        settle(p)
        mine = os.stat("/proc/self/ns/net").st_ino
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 10
        while os.stat("/proc/%d/ns/net" % proc.pid).st_ino == mine:
            assert time.monotonic() < deadline, "unshare -n did not run"
            time.sleep(0.01)
        new_ns = os.stat("/proc/%d/ns/net" % proc.pid).st_ino
        r = p.poll()
        want = rows(procnet.connections(kind, netns="all", backend="native", owner_source="procfs"))
        assert rows(r.snapshot) == want and not r.tracked
        assert any(c.netns == new_ns for c in r.snapshot)
        settle(p)
        proc.kill()
        proc.wait()
        r = p.poll()
        assert not any(c.netns == new_ns for c in r.snapshot) and not r.tracked
    finally:
        proc.kill()
        proc.wait()
        p.close()
