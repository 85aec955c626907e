"""What a caller asked for, resolved once and handed to either backend."""
import os
import socket
import stat
from typing import Dict, FrozenSet, Iterable, NamedTuple, Optional, Tuple, Union

from . import _tables as T
from ._errors import ProcRootError
from . import _netns
from ._plan import requested_sources

BYTE_ORDERS: Dict[Optional[str], int] = {None: 0, "native": 0, "little": 1, "big": 2}

# C flags (PN_Q_* in csrc/procnet.h)
Q_OWNERS = 1
Q_OWNED_ONLY = 2


class Query(NamedTuple):
    """A resolved request; field meanings follow struct pn_query."""

    proc_root: str
    tables: FrozenSet[int]
    owners: bool
    byte_order: int                      # 0 host, 1 little, 2 big
    threads: int                         # 0 = auto
    state_masks: Tuple[int, ...]         # per table, bit per kernel state code; 0 = all
    states: Optional[FrozenSet[str]]     # the names asked for (state_masks is the filter)
    lport: int                           # -1 = any
    rport: int
    uid: int
    pids: Optional[Tuple[int, ...]]      # sorted; None = every process
    source: str                          # "auto", "procfs", "netlink": _plan decides from it
    laddr_family: int = 0                # socket.AF_INET / AF_INET6, 0 = any address
    laddr: bytes = bytes(16)             # network order, IPv4 in the first 4 bytes
    netlink_deny: int = 0                # tests: tables whose dump is refused
    owner_source: str = "auto"           # "auto", "procfs", "bpf": _plan decides from it
    netns: Union[None, str, int] = None  # None (the caller's), "all", or one namespace's inode

    @property
    def flags(self) -> int:
        f = Q_OWNERS if self.owners else 0
        if self.pids is not None:
            f |= Q_OWNED_ONLY
        return f

    @property
    def table_mask(self) -> int:
        return sum(1 << t for t in self.tables)


def resolve_kind(kind: Union[str, Iterable[str]]) -> FrozenSet[int]:
    """A kind name, or several -> the table indices (see _tables.KINDS)."""
    names = _names("kind", kind, "a kind name")
    tables: FrozenSet[int] = frozenset()
    for name in names:
        t = T.KINDS.get(name) if isinstance(name, str) else None
        if t is None:
            raise ValueError("unknown kind %r; valid kinds: %s" % (name, ", ".join(sorted(T.KINDS))))
        tables |= t
    if not tables:
        raise ValueError("kind names no table; valid kinds: %s" % ", ".join(sorted(T.KINDS)))
    return tables


def _address(ip: Optional[str]) -> Tuple[int, bytes]:
    """(family, 16 bytes) of an IP address string; (0, zeros) for None."""
    if ip is None:
        return 0, bytes(16)
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return int(family), socket.inet_pton(family, ip).ljust(16, b"\0")
        except (OSError, TypeError, ValueError):
            pass
    raise ValueError("laddr must be an IPv4 or IPv6 address, not %r" % (ip,))


def _names(arg: str, v: object, what: str) -> Tuple[object, ...]:
    """One name or an iterable of them, as given; a ValueError naming `arg` for
    anything else (an int is not iterable, bytes are not names)."""
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    if isinstance(v, (bytes, bytearray)):
        raise ValueError("%s must be %s or several, not %r" % (arg, what, v))
    try:
        return tuple(v)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError("%s must be %s or several, not %r" % (arg, what, v)) from None


def _port(name: str, v: Optional[int]) -> int:
    if v is None:
        return -1
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
        raise ValueError("%s must be a port number 0..65535, not %r" % (name, v))
    return v


def _is_id(x: object, top: int = 0x7FFFFFFF) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= top


def _ints(name: str, v: Union[int, Iterable[int], None]) -> Optional[Tuple[int, ...]]:
    """A non-negative int32, or an iterable of them; the error shows `v` as given."""
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        vals: Tuple[object, ...] = (v,)
    elif isinstance(v, (str, bytes, bytearray, bool)):
        vals = (v,)                     # not iterated: "12" is no pid, b"12" no pids 49, 50
    else:
        try:
            vals = tuple(v)
        except TypeError:
            vals = (v,)
    if not all(_is_id(x) for x in vals):
        raise ValueError("%s must be a non-negative integer (or several), not %r" % (name, v))
    return tuple(sorted(set(vals)))  # type: ignore[type-var]


def check_root(proc_root: Union[str, "os.PathLike[str]"]) -> str:
    """A procfs-like root: a directory with a net/ directory. Raises ProcRootError."""
    try:
        root = os.fspath(proc_root)
    except TypeError:
        raise ValueError("proc_root must be a path, not %r" % (proc_root,)) from None
    if not isinstance(root, str):
        root = os.fsdecode(root)
    try:
        st = os.stat(root)
    except OSError as e:                # say what failed: missing, refused, a loop...
        raise ProcRootError(e.errno, "proc_root cannot be used: %s" % e.strerror, root) from None
    except ValueError:                  # an embedded NUL
        raise ValueError("proc_root must be a path, not %r" % (proc_root,)) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ProcRootError(20, "proc_root is not a directory", root)
    if not os.path.isdir(os.path.join(root, "net")):
        raise ProcRootError(2, "proc_root has no net/ directory: not a procfs tree", root)
    return root


# hidepid values under which other users' processes are not listed at all
_HIDING = {"2", "invisible", "4", "ptraceable"}


def pids_hidden(root: str) -> bool:
    """Does the procfs at `root` hide other users' processes from us (hidepid)?

    Then their sockets show no owner and no denied pid says why, so the
    snapshot cannot call itself complete. Root (CAP_SYS_PTRACE) sees through
    hidepid; a tree that is not a proc mount hides nothing.
    """
    if os.geteuid() == 0:
        return False
    try:
        real = os.path.realpath(root)
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                fields = line.split()
                sep = fields.index(b"-")
                if fields[4].decode("utf-8", "surrogateescape") != real or fields[sep + 1] != b"proc":
                    continue
                for opt in fields[-1].split(b","):
                    if opt.startswith(b"hidepid=") and opt[8:].decode() in _HIDING:
                        return True
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        pass
    return False


def make_query(kind: Union[str, Iterable[str]], *, owners: bool, proc_root: Union[str, "os.PathLike[str]"],
               byteorder: Optional[str] = None, threads: Optional[int] = None,
               source: Optional[str] = None, netlink_deny: Iterable[str] = (),
               state: Union[str, Iterable[str], None] = None, lport: Optional[int] = None,
               rport: Optional[int] = None, pid: Union[int, Iterable[int], None] = None,
               uid: Optional[int] = None, laddr: Optional[str] = None,
               owner_source: Optional[str] = None, netns: "_netns.NetnsArg" = None) -> Query:
    """Validate the public arguments; every error names the bad one."""
    tables = resolve_kind(kind)
    if not (byteorder is None or isinstance(byteorder, str)) or byteorder not in BYTE_ORDERS:
        raise ValueError("byteorder must be 'native', 'little' or 'big', not %r" % (byteorder,))
    if threads is not None and not _is_id(threads):       # the core's int32
        raise ValueError("threads must be an integer 0..2147483647, not %r" % (threads,))
    states = None
    masks = (0,) * len(T.TABLES)
    if state is not None:
        names = _names("state", state, "a state name")
        bad = [s for s in names if not isinstance(s, str) or s not in T.ALL_STATES]
        if bad:
            raise ValueError("unknown state %r in state=%r; valid states: %s"
                             % (bad[0], state, ", ".join(sorted(T.ALL_STATES))))
        states = frozenset(names)
        masks = tuple(T.state_mask(t, states) for t in range(len(T.TABLES)))
    # a uid is 32 bits, unsigned (the CLI's --user takes the same range)
    if uid is not None and not _is_id(uid, 0xFFFFFFFF):
        raise ValueError("uid must be an integer 0..4294967295, not %r" % (uid,))
    root = check_root(proc_root)
    laddr_family, laddr_bytes = _address(laddr)
    source, owner_source = requested_sources(source, owner_source, root)
    return Query(
        proc_root=root,
        tables=tables,
        owners=bool(owners) or pid is not None,
        byte_order=BYTE_ORDERS[byteorder],
        threads=threads or 0,
        state_masks=masks,
        states=states,
        lport=_port("lport", lport),
        rport=_port("rport", rport),
        uid=-1 if uid is None else uid,
        pids=_ints("pid", pid),
        source=source,
        laddr_family=laddr_family,
        laddr=laddr_bytes,
        netlink_deny=sum(1 << T.TABLE_INDEX[t] for t in netlink_deny),
        owner_source=owner_source,
        netns=_netns.resolve(netns, root),
    )
