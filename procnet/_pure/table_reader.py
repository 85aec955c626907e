"""Read one /proc/net table and decode it; twin of table_reader.c.

Same rules as C: large reads; the first line is the header; a line longer than
MAX_LINE bytes or holding a NUL is malformed; malformed lines are counted.
"""
import os
from typing import Callable, List, Optional, Tuple

from . import tables_inet, tables_netlink, tables_packet, tables_unix

MAX_LINE = 4096
READ_CHUNK = 256 * 1024
UNIX, PACKET, NETLINK = 10, 11, 12
TABLE_FILES = ("tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6",
               "icmp", "icmp6", "unix", "packet", "netlink")


def decode_line(table: int, line: bytes, big_endian: bool) -> Optional[Tuple[tuple, Optional[bytes]]]:
    """(raw record, unix path or None) for a well-formed line, else None."""
    if len(line) > MAX_LINE or b"\0" in line:
        return None
    if table < UNIX:
        rec = tables_inet.decode(table, line, big_endian)
    elif table == UNIX:
        return tables_unix.decode(line)
    elif table == PACKET:
        rec = tables_packet.decode(line)
    else:
        rec = tables_netlink.decode(line)
    return None if rec is None else (rec, None)


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
    skipped = 0
    append = out.append
    for line in lines[1:]:          # lines[0] is the header
        got = decode_line(table, line, big_endian)
        if got is None:
            skipped += 1
            continue
        rec, path = got
        if not keep(rec):
            continue
        if path is not None:
            rec = rec[:8] + (len(strings), len(path)) + rec[10:]
            strings += path
        append(rec)
    return skipped
