"""tcp and tcp6 from one dump: the inet_diag v1 request (TCPDIAG_GETSOCK) asks for
AF_UNSPEC, so the kernel walks its TCP hashes once for both families instead of
once per family (half the walk at every poll; per namespace with netns="all").

Both backends send it when a query asks for tcp and tcp6 alike (same states, no
local-address filter: the kernel's address condition is of one family) and keep
the records in table order, tcp then tcp6, as two dumps would give them. These
tests check the decoders on a mixed answer, that the request is made exactly
when it serves, and that its snapshot is the two dumps' on live sockets.
"""
import os
import socket
import struct

import pytest

import procnet
from procnet import _tables as T
from procnet._pure import sock_diag as pure_diag
from test_families import DONE, SEQ, inet_msg, native_decode, nlmsg, pure_decode

V4 = socket.inet_aton("127.0.0.1")
V6 = socket.inet_pton(socket.AF_INET6, "::1")
MIXED = b"".join([
    nlmsg(18, inet_msg(socket.AF_INET, 10, 8080, 0, V4, bytes(4), 9001, uid=1000, wq=128)),
    nlmsg(18, inet_msg(socket.AF_INET6, 10, 8443, 0, V6, bytes(16), 9002, uid=0)),
    nlmsg(18, inet_msg(socket.AF_INET, 1, 40000, 8080, V4, V4, 9003, rq=5, wq=7)),
    nlmsg(18, inet_msg(0, 1, 1, 2, V4, V4, 9004)),                         # no family: skipped
    nlmsg(18, b"\x0a\x01"),                                                # short: skipped
    nlmsg(20, inet_msg(socket.AF_INET, 10, 1, 0, V4, bytes(4), 9005)),    # not this dump's type
    nlmsg(18, inet_msg(socket.AF_INET6, 1, 8443, 50000, V6, V6, 9006)),
    nlmsg(18, inet_msg(socket.AF_INET, 10, 1, 0, V4, bytes(4), 9007), seq=SEQ - 1),   # stale
]) + DONE


def test_decoders_agree_on_a_mixed_answer(both):
    table = T.DIAG_TCP46
    got = native_decode(table, MIXED)
    assert got == pure_decode(table, MIXED)
    r, err, recs, skipped = got
    assert (r, err, skipped) == (1, 0, 2)
    # each record in the table its family says, in the order received (no sorting here)
    assert [(rec[0], T.TABLES[rec[13]]) for rec in recs] == [
        (9001, "tcp"), (9002, "tcp6"), (9003, "tcp"), (9006, "tcp6")]
    for cut in range(0, len(MIXED), 5):
        assert native_decode(table, MIXED[:cut]) == pure_decode(table, MIXED[:cut]), cut


@pytest.fixture
def held():
    """v4 and v6 listeners and established pairs of this process."""
    socks = []
    for af, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
        srv = socket.socket(af, socket.SOCK_STREAM)
        srv.bind((host, 0))
        srv.listen()
        cli = socket.create_connection(srv.getsockname()[:2])
        socks += [srv, cli, srv.accept()[0]]
    yield socks
    for s in socks:
        s.close()


def _rows(snap):
    return [(c.proto, c.laddr, c.raddr, c.state, c.inode, tuple(c.owners)) for c in snap]


@pytest.mark.live
@pytest.mark.parametrize("filters", [{}, {"state": "LISTEN"}, {"state": ["ESTABLISHED", "LISTEN"]}])
def test_one_dump_is_the_two_dumps(impl, held, filters):
    me = os.getpid()
    one = impl.connections("tcp", pid=me, **filters)          # psutil's kind: tcp4 and tcp6
    two = list(impl.connections("tcp4", pid=me, **filters)) + list(impl.connections("tcp6", pid=me, **filters))
    assert one.sources == {"tcp": "netlink", "tcp6": "netlink"}
    assert _rows(one) == _rows(two)
    protos = [c.proto for c in one]
    assert protos == sorted(protos, key=lambda p: p == "tcp6") and {"tcp", "tcp6"} <= set(protos)
    # every socket of the fixture is there (the suite's other sockets of this process may be too)
    mine = {os.fstat(h.fileno()).st_ino for h in held[::3]} if filters == {"state": "LISTEN"} else \
        {os.fstat(h.fileno()).st_ino for h in held}
    assert mine <= {c.inode for c in one}


@pytest.mark.live
def test_a_port_filter_rides_along(impl, held):
    port = held[3].getsockname()[1]                  # the v6 listener
    got = impl.connections("tcp", lport=port, pid=os.getpid())
    assert [(c.proto, c.state) for c in got] == [("tcp6", "LISTEN"), ("tcp6", "ESTABLISHED")]


@pytest.mark.live
def test_the_request_is_made_exactly_when_it_serves(monkeypatch, held):
    """Observed through the pure twin, whose choice is C's (pn_diag_tcp46_serves)."""
    asked = []
    real = pure_diag.dump_table

    def spy(sock, table, *a, **kw):
        asked.append(table)
        return real(sock, table, *a, **kw)

    monkeypatch.setattr(pure_diag, "dump_table", spy)
    cases = [("tcp", {}, True), ("inet", {}, True), ("all", {}, True), (("tcp4", "tcp6"), {}, True),
             ("tcp", {"state": "LISTEN"}, True), ("tcp", {"lport": 22}, True),
             ("tcp4", {}, False), ("tcp6", {}, False), ("tcp", {"laddr": "127.0.0.1"}, False)]
    for kind, kw, want in cases:
        asked.clear()
        procnet.connections(kind, backend="pure", owners=False, **kw)
        assert (T.DIAG_TCP46 in asked) == want, (kind, kw, asked)
        assert (T.TCP in asked or T.TCP6 in asked) != want, (kind, kw, asked)
