"""--json rendered by the core (csrc/json_render.c) is cli/jsonout.py's, byte for byte.

The same snapshot both ways: the core writes the document to a file (the CLI's
path, cli/core_render.py: Python writes the keys around "connections", the core
the rows), and jsonout.document() + dumps() serialises the same records as
Connection.as_dict(). Fixture trees carry what a hostile local user can choose
(control characters, invalid UTF-8, surrogates made of it, astral characters,
quotes and backslashes); the live host adds every family it has. The wall
clock in "time" is pinned for both.
"""
import json
import os
import socket
import subprocess
import sys

import pytest

from procfs_tree import inet_line, make_tree, sock, unix_line
from test_render import ENV, _Out, _cli, _opts_usable, hostile_tree, live_extra, two_namespaces  # noqa: F401
from procnet import _backend
from procnet._records import build
from procnet.cli import core_render, jsonout, selection
from procnet.cli.args import parse

pytestmark = pytest.mark.skipif(_backend.native_error() is not None, reason="native backend not built")

NOW = 1796000000.123456


class _Clock:
    @staticmethod
    def time():
        return NOW


def render_both(argv, tmp_path, monkeypatch):
    """(the core's bytes, jsonout's bytes) of one snapshot."""
    monkeypatch.setattr(jsonout, "time", _Clock)
    opts = parse(argv)
    name, impl = _backend.resolve(opts.backend)
    assert name == "native" and opts.json
    seen = {}
    original = impl.render_json

    def spy(q, p, fd, mode, before):
        def wrapped(meta, records):
            seen["records"] = records()
            return before(meta, records)
        return original(q, p, fd, mode, wrapped)

    monkeypatch.setattr(impl, "render_json", spy)
    path = str(tmp_path / "core.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        assert core_render.usable(opts, _Out(fd)), argv
        core_render.show(opts, _Out(fd), lambda snap: seen.setdefault("snap", snap))
    finally:
        os.close(fd)
    with open(path, "rb") as f:
        core = f.read()
    records, ctx = seen["records"]
    _, port_in_core = selection.api_arguments(opts, opts.tables)
    conns = selection._select(opts, port_in_core, list(build(records, ctx)))
    return core, jsonout.dumps(jsonout.document(seen["snap"], conns)).encode("ascii")


OPTION_SETS = ["-tuaxnp", "-tulnp", "-tunp", "-xan", "-xl", "-tuwxae", "-4ta", "-6tua", "-tuwxaSM"]


@pytest.mark.parametrize("flags", OPTION_SETS)
def test_fixture_tree_parity(tmp_path, monkeypatch, flags):
    root = hostile_tree(str(tmp_path / "proc"))
    core, py = render_both([flags, "--json", "--proc-root", root], tmp_path, monkeypatch)
    assert core == py
    doc = json.loads(core)
    assert doc["time"] == NOW and doc["backend"] == "native"


def test_fixture_tree_keeps_every_byte(tmp_path, monkeypatch):
    """What a local user chose comes back exactly: json.loads, then os.fsencode."""
    root = hostile_tree(str(tmp_path / "proc"))
    core, _ = render_both(["-xanp", "--json", "--proc-root", root], tmp_path, monkeypatch)
    assert max(core) < 0x80                                  # ensure_ascii
    doc = json.loads(core)
    paths = {os.fsencode(c["laddr"]) for c in doc["connections"]}
    names = {os.fsencode(o["name"]) for c in doc["connections"] for o in c["owners"] if o["name"]}
    assert "\x1b".encode() + b"[2J" in b"".join(paths) and b"bad\xffutf8" in paths
    assert b"pn\x1b[2J\nfa\tke\xff" in names and b"\xf0\x9f\x98\x80" in names
    assert any(o["name"] is None for c in doc["connections"] for o in c["owners"])


@pytest.mark.parametrize("extra", [["--state", "LISTEN"], ["--pid", "101"], ["--user", "3000"],
                                   ["-l", "--port", "53"]])
def test_filters_parity(tmp_path, monkeypatch, extra):
    root = hostile_tree(str(tmp_path / "proc"))
    core, py = render_both(["-tuxlp" if "-l" in extra else "-tuxap", "--json", "--proc-root", root] + extra,
                           tmp_path, monkeypatch)
    assert core == py


def test_empty_and_several_namespaces_parity(tmp_path, monkeypatch):
    root = make_tree(str(tmp_path / "empty"), net={"tcp": [], "unix": []})
    core, py = render_both(["-tuaxp", "--json", "--proc-root", root], tmp_path, monkeypatch)
    assert core == py and json.loads(core)["connections"] == []
    root = two_namespaces(str(tmp_path / "proc"))
    core, py = render_both(["-tlp", "--json", "--all-netns", "--proc-root", root], tmp_path, monkeypatch)
    assert core == py and len(json.loads(core)["namespaces"]) == 2


def test_many_owners_and_long_paths(tmp_path, monkeypatch):
    """A socket held by 1000 processes: its rows run past the core's 64 KiB output buffer."""
    procs = {1000 + i: {"comm": "w\"\\%d" % i, "fd": {3: sock(111), 4: sock(222)}} for i in range(1000)}
    root = make_tree(str(tmp_path / "proc"), net={
        "tcp": [inet_line(0, "0100007F:1F90", "00000000:0000", 0x0A, 111)],
        "unix": [unix_line(222, "/run/" + "p" * 102, listening=True), unix_line(333, None, stype=2)]},
        procs=procs)
    core, py = render_both(["-tuaxp", "--json", "--proc-root", root], tmp_path, monkeypatch)
    assert core == py and len(core) > 65536


@pytest.mark.live
@pytest.mark.parametrize("flags", ["-tuaxp", "-tulp", "-tuwxaSM", "-tuwxaSM --vsock --xdp"])
def test_live_parity(tmp_path, monkeypatch, live_extra, flags):
    core, py = render_both(flags.split() + ["--json"], tmp_path, monkeypatch)
    assert core == py
    if "x" in flags:
        assert b"pn sp\\\\ace\\udcff" in core


@pytest.mark.live
def test_live_all_netns_parity(tmp_path, monkeypatch, live_extra):
    core, py = render_both(["-tuaxp", "--json", "--all-netns"], tmp_path, monkeypatch)
    assert core == py


@pytest.mark.live
def test_every_family_the_core_knows(live_extra, tmp_path):
    """Straight through the backend, with packet and netlink too (the CLI has no flag for
    them): the rows are Connection.as_dict() of the same snapshot's records."""
    from procnet._plan import plan
    from procnet._request import make_query
    name, impl = _backend.resolve("native")
    q = make_query("all", owners=True, proc_root="/proc")
    seen = {}
    try:
        pkt = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)    # protocol 0: receives nothing
    except PermissionError:
        pkt = None

    def before(meta, records):
        seen["records"] = records()
        return b"[", b"]"

    path = str(tmp_path / "rows.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        assert impl.render_json(q, plan(q, impl), fd, impl.RENDER_MODES["all"], before) == 0
    finally:
        os.close(fd)
        if pkt is not None:
            pkt.close()
    with open(path, "rb") as f:
        core = f.read()
    want = [c.as_dict() for c in build(*seen["records"])]
    assert core == json.dumps(want, separators=(",", ":")).encode("ascii")
    assert {"netlink", "unix", "tcp"} | ({"packet"} if pkt else set()) <= {c["proto"] for c in want}


def test_which_runs_the_core_renders_json():
    assert _opts_usable(["-tuanp", "--json"]) and _opts_usable(["-tuap", "--json"])
    assert _opts_usable(["-tuwxaSM", "--json", "--vsock", "--xdp"])
    for argv in (["-tuap", "--json", "-c", "1"], ["-tap", "--json", "--events"],
                 ["-ta", "--json", "--port", "22"], ["-ta", "--json", "--user", "0", "--user", "1"],
                 ["-tuap", "--json", "--backend", "pure"]):
        assert not _opts_usable(argv), argv


def test_cli_json_is_the_python_writers(tmp_path):
    root = hostile_tree(str(tmp_path / "proc"))
    core = _cli(["-tuaxp", "--json", "--proc-root", root], capture_output=True)
    py = _cli(["-tuaxp", "--json", "--proc-root", root, "--backend", "pure"], capture_output=True)
    assert core.returncode == py.returncode == 0 and core.stderr == py.stderr
    a, b = json.loads(core.stdout), json.loads(py.stdout)
    assert a.pop("time") and b.pop("time") and a.pop("backend") == "native" and b.pop("backend") == "pure"
    assert a == b


def test_cli_json_write_error_and_broken_pipe(tmp_path):
    root = hostile_tree(str(tmp_path / "proc"))
    with open("/dev/full", "wb") as full:
        p = _cli(["-tuaxp", "--json", "--proc-root", root], stdout=full, stderr=subprocess.PIPE)
    assert p.returncode == 1
    assert p.stderr.decode().splitlines()[-1] == "procnet: write error: No space left on device"
    p = subprocess.Popen([sys.executable, "-m", "procnet", "-tuaxp", "--json", "--proc-root", root], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(100)
    p.stdout.close()
    assert p.wait(60) == 0
    err = p.stderr.read()
    assert b"error" not in err and b"Traceback" not in err


def test_a_native_one_shot_run_imports_neither_twin_nor_poller(tmp_path):
    """What a core-rendered run (table or JSON) loads: not the pure twin (~25 ms), nor the
    Poller, nor the Python formatters; each would be paid by every cron-job run."""
    root = hostile_tree(str(tmp_path / "proc"))
    code = ("import sys; from procnet.cli import main; rc = main(sys.argv[1:]); "
            "print(sorted(m for m in sys.modules if m.startswith(('procnet._pure.', 'procnet.poller', "
            "'procnet.cli.fields', 'procnet.cli.names', 'procnet.cli.netstat_render', 'procnet.cli.jsonout'))), "
            "file=sys.stderr)")
    for argv, allowed in ((["-tulnp"], ["procnet._pure.file_read"]),
                          (["-tuaxnp", "--proc-root", root], ["procnet._pure.file_read"]),
                          (["-tuaxp", "--json", "--proc-root", root], ["procnet._pure.file_read",
                                                                       "procnet.cli.jsonout"])):
        p = subprocess.run([sys.executable, "-c", code] + argv, env=ENV, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        loaded = eval(p.stderr.strip().splitlines()[-1])
        assert set(loaded) <= set(allowed), (argv, loaded)
