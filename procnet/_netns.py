"""Which network namespaces there are, what they are called, and ``netns=``.

Namespaces are found where they are: ``<root>/PID/ns/net`` of every process
(a member whose ``PID/net`` tables can be read, or whose ``ns/net`` can be
entered), and the bind mounts that keep one alive with no process in it
(``ip netns``: /run/netns/NAME; Docker: /run/docker/netns/ID). Names come
from those files and from container ids in a member process's cgroup path.
Shared by both backends: it decides what to list (see _plan), the core lists.
"""
import os
import re
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

from ._errors import ProcNetError

BIND_DIRS = (("/run/netns", ""), ("/run/docker/netns", "docker-netns:"))
# pid_max is at most 2**22: a larger int given as netns= is a namespace inode
PID_MAX_LIMIT = 1 << 22

_LINK = re.compile(r"net:\[([0-9]{1,10})\]")      # ASCII digits (\d takes others), fullmatch
# container ids in cgroup paths (v1 and v2), as runtimes and systemd name them
_CGROUP_IDS = (
    (re.compile(r"docker-([0-9a-f]{64})\.scope|/docker/([0-9a-f]{64})"), "docker:"),
    (re.compile(r"cri-containerd-([0-9a-f]{64})\.scope|/kubepods[^\n]*/([0-9a-f]{64})(?:\n|$)"), "cri:"),
    (re.compile(r"crio-([0-9a-f]{64})\.scope"), "cri-o:"),
    (re.compile(r"libpod-([0-9a-f]{64})\.scope"), "podman:"),
    (re.compile(r"machine-([^/\n]+)\.scope"), "nspawn:"),
)

_NS_GET_NSTYPE = 0xB703          # _IO(0xb7, 0x3), linux/nsfs.h
_CLONE_NEWNET = 0x40000000
NetnsArg = Union[None, str, int, "os.PathLike[str]"]


class Found(NamedTuple):
    """One namespace as discovered: its member pids and bind mounts."""

    inode: int
    pids: Tuple[int, ...]
    mounts: Tuple[str, ...]
    names: Tuple[str, ...]


def _inode(link: str) -> int:
    m = _LINK.fullmatch(link)
    v = int(m.group(1)) if m else 0
    return v if v <= 0xFFFFFFFF else 0         # nsfs inodes are 32-bit (pn_sock.netns)


def netns_of(root: str, pid: Union[int, str]) -> int:
    """The namespace inode of ``<root>/PID/ns/net``; 0 when it cannot be read."""
    try:
        return _inode(os.readlink("%s/%s/ns/net" % (root, pid)))
    except (OSError, ValueError):
        return 0


def _nsfs_dev() -> Optional[int]:
    try:
        return os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return None


def _is_net_ns(path: str) -> bool:
    """Is this nsfs file a network namespace? (/proc/PID/ns/uts is nsfs too.)
    Asked with NS_GET_NSTYPE; True where the kernel cannot say (before 4.11)."""
    import fcntl
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)   # (no FIFO hang)
    except OSError:
        return True         # (stat() could: the listing says what it cannot open)
    try:
        return fcntl.ioctl(fd, _NS_GET_NSTYPE) == _CLONE_NEWNET
    except OSError:
        return True
    finally:
        os.close(fd)


def _bind_mounts() -> Dict[int, List[Tuple[str, str]]]:
    """inode -> [(path, name)] of the namespaces bind-mounted under BIND_DIRS."""
    dev = _nsfs_dev()
    out: Dict[int, List[Tuple[str, str]]] = {}
    if dev is None:
        return out
    for folder, prefix in BIND_DIRS:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if st.st_dev == dev:          # an unmounted placeholder is a plain file
                out.setdefault(st.st_ino, []).append((path, prefix + name))
    return out


def container_names(root: str, pid: int) -> Tuple[str, ...]:
    """Container ids named by PID's cgroup path (docker:ID, cri:ID, podman:ID, nspawn:NAME)."""
    from ._pure.file_read import read_small     # regular files only, bounded
    try:
        text = read_small("%s/%d/cgroup" % (root, pid), 65536).decode("utf-8", "replace")
    except OSError:
        return ()
    out = []
    for rx, prefix in _CGROUP_IDS:
        for m in rx.finditer(text):
            ident = next(g for g in m.groups() if g)
            if prefix == "nspawn:":
                ident = ident.replace("\\x2d", "-")
            else:
                ident = ident[:12]
            if prefix + ident not in out:
                out.append(prefix + ident)
    return tuple(out)


def _pids(root: str) -> List[int]:
    try:
        return sorted(int(n) for n in os.listdir(root)
                      if n.isdigit() and n.isascii() and n[0] != "0")   # as the walk's parse_num
    except OSError:
        return []


def discover(root: str, live: bool) -> Dict[int, Found]:
    """Every namespace with a readable member process under `root`, and (for
    this host's /proc) every bind-mounted one."""
    members: Dict[int, List[int]] = {}
    for pid in _pids(root):
        ns = netns_of(root, pid)
        if ns:
            members.setdefault(ns, []).append(pid)
    mounts = _bind_mounts() if live else {}
    out: Dict[int, Found] = {}
    for ns in sorted(set(members) | set(mounts)):
        pids = tuple(members.get(ns, ()))
        m = mounts.get(ns, [])
        names = tuple(name for _, name in m) + (container_names(root, pids[0]) if pids else ())
        out[ns] = Found(ns, pids, tuple(path for path, _ in m), names)
    return out


def resolve(netns: NetnsArg, root: str) -> Union[None, str, int]:
    """Check ``netns=``: None, ``"all"``, or one namespace's inode (from an
    inode, a pid, or a path such as /run/netns/NAME or /proc/PID/ns/net)."""
    if netns is None or netns == "all":
        return netns
    if isinstance(netns, bool):
        raise TypeError("netns must be None, 'all', a namespace inode, a pid or a path, not %r" % (netns,))
    if isinstance(netns, int):
        if netns <= 0:
            raise ValueError("netns must be a positive namespace inode or pid, not %r" % (netns,))
        if netns <= PID_MAX_LIMIT:
            ns = netns_of(root, netns)
            if not ns:
                raise ProcNetError("netns=%d: no readable process %d under %s" % (netns, netns, root))
            return ns
        if netns > 0xFFFFFFFF:
            raise ValueError("netns=%d: namespace inodes are 32-bit" % netns)
        return netns
    if isinstance(netns, (str, os.PathLike)):
        path = os.fspath(netns)
        if not isinstance(path, str) or not path:
            raise TypeError("netns path must be a non-empty str, not %r" % (netns,))
        if "\0" in path:
            raise ValueError("netns path must not hold a NUL byte: %r" % (path,))
        try:
            st = os.stat(path)
        except OSError as e:
            raise ProcNetError("netns=%r: %s" % (path, e.strerror)) from None
        if st.st_dev != _nsfs_dev() or not _is_net_ns(path):
            raise ProcNetError("netns=%r is not a network namespace file "
                               "(e.g. /run/netns/NAME or /proc/PID/ns/net)" % path)
        return st.st_ino
    raise TypeError("netns must be None, 'all', a namespace inode, a pid or a path, not %r" % (netns,))
