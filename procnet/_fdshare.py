"""Which processes share an fd table with another process (change tracking).

clone(CLONE_FILES) without CLONE_THREAD gives two processes one fd table: a
socket either makes is the other's too, with no record naming the other. A
tracking Poller sees the clones made after it started (PN_CHG_FORK_SHARE
records); this finds the ones made before, once, at its start: kcmp(2)
orders processes by their fd table (KCMP_FILES), so a sort puts sharers next
to each other. Kernel threads all share kthreadd's table and hold no socket
fd: that group is left out.
"""
import ctypes
import functools
import os
import platform
from typing import List, Optional, Set

_SYS_KCMP = {"x86_64": 312, "aarch64": 272, "s390x": 343}
_KCMP_FILES = 2
_KTHREADD = 2


class _Kcmp:
    def __init__(self, nr: int) -> None:
        self._nr = nr
        self._libc = ctypes.CDLL(None, use_errno=True)

    def raw(self, a: int, b: int) -> int:
        """0 same table, 1/2 ordered, -errno."""
        r = self._libc.syscall(self._nr, a, b, _KCMP_FILES, 0, 0)
        return -ctypes.get_errno() if r < 0 else r

    def __call__(self, a: int, b: int) -> int:
        r = self.raw(a, b)
        if r < 0:                               # exited meanwhile: any order will do
            return (a > b) - (a < b)
        return {0: 0, 1: -1, 2: 1}.get(r, (a > b) - (a < b))


def fd_table_sharers(proc_root: str = "/proc") -> Optional[Set[int]]:
    """The pids of processes that share their fd table with another process,
    and of those kcmp may not compare (a process that may not be traced:
    read again every time, as a sharer); None when kcmp is not there."""
    nr = _SYS_KCMP.get(platform.machine())
    if nr is None:
        return None
    kcmp = _Kcmp(nr)
    me = os.getpid()
    if kcmp.raw(me, me) != 0:
        return None                             # no kcmp (ENOSYS), or none allowed
    out: Set[int] = set()
    pids: List[int] = []
    for n in os.listdir(proc_root):
        if n.isdigit():
            r = kcmp.raw(me, int(n))
            if r >= 0:
                pids.append(int(n))
            elif r != -3:                       # ESRCH: gone; EPERM...: cannot tell
                out.add(int(n))
    pids.sort(key=functools.cmp_to_key(kcmp))
    i = 0
    while i < len(pids):
        j = i + 1
        while j < len(pids) and kcmp(pids[i], pids[j]) == 0:
            j += 1
        group = pids[i:j]
        if len(group) > 1 and _KTHREADD not in group:
            out.update(group)
        i = j
    return out


__all__ = ["fd_table_sharers"]
