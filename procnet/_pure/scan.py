"""Regex fragments that accept exactly what csrc/scan.c's scanners accept.

C skips blanks (space, tab) before a field, reads a maximal run of digits and
fails if the run is too long; ``(?!...)`` lookaheads make each regex run maximal
too, so backtracking can never split a field the way C would not.
Decimal bounds (C's ``max`` argument) are checked by each decoder after matching.
"""
BLANK = rb"[ \t]*"
DEC = BLANK + rb"([0-9]+)(?![0-9])"
NEG_DEC = BLANK + rb"-?" + DEC          # C: skip blanks, optional '-', scan_dec


def hexf(lo: int, hi: int, capture: bool = True) -> bytes:
    body = rb"[0-9A-Fa-f]{%d,%d}" % (lo, hi)
    if capture:
        body = b"(" + body + b")"
    return BLANK + body + rb"(?![0-9A-Fa-f])"


U8 = 0xFF
U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF
