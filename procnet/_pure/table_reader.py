"""Read one /proc/net table and decode it; twin of table_reader.c.

Same rules as C: large reads (file_read.py: regular files only, at most
MAX_FILE bytes); the first line is the header; a line longer than MAX_LINE
bytes or holding a NUL is malformed; malformed lines are counted.
"""
import errno
import socket
from typing import Callable, List, Tuple

from .._records import (R_EXT, R_EXT_LEN, R_FLAGS, R_INODE, R_LADDR, R_LPORT, R_RPORT, R_STATE,
                         R_TABLE, R_UID, SF_NO_UID, SF_UNIX_ACC)
from .._tables import (INET_TABLES, IP_TABLES, NETLINK, PACKET, SCTP_TABLES, STATE_UNIX_LISTEN,
                       TABLE_FILES, TABLES, UNIX, V6_TABLES, VSOCK)
from . import file_read, tables_inet, tables_netlink, tables_packet, tables_sctp, tables_unix

MAX_LINE = 4096
READ_CHUNK = 256 * 1024


def decode_lines(table: int, lines: List[bytes], big_endian: bool,
                 strings: bytearray) -> Tuple[List[tuple], int]:
    """Body lines of a table -> (raw records, malformed count).

    Lines C rejects before decoding (too long, holding a NUL) are dropped here;
    the rest are decoded in one findall over the joined text.
    """
    good = [line for line in lines if len(line) <= MAX_LINE and b"\0" not in line]
    text = b"\n".join(good)
    if table in INET_TABLES:
        recs = tables_inet.decode(table, text, big_endian)
    elif table == UNIX:
        recs = tables_unix.decode(text, strings)
    elif table == PACKET:
        recs = tables_packet.decode(text)
    elif table == NETLINK:
        recs = tables_netlink.decode(text)
    elif table in SCTP_TABLES:
        recs = tables_sctp.decode(text)      # of both SCTP tables: the reader keeps its own
    else:
        recs = []                            # no text format (C's decoder says 0)
    return recs, len(lines) - len(recs)


def read_table(netfd: int, table: int, big_endian: bool, keep: Callable[[tuple], bool],
               out: List[tuple], strings: bytearray, own_inode: int = 0) -> int:
    """Append the table's kept records to `out`; returns the malformed line count.

    Reads each of the table's files (TABLE_FILES; none: ENOENT, the table is
    missing) in turn, all or nothing. Raises OSError like the C reader fails.
    `own_inode`: the snapshot's own sock_diag socket (pn_sink.own_inode), open
    while the text is read and never a socket of the listing.
    """
    if own_inode and table == NETLINK:
        keep_any = keep
        keep = lambda r: r[R_INODE] != own_inode and keep_any(r)  # noqa: E731
    files = TABLE_FILES[table]
    if not files:
        raise FileNotFoundError(errno.ENOENT, "no text table", TABLES[table])
    mark_out, mark_str = len(out), len(strings)
    skipped = 0
    try:
        for name in files:
            skipped += _read_file(netfd, name, table, big_endian, keep, out, strings)
    except OSError:
        del out[mark_out:]
        del strings[mark_str:]
        raise
    return skipped


def _read_file(netfd: int, name: str, table: int, big_endian: bool, keep: Callable[[tuple], bool],
               out: List[tuple], strings: bytearray) -> int:
    """One file of a table (read_file() in C).

    Read and decoded chunk by chunk, as C does, so memory follows the records
    kept, not the file (an overlong line is dropped as it streams by). A
    first line that decodes as data is a missing header: counted.
    """
    skipped = 0
    header = True
    tail = b""                  # the unfinished line
    overlong = False            # discarding the rest of a line past MAX_LINE

    def take(lines: List[bytes]) -> None:
        nonlocal skipped, header
        if header and lines:
            header = False
            if decode_lines(table, lines[:1], big_endian, bytearray())[0]:
                skipped += 1
            lines = lines[1:]
        recs, bad = decode_lines(table, lines, big_endian, strings)
        skipped += bad
        # (a dropped unix record leaves its path in the pool: harmless, nothing points at it)
        out.extend(r for r in recs if r[R_TABLE] == table and keep(r))

    for chunk in file_read.read_chunks(name, READ_CHUNK, netfd):
        lines = chunk.split(b"\n")
        if overlong:
            if len(lines) == 1:
                continue
            lines[0] = b"\0"       # the overlong line ends here: malformed
            overlong = False
        else:
            lines[0] = tail + lines[0]
        tail = lines.pop()
        if len(tail) > MAX_LINE:
            tail, overlong = b"", True
        take(lines)
    if overlong:
        take([b"\0"])
    elif tail:
        take([tail])            # the last line without a newline
    return skipped


def keep_sock(q) -> Callable[[tuple], bool]:
    """pn_keep_sock(): the filters decided from the table alone, as a closure over the query."""
    masks, lport, rport, uid = q.state_masks, q.lport, q.rport, q.uid
    fam, addr = q.laddr_family, q.laddr
    addr_len = 16 if fam == socket.AF_INET6 else 4

    def keep(r: tuple) -> bool:
        t = r[R_TABLE]
        m = masks[t]
        if m:
            st = STATE_UNIX_LISTEN if t == UNIX and r[R_FLAGS] & SF_UNIX_ACC else r[R_STATE]
            if not (st < 32 and (m >> st) & 1):
                return False
        vsock = t == VSOCK             # its ports are 32-bit, kept in ext/ext_len
        if lport >= 0 and r[R_EXT if vsock else R_LPORT] != lport:
            return False
        if rport >= 0 and r[R_EXT_LEN if vsock else R_RPORT] != rport:
            return False
        if uid >= 0 and ((r[R_FLAGS] & SF_NO_UID) or r[R_UID] != uid):
            return False
        if fam:
            # exact: the socket's own family (an IPv4-mapped IPv6 address is IPv6)
            if t not in IP_TABLES or (fam == socket.AF_INET6) != (t in V6_TABLES) or \
                    r[R_LADDR][:addr_len] != addr[:addr_len]:
                return False
        return True
    return keep
