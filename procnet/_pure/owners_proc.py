"""Find socket owners by walking <root>/PID/fd/; twin of owners_proc.c.

Relative to directory fds, like C: the fd directory is opened with
O_NOFOLLOW relative to the root, and every link read with readlinkat
(``os.readlink(name, dir_fd=...)``). A process or fd that vanishes mid-walk is
skipped; a process whose fd directory we may not read is reported as denied.
"""
import errno
import os
from typing import Dict, List, Optional, Sequence, Tuple

from .._records import Owner
from . import cache as _cache
from . import file_read
from .proc_ident import proc_ident

_GONE = (errno.ENOENT, errno.ESRCH)
_UNREADABLE = (errno.EACCES, errno.EPERM)
LINK_BUF = 64      # C reads links into 64 bytes: a longer target is no socket


def parse_socket_link(target: str) -> Optional[int]:
    """"socket:[12345]" -> 12345; anything else -> None (twin of pn_parse_socket_link)."""
    if len(target) >= LINK_BUF or target[:8] != "socket:[" or target[-1:] != "]":
        return None
    digits = target[8:-1]
    if not digits or not (digits.isascii() and digits.isdigit()):
        return None
    v = int(digits)
    return v if v <= 0xFFFFFFFFFFFFFFFF else None


def _num(name: str) -> Optional[int]:
    """[0-9]+ within int32, no leading zero, as parse_num() in C (str.isdigit alone
    admits non-ASCII digits; "010" is no name /proc gives: not pid 10 again)."""
    if not (name.isdigit() and name.isascii()) or (name[0] == "0" and len(name) > 1):
        return None
    v = int(name)
    return v if v <= 0x7FFFFFFF else None


def list_pids(rootfd: int, pids: Optional[Sequence[int]]) -> List[int]:
    wanted = set(pids) if pids is not None else None
    out = []
    with os.scandir(rootfd) as it:
        for e in it:
            pid = _num(e.name)
            if pid is None or pid == 0 or (wanted is not None and pid not in wanted):
                continue
            # a symlinked "pid" in a fixture tree would lead out of the root
            try:
                if not e.is_dir(follow_symlinks=False):
                    continue
            except OSError:
                continue
            out.append(pid)
    out.sort()
    return out


def read_comm(rootfd: int, pid: int) -> Optional[bytes]:
    """PID/comm without its newline; None when gone, unreadable or no regular file."""
    try:
        name = file_read.read_small(b"%d/comm" % pid, 64, rootfd)
    except OSError:
        return None
    return name[:-1] if name.endswith(b"\n") else name


class Owners:
    """inode -> [Owner] in walk order, plus what could not be read."""

    def __init__(self) -> None:
        self.by_inode: Dict[int, List[Owner]] = {}
        self.denied: List[int] = []
        self.nprocs = 0
        self.nreused = 0         # processes served from a cache
        self.nreadlink = 0
        self.seen: "Dict[int, Optional[_cache.CachedProc]]" = {}   # for cache_update


def _add(by_inode: Dict[int, List[Owner]], inode: int, owner: Owner) -> None:
    lst = by_inode.get(inode)
    if lst is None:
        by_inode[inode] = [owner]
    else:
        lst.append(owner)


def walk(rootfd: int, pids: Optional[Sequence[int]], cache: "Optional[_cache.Cache]" = None) -> Owners:
    """Every socket fd of every process (of `pids`); with a cache, processes
    that did not run since the last poll are replayed from it (cache.c)."""
    o = Owners()
    by_inode = o.by_inode
    readlink, new = os.readlink, tuple.__new__
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
    seen: Dict[int, Optional[_cache.CachedProc]] = {}
    for pid in list_pids(rootfd, pids):
        found: Optional[List[Tuple[int, Owner]]] = None
        if cache is not None:
            # identity first: a change during the walk shows at the next poll
            cp = cache.procs.get(pid)
            hint = (cp.start, cp.tasks, cp.dir) if cp is not None and cp.settled and cache.procfs \
                else None
            start, tasks, d, short = proc_ident(rootfd, pid, hint)
            # (a directory known both times must be the same one: pn_cache_same)
            if cp is not None and tasks and start and cp.start == start and cp.tasks == tasks and \
                    (not cp.dir[1] or not d[1] or cp.dir == d):
                if not short:
                    cp.settled = True     # same counters, asleep, twice
                for inode, owner in cp.owners:
                    _add(by_inode, inode, owner)
                seen[pid] = cp
                o.nreused += 1
                o.nprocs += 1
                continue
            seen[pid] = None
            found = []
        try:
            dfd = os.open(b"%d/fd" % pid, flags, dir_fd=rootfd)
        except OSError as e:
            if e.errno not in _GONE:
                o.denied.append(pid)
            continue
        o.nprocs += 1
        name: Optional[str] = None
        named = False
        try:
            try:
                entries = os.listdir(dfd)
            except OSError as e:
                if e.errno not in _GONE:
                    o.denied.append(pid)
                continue
            if found is not None and tasks and start:
                seen[pid] = _cache.CachedProc(start, tasks, found, d)
            for ent in entries:
                # (this loop runs once per fd on the host: cheap tests first)
                if not (ent.isdigit() and ent.isascii()) or (ent[0] == "0" and len(ent) > 1):
                    continue
                o.nreadlink += 1
                try:
                    target = readlink(ent, dir_fd=dfd)
                except OSError as e:
                    if e.errno in _UNREADABLE:
                        # listable but not readable: its fds are unknown, say so
                        # (the other links would be refused alike)
                        o.denied.append(pid)
                        seen[pid] = None      # and not worth caching
                        break
                    continue            # closed meanwhile
                if target[:8] != "socket:[":
                    continue            # the common case: a file, pipe, anon inode...
                inode, fdnum = parse_socket_link(target), int(ent)
                if inode is None or fdnum > 0x7FFFFFFF:
                    continue
                if not named:
                    comm = read_comm(rootfd, pid)
                    name = None if comm is None else comm.decode("utf-8", "surrogateescape")
                    named = True
                owner = new(Owner, (pid, fdnum, name))
                _add(by_inode, inode, owner)
                if found is not None:
                    found.append((inode, owner))
        finally:
            os.close(dfd)
    o.seen = seen
    o.denied.sort()
    return o

