"""What a caller asked for, resolved once and handed to either backend."""
import os
import socket
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
    names = (kind,) if isinstance(kind, str) else tuple(kind) if kind is not None else ()
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


def _port(name: str, v: Optional[int]) -> int:
    if v is None:
        return -1
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
        raise ValueError("%s must be a port number 0..65535, not %r" % (name, v))
    return v


def _ints(name: str, v: Union[int, Iterable[int], None]) -> Optional[Tuple[int, ...]]:
    if v is None:
        return None
    vals = (v,) if isinstance(v, int) else tuple(v)
    for x in vals:
        if isinstance(x, bool) or not isinstance(x, int) or x < 0 or x > 0x7FFFFFFF:
            raise ValueError("%s must be a non-negative integer (or several), not %r" % (name, x))
    return tuple(sorted(set(vals)))


def check_root(proc_root: Union[str, "os.PathLike[str]"]) -> str:
    """A procfs-like root: a directory with a net/ directory. Raises ProcRootError."""
    root = os.fspath(proc_root)
    if not isinstance(root, str):
        root = os.fsdecode(root)
    if not os.path.isdir(root):
        raise ProcRootError(2 if not os.path.exists(root) else 20,
                            "proc_root is not a directory", root)
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
    if byteorder not in BYTE_ORDERS:
        raise ValueError("byteorder must be 'native', 'little' or 'big', not %r" % (byteorder,))
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
        raise ValueError("threads must be a non-negative integer, not %r" % (threads,))
    states = None
    masks = (0,) * len(T.TABLES)
    if state is not None:
        states = frozenset((state,) if isinstance(state, str) else state)
        bad = sorted(s for s in states if s not in T.ALL_STATES)
        if bad:
            raise ValueError("unknown state %r; valid states: %s" % (bad[0], ", ".join(sorted(T.ALL_STATES))))
        masks = tuple(T.state_mask(t, states) for t in range(len(T.TABLES)))
    uid_ints = _ints("uid", uid)
    if uid_ints is not None and len(uid_ints) != 1:
        raise ValueError("uid takes one integer, not %r" % (uid,))
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
        uid=uid_ints[0] if uid_ints else -1,
        pids=_ints("pid", pid),
        source=source,
        laddr_family=laddr_family,
        laddr=laddr_bytes,
        netlink_deny=sum(1 << T.TABLE_INDEX[t] for t in netlink_deny),
        owner_source=owner_source,
        netns=_netns.resolve(netns, root),
    )
