"""psutil's ``net_connections()``, answered by procnet: the same rows, several times faster.

Tools written against psutil (the OpenTelemetry system-metrics instrumentation,
Glances, in-house agents) get procnet's speed without a change to their logic::

    from procnet import psutil_compat as psutil        # instead of: import psutil
    for c in psutil.net_connections("tcp"):
        print(c.fd, c.family, c.type, c.laddr, c.raddr, c.status, c.pid)
    psutil.Process(1234).net_connections("inet")

or, for a program one cannot edit, through ``install()`` (in a wrapper or
``sitecustomize.py``), which points a running psutil's ``net_connections`` and
``Process.net_connections`` here; ``uninstall()`` restores them.

Rows are psutil's: ``sconn(fd, family, type, laddr, raddr, status, pid)`` and
``pconn`` without ``pid`` -- psutil's own namedtuple classes when psutil is
importable, classes of the same names and fields otherwise. Which owner a row
names, and where this module is right where psutil is not, is in the README
("psutil compatibility"). psutil is never required: ``import procnet`` does not
import this module, and this module imports psutil only when it is installed.
"""
import errno
import os
import socket
import sys
import threading
from collections import namedtuple
from operator import itemgetter
from typing import Any, Callable, Dict, FrozenSet, List, NamedTuple, Optional, Tuple

from . import _records as C
from . import _tables as T
from . import _api
from ._api import _bulk_allocation
from ._api import connections as _connections
from ._request import make_query
from ._errors import ProcNetError

__all__ = [
    "AccessDenied", "CONN_CLOSE", "CONN_CLOSE_WAIT", "CONN_CLOSING", "CONN_ESTABLISHED",
    "CONN_FIN_WAIT1", "CONN_FIN_WAIT2", "CONN_LAST_ACK", "CONN_LISTEN", "CONN_NONE",
    "CONN_SYN_RECV", "CONN_SYN_SENT", "CONN_TIME_WAIT", "Error", "KINDS", "NoSuchProcess",
    "Process", "ZombieProcess", "install", "installed", "net_connections", "uninstall",
]

# psutil's status strings (psutil.CONN_*): the kernel's TCP state names, and NONE.
CONN_ESTABLISHED = "ESTABLISHED"
CONN_SYN_SENT = "SYN_SENT"
CONN_SYN_RECV = "SYN_RECV"
CONN_FIN_WAIT1 = "FIN_WAIT1"
CONN_FIN_WAIT2 = "FIN_WAIT2"
CONN_TIME_WAIT = "TIME_WAIT"
CONN_CLOSE = "CLOSE"
CONN_CLOSE_WAIT = "CLOSE_WAIT"
CONN_LAST_ACK = "LAST_ACK"
CONN_LISTEN = "LISTEN"
CONN_CLOSING = "CLOSING"
CONN_NONE = "NONE"

# psutil's kind vocabulary, in psutil's own order (the ValueError lists it so),
# and the procnet kinds that read the same /proc/net tables.
_KIND_TABLES: Dict[str, Tuple[str, ...]] = {
    "all": ("inet", "unix"), "tcp": ("tcp",), "tcp4": ("tcp4",), "udp": ("udp",),
    "udp4": ("udp4",), "inet": ("inet",), "inet4": ("inet4",), "inet6": ("inet6",),
    "tcp6": ("tcp6",), "udp6": ("udp6",), "unix": ("unix",),
}
KINDS: Tuple[str, ...] = tuple(_KIND_TABLES)
"""The values ``kind=`` accepts: exactly psutil's."""

_TCP = T.TCP_TABLES
_UNIX = T.UNIX

# ---------------------------------------------------------------------------
# psutil's classes when psutil is importable, equivalents otherwise


_Addr = namedtuple("addr", ("ip", "port"))


class _Error(ProcNetError):
    """Base of this module's own process errors (psutil.Error's stand-in)."""

    def __init__(self, msg: str = "") -> None:
        super().__init__(msg)
        self.msg = msg

    def __str__(self) -> str:
        info = ", ".join("%s=%r" % (k, getattr(self, k)) for k in ("pid", "name")
                         if getattr(self, k, None) is not None)
        return " ".join(x for x in (self.msg, "(%s)" % info if info else "") if x)


class _NoSuchProcess(_Error):
    """The process does not exist (psutil.NoSuchProcess's stand-in)."""

    def __init__(self, pid: int, name: Optional[str] = None, msg: Optional[str] = None) -> None:
        super().__init__(msg or "process no longer exists")
        self.pid, self.name = pid, name


class _ZombieProcess(_NoSuchProcess):
    """psutil.ZombieProcess's stand-in (never raised on Linux, as by psutil)."""

    def __init__(self, pid: int, name: Optional[str] = None, ppid: Optional[int] = None,
                 msg: Optional[str] = None) -> None:
        super().__init__(pid, name, msg or "PID still exists but it's a zombie")
        self.ppid = ppid


class _AccessDenied(_Error):
    """Permission to read the process was refused (psutil.AccessDenied's stand-in)."""

    def __init__(self, pid: Optional[int] = None, name: Optional[str] = None,
                 msg: Optional[str] = None) -> None:
        super().__init__(msg or "")
        self.pid, self.name = pid, name


for _cls in (_Error, _NoSuchProcess, _ZombieProcess, _AccessDenied):
    _cls.__name__ = _cls.__qualname__ = _cls.__name__[1:]    # named as psutil's


class _Types(NamedTuple):
    sconn: Any
    pconn: Any
    addr: Any
    NoSuchProcess: Any
    AccessDenied: Any
    ZombieProcess: Any
    Error: Any
    psutil: Any


_OWN_TYPES = _Types(
    namedtuple("sconn", ("fd", "family", "type", "laddr", "raddr", "status", "pid")),
    namedtuple("pconn", ("fd", "family", "type", "laddr", "raddr", "status")),
    _Addr, _NoSuchProcess, _AccessDenied, _ZombieProcess, _Error, None)
_types: Optional[_Types] = None
_types_lock = threading.Lock()


def _resolve_types() -> _Types:
    """psutil's row and exception classes if it can be imported, else ours (once)."""
    global _types
    with _types_lock:
        if _types is None:
            try:
                import psutil
                nt = getattr(psutil, "_ntuples", None) or psutil._common    # 7.x / 5.x-6.x
                _types = _Types(nt.sconn, nt.pconn, nt.addr, psutil.NoSuchProcess,
                                psutil.AccessDenied, psutil.ZombieProcess, psutil.Error, psutil)
            except (ImportError, AttributeError):
                _types = _OWN_TYPES
        return _types


def __getattr__(name: str) -> Any:
    # The exception names resolve to psutil's classes when psutil is there, so
    # `except psutil_compat.NoSuchProcess` catches what a patched psutil raises.
    if name in ("NoSuchProcess", "AccessDenied", "ZombieProcess", "Error"):
        return getattr(_resolve_types(), name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def _tables_of(kind: Any) -> Tuple[str, ...]:
    try:
        return _KIND_TABLES[kind]
    except (KeyError, TypeError):
        raise ValueError("invalid kind argument %r; valid ones are: %s" % (kind, KINDS)) from None


# ---------------------------------------------------------------------------
# procnet snapshot -> psutil rows


# per table: (family, type as psutil gives it, IPv6?, TCP?)
_TABLE_INFO = tuple(
    (T.FAMILIES[t], socket.SOCK_STREAM if t in _TCP else socket.SOCK_DGRAM, t in T.V6_TABLES, t in _TCP)
    for t in range(_UNIX))
# TCP state code -> psutil status; CLOSE (bound, inactive: netlink lists such
# sockets, /proc/net/tcp never does) -> None: no row. NEW_SYN_RECV is SYN_RECV.
_TCP_STATUS = tuple(None if n == "CLOSE" else CONN_SYN_RECV if n == "NEW_SYN_RECV" else n
                    for n in T.TCP_STATES) + tuple("UNKNOWN_%d" % c for c in range(len(T.TCP_STATES), 256))


# pn_sock.stype -> socket.SocketKind (None where the kernel's number has no name)
_SOCKTYPES = tuple(C._socktype(n) for n in range(256))
# the raw record's fields _rows reads, in one C call per record
_FIELDS = itemgetter(C.R_TABLE, C.R_LADDR, C.R_RADDR, C.R_LPORT, C.R_RPORT, C.R_STATE, C.R_STYPE,
                     C.R_OWNER_FIRST, C.R_OWNER_COUNT, C.R_EXT, C.R_EXT_LEN, C.R_CTX)


def _owner_list(ctx: Any) -> List[Any]:
    """Every owner of a snapshot as a sequence indexable by owner index: [0] pid, [1] fd.

    The native backend's raw struct pn_owner records, unpacked in one C call:
    rows need no process names, and decoding ~15 000 of them into Owner
    objects cost more than building the rows (the pure backend has Owners).
    """
    objs = ctx._owners
    if objs is not None:
        return objs                 # type: ignore[no-any-return]
    return list(C.OWNER_STRUCT.iter_unpack(ctx.owner_rows))


def _rows(snap: List[Any], pid: Optional[int] = None, all_owners: bool = False,
          types: Optional[_Types] = None) -> List[tuple]:
    """psutil rows for a procnet Snapshot (`pid`: pconn rows of that process only).

    psutil builds its inode -> (pid, fd) map pid by pid in /proc order with
    ``dict.update``, so a shared socket gets the *last* pid scanned (the highest:
    /proc lists pids in ascending order) with its fds in /proc/PID/fd order
    (ascending): inet rows take that pid's first fd, unix rows one row per fd
    of that pid. procnet's owners are sorted by (pid, fd), so that is the run
    of owners with the highest pid. ``all_owners`` gives one row per owner.

    Reads the records through procnet's contract (procnet/_records.py: a
    Connection is its raw record) rather than the Connection properties: those
    cost ~2 µs per socket, which would hand psutil back most of procnet's lead.
    tests/test_psutil_compat.py checks this against the properties.
    """
    ty = types or _resolve_types()
    make = tuple.__new__
    row_t, addr_t = (ty.sconn if pid is None else ty.pconn), ty.addr
    socktype, info, tcp_status = _SOCKTYPES.__getitem__, _TABLE_INFO, _TCP_STATUS
    unix_fam, unix_table, none = socket.AF_UNIX, _UNIX, CONN_NONE
    ntop, af4, af6 = socket.inet_ntop, socket.AF_INET, socket.AF_INET6
    ip4: Dict[bytes, str] = {}
    ip6: Dict[bytes, str] = {}
    out: List[tuple] = []
    append = out.append
    ctx: Any = None
    objs: List[Any] = []
    for table, lraw, rraw, lport, rport, state, stype, first, n, ext, ext_len, c in map(_FIELDS, snap):
        if c is not ctx:
            ctx, objs = c, _owner_list(c)
        if table == unix_table:
            fam, typ, ra, status = unix_fam, socktype(stype), "", none
            la = ctx.text(ext, ext_len) if ext_len else ""
        else:
            fam, typ, v6, tcp = info[table]
            if tcp:
                status = tcp_status[state]
                if status is None:
                    continue
            else:
                status = none
            ips = ip6 if v6 else ip4
            if lport:
                ip = ips.get(lraw)
                if ip is None:
                    ip = ips[lraw] = ntop(af6, lraw) if v6 else ntop(af4, lraw[:4])
                la = make(addr_t, (ip, lport))
            else:
                la = ()             # psutil: no port, no address (a listener's raddr, ...)
            if rport:
                ip = ips.get(rraw)
                if ip is None:
                    ip = ips[rraw] = ntop(af6, rraw) if v6 else ntop(af4, rraw[:4])
                ra = make(addr_t, (ip, rport))
            else:
                ra = ()
        if n == 1:                  # the common case, without a list
            o = objs[first]
            if pid is None:
                append(make(row_t, (o[1], fam, typ, la, ra, status, o[0])))
            elif o[0] == pid:
                append(make(row_t, (o[1], fam, typ, la, ra, status)))
            continue
        if not n:
            if pid is None:
                append(make(row_t, (-1, fam, typ, la, ra, status, None)))
            continue
        mine = objs[first:first + n]
        if not all_owners:
            last = pid if pid is not None else mine[-1][0]
            mine = [o for o in mine if o[0] == last]
            if table != unix_table:
                mine = mine[:1]
        for o in mine:
            if pid is None:
                append(make(row_t, (o[1], fam, typ, la, ra, status, o[0])))
            elif o[0] == pid:
                append(make(row_t, (o[1], fam, typ, la, ra, status)))
    return out


def net_connections(kind: str = "inet", *, all_owners: bool = False, proc_root: Optional[str] = None,
                    backend: Optional[str] = None, source: Optional[str] = None,
                    owner_source: Optional[str] = None, threads: Optional[int] = None) -> List[tuple]:
    """System-wide sockets as psutil.net_connections(kind) returns them.

    Args:
        kind: psutil's: ``"inet"`` (default), ``"inet4"``, ``"inet6"``, ``"tcp"``,
            ``"tcp4"``, ``"tcp6"``, ``"udp"``, ``"udp4"``, ``"udp6"``, ``"unix"``,
            ``"all"`` (tcp, udp and unix, as in psutil).
        all_owners: one row per (pid, fd) holding a socket, instead of the one
            owner psutil picks (keyword-only, an extension).
        proc_root, backend, source, owner_source, threads: passed to
            :func:`procnet.connections` (keyword-only extensions). Unlike
            procnet's default, ``owner_source=None`` means the BPF owner source
            whenever it can load (root, libbpf, this host's /proc), whatever
            the socket count: psutil's callers call again and again.

    Returns:
        A list of ``sconn(fd, family, type, laddr, raddr, status, pid)``; ``fd``
        is -1 and ``pid`` None where no readable process holds the socket.

    Raises:
        ValueError: an unknown kind (psutil's message).
    """
    tables = _tables_of(kind)
    ty = _resolve_types()
    root = proc_root or _procfs_path(ty)
    q = make_query(tables, owners=True, proc_root=root, source=source, threads=threads,
                   owner_source=owner_source)
    # psutil's callers poll (OpenTelemetry on every collection, Glances every few
    # seconds): loading the BPF owner source once (~15 ms) pays from the first
    # repeat at any size -- _plan decides, as for every call (repeated=True)
    snap = _api._connections(q, backend, repeated=True)
    with _bulk_allocation():        # rows cannot form cycles: no collections while they are made
        return _rows(snap, all_owners=all_owners, types=ty)


def _procfs_path(ty: _Types) -> str:
    # psutil.PROCFS_PATH is psutil's way to point it elsewhere: honour it.
    return getattr(ty.psutil, "PROCFS_PATH", None) or "/proc"


# ---------------------------------------------------------------------------
# one process: pidfd_getfd where we may, else a snapshot limited to the pid

SYS_pidfd_open = 434            # the same number on every architecture (asm-generic)
SYS_pidfd_getfd = 438
SO_NETNS_COOKIE = 71
TCP_INFO = getattr(socket, "TCP_INFO", 11)
TCP_SYN_SENT, TCP_CLOSE = 2, 7
_KIND_FILTER: Dict[str, FrozenSet[Tuple[int, int]]] = {}
_syscall: Optional[Callable[..., int]] = None
_pidfd_broken = False           # ENOSYS / seccomp: don't try again in this process


class _Fallback(Exception):
    """The pidfd route cannot answer exactly: take the snapshot route."""


def _families(kind: str) -> FrozenSet[Tuple[int, int]]:
    """(family, type) pairs a kind covers; unix: any type (type 0 here)."""
    f = _KIND_FILTER.get(kind)
    if f is None:
        pairs = set()
        for name in _KIND_TABLES[kind]:
            for t in T.KINDS[name]:
                if t == _UNIX:
                    pairs.add((socket.AF_UNIX, 0))
                else:
                    pairs.add((int(T.FAMILIES[t]), socket.SOCK_STREAM if t in _TCP else socket.SOCK_DGRAM))
        f = _KIND_FILTER[kind] = frozenset(pairs)
    return f


def _libc_syscall() -> Callable[..., int]:
    global _syscall
    if _syscall is None:
        import ctypes
        fn = ctypes.CDLL(None, use_errno=True).syscall
        fn.restype = ctypes.c_long

        def call(*args: int) -> int:
            ret = fn(*(ctypes.c_long(a) for a in args))
            if ret < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
            return int(ret)
        _syscall = call
    return _syscall


def _socket_fds(proc_root: str, pid: int) -> Dict[int, List[int]]:
    """inode -> the pid's fds on that socket, in /proc/PID/fd order (psutil's walk)."""
    base = "%s/%d/fd/" % (proc_root, pid)
    out: Dict[int, List[int]] = {}
    for name in os.listdir(base):
        try:
            link = os.readlink(base + name)
        except (FileNotFoundError, ProcessLookupError):
            continue                        # closed meanwhile
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENAMETOOLONG):
                continue
            raise
        if link.startswith("socket:["):
            out.setdefault(int(link[8:-1]), []).append(int(name))
    return out


def _sockname(s: socket.socket, peer: bool) -> Any:
    try:
        return s.getpeername() if peer else s.getsockname()
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            return None
        raise


def _unix_path(name: Any) -> str:
    # as /proc/net/unix prints it: abstract names with '@' for every NUL
    if isinstance(name, bytes):
        return name.replace(b"\0", b"@").decode(sys.getfilesystemencoding(), "surrogateescape")
    return name or ""


def _netns_cookie(s: socket.socket) -> bytes:
    try:
        return s.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8)
    except OSError:
        raise _Fallback("no SO_NETNS_COOKIE") from None


def _pidfd_rows(pid: int, kind: str, proc_root: str, all_owners: bool, ty: _Types) -> List[tuple]:
    """pconn rows from the process's own sockets, borrowed with pidfd_getfd.

    Reads only this process's fds: no table is walked, so the cost does not
    grow with the host's socket count. Each socket comes over as a dup for
    getsockname/getpeername/TCP_INFO and is closed again. A socket psutil
    would not list is skipped (another network namespace, a protocol other than
    TCP/UDP, a TCP socket in CLOSE, a UDP socket never bound); one whose row the
    socket cannot tell (SYN_SENT: no peer name yet) sends the call to the
    snapshot route. Raises _Fallback where it cannot run (no pidfd_getfd,
    no ptrace access).
    """
    global _pidfd_broken
    socks = _socket_fds(proc_root, pid)
    if not socks:
        return []
    call = _libc_syscall()
    try:
        pidfd = call(SYS_pidfd_open, pid, 0)
    except OSError as e:
        if e.errno == errno.ESRCH:
            raise ProcessLookupError(e.errno, e.strerror) from None
        if e.errno in (errno.ENOSYS, errno.EPERM):      # old kernel, seccomp
            _pidfd_broken = True
        raise _Fallback(str(e)) from None
    want = _families(kind)
    row_t, addr_t = ty.pconn, ty.addr
    out: List[tuple] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as mine:
            try:
                my_ns = _netns_cookie(mine)
            except _Fallback:
                _pidfd_broken = True            # before Linux 5.14: never here
                raise
        for inode, fds in socks.items():
            try:
                dup = call(SYS_pidfd_getfd, pidfd, fds[0], 0)
            except OSError as e:
                if e.errno == errno.EBADF:
                    continue                    # closed since the walk
                if e.errno == errno.ENOSYS:
                    _pidfd_broken = True
                raise _Fallback(str(e)) from None   # EPERM: no ptrace rights
            try:
                # the link of the copy, never the file itself: the fd may hold another
                # file by now, even a FUSE file whose daemon never answers an fstat
                same = _link_inode("/proc/self/fd/%d" % dup) == inode
                s = _borrowed(dup) if same else None
            except BaseException:
                os.close(dup)
                raise
            if s is None:
                os.close(dup)
                continue                        # the fd now holds another file
            with s:
                out.extend(_socket_rows(s, fds, want, my_ns, all_owners, row_t, addr_t))
    finally:
        os.close(pidfd)
    return out


def _link_inode(path: str) -> Optional[int]:
    """The socket inode a "socket:[N]" fd link names; None for anything else."""
    from ._pure.owners_proc import parse_socket_link
    try:
        return parse_socket_link(os.readlink(path))
    except OSError:
        return None


def _borrowed(fd: int) -> socket.socket:
    """A socket object on a borrowed fd that never touches the file's flags.

    The fd shares its open file description with the owner's: a plain
    socket(fileno=fd) sets O_NONBLOCK on it when socket.setdefaulttimeout()
    is in force, which would switch the *owner's* socket to non-blocking.
    Passing SOCK_NONBLOCK in the type tells Python it already is (no fcntl);
    the real type is read back with SO_TYPE.
    """
    return socket.socket(-1, socket.SOCK_STREAM | socket.SOCK_NONBLOCK, 0, fileno=fd)


def _socket_rows(s: socket.socket, fds: List[int], want: FrozenSet[Tuple[int, int]], my_ns: bytes,
                 all_owners: bool, row_t: Any, addr_t: Any) -> List[tuple]:
    """The pconn rows of one borrowed socket held on `fds`, or none where psutil lists none."""
    make = tuple.__new__
    fam = int(s.family)
    typ = s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)         # s.type is a placeholder
    if (fam, 0 if fam == socket.AF_UNIX else typ) not in want:
        return []
    if fam != socket.AF_UNIX and s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) not in (
            socket.IPPROTO_TCP, socket.IPPROTO_UDP):
        return []                               # udplite, icmp, sctp, mptcp: other tables
    if _netns_cookie(s) != my_ns:
        return []                               # another namespace: not in our tables
    if fam == socket.AF_UNIX:
        head = (s.family, _SOCKTYPES[typ & 0xFF], _unix_path(s.getsockname()), "", CONN_NONE)
        return [make(row_t, (fd,) + head) for fd in fds]
    local = s.getsockname()
    if typ == socket.SOCK_STREAM:
        code = s.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 1)[0]
        if code == TCP_SYN_SENT:
            raise _Fallback("a SYN_SENT socket has no peer name yet")
        status = _TCP_STATUS[code]
        if status is None:
            return []                           # CLOSE: unhashed, in no table
    elif not local[1]:
        return []                               # UDP never bound: in no table
    else:
        status = CONN_NONE
    peer = _sockname(s, True)
    la = make(addr_t, (local[0].partition("%")[0], local[1])) if local[1] else ()
    ra = make(addr_t, (peer[0].partition("%")[0], peer[1])) if peer and peer[1] else ()
    head = (s.family, _SOCKTYPES[typ], la, ra, status)
    return [make(row_t, (fd,) + head) for fd in (fds if all_owners else fds[:1])]


class Process:
    """psutil.Process's connection calls, for one pid.

    ``Process(pid).net_connections(kind)`` (and ``connections``, the name psutil
    5.x code calls) return ``pconn(fd, family, type, laddr, raddr, status)`` rows
    like psutil's. The process's sockets are borrowed with ``pidfd_getfd`` where
    the caller may ptrace it (root, or the same user without Yama restrictions):
    that reads only its own fds. Otherwise a procnet snapshot limited to the pid
    answers (``via="procnet"`` forces it, ``via="pidfd"`` forbids it).
    """

    def __init__(self, pid: Optional[int] = None, *, proc_root: Optional[str] = None,
                 backend: Optional[str] = None, source: Optional[str] = None,
                 owner_source: Optional[str] = None, via: str = "auto") -> None:
        ty = _resolve_types()
        if pid is None:
            pid = os.getpid()
        elif isinstance(pid, bool) or not isinstance(pid, int):
            raise TypeError("pid must be an integer (got %r)" % (pid,))
        elif pid < 0:
            raise ValueError("pid must be a positive integer (got %d)" % pid)
        if via not in ("auto", "pidfd", "procnet"):
            raise ValueError("via must be 'auto', 'pidfd' or 'procnet' (got %r)" % (via,))
        self._pid = pid
        self._name: Optional[str] = None
        self._root = proc_root or _procfs_path(ty)
        self._kw = dict(backend=backend, source=source, owner_source=owner_source)
        self._via = via
        if not os.path.exists("%s/%d/stat" % (self._root, pid)):
            raise ty.NoSuchProcess(pid, msg="process PID not found")

    @property
    def pid(self) -> int:
        """The process id."""
        return self._pid

    def __repr__(self) -> str:
        return "procnet.psutil_compat.Process(pid=%d)" % self._pid

    def net_connections(self, kind: str = "inet", *, all_owners: bool = False) -> List[tuple]:
        """The process's sockets as psutil's Process.net_connections(kind) returns them.

        ``all_owners`` (an extension): inet sockets the process holds on several
        fds give a row per fd (psutil gives the first; unix already has one per fd).

        Raises:
            ValueError: an unknown kind.
            NoSuchProcess / AccessDenied: psutil's (or this module's stand-ins).
        """
        return _process_connections(self._pid, kind, self._name, self._root, self._via, all_owners,
                                    self._kw)

    def connections(self, kind: str = "inet", *, all_owners: bool = False) -> List[tuple]:
        """psutil < 6's name of :meth:`net_connections`."""
        return self.net_connections(kind, all_owners=all_owners)


def _process_connections(pid: int, kind: str, name: Optional[str], proc_root: str, via: str,
                         all_owners: bool, kw: Dict[str, Any]) -> List[tuple]:
    _tables_of(kind)
    ty = _resolve_types()
    try:
        rows = None
        if via == "pidfd" and (proc_root != "/proc" or _pidfd_broken):
            raise _Fallback("pidfd_getfd is unavailable" if _pidfd_broken else "proc_root is not /proc")
        if via != "procnet" and proc_root == "/proc" and not _pidfd_broken:
            try:
                rows = _pidfd_rows(pid, kind, proc_root, all_owners, ty)
            except _Fallback:
                if via == "pidfd":
                    raise
        if rows is None:
            rows = _snapshot_rows(pid, kind, proc_root, all_owners, ty, kw)
        os.stat("%s/%d" % (proc_root, pid))           # as psutil: gone meanwhile -> NoSuchProcess
        return rows
    except _Fallback as e:
        raise ProcNetError("via='pidfd' cannot read pid %d here: %s" % (pid, e)) from None
    except PermissionError:
        raise ty.AccessDenied(pid, name) from None
    except (ProcessLookupError, FileNotFoundError):
        if not os.path.exists("%s/%d/stat" % (proc_root, pid)):
            raise ty.NoSuchProcess(pid, name) from None
        raise


def _snapshot_rows(pid: int, kind: str, proc_root: str, all_owners: bool, ty: _Types,
                   kw: Dict[str, Any]) -> List[tuple]:
    # psutil lists the fd directory first: refused -> AccessDenied, absent -> NoSuchProcess
    if not os.listdir("%s/%d/fd" % (proc_root, pid)):
        return []
    snap = _connections(_tables_of(kind), pid=pid, proc_root=proc_root, **kw)
    if pid in snap.denied_pids:
        raise PermissionError(errno.EACCES, "cannot read the fds of pid %d" % pid)
    return _rows(snap, pid=pid, all_owners=all_owners, types=ty)


# ---------------------------------------------------------------------------
# install(): a running psutil, patched

_saved: Dict[str, Any] = {}
_install_lock = threading.Lock()


def install() -> None:
    """Point psutil's ``net_connections`` and ``Process.net_connections`` here.

    For programs one cannot edit (call it from a wrapper or sitecustomize.py
    before they run). Patches the attributes on the psutil module and class, so
    every caller that looks them up at call time -- ``psutil.net_connections()``,
    any ``psutil.Process`` object, old or new, and psutil 7's deprecated
    ``Process.connections`` -- gets the fast rows; a name imported with
    ``from psutil import net_connections`` *before* install() keeps the original.
    Idempotent; :func:`uninstall` undoes it.

    Raises:
        ImportError: psutil is not installed.
    """
    import psutil
    with _install_lock:
        if _saved:
            return
        cls = psutil.Process
        meth = "net_connections" if "net_connections" in vars(cls) else "connections"   # psutil < 6
        orig_sys, orig_proc = psutil.net_connections, vars(cls)[meth]

        def net_connections_fast(kind: str = "inet") -> List[tuple]:
            return net_connections(kind)

        def process_net_connections_fast(self: Any, kind: str = "inet") -> List[tuple]:
            return _process_connections(self.pid, kind, getattr(self, "_name", None), _procfs_path(
                _resolve_types()), "auto", False, {})

        for fast, orig in ((net_connections_fast, orig_sys), (process_net_connections_fast, orig_proc)):
            fast.__doc__ = orig.__doc__
            fast.__wrapped__ = orig      # type: ignore[attr-defined]
            fast.__procnet__ = True      # type: ignore[attr-defined]
        process_net_connections_fast.__name__ = process_net_connections_fast.__qualname__ = meth
        _saved.update(module=psutil, sys=orig_sys, proc=orig_proc, meth=meth)
        psutil.net_connections = net_connections_fast
        setattr(cls, meth, process_net_connections_fast)


def uninstall() -> bool:
    """Restore what :func:`install` replaced; False if it was not installed."""
    with _install_lock:
        if not _saved:
            return False
        psutil = _saved["module"]
        psutil.net_connections = _saved["sys"]
        setattr(psutil.Process, _saved["meth"], _saved["proc"])
        _saved.clear()
        return True


def installed() -> bool:
    """True while :func:`install` is in effect."""
    return bool(_saved)
