"""Near-valid input for the parity fuzz tests: a seed line, up to four edits
(replace, insert, delete, duplicate a run) with bytes from an alphabet that
hits the scanners' edges. Both backends must keep the same records of it."""


def mutate(draw, st, base: bytes, alphabet: bytes) -> bytes:
    """Edit `base` as hypothesis draws (`st`: hypothesis.strategies)."""
    base = bytearray(base)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "dup"]))
        i = draw(st.integers(0, max(0, len(base) - 1)))
        c = draw(st.sampled_from(list(alphabet)))
        if op == "replace" and base:
            base[i] = c
        elif op == "insert":
            base.insert(i, c)
        elif op == "delete" and base:
            del base[i]
        elif op == "dup":
            j = draw(st.integers(i, len(base)))
            base[i:i] = base[i:j]
    return bytes(base)
