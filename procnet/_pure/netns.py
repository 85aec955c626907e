"""The sockets of other network namespaces; twin of netns.c (read its header comment).

Listing: a sock_diag socket made inside the namespace by a short-lived thread
that setns()es in (``os.setns``, Python 3.12+; the plan reads a member's
``PID/net`` text where Python has none). Accounting: socket fds no listed
table holds, named by their ``system.sockprotoname`` attribute.
"""
import errno
import os
import re
import threading
from typing import Dict, List, Optional, Set, Tuple

from .._records import Owner
from . import sock_diag

_LINK = re.compile(rb"net:\[([0-9]{1,10})\]")      # fullmatch: no trailing newline


def netns_diag_open(enter: str, inode: int):
    """pn_netns_diag_open: (socket, own inode) made inside the namespace `enter`
    names, which must still be `inode` (a pid's number may have been reused)."""
    out: Dict[str, object] = {}

    def run() -> None:
        try:
            # non-blocking: a FIFO in its place must not hang the call (setns then refuses it)
            fd = os.open(enter, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                if inode and os.fstat(fd).st_ino != inode:
                    raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
                os.setns(fd, os.CLONE_NEWNET)    # type: ignore[attr-defined]  # (3.12+)
            finally:
                os.close(fd)
            out["ok"] = sock_diag.open_diag()
        except OSError as e:
            out["error"] = e

    # this thread alone moves, and ends right after: no way back needed
    t = threading.Thread(target=run, name="procnet-netns", daemon=True)
    t.start()
    t.join()
    if "ok" not in out:
        raise out.get("error") or OSError(5, os.strerror(5))  # type: ignore[misc]
    return out["ok"]


def parse_netns_link(target: bytes) -> int:
    """pn_parse_netns_link: b"net:[4026531840]" -> 4026531840; 0 otherwise."""
    m = _LINK.fullmatch(target)
    v = int(m.group(1)) if m else 0
    return v if v <= 0xFFFFFFFF else 0


def member_still_in(rootfd: int, net_dir: str, inode: int) -> bool:
    """listing.c's member_still_in: is "PID/net"'s process still in `inode`?"""
    if not net_dir.endswith("/net") or not 4 <= len(net_dir) <= 40:
        return True
    try:
        link = os.readlink(net_dir[:-4] + "/ns/net", dir_fd=rootfd)
    except OSError:
        return False
    return parse_netns_link(os.fsencode(link)) == inode


def _proc_netns(rootfd: int, pid: int) -> int:
    try:
        return parse_netns_link(os.readlink(b"%d/ns/net" % pid, dir_fd=rootfd))
    except OSError:
        return 0


_SIOCGSKNS = 0x894C
_libc = None


class _PidfdCache:
    """The last process's pidfd (struct pidfd_cache): entries come grouped by process."""

    def __init__(self) -> None:
        self.pid, self.fd = 0, -1

    def get(self, pid: int) -> int:
        if self.pid != pid:
            self.close()
            self.pid = pid
            try:
                self.fd = os.pidfd_open(pid)
            except (OSError, AttributeError):
                self.fd = -1
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


def _socket_copy(pc: _PidfdCache, pid: int, fd: int, inode: int) -> int:
    """socket_copy(): a copy of PID's fd (pidfd_getfd) if it is still the socket
    `inode`; -1 when not allowed, gone, or another file now. Asked of the socket
    layer (SO_TYPE: ENOTSOCK otherwise), never a file touched (a FUSE file whose
    daemon does not answer would block); then its sockfs inode is safe to stat."""
    global _libc
    import ctypes
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    pfd = pc.get(pid)
    if pfd < 0:
        return -1
    s = _libc.syscall(438, pfd, fd, 0)      # pidfd_getfd: the same number everywhere
    if s < 0:
        return -1
    value, size = ctypes.c_int(0), ctypes.c_uint(4)
    ok = _libc.getsockopt(s, 1, 3, ctypes.byref(value), ctypes.byref(size)) == 0   # SOL_SOCKET, SO_TYPE
    try:
        ok = ok and os.fstat(s).st_ino == inode
    except OSError:
        ok = False
    if not ok:
        os.close(s)
        return -1
    return s


def _socket_netns(s: int) -> int:
    """socket_netns(): the namespace the socket belongs to (SIOCGSKNS); 0 when not said."""
    import fcntl
    try:
        nsfd = fcntl.ioctl(s, _SIOCGSKNS)
    except OSError:
        return 0
    try:
        ino = os.fstat(nsfd).st_ino
    finally:
        os.close(nsfd)
    return ino if ino <= 0xFFFFFFFF else 0


def _protocol(target: int) -> str:
    """system.sockprotoname of a socket fd, as C's 23-byte buffer reads it."""
    try:
        value = os.getxattr(target, "system.sockprotoname")
    except OSError:
        return ""
    return value.split(b"\0", 1)[0].decode("ascii", "replace") if len(value) <= 23 else ""


def classify_unlisted(rootfd: int, classify: int, listed: Set[int],
                      by_inode: Dict[int, List[Owner]], joined: Set[int]
                      ) -> List[Tuple[int, int, int, str]]:
    """pn_classify_unlisted: (inode, netns, pid, protocol) per socket no listed
    table holds, as `classify` (PN_CL_*) asks; `listed`: the namespaces listed."""
    ns_of: Dict[int, int] = {}
    out = []
    pc = _PidfdCache()
    try:
        _classify(rootfd, classify, listed, by_inode, joined, ns_of, pc, out)
    finally:
        pc.close()
    return out


def _classify(rootfd, classify, listed, by_inode, joined, ns_of, pc, out) -> None:
    for inode, held in by_inode.items():
        if inode in joined or not inode:      # ("socket:[0]" is no socket)
            continue
        o = min(held, key=lambda x: (x.pid, x.fd))   # the same holder as in C
        ns = ns_of.get(o.pid)
        if ns is None:
            ns = ns_of[o.pid] = _proc_netns(rootfd, o.pid)
        if not (classify & 2) and not ((classify & 1) and ns and ns not in listed):
            continue
        # only ever through a copy checked to be that socket (PID/fd/N may be
        # another file by now, even one that blocks: FUSE); not this host's
        # /proc (no CL_ASK_SOCKET): nothing is asked, the protocol stays unknown
        copy = _socket_copy(pc, o.pid, o.fd, inode) if classify & 4 else -1
        proto = ""
        if copy >= 0:
            try:
                if not ns or ns in listed:   # in no table of its holder's namespace: ask it
                    ns = _socket_netns(copy) or ns
                proto = _protocol(copy)
            finally:
                os.close(copy)
        out.append((inode, ns, o.pid, proto))


def listed_set(listings: Optional[tuple], self_netns: int, status) -> Set[int]:
    """The namespaces whose tables were listed (one asked for but refused is not)."""
    return {self_netns} if listings is None else {ns[0] for ns in status if ns[1]}
