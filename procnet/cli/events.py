"""--events: one line per change (open, close, owners), as text or JSON lines.

Text: ``EVENT PROTO LOCAL REMOTE STATE OWNERS`` with owners as ``pid/name``
(comma-separated, ``-`` for none); an owners event adds ``was OWNERS``.
JSON: Change.as_dict() per line, i.e. ``{"event": ..., <every Connection field>}``
plus ``old_owners`` for an owners event.
"""
from typing import Any, List, Sequence

from .._contract import Connection
from ..poller import Change
from .jsonout import dumps
from .names import escape


def _owners(c: Connection) -> str:
    if not c.owners:
        return "-"
    return ",".join("%d/%s" % (o.pid, escape(o.name or "-")) for o in c.owners)


def _addr(a: Any) -> str:
    if a is None:
        return "-"
    if isinstance(a, tuple):
        ip = "[%s]" % a[0] if ":" in a[0] else a[0]
        return "%s:%s" % (ip, a[1] if a[1] else "*")
    if isinstance(a, str):
        return escape(a) if a else "-"
    return str(a)


def render_events(changes: Sequence[Change], opts: Any) -> str:
    if opts.json:
        return "".join(dumps(ch.as_dict()) for ch in changes)
    lines: List[str] = []
    for ch in changes:
        c = ch.conn
        line = "%-6s %-8s %s %s %s %s" % (ch.event, c.proto, _addr(c.laddr), _addr(c.raddr), c.state,
                                          _owners(c))
        if ch.old is not None:
            line += " was " + _owners(ch.old)
        lines.append(line)
    return "".join(l + "\n" for l in lines)
