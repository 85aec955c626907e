"""The records both backends return: Connection, Owner, Address, Snapshot.

Both backends hand over the same *raw* records -- one tuple per socket laid
out like ``struct pn_sock`` in csrc/procnet.h -- plus one :class:`_Context`
per snapshot holding what the records point into (paths, owners, names).
A :class:`Connection` *is* that raw tuple with the context appended, built in
bulk without a Python-level loop; its public fields are properties decoded on
first use. That keeps a 50 000-socket snapshot at a fraction of a microsecond
of Python work per socket (see benchmarks/), where eager namedtuples cost ~2 µs.
"""
import socket
import struct
from itertools import repeat
from operator import add, itemgetter
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union

from . import _tables as T

# struct pn_sock, field by field (no implicit padding: 88 bytes).
SOCK_STRUCT = struct.Struct("=Q16s16sIIIIIIIHHHBBBBHII")
# struct pn_owner: pid, fd, name_off, name_len, flags, reserved.
OWNER_STRUCT = struct.Struct("=iiIIII")

# Raw record indices (the order of struct pn_sock's fields).
(R_INODE, R_LADDR, R_RADDR, R_UID, R_TX, R_RX, R_OWNER_FIRST, R_OWNER_COUNT,
 R_EXT, R_EXT_LEN, R_LPORT, R_RPORT, R_PROTOCOL, R_TABLE, R_STATE, R_STYPE,
 R_RESERVED, R_FLAGS, R_NETNS, R_RESERVED2, R_CTX) = range(21)

# pn_sock.flags / pn_owner.flags (PN_SF_* in procnet.h).
SF_NO_UID = 1
SF_UNIX_ACC = 2
SF_NO_NAME = 4
SF_PKT_RUNNING = 8


class Address(NamedTuple):
    """An inet endpoint; unpacks as ``(ip, port)`` like psutil's addr."""

    ip: str
    port: int


class VsockAddress(NamedTuple):
    """A vsock endpoint: context id (2 = the host; 4294967295 = VMADDR_CID_ANY)
    and 32-bit port (4294967295 = VMADDR_PORT_ANY); unpacks as ``(cid, port)``."""

    cid: int
    port: int


class XdpAddress(NamedTuple):
    """Where an AF_XDP socket is bound: interface index and queue id (0, 0 unbound)."""

    ifindex: int
    queue_id: int


class Owner(NamedTuple):
    """One process holding a socket: pid, the fd number, and its comm name.

    ``name`` is None when the process vanished before its name was read.
    """

    pid: int
    fd: int
    name: Optional[str]


_ip_cache: Dict[Tuple[bool, bytes], str] = {}


def _ip(raw: bytes, v6: bool) -> str:
    key = (v6, raw)
    ip = _ip_cache.get(key)
    if ip is None:
        if len(_ip_cache) > 65536:      # bounded: a long-lived poller must not grow
            _ip_cache.clear()
        ip = socket.inet_ntop(socket.AF_INET6, raw) if v6 else socket.inet_ntop(socket.AF_INET, raw[:4])
        _ip_cache[key] = ip
    return ip


def _decode(b: bytes) -> str:
    # Names and paths are chosen by any local user: keep them bytes-exact.
    return b.decode("utf-8", "surrogateescape")


class _Context:
    """What one snapshot's raw records point into; shared by its Connections."""

    __slots__ = ("strings", "owner_rows", "_owners", "_names")

    def __init__(self, strings: bytes, owners: Union[bytes, List[Owner]]) -> None:
        self.strings = strings
        # struct pn_owner bytes from the C core, unpacked only when someone asks
        # for owners; or the Owner objects themselves (the pure backend)
        self.owner_rows = owners if isinstance(owners, bytes) else b""
        self._owners: Optional[List[Owner]] = None if isinstance(owners, bytes) else owners
        self._names: Dict[Tuple[int, int], str] = {}

    def text(self, off: int, n: int) -> str:
        key = (off, n)
        s = self._names.get(key)
        if s is None:
            s = self._names[key] = _decode(self.strings[off:off + n])
        return s

    def owners(self, first: int, count: int) -> Tuple[Owner, ...]:
        if not count:
            return ()
        objs = self._owners
        if objs is None:
            # all at once, on first use: most callers who want one want all
            text, new = self.text, tuple.__new__
            objs = self._owners = [
                new(Owner, (pid, fd, None if fl & SF_NO_NAME else text(off, n)))
                for pid, fd, off, n, fl, _ in OWNER_STRUCT.iter_unpack(self.owner_rows)
            ]
        return tuple(objs[first:first + count])


_socktypes: Dict[int, Optional[socket.SocketKind]] = {}


def _socktype(n: int) -> Optional[socket.SocketKind]:
    t = _socktypes.get(n, False)
    if t is False:
        try:
            t = socket.SocketKind(n) if n else None
        except ValueError:
            t = None
        _socktypes[n] = t
    return t  # type: ignore[return-value]


class Connection(tuple):
    """One socket of the host and every process holding it.

    Fields (all read-only attributes):

    - ``proto``: table name -- ``"tcp"``, ``"tcp6"``, ``"udp"``, ``"udplite6"``,
      ``"raw"``, ``"icmp"``, ``"unix"``, ``"packet"``, ``"netlink"`` ...
    - ``family`` (``socket.AF_*``) and ``type`` (``socket.SOCK_*``, None if the
      source does not say, as for netlink text).
    - ``laddr`` / ``raddr``: for inet an :class:`Address` ``(ip, port)``; IPv4-mapped
      IPv6 shows as ``::ffff:1.2.3.4``. For unix ``laddr`` is the path (``"@name"``
      for abstract, ``""`` unnamed); for packet the bound ifindex (0 = any); for
      netlink the port id. mptcp and sctp are inet (sctp: the first local
      address and the primary peer of a multi-homed socket); vsock gives
      :class:`VsockAddress` ``(cid, port)`` for both, xdp :class:`XdpAddress`
      ``(ifindex, queue_id)``. ``raddr`` is None for the others.
    - ``state``: ``"ESTABLISHED"``, ``"LISTEN"``, ``"TIME_WAIT"``...; ``"NONE"`` where
      the socket has no state (unconnected datagram, packet, netlink, xdp);
      an SCTP association's state: ``"COOKIE_WAIT"``, ``"ESTABLISHED"``,
      ``"SHUTDOWN_SENT"``... (``_tables.SCTP_ASSOC_STATES``).
    - ``tx_queue``, ``rx_queue``, ``uid`` (None where the source gives none:
      unix and netlink text), ``inode``, ``protocol`` (inet: IPPROTO_*; packet:
      ethertype; netlink: family).
    - ``netns``: inode of the socket's network namespace (see
      :attr:`Snapshot.namespaces`), None where unknown.
    - ``owners``: tuple of :class:`Owner`, sorted by (pid, fd); empty when no
      process we could read holds it (see :attr:`Snapshot.denied_pids`).

    Equality and hashing use these decoded fields. The object is a tuple only
    as an implementation detail: do not index it.
    """

    __slots__ = ()

    inode = property(itemgetter(R_INODE), doc="Socket inode (0 for TIME_WAIT and SYN_RECV).")
    tx_queue = property(itemgetter(R_TX), doc="Send queue bytes.")
    rx_queue = property(itemgetter(R_RX), doc="Receive queue bytes (accept backlog for listeners).")
    protocol = property(itemgetter(R_PROTOCOL), doc="IPPROTO_*, ethertype or netlink family.")

    @property
    def netns(self) -> Optional[int]:
        """Inode of the socket's network namespace, as ``/proc/PID/ns/net`` shows it
        (``net:[4026531840]``); None where it is unknown (a fixture tree)."""
        return self[R_NETNS] or None

    @property
    def proto(self) -> str:
        """Table the socket came from: 'tcp', 'tcp6', 'udp', 'unix', ..."""
        return T.TABLES[self[R_TABLE]]

    @property
    def family(self) -> socket.AddressFamily:
        """socket.AF_INET, AF_INET6, AF_UNIX, AF_PACKET or AF_NETLINK."""
        return T.FAMILIES[self[R_TABLE]]  # type: ignore[return-value]

    @property
    def type(self) -> Optional[socket.SocketKind]:
        """socket.SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET, or None."""
        return _socktype(self[R_STYPE])

    @property
    def state(self) -> str:
        """netstat/psutil state name; 'LISTEN' also for listening unix sockets."""
        return T.state_name(self[R_TABLE], self[R_STATE], bool(self[R_FLAGS] & SF_UNIX_ACC))

    @property
    def uid(self) -> Optional[int]:
        """Owning uid as the kernel reports it, or None where the table has none."""
        return None if self[R_FLAGS] & SF_NO_UID else self[R_UID]

    @property
    def laddr(self) -> Union[Address, str, int, VsockAddress, XdpAddress]:
        """Local address: Address (inet, mptcp, sctp), unix path, packet ifindex,
        netlink port id, VsockAddress or XdpAddress."""
        table = self[R_TABLE]
        if table in T.IP_TABLES:
            return tuple.__new__(Address, (_ip(self[R_LADDR], table in T.V6_TABLES), self[R_LPORT]))
        if table == T.UNIX:
            return self[R_CTX].text(self[R_EXT], self[R_EXT_LEN])
        if table == T.VSOCK:
            return tuple.__new__(VsockAddress, (int.from_bytes(self[R_LADDR][:4], "big"), self[R_EXT]))
        if table == T.XDP:
            return tuple.__new__(XdpAddress, (self[R_EXT], self[R_EXT_LEN]))
        return self[R_EXT]

    @property
    def raddr(self) -> Union[Address, VsockAddress, None]:
        """Remote address of inet, mptcp, sctp (the primary peer) and vsock sockets; None otherwise."""
        table = self[R_TABLE]
        if table in T.IP_TABLES:
            return tuple.__new__(Address, (_ip(self[R_RADDR], table in T.V6_TABLES), self[R_RPORT]))
        if table == T.VSOCK:
            return tuple.__new__(VsockAddress, (int.from_bytes(self[R_RADDR][:4], "big"), self[R_EXT_LEN]))
        return None

    @property
    def owners(self) -> Tuple[Owner, ...]:
        """Every (pid, fd, name) holding this socket, sorted by pid then fd."""
        return self[R_CTX].owners(self[R_OWNER_FIRST], self[R_OWNER_COUNT])

    @property
    def pids(self) -> Tuple[int, ...]:
        """Distinct owner pids, ascending."""
        return tuple(sorted({o.pid for o in self.owners}))

    @property
    def listening(self) -> bool:
        """True for a listening tcp/unix socket or an unconnected bound datagram one."""
        st = self.state
        if st == "LISTEN":
            return True
        return self[R_TABLE] in T.INET_TABLES and self[R_TABLE] not in T.TCP_TABLES and st == "NONE"

    @property
    def is_ipv4_mapped(self) -> bool:
        """True for an IPv6 socket whose local address is an IPv4-mapped one."""
        return self[R_TABLE] in T.V6_TABLES and self[R_LADDR][:12] == b"\0" * 10 + b"\xff\xff"

    _FIELDS = ("proto", "family", "type", "laddr", "raddr", "state", "tx_queue",
               "rx_queue", "uid", "inode", "protocol", "owners", "netns")

    def as_tuple(self) -> Tuple[Any, ...]:
        """The decoded fields, in the order of :attr:`_FIELDS`."""
        return tuple(getattr(self, f) for f in self._FIELDS)

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict of every field (enums as names, owners as dicts)."""
        d: Dict[str, Any] = {f: getattr(self, f) for f in self._FIELDS}
        d["family"] = T.family_name(d["family"])
        d["type"] = d["type"].name if d["type"] is not None else None
        for k in ("laddr", "raddr"):
            if isinstance(d[k], (Address, VsockAddress, XdpAddress)):
                d[k] = d[k]._asdict()
        d["owners"] = [o._asdict() for o in d["owners"]]
        return d

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Connection):
            return NotImplemented
        return self.as_tuple() == other.as_tuple()

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self.as_tuple())

    def __repr__(self) -> str:
        return "Connection(%s)" % ", ".join("%s=%r" % (f, getattr(self, f)) for f in self._FIELDS)

    def __reduce__(self) -> Any:
        # Pickle a detached copy: the raw record plus a context of its own.
        return (_rebuild, (self.as_tuple(),))



def _rebuild(fields: Tuple[Any, ...]) -> Connection:
    """Inverse of Connection.__reduce__: a Connection with a context of its own."""
    proto, _family, stype, laddr, raddr, state, tx, rx, uid, inode, protocol, owners, netns = fields
    table = T.TABLE_INDEX[proto]
    strings = bytearray()
    ext = ext_len = lport = rport = 0
    la = ra = bytes(16)
    flags = SF_NO_UID if uid is None else 0
    if table in T.IP_TABLES:
        af = socket.AF_INET6 if table in T.V6_TABLES else socket.AF_INET
        la = socket.inet_pton(af, laddr.ip).ljust(16, b"\0")
        ra = socket.inet_pton(af, raddr.ip).ljust(16, b"\0")
        lport, rport = laddr.port, raddr.port
    elif table == T.VSOCK:
        la, ra = laddr.cid.to_bytes(4, "big") + bytes(12), raddr.cid.to_bytes(4, "big") + bytes(12)
        ext, ext_len = laddr.port, raddr.port
    elif table == T.XDP:
        ext, ext_len = laddr
    elif table == T.UNIX:
        path = laddr.encode("utf-8", "surrogateescape")
        strings += path
        ext_len = len(path)
    else:
        ext = laddr
    code = 0
    for c in range(32):
        if T.state_name(table, c) == state:
            code = c
            break
    if table == T.UNIX and state == "LISTEN":
        code, flags = 1, flags | SF_UNIX_ACC
    rec = (inode, la, ra, uid or 0, tx, rx, 0, len(owners), ext, ext_len, lport, rport,
           protocol, table, code, int(stype or 0), 0, flags, netns or 0, 0)
    return next(build([rec], _Context(bytes(strings), [Owner(*o) for o in owners])))


def build(records: Iterable[Tuple[Any, ...]], ctx: _Context) -> Iterator[Connection]:
    """Raw records -> Connection objects, in bulk: no Python-level loop per socket."""
    return map(tuple.__new__, repeat(Connection), map(add, records, repeat((ctx,))))


class NetNS(NamedTuple):
    """A network namespace a snapshot listed (or tried to).

    ``inode`` is what ``/proc/PID/ns/net`` shows (``net:[4026531840]``);
    ``names`` its ``ip netns`` name (``/run/netns``), Docker's netns file
    (``/run/docker/netns``) and container ids found in member processes'
    cgroups (``docker:3f2a...``, ``cri:...``, ``podman:...``, ``nspawn:NAME``);
    ``pids`` the readable processes in it (empty for a bind-mounted one with
    none left); ``source`` what listed it (``"netlink"``, ``"procfs"``, or
    ``""`` when it could not be listed: ``error`` says why).
    """

    inode: int
    names: Tuple[str, ...] = ()
    pids: Tuple[int, ...] = ()
    source: str = ""
    error: str = ""


class Snapshot(List[Connection]):
    """The sockets of one snapshot (a list of :class:`Connection`) and how complete it is.

    Attributes:
        denied_pids: pids whose fd directory could not be read (permission,
            hidepid, ...): sockets they hold show no owner. Empty when complete.
        skipped: malformed lines skipped, per table name (only tables with any).
        tables: per table asked for, ``"read"``, ``"missing"`` (this kernel has
            no such table) or ``"error: <reason>"``.
        sources: per table asked for, ``"netlink"`` or ``"procfs"``: which
            source served it (``source="auto"`` falls back per table).
        backend: ``"native"`` or ``"pure"``.
        processes: fd directories walked (0 without owners).
        pids_hidden: the procfs hides other users' processes from this caller
            (mounted with ``hidepid=invisible``): their sockets show no owner
            and no pid in ``denied_pids`` says why.
        owner_source: how owners were found: ``"procfs"`` (the /proc/PID/fd
            walk), ``"bpf"`` (the kernel's task_file iterator), or ``""``
            without owners.
        namespaces: the network namespaces listed, ``{inode: NetNS}`` (one,
            the caller's, unless ``netns=`` asked for more).
        unlisted: sockets held by readable processes that no listed table
            holds, counted per protocol (the kernel's name: ``"TCP"``,
            ``"UNIX-STREAM"``, ``"AF_VSOCK"``...): those of other network
            namespaces (of the kinds asked for), and with ``kind="all"`` and
            no filter every one (a family procnet cannot list here).
        other_netns: ``{inode: sockets}`` of the namespaces not listed whose
            sockets (of the kinds asked for) were seen held by readable
            processes (``netns="all"`` lists them).
    """

    __slots__ = ("denied_pids", "skipped", "tables", "sources", "backend", "processes", "pids_hidden",
                 "owner_source", "namespaces", "unlisted", "other_netns")

    def __init__(self, conns: Iterable[Connection] = (), *, denied_pids: Tuple[int, ...] = (),
                 skipped: Optional[Dict[str, int]] = None, tables: Optional[Dict[str, str]] = None,
                 sources: Optional[Dict[str, str]] = None, backend: str = "",
                 processes: int = 0, pids_hidden: bool = False, owner_source: str = "",
                 namespaces: Optional[Dict[int, NetNS]] = None,
                 unlisted: Optional[Dict[str, int]] = None,
                 other_netns: Optional[Dict[int, int]] = None) -> None:
        super().__init__(conns)
        self.namespaces = namespaces or {}
        self.unlisted = unlisted or {}
        self.other_netns = other_netns or {}
        self.owner_source = owner_source
        self.denied_pids = denied_pids
        self.skipped = skipped or {}
        self.tables = tables or {}
        self.sources = sources or {}
        self.backend = backend
        self.processes = processes
        self.pids_hidden = pids_hidden

    def _like(self, conns: Iterable[Connection], names: Optional[Iterable[str]] = None) -> "Snapshot":
        """`conns` with this snapshot's attributes (all of them, whatever is added
        later); the per-table ones (skipped, tables, sources) only for the table
        `names` if given. The dicts are copies: changing one snapshot's never
        changes another's."""
        new = Snapshot(conns)
        for a in Snapshot.__slots__:
            v = getattr(self, a)
            setattr(new, a, dict(v) if isinstance(v, dict) else v)
        if names is not None:
            keep = frozenset(names)
            for a in ("skipped", "tables", "sources"):
                setattr(new, a, {k: v for k, v in getattr(self, a).items() if k in keep})
        return new

    @property
    def complete(self) -> bool:
        """True when every process, table, line and namespace asked for could be
        read, and every socket a readable process holds was listed."""
        return not self.denied_pids and not self.pids_hidden and not self.skipped and all(
            v in ("read", "missing") for v in self.tables.values()) and not self.unlisted and all(
            ns.source for ns in self.namespaces.values())

    def __repr__(self) -> str:
        return "<Snapshot %d sockets, backend=%s, denied_pids=%d, skipped=%d>" % (
            len(self), self.backend, len(self.denied_pids), sum(self.skipped.values()))
