"""A Poller's state in pure Python; twin of cache.c (read its header comment).

Per process (pid + start time, proc_ident.py): the socket fds its last walk
found and its threads' run counters; a process whose threads did not run
since is not walked again (owners_proc.py replays it). And the last poll's
records, which poll_diff.py compares the next poll with.
"""
import os
from typing import Callable, Dict, List, Optional, Tuple

from .._records import Owner
from .proc_ident import Dir, Tasks


class CachedProc:
    __slots__ = ("start", "tasks", "owners", "dir", "settled")

    def __init__(self, start: int, tasks: Tasks, owners: List[Tuple[int, Owner]], dir: Dir) -> None:
        self.start = start
        self.tasks = tasks
        self.owners = owners      # (inode, Owner) in walk order
        self.dir = dir            # <root>/PID's (dev, inode) when last read
        self.settled = False      # found asleep with the same counters by two whole reads


class Cache:
    """The pure backend's struct pn_cache."""

    def __init__(self) -> None:
        self.procs: Dict[int, CachedProc] = {}
        self.root: Optional[Tuple[int, int, int]] = None
        self.procfs = False       # the root is a procfs (the short check holds there only)
        self.prev: Optional[Tuple[List[tuple], List[Owner], bytes]] = None
        self.handed_since_rebase = 0

    def close(self) -> None:
        self.procs = {}
        self.prev = None

    def bind(self, root: Tuple[int, int], procfs: Callable[[], bool]) -> None:
        """Another root, or other rights to read it: nothing cached still holds.
        procfs() says whether the root is a procfs; asked only of a new root."""
        key = root + (os.geteuid(),)
        if self.root != key:
            self.procfs = procfs()
            self.procs.clear()
            self.prev = None
            self.root = key


def cache_update(cache: Cache, seen: "Dict[int, Optional[CachedProc]]", filtered: bool) -> None:
    """pn_cache_update: remember what this walk saw; a pid filter keeps the rest."""
    procs = {pid: cp for pid, cp in cache.procs.items() if pid not in seen} if filtered else {}
    for pid, cp in seen.items():
        if cp is not None:
            procs[pid] = cp
    cache.procs = procs
