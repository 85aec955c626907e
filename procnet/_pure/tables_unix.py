"""Decoder for /proc/net/unix; twin of tables_unix.c.

``0000000000000000: 00000002 00000000 00010000 0001 01 20311 /run/my app.sock``
is a listening (flags 00010000) stream (type 0001) socket bound to
``/run/my app.sock``: the path is the rest of the line after one space, spaces
and all. Abstract names start with ``@``; unnamed sockets have no path.
"""
import re
from typing import List

from .._records import SF_NO_UID, SF_UNIX_ACC
from .._tables import UNIX
from .scan import DEC, U64, hexf

_RE = re.compile(
    b"^" + hexf(1, 16, False) + b":" + hexf(1, 8, False) + hexf(1, 8, False)
    + hexf(1, 8) + hexf(1, 4) + hexf(1, 2) + DEC + rb"(?:( )([^\n]*))?$",
    re.M)

ACCEPTCON = 0x10000


def decode(lines: bytes, strings: bytearray) -> List[tuple]:
    """Newline-separated lines -> raw records of the well-formed ones; paths go to `strings`."""
    out = []
    found = _RE.findall(lines)
    for flags, stype, state, inode, sep, path in found:
        inode_i = int(inode)
        if inode_i > U64:
            continue
        sf = SF_NO_UID | (SF_UNIX_ACC if int(flags, 16) & ACCEPTCON else 0)
        off = len(strings)
        strings += path
        out.append((inode_i, bytes(16), bytes(16), 0, 0, 0, 0, 0, off if sep else 0, len(path), 0, 0, 0,
                    UNIX, int(state, 16), int(stype, 16) & 0xFF, 0, sf))
    return out
