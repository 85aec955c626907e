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
from typing import Dict, Optional, Tuple

from .scan import DEC, NEG_DEC, U32, U64, hexf

_END = rb"(?=[ \t]|\Z)"


def _line_re(words: int) -> "re.Pattern[bytes]":
    endpoint = rb"[ \t]*([0-9A-Fa-f]{%d}):" % (8 * words) + hexf(4, 4)
    return re.compile(
        DEC + b":" + endpoint + endpoint + hexf(1, 2)          # sl: local remote st
        + hexf(1, 8) + b":" + hexf(1, 8)                       # tx_queue:rx_queue
        + hexf(1, 2, False) + b":" + hexf(1, 16, False)        # tr:tm->when
        + hexf(1, 8, False)                                    # retrnsmt
        + DEC + NEG_DEC + DEC + _END,                          # uid timeout inode
        re.S)


_RE = {False: _line_re(1), True: _line_re(4)}

# table index -> (protocol, socket type, is IPv6); mirrors inet_kind[] in C
KIND: Dict[int, Tuple[int, int, bool]] = {
    0: (6, socket.SOCK_STREAM, False), 1: (6, socket.SOCK_STREAM, True),
    2: (17, socket.SOCK_DGRAM, False), 3: (17, socket.SOCK_DGRAM, True),
    4: (136, socket.SOCK_DGRAM, False), 5: (136, socket.SOCK_DGRAM, True),
    6: (0, socket.SOCK_RAW, False), 7: (0, socket.SOCK_RAW, True),
    8: (1, socket.SOCK_DGRAM, False), 9: (58, socket.SOCK_DGRAM, True),
}
RAW_TABLES = (6, 7)

_addr_cache: Dict[Tuple[bytes, bool], bytes] = {}


def kernel_words_to_bytes(text: bytes, big_endian: bool) -> bytes:
    """Hex words as a kernel printed them -> 16 bytes in network order.

    >>> kernel_words_to_bytes(b"0100007F", False)[:4]
    b'\\x7f\\x00\\x00\\x01'
    >>> kernel_words_to_bytes(b"7F000001", True)[:4]
    b'\\x7f\\x00\\x00\\x01'
    """
    key = (text, big_endian)
    out = _addr_cache.get(key)
    if out is None:
        raw = bytes.fromhex(text.decode("ascii"))
        n = len(raw) // 4
        if not big_endian:
            raw = struct.pack("<%dI" % n, *struct.unpack(">%dI" % n, raw))
        out = raw.ljust(16, b"\0")
        if len(_addr_cache) > 65536:
            _addr_cache.clear()
        _addr_cache[key] = out
    return out


def decode(table: int, line: bytes, big_endian: bool) -> Optional[tuple]:
    """One line -> a raw record (see _contract.SOCK_STRUCT), or None if malformed."""
    protocol, stype, v6 = KIND[table]
    m = _RE[v6].match(line)
    if m is None:
        return None
    sl, la, lp, ra, rp, st, tx, rx, uid, timeout, inode = m.groups()
    uid_i, inode_i = int(uid), int(inode)
    if int(sl) > U32 or uid_i > U32 or int(timeout) > U64 or inode_i > U64:
        return None
    lport = int(lp, 16)
    if table in RAW_TABLES:
        protocol = lport    # raw sockets print their protocol as the port
    return (inode_i, kernel_words_to_bytes(la, big_endian), kernel_words_to_bytes(ra, big_endian),
            uid_i, int(tx, 16), int(rx, 16), 0, 0, 0, 0, lport, int(rp, 16), protocol,
            table, int(st, 16), stype, 0, 0)
