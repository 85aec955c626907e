"""OpenTelemetry gauges (procnet.exporters.otel) collected by the SDK's
in-memory reader: the values equal a connections() snapshot of the same
moment, with semantic-convention attribute names, one poll per collection."""
import os
import socket

import pytest

import procnet
from procfs_tree import inet_line, le_words, make_tree, sock, unix_line

pytest.importorskip("opentelemetry.sdk.metrics", reason="opentelemetry-sdk is in the test extra")
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402

from procnet.exporters.otel import connection_state, register, transport  # noqa: E402

NAMES = {"procnet.socket.listening", "procnet.sockets", "procnet.sockets.unowned",
         "procnet.snapshot.complete", "procnet.denied_processes"}


def _order(av):
    return repr((sorted(av[0].items()), av[1]))


class CountingPoller:
    """A Poller that counts its polls."""

    def __init__(self, poller):
        self.poller, self.polls = poller, 0
        self._args = poller._args

    def poll(self):
        self.polls += 1
        return self.poller.poll()


def collect(reader):
    """name -> sorted list of (attributes, value)."""
    out = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if not m.name.startswith("procnet."):     # the SDK's own metrics (newer SDKs)
                    continue
                out[m.name] = sorted(((dict(p.attributes), p.value) for p in m.data.data_points),
                                     key=_order)
    return out


def setup(poller, **kw):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    reg = register(provider.get_meter("procnet-test"), poller, **kw)
    return reader, provider, reg


def expected(snap, netns=""):
    """What the gauges must say, computed straight from a snapshot."""
    listeners, counts, unowned = [], {}, {}
    for c in snap:
        names = sorted({o.name for o in c.owners})
        t = transport(c.proto)
        for n in names:
            k = tuple(sorted(dict(t, **{"network.connection.state": connection_state(c.state),
                                        "process.executable.name": n}).items()))
            counts[k] = counts.get(k, 0) + 1
        if not names:
            k = tuple(sorted(dict(t, **{"network.connection.state": connection_state(c.state)}).items()))
            unowned[k] = unowned.get(k, 0) + 1
        if c.listening:
            a = dict(t)
            if c.proto == "unix":
                a["network.local.address"] = c.laddr
            else:
                a["network.local.address"], a["network.local.port"] = c.laddr.ip, c.laddr.port
            a["procnet.netns"] = netns
            for n in names or [""]:
                listeners.append((dict(a, **{"process.executable.name": n}), 1))
    return {
        "procnet.socket.listening": sorted(listeners, key=_order),
        "procnet.sockets": sorted(((dict(k), v) for k, v in counts.items()), key=_order),
        "procnet.sockets.unowned": sorted(((dict(k), v) for k, v in unowned.items()), key=_order),
        "procnet.snapshot.complete": [({}, 1 if snap.complete else 0)],
        "procnet.denied_processes": [({}, len(snap.denied_pids))],
    }


def tcp_line(sl, ip, port, inode, st=0x0A):
    return inet_line(sl, "%s:%04X" % (le_words(socket.inet_aton(ip)), port), "00000000:0000", st, inode)


def test_fixture_values_equal_connections(impl, tmp_path):
    root = make_tree(str(tmp_path / "proc"), {
        "tcp": [tcp_line(0, "0.0.0.0", 80, 11), tcp_line(1, "127.0.0.1", 5432, 12),
                tcp_line(2, "127.0.0.1", 40000, 13, st=0x01), tcp_line(3, "0.0.0.0", 22, 14)],
        "udp": [tcp_line(0, "0.0.0.0", 53, 21, st=0x07)],
        "unix": [unix_line(31, "/run/app.sock", listening=True), unix_line(32, None, state=3)],
    }, {
        100: {"comm": "nginx", "fd": {3: sock(11), 4: sock(13)}},
        101: {"comm": "nginx", "fd": {3: sock(11)}},
        102: {"comm": "helper", "fd": {7: sock(11)}},
        200: {"comm": "postgres", "fd": {5: sock(12)}},
        300: {"comm": "dnsmasq", "fd": {4: sock(21)}},
        400: {"comm": 'app "x"\n', "fd": {3: sock(31), 4: sock(32)}},
    })
    kind = ("tcp4", "udp4", "unix")
    reader, provider, reg = setup(procnet.Poller(kind, proc_root=root, backend=impl.name))
    try:
        got = collect(reader)
        snap = impl.connections(kind, proc_root=root)
        assert set(got) == NAMES
        assert got == expected(snap)
        listen80 = [a for a, _ in got["procnet.socket.listening"] if a.get("network.local.port") == 80]
        assert sorted(a["process.executable.name"] for a in listen80) == ["helper", "nginx"]
        assert listen80[0]["network.transport"] == "tcp" and listen80[0]["network.type"] == "ipv4"
        assert ({"network.transport": "tcp", "network.type": "ipv4", "network.connection.state": "listen"}, 1) \
            in got["procnet.sockets.unowned"]
    finally:
        provider.shutdown()


def test_one_poll_per_collection_and_pid_attribute(impl, tmp_path):
    root = make_tree(str(tmp_path / "proc"), {"tcp": [tcp_line(0, "0.0.0.0", 80, 11)]},
                     {100: {"comm": "nginx", "fd": {3: sock(11)}}, 101: {"comm": "nginx", "fd": {3: sock(11)}}})
    poller = CountingPoller(procnet.Poller("tcp", proc_root=root, backend=impl.name))
    reader, provider, reg = setup(poller, pid_label=True)
    try:
        got = collect(reader)
        assert poller.polls == 1
        assert sorted(a["process.pid"] for a, _ in got["procnet.socket.listening"]) == [100, 101]
        collect(reader)
        collect(reader)
        assert poller.polls == 3
        assert reg.last is poller.poller.last
    finally:
        provider.shutdown()
    reader, provider, reg = setup(procnet.Poller("tcp", proc_root=root, backend=impl.name),
                                  metrics=("sockets",))
    try:
        assert set(collect(reader)) == {"procnet.sockets"}
    finally:
        provider.shutdown()
    with pytest.raises(ValueError, match="metrics"):
        setup(procnet.Poller("tcp", proc_root=root, backend=impl.name), metrics=("nope",))


@pytest.mark.live
def test_live_values_equal_connections(impl):
    """This process's own sockets (pid filter: nothing else on the host can
    change them between the two reads): the gauges equal connections()."""
    held = []
    try:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        cli = socket.create_connection(srv.getsockname())
        acc, _ = srv.accept()
        u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u6.bind(("::1", 0))
        held += [srv, cli, acc, u6]
        kind = ("tcp", "udp")
        reader, provider, reg = setup(procnet.Poller(kind, backend=impl.name, pid=os.getpid()))
        try:
            got = collect(reader)
            snap = impl.connections(kind, pid=os.getpid())
            ns = str(os.stat("/proc/self/ns/net").st_ino)
            assert {n: got.get(n, []) for n in NAMES} == expected(snap, netns=ns)   # none unowned
            ports = {a["network.local.port"] for a, _ in got["procnet.socket.listening"]}
            assert {srv.getsockname()[1], u6.getsockname()[1]} <= ports
        finally:
            provider.shutdown()
    finally:
        for s in held:
            s.close()


def test_transport_and_state_names():
    assert transport("tcp6") == {"network.transport": "tcp", "network.type": "ipv6"}
    assert transport("udplite") == {"network.transport": "udplite", "network.type": "ipv4"}
    assert transport("unix") == {"network.transport": "unix"}
    assert transport("vsock") == {"network.transport": "vsock"}          # not IP: no network.type
    assert [connection_state(s) for s in ("SYN_RECV", "FIN_WAIT1", "CLOSE", "LISTEN", "NONE", "CONNECTED")] == [
        "syn_received", "fin_wait_1", "closed", "listen", "none", "connected"]
