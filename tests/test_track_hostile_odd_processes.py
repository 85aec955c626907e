"""Change tracking (Poller(track=True)) probed with processes that reach the
kernel by odd paths: a 32-bit syscall on a 64-bit kernel, two processes
sharing one fd table (clone(CLONE_FILES)), a namespace made by a process
that holds no socket. Each has been a stale answer once; the promise is the
one of test_track_hostile_processes.py: the next poll equals a fresh
snapshot.
"""
import os
import platform
import shutil
import signal
import subprocess
import time

import pytest

import procnet

from c_build import compiled
from track_helpers import (poll_and_fresh, private_netns, rows, tracked_poller,
                           wait_tracked as settle)

pytestmark = pytest.mark.live


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
    return compiled(tmp_path_factory, "ia32", _IA32_SOCKET)


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
    return compiled(tmp_path_factory, "shared", _SHARED_FILES)


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
