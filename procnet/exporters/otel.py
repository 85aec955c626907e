"""OpenTelemetry: observable gauges of which process listens where, on a Meter.

>>> from opentelemetry import metrics                      # doctest: +SKIP
>>> handle = register(metrics.get_meter("procnet"), procnet.Poller(("inet", "unix")))

Instruments (``metrics=`` chooses the groups, as for Prometheus), with the
semantic-convention attribute names where they exist:

``procnet.socket.listening`` (listeners)
    1 per listener and process name: ``network.transport`` (``tcp``, ``udp``,
    ``udplite``, ``raw``, ``unix``...: the table name without its 6),
    ``network.type`` (``ipv4``/``ipv6``; IP only), ``network.local.address``,
    ``network.local.port`` (int; not for unix), ``process.executable.name``, ``procnet.netns`` (the
    network namespace inode), and ``process.pid`` with ``pid_label=True``.
``procnet.sockets`` (sockets)
    sockets per ``network.transport``, ``network.type``,
    ``network.connection.state`` (``established``, ``listen``, ``time_wait``...;
    unix and unconnected datagram states as procnet names them, lower case)
    and ``process.executable.name``.
``procnet.sockets.unowned`` (unowned)
    the same without the process: sockets no readable process holds.
``procnet.snapshot.complete``, ``procnet.denied_processes`` (status).

``process.executable.name`` is the kernel's name of the process (``comm``,
at most 15 bytes), as procnet's :class:`procnet.Owner` has it.

One collection takes one poll of the shared Poller: the first gauge called
in a collection polls, the others read that poll (each gauge reads each poll
once; a gauge asking again starts the next poll). Names and paths that are
not UTF-8 carry ``\\xNN`` for those bytes. Mind the SDK's cardinality limit
(2000 attribute sets per instrument by default): a host with more listeners
needs a View with a larger ``aggregation_cardinality_limit``.
"""
import threading
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

try:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("procnet.exporters.otel needs opentelemetry-api: "
                      "pip install 'procnet[otel]' (%s)" % e) from None

from .._records import Connection, Snapshot
from .netns import netns_of
from .tally import Key, Row, Tally, poller_proc_root

__all__ = ["METRICS", "Registration", "register"]

METRICS = ("listeners", "sockets", "unowned", "status")

# procnet's state names -> network.connection.state (semantic conventions)
_STATES = {
    "ESTABLISHED": "established", "SYN_SENT": "syn_sent", "SYN_RECV": "syn_received",
    "FIN_WAIT1": "fin_wait_1", "FIN_WAIT2": "fin_wait_2", "TIME_WAIT": "time_wait",
    "CLOSE": "closed", "CLOSE_WAIT": "close_wait", "LAST_ACK": "last_ack", "LISTEN": "listen",
    "CLOSING": "closing",
}
_Attrs = Dict[str, object]


_IP_TRANSPORTS = frozenset(("tcp", "udp", "udplite", "raw", "icmp", "mptcp", "sctp"))


def transport(proto: str) -> _Attrs:
    """``network.transport`` and, for IP, ``network.type`` of a procnet table name
    (``tcp6`` -> tcp, ipv6; ``unix`` -> unix; ``vsock`` -> vsock)."""
    base = proto[:-1] if proto.endswith("6") else proto
    if base not in _IP_TRANSPORTS:
        return {"network.transport": proto}
    return {"network.transport": base, "network.type": "ipv6" if base != proto else "ipv4"}


def connection_state(state: str) -> str:
    """``network.connection.state`` for a procnet state name."""
    return _STATES.get(state) or state.lower()


def listener_attributes(row: Row) -> _Attrs:
    """The attributes of one listener row (see tally.Row)."""
    proto, address, port, process, netns, pid = row
    a = transport(proto)
    a["network.local.address"] = address
    if port:
        a["network.local.port"] = int(port)
    a["process.executable.name"] = process
    a["procnet.netns"] = netns
    if pid:
        a["process.pid"] = int(pid)
    return a


def count_attributes(key: Key) -> _Attrs:
    """The attributes of one count key (see tally.Key)."""
    proto, state, process = key
    a = transport(proto)
    a["network.connection.state"] = connection_state(state)
    if process is not None:
        a["process.executable.name"] = process
    return a


class _Feed:
    """One poll per collection, shared by the gauges: each gauge reads each
    poll once; the first gauge to ask for a poll it has already read starts
    the next one."""

    def __init__(self, poller: object, tally: Tally) -> None:
        self.poller, self.tally = poller, tally
        self.lock = threading.Lock()
        self.snapshot: Optional[Snapshot] = None
        self._served: Set[str] = set()

    def read(self, gauge: str) -> Snapshot:
        """The current poll for `gauge` (call with the lock held)."""
        if self.snapshot is None or gauge in self._served:
            self.snapshot = self.poller.poll().snapshot     # type: ignore[attr-defined]
            self.tally.update(self.snapshot)
            self._served = set()
        self._served.add(gauge)
        return self.snapshot


class Registration:
    """What :func:`register` created: ``instruments`` by name, and the feed."""

    def __init__(self, feed: _Feed, instruments: Dict[str, object]) -> None:
        self._feed = feed
        self.instruments = instruments

    @property
    def last(self) -> Optional[Snapshot]:
        """The snapshot the latest observations came from."""
        return self._feed.snapshot


def register(meter: Meter, poller: object, *, metrics: Iterable[str] = METRICS, pid_label: bool = False,
             keep: Optional[Callable[[Connection], bool]] = None,
             netns: Optional[Callable[[Connection], str]] = None) -> Registration:
    """Create procnet's observable gauges on `meter`, fed by `poller` (a
    :class:`procnet.Poller`, used only by them from then on). Arguments as for
    :class:`procnet.exporters.prometheus.ProcnetCollector`."""
    chosen = tuple(metrics)
    bad = sorted(set(chosen) - set(METRICS))
    if bad:
        raise ValueError("metrics: unknown group(s) %s (valid: %s)" % (", ".join(bad), ", ".join(METRICS)))
    tally = Tally(pid_label=pid_label, keep=keep,
                  netns=netns if netns is not None else netns_of(poller_proc_root(poller)))
    feed = _Feed(poller, tally)

    def gauge(name: str, observe: Callable[[Snapshot], List[Observation]]) -> Callable:
        def callback(options: CallbackOptions) -> Iterator[Observation]:
            with feed.lock:
                out = observe(feed.read(name))
            return iter(out)
        return callback

    def listeners(snap: Snapshot) -> List[Observation]:
        return [Observation(1, listener_attributes(r)) for r in tally.listeners]

    def counts(owned: bool) -> Callable[[Snapshot], List[Observation]]:
        def observe(snap: Snapshot) -> List[Observation]:
            return [Observation(n, count_attributes(k)) for k, n in tally.counts.items()
                    if (k[2] is not None) == owned]
        return observe

    specs: List[Tuple[str, str, str, str, Callable[[Snapshot], List[Observation]]]] = [
        ("listeners", "procnet.socket.listening", "{socket}",
         "A listening socket and a process holding it (1 per listener and process name).", listeners),
        ("sockets", "procnet.sockets", "{socket}",
         "Sockets by transport, state and name of a process holding them.", counts(True)),
        ("unowned", "procnet.sockets.unowned", "{socket}",
         "Sockets no process readable by the exporter holds.", counts(False)),
        ("status", "procnet.snapshot.complete", "1",
         "1 when every process, table and line could be read.",
         lambda s: [Observation(1 if s.complete else 0)]),
        ("status", "procnet.denied_processes", "{process}",
         "Processes whose fd directory could not be read.",
         lambda s: [Observation(len(s.denied_pids))]),
    ]
    instruments: Dict[str, object] = {}
    for group, name, unit, doc, observe in specs:
        if group in chosen:
            instruments[name] = meter.create_observable_gauge(
                name, callbacks=[gauge(name, observe)], unit=unit, description=doc)
    return Registration(feed, instruments)
