"""Decoder for /proc/net/packet; twin of tables_packet.c.

``0000000000000000 3      3    0003   2     1 0      0      31337``: a SOCK_RAW
(3) packet socket for ETH_P_ALL (0003) bound to ifindex 2, running, uid 0.
"""
import re
from typing import Optional

from .scan import DEC, U8, U32, U64, hexf

_RE = re.compile(hexf(1, 16, False) + DEC + DEC + hexf(1, 4) + DEC + DEC + DEC + DEC + DEC
                 + rb"[ \t]*\Z")
PACKET_TABLE = 11
SF_PKT_RUNNING = 8


def decode(line: bytes) -> Optional[tuple]:
    """One line -> a raw record, or None if malformed."""
    m = _RE.match(line)
    if m is None:
        return None
    refcnt, stype, proto, iface, running, rmem, uid, inode = (int(g, 16) if i == 2 else int(g)
                                                             for i, g in enumerate(m.groups()))
    if refcnt > U32 or stype > U8 or iface > U32 or running > 1 or rmem > U32 \
            or uid > U32 or inode > U64:
        return None
    return (inode, bytes(16), bytes(16), uid, 0, 0, 0, 0, iface, 0, 0, 0, proto,
            PACKET_TABLE, 0, stype, 0, SF_PKT_RUNNING if running else 0)
