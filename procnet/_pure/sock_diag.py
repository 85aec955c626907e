"""The netlink socket source in pure Python; twin of sock_diag.c.

SOCK_DIAG_BY_FAMILY dumps over socket.AF_NETLINK / NETLINK_SOCK_DIAG, decoded
with struct into the same raw records the text decoders give. See sock_diag.c
for what the kernel reports differently from the text tables.
"""
import errno
import os
import socket
import struct
from typing import Callable, List, Optional, Tuple

from .._records import R_TABLE, SF_NO_UID, SF_PKT_RUNNING, SF_UNIX_ACC
from .._tables import (DIAG_TCP46, IP_TABLES, NETLINK, PACKET, SCTP_ASSOC_STATE, SCTP_TABLES, TCP, TCP6,
                       UNIX, VSOCK, XDP)

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
TCPDIAG_GETSOCK = 18                          # the inet_diag v1 request: tcp and tcp6 in one dump
NLM_F_REQUEST, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x300, 0x10
NLMSG_ERROR, NLMSG_DONE = 2, 3
RETRIES = 5
RCVBUF = 256 * 1024
IPPROTO_RAW = 255
AF_PACKET = getattr(socket, "AF_PACKET", 17)
AF_NETLINK = getattr(socket, "AF_NETLINK", 16)
AF_VSOCK = getattr(socket, "AF_VSOCK", 40)
AF_XDP = getattr(socket, "AF_XDP", 44)
IPPROTO_SCTP = 132
INET_DIAG_REQ_PROTOCOL = 3                   # the u32 protocol attribute (Linux 5.9+)
INET_DIAG_PEERS = 13                         # sctp: an association's peer addresses
VSOCK_REQ = struct.Struct("=BBHIII8x")       # vsock_diag_req
VSOCK_MSG = struct.Struct("=BBBBIIIII8x")    # vsock_diag_msg
XDP_REQ = struct.Struct("=BBHII8x")          # xdp_diag_req
XDP_MSG = struct.Struct("=BBHI8x")           # xdp_diag_msg
XDP_SHOW_INFO, XDP_DIAG_INFO, XDP_DIAG_UID = 1, 1, 2

NLMSGHDR = struct.Struct("=IHHII")
NLATTR = struct.Struct("=HH")
INET_REQ = struct.Struct("=BBBBI48x")        # inet_diag_req_raw, zero socket id
INET_REQ_V1 = struct.Struct("=BBBB48xII")    # inet_diag_req: family, lens, ext, id, states, dbs
UNIX_REQ = struct.Struct("=BBHIII8x")        # unix_diag_req
PKT_REQ = struct.Struct("=BBHII8x")          # packet_diag_req / netlink_diag_req
INET_MSG = struct.Struct("=BBBB2s2s16s16sI8xIIIII")   # inet_diag_msg
UNIX_MSG = struct.Struct("=BBBxI8x")         # unix_diag_msg
PKT_MSG = struct.Struct("=BBHI8x")           # packet_diag_msg
PKT_INFO = struct.Struct("=IIIIII")          # packet_diag_info
NL_MSG = struct.Struct("=BBBBIIII8x")        # netlink_diag_msg
BC_OP = struct.Struct("=BBH")                # inet_diag_bc_op
INET_DIAG_REQ_BYTECODE, INET_DIAG_BC_S_EQ, INET_DIAG_BC_D_EQ = 1, 11, 12
UDIAG_SHOW = 0x1 | 0x10 | 0x40               # NAME | RQLEN | UID
UNIX_DIAG_NAME, UNIX_DIAG_RQLEN, UNIX_DIAG_UID = 0, 4, 7
PACKET_SHOW_INFO, PACKET_DIAG_INFO, PACKET_DIAG_UID, PDI_RUNNING = 1, 0, 5, 1
NDIAG_PROTO_ALL, NDIAG_SHOW_GROUPS, NETLINK_DIAG_GROUPS = 255, 2, 1
LONG = struct.Struct("=L")                   # the groups bitmap is made of C longs

TARGETS = {
    0: (socket.AF_INET, 6), 1: (socket.AF_INET6, 6), 2: (socket.AF_INET, 17), 3: (socket.AF_INET6, 17),
    4: (socket.AF_INET, 136), 5: (socket.AF_INET6, 136), 6: (socket.AF_INET, IPPROTO_RAW),
    7: (socket.AF_INET6, IPPROTO_RAW), 8: (socket.AF_INET, 1), 9: (socket.AF_INET6, 58),
    13: (socket.AF_INET, 262), 14: (socket.AF_INET6, 262),        # IPPROTO_MPTCP
    15: (socket.AF_INET, 132), 16: (socket.AF_INET6, 132),        # IPPROTO_SCTP
}
# unix sk_state -> (SS_* state as /proc/net/unix prints it, listening flag)
UNIX_STATE = {10: (1, SF_UNIX_ACC), 1: (3, 0), 2: (2, 0)}


def _align(n: int) -> int:
    return (n + 3) & ~3


def open_diag() -> Tuple[socket.socket, int]:
    s = socket.socket(AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    return s, os.fstat(s.fileno()).st_ino


HOSTCOND = struct.Struct("=BBxxi")          # inet_diag_hostcond (padded), the address follows
INET_DIAG_BC_S_COND = 7


def _bytecode(q, family: int) -> bytes:
    """The filters as inet_diag bytecode (see filter_bytecode() in sock_diag.c)."""
    alen = 4 if family == socket.AF_INET else 16
    with_addr = family != 0 and q.laddr_family == family     # 0: a tcp+tcp6 dump, ports only
    cond_len = 4 + HOSTCOND.size + alen
    conds = [(c, p) for c, p in ((INET_DIAG_BC_S_EQ, q.lport), (INET_DIAG_BC_D_EQ, q.rport)) if p >= 0]
    total = (cond_len if with_addr else 0) + 8 * len(conds)
    out = b""
    if with_addr:
        out = BC_OP.pack(INET_DIAG_BC_S_COND, cond_len, total + 4) + \
            HOSTCOND.pack(family, 8 * alen, -1) + q.laddr[:alen]
    for code, port in conds:
        out += BC_OP.pack(code, 8, total - len(out) + 4) + BC_OP.pack(0, 0, port)
    return out


def _request(table: int, q, seq: int) -> bytes:
    mtype = SOCK_DIAG_BY_FAMILY
    if table == DIAG_TCP46:
        # one walk of the TCP hashes for both families (see send_dump() in C)
        states = q.state_masks[TCP] or 0xFFFFFFFF
        if states & (1 << 3):
            states |= 1 << 12
        body = INET_REQ_V1.pack(socket.AF_INET, 0, 0, 0, states, 0)
        bc = _bytecode(q, 0)
        if bc:
            body += NLATTR.pack(4 + len(bc), INET_DIAG_REQ_BYTECODE) + bc
        mtype = TCPDIAG_GETSOCK
    elif table in IP_TABLES:
        family, proto = TARGETS[table]
        states = q.state_masks[table] or 0xFFFFFFFF
        if states & (1 << 3):
            states |= 1 << 12     # SYN_RECV entries live as TCP_NEW_SYN_RECV requests
        if proto == IPPROTO_SCTP:
            states = 0xFFFFFFFF   # association states are not sk_states: filtered here
        # MPTCP (262) goes in the u32 attribute; the u8 says 0 (see send_dump() in C)
        body = INET_REQ.pack(family, 0 if proto > 255 else proto, 0,
                             IPPROTO_RAW if proto == IPPROTO_RAW else 0, states)
        bc = b"" if proto == IPPROTO_SCTP else _bytecode(q, family)
        if bc:
            body += NLATTR.pack(4 + len(bc), INET_DIAG_REQ_BYTECODE) + bc
        if proto > 255:
            body += NLATTR.pack(8, INET_DIAG_REQ_PROTOCOL) + struct.pack("=I", proto)
    elif table == VSOCK:
        body = VSOCK_REQ.pack(AF_VSOCK, 0, 0, q.state_masks[table] or 0xFFFFFFFF, 0, 0)
    elif table == XDP:
        body = XDP_REQ.pack(AF_XDP, 0, 0, 0, XDP_SHOW_INFO)
    elif table == UNIX:
        body = UNIX_REQ.pack(socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0, UDIAG_SHOW)
    elif table == PACKET:
        body = PKT_REQ.pack(AF_PACKET, 0, 0, 0, PACKET_SHOW_INFO)
    else:
        body = PKT_REQ.pack(AF_NETLINK, NDIAG_PROTO_ALL, 0, 0, NDIAG_SHOW_GROUPS)
    return NLMSGHDR.pack(16 + len(body), mtype, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def _attrs(buf: bytes, start: int, end: int):
    while start + 4 <= end:
        alen, atype = NLATTR.unpack_from(buf, start)
        if alen < 4 or start + alen > end:
            return
        yield atype, buf[start + 4:start + alen]
        start += _align(alen)


def _decode(table: int, buf: bytes, off: int, end: int, strings: bytearray) -> Optional[tuple]:
    """One message -> a raw record, or None if it is too short (counted)."""
    n = end - off
    if table == DIAG_TCP46:                  # each answer says its family
        if n < 1 or buf[off] not in (socket.AF_INET, socket.AF_INET6):
            return None
        table = TCP6 if buf[off] == socket.AF_INET6 else TCP
    if table in IP_TABLES:
        if n < INET_MSG.size:
            return None
        (_fam, state, _t, _r, sport, dport, src, dst, _if, _exp, rq, wq, uid, inode) = \
            INET_MSG.unpack_from(buf, off)
        from .tables_inet import KIND, RAW_TABLES
        protocol, stype, v6 = KIND[table]
        if not v6:
            src, dst = src[:4] + bytes(12), dst[:4] + bytes(12)
        lport, rport = int.from_bytes(sport, "big"), int.from_bytes(dport, "big")
        if table in SCTP_TABLES:
            # an association (it has peers) reports its SCTP_STATE_*, an endpoint its sk_state
            if any(atype == INET_DIAG_PEERS for atype, _ in
                   _attrs(buf, off + _align(INET_MSG.size), end)):
                state = SCTP_ASSOC_STATE + state if state < 256 - SCTP_ASSOC_STATE else 255
        return (inode, src, dst, uid, wq, rq, 0, 0, 0, 0, lport, rport,
                lport if table in RAW_TABLES else protocol, table, state, stype, 0, 0)
    if table == VSOCK:
        if n < VSOCK_MSG.size:
            return None
        _fam, stype, state, _shut, lcid, lport, rcid, rport, inode = VSOCK_MSG.unpack_from(buf, off)
        # CIDs big-endian in laddr/raddr, 32-bit ports in ext/ext_len (vsock_diag has no uid)
        return (inode, lcid.to_bytes(4, "big") + bytes(12), rcid.to_bytes(4, "big") + bytes(12),
                0, 0, 0, 0, 0, lport, rport, 0, 0, 0, VSOCK, state, stype, 0, SF_NO_UID)
    if table == XDP:
        if n < XDP_MSG.size:
            return None
        _fam, stype, _pad, inode = XDP_MSG.unpack_from(buf, off)
        uid = ifindex = queue = 0
        flags = SF_NO_UID
        for atype, data in _attrs(buf, off + _align(XDP_MSG.size), end):
            if atype == XDP_DIAG_INFO and len(data) >= 8:
                ifindex, queue = struct.unpack_from("=II", data)
            elif atype == XDP_DIAG_UID and len(data) >= 4:
                uid = struct.unpack_from("=I", data)[0]
                flags = 0
        return (inode, bytes(16), bytes(16), uid, 0, 0, 0, 0, ifindex, queue, 0, 0, 0,
                XDP, 0, stype, 0, flags)
    if table == UNIX:
        if n < UNIX_MSG.size:
            return None
        _fam, stype, sk_state, inode = UNIX_MSG.unpack_from(buf, off)
        state, flags = UNIX_STATE.get(sk_state, (1, 0))
        flags |= SF_NO_UID
        uid = rx = tx = ext = ext_len = 0
        for atype, data in _attrs(buf, off + _align(UNIX_MSG.size), end):
            if atype == UNIX_DIAG_NAME and data:
                # as /proc/net/unix prints it: a path without the NUL the kernel
                # keeps after it, '@' for an abstract name's NULs
                if data[:1] != b"\0":
                    data = data[:-1]
                data = data.replace(b"\0", b"@")
                ext, ext_len = len(strings), len(data)
                strings += data
            elif atype == UNIX_DIAG_RQLEN and len(data) >= 8:
                rx, tx = struct.unpack_from("=II", data)
            elif atype == UNIX_DIAG_UID and len(data) >= 4:
                uid = struct.unpack_from("=I", data)[0]
                flags &= ~SF_NO_UID
        return (inode, bytes(16), bytes(16), uid, tx, rx, 0, 0, ext, ext_len, 0, 0, 0,
                UNIX, state, stype, 0, flags)
    if table == PACKET:
        if n < PKT_MSG.size:
            return None
        _fam, stype, num, inode = PKT_MSG.unpack_from(buf, off)
        uid = ifindex = flags = 0
        for atype, data in _attrs(buf, off + _align(PKT_MSG.size), end):
            if atype == PACKET_DIAG_INFO and len(data) >= PKT_INFO.size:
                info = PKT_INFO.unpack_from(data)
                ifindex = info[0]
                flags = SF_PKT_RUNNING if info[5] & PDI_RUNNING else 0
            elif atype == PACKET_DIAG_UID and len(data) >= 4:
                uid = struct.unpack_from("=I", data)[0]
        return (inode, bytes(16), bytes(16), uid, 0, 0, 0, 0, ifindex, 0, 0, 0,
                num, PACKET, 0, stype, 0, flags)        # num: the kernel already applied ntohs
    if n < NL_MSG.size:
        return None
    _fam, stype, proto, _st, portid, _dp, _dg, inode = NL_MSG.unpack_from(buf, off)
    groups = 0
    for atype, data in _attrs(buf, off + _align(NL_MSG.size), end):
        if atype == NETLINK_DIAG_GROUPS and len(data) >= LONG.size:
            groups = LONG.unpack_from(data)[0] & 0xFFFFFFFF
    return (inode, bytes(16), bytes(16), 0, 0, 0, 0, 0, portid, groups, 0, 0, proto,
            NETLINK, 0, stype, 0, SF_NO_UID)


def parse_buffer(buf: bytes, table: int, keep: Callable[[tuple], bool], own_inode: int, seq: int,
                 out: List[tuple], strings: bytearray) -> Tuple[bool, bool, int]:
    """One received dump buffer (pn_diag_parse()): (done, interrupted, skipped);
    the kept records appended to `out`. Raises OSError for an error message."""
    off, intr, skipped = 0, False, 0
    while off + 16 <= len(buf):
        mlen, mtype, mflags, mseq, _ = NLMSGHDR.unpack_from(buf, off)
        if mlen < 16 or off + mlen > len(buf):
            break                   # truncated or garbage: nothing more to trust
        end, body = off + mlen, off + 16
        nxt = off + _align(mlen)
        if mseq != seq:
            off = nxt
            continue                # a stale answer to an earlier request
        if mflags & NLM_F_DUMP_INTR:
            intr = True
        if mtype == NLMSG_DONE:
            err = struct.unpack_from("=i", buf, body)[0] if mlen >= 20 else 0
            if err < 0:
                e = errno.EPROTO if err == -2 ** 31 else -err
                raise OSError(e, os.strerror(e))
            return True, intr, skipped
        if mtype == NLMSG_ERROR:
            if mlen < 20 + 16:
                raise OSError(errno.EPROTO, os.strerror(errno.EPROTO))
            err = struct.unpack_from("=i", buf, body)[0]
            e = -err if err < 0 and err != -2 ** 31 else errno.EPROTO
            raise OSError(e, os.strerror(e))
        if mtype == (TCPDIAG_GETSOCK if table == DIAG_TCP46 else SOCK_DIAG_BY_FAMILY):
            mark = len(strings)
            rec = _decode(table, buf, body, end, strings)
            if rec is None:
                skipped += 1
            elif (table == NETLINK and own_inode and rec[0] == own_inode) or not keep(rec):
                del strings[mark:]
            else:
                out.append(rec)
        off = nxt
    return False, intr, skipped


def _dump_once(sock: socket.socket, table: int, q, keep: Callable[[tuple], bool], own_inode: int,
               seq: int, out: List[tuple], strings: bytearray) -> Tuple[bool, int]:
    """(interrupted, skipped); raises OSError like C returns -1."""
    sock.sendto(_request(table, q, seq), (0, 0))
    intr, skipped = False, 0
    while True:
        buf = sock.recv(RCVBUF)
        if not buf:
            raise OSError(errno.EPROTO, os.strerror(errno.EPROTO))
        done, i, n = parse_buffer(buf, table, keep, own_inode, seq, out, strings)
        intr, skipped = intr or i, skipped + n
        if done:
            return intr, skipped


def _tcp6_last(rec: tuple) -> bool:
    return rec[R_TABLE] == TCP6


def tcp46_serves(q) -> bool:
    """Can one DIAG_TCP46 dump serve q's tcp and tcp6 (pn_diag_tcp46_serves)?"""
    both = (1 << TCP) | (1 << TCP6)
    return TCP in q.tables and TCP6 in q.tables and not (q.netlink_deny & both) and \
        not q.laddr_family and (q.state_masks[TCP] or 0) == (q.state_masks[TCP6] or 0)


def dump_table(sock: socket.socket, table: int, q, keep: Callable[[tuple], bool], own_inode: int,
               seq: List[int], out: List[tuple], strings: bytearray) -> int:
    """Append the table's records; returns skipped messages. Raises OSError on failure."""
    mark_out, mark_str = len(out), len(strings)
    for _ in range(RETRIES + 1):
        seq[0] += 1
        try:
            intr, skipped = _dump_once(sock, table, q, keep, own_inode, seq[0], out, strings)
        except OSError:
            del out[mark_out:]
            del strings[mark_str:]
            raise
        if not intr:
            if table == DIAG_TCP46:          # table order, as two dumps give it (tcp_before_tcp6)
                out[mark_out:] = sorted(out[mark_out:], key=_tcp6_last)
            return skipped
        del out[mark_out:]
        del strings[mark_str:]
    raise OSError(errno.EAGAIN, "the table kept changing during every dump")


