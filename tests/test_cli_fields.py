"""One formatter (procnet/cli/fields.py): the table, --events and JSON spell a socket's
values alike, --events keeps every value one field, and --help lists every JSON key.
"""
import json
import os
import re
import select
import socket
import subprocess
import sys
import time

import pytest

from procnet.cli.fields import escape_field

from cli_support import ENV, hosts_file_name, inet_by, ok, run, sections, service_name, unix_by_inode
from procfs_tree import be_words, inet_line, le_words, make_tree, sock, unix_line


def _words(ip: bytes) -> str:
    return le_words(ip) if sys.byteorder == "little" else be_words(ip)


def v4(ip: str) -> str:
    return _words(socket.inet_pton(socket.AF_INET, ip))


def v6(ip: str) -> str:
    return _words(socket.inet_pton(socket.AF_INET6, ip))


def fixture(tmp_path) -> str:
    """Loopback and wildcard addresses only: host names come from /etc/hosts, never DNS."""
    return make_tree(str(tmp_path / "proc"), net={
        "tcp": [inet_line(0, v4("127.0.0.1") + ":0050", v4("0.0.0.0") + ":0000", 0x0A, 111),
                inet_line(1, v4("127.0.0.1") + ":0016", v4("127.0.0.2") + ":C350", 0x01, 113)],
        "tcp6": [inet_line(0, v6("::1") + ":20FB", v6("::") + ":0000", 0x0A, 112)],
        "udp": [inet_line(0, v4("0.0.0.0") + ":0035", v4("0.0.0.0") + ":0000", 0x07, 114)],
        "unix": [unix_line(201, "/run/my app.sock", listening=True),
                 unix_line(202, "@abstract name", listening=True),
                 unix_line(203, "/tmp/back\\slash x20", listening=True),
                 unix_line(204, stype=2, state=1)],
    }, procs={
        # one process holding a socket on two fds; names with spaces, as comm allows
        42: {"comm": "tmux: server", "fd": {3: sock(111), 4: sock(111), 5: sock(201), 6: sock(202),
                                            7: sock(113), 8: sock(112), 9: sock(114)}},
        43: {"comm": "web", "fd": {3: sock(111), 4: sock(203)}},
    })


def events(root, *flags):
    p = ok("--events", *flags, "--proc-root", root)
    return p.stdout.splitlines()


def test_events_keep_every_value_one_field(tmp_path):
    root = fixture(tmp_path)
    lines = events(root, "-xanp")
    rows = {l.split()[2]: l.split() for l in lines}
    assert all(len(l.split()) == 6 for l in lines), lines
    assert rows["/run/my\\x20app.sock"] == ["open", "unix", "/run/my\\x20app.sock", "-", "LISTEN",
                                            "42/tmux:\\x20server"]
    assert rows["@abstract\\x20name"][4:] == ["LISTEN", "42/tmux:\\x20server"]
    assert rows["/tmp/back\\\\slash\\x20x20"][5] == "43/web"            # "\\x20" unambiguous
    assert rows["-"][:5] == ["open", "unix", "-", "-", "NONE"]              # unnamed: "-"
    # the table keeps spaces: its columns are aligned, the path is the last one
    table = unix_by_inode(ok("-xanp", "--proc-root", root).stdout)
    assert table[201]["Path"] == "/run/my app.sock" and table[202]["Path"] == "@abstract name"
    assert table[201]["PID/Program name"] == "42/tmux: server"


def test_owners_once_per_pid_everywhere(tmp_path):
    root = fixture(tmp_path)
    ev = [l.split() for l in events(root, "-tlnp")]
    listener, = [e for e in ev if e[2] == "127.0.0.1:80"]
    assert listener[5] == "42/tmux:\\x20server,43/web"       # 42 holds it on two fds: listed once
    rows = inet_by(ok("-tlnp", "--proc-root", root).stdout)
    assert rows["127.0.0.1:80"][0]["PID/Program name"] == "42/tmux: server,43/web"
    doc = json.loads(ok("--json", "-tln", "--proc-root", root).stdout)
    c, = [c for c in doc["connections"] if c["inode"] == 111]
    assert [(o["pid"], o["fd"]) for o in c["owners"]] == [(42, 3), (42, 4), (43, 3)]   # JSON: every fd


@pytest.mark.parametrize("numeric", [True, False])
def test_table_and_events_spell_addresses_alike(tmp_path, numeric):
    root = fixture(tmp_path)
    flags = "-tuan" if numeric else "-tua"
    ev = {}
    for l in events(root, flags):
        f = l.split()
        ev[(f[1], f[2])] = f[3]
    table = sections(ok(flags, "--proc-root", root).stdout)["inet"]
    assert len(table) == len(ev) == 4
    for r in table:
        assert ev[(r["Proto"], r["Local Address"])] == r["Foreign Address"], r
    local = {r["Local Address"] for r in table}
    if numeric:
        assert local == {"127.0.0.1:80", "127.0.0.1:22", "[::1]:8443", "0.0.0.0:53"}
    else:                                       # names, as netstat: /etc/hosts and services
        lo, lo6 = hosts_file_name("127.0.0.1") or "127.0.0.1", hosts_file_name("::1") or "[::1]"
        assert local == {"%s:%s" % (lo, service_name(80, "tcp")), "%s:%s" % (lo, service_name(22, "tcp")),
                         "%s:%s" % (lo6, service_name(8443, "tcp")), "0.0.0.0:%s" % service_name(53, "udp")}


def test_escape_field():
    assert escape_field("plain") == "plain"
    assert escape_field("a b") == "a\\x20b"
    assert escape_field("a\\x20b") == "a\\\\x20b"              # a literal backslash stays apart
    assert escape_field("tab\there\n") == "tab\\there\\n"


# -- --help lists every JSON key --------------------------------------------------------


def help_keys():
    """{label: set of keys} from the JSON part of --help."""
    text = run("--help").stdout
    part = text[text.index("JSON (--json)"):]
    part = part[:part.index("\n\n")]
    out = {}
    for label in ("document", "connection", "address", "owner", "event"):
        m = re.search(r"^  %s:\s*\{([^}]*)\}" % label, part, re.M)
        assert m, label
        out[label] = set(re.findall(r'"(\w+)"', m.group(1)))
    return out


def _read_json_lines(p, n, timeout=20.0):
    out, buf, end = [], b"", time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        if select.select([p.stdout], [], [], 0.2)[0]:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            out += [json.loads(l) for l in done]
    return out


def test_help_lists_every_json_key(tmp_path):
    keys = help_keys()
    root = fixture(tmp_path)
    doc = json.loads(ok("--json", "-tuxan", "--proc-root", root).stdout)
    assert set(doc) == keys["document"]
    conns = doc["connections"]
    assert conns and all(set(c) == keys["connection"] for c in conns)
    inet = [c for c in conns if c["family"] != "AF_UNIX"]
    assert inet and all(set(c["laddr"]) == set(c["raddr"]) == keys["address"] for c in inet)
    assert all(set(o) == keys["owner"] for c in conns for o in c["owners"])
    # events: an open, then an owners event (a new process takes the listener)
    p = subprocess.Popen([sys.executable, "-m", "procnet", "--events", "--json", "-tlnp", "-c", "0.1",
                          "--port", "80", "--proc-root", root], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=ENV)
    try:
        opened = _read_json_lines(p, 1)
        make_tree(root, procs={44: {"comm": "late", "fd": {5: sock(111)}}})
        changed = _read_json_lines(p, 1)
    finally:
        p.kill()
        p.communicate(timeout=10)
    assert [e["event"] for e in opened] == ["open"] and [e["event"] for e in changed] == ["owners"]
    every = keys["event"] | keys["connection"]
    assert set(changed[0]) == every
    assert set(opened[0]) == every - {"old_owners"}
