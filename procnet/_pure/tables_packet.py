"""Decoder for /proc/net/packet; twin of tables_packet.c.

``0000000000000000 3      3    0003   2     1 0      0      31337``: a SOCK_RAW
(3) packet socket for ETH_P_ALL (0003) bound to ifindex 2, running, uid 0.
"""
import re
from typing import List

from .._records import SF_PKT_RUNNING
from .._tables import PACKET
from .scan import DEC, U8, U32, U64, hexf

_RE = re.compile(b"^" + hexf(1, 16, False) + DEC + DEC + hexf(1, 4) + DEC + DEC + DEC + DEC + DEC
                 + rb"[ \t]*$", re.M)


def decode(lines: bytes) -> List[tuple]:
    """Newline-separated lines -> raw records of the well-formed ones."""
    out = []
    found = _RE.findall(lines)
    for groups in found:
        refcnt, stype, iface, running, rmem, uid, inode = (int(g) for i, g in enumerate(groups) if i != 2)
        if refcnt > U32 or stype > U8 or iface > U32 or running > 1 or rmem > U32 \
                or uid > U32 or inode > U64:
            continue
        out.append((inode, bytes(16), bytes(16), uid, 0, 0, 0, 0, iface, 0, 0, 0, int(groups[2], 16),
                    PACKET, 0, stype, 0, SF_PKT_RUNNING if running else 0))
    return out
