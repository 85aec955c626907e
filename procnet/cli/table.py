"""netstat's table layout: the inet section and the unix section, aligned to the data.

Columns and headers are netstat's (net-tools); widths start at netstat's and
grow to fit the longest value, so nothing is ever truncated. Every name a
local user can choose (process names, unix paths) and every name from outside
(host and service names) goes through names.escape().
"""
from typing import Any, Dict, Iterable, List, Sequence, Tuple

from .. import _tables as T
from .._contract import Connection, Owner
from .args import Options
from .names import Hosts, Protocols, Services, Users, escape

_MODE_TITLE = {"listening": "(only servers)", "all": "(servers and established)",
               "connected": "(w/o servers)"}

# netstat prints raw sockets' state as the kernel's number (7 unconnected, 1 connected).
_RAW_STATE = {name: str(code) for code, name in enumerate(T.TCP_STATES) if code}
_RAW_STATE.update((name, str(code)) for code, name in T.DGRAM_STATES.items())
# and UDP's unconnected state as nothing
_DGRAM_STATE = {"NONE": ""}
_UNIX_STATE = {"LISTEN": "LISTENING", "NONE": ""}
_SERVICE_PROTO = {"tcp": "tcp", "tcp6": "tcp", "udp": "udp", "udp6": "udp",
                  "udplite": "udp", "udplite6": "udp"}
_RAW = frozenset(("raw", "raw6"))
_STATE_TEXT: Dict[str, Dict[str, str]] = {"tcp": {}, "tcp6": {}, "raw": _RAW_STATE, "raw6": _RAW_STATE}
_TYPE_TEXT: Dict[object, str] = {}


def _type_text(t: object) -> str:
    """SOCK_STREAM -> "STREAM", as netstat's Type column; "-" when unknown."""
    s = _TYPE_TEXT[t] = t.name[5:] if t is not None else "-"  # type: ignore[attr-defined]
    return s


def _escape_into(cache: Dict[str, str], s: str) -> str:
    e = cache[s] = escape(s)
    return e


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
    """Renders connections as netstat does; keeps its name caches across refreshes."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.services = Services()
        self.protocols = Protocols()
        self.users = Users()
        self.hosts = Hosts() if not opts.numeric_hosts else None
        self._hosts_text: Dict[str, str] = {}
        self._ports_text: Dict[Tuple[int, str], str] = {}
        self._owner_text: Dict[int, str] = {}     # per snapshot: pids are reused
        self._paths: Dict[str, str] = {}

    # -- cells ---------------------------------------------------------------

    def _host(self, ip: str) -> str:
        s = self._hosts_text.get(ip)
        if s is None:
            name = None if self.hosts is None else self.hosts.name(ip)
            s = name or ("[%s]" % ip if ":" in ip else ip)
            if name is not None or self.hosts is None:   # final: no lookup in flight
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

    def _owners(self, owners: Sequence[Owner], cache: Dict[int, str]) -> str:
        """ "pid/name,pid/name": each pid once, in pid order; "-" for none.

        `cache` maps pid -> "pid/name" for one snapshot (a pid has one name there).
        """
        if not owners:
            return "-"
        parts = []
        last = -1
        for o in owners:          # sorted by (pid, fd)
            pid = o.pid
            if pid == last:
                continue
            last = pid
            s = cache.get(pid)
            if s is None:
                s = cache[pid] = "%d/%s" % (pid, "-" if o.name is None else escape(o.name))
            parts.append(s)
        return parts[0] if len(parts) == 1 else ",".join(parts)

    # -- sections ------------------------------------------------------------

    def inet(self, conns: Sequence[Connection]) -> str:
        """The "Active Internet connections" section."""
        opts = self.opts
        cols = [Column("Proto", 5), Column("Recv-Q", 6, True), Column("Send-Q", 6, True),
                Column("Local Address", 23), Column("Foreign Address", 23), Column("State", 11)]
        protos = [c.proto for c in conns]
        la = [c.laddr for c in conns]
        ra = [c.raddr for c in conns]
        if self.hosts is not None:
            # this refresh's new addresses, looked up all at once, within the deadline
            fresh = {a.ip for a in la}                    # type: ignore[union-attr]
            fresh.update(a.ip for a in ra)                # type: ignore[union-attr]
            fresh.difference_update(self._hosts_text)
            if fresh:
                self.hosts.prepare(fresh)
        data = [protos, [str(c.rx_queue) for c in conns], [str(c.tx_queue) for c in conns],
                self._addresses(la, protos), self._addresses(ra, protos),
                [_STATE_TEXT.get(p, _DGRAM_STATE).get(st, st) for p, st in zip(protos, (c.state for c in conns))]]
        if opts.extend:
            cols += [Column("User", 10), Column("Inode", 10)]
            user = str if opts.numeric_users else self.users.name
            data.append(["-" if c.uid is None else user(c.uid) for c in conns])
            data.append([str(c.inode) for c in conns])
        if opts.program:
            cols.append(Column("PID/Program name", 0))
            data.append(self._owner_column(conns))
        return "Active Internet connections %s\n%s" % (_MODE_TITLE[opts.mode], layout(cols, data))

    def _addresses(self, addrs: Sequence[Any], protos: Sequence[str]) -> List[str]:
        """"host:port" for each address; the port named as its table's service."""
        hosts, host = self._hosts_text, self._host
        if self.opts.numeric_ports:
            return [(hosts.get(a.ip) or host(a.ip)) + (":%d" % a.port if a.port else ":*")
                    for a in addrs]
        ports, port = self._ports_text, self._port
        return [(hosts.get(a.ip) or host(a.ip)) + ":" + (ports.get((a.port, p)) or port(a.port, p))
                for a, p in zip(addrs, protos)]

    def _owner_column(self, conns: Sequence[Connection]) -> List[str]:
        """The PID/Program name values: distinct pids, each once, or "-"."""
        cache = self._owner_text
        owners = self._owners
        out = []
        for c in conns:
            os_ = c.owners
            if len(os_) == 1:                 # the common case, inline
                s = cache.get(os_[0][0])
                out.append(s if s is not None else owners(os_, cache))
            else:
                out.append(owners(os_, cache))
        return out

    def unix(self, conns: Sequence[Connection]) -> str:
        """The "Active UNIX domain sockets" section (netstat's, without RefCnt)."""
        opts = self.opts
        cols = [Column("Proto", 5), Column("Flags", 11), Column("Type", 10), Column("State", 13),
                Column("I-Node", 8)]
        paths = self._paths
        if len(paths) > 100000:
            paths.clear()
        paths[""] = ""                        # unnamed: the most common
        states = [c.state for c in conns]
        data = [
            ["unix"] * len(conns),
            ["[ ACC ]" if st == "LISTEN" else "[ ]" for st in states],
            [_TYPE_TEXT.get(c.type) or _type_text(c.type) for c in conns],
            [_UNIX_STATE.get(st, st) for st in states],
            [str(c.inode) for c in conns],
        ]
        if opts.program:
            cols.append(Column("PID/Program name", 20))
            data.append(self._owner_column(conns))
        cols.append(Column("Path", 0))
        data.append([paths.get(p) or _escape_into(paths, p)  # type: ignore[arg-type]
                     for p in (c.laddr for c in conns)])
        return "Active UNIX domain sockets %s\n%s" % (_MODE_TITLE[opts.mode], layout(cols, data))

    def render(self, conns: Iterable[Connection]) -> str:
        """Both sections, as the options ask."""
        self._owner_text.clear()
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
        if len(self._hosts_text) > 100000:
            self._hosts_text.clear()
        return "".join(parts)
