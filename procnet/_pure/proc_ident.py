"""What the owner cache knows a process by; twin of proc_ident.c (read its header comment).

A process is its pid and start time; whether it may have changed its fd
table since the last look is told by its threads' run counters
(/proc/PID/task/TID/schedstat: ns on CPU, times switched in), read before
their states: a thread found asleep can only run again by being switched in,
one found running may run on with stale counters, so it is never trusted.

The short check (procfs only): a settled process (found asleep with the same
counters by two whole reads in a row) known single-threaded, whose counters
did not move and whose PID directory is the same inode, is that process,
unchanged: its stat (the costly read) is not read. The directory is looked at
after the counters (a pid reused in between shows there).
"""
import os
import stat as _st
from typing import Optional, Tuple

from . import file_read

Tasks = Tuple[Tuple[int, int, int], ...]
Dir = Tuple[int, int]          # (dev, inode) of <root>/PID; (0, 0) unknown


def _read(rootfd: int, path: bytes, n: int) -> Optional[bytes]:
    try:
        return file_read.read_small(path, n, rootfd)
    except OSError:
        return None


def _dec(tok: bytes) -> Optional[int]:
    # pn_scan_dec: ASCII digits only, within uint64
    if not tok or not tok.isdigit():
        return None
    v = int(tok)
    return v if v <= 0xFFFFFFFFFFFFFFFF else None


def _schedstat(rootfd: int, path: bytes) -> Optional[Tuple[int, int]]:
    """(runtime, pcount), or None when absent, odd or "0 0 0" (no schedstats)."""
    b = _read(rootfd, path, 96)
    if not b:
        return None
    if b.endswith(b"\n"):
        b = b[:-1]
    parts = [p for p in b.replace(b"\t", b" ").split(b" ") if p]
    vals = [_dec(p) for p in parts] if len(parts) == 3 else [None]
    if None in vals or (vals[0] == 0 and vals[2] == 0):
        return None
    return vals[0], vals[2]  # type: ignore[return-value]


def _stat(rootfd: int, path: bytes) -> Optional[Tuple[bytes, int, int]]:
    """(state, num_threads, starttime) from a stat file, or None."""
    b = _read(rootfd, path, 1024)
    if not b:
        return None
    i = b.rfind(b")")
    if i < 0:
        return None
    fields = b[i + 1:].split()
    if len(fields) < 20:
        return None
    threads, start = _dec(fields[17]), _dec(fields[19])
    if threads is None or start is None:
        return None
    return fields[0][:1], threads, start


def _thread(dfd: int, tid: int, leader: int) -> Optional[Tuple[int, int, int]]:
    """read_thread(): counters, then the state; None when running or unknown."""
    s = _schedstat(dfd, b"%d/schedstat" % tid)
    if s is None:
        return None
    st = _stat(dfd, b"%d/stat" % tid)
    if st is None or st[0] == b"R" or (tid != leader and st[0] in (b"Z", b"X", b"x")):
        return None
    return (tid, s[0], s[1])


def _dir(rootfd: int, pid: int) -> Dir:
    try:
        st = os.stat(b"%d" % pid, dir_fd=rootfd, follow_symlinks=False)
    except OSError:
        return (0, 0)
    return (st.st_dev, st.st_ino) if _st.S_ISDIR(st.st_mode) else (0, 0)


def proc_ident(rootfd: int, pid: int, was: Optional[Tuple[int, Tasks, Dir]] = None
               ) -> Tuple[int, Optional[Tasks], Dir, bool]:
    """(start time, sorted (tid, runtime, pcount) per thread, directory, whether
    the short check served); tasks None when the counters cannot be trusted
    (see cache.c: counters before states). was: the cache's (start, tasks, dir)
    for a settled pid on procfs, for the short check."""
    leader = _schedstat(rootfd, b"%d/schedstat" % pid)
    d = _dir(rootfd, pid)
    if leader is not None and d[1] and was is not None and was[2][1] and was[2] == d and \
            len(was[1]) == 1 and was[1][0] == (pid,) + leader:
        return was[0], was[1], d, True
    stat_path = b"%d/stat" % pid
    st = _stat(rootfd, stat_path)
    if st is None or st[2] == 0:
        return 0, None, d, False
    state, threads, start = st
    if threads == 1 and state not in (b"Z", b"X", b"x"):
        if leader is None or state == b"R":
            return start, None, d, False
        return start, ((pid, leader[0], leader[1]),), d, False
    try:
        dfd = os.open(b"%d/task" % pid, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW,
                      dir_fd=rootfd)
    except OSError:
        return start, None, d, False
    try:
        tasks = []
        for name in os.listdir(dfd):
            tid = _dec(name.encode("utf-8", "surrogateescape"))
            if tid is None or tid > 0x7FFFFFFF:
                continue
            t = _thread(dfd, tid, pid)
            if t is None:
                return start, None, d, False
            tasks.append(t)
    except OSError:
        return start, None, d, False
    finally:
        os.close(dfd)
    # every thread listed (num_threads counts a zombie leader too), and none
    # made while the list was read (it would not be in it)
    if not tasks or len(tasks) != threads:
        return start, None, d, False
    again = _stat(rootfd, stat_path)
    if again is None or again[1] != threads or again[2] != start:
        return start, None, d, False
    return start, tuple(sorted(tasks)), d, False
