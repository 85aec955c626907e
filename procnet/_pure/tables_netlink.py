"""Decoder for /proc/net/netlink; twin of tables_netlink.c.

``0000000000000000 0   812        00000551 0        0        0     2        0        24410``:
a NETLINK_ROUTE (0) socket with port id 812 in groups 0x551. No uid, no type.
"""
import re
from typing import List

from .._records import SF_NO_UID
from .._tables import NETLINK
from .scan import DEC, NEG_DEC, U8, U32, U64, hexf

_RE = re.compile(b"^" + hexf(1, 16, False) + DEC + DEC + hexf(1, 8) + NEG_DEC * 4 + DEC + DEC
                 + rb"[ \t]*$", re.M)


def decode(lines: bytes) -> List[tuple]:
    """Newline-separated lines -> raw records of the well-formed ones."""
    out = []
    found = _RE.findall(lines)
    for g in found:
        family, portid, groups, inode = int(g[0]), int(g[1]), int(g[2], 16), int(g[-1])
        if family > U8 or portid > U32 or any(int(x) > U64 for x in g[3:]):
            continue
        out.append((inode, bytes(16), bytes(16), 0, 0, 0, 0, 0, portid, groups, 0, 0, family,
                    NETLINK, 0, 0, 0, SF_NO_UID))
    return out
