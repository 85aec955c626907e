"""Differential test: the C decoders and their Python twins on near-valid input.

Valid lines of every table are mutated (characters replaced, inserted, deleted
from an alphabet that hits every scanner edge: hex digits, blanks, ':', '-',
NUL, high bytes); both backends must keep the same records and count the same
skipped lines.
"""
import os
import shutil
import tempfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from mutation import mutate  # noqa: E402
from procfs_tree import inet_line, make_tree, unix_line  # noqa: E402

SEEDS = {
    "tcp": [inet_line(0, "0100007F:1F90", "00000000:0000", 0x0A, 111, uid=1000),
            inet_line(12, "FFFFFFFF:0001", "0A000001:C000", 0x01, 18446744073709551615)],
    "tcp6": [inet_line(1, "0000000000000000FFFF00000100007F:0050", "00000000000000000000000001000000:D431", 6, 0)],
    "udp": ["  123: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 9001 2 0000000000000000 0"],
    "raw6": ["   58: 00000000000000000000000000000000:003A 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 77 2 0000000000000000 0"],
    "unix": [unix_line(5, "/run/a b", listening=True), unix_line(6, "@x\ty"), unix_line(7, None, stype=5, state=3)],
    "packet": ["0000000000000000 3      3    0003   2     1 0      0      31337"],
    "netlink": ["0000000000000000 0   812        00000551 0        0        0     2        0        24410",
                "ffff88800a1c2800 15  4294967295 ffffffff -1       0        0     2        0        24411"],
}
ALPHABET = b"0123456789abcdefABCDEFgxz :\t-\x00\xff/@\r\x0b"


@st.composite
def mutated(draw, table):
    return mutate(draw, st, draw(st.sampled_from(SEEDS[table])).encode(), ALPHABET)


@pytest.mark.parametrize("table", sorted(SEEDS))
@pytest.mark.parametrize("order", ["little", "big"])
def test_decoders_agree(both, table, order):
    native, pure = both
    tmp = tempfile.mkdtemp(prefix="procnet-fuzz-")
    try:
        @settings(max_examples=int(os.environ.get("PROCNET_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(mutated(table), min_size=1, max_size=6))
        def check(lines):
            text = b"header\n" + b"\n".join(lines) + b"\n"
            root = os.path.join(tmp, "p")
            shutil.rmtree(root, ignore_errors=True)
            make_tree(root, net={table: text})
            kind = {"tcp6": "tcp6", "raw6": "raw"}.get(table, table)
            a, b = (i.connections(kind, owners=False, proc_root=root, byteorder=order)
                    for i in (native, pure))
            assert [c.as_tuple() for c in a] == [c.as_tuple() for c in b], text
            assert a.skipped == b.skipped, text
        check()
    finally:
        shutil.rmtree(tmp)


LINKS = ["socket:[12345]", "socket:[]", "socket:[12x]", "socket:[18446744073709551615]",
         "socket:[18446744073709551616]", "pipe:[1]", "socket:[1", "socket:[%s]" % ("9" * 60),
         "socket:[ 1]", "/dev/null", "anon_inode:[eventfd]"]


def test_socket_link_parsers_agree(both):
    from procnet._core import ffi, lib
    from procnet._pure.owners_proc import parse_socket_link

    def c_parse(s):
        b = s.encode()
        out = ffi.new("uint64_t *")
        if len(b) >= 64:                 # C reads links into 64 bytes
            return None
        return out[0] if lib.pn_parse_socket_link(b, len(b), out) else None

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(st.sampled_from(LINKS),
                     st.builds(lambda d: "socket:[%s]" % d, st.text("0123456789x ]", max_size=25)),
                     st.text(max_size=20)))
    def check(s):
        if "\0" in s:
            return
        assert c_parse(s) == parse_socket_link(s), s
    check()


# -- whole fixture trees: tables, fd links and process names, hostile included --

SEED_INODES = [0, 5, 6, 7, 77, 111, 9001, 31337, 24410, 24411]     # the inodes in SEEDS
TARGETS = st.one_of(
    st.builds(lambda i: "socket:[%d]" % i, st.sampled_from(SEED_INODES)),
    st.sampled_from(["pipe:[3]", "/dev/null", "anon_inode:[eventfd]", "socket:[]", "socket:[1x]",
                     "socket:[%s]" % ("9" * 30), "socket:[ 7]", "/tmp/a b\n"]),
    st.text(min_size=1, max_size=40).filter(lambda t: "\0" not in t and "/" not in t[:1]))
COMMS = st.one_of(st.none(), st.binary(max_size=20).filter(lambda b: b"\0" not in b),
                  st.sampled_from([b"nginx", b"pn\x1b[2J\nfa\tke\xff", b"", b"\n\n"]))


@st.composite
def trees(draw):
    tables = {}
    for table in draw(st.lists(st.sampled_from(sorted(SEEDS)), unique=True, min_size=1, max_size=4)):
        lines = draw(st.lists(st.one_of(mutated(table), st.sampled_from([s.encode() for s in SEEDS[table]])),
                              max_size=5))
        tables[table] = b"header\n" + b"\n".join(lines) + draw(st.sampled_from([b"\n", b""]))
    procs = {}
    for pid in draw(st.lists(st.integers(1, 60), unique=True, max_size=6)):
        fds = draw(st.dictionaries(st.integers(0, 40), TARGETS, max_size=5))
        procs[pid] = {"comm": draw(COMMS), "fd": fds, "fd_dir": draw(st.booleans()) or bool(fds)}
    return tables, procs


def test_whole_trees_agree(both):
    native, pure = both
    tmp = tempfile.mkdtemp(prefix="procnet-trees-")
    try:
        @settings(max_examples=int(os.environ.get("PROCNET_FUZZ_EXAMPLES", "150")), deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(trees(), st.sampled_from(["little", "big"]))
        def check(tree, order):
            tables, procs = tree
            root = os.path.join(tmp, "p")
            shutil.rmtree(root, ignore_errors=True)
            make_tree(root, net=tables, procs=procs)
            a, b = (i.connections("all", proc_root=root, byteorder=order) for i in (native, pure))
            assert [c.as_tuple() for c in a] == [c.as_tuple() for c in b]
            assert (a.skipped, a.tables, a.denied_pids, a.processes) == \
                (b.skipped, b.tables, b.denied_pids, b.processes)
        check()
    finally:
        shutil.rmtree(tmp)
