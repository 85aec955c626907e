"""A poll against the last one; twin of poll_diff.c.

Sockets are matched to the last poll by identity (table and inode; the
addresses for inode 0), and only new or changed records are handed over:
``take`` says, per socket of the poll, which object to use.
"""
from typing import Any, Dict, List, Tuple

from .._records import (
    R_EXT,
    R_EXT_LEN,
    R_FLAGS,
    R_INODE,
    R_LADDR,
    R_LPORT,
    R_NETNS,
    R_OWNER_COUNT,
    R_OWNER_FIRST,
    R_RADDR,
    R_RPORT,
    R_STATE,
    R_TABLE,
    Owner,
    _Context,
)
from .._tables import SCTP_TABLES, UNIX
from .cache import Cache

REBASE_SLACK = 1024     # at least; and half the poll's sockets (poll_diff.c)
CH_SAME, CH_OPENED, CH_OWNERS, CH_MODIFIED = 0, 1, 2, 3     # PN_CH_* in csrc/procnet.h


def _identity(r: tuple) -> tuple:
    if r[R_INODE] and r[R_TABLE] not in SCTP_TABLES:
        return (r[R_TABLE], r[R_INODE])
    # inode 0 (TIME_WAIT, SYN_RECV), and an SCTP socket's endpoint and associations
    # (one inode): the addresses, in their namespace, and whether an association
    return (r[R_TABLE], r[R_INODE], r[R_STATE] >= 16, r[R_NETNS], r[R_LADDR], r[R_RADDR],
            r[R_LPORT], r[R_RPORT])


# same_fields(): every field but the owner slice (R_OWNER_FIRST, R_OWNER_COUNT)
_BEFORE_OWNERS = slice(R_LADDR, R_OWNER_FIRST)              # laddr raddr uid tx rx
_EXT = slice(R_EXT, R_EXT_LEN + 1)
# lport .. flags, as C's same_fields (netns belongs to the identity, reserved to no one)
_AFTER_EXT = slice(R_LPORT, R_FLAGS + 1)


def _same_fields(a: tuple, sa: bytes, b: tuple, sb: bytes) -> bool:
    if a[_BEFORE_OWNERS] != b[_BEFORE_OWNERS] or a[_AFTER_EXT] != b[_AFTER_EXT]:
        return False
    if a[R_TABLE] == UNIX:      # ext is the path's place in each poll's strings
        return sa[a[R_EXT]:a[R_EXT] + a[R_EXT_LEN]] == sb[b[R_EXT]:b[R_EXT] + b[R_EXT_LEN]]
    return a[_EXT] == b[_EXT]


def diff(c: Cache, recs: List[tuple], ctx: _Context) -> Tuple[List[tuple], _Context, Dict[str, Any]]:
    """pn_cache_diff: (handed-over records, their context, delta)."""
    strings, owners = ctx.strings, ctx._owners or []
    prev_recs, prev_owners, prev_strings = c.prev if c.prev is not None else ([], [], b"")
    np = len(prev_recs)
    index: Dict[tuple, List[int]] = {}
    for j, r in enumerate(prev_recs):
        index.setdefault(_identity(r), []).append(j)
    matched = bytearray(np)
    prevs: List[int] = []
    kinds: List[int] = []
    for r in recs:
        cands = index.get(_identity(r))
        if not cands:
            prevs.append(0xFFFFFFFF)
            kinds.append(CH_OPENED)
            continue
        j = cands.pop(0)
        matched[j] = 1
        p = prev_recs[j]
        oa = owners[r[R_OWNER_FIRST]:r[R_OWNER_FIRST] + r[R_OWNER_COUNT]]
        ob = prev_owners[p[R_OWNER_FIRST]:p[R_OWNER_FIRST] + p[R_OWNER_COUNT]]
        prevs.append(j)
        if [o[:2] for o in oa] != [o[:2] for o in ob]:
            kinds.append(CH_OWNERS)
        elif not _same_fields(r, strings, p, prev_strings) or [o[2] for o in oa] != [o[2] for o in ob]:
            kinds.append(CH_MODIFIED)
        else:
            kinds.append(CH_SAME)
    closed = [j for j in range(np) if not matched[j]]
    n = len(recs)
    changed = sum(1 for k in kinds if k != CH_SAME)
    rebased = c.prev is None or c.handed_since_rebase + changed > n + max(REBASE_SLACK, n // 2)
    take: List[int] = []
    sel: List[int] = []
    out_prev: List[int] = []
    out_kind = bytearray()
    for i in range(n):
        if rebased or kinds[i] != CH_SAME:
            take.append(np + len(sel))
            sel.append(i)
            out_prev.append(prevs[i])
            out_kind.append(kinds[i])
        else:
            take.append(prevs[i])
    c.handed_since_rebase = n if rebased else c.handed_since_rebase + len(sel)
    c.prev = (recs, owners, strings)
    if rebased:
        out_recs, out_ctx = list(recs), _Context(strings, list(owners))
    else:
        # compact: only what the handed-over records point into
        out_recs = []
        out_owners: List[Owner] = []
        out_strings = bytearray()
        for i in sel:
            r = recs[i]
            ext, n_ext, n_own = r[R_EXT], r[R_EXT_LEN], r[R_OWNER_COUNT]
            if r[R_TABLE] == UNIX and n_ext:
                ext = len(out_strings)
                out_strings += strings[r[R_EXT]:r[R_EXT] + n_ext]
            first = len(out_owners)
            out_owners.extend(owners[r[R_OWNER_FIRST]:r[R_OWNER_FIRST] + n_own])
            out_recs.append(r[:R_OWNER_FIRST] + (first, n_own, ext) + r[R_EXT_LEN:])
        out_ctx = _Context(bytes(out_strings), out_owners)
    unchanged = not rebased and not sel and n == np and take == list(range(n))
    delta = {"take": take, "prev": out_prev, "kind": bytes(out_kind), "closed": closed,
             "rebased": rebased, "nprev": np, "unchanged": unchanged}
    return out_recs, out_ctx, delta
