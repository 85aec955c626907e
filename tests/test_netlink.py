"""The netlink sock_diag source: parity with its Python twin, agreement with the
/proc/net text on the live host, per-table fallback, and filters pushed down."""
import os
import socket

import pytest

import procnet
from procnet import _api, _request
from procfs_tree import inet_line, make_tree

pytestmark = pytest.mark.live




def mine(snap, live):
    want = set(live.expected())
    return {c.inode: c for c in snap if c.inode in want}


def comparable(c):
    """The fields both sources must agree on (see README: source differences)."""
    d = c.as_dict()
    if c.proto == "unix":
        d.pop("uid")                          # netlink knows it, the text does not
        d.pop("tx_queue"), d.pop("rx_queue")  # text prints no queues for unix
    if c.proto == "netlink":
        d.pop("type")                         # netlink knows it, the text does not
    if c.state == "LISTEN":
        d.pop("tx_queue", None)               # netlink: the backlog; text: 0
    return d


def test_netlink_serves_what_it_can(impl, live):
    snap = impl.connections("all", source="auto")
    for t in ("tcp", "tcp6", "udp", "udp6", "unix"):
        assert snap.sources[t] == "netlink", snap.sources
    # ping sockets have no sock_diag handler in Linux: always text
    assert snap.sources["icmp"] == snap.sources["icmp6"] == "procfs"


def test_native_and_pure_netlink_agree(both, live):
    a, b = (mine(i.connections("all", source="auto"), live) for i in both)
    assert {k: c.as_tuple() for k, c in a.items()} == {k: c.as_tuple() for k, c in b.items()}
    assert len(a) == len(live.expected())


def test_netlink_and_text_agree(impl, live):
    nl = mine(impl.connections("all", source="auto"), live)
    tx = mine(impl.connections("all", source="procfs"), live)
    assert set(nl) == set(tx) == set(live.expected())
    for inode in nl:
        assert comparable(nl[inode]) == comparable(tx[inode]), live.expected()[inode][0]


def test_documented_differences(impl, live):
    nl = {c.inode: c for c in impl.connections("all", source="auto")}
    tx = {c.inode: c for c in impl.connections("all", source="procfs")}
    lst = live.inode("tcp_listen")
    assert tx[lst].tx_queue == 0 and nl[lst].tx_queue == 8      # listen(8): the backlog
    ux = live.inode("unix_stream")
    assert tx[ux].uid is None and nl[ux].uid == os.geteuid()
    if "netlink" in live.socks:
        n = live.inode("netlink")
        assert tx[n].type is None and nl[n].type == socket.SOCK_RAW


def test_per_table_fallback_is_recorded(impl, live):
    q = _request.make_query("all", owners=True, proc_root="/proc", source="auto",
                          netlink_deny=["tcp", "unix"])
    snap = _api._connections(q, impl.name)
    assert snap.sources["tcp"] == "procfs" and snap.sources["unix"] == "procfs"
    assert snap.sources["tcp6"] == "netlink" and snap.sources["udp"] == "netlink"
    got = mine(snap, live)
    assert set(got) == set(live.expected())


def test_forced_netlink_failure_is_an_error(impl):
    q = _request.make_query("tcp", owners=False, proc_root="/proc", source="netlink", netlink_deny=["tcp6"])
    with pytest.raises(procnet.ProcNetError) as ei:
        _api._connections(q, impl.name)
    assert "tcp6" in str(ei.value) and "permitted" in str(ei.value)
    with pytest.raises(procnet.ProcNetError):
        impl.connections("icmp", source="netlink")


def test_fixture_trees_use_text(impl, tmp_path):
    make_tree(str(tmp_path), net={"tcp": [inet_line(0, "0100007F:0050", "00000000:0000", 10, 5)]})
    snap = impl.connections("tcp", proc_root=str(tmp_path), source="auto")
    assert snap.sources == {"tcp": "procfs", "tcp6": "procfs"}
    with pytest.raises(procnet.ProcNetError) as ei:
        impl.connections("tcp", proc_root=str(tmp_path), source="netlink")
    assert str(tmp_path) in str(ei.value)


def test_source_env_var(impl, monkeypatch):
    monkeypatch.setenv("PROCNET_SOURCE", "procfs")
    assert set(impl.connections("tcp").sources.values()) == {"procfs"}
    monkeypatch.setenv("PROCNET_SOURCE", "bogus")
    with pytest.raises(procnet.ProcNetError):
        impl.connections("tcp")
    with pytest.raises(ValueError):
        impl.connections("tcp", source="bogus")


FILTERS = [
    {"state": "LISTEN"}, {"state": ["ESTABLISHED", "NONE"]}, {"state": "CONNECTED"},
    {"lport": "tcp_listen"}, {"rport": "tcp_listen"}, {"lport": "tcp_listen", "rport": 0},
    {"uid": os.geteuid()}, {"pid": "me"},
    {"laddr": "127.0.0.1"}, {"laddr": "::1"}, {"laddr": "::ffff:127.0.0.1"},
    {"laddr": "127.0.0.1", "lport": "tcp_listen"}, {"laddr": "::1", "state": "LISTEN", "rport": 0},
]


def _resolve(f, live):
    out = dict(f)
    for k in ("lport", "rport"):
        if isinstance(out.get(k), str):
            out[k] = live.socks[out[k]].getsockname()[1]
    if out.get("pid") == "me":
        out["pid"] = os.getpid()
    return out


def _python_filter(c, f):
    if "state" in f:
        states = {f["state"]} if isinstance(f["state"], str) else set(f["state"])
        if c.state not in states:
            return False
    if "lport" in f and not (isinstance(c.laddr, tuple) and c.laddr.port == f["lport"]):
        return False
    if "rport" in f and not (isinstance(c.raddr, tuple) and c.raddr.port == f["rport"]):
        return False
    if "uid" in f and c.uid != f["uid"]:
        return False
    if "laddr" in f and not (isinstance(c.laddr, tuple) and c.laddr.ip == f["laddr"]):
        return False
    return True


@pytest.mark.parametrize("source", ["auto", "procfs"])
@pytest.mark.parametrize("f", FILTERS, ids=lambda f: ",".join(sorted(f)) + "=" + repr(list(f.values())))
def test_filters_match_python_filtering(impl, live, source, f):
    f = _resolve(f, live)
    filtered = mine(impl.connections("all", source=source, **f), live)
    everything = mine(impl.connections("all", source=source), live)
    if "pid" in f:
        expect = {}
        for i, c in everything.items():
            own = tuple(o for o in c.owners if o.pid == f["pid"])
            if own:
                expect[i] = own
        assert {i: c.owners for i, c in filtered.items()} == expect
        return
    want = {i for i, c in everything.items() if _python_filter(c, f)}
    assert set(filtered) == want
    assert want, "the filter should keep some of the test's sockets"
    for i in want:
        assert filtered[i].as_tuple() == everything[i].as_tuple()
