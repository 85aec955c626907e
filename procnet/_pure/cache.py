"""A Poller's state in pure Python; twin of cache.c (read its header comment).

Per process (pid + start time): the socket fds its last walk found and its
threads' run counters; a process whose threads did not run since is not
walked again. And the last poll's records, so a poll hands over only what
changed: ``take`` says, per socket of the poll, which object to use.
"""
import os
from typing import Any, Dict, List, Optional, Tuple

from .._contract import Owner, _Context
from .._tables import UNIX

REBASE_SLACK = 1024
CH_SAME, CH_OPENED, CH_OWNERS, CH_MODIFIED = 0, 1, 2, 3
_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
Tasks = Tuple[Tuple[int, int, int], ...]


def _read(rootfd: int, path: bytes, n: int) -> Optional[bytes]:
    try:
        fd = os.open(path, _FLAGS, dir_fd=rootfd)
    except OSError:
        return None
    try:
        return os.read(fd, n)
    except OSError:
        return None
    finally:
        os.close(fd)


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


def proc_ident(rootfd: int, pid: int) -> Tuple[int, Optional[Tasks]]:
    """(start time, sorted (tid, runtime, pcount) per thread); tasks None when the
    counters cannot be trusted (see cache.c: counters before states)."""
    leader = _schedstat(rootfd, b"%d/schedstat" % pid)
    stat_path = b"%d/stat" % pid
    st = _stat(rootfd, stat_path)
    if st is None or st[2] == 0:
        return 0, None
    state, threads, start = st
    if threads == 1 and state not in (b"Z", b"X", b"x"):
        if leader is None or state == b"R":
            return start, None
        return start, ((pid, leader[0], leader[1]),)
    try:
        dfd = os.open(b"%d/task" % pid, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW,
                      dir_fd=rootfd)
    except OSError:
        return start, None
    try:
        tasks = []
        for name in os.listdir(dfd):
            tid = _dec(name.encode("utf-8", "surrogateescape"))
            if tid is None or tid > 0x7FFFFFFF:
                continue
            t = _thread(dfd, tid, pid)
            if t is None:
                return start, None
            tasks.append(t)
    except OSError:
        return start, None
    finally:
        os.close(dfd)
    # every thread listed (num_threads counts a zombie leader too), and none
    # made while the list was read (it would not be in it)
    if not tasks or len(tasks) != threads:
        return start, None
    again = _stat(rootfd, stat_path)
    if again is None or again[1] != threads or again[2] != start:
        return start, None
    return start, tuple(sorted(tasks))


class CachedProc:
    __slots__ = ("start", "tasks", "owners")

    def __init__(self, start: int, tasks: Tasks, owners: List[Tuple[int, Owner]]) -> None:
        self.start = start
        self.tasks = tasks
        self.owners = owners      # (inode, Owner) in walk order


class Cache:
    """The pure backend's struct pn_cache."""

    def __init__(self) -> None:
        self.procs: Dict[int, CachedProc] = {}
        self.root: Optional[Tuple[int, int, int]] = None
        self.prev: Optional[Tuple[List[tuple], List[Owner], bytes]] = None
        self.handed_since_rebase = 0

    def close(self) -> None:
        self.procs = {}
        self.prev = None

    def bind(self, root: Tuple[int, int]) -> None:
        """Another root, or other rights to read it: nothing cached still holds."""
        key = root + (os.geteuid(),)
        if self.root != key:
            self.procs.clear()
            self.prev = None
            self.root = key


def _identity(r: tuple) -> tuple:
    if r[0]:
        return (r[13], r[0])
    return (r[13], 0, r[1], r[2], r[10], r[11])   # inode 0: the addresses


def _same_fields(a: tuple, sa: bytes, b: tuple, sb: bytes) -> bool:
    if a[1:6] != b[1:6] or a[10:13] != b[10:13] or a[14:16] != b[14:16] or a[17] != b[17]:
        return False
    if a[13] == UNIX:
        return sa[a[8]:a[8] + a[9]] == sb[b[8]:b[8] + b[9]]
    return a[8:10] == b[8:10]


def diff(c: Cache, recs: List[tuple], ctx: _Context) -> Tuple[List[tuple], _Context, Dict[str, Any]]:
    """pn_cache_diff: (handed-over records, their context, delta)."""
    strings, owners = ctx.strings, ctx._owners or []
    prev_recs, prev_owners, prev_strings = c.prev if c.prev is not None else ([], [], b"")
    np = len(prev_recs)
    index: Dict[tuple, List[int]] = {}
    for j, r in enumerate(prev_recs):
        index.setdefault(_identity(r), []).append(j)
    matched = bytearray(np)
    prevs: List[int] = []
    kinds: List[int] = []
    for r in recs:
        cands = index.get(_identity(r))
        if not cands:
            prevs.append(0xFFFFFFFF)
            kinds.append(CH_OPENED)
            continue
        j = cands.pop(0)
        matched[j] = 1
        p = prev_recs[j]
        oa = owners[r[6]:r[6] + r[7]]
        ob = prev_owners[p[6]:p[6] + p[7]]
        prevs.append(j)
        if [o[:2] for o in oa] != [o[:2] for o in ob]:
            kinds.append(CH_OWNERS)
        elif not _same_fields(r, strings, p, prev_strings) or [o[2] for o in oa] != [o[2] for o in ob]:
            kinds.append(CH_MODIFIED)
        else:
            kinds.append(CH_SAME)
    closed = [j for j in range(np) if not matched[j]]
    n = len(recs)
    changed = sum(1 for k in kinds if k != CH_SAME)
    rebased = c.prev is None or c.handed_since_rebase + changed > n + REBASE_SLACK
    take: List[int] = []
    sel: List[int] = []
    out_prev: List[int] = []
    out_kind = bytearray()
    for i in range(n):
        if rebased or kinds[i] != CH_SAME:
            take.append(np + len(sel))
            sel.append(i)
            out_prev.append(prevs[i])
            out_kind.append(kinds[i])
        else:
            take.append(prevs[i])
    c.handed_since_rebase = n if rebased else c.handed_since_rebase + len(sel)
    c.prev = (recs, owners, strings)
    if rebased:
        out_recs, out_ctx = list(recs), _Context(strings, list(owners))
    else:
        # compact: only what the handed-over records point into
        out_recs = []
        out_owners: List[Owner] = []
        out_strings = bytearray()
        for i in sel:
            r = recs[i]
            ext = r[8]
            if r[13] == UNIX and r[9]:
                ext = len(out_strings)
                out_strings += strings[r[8]:r[8] + r[9]]
            first = len(out_owners)
            out_owners.extend(owners[r[6]:r[6] + r[7]])
            out_recs.append(r[:6] + (first, r[7], ext) + r[9:])
        out_ctx = _Context(bytes(out_strings), out_owners)
    unchanged = not rebased and not sel and n == np and take == list(range(n))
    delta = {"take": take, "prev": out_prev, "kind": bytes(out_kind), "closed": closed,
             "rebased": rebased, "nprev": np, "unchanged": unchanged}
    return out_recs, out_ctx, delta
