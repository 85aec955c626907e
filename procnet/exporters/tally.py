"""What a poll comes to for metrics: the listeners and the socket counts,
kept up to date at the cost of what changed.

A :class:`procnet.Poller` hands back the *same* Connection objects for the
sockets that did not change since its previous poll (a new or changed socket
is a new object). So a :class:`Tally` remembers what each object contributed
-- its listener rows and its count keys -- and on the next poll takes out
what left and adds what came. A steady poll (the same objects in the same
order) costs one identity comparison per socket, in C; a poll with changes
costs a dict of the objects' ids and two set differences, in C, plus the
Python work for the changed sockets only.

Both exporters (prometheus.py, otel.py) read :attr:`Tally.listeners` and
:attr:`Tally.counts`; neither looks at every socket again.
"""
from operator import is_
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .._records import Connection
from .netns import netns_of

# (proto, address, port, process, netns, pid) -- every field text, "" where it
# has none: port for unix, process for a socket no readable process holds, pid
# unless asked for.
Row = Tuple[str, str, str, str, str, str]
# (proto, state, process); process None: no process we could read holds it.
Key = Tuple[str, str, Optional[str]]
_Contribution = Tuple[Tuple[Row, ...], Tuple[Key, ...]]
_NOTHING: _Contribution = ((), ())
_INTERN_MAX = 65536


def text(s: Optional[str]) -> str:
    """A name or path as label text: bytes that were not UTF-8 (kept by procnet
    as lone surrogates, which no metrics library can encode) become ``\\xNN``;
    everything else is kept as is, for the library to escape by its rules."""
    if s is None:
        return ""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return s


def poller_proc_root(poller: object) -> str:
    """The proc_root a Poller reads (the namespace its tables are read for)."""
    args = getattr(poller, "_args", None) or {}
    return str(args.get("proc_root", "/proc"))


class Tally:
    """The listeners and socket counts of the latest :meth:`update`.

    ``listeners``: :data:`Row` -> how many sockets give that row (more than one
    where several sockets have the same labels, as SO_REUSEPORT listeners of
    one program do: still one series). A listener is what
    :attr:`Connection.listening` says: a listening TCP or unix socket, or an
    unconnected bound datagram socket. A listener held by processes of several
    names gives a row per name (per pid with ``pid_label``).

    ``counts``: :data:`Key` -> sockets. A socket held by processes of several
    names counts once under each name; one no readable process holds counts
    under process None.

    ``keep``: a filter of the caller's (applied once per new socket object).
    ``netns``: Connection -> namespace text (default: :func:`netns_of` the
    host's /proc).
    """

    def __init__(self, *, pid_label: bool = False, keep: Optional[Callable[[Connection], bool]] = None,
                 netns: Optional[Callable[[Connection], str]] = None) -> None:
        self.pid_label = pid_label
        self.listeners: Dict[Row, int] = {}
        self.counts: Dict[Key, int] = {}
        self.listeners_version = 0           # +1 whenever a row appeared or went
        self.counts_version = 0              # +1 whenever a count changed
        self._keep = keep
        self._netns = netns if netns is not None else netns_of("/proc")
        self._seen: Dict[int, Tuple[Connection, _Contribution]] = {}
        self._last: Sequence[Connection] = ()
        self._intern: Dict[Tuple[Key, ...], Tuple[Key, ...]] = {}

    def update(self, conns: Sequence[Connection]) -> bool:
        """Bring the totals to `conns` (a poll's snapshot); True if they changed."""
        last = self._last
        if len(conns) == len(last) and all(map(is_, conns, last)):
            return False
        seen = self._seen
        # ids are unique among live objects, and every object in `seen` is
        # alive (held there): an id found in both is the same socket object
        now = dict(zip(map(id, conns), conns))
        before = (self.listeners_version, self.counts_version)
        for k in seen.keys() - now.keys():
            self._apply(seen.pop(k)[1], -1)
        for k in now.keys() - seen.keys():
            c = now[k]
            contrib = self._contribution(c)
            seen[k] = (c, contrib)
            self._apply(contrib, 1)
        self._last = conns
        return before != (self.listeners_version, self.counts_version)

    def _apply(self, contrib: _Contribution, n: int) -> None:
        rows, keys = contrib
        if not keys:
            return
        listeners, counts = self.listeners, self.counts
        for r in rows:
            v = listeners.get(r, 0) + n
            if v:
                listeners[r] = v
                if v == 1 and n == 1:
                    self.listeners_version += 1
            else:
                del listeners[r]
                self.listeners_version += 1
        for k in keys:
            v = counts.get(k, 0) + n
            if v:
                counts[k] = v
            else:
                del counts[k]
        self.counts_version += 1

    def _contribution(self, c: Connection) -> _Contribution:
        if self._keep is not None and not self._keep(c):
            return _NOTHING
        proto, state, owners = c.proto, c.state, c.owners
        names: List[str] = sorted({text(o.name) for o in owners})
        keys: Tuple[Key, ...] = tuple((proto, state, n) for n in names) or ((proto, state, None),)
        intern = self._intern
        if len(intern) > _INTERN_MAX:       # bounded; only sharing is lost
            intern.clear()
        keys = intern.setdefault(keys, keys)
        if not c.listening:
            return ((), keys)
        la = c.laddr
        if isinstance(la, tuple):           # Address(ip, port); other families' (id, port) alike
            addr, port = str(la[0]), str(la[1])
        else:                               # a unix path
            addr, port = text(str(la)), ""
        ns = self._netns(c)
        rows: Tuple[Row, ...]
        if not owners:
            rows = ((proto, addr, port, "", ns, ""),)
        elif self.pid_label:
            rows = tuple(sorted({(proto, addr, port, text(o.name), ns, str(o.pid)) for o in owners}))
        else:
            rows = tuple((proto, addr, port, n, ns, "") for n in names)
        return (rows, keys)
