"""--json attacked as a hostile local user would: bytes, trees, stdouts and signals.

The core renders --json's rows (csrc/json_render.c through cli/core_render.py)
for a native one-shot run; everything else (the pure backend, -c, a --port cut
in Python...) is cli/jsonout.py written by cli/streams.Output. Either way the
document must be the same bytes (but "time" and "backend"), ASCII, valid JSON,
and every path or comm byte must come back (json.loads, then os.fsencode).
The command line is run as a user runs it (a subprocess, both backends); the
output side covers closed, read-only, full, size-limited, non-blocking and
early-closed stdouts and the signals a user sends while it blocks in write().
"""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from procfs_tree import inet_line, make_tree, sock, unix_line
from test_render import ENV, _opts_usable, hostile_tree
from procnet import _backend

pytestmark = pytest.mark.skipif(_backend.native_error() is not None, reason="native backend not built")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# what a hostile name may hold besides single bytes: lone continuation bytes, overlong
# forms, encoded surrogates (alone and as a CESU-8 pair), past U+10FFFF, leads past F4,
# truncated sequences, JSON's own specials, U+2028/9, noncharacters, a BOM, the extremes
SEQS = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xed\xa0\x80",
        b"\xed\xbf\xbf", b"\xed\xa0\x80\xed\xb0\x80", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
        b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3", b"\xe2\x80\xa8", b"\xe2\x80\xa9",
        b'"', b"\\", b"\\u0041", b'\\"', b"\xef\xbf\xbf", b"\xef\xbb\xbf", b"\xf4\x8f\xbf\xbf",
        b"\xf0\x90\x80\x80", b"\xc2\x80", b"\x7f", b"</script>", b"\x1b[2J"]


def _line(inode: int, path: bytes, **kw) -> str:
    return unix_line(inode, path.decode("latin-1"), **kw).encode("latin-1").decode("utf-8", "surrogateescape")


def cli(args, backend=None, env=None, timeout=120, **kw):
    e = dict(ENV if env is None else env)
    argv = [sys.executable, "-m", "procnet"] + list(args) + (["--backend", backend] if backend else [])
    kw.setdefault("capture_output", True)
    return subprocess.run(argv, env=e, timeout=timeout, **kw)


def rows(stdout: bytes) -> bytes:
    """The document from its "connections" key on (no string can hold that key's bytes:
    its quotes would be escaped)."""
    return stdout.split(b'"connections":', 1)[1]


def same_doc(a: bytes, b: bytes) -> dict:
    """Both documents equal but "time" and "backend", their rows equal byte for byte."""
    assert max(a, default=0) < 0x80 and max(b, default=0) < 0x80
    da, db = json.loads(a), json.loads(b)
    assert da.pop("backend") == "native" and db.pop("backend") == "pure"
    da.pop("time"), db.pop("time")
    assert da == db
    assert rows(a) == rows(b)
    return json.loads(a)


def cli_parity(args):
    """The same run with either backend: exit status, stderr and document."""
    a, b = cli(args, "native"), cli(args, "pure")
    assert (a.returncode, a.stderr) == (b.returncode, b.stderr), (args, a.stderr, b.stderr)
    if a.returncode == 0:
        return same_doc(a.stdout, b.stdout), a
    assert a.stdout == b.stdout == b""
    return None, a


# -- names and paths: every byte ------------------------------------------------------------

def _byte_tree(root):
    """Unix paths with each byte 0x01-0xff (a newline ends a /proc line), each of SEQS mid-
    path and at the end; comms with each byte, NUL, an embedded newline, 64 bytes, empty;
    a pid whose comm file is gone (name null)."""
    paths = [b"/p" + bytes([b]) + b"q" for b in range(1, 256) if b != 0x0A]
    for s in SEQS:
        paths += [b"/s" + s, b"/s" + s + b"z", s]
    lines = [_line(5000 + i, p, listening=True) for i, p in enumerate(paths)]
    comms = [bytes([b]) for b in range(1, 256) if b != 0x0A] + SEQS + [
        b"a\nb", b"nul\x00x", b"\x00", b"x" * 64, b"", b" ", b"trail\xe2\x82", b"\n"]
    procs = {1000 + i: {"comm": c, "fd": {3: sock(5000 + i % len(paths)), 4: sock(5000 + (i * 7) % len(paths))}}
             for i, c in enumerate(comms)}
    procs[9000] = {"comm": None, "fd": {3: sock(5000)}}
    make_tree(root, net={"unix": lines}, procs=procs)
    return paths, comms


@pytest.fixture(scope="module")
def byte_tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("bytes") / "proc")
    paths, comms = _byte_tree(root)
    return root, paths, comms


def test_every_byte_in_paths_and_comms_both_backends(byte_tree):
    root, paths, comms = byte_tree
    args = ["-xap", "--json", "--proc-root", root]
    assert _opts_usable(args)                    # native: the core renders the rows
    doc, _ = cli_parity(args)
    got = [os.fsencode(c["laddr"]) for c in doc["connections"]]
    assert sorted(got) == sorted(paths)
    names = {o["pid"]: o["name"] for c in doc["connections"] for o in c["owners"]}
    assert names.pop(9000) is None               # comm file absent: null, not ""
    assert {pid: os.fsencode(n) for pid, n in names.items()} == {1000 + i: c for i, c in enumerate(comms)}


def test_every_byte_in_paths_and_comms_listening_only(byte_tree):
    root, _, _ = byte_tree
    cli_parity(["-xlp", "--json", "--proc-root", root, "--state", "LISTEN"])


def test_utf8_validation_is_pythons_exhaustively(tmp_path, monkeypatch):
    """Every two-byte sequence led by 0x80-0xff, every lead E0-F4 with every second byte
    and edge third/fourth bytes, at the end of a path and inside it: the core's UTF-8
    check (pn_utf8_len) says valid exactly where Python's decoder does."""
    from test_render_json import render_both
    edge = [0x01, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xF4, 0xFF]
    seqs = []
    for a in range(0x80, 0x100):
        for b in range(1, 0x100):
            if b == 0x0A:
                continue
            seqs.append(bytes([a, b]))
            if a >= 0xE0:
                seqs += [bytes([a, b, c]) for c in edge]
            if a >= 0xF0 and b in edge:
                seqs += [bytes([a, b, c, d]) for c in edge for d in (0x41, 0x80, 0xBF, 0xC0)]
    paths = [p for s in seqs for p in (b"/" + s, b"/" + s + b"z")]
    root = make_tree(str(tmp_path / "proc"), net={"unix": [_line(10 + i, p) for i, p in enumerate(paths)]})
    core, py = render_both(["-xa", "--json", "--proc-root", root], tmp_path, monkeypatch)
    assert core == py and max(core) < 0x80
    assert [os.fsencode(c["laddr"]) for c in json.loads(core)["connections"]] == paths


def test_random_hostile_names_both_backends(tmp_path):
    """Seeded random runs of high bytes, quotes, backslashes and controls (sequences next
    to each other, valid and not): 5000 paths, 200 names, both backends, all recovered."""
    import random
    rnd = random.Random(20261130)
    pool = list(range(0x80, 0x100)) * 3 + [0x22, 0x5C, 0x7F, 0x01, 0x1F, 0x20, 0x41, 0x09, 0x0D]
    paths = [b"/" + bytes(rnd.choice(pool) for _ in range(rnd.randint(1, 40))) for _ in range(5000)]
    comms = [bytes(rnd.choice(pool) for _ in range(rnd.randint(0, 20))) for _ in range(200)]
    lines = [_line(10 + i, p, listening=True) for i, p in enumerate(paths)]
    root = make_tree(str(tmp_path / "proc"), net={"unix": lines},
                     procs={100 + i: {"comm": c, "fd": {3: sock(10 + i * 25)}} for i, c in enumerate(comms)})
    doc, _ = cli_parity(["-xap", "--json", "--proc-root", root])
    assert [os.fsencode(c["laddr"]) for c in doc["connections"]] == paths
    names = {o["pid"]: os.fsencode(o["name"]) for c in doc["connections"] for o in c["owners"]}
    assert names == {100 + i: c for i, c in enumerate(comms)}


def test_thousands_of_owners_both_backends(tmp_path):
    """One socket held by 3000 processes (its row ~0.4 MB, past the core's 64 KiB buffer
    many times), their names all escapes; a 107-byte path of invalid UTF-8."""
    name = b"\xff\x01\xed\xa0\x80\xf0\x9f\x98\x80\"\\"
    procs = {10000 + i: {"comm": name, "fd": {3: sock(111), 4 + i % 7: sock(222)}} for i in range(3000)}
    root = make_tree(str(tmp_path / "proc"), net={
        "tcp": [inet_line(0, "0100007F:1F90", "00000000:0000", 0x0A, 111)],
        "unix": [_line(222, b"\xff" * 107, listening=True)]}, procs=procs)
    doc, _ = cli_parity(["-tuxap", "--json", "--proc-root", root])
    assert [len(c["owners"]) for c in doc["connections"]] == [3000, 3000]
    assert {os.fsencode(o["name"]) for c in doc["connections"] for o in c["owners"]} == {name}


def test_numbers_at_their_limits_both_backends(tmp_path):
    """Inodes at 2**63 and 2**64-1, uid 2**32-1, queues at 0xffffffff, port 65535; inodes
    and uids past their width are malformed lines (counted), the same way in both."""
    root = make_tree(str(tmp_path / "proc"), net={
        "tcp": [inet_line(0, "0100007F:FFFF", "FFFFFFFF:0000", 0x0A, 2 ** 64 - 1, uid=2 ** 32 - 1,
                          tx=0xFFFFFFFF, rx=0xFFFFFFFF),
                inet_line(1, "0100007F:0001", "00000000:0000", 0x0A, 2 ** 63, uid=2 ** 32 - 2),
                inet_line(2, "0100007F:0002", "00000000:0000", 0x0A, 2 ** 64, uid=0),
                inet_line(3, "0100007F:0003", "00000000:0000", 0x0A, 2 ** 32, uid=2 ** 32)],
        "unix": [unix_line(2 ** 64 - 1, "/max", listening=True), unix_line(2 ** 32, "/big")]},
        procs={7: {"comm": "n", "fd": {3: sock(2 ** 64 - 1), 4: sock(2 ** 63), 5: sock(2 ** 32),
                                       6: sock(2 ** 64)}}})
    doc, p = cli_parity(["-tuxap", "--json", "--proc-root", root])
    assert b"skipped 2 malformed lines (tcp: 2)" in p.stderr
    assert {c["inode"] for c in doc["connections"]} == {2 ** 64 - 1, 2 ** 63, 2 ** 32}
    assert any(c["uid"] == 2 ** 32 - 1 and c["tx_queue"] == c["rx_queue"] == 0xFFFFFFFF
               for c in doc["connections"])


def test_sctp_every_state_both_backends(tmp_path):
    """Endpoint and association state codes 0-19 (named, unknown, and past the
    association offset), -a and -l."""
    from test_families import V6_LO, assoc_line, eps_line, sctp_tree
    eps, assocs, fds = [], [], {}
    ino = 50000
    for st in range(20):
        eps.append(eps_line(st % 3, st, 9000 + st, st, ino + 1, ["10.0.0.1"] if st % 2 else ["127.0.0.1", V6_LO]))
        assocs.append(assoc_line(2, st, 9000, 41000 + st, 0, ino + 2, ["10.0.0.1"], ["*10.0.0.9"]))
        fds[3 + 2 * st], fds[4 + 2 * st] = sock(ino + 1), sock(ino + 2)
        ino += 2
    root = make_tree(str(tmp_path / "proc"), net={"tcp": []}, procs={42: {"comm": b"sc\xfftp", "fd": fds}})
    sctp_tree(root, eps, assocs)
    for flags in ("-Sap", "-Slp", "-tSap"):
        doc, _ = cli_parity([flags, "--json", "--proc-root", root])
    assert doc is not None and len(doc["connections"]) == 40


def test_sctp_unknown_association_state_names_the_kernels_code(tmp_path):
    from test_families import assoc_line, sctp_tree
    root = make_tree(str(tmp_path / "proc"), net={"tcp": []})
    sctp_tree(root, [], [assoc_line(2, 8, 9000, 41000, 0, 777, ["10.0.0.1"], ["*10.0.0.9"])])
    doc, _ = cli_parity(["-Sa", "--json", "--proc-root", root])
    assert [c["state"] for c in doc["connections"]] == ["UNKNOWN_8"]


FILTERS = [["-l"], ["--state", "LISTEN"], ["--state", "ESTABLISHED", "--state", "TIME_WAIT"],
           ["--state", "NONE"], ["--state", "CONNECTED"], ["--pid", "101", "--pid", "200"], ["--pid", "99999"],
           ["--user", "3000"], ["--user", "root"], ["--user", "0", "--user", "1000"], ["--port", "53"],
           ["-l", "--port", "53"], ["-l", "--port", "53", "--port", "80"], ["-4"], ["-6"],
           ["-l", "-6", "--pid", "101", "--state", "LISTEN"], ["--all-netns"], ["-e", "-n"], ["-w", "-S", "-M"],
           ["--vsock", "--xdp"]]


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory):
    return hostile_tree(str(tmp_path_factory.mktemp("hostile") / "proc"))


@pytest.mark.parametrize("extra", FILTERS, ids=[" ".join(f) for f in FILTERS])
def test_every_filter_flag_both_backends(hostile_root, extra):
    cli_parity(["-tuxap", "--json", "--proc-root", hostile_root] + extra)


@pytest.mark.parametrize("flags", ["-tuxp", "-tuxlp", "-tuwxSMp", "-4tup", "-6xlp"])
def test_each_mode_both_backends(hostile_root, flags):
    """Connected (no -a, no -l), listening, and families: what the core's mode filter keeps."""
    doc, _ = cli_parity([flags, "--json", "--proc-root", hostile_root])
    assert doc["connections"]


# -- trees: missing, empty, odd files where tables and names should be --------------------------

def _odd_tables(base):
    def tree(name, **kw):
        return make_tree(os.path.join(base, name), **kw)
    unix = {"unix": [unix_line(1, "/x", listening=True)]}
    yield "empty", tree("empty")
    yield "empty files", tree("emptyfiles", net={"tcp": "", "unix": "", "udp": ""})
    yield "headers only", tree("hdr", net={"tcp": [], "unix": []})
    r = tree("fifo", net=unix)
    os.mkfifo(os.path.join(r, "net", "tcp"))           # opening it for reading would block forever
    yield "fifo", r
    r = tree("dir", net=unix)
    os.mkdir(os.path.join(r, "net", "tcp"))
    yield "directory", r
    r = tree("mode0", net=dict(unix, tcp=[]))
    os.chmod(os.path.join(r, "net", "tcp"), 0)
    yield "mode 000", r
    r = tree("loop", net=unix)
    os.symlink("tcp", os.path.join(r, "net", "tcp"))
    yield "symlink loop", r
    r = tree("zero", net=unix)
    os.symlink("/dev/zero", os.path.join(r, "net", "tcp"))
    yield "symlink to /dev/zero", r
    r = tree("sockfile", net=unix)
    yield "socket file", r


def test_odd_table_files_both_backends(tmp_path):
    """Missing, empty, a FIFO (must not block), a directory, unreadable, symlinks, a
    socket where a table file should be: each said the same way, nothing hangs."""
    import socket
    held = []
    for label, root in _odd_tables(str(tmp_path)):
        if label == "socket file":
            s = socket.socket(socket.AF_UNIX)
            s.bind(os.path.join(root, "net", "tcp"))
            held.append(s)
        doc, _ = cli_parity(["-tuxap", "--json", "--proc-root", root])
        assert doc is not None, label
        assert all(v == "read" or v == "missing" or v.startswith("error: ") for v in doc["tables"].values())
    for s in held:
        s.close()


@pytest.mark.parametrize("where", ["nonexistent", "a file", "/dev/null", "a fifo", "/", "/sys", "net is a file"])
def test_odd_proc_roots_both_backends(tmp_path, where):
    target = {"nonexistent": str(tmp_path / "none"), "a file": "/etc/passwd", "/dev/null": "/dev/null",
              "/": "/", "/sys": "/sys"}.get(where)
    if where == "a fifo":
        target = str(tmp_path / "fifo")
        os.mkfifo(target)
    elif where == "net is a file":
        target = make_tree(str(tmp_path / "proc"))
        shutil.rmtree(os.path.join(target, "net"))
        open(os.path.join(target, "net"), "w").close()
    _, p = cli_parity(["-tuxap", "--json", "--proc-root", target])
    assert p.returncode == 1 and p.stdout == b""
    assert p.stderr.decode().startswith("procnet: %s: " % target) and b"Traceback" not in p.stderr


def test_empty_proc_root_said_like_any_other(tmp_path):
    _, p = cli_parity(["-tuxap", "--json", "--proc-root", ""])
    assert p.returncode == 1
    assert b"[Errno" not in p.stderr and p.stderr.startswith(b"procnet: ")


@pytest.mark.root
def test_unreadable_tables_fds_and_names_both_backends(tmp_path):
    """Root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (setpriv) meets mode 000: a table
    (an error in "tables", said on stderr), a pid's fd directory and a whole pid directory
    (denied_pids), a comm file (name null)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv")
    root = make_tree(str(tmp_path / "proc"), net={
        "unix": [unix_line(11, "/a", listening=True), unix_line(12, "/b", listening=True)],
        "tcp": [inet_line(0, "0100007F:1F90", "00000000:0000", 0x0A, 13)], "udp": []},
        procs={5: {"comm": "x", "fd": {3: sock(11)}}, 6: {"comm": "y", "fd": {3: sock(12)}},
               7: {"comm": "z", "fd": {3: sock(13)}}, 8: {"comm": "w", "fd": {4: sock(12)}}})
    os.chmod(str(tmp_path), 0o755)
    for path in ("net/udp", "6/fd", "7/comm", "8"):
        os.chmod(os.path.join(root, path), 0)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    out = []
    for backend in ("native", "pure"):
        argv = drop + [sys.executable, "-m", "procnet", "-tuxap", "--json", "--proc-root", root, "--backend", backend]
        out.append(subprocess.run(argv, env=ENV, capture_output=True, timeout=60))
    a, b = out
    assert a.returncode == b.returncode == 0 and a.stderr == b.stderr
    assert a.stderr.decode().splitlines() == ["procnet: warning: could not read udp (Permission denied)"]
    doc = same_doc(a.stdout, b.stdout)
    assert doc["denied_pids"] == [6, 8] and doc["tables"]["udp"] == "error: Permission denied"
    assert not doc["complete"]
    assert {c["inode"]: c["owners"] for c in doc["connections"]} == {
        11: [{"pid": 5, "fd": 3, "name": "x"}], 12: [], 13: [{"pid": 7, "fd": 3, "name": None}]}


def test_owner_oddities_both_backends(tmp_path):
    """Pid directories that are not canonical numbers (leading zeros, signs, past 32 bits,
    non-ASCII digits), fd names likewise; comm a FIFO (must not block), a directory, a
    symlink to /dev/zero; a link with a malformed socket:[...] target."""
    root = make_tree(str(tmp_path / "proc"), net={"unix": [unix_line(11, "/a", listening=True),
                                                            unix_line(12, "/b", listening=True)]},
                     procs={5: {"comm": "five", "fd": {3: sock(11), 4: "socket:[12", 5: "socket:[]",
                                                       6: "socket:[-1]", 7: "socket:[99999999999999999999]",
                                                       8: "socket:[12]x"}},
                            11: {"comm": None, "fd": {3: sock(11)}}, 12: {"comm": "y", "fd_dir": False}})
    for d in ("0005", "+5", "4294967301", "18446744073709551621", "2147483648", "-5", "5 ", "\u0665"):
        os.makedirs(os.path.join(root, d, "fd"))
        with open(os.path.join(root, d, "comm"), "w") as f:
            f.write("pid%s\n" % d)
        os.symlink(sock(11), os.path.join(root, d, "fd", "3"))
    for f in ("03", "2147483648", "4294967299", "99999999999999999999", "-1", "+4", "0x5", " 6", "\u0667"):
        os.symlink(sock(12), os.path.join(root, "5", "fd", f))
    for pid, make in ((13, os.mkfifo), (14, os.makedirs), (15, lambda p: os.symlink("/dev/zero", p))):
        os.makedirs(os.path.join(root, str(pid), "fd"))
        make(os.path.join(root, str(pid), "comm"))
        os.symlink(sock(12), os.path.join(root, str(pid), "fd", "3"))
    doc, _ = cli_parity(["-xap", "--json", "--proc-root", root])
    owners = {(o["pid"], o["fd"]): o["name"] for c in doc["connections"] for o in c["owners"]}
    assert owners == {(5, 3): "five", (11, 3): None, (13, 3): None, (14, 3): None, (15, 3): None}


@pytest.fixture(scope="module")
def netns_root(tmp_path_factory):
    """1200 network namespaces, one listener each: the head Python writes (its
    "namespaces") is ~90 KB, more than the core's 64 KiB buffer."""
    from procfs_tree import HEADERS, host_words
    root = str(tmp_path_factory.mktemp("netns") / "proc")
    lo = host_words(bytes((127, 0, 0, 1)))
    make_tree(root, net={"tcp": []},
              procs={100 + i: {"comm": b"ns\xff%d" % i, "fd": {3: sock(10000 + i)}} for i in range(1200)})
    os.makedirs(os.path.join(root, "self", "ns"))
    os.symlink("net:[4026531840]", os.path.join(root, "self", "ns", "net"))
    for i in range(1200):
        pdir = os.path.join(root, str(100 + i))
        os.makedirs(os.path.join(pdir, "ns"))
        os.symlink("net:[%d]" % (4026540000 + i), os.path.join(pdir, "ns", "net"))
        os.makedirs(os.path.join(pdir, "net"))
        with open(os.path.join(pdir, "net", "tcp"), "w") as f:
            f.write(HEADERS["tcp"] + "\n" + inet_line(0, lo + ":%04X" % (1000 + i), "00000000:0000", 0x0A,
                                                      10000 + i) + "\n")
    return root


def test_a_head_past_the_core_buffer_both_backends(netns_root):
    doc, p = cli_parity(["-tap", "--json", "--all-netns", "--proc-root", netns_root])
    assert len(doc["namespaces"]) == 1200
    assert len(p.stdout.split(b'"connections":')[0]) > 65536 and len(doc["connections"]) == 1200


# -- stdout: closed, read-only, full, limited, non-blocking, closed early -------------------------

@pytest.fixture(scope="module")
def big_root(tmp_path_factory):
    """~300 KB of JSON: more than a pipe holds, more than the core's buffer."""
    procs = {10000 + i: {"comm": b"w\xff\"\\%d" % i, "fd": {3: sock(111), 4: sock(222), 5: sock(333)}}
             for i in range(2000)}
    return make_tree(str(tmp_path_factory.mktemp("big") / "proc"), net={
        "tcp": [inet_line(0, "0100007F:1F90", "00000000:0000", 0x0A, 111),
                inet_line(1, "0100007F:D431", "0100007F:1F90", 0x01, 333)],
        "unix": [_line(222, b"/run/\xed\xa0\x80" * 20, listening=True)]}, procs=procs)


def _env(unbuffered: bool):
    env = dict(ENV)
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def _whole(root, backend, args=("-tuxap", "--json")):
    p = cli(list(args) + ["--proc-root", root], backend, env=_env(False))
    assert p.returncode == 0
    return p.stdout


@pytest.mark.parametrize("backend", ["native", "pure"])
@pytest.mark.parametrize("how", ["closed", "read-only", "/dev/full"])
def test_unwritable_stdout_is_a_write_error(big_root, backend, how):
    args = ["-tuxap", "--json", "--proc-root", big_root]
    if how == "closed":
        p = cli(args, backend, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, capture_output=False,
                preexec_fn=lambda: os.close(1))
        want = "Bad file descriptor"
    elif how == "read-only":
        with open(os.devnull, "rb") as ro:
            p = cli(args, backend, stdout=ro, stderr=subprocess.PIPE, capture_output=False)
        want = "Bad file descriptor"
    else:
        with open("/dev/full", "wb") as full:
            p = cli(args, backend, stdout=full, stderr=subprocess.PIPE, capture_output=False)
        want = "No space left on device"
    assert p.returncode == 1
    assert p.stderr.decode().splitlines() == ["procnet: write error: " + want]


def _limited(nbytes):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return pre


def _run_into_file(tmp_path, args, backend, env, limit):
    path = str(tmp_path / "out.json")
    with open(path, "wb") as f:
        p = cli(args, backend, env=env, stdout=f, stderr=subprocess.PIPE, capture_output=False,
                preexec_fn=_limited(limit))
    with open(path, "rb") as f:
        return p, f.read()


def _never_quietly_short(p, got, whole):
    """Either all of it and exit 0, or a write error and exit 1: never exit 0 with less."""
    if p.returncode == 0:
        json_doc = b'"connections":' in whole              # else the table: no clock in it
        assert (rows(got) == rows(whole)) if json_doc else (got == whole), \
            "exit 0 with %d of %d bytes" % (len(got), len(whole))
    else:
        assert p.returncode == 1 and p.stderr.decode().startswith("procnet: write error: "), p.stderr


# (backend, argv): the core's rows, the Python writer for the pure backend, and the Python
# writer for the native backend (a --port cut in Python; the table with names)
WRITERS = [("native", ("-tuxap", "--json")), ("pure", ("-tuxap", "--json")),
           ("native", ("-tuxap", "--json", "--port", "8080")), ("native", ("-tuxap",))]
WRITER_IDS = ["core-json", "pure-json", "python-json-native", "python-table-native"]


def _writer_cases():
    out = []
    for (backend, args), wid in zip(WRITERS, WRITER_IDS):
        for unbuffered in (False, True):
            out.append(pytest.param(backend, args, unbuffered,
                                    id="%s-%s" % (wid, "unbuffered" if unbuffered else "buffered")))
    return out


@pytest.mark.parametrize("backend,args,unbuffered", _writer_cases())
def test_file_size_limit_is_never_a_quiet_truncation(tmp_path, big_root, backend, args, unbuffered):
    """RLIMIT_FSIZE (Python ignores SIGXFSZ): the write that crosses it is short, the next
    fails with EFBIG -- as a nearly full disk does with ENOSPC."""
    whole = _whole(big_root, backend, args)
    assert len(whole) > 120000
    p, got = _run_into_file(tmp_path, list(args) + ["--proc-root", big_root], backend, _env(unbuffered), 100000)
    assert len(got) == 100000
    _never_quietly_short(p, got, whole)


def _nonblocking_run(args, backend, env):
    """Run with stdout a pipe its parent set O_NONBLOCK on, read nothing until it exits:
    (exit status, the bytes it wrote, stderr)."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    p = subprocess.Popen([sys.executable, "-m", "procnet"] + list(args) + ["--backend", backend], env=env,
                         stdout=w, stderr=subprocess.PIPE)
    os.close(w)
    got = bytearray()
    try:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            pytest.fail("a non-blocking stdout nobody reads: still running after 60 s")
        while True:
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            got += chunk
    finally:
        os.close(r)
    return p.returncode, bytes(got), p.stderr.read()


@pytest.mark.parametrize("backend,args,unbuffered", _writer_cases())
def test_nonblocking_stdout_is_never_a_quiet_truncation(big_root, backend, args, unbuffered):
    """O_NONBLOCK set on the pipe by the parent, nobody reading until the end: EAGAIN after
    64 KiB. No spin, no hang; all of it, or a write error."""
    whole = _whole(big_root, backend, args)
    t0 = time.monotonic()
    rc, got, err = _nonblocking_run(list(args) + ["--proc-root", big_root], backend, _env(unbuffered))
    assert time.monotonic() - t0 < 30
    _never_quietly_short(subprocess.CompletedProcess([], rc, got, err), got, whole)


def test_nonblocking_stdout_core_says_eagain_without_spinning(big_root):
    """What the core's path does today on EAGAIN: one failed write after what the pipe took,
    'write error: Resource temporarily unavailable', exit 1, in well under a second of CPU."""
    env = _env(False)
    r, w = os.pipe()
    os.set_blocking(w, False)
    p = subprocess.Popen([sys.executable, "-m", "procnet", "-tuxap", "--json", "--proc-root", big_root],
                         env=env, stdout=w, stderr=subprocess.PIPE)
    os.close(w)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    got = b""
    while True:
        chunk = os.read(r, 1 << 20)
        if not chunk:
            break
        got += chunk
    os.close(r)
    assert p.returncode == 1
    assert p.stderr.read().decode().splitlines() == ["procnet: write error: Resource temporarily unavailable"]
    assert len(got) == 65536 and rows(_whole(big_root, "native")).startswith(rows(got))
    assert usage.ru_utime + usage.ru_stime < 5


ZERO_WRITE_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>
/* write(1, ...) takes nothing and returns 0, as a driver or a FUSE file system may */
ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*real)(int, const void *, size_t);
    if (!real)
        real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    return fd == 1 && n > 0 ? 0 : real(fd, buf, n);
}
"""


@pytest.fixture(scope="module")
def zero_write_shim(tmp_path_factory):
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not cc:
        pytest.skip("no C compiler for the LD_PRELOAD shim")
    d = tmp_path_factory.mktemp("shim")
    (d / "zero.c").write_text(ZERO_WRITE_SHIM)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(d / "zero.so"), str(d / "zero.c"), "-ldl"], check=True)
    return str(d / "zero.so")


@pytest.mark.parametrize("backend,unbuffered", [pytest.param("native", False, id="core"),
                                                pytest.param("pure", False, id="pure-buffered"),
                                                pytest.param("pure", True, id="pure-unbuffered")])
def test_a_write_that_takes_nothing_is_an_error_not_a_spin(zero_write_shim, big_root, backend, unbuffered):
    env = _env(unbuffered)
    # after what is preloaded already: under ci/sanitize.sh the ASan runtime must come first
    env["LD_PRELOAD"] = " ".join(p for p in (env.get("LD_PRELOAD", ""), zero_write_shim) if p)
    p = subprocess.Popen([sys.executable, "-m", "procnet", "-tuxap", "--json", "--proc-root", big_root,
                          "--backend", backend], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail("still writing after 5 s: a spin")
    assert p.returncode == 1
    assert p.stderr.read().decode().startswith("procnet: write error: ")


@pytest.mark.parametrize("backend", ["native", "pure"])
def test_reader_gone_mid_row(big_root, backend):
    """The reader takes 70 000 bytes (inside a row, past the core's first buffer), then
    closes: exit 0, nothing said."""
    p = subprocess.Popen([sys.executable, "-m", "procnet", "-tuxap", "--json", "--proc-root", big_root,
                          "--backend", backend], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = 0
    while got < 70000:
        got += len(p.stdout.read(70000 - got))
    p.stdout.close()
    assert p.wait(60) == 0
    assert p.stderr.read() == b""


# -- signals while the write blocks ------------------------------------------------------------

@pytest.mark.parametrize("backend", ["native", "pure"])
@pytest.mark.parametrize("sig,want", [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM),
                                      (signal.SIGUSR1, -signal.SIGUSR1), (signal.SIGPIPE, 0),
                                      (signal.SIGWINCH, 0)],
                         ids=["SIGINT", "SIGTERM", "SIGUSR1", "SIGPIPE", "SIGWINCH"])
def test_signal_while_blocked_in_write(big_root, backend, sig, want):
    """Blocked in write() into a full pipe nobody reads: Ctrl-C is exit 130 and silence
    (no traceback); SIGTERM/SIGUSR1 kill as they would any program; an ignored SIGPIPE or
    SIGWINCH changes nothing: the whole document once the pipe is read."""
    whole = _whole(big_root, backend)
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-m", "procnet", "-tuxap", "--json", "--proc-root", big_root,
                          "--backend", backend], env=ENV, stdout=w, stderr=subprocess.PIPE)
    os.close(w)
    got = bytearray(os.read(r, 1))
    time.sleep(0.7)                        # the pipe is full: blocked in write()
    p.send_signal(sig)
    time.sleep(0.1)
    while True:
        chunk = os.read(r, 1 << 20)
        if not chunk:
            break
        got += chunk
    os.close(r)
    assert p.wait(60) == want
    err = p.stderr.read()
    assert b"Traceback" not in err and b"error" not in err
    if want == 0:
        a, b = json.loads(bytes(got)), json.loads(whole)
        a.pop("time"), b.pop("time")
        assert a == b and rows(bytes(got)) == rows(whole)
    else:
        assert len(got) < len(whole)


@pytest.mark.parametrize("backend,args,unbuffered", _writer_cases())
def test_stop_and_continue_while_blocked_in_write(big_root, backend, args, unbuffered):
    """Ctrl-Z then fg (SIGTSTP, SIGCONT) while blocked in write() into a full pipe: the
    interrupted write returns short (what the pipe took); the rest must still follow."""
    env = _env(unbuffered)
    whole = _whole(big_root, backend, args)
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-m", "procnet"] + list(args) + ["--proc-root", big_root,
                          "--backend", backend], env=env, stdout=w, stderr=subprocess.PIPE)
    os.close(w)
    got = bytearray(os.read(r, 1))
    time.sleep(0.7)                        # the pipe is full: blocked in write()
    p.send_signal(signal.SIGTSTP)
    time.sleep(0.2)
    p.send_signal(signal.SIGCONT)
    while True:
        chunk = os.read(r, 1 << 20)
        if not chunk:
            break
        got += chunk
    os.close(r)
    p.wait(60)
    _never_quietly_short(p, bytes(got), whole)
    assert p.returncode == 0


@pytest.mark.parametrize("which", ["rows", "head"])
def test_json_resumes_exactly_after_signals(tmp_path, big_root, netns_root, which):
    """A handler that returns (SIGUSR1), sent over and over while the core writes into a
    4 KiB pipe: each interrupted write goes back to Python and resumes where the bytes
    stopped (pn_render.skip), head and tail included -- nothing lost, nothing repeated."""
    import fcntl
    code = ("import signal, sys; signal.signal(signal.SIGUSR1, lambda *a: None); "
            "from procnet.cli import main; rc = main(sys.argv[1:]); "
            "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1]); sys.exit(rc)")
    if which == "rows":
        args = ["-tuxap", "--json", "--proc-root", big_root]
    else:                                  # a head longer than the core's buffer
        args = ["-tap", "--json", "--all-netns", "--proc-root", netns_root]
    want = _whole(args[-1], "native", args[:-2])
    rfd, wfd = os.pipe()
    fcntl.fcntl(wfd, 1031, 4096)                          # F_SETPIPE_SZ: the writer blocks often
    p = subprocess.Popen([sys.executable, "-c", code] + args, env=ENV, stdout=wfd, stderr=subprocess.PIPE)
    os.close(wfd)
    got = bytearray(os.read(rfd, 1000))
    sent = 0
    try:
        while True:
            if p.poll() is None:
                p.send_signal(signal.SIGUSR1)
                sent += 1
            time.sleep(0.001)
            chunk = os.read(rfd, 1000)
            if not chunk or len(got) > 2 * len(want):
                break
            got += chunk
    finally:
        os.close(rfd)
        p.wait(60)
    assert p.returncode == 0, p.stderr.read()
    assert sent > 20
    assert rows(bytes(got)) == rows(want)
    a, b = json.loads(bytes(got)), json.loads(want)
    a.pop("time"), b.pop("time")
    assert a == b


def test_json_resume_in_process_counts_the_calls(big_root):
    """The same in this process, through _native._render: SIGALRM every millisecond (its
    handler returns), a slow reader; the core is called again after interruptions and
    the bytes equal one uninterrupted call's."""
    from procnet._plan import plan
    from procnet._request import make_query
    _, impl = _backend.resolve("native")
    lib = impl.lib
    q = make_query("all", owners=True, proc_root=big_root)

    def render(fd):
        calls = []
        keep = []

        def counting(res, w):
            calls.append(1)
            return lib.pn_render_json(res, w)

        def setup(w, meta, records, keep_):
            head, tail = b'{"head":[', b'],"tail":1}\n'
            bh, bt = impl.ffi.new("char[]", head), impl.ffi.new("char[]", tail)
            keep_ += [bh, bt]
            keep.append(keep_)
            w.head, w.head_len, w.tail, w.tail_len = bh, len(head), bt, len(tail)

        assert impl._render(counting, q, plan(q, impl), fd, impl.RENDER_MODES["all"], setup) == 0
        return len(calls)

    rfd, wfd = os.pipe()
    chunks = []

    def drain(fd, slow):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            c = os.read(fd, 1000 if slow else 1 << 20)
            if not c:
                break
            chunks.append(c)
            if slow:
                time.sleep(0.0002)

    t = threading.Thread(target=drain, args=(rfd, False))
    t.start()
    render(wfd)
    os.close(wfd)
    t.join()
    os.close(rfd)
    want, chunks[:] = b"".join(chunks), []
    json.loads(want)

    hits = []
    old = signal.signal(signal.SIGALRM, lambda *a: hits.append(1))
    signal.siginterrupt(signal.SIGALRM, True)
    rfd, wfd = os.pipe()
    t = threading.Thread(target=drain, args=(rfd, True))
    t.start()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
        calls = render(wfd)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
        os.close(wfd)
        t.join()
        os.close(rfd)
    assert b"".join(chunks) == want
    assert len(hits) > 10 and calls > 1


# -- live: real names and processes --------------------------------------------------------------

HOLDER = r"""
import ctypes, os, socket, sys
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(bytes.fromhex(sys.argv[1])), 0, 0, 0)
held = []
for n in [bytes.fromhex(h) for h in sys.argv[2:]]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(n)
    s.listen()
    held.append(s)
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.mark.live
def test_live_names_every_byte_both_backends(tmp_path):
    """Processes named (prctl) with every byte 0x01-0xff, 15 at a time, holding unix
    sockets bound to abstract names and to files with each byte and each of SEQS (the
    netlink source gives the kernel's bytes exactly, newlines included)."""
    d = str(tmp_path).encode()
    names = []
    for b in range(1, 256):
        names.append(b"\x00pn-jh-%d-" % os.getpid() + bytes([b]) + b"t")
        if b != 0x2F:
            names.append(d + b"/p" + bytes([b]) + b"t")
    for i, s in enumerate(SEQS):
        names += [b"\x00pn-jh-%d-s%d-" % (os.getpid(), i) + s, d + b"/s%d-" % i + s.replace(b"/", b"|")]
    comms = [bytes(range(1 + 15 * k, min(16 + 15 * k, 256))) for k in range(17)]
    comms += [b"\xed\xa0\x80\xf4\x90\x80\x80\xe2", b"\n", b"trail\n", b'"\\\xe2\x80\xa8']
    holders = []
    try:
        for k, comm in enumerate(comms):
            mine = names[k::len(comms)]
            p = subprocess.Popen([sys.executable, "-c", HOLDER, comm.hex()] + [n.hex() for n in mine],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            holders.append((p, comm, mine))
        for p, _, _ in holders:
            assert p.stdout.readline() == b"ready\n"
        args = ["-xap", "--json"]
        for p, _, _ in holders:
            args += ["--pid", str(p.pid)]
        doc, _ = cli_parity(args)
        bound = {n if n[:1] != b"\x00" else b"@" + n[1:] for n in names}
        assert {os.fsencode(c["laddr"]) for c in doc["connections"]} == bound
        got = {o["pid"]: os.fsencode(o["name"]) for c in doc["connections"] for o in c["owners"]}
        assert got == {p.pid: comm[:15] for p, comm, _ in holders}
    finally:
        for p, _, _ in holders:
            p.stdin.close()
            p.wait(30)


@pytest.mark.live
@pytest.mark.root
def test_live_other_namespace_core_is_jsonout(tmp_path, monkeypatch):
    """A process in a network namespace of its own (unshare), named and bound with hostile
    bytes; --netns PID and --all-netns --pid PID: the core's rows are jsonout's."""
    from test_render_json import render_both
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    code = ("import ctypes, os, socket, sys\n"
            "ctypes.CDLL(None).prctl(15, ctypes.c_char_p(b'\\xed\\xa0\\x80\"\\\\\\x1b\\xf4\\x90\\x80\\x80'), 0, 0, 0)\n"
            "held = []\n"
            "for n in (b'\\x00pn-jh-ns\\xff\\xed\\xa0\\x80', b'\\x00pn-jh-ns\\xe2\\x80\\xa8\"\\\\'):\n"
            "    s = socket.socket(socket.AF_UNIX); s.bind(n); s.listen(); held.append(s)\n"
            "s = socket.socket(); s.bind(('0.0.0.0', 0)); s.listen(); held.append(s)\n"
            "print('ready', flush=True); sys.stdin.read()\n")
    p = subprocess.Popen(["unshare", "--net", sys.executable, "-c", code], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    try:
        if p.stdout.readline() != b"ready\n":
            pytest.skip("unshare --net failed")
        for extra in (["--netns", str(p.pid)], ["--all-netns", "--pid", str(p.pid)]):
            core, py = render_both(["-tuxap", "--json"] + extra, tmp_path, monkeypatch)
            assert core == py and max(core) < 0x80
            doc = json.loads(core)
            assert {os.fsencode(o["name"]) for c in doc["connections"] for o in c["owners"]} == {
                b'\xed\xa0\x80"\\\x1b\xf4\x90\x80\x80'[:15]}
            assert {os.fsencode(c["laddr"]) for c in doc["connections"] if c["proto"] == "unix"} == {
                b"@pn-jh-ns\xff\xed\xa0\x80", b'@pn-jh-ns\xe2\x80\xa8"\\'}
    finally:
        p.stdin.close()
        p.wait(30)


# -- the pure twin, loaded every way a caller loads it ----------------------------------------------

PURE_SNIPPETS = {
    "submodule": "import procnet._pure.snapshot as m; assert callable(m.snapshot) and m.Cache",
    "from-package": "from procnet._pure import snapshot as m; assert callable(m.snapshot)",
    "env": "import os, procnet; assert procnet.connections('all').backend == 'pure'",
    "argument": "import procnet; s = procnet.connections('all', backend='pure'); assert s.backend == 'pure'",
    "poller": ("import procnet\nwith procnet.Poller('inet', backend='pure') as p:\n"
               "    assert p.poll().snapshot.backend == 'pure'; p.lookup(lport=1)"),
    "psutil_compat": ("import os; from procnet import psutil_compat as pc; pc.net_connections('all'); "
                      "pc.Process(os.getpid()).net_connections('all')"),
    "backend-module": ("from procnet import _backend; n, m = _backend.resolve('pure'); "
                       "assert m.__name__ == 'procnet._pure.snapshot'"),
}


@pytest.mark.parametrize("name", sorted(PURE_SNIPPETS))
def test_pure_backend_in_a_fresh_interpreter(name):
    env = dict(ENV, PROCNET_BACKEND="pure")
    p = subprocess.run([sys.executable, "-c", PURE_SNIPPETS[name]], env=env, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()


def test_each_pure_module_imports_alone():
    """Every twin module first in a fresh interpreter: no import cycle left behind by the
    package no longer importing snapshot.py."""
    mods = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "procnet", "_pure"))
                  if f.endswith(".py") and f != "__init__.py")
    code = ("import subprocess, sys\n"
            "bad = []\n"
            "for m in sys.argv[1:]:\n"
            "    p = subprocess.run([sys.executable, '-c', 'import procnet._pure.' + m], capture_output=True)\n"
            "    if p.returncode: bad.append((m, p.stderr.decode().splitlines()[-1:]))\n"
            "print(bad)\n")
    p = subprocess.run([sys.executable, "-c", code] + mods, env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr


@pytest.mark.parametrize("argv", [["-tuxap", "--json"], ["-tuanp"], ["--version"], ["--format", "prom"]])
def test_cli_pure_backend_in_a_fresh_interpreter(argv):
    for env in (dict(ENV, PROCNET_BACKEND="pure"), ENV):
        p = cli(argv, None if "PROCNET_BACKEND" in env else "pure", env=env)
        assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr
        if "--json" in argv:
            assert json.loads(p.stdout)["backend"] == "pure"


def test_cli_pure_backend_polling_json_lines():
    """-c with --json on the pure backend (the Poller): JSON lines; a reader that leaves
    after the second ends it with exit 0."""
    p = subprocess.Popen([sys.executable, "-m", "procnet", "-tuap", "--json", "-c", "0.1", "--backend", "pure"],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = [p.stdout.readline(), p.stdout.readline()]
    p.stdout.close()
    assert p.wait(30) == 0
    assert all(json.loads(l)["backend"] == "pure" for l in lines)
    assert b"Traceback" not in p.stderr.read()
