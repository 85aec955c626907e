"""Prometheus: a prometheus-client collector of which process listens where.

>>> from prometheus_client import CollectorRegistry, generate_latest   # doctest: +SKIP
>>> registry = CollectorRegistry()
>>> registry.register(ProcnetCollector(procnet.Poller(("inet", "unix"))))
>>> print(generate_latest(registry).decode())

Each scrape takes one :meth:`procnet.Poller.poll` and yields (``metrics=``
chooses the groups, all by default):

``listeners``
    ``procnet_listening_socket_info{proto, address, port, process, netns} 1``:
    one series per listener (per listener and process name; and per pid with
    ``pid_label=True`` -- off by default: pids churn, and every restart would
    start new series).
``sockets``
    ``procnet_sockets{proto, state, process}``: sockets per table, state and
    process name (a socket held by processes of several names counts under each).
``unowned``
    ``procnet_sockets_unowned{proto, state}``: sockets no process we could read
    holds (kernel sockets, TIME_WAIT, processes in ``denied_pids``).
``status``
    ``procnet_snapshot_complete`` (0/1: see :attr:`procnet.Snapshot.complete`),
    ``procnet_denied_processes``, ``procnet_scrape_duration_seconds`` (the
    poll and the aggregation, not the exposition), and
    ``procnet_source_info{table, source, owner_source, backend} 1``.

``procnet_up`` is 1, or 0 when the poll failed (a ``ProcNetError``: the
proc_root went away, a source insisted on cannot serve); the next scrape
tries again.

Label values are escaped by prometheus-client (backslash, double quote,
newline); bytes of a name or path that are not UTF-8 become ``\\xNN``. What a
scrape costs beyond the poll grows with what changed (see tally.py), and the
listener series are built once and reused until a listener comes or goes.
"""
import logging
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

try:
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.registry import CollectorRegistry
    from prometheus_client.exposition import generate_latest
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("procnet.exporters.prometheus needs prometheus-client: "
                      "pip install 'procnet[prometheus]' (%s)" % e) from None

from .._records import Connection, Snapshot
from .._errors import ProcNetError
from .netns import netns_of
from .tally import Row, Tally, poller_proc_root

__all__ = ["METRICS", "ProcnetCollector", "exposition"]

METRICS = ("listeners", "sockets", "unowned", "status")
"""The metric groups, in the order they are exposed."""

LISTENER_LABELS = ("proto", "address", "port", "process", "netns")
_log = logging.getLogger("procnet.exporters")

_DOCS = {
    "procnet_listening_socket_info": "A listening socket (TCP/unix listener, bound unconnected datagram "
                                     "socket) and the name of a process holding it.",
    "procnet_sockets": "Sockets by table, state and name of a process holding them.",
    "procnet_sockets_unowned": "Sockets no process readable by the exporter holds.",
    "procnet_snapshot_complete": "1 when every process, table and line could be read.",
    "procnet_denied_processes": "Processes whose fd directory could not be read.",
    "procnet_scrape_duration_seconds": "Time this scrape took to poll and aggregate.",
    "procnet_source_info": "Which source listed each socket table and how owners were found.",
    "procnet_up": "1 when the poll succeeded.",
}


def _family(name: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, _DOCS[name], labels=list(labels))


class ProcnetCollector:
    """A prometheus-client collector: one ``poller.poll()`` per scrape.

    Args:
        poller: a :class:`procnet.Poller` (its kind and filters choose the
            sockets); the collector is its only user from then on.
        metrics: which groups of :data:`METRICS`.
        pid_label: add ``pid`` to the listener series.
        keep: a filter of one's own on each Connection (applied once per new
            or changed socket, not per scrape).
        netns: Connection -> namespace label (default: the namespace the
            poller's proc_root lists).

    Thread-safe: scrapes are serialised.
    """

    def __init__(self, poller: object, *, metrics: Iterable[str] = METRICS, pid_label: bool = False,
                 keep: Optional[Callable[[Connection], bool]] = None,
                 netns: Optional[Callable[[Connection], str]] = None) -> None:
        chosen = tuple(metrics)
        bad = sorted(set(chosen) - set(METRICS))
        if bad:
            raise ValueError("metrics: unknown group(s) %s (valid: %s)" % (", ".join(bad), ", ".join(METRICS)))
        self.metrics = tuple(m for m in METRICS if m in chosen)
        self.pid_label = pid_label
        self.poller = poller
        self.error: Optional[ProcNetError] = None       # why the latest poll failed, if it did
        self._tally = Tally(pid_label=pid_label, keep=keep,
                            netns=netns if netns is not None else netns_of(poller_proc_root(poller)))
        self._lock = threading.Lock()
        self._labels = LISTENER_LABELS + (("pid",) if pid_label else ())
        self._builder = _family("procnet_listening_socket_info", self._labels)
        self._row_samples: Dict[Row, object] = {}
        self._listener_samples: List[object] = []
        self._owned_samples: List[object] = []
        self._unowned_samples: List[object] = []
        self._seen_versions = (-1, -1)

    def describe(self) -> List[Metric]:
        """The metric families, without samples (for the registry's name checks)."""
        return self._families(None, 0.0)

    def collect(self) -> List[Metric]:
        """Poll once and return every chosen metric family."""
        with self._lock:
            t0 = time.perf_counter()
            try:
                snap = self.poller.poll().snapshot       # type: ignore[attr-defined]
            except ProcNetError as e:
                if self.error is None or str(e) != str(self.error):    # once per distinct failure
                    _log.warning("procnet: poll failed: %s", " ".join(str(e).split()))
                self.error = e
                return self._families(None, time.perf_counter() - t0)
            self.error = None
            self._update(snap)
            return self._families(snap, time.perf_counter() - t0)

    def _update(self, snap: Snapshot) -> None:
        t = self._tally
        t.update(snap)
        lv, cv = t.listeners_version, t.counts_version
        if "listeners" in self.metrics and lv != self._seen_versions[0]:
            self._sync_listeners()
        if cv != self._seen_versions[1]:
            owned, unowned = [], []
            for (proto, state, process), n in t.counts.items():
                if process is None:
                    unowned.append(((proto, state), n))
                else:
                    owned.append(((proto, state, process), n))
            self._owned_samples = self._samples("procnet_sockets", ("proto", "state", "process"), owned)
            self._unowned_samples = self._samples("procnet_sockets_unowned", ("proto", "state"), unowned)
        self._seen_versions = (lv, cv)

    def _sync_listeners(self) -> None:
        """Samples for new listener rows, none for rows gone; the others are reused."""
        rows, samples, b = self._tally.listeners, self._row_samples, self._builder
        for r in samples.keys() - rows.keys():
            del samples[r]
        width = len(self._labels)
        for r in rows.keys() - samples.keys():
            b.add_metric(r[:width], 1)
            samples[r] = b.samples.pop()
        self._listener_samples = list(samples.values())     # a new list: a published one never changes

    @staticmethod
    def _samples(name: str, labels: Sequence[str], values: List) -> List[object]:
        f = _family(name, labels)
        for lv, n in sorted(values):
            f.add_metric(lv, n)
        return f.samples

    def _families(self, snap: Optional[Snapshot], took: float) -> List[Metric]:
        out: List[Metric] = []
        ok = snap is not None
        if "listeners" in self.metrics:
            f = _family("procnet_listening_socket_info", self._labels)
            if ok:
                f.samples = self._listener_samples
            out.append(f)
        if "sockets" in self.metrics:
            f = _family("procnet_sockets", ("proto", "state", "process"))
            if ok:
                f.samples = self._owned_samples
            out.append(f)
        if "unowned" in self.metrics:
            f = _family("procnet_sockets_unowned", ("proto", "state"))
            if ok:
                f.samples = self._unowned_samples
            out.append(f)
        if "status" in self.metrics:
            complete = _family("procnet_snapshot_complete")
            denied = _family("procnet_denied_processes")
            duration = _family("procnet_scrape_duration_seconds")
            source = _family("procnet_source_info", ("table", "source", "owner_source", "backend"))
            if snap is not None:
                complete.add_metric((), 1 if snap.complete else 0)
                denied.add_metric((), len(snap.denied_pids))
                for table, src in sorted(snap.sources.items()):
                    source.add_metric((table, src, snap.owner_source, snap.backend), 1)
            duration.add_metric((), took)
            out += [complete, denied, duration, source]
        up = _family("procnet_up")
        up.add_metric((), 1 if ok else 0)
        out.append(up)
        return out


def exposition(collector: ProcnetCollector) -> bytes:
    """One scrape in Prometheus's text format, through prometheus-client's own
    encoder (for a textfile collector: ``procnet --format prom``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
