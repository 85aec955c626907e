"""Find socket owners by walking <root>/PID/fd/; twin of owners_proc.c.

Relative to directory fds, like C: the fd directory is opened with
O_NOFOLLOW relative to the root, and every link read with readlinkat
(``os.readlink(name, dir_fd=...)``). A process or fd that vanishes mid-walk is
skipped; a process whose fd directory we may not read is reported as denied.
"""
import errno
import os
from typing import Dict, List, Optional, Sequence, Tuple

_GONE = (errno.ENOENT, errno.ESRCH)
_PREFIX = b"socket:["
LINK_BUF = 64      # C reads links into 64 bytes: a longer target is no socket


def parse_socket_link(target: bytes) -> Optional[int]:
    """b"socket:[12345]" -> 12345; anything else -> None (twin of pn_parse_socket_link)."""
    if len(target) >= LINK_BUF or not target.startswith(_PREFIX) or not target.endswith(b"]"):
        return None
    digits = target[len(_PREFIX):-1]
    if not digits or not digits.isdigit():
        return None
    v = int(digits)
    return v if v <= 0xFFFFFFFFFFFFFFFF else None


def _num(name: bytes) -> Optional[int]:
    # [0-9]+ within int32, as parse_num() in C
    if not name.isdigit():
        return None
    v = int(name)
    return v if v <= 0x7FFFFFFF else None


def list_pids(rootfd: int, pids: Optional[Sequence[int]]) -> List[int]:
    wanted = set(pids) if pids is not None else None
    out = []
    with os.scandir(rootfd) as it:
        for e in it:
            pid = _num(os.fsencode(e.name))
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
    try:
        fd = os.open(b"%d/comm" % pid, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=rootfd)
    except OSError:
        return None
    try:
        name = os.read(fd, 64)
    except OSError:
        return None
    finally:
        os.close(fd)
    return name[:-1] if name.endswith(b"\n") else name


class Owners:
    """inode -> [(pid, fd, name)] in walk order, plus what could not be read."""

    def __init__(self) -> None:
        self.by_inode: Dict[int, List[Tuple[int, int, Optional[bytes]]]] = {}
        self.denied: List[int] = []
        self.nprocs = 0


def walk(rootfd: int, pids: Optional[Sequence[int]]) -> Owners:
    o = Owners()
    by_inode = o.by_inode
    readlink = os.readlink
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
    for pid in list_pids(rootfd, pids):
        try:
            dfd = os.open(b"%d/fd" % pid, flags, dir_fd=rootfd)
        except OSError as e:
            if e.errno not in _GONE:
                o.denied.append(pid)
            continue
        o.nprocs += 1
        name: Optional[bytes] = None
        named = False
        try:
            try:
                entries = os.listdir(dfd)
            except OSError as e:
                if e.errno not in _GONE:
                    o.denied.append(pid)
                continue
            for ent in entries:
                fdnum = _num(os.fsencode(ent))
                if fdnum is None:
                    continue
                try:
                    target = readlink(ent, dir_fd=dfd)
                except OSError:
                    continue            # closed meanwhile
                inode = parse_socket_link(os.fsencode(target))
                if inode is None:
                    continue
                if not named:
                    name, named = read_comm(rootfd, pid), True
                lst = by_inode.get(inode)
                if lst is None:
                    by_inode[inode] = [(pid, fdnum, name)]
                else:
                    lst.append((pid, fdnum, name))
        finally:
            os.close(dfd)
    o.denied.sort()
    return o


