"""Static facts about the socket tables, shared by both backends and the API.

Table numbers are the C core's PN_* constants (csrc/procnet.h); the order is
part of the contract.
"""
import socket
from typing import Dict, FrozenSet, Tuple

TABLES: Tuple[str, ...] = (
    "tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6",
    "icmp", "icmp6", "unix", "packet", "netlink",
    # the families ss lists beyond /proc/net's tables (sock_diag; sctp also as text)
    "mptcp", "mptcp6", "sctp", "sctp6", "vsock", "xdp",
)
TABLE_INDEX: Dict[str, int] = {name: i for i, name in enumerate(TABLES)}
UNIX, PACKET, NETLINK = TABLE_INDEX["unix"], TABLE_INDEX["packet"], TABLE_INDEX["netlink"]
VSOCK, XDP = TABLE_INDEX["vsock"], TABLE_INDEX["xdp"]
TCP, TCP6 = TABLE_INDEX["tcp"], TABLE_INDEX["tcp6"]
# sock_diag's pseudo-table: one TCPDIAG_GETSOCK dump of tcp and tcp6 (PN_DIAG_TCP46)
DIAG_TCP46 = len(TABLES)
# the ten /proc/net/{tcp,udp,udplite,raw,icmp}{,6} tables (one text format)
INET_TABLES = frozenset(range(UNIX))
V6_TABLES = frozenset(i for i, n in enumerate(TABLES) if n.endswith("6"))
TCP_TABLES = frozenset((TABLE_INDEX["tcp"], TABLE_INDEX["tcp6"]))
MPTCP_TABLES = frozenset((TABLE_INDEX["mptcp"], TABLE_INDEX["mptcp6"]))
SCTP_TABLES = frozenset((TABLE_INDEX["sctp"], TABLE_INDEX["sctp6"]))
# tables of IP sockets: laddr/raddr are Address(ip, port) (pn_table_is_ip)
IP_TABLES = INET_TABLES | MPTCP_TABLES | SCTP_TABLES

# Tables only sock_diag can list: read from text, they are empty ("missing").
TEXTLESS_TABLES: FrozenSet[int] = MPTCP_TABLES | frozenset((VSOCK, XDP))

# The files of each table under <root>/net, read in order (table_reader): none
# for the sock_diag-only families (their table is "missing" from text); both
# SCTP files list both families, each line going to the table of its own.
TABLE_FILES: Tuple[Tuple[str, ...], ...] = tuple(
    () if i in TEXTLESS_TABLES else
    ("sctp/eps", "sctp/assocs") if i in SCTP_TABLES else
    (name,)
    for i, name in enumerate(TABLES)
)

_AF_PACKET = getattr(socket, "AF_PACKET", 17)
_AF_NETLINK = getattr(socket, "AF_NETLINK", 16)
_AF_VSOCK = getattr(socket, "AF_VSOCK", 40)
_AF_XDP = getattr(socket, "AF_XDP", 44)


def _family(n: int) -> int:
    try:
        return socket.AddressFamily(n)
    except ValueError:          # a Python built without it: the number
        return n


def family_name(family: int) -> str:
    """"AF_INET", ...: the enum's name, or AF_XDP / AF_VSOCK where this Python lacks them."""
    name = getattr(family, "name", None)
    return name or {_AF_XDP: "AF_XDP", _AF_VSOCK: "AF_VSOCK"}.get(family, str(family))


FAMILIES: Tuple[int, ...] = tuple(
    socket.AF_INET6 if i in V6_TABLES else
    socket.AF_UNIX if i == UNIX else
    _family(_AF_PACKET) if i == PACKET else
    _family(_AF_NETLINK) if i == NETLINK else
    _family(_AF_VSOCK) if i == VSOCK else
    _family(_AF_XDP) if i == XDP else
    socket.AF_INET
    for i in range(len(TABLES))
)

# Kernel TCP state codes (include/net/tcp_states.h), named as netstat/psutil do.
TCP_STATES: Tuple[str, ...] = (
    "NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
    "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
)
# Datagram, raw and ping sockets borrow TCP codes: 1 when connected, 7 when not.
DGRAM_STATES: Dict[int, str] = {1: "ESTABLISHED", 7: "NONE"}
# Unix sockets: SS_* from include/uapi/linux/net.h; listening is a flag, not a state.
UNIX_STATES: Tuple[str, ...] = ("FREE", "NONE", "CONNECTING", "CONNECTED", "DISCONNECTING")
# SCTP associations: enum sctp_state (include/net/sctp/constants.h), stored as
# SCTP_ASSOC_STATE + code (PN_SCTP_ASSOC_STATE); SCTP endpoints, MPTCP and
# vsock sockets report sk_state, numbered as TCP's.
SCTP_ASSOC_STATE = 16
SCTP_ASSOC_STATES: Tuple[str, ...] = (
    "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED", "SHUTDOWN_PENDING",
    "SHUTDOWN_SENT", "SHUTDOWN_RECEIVED", "SHUTDOWN_ACK_SENT",
)
# the tables whose states are TCP's sk_state codes, named as for tcp
_TCP_NAMED = TCP_TABLES | MPTCP_TABLES | frozenset((VSOCK,))

ALL_STATES: FrozenSet[str] = frozenset(TCP_STATES) | frozenset(UNIX_STATES) | \
    frozenset(SCTP_ASSOC_STATES) | {"LISTEN"}


def state_name(table: int, code: int, unix_listening: bool = False) -> str:
    """Name a kernel state code the way netstat and psutil do."""
    if table in _TCP_NAMED:
        return TCP_STATES[code] if code < len(TCP_STATES) else "UNKNOWN_%d" % code
    if table in SCTP_TABLES:
        if code >= SCTP_ASSOC_STATE:
            c = code - SCTP_ASSOC_STATE
            return SCTP_ASSOC_STATES[c] if c < len(SCTP_ASSOC_STATES) else "UNKNOWN_%d" % c   # the kernel's code
        return TCP_STATES[code] if code < len(TCP_STATES) else "UNKNOWN_%d" % code
    if table in INET_TABLES:
        return DGRAM_STATES.get(code) or (
            TCP_STATES[code] if code < len(TCP_STATES) else "UNKNOWN_%d" % code)
    if table == UNIX:
        if unix_listening:
            return "LISTEN"
        return UNIX_STATES[code] if code < len(UNIX_STATES) else "UNKNOWN_%d" % code
    return "NONE"


# The state-filter bit of a listening unix socket (PN_STATE_UNIX_LISTEN): the
# kernel prints it as SS_UNCONNECTED plus a flag, so it gets a bit of its own.
STATE_UNIX_LISTEN = 30
# A mask bit no state has: a table none of whose states was asked for keeps nothing.
STATE_NOTHING = 1 << 31


def state_mask(table: int, names: FrozenSet[str]) -> int:
    """The state filter of one table (struct pn_query.state_mask): a bit per
    kernel code that state_name() calls one of `names`, and STATE_UNIX_LISTEN
    for a listening unix socket. The core applies it, once, to both sources."""
    mask = 0
    for code in range(STATE_UNIX_LISTEN):
        if state_name(table, code) in names:
            mask |= 1 << code
    if table == UNIX and "LISTEN" in names:
        mask |= 1 << STATE_UNIX_LISTEN
    return mask or STATE_NOTHING


_v4 = frozenset(TABLE_INDEX[n] for n in ("tcp", "udp", "udplite", "raw", "icmp"))
_v6 = frozenset(TABLE_INDEX[n] for n in ("tcp6", "udp6", "udplite6", "raw6", "icmp6"))
_t = TABLE_INDEX
# psutil's vocabulary, plus the tables psutil does not read.
KINDS: Dict[str, FrozenSet[int]] = {
    "inet": frozenset(_t[n] for n in ("tcp", "tcp6", "udp", "udp6")),
    "inet4": frozenset(_t[n] for n in ("tcp", "udp")),
    "inet6": frozenset(_t[n] for n in ("tcp6", "udp6")),
    "tcp": frozenset((_t["tcp"], _t["tcp6"])),
    "tcp4": frozenset((_t["tcp"],)),
    "tcp6": frozenset((_t["tcp6"],)),
    "udp": frozenset((_t["udp"], _t["udp6"])),
    "udp4": frozenset((_t["udp"],)),
    "udp6": frozenset((_t["udp6"],)),
    "udplite": frozenset((_t["udplite"], _t["udplite6"])),
    "udplite4": frozenset((_t["udplite"],)),
    "udplite6": frozenset((_t["udplite6"],)),
    "raw": frozenset((_t["raw"], _t["raw6"])),
    "raw4": frozenset((_t["raw"],)),
    "raw6": frozenset((_t["raw6"],)),
    "icmp": frozenset((_t["icmp"], _t["icmp6"])),
    "icmp4": frozenset((_t["icmp"],)),
    "icmp6": frozenset((_t["icmp6"],)),
    "unix": frozenset((UNIX,)),
    "packet": frozenset((PACKET,)),
    "netlink": frozenset((NETLINK,)),
    "mptcp": MPTCP_TABLES,
    "mptcp4": frozenset((_t["mptcp"],)),
    "mptcp6": frozenset((_t["mptcp6"],)),
    "sctp": SCTP_TABLES,
    "sctp4": frozenset((_t["sctp"],)),
    "sctp6": frozenset((_t["sctp6"],)),
    "vsock": frozenset((VSOCK,)),
    "xdp": frozenset((XDP,)),
    "all": frozenset(range(len(TABLES))),
}

# The kind that names exactly one table ("tcp" is both tables of tcp; "tcp4" is one).
EXACT_KIND: Dict[str, str] = {
    TABLES[next(iter(tables))]: kind for kind, tables in KINDS.items() if len(tables) == 1}

ALL_TABLES: FrozenSet[int] = KINDS["all"]

# The kernel's name of a socket's protocol (the system.sockprotoname attribute
# of /proc/PID/fd/N, as lsof reads it) -> the table that would list it.
PROTO_TABLES: Dict[str, str] = {
    "TCP": "tcp", "TCPv6": "tcp6", "UDP": "udp", "UDPv6": "udp6",
    "UDP-Lite": "udplite", "UDPLITEv6": "udplite6", "RAW": "raw", "RAWv6": "raw6",
    "PING": "icmp", "PINGv6": "icmp6", "UNIX": "unix", "UNIX-STREAM": "unix",
    "PACKET": "packet", "NETLINK": "netlink", "MPTCP": "mptcp", "MPTCPv6": "mptcp6",
    "SCTP": "sctp", "SCTPv6": "sctp6", "AF_VSOCK": "vsock", "XDP": "xdp",
}
