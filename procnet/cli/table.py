"""netstat's table layout: the inet section and the unix section, aligned to the data.

Columns and headers are netstat's (net-tools); widths start at netstat's and
grow to fit the longest value, so nothing is ever truncated. Every name a
local user can choose (process names, unix paths) and every name from outside
(host and service names) goes through names.escape().
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .._contract import Connection, Owner
from .args import Options
from .names import Hosts, Protocols, Services, Users, escape

_MODE_TITLE = {"listening": "(only servers)", "all": "(servers and established)",
               "connected": "(w/o servers)"}

# netstat prints raw sockets' state as the kernel's number (7 unconnected, 1 connected).
_RAW_STATE = {"NONE": "7", "ESTABLISHED": "1", "LISTEN": "10", "CLOSE": "7"}
# and UDP's unconnected state as nothing
_DGRAM_STATE = {"NONE": ""}
_UNIX_STATE = {"LISTEN": "LISTENING", "NONE": ""}
_SERVICE_PROTO = {"tcp": "tcp", "tcp6": "tcp", "udp": "udp", "udp6": "udp",
                  "udplite": "udp", "udplite6": "udp"}
_RAW = frozenset(("raw", "raw6"))


class Column:
    """A column: header, netstat's minimum width, right-aligned or not."""

    __slots__ = ("header", "width", "right")

    def __init__(self, header: str, width: int, right: bool = False) -> None:
        self.header, self.width, self.right = header, width, right


def layout(columns: Sequence[Column], rows: List[Tuple[str, ...]]) -> str:
    """Header and rows, each column as wide as its widest value; no trailing blanks.

    The last column is never padded; a row whose last value is empty ends
    after the previous column's value, not after its padding.
    """
    n = len(columns)
    widths = [max(c.width, len(c.header)) for c in columns]
    for i in range(n - 1):
        w = max(map(len, (r[i] for r in rows)), default=0)
        if w > widths[i]:
            widths[i] = w
    cells = ["%%%s%ds" % ("" if c.right else "-", w) for c, w in zip(columns, widths)]
    full = " ".join(cells[:-1] + ["%s"])
    short = " ".join(cells[:-2] + ["%s"]) if n > 1 else "%s"    # last value empty
    out = [full % tuple(c.header for c in columns)]
    for r in rows:
        out.append(full % r if r[-1] else short % r[:-1])
    out.append("")
    return "\n".join(out)


class Table:
    """Renders connections as netstat does; keeps its name caches across refreshes."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.services = Services()
        self.protocols = Protocols()
        self.users = Users()
        self.hosts = Hosts()
        self._hosts_text: Dict[str, str] = {}
        self._ports_text: Dict[Tuple[int, str], str] = {}
        self._owner_text: Dict[Tuple[int, Optional[str]], str] = {}
        self._paths: Dict[str, str] = {}

    # -- cells ---------------------------------------------------------------

    def _host(self, ip: str) -> str:
        s = self._hosts_text.get(ip)
        if s is None:
            name = None if self.opts.numeric_hosts else self.hosts.name(ip)
            s = name or ("[%s]" % ip if ":" in ip else ip)
            if name is not None or self.opts.numeric_hosts:   # final: no lookup in flight
                self._hosts_text[ip] = s
        return s

    def _port(self, port: int, proto: str) -> str:
        key = (port, proto)
        s = self._ports_text.get(key)
        if s is None:
            if port == 0:
                s = "*"
            elif self.opts.numeric_ports:
                s = str(port)
            elif proto in _RAW:
                s = self.protocols.name(port)
            elif proto in _SERVICE_PROTO:
                s = self.services.name(port, _SERVICE_PROTO[proto])
            else:
                s = str(port)
            self._ports_text[key] = s
        return s

    def _owners(self, owners: Sequence[Owner]) -> str:
        if not owners:
            return "-"
        cache = self._owner_text
        parts = []
        last = -1
        for o in owners:          # sorted by (pid, fd): each pid once, in order
            if o.pid == last:
                continue
            last = o.pid
            key = (o.pid, o.name)
            s = cache.get(key)
            if s is None:
                s = cache[key] = "%d/%s" % (o.pid, "-" if o.name is None else escape(o.name))
            parts.append(s)
        return parts[0] if len(parts) == 1 else ",".join(parts)

    @staticmethod
    def _state(proto: str, state: str) -> str:
        if proto in ("tcp", "tcp6"):
            return state
        if proto in _RAW:
            return _RAW_STATE.get(state, state)
        return _DGRAM_STATE.get(state, state)

    # -- sections ------------------------------------------------------------

    def inet(self, conns: Sequence[Connection]) -> str:
        """The "Active Internet connections" section."""
        opts = self.opts
        cols = [Column("Proto", 5), Column("Recv-Q", 6, True), Column("Send-Q", 6, True),
                Column("Local Address", 23), Column("Foreign Address", 23), Column("State", 11)]
        if opts.extend:
            cols += [Column("User", 10), Column("Inode", 10)]
        if opts.program:
            cols.append(Column("PID/Program name", 0))
        if not opts.numeric_hosts:
            # this refresh's new addresses, looked up all at once, within the deadline
            fresh = {a.ip for c in conns for a in (c.laddr, c.raddr)}  # type: ignore[union-attr]
            fresh.difference_update(self._hosts_text)
            if fresh:
                self.hosts.prepare(fresh)
        host, port, state_of = self._host, self._port, self._state
        user = None if not opts.extend else (str if opts.numeric_users else self.users.name)
        owners = self._owners if opts.program else None
        rows = []
        for c in conns:
            proto = c.proto
            la, ra = c.laddr, c.raddr
            row = [proto, str(c.rx_queue), str(c.tx_queue),
                   host(la.ip) + ":" + port(la.port, proto),   # type: ignore[union-attr]
                   host(ra.ip) + ":" + port(ra.port, proto),   # type: ignore[union-attr]
                   state_of(proto, c.state)]
            if user is not None:
                uid = c.uid
                row += ["-" if uid is None else user(uid), str(c.inode)]
            if owners is not None:
                row.append(owners(c.owners))
            rows.append(tuple(row))
        return "Active Internet connections %s\n%s" % (_MODE_TITLE[opts.mode], layout(cols, rows))

    def unix(self, conns: Sequence[Connection]) -> str:
        """The "Active UNIX domain sockets" section (netstat's, without RefCnt)."""
        opts = self.opts
        cols = [Column("Proto", 5), Column("Flags", 11), Column("Type", 10), Column("State", 13),
                Column("I-Node", 8)]
        if opts.program:
            cols.append(Column("PID/Program name", 20))
        cols.append(Column("Path", 0))
        owners = self._owners if opts.program else None
        paths = self._paths
        if len(paths) > 100000:
            paths.clear()
        rows = []
        for c in conns:
            state = c.state
            st = c.type
            path = c.laddr
            p = paths.get(path)     # type: ignore[arg-type]
            if p is None:
                p = paths[path] = escape(path)  # type: ignore[index,arg-type]
            row = ["unix", "[ ACC ]" if state == "LISTEN" else "[ ]",
                   st.name[5:] if st is not None else "-",
                   _UNIX_STATE.get(state, state), str(c.inode)]
            if owners is not None:
                row.append(owners(c.owners))
            row.append(p)
            rows.append(tuple(row))
        return "Active UNIX domain sockets %s\n%s" % (_MODE_TITLE[opts.mode], layout(cols, rows))

    def render(self, conns: Iterable[Connection]) -> str:
        """Both sections, as the options ask."""
        inet: List[Connection] = []
        unix: List[Connection] = []
        for c in conns:
            (unix if c.proto == "unix" else inet).append(c)
        parts = []
        if self.opts.inet_section:
            parts.append(self.inet(inet))
        if self.opts.unix_section:
            parts.append(self.unix(unix))
        if len(self._ports_text) > 200000:
            self._ports_text.clear()
        if len(self._owner_text) > 100000:
            self._owner_text.clear()
        if len(self._hosts_text) > 100000:
            self._hosts_text.clear()
        return "".join(parts)
