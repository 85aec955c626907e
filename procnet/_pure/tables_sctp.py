"""Decoder for /proc/net/sctp/eps and /proc/net/sctp/assocs; twin of tables_sctp.c.

Worked example: the eps line ``0 0 2 10 40 9000 0 30311 10.0.0.1 10.0.0.2`` is a
one-to-one (STY 2: SOCK_STREAM) endpoint listening (SST 10) on port 9000 of
two addresses: an sctp record with laddr 10.0.0.1. The assocs line
``0 0 2 1 3 0 1 0 0 0 30312 9000 40000 10.0.0.1 <-> *fe80:0000:...:0001 \\t ...``
is an ESTABLISHED (ST 3) association; its remote address is IPv6, so it is an
sctp6 record, with laddr ::ffff:10.0.0.1 and raddr fe80::1 (the primary,
starred one). See tables_sctp.c for the rules; this file mirrors its scanners
(scan.c) step by step rather than with a regex, so both accept the same text.
"""
import socket
from typing import List, Optional, Tuple

from .._tables import SCTP_ASSOC_STATE, TABLE_INDEX

_SCTP, _SCTP6 = TABLE_INDEX["sctp"], TABLE_INDEX["sctp6"]
_HEX = frozenset(b"0123456789abcdefABCDEF")
_BLANK = frozenset(b" \t")
ADDR_MAX = 45                   # INET6_ADDRSTRLEN - 1
U32, U64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
_MAPPED = b"\0" * 10 + b"\xff\xff"


class _Scan:
    """A cursor over one line with scan.c's scanners (blanks skipped first)."""

    __slots__ = ("s", "p", "end")

    def __init__(self, s: bytes, p: int = 0, end: Optional[int] = None) -> None:
        self.s, self.p, self.end = s, p, len(s) if end is None else end

    def blanks(self) -> None:
        s, p, end = self.s, self.p, self.end
        while p < end and s[p] in _BLANK:
            p += 1
        self.p = p

    def hex(self, lo: int, hi: int) -> Optional[int]:
        self.blanks()
        s, p, end = self.s, self.p, self.end
        q = p
        while q < end and q - p < hi and s[q] in _HEX:
            q += 1
        if q - p < lo or (q < end and s[q] in _HEX):
            return None
        self.p = q
        return int(s[p:q], 16)

    def dec(self, top: int) -> Optional[int]:
        self.blanks()
        s, p, end = self.s, self.p, self.end
        q = p
        while q < end and 48 <= s[q] <= 57:
            q += 1
        if q == p:
            return None
        v = int(s[p:q])
        if v > top:
            return None             # C stops at the digit that overflows: the same rejection
        self.p = q
        return v


def _addr(tok: bytes) -> Tuple[int, bytes, bool]:
    """One address token -> (4 or 6, 16 network-order bytes, primary); (0, ..) if bad."""
    primary = tok[:1] == b"*"
    if primary:
        tok = tok[1:]
    if not 1 <= len(tok) <= ADDR_MAX:
        return 0, b"", primary
    text = tok.decode("latin-1")
    for fam, af in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        try:
            return fam, socket.inet_pton(af, text).ljust(16, b"\0"), primary
        except (OSError, ValueError):
            pass
    return 0, b"", primary


def _addrs(s: bytes, p: int, end: int, want_primary: bool) -> Tuple[int, bytes, bool, bool]:
    """scan_addrs(): (count or -1, picked address, picked is v6, any v6)."""
    n, pick, pick_v6, any_v6, have_primary = 0, bytes(16), False, False, False
    for tok in s[p:end].replace(b"\t", b" ").split(b" "):
        if not tok:
            continue
        fam, a, primary = _addr(tok)
        if not fam:
            return -1, pick, pick_v6, any_v6
        any_v6 = any_v6 or fam == 6
        if n == 0 or (want_primary and primary and not have_primary):
            pick, pick_v6 = a, fam == 6
            have_primary = want_primary and primary
        n += 1
    return n, pick, pick_v6, any_v6


def _arrow(s: bytes) -> int:
    """Where a blank-delimited "<->" starts, or -1 (find_arrow())."""
    at = s.find(b"<->")
    while at >= 0:
        if (at == 0 or s[at - 1] in _BLANK) and (at + 3 == len(s) or s[at + 3] in _BLANK):
            return at
        at = s.find(b"<->", at + 1)
    return -1


def decode_line(line: bytes) -> Optional[tuple]:
    """One eps or assocs line -> a raw record (its table is sctp or sctp6), or None."""
    arrow = _arrow(line)
    c = _Scan(line)
    if c.hex(1, 16) is None or c.hex(1, 16) is None:
        return None
    sty = c.dec(255)
    sst = c.dec(255) if sty is not None else None
    if sst is None:
        return None
    st = tx = rx = rport = 0
    vals = []
    for top in ((255, U32, U32, U32, U32, U32, U64, 65535, 65535) if arrow >= 0 else
                (U32, 65535, U32, U64)):
        v = c.dec(top)              # in order, stopping at the first failure, as C's || chain
        if v is None:
            return None
        vals.append(v)
    if arrow >= 0:
        st, _hb, _id, tx, rx, uid, inode, lport, rport = vals
    else:
        _hb, lport, uid, inode = vals
    p, end = c.p, len(line)
    if p < end and line[p] not in _BLANK:
        return None
    nr, raddr, r_v6 = 0, bytes(16), False
    if arrow >= 0:
        if p > arrow:
            return None
        rend = line.find(b"\t", arrow + 3)
        rend = end if rend < 0 else rend
        nl, laddr, l_v6, v6a = _addrs(line, p, arrow, False)
        nr, raddr, r_v6, v6b = _addrs(line, arrow + 3, rend, True)
        any_v6 = v6a or v6b
        if nl < 0 or nr < 1:
            return None
        if nl == 0:
            l_v6 = r_v6
    else:
        nl, laddr, l_v6, any_v6 = _addrs(line, p, end, False)
        if nl < 1:
            return None
    if any_v6:
        if nl and not l_v6:
            laddr = _MAPPED + laddr[:4]
        if nr and not r_v6:
            raddr = _MAPPED + raddr[:4]
    stype = socket.SOCK_STREAM if sty == 2 else socket.SOCK_SEQPACKET if sty <= 1 else 0
    state = (SCTP_ASSOC_STATE + st if st < 256 - SCTP_ASSOC_STATE else 255) if arrow >= 0 else sst
    return (inode, laddr, raddr, uid, tx, rx, 0, 0, 0, 0, lport, rport, 132,
            _SCTP6 if any_v6 else _SCTP, state, int(stype), 0, 0)


def decode(lines: bytes) -> List[tuple]:
    """Newline-separated lines (no header) -> raw records of the well-formed ones,
    of both tables (the reader keeps those of the table it reads)."""
    out = []
    for line in lines.split(b"\n"):
        rec = decode_line(line)
        if rec is not None:
            out.append(rec)
    return out
