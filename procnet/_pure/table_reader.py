"""Read one /proc/net table and decode it; twin of table_reader.c.

Same rules as C: large reads; the first line is the header; a line longer than
MAX_LINE bytes or holding a NUL is malformed; malformed lines are counted.
"""
import os
from typing import Callable, List, Tuple

from . import tables_inet, tables_netlink, tables_packet, tables_unix

MAX_LINE = 4096
READ_CHUNK = 256 * 1024
UNIX, PACKET, NETLINK = 10, 11, 12
TABLE_FILES = ("tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6",
               "icmp", "icmp6", "unix", "packet", "netlink")


def decode_lines(table: int, lines: List[bytes], big_endian: bool,
                 strings: bytearray) -> Tuple[List[tuple], int]:
    """Body lines of a table -> (raw records, malformed count).

    Lines C rejects before decoding (too long, holding a NUL) are dropped here;
    the rest are decoded in one findall over the joined text.
    """
    good = [line for line in lines if len(line) <= MAX_LINE and b"\0" not in line]
    text = b"\n".join(good)
    if table < UNIX:
        recs = tables_inet.decode(table, text, big_endian)
    elif table == UNIX:
        recs = tables_unix.decode(text, strings)
    elif table == PACKET:
        recs = tables_packet.decode(text)
    else:
        recs = tables_netlink.decode(text)
    return recs, len(lines) - len(recs)


def read_all(netfd: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=netfd)
    try:
        chunks = []
        while True:
            b = os.read(fd, READ_CHUNK)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_table(netfd: int, table: int, big_endian: bool, keep: Callable[[tuple], bool],
               out: List[tuple], strings: bytearray) -> int:
    """Append the table's kept records to `out`; returns the malformed line count.

    Raises OSError like the C reader fails (the caller classifies it).
    """
    lines = read_all(netfd, TABLE_FILES[table]).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()                 # the text ends with a newline
    recs, skipped = decode_lines(table, lines[1:], big_endian, strings)   # lines[0]: header
    # (a dropped unix record leaves its path in the pool: harmless, nothing points at it)
    out.extend(r for r in recs if keep(r))
    return skipped
