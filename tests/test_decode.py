"""Line decoding of every table, on both backends, through the public API.

Each case writes one table into a fixture tree and reads it back with
owners=False, so the C decoder and its Python twin see identical bytes.
"""
import socket

import pytest

from procfs_tree import be_words, inet_line, le_words, make_tree, unix_line

LO = socket.inet_pton(socket.AF_INET, "127.0.0.1")
ANY4 = bytes(4)
V6_LO = socket.inet_pton(socket.AF_INET6, "::1")
V6_MAPPED = socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1")
V6_DOC = socket.inet_pton(socket.AF_INET6, "2001:db8::1:2:3")


def read(impl, tmp_path, table, lines, kind=None, byteorder=None, **kw):
    make_tree(str(tmp_path), net={table: lines})
    return impl.connections(kind or table, owners=False, proc_root=str(tmp_path),
                            byteorder=byteorder, **kw)


@pytest.mark.parametrize("order,words", [("little", le_words), ("big", be_words)])
def test_tcp_byte_order(impl, tmp_path, order, words):
    # the same socket, as each kernel byte order prints it
    line = inet_line(0, words(LO) + ":1F90", words(ANY4) + ":0000", 0x0A, 4242, uid=1000)
    (c,) = read(impl, tmp_path, "tcp", [line], kind="tcp4", byteorder=order)
    assert c.laddr == ("127.0.0.1", 8080)
    assert c.laddr.ip == "127.0.0.1" and c.laddr.port == 8080
    assert c.raddr == ("0.0.0.0", 0)
    assert (c.proto, c.state, c.inode, c.uid) == ("tcp", "LISTEN", 4242, 1000)
    assert c.family == socket.AF_INET and c.type == socket.SOCK_STREAM
    assert c.owners == ()


def test_literal_kernel_text(impl, tmp_path):
    # text exactly as printed by an x86 kernel and by a big-endian MIPS kernel
    le = "   0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 15071 1 0000000000000000 100 0 0 10 0"
    be = "   0: 7F000001:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 15071 1 0000000000000000 100 0 0 10 0"
    (a,) = read(impl, tmp_path / "le", "tcp", [le], byteorder="little")
    (b,) = read(impl, tmp_path / "be", "tcp", [be], byteorder="big")
    assert a.laddr == b.laddr == ("127.0.0.1", 53)


def test_native_order_is_host_order(impl, tmp_path):
    import sys
    words = le_words if sys.byteorder == "little" else be_words
    line = inet_line(0, words(LO) + ":0050", words(LO) + ":C350", 1, 7)
    (c,) = read(impl, tmp_path, "tcp", [line])
    assert c.laddr == ("127.0.0.1", 80) and c.raddr == ("127.0.0.1", 50000)
    assert c.state == "ESTABLISHED"


def test_all_ones_word_is_an_address_not_an_error(impl, tmp_path):
    # lsof once used UINT32_MAX as its parse-error sentinel and lost 255.255.255.255
    line = inet_line(0, "FFFFFFFF:0044", "FFFFFFFF:0043", 7, 99)
    (c,) = read(impl, tmp_path, "udp", [line], kind="udp4", byteorder="little")
    assert c.laddr == ("255.255.255.255", 68) and c.raddr == ("255.255.255.255", 67)
    assert c.state == "NONE" and c.type == socket.SOCK_DGRAM


@pytest.mark.parametrize("order,words", [("little", le_words), ("big", be_words)])
@pytest.mark.parametrize("addr,text", [
    (V6_LO, "::1"), (V6_MAPPED, "::ffff:127.0.0.1"), (V6_DOC, "2001:db8::1:2:3")])
def test_tcp6(impl, tmp_path, order, words, addr, text):
    line = inet_line(3, words(addr) + ":01BB", words(bytes(16)) + ":0000", 0x0A, 777)
    (c,) = read(impl, tmp_path, "tcp6", [line], kind="tcp6", byteorder=order)
    assert c.laddr == (text, 443) and c.raddr == ("::", 0)
    assert c.family == socket.AF_INET6 and c.proto == "tcp6"
    assert c.is_ipv4_mapped == (addr == V6_MAPPED)


def test_literal_mapped_v6(impl, tmp_path):
    le = inet_line(0, "0000000000000000FFFF00000100007F:1F90", "00000000000000000000000000000000:0000", 0x0A, 5)
    be = inet_line(0, "00000000000000000000FFFF7F000001:1F90", "00000000000000000000000000000000:0000", 0x0A, 5)
    (a,) = read(impl, tmp_path / "le", "tcp6", [le], kind="tcp6", byteorder="little")
    (b,) = read(impl, tmp_path / "be", "tcp6", [be], kind="tcp6", byteorder="big")
    assert a.laddr.ip == b.laddr.ip == "::ffff:127.0.0.1"


@pytest.mark.parametrize("table,kind,proto,stype,protocol", [
    ("udp", "udp4", "udp", socket.SOCK_DGRAM, 17),
    ("udp6", "udp6", "udp6", socket.SOCK_DGRAM, 17),
    ("udplite", "udplite", "udplite", socket.SOCK_DGRAM, 136),
    ("udplite6", "udplite", "udplite6", socket.SOCK_DGRAM, 136),
    ("icmp", "icmp", "icmp", socket.SOCK_DGRAM, 1),
    ("icmp6", "icmp", "icmp6", socket.SOCK_DGRAM, 58),
])
def test_datagram_tables(impl, tmp_path, table, kind, proto, stype, protocol):
    w = "00000000" * (4 if table.endswith("6") else 1)
    lines = [inet_line(0, w + ":0035", w + ":0000", 7, 10, uid=5),
             inet_line(1, w + ":0036", w + ":0050", 1, 11, tx=3, rx=0x10)]
    a, b = read(impl, tmp_path, table, lines, kind=kind, byteorder="little")
    assert (a.proto, a.type, a.protocol, a.state, a.uid) == (proto, stype, protocol, "NONE", 5)
    assert (b.state, b.tx_queue, b.rx_queue, b.raddr.port) == ("ESTABLISHED", 3, 16, 80)


def test_raw_protocol_is_the_port_column(impl, tmp_path):
    lines = [inet_line(0, "00000000:0001", "00000000:0000", 7, 20),     # IPPROTO_ICMP
             inet_line(1, "00000000:00FF", "00000000:0000", 7, 21)]     # IPPROTO_RAW
    a, b = read(impl, tmp_path, "raw", lines, kind="raw", byteorder="little")
    assert (a.protocol, b.protocol) == (1, 255)
    assert a.type == socket.SOCK_RAW and a.proto == "raw"


def test_tcp_states(impl, tmp_path):
    names = ["ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
             "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"]
    lines = [inet_line(i, "0100007F:1000", "0100007F:2000", i + 1, 100 + i) for i in range(12)]
    got = read(impl, tmp_path, "tcp", lines, kind="tcp4", byteorder="little")
    assert [c.state for c in got] == names


def test_unix(impl, tmp_path):
    lines = [
        unix_line(100, "/run/my app.sock", listening=True),
        unix_line(101, "@abstract name", stype=2),
        unix_line(102, None, stype=5, state=3),
        unix_line(103, "/tmp/ends with space ", state=3),
        unix_line(104, "  leading", state=2),
        "0000000000000000: 00000002 00000000 00000000 0001 01 105 ",     # path ""
    ]
    got = read(impl, tmp_path, "unix", lines)
    assert [c.laddr for c in got] == ["/run/my app.sock", "@abstract name", "", "/tmp/ends with space ",
                                      "  leading", ""]
    assert [c.state for c in got] == ["LISTEN", "NONE", "CONNECTED", "CONNECTED", "CONNECTING", "NONE"]
    assert [c.type for c in got][:3] == [socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET]
    assert [c.inode for c in got] == [100, 101, 102, 103, 104, 105]
    assert all(c.uid is None and c.raddr is None and c.family == socket.AF_UNIX for c in got)


def test_unix_path_bytes_survive(impl, tmp_path):
    path = b"/tmp/caf\xc3\xa9 \xff\xfe bin"
    make_tree(str(tmp_path), net={"unix": b"Num RefCount\n0000000000000000: 00000002 00000000 00000000 0001 01 7 " + path + b"\n"})
    (c,) = impl.connections("unix", owners=False, proc_root=str(tmp_path))
    assert c.laddr.encode("utf-8", "surrogateescape") == path


def test_packet_and_netlink(impl, tmp_path):
    make_tree(str(tmp_path), net={
        "packet": ["0000000000000000 3      3    0003   2     1 0      0      31337",
                   "ffff8880069b4000 3      2    0800   0     0 0      1000   31338"],
        "netlink": ["0000000000000000 0   812        00000551 0        0        0     2        0        24410",
                    "ffff88800a1c2800 15  4294967295 ffffffff -1       0        0     2        0        24411"],
    })
    p1, p2 = impl.connections("packet", owners=False, proc_root=str(tmp_path))
    assert (p1.laddr, p1.protocol, p1.type, p1.uid, p1.inode) == (2, 3, socket.SOCK_RAW, 0, 31337)
    assert (p2.laddr, p2.protocol, p2.type, p2.uid) == (0, 0x0800, socket.SOCK_DGRAM, 1000)
    n1, n2 = impl.connections("netlink", owners=False, proc_root=str(tmp_path))
    assert (n1.laddr, n1.protocol, n1.inode, n1.uid, n1.raddr) == (812, 0, 24410, None, None)
    assert (n2.laddr, n2.protocol) == (4294967295, 15)
    assert n1.state == "NONE" and n1.proto == "netlink"


GOOD = inet_line(0, "0100007F:0050", "00000000:0000", 0x0A, 1)
MALFORMED = [
    "",                                                        # blank line
    "   1: 0100007G:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 2",  # bad hex
    "   2: 0100007F:0050 00000000:0000 0A 00000000:00000000",  # truncated
    "   3: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 3\0 1",  # NUL
    "   4: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 4x",  # junk
    "   5: 0100007F:00500 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 5",  # long port
    "   6: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 99999999999 0 6",  # uid overflow
    "   7: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 99999999999999999999",  # inode overflow
    "   8: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 " + "1" * 5000,  # overlong
    "sl local_address",                                        # a second header
]


def test_malformed_lines_are_skipped_and_counted(impl, tmp_path):
    got = read(impl, tmp_path, "tcp", [GOOD] + MALFORMED + [GOOD], kind="tcp4", byteorder="little")
    assert len(got) == 2 and all(c.laddr == ("127.0.0.1", 80) for c in got)
    assert got.skipped == {"tcp": len(MALFORMED)}
    assert not got.complete


def test_malformed_unix_packet_netlink(impl, tmp_path):
    make_tree(str(tmp_path), net={
        "unix": [unix_line(1, "/ok"), "0000000000000000: 00000002 00000000 00000000 0001 01 12x /bad",
                 "0000000000000000 00000002", "zz: 1 2 3 4 5 6", unix_line(2, "/nul\0inside")],
        "packet": ["0000000000000000 3 3 0003 2 2 0 0 1",                 # R must be 0/1
                   "0000000000000000 3 300 0003 2 1 0 0 1",               # type > 255
                   "0000000000000000 3 3 0003 2 1 0 0 1 extra"],
        "netlink": ["0000000000000000 0 812 00000551 0 0 0 2 0"],         # no inode
    })
    got = impl.connections("all", owners=False, proc_root=str(tmp_path))
    assert [c.laddr for c in got] == ["/ok"]
    assert got.skipped == {"unix": 4, "packet": 3, "netlink": 1}


def test_no_trailing_newline_and_empty_files(impl, tmp_path):
    make_tree(str(tmp_path), net={"tcp": "header\n" + GOOD, "udp": "", "tcp6": "header only"})
    got = impl.connections("inet", owners=False, proc_root=str(tmp_path), byteorder="little")
    assert len(got) == 1 and got.skipped == {}
    assert got.tables == {"tcp": "read", "tcp6": "read", "udp": "read", "udp6": "missing"}


def test_long_file_crosses_read_chunks(impl, tmp_path):
    # > 256 KiB so the C reader carries partial lines between reads
    lines = [inet_line(i, "0100007F:%04X" % (i % 65536), "00000000:0000", 0x0A, i + 1)
             for i in range(4000)]
    lines.insert(1234, "x" * 9000)          # an overlong line in the middle
    got = read(impl, tmp_path, "tcp", lines, kind="tcp4", byteorder="little")
    assert [c.inode for c in got] == list(range(1, 4001))
    assert got.skipped == {"tcp": 1}


def test_worked_examples_in_docstrings():
    import doctest
    from procnet._pure import tables_inet
    assert doctest.testmod(tables_inet).failed == 0
