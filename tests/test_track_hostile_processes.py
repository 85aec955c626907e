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
