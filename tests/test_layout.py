"""The pure twin mirrors the C core file for file, and both read one contract.

A step added to csrc/ without its twin (or a twin without its C file) fails
here, unless it is named below as native-only, with the reason.
"""
import os
import re

import procnet
from procnet import _records, _plan, _tables, _track

REPO = os.path.dirname(os.path.dirname(os.path.abspath(procnet.__file__)))
CSRC = os.path.join(REPO, "csrc")
PURE = os.path.join(REPO, "procnet", "_pure")

NATIVE_ONLY = {
    "owners_bpf": "the BPF owner source runs a program in the kernel: native-only",
    "bpf_load": "loads that program with libbpf",
    "change_track": "the Poller's change tracking runs BPF programs in the kernel; its decisions "
                    "are procnet/_track.py's, shared by both backends",
    "owners_hash": "the inode -> owners hash is a dict in owners_proc.py",
    "dirents": "getdents64; the twin lists directories with os.listdir",
    "netstat_render": "the CLI's table in C; the pure backend renders in Python (cli/netstat_render.py), "
                      "byte-identical by tests/test_render.py",
    "json_render": "the CLI's --json rows in C; cli/jsonout.py is its twin, byte-identical by "
                   "tests/test_render_json.py",
    "render_out": "the two renderers' output buffer and shared field text",
    "poll_carry": "a tracking Poller's carried polls (PN_Q_CARRY): change tracking is native-only",
}
PURE_ONLY = {"__init__": "the package's entry points"}


def _stems(folder, ext):
    return {f[:-len(ext)] for f in os.listdir(folder) if f.endswith(ext)}


def test_every_core_file_has_its_twin():
    c, py = _stems(CSRC, ".c"), _stems(PURE, ".py")
    assert sorted(c - py - set(NATIVE_ONLY)) == [], "C files without a pure twin"
    assert sorted(py - c - set(PURE_ONLY)) == [], "pure files without a C counterpart"
    assert sorted(set(NATIVE_ONLY) - c) == [], "native-only names that no longer exist"


def _defines(prefix):
    with open(os.path.join(CSRC, "procnet.h")) as f:
        return {m.group(1): int(m.group(2), 0) for m in
                re.finditer(r"^#define (%s\w*)\s+(\w+)" % prefix, f.read(), re.M)}


def test_python_constants_are_the_headers():
    # one place each on the Python side, equal to procnet.h
    d = _defines("PN_")
    assert [d["PN_" + n.upper()] for n in _tables.TABLES] == list(range(len(_tables.TABLES)))
    assert (d["PN_SF_NO_UID"], d["PN_SF_UNIX_ACC"], d["PN_SF_NO_NAME"], d["PN_SF_PKT_RUNNING"]) == (
        _records.SF_NO_UID, _records.SF_UNIX_ACC, _records.SF_NO_NAME, _records.SF_PKT_RUNNING)
    assert (d["PN_SRC_PROCFS"], d["PN_SRC_NETLINK"]) == (_plan.SRC_PROCFS, _plan.SRC_NETLINK)
    assert (d["PN_OWN_PROCFS"], d["PN_OWN_BPF"]) == (_plan.OWN_PROCFS, _plan.OWN_BPF)
    assert (d["PN_Q_TEXT_FALLBACK"], d["PN_Q_WALK_FALLBACK"]) == (
        _plan.Q_TEXT_FALLBACK, _plan.Q_WALK_FALLBACK)
    assert d["PN_STATE_UNIX_LISTEN"] == _tables.STATE_UNIX_LISTEN
    assert d["PN_DIAG_TCP46"] == _tables.DIAG_TCP46 == d["PN_NTABLES"]
    assert [d[k] for k in ("PN_CHG_NEW", "PN_CHG_FDS", "PN_CHG_EXIT", "PN_CHG_FORK",
                           "PN_CHG_FORK_SHARE", "PN_CHG_COMM", "PN_CHG_SOCK", "PN_CHG_SOCK_PRE",
                           "PN_TABLE_NONE")] == [
        _track.NEW, _track.FDS, _track.EXIT, _track.FORK, _track.FORK_SHARE, _track.COMM,
        _track.SOCK, _track.SOCK_PRE, _track.TABLE_NONE]


def test_bpf_record_kinds_are_the_headers():
    # the BPF program cannot include procnet.h (no libc headers for -target bpf)
    with open(os.path.join(CSRC, "bpf", "change_track.bpf.h")) as f:
        bpf = {m.group(1): int(m.group(2), 0) for m in
               re.finditer(r"^#define (PN_CHG_\w*)\s+(\w+)", f.read(), re.M)}
    assert bpf and bpf == {k: v for k, v in _defines("PN_CHG_").items()}

    def classes(path):
        with open(path) as f:
            return {m.group(1): int(m.group(2), 0) for m in
                    re.finditer(r"^#define (PN_SC_\w*)\s+(\w+)", f.read(), re.M)}
    sc = classes(os.path.join(CSRC, "bpf", "change_track.bpf.h"))
    assert sc and sc == classes(os.path.join(CSRC, "change_track.c"))


def test_twin_defines_no_table_constants_of_its_own():
    # constants and record indices come from _tables / _records, not copies
    pattern = re.compile(r"^(UNIX|PACKET|NETLINK|\w*_TABLE|SF_\w+|TABLE_FILES|R_\w+)\s*(,|=)", re.M)
    for name in sorted(os.listdir(PURE)):
        if name.endswith(".py"):
            with open(os.path.join(PURE, name)) as f:
                assert not pattern.search(f.read()), name


def test_no_module_outside_the_backends_imports_native():
    allowed = {"_backend.py", "_native.py"}
    imports = re.compile(r"^\s*(from\s+\S*_native\b|import\s+\S*_native\b|from\s+\S+\s+import\s.*\b_native\b)", re.M)
    for dirpath, _, files in os.walk(os.path.join(REPO, "procnet")):
        for name in files:
            if name.endswith(".py") and name not in allowed:
                with open(os.path.join(dirpath, name)) as f:
                    assert not imports.search(f.read()), os.path.join(dirpath, name)
