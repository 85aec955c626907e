"""netstat's table layout: the inet section and the unix section, aligned to the data.

Columns and headers are netstat's (net-tools); widths start at netstat's and
grow to fit the longest value, so nothing is ever truncated. Every value a
local user or the network can choose (process names, unix paths, host and
service names) is spelled by cli.fields.Formatter, as in --events.
"""
from typing import Dict, Iterable, List, Optional, Sequence

from .. import _tables as T
from .._records import Connection, NetNS
from .args import Options
from .fields import Formatter

_MODE_TITLE = {"listening": "(only servers)", "all": "(servers and established)",
               "connected": "(w/o servers)"}

# netstat prints raw sockets' state as the kernel's number (7 unconnected, 1 connected).
_RAW_STATE = {name: str(code) for code, name in enumerate(T.TCP_STATES) if code}
_RAW_STATE.update((name, str(code)) for code, name in T.DGRAM_STATES.items())
# and UDP's unconnected state as nothing
_DGRAM_STATE = {"NONE": ""}
_UNIX_STATE = {"LISTEN": "LISTENING", "NONE": ""}
_STATE_TEXT: Dict[str, Dict[str, str]] = {"tcp": {}, "tcp6": {}, "raw": _RAW_STATE, "raw6": _RAW_STATE}
# the families with a section of their own (args.OTHER_SECTIONS), titled as ss names them
_FAMILY_TITLE = {"vsock": "VSOCK", "xdp": "XDP"}
_OTHER = frozenset(_FAMILY_TITLE)
_TYPE_TEXT: Dict[object, str] = {}


def _type_text(t: object) -> str:
    """SOCK_STREAM -> "STREAM", as netstat's Type column; "-" when unknown."""
    s = _TYPE_TEXT[t] = t.name[5:] if t is not None else "-"  # type: ignore[attr-defined]
    return s


class Column:
    """A column: header, netstat's minimum width, right-aligned or not."""

    __slots__ = ("header", "width", "right")

    def __init__(self, header: str, width: int, right: bool = False) -> None:
        self.header, self.width, self.right = header, width, right


def layout(columns: Sequence[Column], data: Sequence[Sequence[str]]) -> str:
    """Header and rows from column-wise `data`, each column as wide as its widest value.

    No trailing blanks: the last column is never padded, and a row whose last
    value is empty ends after the previous column's value, not its padding.
    """
    n = len(columns)
    widths = [max(c.width, len(c.header)) for c in columns]
    for i in range(n - 1):
        w = max(map(len, data[i]), default=0)
        if w > widths[i]:
            widths[i] = w
    cells = ["%%%s%ds" % ("" if c.right else "-", w) for c, w in zip(columns, widths)]
    full = " ".join(cells[:-1] + ["%s"])
    out = [full % tuple(c.header for c in columns)]
    rows = list(zip(*data))
    if all(data[-1]):
        out += map(full.__mod__, rows)
    else:
        short = " ".join(cells[:-2] + ["%s"]) if n > 1 else "%s"
        out += [full % r if r[-1] else short % r[:-1] for r in rows]
    out.append("")
    return "\n".join(out)


class Table:
    """Renders connections as netstat does; keeps its formatter's name caches across refreshes."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.fmt = Formatter(opts)
        self.netns: Dict[int, str] = {}   # inode -> what the Net namespace column says

    def _tail_columns(self, cols: List[Column], data: List[List[str]],
                      conns: Sequence[Connection]) -> None:
        """The columns after State in the inet-like sections: -e's User and
        Inode, the Net namespace column, -p's PID/Program name."""
        if self.opts.extend:
            cols += [Column("User", 10), Column("Inode", 10)]
            data.append([self.fmt.user(c.uid) for c in conns])
            data.append([str(c.inode) for c in conns])
        self._netns_column(cols, data, conns)
        if self.opts.program:
            cols.append(Column("PID/Program name", 0))
            data.append(self.fmt.owner_column(conns))

    def _netns_column(self, cols: List[Column], data: List[List[str]],
                      conns: Sequence[Connection]) -> None:
        """The "Net namespace" column, when more than one namespace is shown."""
        if self.netns:
            cols.append(Column("Net namespace", 13))
            names = self.netns
            data.append([names.get(c.netns or 0) or str(c.netns or "-") for c in conns])

    # -- sections ------------------------------------------------------------

    def inet(self, conns: Sequence[Connection]) -> str:
        """The "Active Internet connections" section."""
        opts, fmt = self.opts, self.fmt
        cols = [Column("Proto", 5), Column("Recv-Q", 6, True), Column("Send-Q", 6, True),
                Column("Local Address", 23), Column("Foreign Address", 23), Column("State", 11)]
        protos = [c.proto for c in conns]
        la = [c.laddr for c in conns]
        ra = [c.raddr for c in conns]
        # this refresh's new addresses, looked up all at once, within the deadline
        fmt.lookup_hosts(la, ra)
        data = [protos, [str(c.rx_queue) for c in conns], [str(c.tx_queue) for c in conns],
                fmt.addresses(la, protos), fmt.addresses(ra, protos),  # type: ignore[arg-type]
                [_STATE_TEXT.get(p, _DGRAM_STATE).get(st, st) for p, st in zip(protos, (c.state for c in conns))]]
        self._tail_columns(cols, data, conns)
        return "Active Internet connections %s\n%s" % (_MODE_TITLE[opts.mode], layout(cols, data))

    def unix(self, conns: Sequence[Connection]) -> str:
        """The "Active UNIX domain sockets" section (netstat's, without RefCnt)."""
        opts, fmt = self.opts, self.fmt
        cols = [Column("Proto", 5), Column("Flags", 11), Column("Type", 10), Column("State", 13),
                Column("I-Node", 8)]
        states = [c.state for c in conns]
        data = [
            ["unix"] * len(conns),
            ["[ ACC ]" if st == "LISTEN" else "[ ]" for st in states],
            [_TYPE_TEXT.get(c.type) or _type_text(c.type) for c in conns],
            [_UNIX_STATE.get(st, st) for st in states],
            [str(c.inode) for c in conns],
        ]
        self._netns_column(cols, data, conns)
        if opts.program:
            cols.append(Column("PID/Program name", 20))
            data.append(fmt.owner_column(conns))
        cols.append(Column("Path", 0))
        data.append([fmt.path(p) for p in (c.laddr for c in conns)])  # type: ignore[arg-type]
        return "Active UNIX domain sockets %s\n%s" % (_MODE_TITLE[opts.mode], layout(cols, data))

    def other(self, family: str, conns: Sequence[Connection]) -> str:
        """A section of a family netstat does not list ("vsock", "xdp"): the inet
        section's columns, addresses as cli.fields spells them."""
        opts, fmt = self.opts, self.fmt
        cols = [Column("Proto", 5), Column("Recv-Q", 6, True), Column("Send-Q", 6, True),
                Column("Local Address", 23), Column("Foreign Address", 23), Column("State", 11)]
        data = [[c.proto for c in conns], [str(c.rx_queue) for c in conns],
                [str(c.tx_queue) for c in conns],
                [fmt.address(c.laddr, c.proto) for c in conns],
                [fmt.address(c.raddr, c.proto) for c in conns],
                [_DGRAM_STATE.get(c.state, c.state) for c in conns]]
        self._tail_columns(cols, data, conns)
        return "Active %s sockets %s\n%s" % (_FAMILY_TITLE[family], _MODE_TITLE[opts.mode],
                                           layout(cols, data))

    def render(self, conns: Iterable[Connection], namespaces: Optional[Dict[int, NetNS]] = None) -> str:
        """The sections the options ask for: inet, unix, then vsock and xdp; with
        more than one of `namespaces` (Snapshot.namespaces), a Net namespace column
        naming each by its first name (ip netns, container id) or its inode."""
        self.fmt.begin()
        self.netns = {} if not namespaces or len(namespaces) < 2 else {
            ns.inode: self.fmt.path(ns.names[0]) if ns.names else str(ns.inode)
            for ns in namespaces.values()}
        inet: List[Connection] = []
        unix: List[Connection] = []
        other: Dict[str, List[Connection]] = {f: [] for f in self.opts.other_sections}
        for c in conns:
            proto = c.proto
            if proto == "unix":
                unix.append(c)
            elif proto in _OTHER:
                other.setdefault(proto, []).append(c)
            else:
                inet.append(c)
        parts = []
        if self.opts.inet_section:
            parts.append(self.inet(inet))
        if self.opts.unix_section:
            parts.append(self.unix(unix))
        for family in self.opts.other_sections:
            parts.append(self.other(family, other[family]))
        return "".join(parts)
