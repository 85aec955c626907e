"""--events: one line per change (open, close, owners), as text or JSON lines.

Text: ``EVENT PROTO LOCAL REMOTE STATE OWNERS``, an owners event followed by
``was OWNERS``: addresses and owners spelled as in the table (cli.fields; names
unless -n), every value one whitespace-separated field -- spaces in unix paths
and process names escaped as ``\\x20``, ``-`` for no address or no owner.
JSON: Change.as_dict() per line, i.e. ``{"event": ..., <every Connection field>}``
plus ``old_owners`` for an owners event (fields.EVENT_KEYS).
"""
from typing import Any, List, Optional, Sequence

from ..poller import Change
from .fields import Formatter
from .jsonout import dumps


class EventWriter:
    """Renders the changes of each refresh; keeps its formatter's name caches across refreshes."""

    def __init__(self, opts: Any) -> None:
        self.opts = opts
        self.fmt: Optional[Formatter] = None if opts.json else Formatter(opts, split_fields=True)

    def render(self, changes: Sequence[Change]) -> str:
        """The lines for these changes ("" for none)."""
        fmt = self.fmt
        if fmt is None:
            return "".join(dumps(ch.as_dict()) for ch in changes)
        fmt.begin()
        if fmt.hosts is not None:             # this refresh's new hosts, looked up at once
            conns = [ch.conn for ch in changes]
            fmt.lookup_hosts([c.laddr for c in conns], [c.raddr for c in conns])
        lines: List[str] = []
        for ch in changes:
            c = ch.conn
            line = "%-6s %-8s %s %s %s %s" % (ch.event, c.proto, fmt.address(c.laddr, c.proto),
                                              fmt.address(c.raddr, c.proto), c.state, fmt.owners(c.owners))
            if ch.old is not None:
                line += " was " + fmt.owners(ch.old.owners, earlier=True)
            lines.append(line)
        return "".join(l + "\n" for l in lines)

