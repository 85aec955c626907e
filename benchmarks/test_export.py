"""Metrics export (issue 17): what a Prometheus scrape costs against
psutil.net_connections(), which the OpenTelemetry system-metrics
instrumentation pays on every collection today.

Group "export scrape" per scale; the tables are psutil's "all" (tcp, tcp6,
udp, udp6, unix: procnet's ("inet", "unix")), owners by the /proc walk:
- scrape_cold: a new Poller and collector, one scrape (the text included);
- scrape_warm: a scrape with nothing changed since the last one -- one
  Poller.poll() plus prometheus-client's encoding of every series;
- scrape_churn_1pct: the same after 1 % of the sockets were replaced;
- scrape_warm_counts: a warm scrape without the listener series (every socket
  still counted): the difference to scrape_warm is prometheus-client's
  encoding of one series per listener, which the workload has many of
  (~1 socket in 7; a real server has tens);
- collect_warm: the collector alone (poll, tally, metric families), no text;
- poll_warm: Poller.poll() alone -- the floor of any scrape;
- otel_warm: the OpenTelemetry gauges collected by the SDK's in-memory reader;
- psutil: psutil.net_connections("all").
extra_info: the series a scrape carries (listener series and all).
"""
import pytest

import procnet

from conftest import group, psutil_or_skip

prometheus = pytest.importorskip("procnet.exporters.prometheus",
                                 reason="prometheus-client is not installed (pip install '.[bench]')")

KIND = ("inet", "unix")


def _poller():
    return procnet.Poller(KIND, backend="native", owner_source="procfs")


@pytest.fixture
def collector():
    c = prometheus.ProcnetCollector(_poller())
    prometheus.exposition(c)
    prometheus.exposition(c)
    yield c
    c.poller.close()


@pytest.fixture(scope="module")
def churner(workload):
    import os
    from test_poller import Churner
    c = Churner(max(1, workload.host_sockets // 100))
    yield c
    c.close()


def _series(benchmark, c, text):
    benchmark.extra_info["listener_series"] = len(c._listener_samples)
    benchmark.extra_info["series"] = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


def test_scrape_cold(benchmark, workload):
    group(benchmark, "export scrape", workload)

    def cold():
        c = prometheus.ProcnetCollector(_poller())
        try:
            return prometheus.exposition(c)
        finally:
            c.poller.close()
    text = benchmark(cold)
    assert b"procnet_up 1.0" in text


def test_scrape_warm(benchmark, workload, collector):
    group(benchmark, "export scrape", workload)
    text = benchmark(prometheus.exposition, collector)
    _series(benchmark, collector, text)
    assert text.count(b"procnet_listening_socket_info{") >= 1


def test_scrape_warm_counts(benchmark, workload):
    group(benchmark, "export scrape", workload)
    c = prometheus.ProcnetCollector(_poller(), metrics=("sockets", "unowned", "status"))
    prometheus.exposition(c)
    prometheus.exposition(c)
    try:
        text = benchmark(prometheus.exposition, c)
        _series(benchmark, c, text)
    finally:
        c.poller.close()


def test_scrape_churn_1pct(benchmark, workload, churner, collector):
    group(benchmark, "export scrape", workload)
    text = benchmark.pedantic(prometheus.exposition, args=(collector,), setup=churner.replace,
                              rounds=20, iterations=1)
    _series(benchmark, collector, text)


def test_collect_warm(benchmark, workload, collector):
    group(benchmark, "export scrape", workload)
    benchmark(collector.collect)


def test_poll_warm(benchmark, workload):
    group(benchmark, "export scrape", workload)
    p = _poller()
    p.poll()
    p.poll()
    try:
        benchmark(p.poll)
    finally:
        p.close()


def test_otel_warm(benchmark, workload):
    pytest.importorskip("opentelemetry.sdk.metrics", reason="opentelemetry-sdk is not installed")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import View
    from procnet.exporters.otel import register
    group(benchmark, "export scrape", workload)
    reader = InMemoryMetricReader()
    # every listener is an attribute set: lift the SDK's default limit of 2000
    # (where the SDK has one: older releases, as on CPython 3.9, have no such limit)
    try:
        view = View(instrument_name="procnet.*", aggregation_cardinality_limit=200000)
    except TypeError:
        view = View(instrument_name="procnet.*")
    provider = MeterProvider(metric_readers=[reader], views=[view])
    poller = _poller()
    register(provider.get_meter("procnet-bench"), poller)
    reader.get_metrics_data()
    reader.get_metrics_data()
    try:
        benchmark(reader.get_metrics_data)
    finally:
        provider.shutdown()
        poller.close()


def test_psutil(benchmark, workload):
    psutil = psutil_or_skip()
    group(benchmark, "export scrape", workload)
    benchmark(psutil.net_connections, "all")
