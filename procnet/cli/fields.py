"""How every output spells a socket's fields: one formatter, and the JSON keys.

The table (cli.netstat_render), --events (cli.events) and JSON (cli.jsonout) take their
values from here, so an address or an owner set reads the same everywhere:

- inet address: ``host:port``, an IPv6 host bracketed (``[::1]:8080``), port 0
  as ``*``; host, service and IP-protocol names unless numeric (-n).
- unix address: the path escaped (names.escape: no control character, no
  invalid UTF-8 reaches the terminal); abstract names as the kernel shows them,
  ``@name``.
- vsock address: ``CID:port``, ``*`` for VMADDR_CID_ANY / VMADDR_PORT_ANY (as ss).
- xdp address: ``interface:queue`` (the ifindex with -n or when it has no name).
- owners: ``812/nginx,813/nginx`` -- each pid once, in pid order; ``-`` for none.

A :class:`Formatter` made with ``split_fields=True`` (--events) also escapes
spaces, as ``\\x20``, in paths and process names: every value is then one
whitespace-separated field. The table keeps them: its columns are aligned, and
the path is the last one (netstat prints ``/run/my app.sock`` so).

JSON keeps every value exactly (no escaping, no names): the keys below are the
ones the writers emit, and --help lists them from here.
"""
import socket
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .._records import Address, Connection, NetNS, Owner, VsockAddress, XdpAddress
from .names import Hosts, Protocols, Services, Users, escape

__all__ = ["Formatter", "escape_field", "host_text", "port_text",
           "DOCUMENT_KEYS", "CONNECTION_KEYS", "ADDRESS_KEYS", "VSOCK_ADDRESS_KEYS",
           "XDP_ADDRESS_KEYS", "OWNER_KEYS", "NETNS_KEYS", "EVENT_KEYS"]

# -- JSON ------------------------------------------------------------------------

#: one --json document (cli.jsonout.document)
DOCUMENT_KEYS: Tuple[str, ...] = (
    "version", "backend", "time", "complete", "denied_pids", "pids_hidden", "skipped", "tables",
    "sources", "processes", "owner_source", "namespaces", "unlisted", "other_netns", "connections")
#: each of "connections": every field of procnet.Connection (Connection.as_dict)
CONNECTION_KEYS: Tuple[str, ...] = Connection._FIELDS
#: "laddr" and "raddr" of an inet (mptcp, sctp) socket
ADDRESS_KEYS: Tuple[str, ...] = Address._fields
#: "laddr" and "raddr" of a vsock socket
VSOCK_ADDRESS_KEYS: Tuple[str, ...] = VsockAddress._fields
#: "laddr" of an AF_XDP socket
XDP_ADDRESS_KEYS: Tuple[str, ...] = XdpAddress._fields
#: each of "owners"
OWNER_KEYS: Tuple[str, ...] = Owner._fields
#: each of "namespaces": procnet.NetNS
NETNS_KEYS: Tuple[str, ...] = NetNS._fields
#: one --events --json line: "event", the connection's keys, and "old_owners" in an owners event
EVENT_KEYS: Tuple[str, ...] = ("event",) + CONNECTION_KEYS + ("old_owners",)


# -- text --------------------------------------------------------------------------

_SERVICE_PROTO = {"tcp": "tcp", "tcp6": "tcp", "udp": "udp", "udp6": "udp",
                  "udplite": "udp", "udplite6": "udp", "mptcp": "tcp", "mptcp6": "tcp",
                  "sctp": "sctp", "sctp6": "sctp"}
_VSOCK_ANY = 0xFFFFFFFF        # VMADDR_CID_ANY, VMADDR_PORT_ANY
_RAW = frozenset(("raw", "raw6"))


def escape_field(s: str) -> str:
    """escape(s), and spaces as ``\\x20``: one whitespace-separated field.

    Unambiguous: a backslash in `s` is already ``\\\\``.
    """
    e = escape(s)
    return e.replace(" ", "\\x20") if " " in e else e


def host_text(ip: str) -> str:
    """The numeric host: an IPv6 address bracketed (a port follows it)."""
    return "[%s]" % ip if ":" in ip else ip


def port_text(port: int) -> str:
    """The numeric port: ``*`` for 0 (any)."""
    return str(port) if port else "*"


class Formatter:
    """The text of addresses, owners, paths and users, as the options ask.

    Keeps its name caches across refreshes (a -c loop); call :meth:`begin`
    once per snapshot (pids are reused, so owner texts are per snapshot) and
    :meth:`lookup_hosts` with the snapshot's inet addresses before asking for
    their text (the host names are looked up together, within a deadline).
    """

    def __init__(self, opts: Any, *, split_fields: bool = False) -> None:
        self.numeric_ports: bool = opts.numeric_ports
        self.numeric_users: bool = opts.numeric_users
        self.services = Services()
        self.protocols = Protocols()
        self.users = Users()
        self.hosts: Optional[Hosts] = None if opts.numeric_hosts else Hosts()
        self._escape = escape_field if split_fields else escape
        self._hosts_text: Dict[str, str] = {}
        self._ports_text: Dict[Tuple[int, str], str] = {}
        self._owner_text: Dict[int, str] = {}     # per snapshot: pids are reused
        self._paths: Dict[str, str] = {"": ""}

    def begin(self) -> None:
        """A new snapshot: forget its owners' names; keep the caches bounded."""
        self._owner_text.clear()
        if len(self._ports_text) > 200000:
            self._ports_text.clear()
        if len(self._hosts_text) > 100000:
            self._hosts_text.clear()
        if len(self._paths) > 100000:
            self._paths.clear()
            self._paths[""] = ""

    # -- inet ----------------------------------------------------------------

    def lookup_hosts(self, *columns: Iterable[Any]) -> None:
        """Look up the host names of these addresses (inet ones not known yet)."""
        if self.hosts is None:
            return
        fresh = {a.ip for addrs in columns for a in addrs if isinstance(a, Address)}
        fresh.difference_update(self._hosts_text)
        if fresh:
            self.hosts.prepare(fresh)

    def host(self, ip: str) -> str:
        """The host's name, or the address (bracketed if IPv6)."""
        s = self._hosts_text.get(ip)
        if s is None:
            name = None if self.hosts is None else self.hosts.name(ip)
            s = name or host_text(ip)
            if name is not None or self.hosts is None:   # final: no lookup in flight
                self._hosts_text[ip] = s
        return s

    def port(self, port: int, proto: str) -> str:
        """The port's service name (raw sockets: the IP protocol's), or the number; ``*`` for 0."""
        key = (port, proto)
        s = self._ports_text.get(key)
        if s is None:
            if port == 0 or self.numeric_ports:
                s = port_text(port)
            elif proto in _RAW:
                s = self.protocols.name(port)
            elif proto in _SERVICE_PROTO:
                s = self.services.name(port, _SERVICE_PROTO[proto])
            else:
                s = str(port)
            self._ports_text[key] = s
        return s

    def addresses(self, addrs: Sequence[Address], protos: Sequence[str]) -> List[str]:
        """``host:port`` for each inet address (a column: the table's fast path)."""
        hosts, host = self._hosts_text, self.host
        if self.numeric_ports:
            return [(hosts.get(a.ip) or host(a.ip)) + (":%d" % a.port if a.port else ":*")
                    for a in addrs]
        ports, port = self._ports_text, self.port
        return [(hosts.get(a.ip) or host(a.ip)) + ":" + (ports.get((a.port, p)) or port(a.port, p))
                for a, p in zip(addrs, protos)]

    # -- any family ----------------------------------------------------------

    def path(self, p: str) -> str:
        """A unix socket's path, escaped ("" when unnamed)."""
        s = self._paths.get(p)
        if s is None:
            s = self._paths[p] = self._escape(p)
        return s

    def address(self, a: Any, proto: str) -> str:
        """One address of any family as one field: ``-`` for none or an unnamed socket.

        inet as :meth:`addresses`, unix as :meth:`path`, vsock as
        :meth:`vsock`, xdp as :meth:`xdp`, a packet socket's ifindex or a
        netlink socket's port id as the number.
        """
        if a is None:
            return "-"
        if isinstance(a, Address):
            return self.host(a.ip) + ":" + self.port(a.port, proto)
        if isinstance(a, str):
            return self.path(a) or "-"
        if isinstance(a, VsockAddress):
            return self.vsock(a)
        if isinstance(a, XdpAddress):
            return self.xdp(a)
        return str(a)

    @staticmethod
    def vsock(a: VsockAddress) -> str:
        """``CID:port``; ``*`` for any (as ss prints them)."""
        return "%s:%s" % ("*" if a.cid == _VSOCK_ANY else a.cid, "*" if a.port == _VSOCK_ANY else a.port)

    def xdp(self, a: XdpAddress) -> str:
        """``interface:queue``: the interface's name unless numeric (-n) or unknown."""
        name = None
        if self.hosts is not None and a.ifindex:
            try:
                name = escape(socket.if_indextoname(a.ifindex))
            except OSError:
                name = None
        return "%s:%d" % (name or a.ifindex, a.queue_id)

    def user(self, uid: Optional[int]) -> str:
        """The user's name (the number with -n); ``-`` where the source gives no uid."""
        if uid is None:
            return "-"
        return str(uid) if self.numeric_users else self.users.name(uid)

    # -- owners --------------------------------------------------------------

    def owners(self, owners: Sequence[Owner], *, earlier: bool = False) -> str:
        """``pid/name,pid/name``: each pid once, in pid order; ``-`` for none.

        `earlier`: the owners are from an earlier snapshot than the one begun
        (an owners event's old set), where a pid may have had another name.
        """
        if not owners:
            return "-"
        cache: Dict[int, str] = {} if earlier else self._owner_text
        parts = []
        last = -1
        for o in owners:          # sorted by (pid, fd)
            pid = o.pid
            if pid == last:
                continue
            last = pid
            s = cache.get(pid)
            if s is None:
                s = cache[pid] = "%d/%s" % (pid, "-" if o.name is None else self._escape(o.name))
            parts.append(s)
        return parts[0] if len(parts) == 1 else ",".join(parts)

    def owner_column(self, conns: Sequence[Connection]) -> List[str]:
        """:meth:`owners` of each connection (a column: the table's fast path)."""
        cache = self._owner_text
        owners = self.owners
        out = []
        for c in conns:
            os_ = c.owners
            if len(os_) == 1:                 # the common case, inline
                s = cache.get(os_[0][0])
                out.append(s if s is not None else owners(os_))
            else:
                out.append(owners(os_))
        return out
