"""Decoder for /proc/net/{tcp,udp,udplite,raw,icmp}{,6}; twin of tables_inet.c.

Worked example: the line ``0: 0100007F:1F90 00000000:0000 0A ...`` from an
x86 (little-endian) kernel is 127.0.0.1:8080 LISTEN -- the kernel printed its
in-memory 32-bit word ``7F 00 00 01`` as a little-endian number. A big-endian
MIPS kernel prints the same socket as ``7F000001:1F90``. Ports are printed
after ntohs and read the same everywhere.
"""
import re
import socket
import struct
from typing import Dict, List, Tuple

from .scan import DEC, NEG_DEC, U32, U64, hexf

# After the inode: a blank or the end of the line; the rest is not ours.
_END = rb"(?=[ \t]|$)[^\n]*$"


def _line_re(words: int) -> "re.Pattern[bytes]":
    # One line per match, anchored at line starts (re.M): the reader runs it
    # over the whole table at once (findall), so no Python call per line.
    endpoint = rb"[ \t]*([0-9A-Fa-f]{%d}):" % (8 * words) + hexf(4, 4)
    return re.compile(
        b"^" + DEC + b":" + endpoint + endpoint + hexf(1, 2)   # sl: local remote st
        + hexf(1, 8) + b":" + hexf(1, 8)                       # tx_queue:rx_queue
        + hexf(1, 2, False) + b":" + hexf(1, 16, False)        # tr:tm->when
        + hexf(1, 8, False)                                    # retrnsmt
        + DEC + NEG_DEC + DEC + _END,                          # uid timeout inode
        re.M)


_RE = {False: _line_re(1), True: _line_re(4)}

# table index -> (protocol, socket type, is IPv6); mirrors inet_kind[] in C
KIND: Dict[int, Tuple[int, int, bool]] = {
    0: (6, socket.SOCK_STREAM, False), 1: (6, socket.SOCK_STREAM, True),
    2: (17, socket.SOCK_DGRAM, False), 3: (17, socket.SOCK_DGRAM, True),
    4: (136, socket.SOCK_DGRAM, False), 5: (136, socket.SOCK_DGRAM, True),
    6: (0, socket.SOCK_RAW, False), 7: (0, socket.SOCK_RAW, True),
    8: (1, socket.SOCK_DGRAM, False), 9: (58, socket.SOCK_DGRAM, True),
    13: (262, socket.SOCK_STREAM, False), 14: (262, socket.SOCK_STREAM, True),   # mptcp (netlink)
    15: (132, 0, False), 16: (132, 0, True),            # sctp (netlink): no socket type there
}
RAW_TABLES = (6, 7)

# hex text -> network-order bytes, one cache per kernel byte order (addresses
# repeat: 127.0.0.1 and 0.0.0.0 are most of a busy host's sockets)
_addr_cache: Dict[bool, Dict[bytes, bytes]] = {False: {}, True: {}}


def kernel_words_to_bytes(text: bytes, big_endian: bool) -> bytes:
    """Hex words as a kernel printed them -> 16 bytes in network order.

    >>> kernel_words_to_bytes(b"0100007F", False)[:4]
    b'\\x7f\\x00\\x00\\x01'
    >>> kernel_words_to_bytes(b"7F000001", True)[:4]
    b'\\x7f\\x00\\x00\\x01'
    """
    cache = _addr_cache[big_endian]
    out = cache.get(text)
    if out is None:
        raw = bytes.fromhex(text.decode("ascii"))
        n = len(raw) // 4
        if not big_endian:
            raw = struct.pack("<%dI" % n, *struct.unpack(">%dI" % n, raw))
        out = raw.ljust(16, b"\0")
        if len(cache) > 65536:          # bounded for long-lived pollers
            cache.clear()
        cache[text] = out
    return out


def decode(table: int, lines: bytes, big_endian: bool) -> List[tuple]:
    """Newline-separated lines (no header) -> raw records of the well-formed ones.

    Matched lines whose numbers overflow C's bounds are dropped like malformed ones.
    """
    protocol, stype, v6 = KIND[table]
    raw = table in RAW_TABLES
    addr = kernel_words_to_bytes
    get = _addr_cache[big_endian].get
    out = []
    append = out.append
    for sl, la, lp, ra, rp, st, tx, rx, uid, timeout, inode in _RE[v6].findall(lines):
        uid_i, inode_i = int(uid), int(inode)
        if uid_i > U32 or inode_i > U64 or (len(sl) > 9 and int(sl) > U32) or \
                (len(timeout) > 19 and int(timeout) > U64):
            continue
        lport = int(lp, 16)
        append((inode_i, get(la) or addr(la, big_endian), get(ra) or addr(ra, big_endian),
                uid_i, int(tx, 16), int(rx, 16), 0, 0, 0, 0, lport, int(rp, 16),
                lport if raw else protocol,        # raw sockets print their protocol as the port
                table, int(st, 16), stype, 0, 0))
    return out
