"""The command line, part two: option parsing, usage errors, --version and --help,
hostile names, service and host names, and the exact layout on a fixture tree.

(test_cli.py has the flags, filters, netstat comparison, JSON and -c.)
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import procnet
from procnet import _backend
from procnet.cli import args as cli_args
from procnet.cli.names import Hosts, Services, escape

from cli_support import (ENV, inet_by, me, ok, run, service_name, unix_by_inode)
from cli_support import socks  # noqa: F401  (a fixture)
from procfs_tree import be_words, inet_line, le_words, make_tree, sock, unix_line

LIVE = pytest.mark.live


# -- option parsing ----------------------------------------------------------


@pytest.mark.parametrize("argv,interval", [
    (["-tulpnc"], 1.0), (["-tulpnc", "2"], 2.0), (["-tulpnc2"], 2.0), (["-ctulpn"], 1.0),
    (["-tulpn", "-c", "0.5"], 0.5), (["-tc0.25", "-ulpn"], 0.25), (["-tulpn", "--continuous"], 1.0),
    (["--continuous=3", "-tulpn"], 3.0), (["--tcp", "--udp", "--listening", "--program", "--numeric",
                                             "-c"], 1.0),
])
def test_continuous_flag_in_clusters(argv, interval):
    o = cli_args.parse(argv)
    assert o.interval == interval
    assert o.program and o.mode == "listening" and o.numeric_hosts and o.numeric_ports
    assert o.tables == {"tcp", "tcp6", "udp", "udp6", "udplite", "udplite6"}


@pytest.mark.parametrize("short,long", [
    ("-tulpn", "--tcp --udp --listening --program --numeric"),
    ("-wxae46", "--raw --unix --all --extend --inet --inet6"),
    ("-tc", "--tcp --continuous"), ("-tc3", "--tcp --continuous 3"), ("-tW", "--tcp --wide"),
])
def test_long_options_mean_the_short_ones(short, long):
    assert cli_args.parse([short]) == cli_args.parse(long.split())


@LIVE
def test_long_options_run(socks):
    rows = inet_by(ok("--tcp", "--listening", "--numeric", "--program", "--extend").stdout)
    r, = rows["127.0.0.1:%d" % socks.port("tcp_listen")]
    assert (r["State"], r["Inode"], r["PID/Program name"]) == ("LISTEN", str(socks.inode("tcp_listen")), me())


def test_option_semantics():
    o = cli_args.parse([])
    assert o.mode == "connected" and "unix" in o.tables and o.inet_section and o.unix_section
    assert o.interval is None and not o.program
    o = cli_args.parse(["-4"])
    assert not o.unix_section and o.tables == {"tcp", "udp", "udplite", "raw"}
    o = cli_args.parse(["-x"])
    assert o.tables == {"unix"} and not o.inet_section
    assert cli_args.parse(["--port", "22"]).mode == "all"
    assert cli_args.parse(["-l", "--port", "22"]).mode == "listening"
    assert cli_args.parse(["--proto", "icmp"]).tables == {"icmp"}
    assert cli_args.parse(["--state", "listening"]).states == ("LISTEN",)
    assert cli_args.parse(["-W", "-e"]).extend


# -- errors, version, help -------------------------------------------------------


@pytest.mark.parametrize("argv,names", [
    (["--port", "abc"], "--port"), (["--port", "70000"], "--port"), (["--pid", "x"], "--pid"),
    (["--pid", "0"], "--pid"), (["--bogus"], "--bogus"), (["-tulpnq"], "-q"), (["-c", "0"], "-c"),
    (["-c", "soon"], "-c"), (["--state", "sleepy"], "--state"),
    (["--user", "no-such-user-procnet"], "--user"), (["--proto", "ipx"], "--proto"),
    (["--backend", "rust"], "--backend"),
])
def test_usage_errors(argv, names):
    p = run(*argv)
    assert p.returncode == 2, p.stderr
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("procnet: ") and names in lines[0], p.stderr


def test_proc_root_errors():
    missing = tempfile.mkdtemp(prefix="procnet-cli-root-")
    try:
        for root in (os.path.join(missing, "nope"), missing):       # missing; no net/ inside
            p = run("-tln", "--proc-root", root)
            assert p.returncode == 1 and p.stdout == ""
            lines = p.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("procnet: ") and root in lines[0], p.stderr
    finally:
        shutil.rmtree(missing)


def test_version_and_backend():
    p = run("--version")
    first, bpf = p.stdout.splitlines()
    assert p.returncode == 0 and first == "procnet %s (backend: %s)" % (procnet.__version__, procnet.backend)
    assert bpf.startswith("BPF owner source: ")
    why = _backend.resolve("pure")[1].bpf_load()          # the reason, as the backend gives it
    assert "pure" in why
    assert run("-V", "--backend", "pure").stdout.splitlines() == [
        "procnet %s (backend: pure)" % procnet.__version__,
        "BPF owner source: unavailable (%s)" % why]


def test_help_reads_like_a_man_page():
    p = run("--help")
    assert p.returncode == 0 and p.stderr == ""
    out = p.stdout
    assert out.startswith("usage: procnet [-tuwxlanpe46] [-c [SECONDS]] [--json] [filters]\n")
    assert "examples:" in out and "procnet -tulpn" in out and "differences from netstat" in out
    for opt in ("--tcp", "--udp", "--raw", "--unix", "--listening", "--all", "--numeric", "--program",
                "--extend", "--continuous", "--json", "--port", "--pid", "--user", "--state", "--proto",
                "--backend", "--proc-root", "--version", "--inet", "--inet6"):
        assert opt in out, opt


def test_console_script_if_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "procnet")
    if not os.access(exe, os.X_OK):
        pytest.skip("the procnet console script is not installed next to %s" % sys.executable)
    p = subprocess.run([exe, "--version"], capture_output=True, text=True, env=ENV, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("procnet %s (backend: " % procnet.__version__)


# -- hostile names ---------------------------------------------------------------


@LIVE
def test_hostile_names_escaped_in_table_intact_in_json(socks):
    out = ok("-xlp").stdout
    assert "\x1b" not in out and "\t" not in out and "\x7f" not in out
    rows = unix_by_inode(out)
    for name in ("unix_hostile", "unix_hostile2"):
        assert rows[socks.inode(name)]["Path"] == escape(socks.unix_path(name)), name
    assert rows[socks.inode("unix_hostile2")]["Path"].endswith("/tab\\tesc\\x1b[2J\\x7f.sock")
    if "\n" in socks.unix_path("unix_hostile"):
        assert rows[socks.inode("unix_hostile")]["Path"].endswith("evil\\nrow\\t\\x1b[31mred \\\\x41.sock")
    # one row each: nothing can start a line of its own
    assert len([l for l in out.splitlines() if socks.tmpdir + "/evil" in l]) == 1
    assert len([l for l in out.splitlines() if socks.tmpdir + "/tab" in l]) == 1
    out = ok("-tlnp", "--port", str(socks.port("shared"))).stdout
    assert "\x1b" not in out and len(out.splitlines()) == 3
    assert "%d/pn\\x1b[2J\\nfa\\tke\\xff" % socks.children["evil"] in out
    doc = json.loads(ok("--json", "-xl").stdout)
    paths = {c["inode"]: c["laddr"] for c in doc["connections"]}
    for name in ("unix_hostile", "unix_hostile2"):
        assert paths[socks.inode(name)] == socks.unix_path(name), name


def test_escape():
    assert escape("plain name with spaces") == "plain name with spaces"
    assert escape("a\nb\tc\rd\x1b[31m\x7f") == "a\\nb\\tc\\rd\\x1b[31m\\x7f"
    assert escape("back\\slash") == "back\\\\slash"
    assert escape(b"caf\xc3\xa9 \xff".decode("utf-8", "surrogateescape")) == "caf\u00e9 \\xff"
    assert escape("rtl\u202eoverride\u2028") == "rtl\\u202eoverride\\u2028"


# -- names -------------------------------------------------------------------------


def test_services_agree_with_getservbyport():
    s = Services()
    ports = list(range(1, 1100)) + [3306, 5353, 8080, 33434, 40000, 65535]
    for proto in ("tcp", "udp"):
        for port in ports:
            assert s.name(port, proto) == service_name(port, proto), (port, proto)
    assert Services("/nonexistent/services").name(22, "tcp") == service_name(22, "tcp")


def test_host_lookups_are_bounded_and_skip_loopback(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost loop\n::1 ip6-localhost\n10.1.2.3 box\n")
    import threading
    release = threading.Event()
    asked = []

    def slow(ip):
        asked.append(ip)
        if ip == "192.0.2.7":
            return ("fast.example", [], [ip])
        release.wait(10)
        raise OSError("timeout")

    h = Hosts(deadline=0.3, hosts_path=str(hosts), resolve=slow)
    try:
        t0 = time.monotonic()
        h.prepare(["127.0.0.1", "::1", "0.0.0.0", "::", "127.9.9.9", "10.1.2.3", "::ffff:127.0.0.1",
                   "192.0.2.1", "192.0.2.7"])
        assert time.monotonic() - t0 < 2
        assert h.name("127.0.0.1") == "localhost" and h.name("::1") == "ip6-localhost"
        assert h.name("::ffff:127.0.0.1") == "localhost" and h.name("10.1.2.3") == "box"
        assert h.name("0.0.0.0") == "" and h.name("::") == "" and h.name("127.9.9.9") == ""
        assert h.name("192.0.2.7") == "fast.example"
        assert h.name("192.0.2.1") is None                  # still in flight: numeric for now
        assert sorted(asked) == ["192.0.2.1", "192.0.2.7"]  # loopback never asked
    finally:
        release.set()


# -- a fixture tree: the whole layout, exactly ---------------------------------------


def _words(ip_bytes):
    return le_words(ip_bytes) if sys.byteorder == "little" else be_words(ip_bytes)


def test_exact_layout_on_a_fixture_tree(tmp_path):
    v4 = lambda ip: _words(socket.inet_pton(socket.AF_INET, ip))          # noqa: E731
    v6 = lambda ip: _words(socket.inet_pton(socket.AF_INET6, ip))         # noqa: E731
    root = make_tree(str(tmp_path / "proc"), net={
        "tcp": [inet_line(0, v4("127.0.0.1") + ":1F90", v4("0.0.0.0") + ":0000", 0x0A, 111, rx=3),
                inet_line(1, v4("10.0.0.1") + ":0016", v4("10.0.0.2") + ":C350", 0x01, 113, tx=1234567),
                inet_line(2, v4("10.0.0.1") + ":0016", v4("10.0.0.3") + ":C351", 0x06, 0)],
        "tcp6": [inet_line(0, v6("::1") + ":20FB", v6("::") + ":0000", 0x0A, 112)],
        "udp": [inet_line(0, v4("0.0.0.0") + ":14E9", v4("0.0.0.0") + ":0000", 0x07, 114)],
        "unix": [unix_line(201, "/run/x.sock", listening=True),
                 unix_line(202, "/tmp/evil\trow\x1b[2J", listening=True),
                 unix_line(203, stype=2, state=1), unix_line(204, state=3)],
    }, procs={
        812: {"comm": "nginx", "fd": {3: sock(111), 4: sock(111), 5: sock(201), 6: sock(112)}},
        813: {"comm": "nginx", "fd": {3: sock(111)}},
        900: {"comm": "evil\x1b[31m\n", "fd": {7: sock(202), 8: sock(204)}},
    })
    p = ok("-tuanp", "--proc-root", root)
    assert p.stdout == (
        "Active Internet connections (servers and established)\n"
        "Proto Recv-Q  Send-Q Local Address           Foreign Address         State       PID/Program name\n"
        "tcp        3       0 127.0.0.1:8080          0.0.0.0:*               LISTEN      812/nginx,813/nginx\n"
        "tcp        0 1234567 10.0.0.1:22             10.0.0.2:50000          ESTABLISHED -\n"
        "tcp        0       0 10.0.0.1:22             10.0.0.3:50001          TIME_WAIT   -\n"
        "tcp6       0       0 [::1]:8443              [::]:*                  LISTEN      812/nginx\n"
        "udp        0       0 0.0.0.0:5353            0.0.0.0:*                           -\n")
    p = ok("-xa", "--proc-root", root)
    assert p.stdout == (
        "Active UNIX domain sockets (servers and established)\n"
        "Proto Flags       Type       State         I-Node   Path\n"
        "unix  [ ACC ]     STREAM     LISTENING     201      /run/x.sock\n"
        "unix  [ ACC ]     STREAM     LISTENING     202      /tmp/evil\\trow\\x1b[2J\n"
        "unix  [ ]         DGRAM                    203\n"
        "unix  [ ]         STREAM     CONNECTED     204\n")
    p = ok("-xap", "--proc-root", root)
    assert "202      900/evil\\x1b[31m\\n   /tmp/evil\\trow\\x1b[2J\n" in p.stdout
    p = ok("-tlne", "--proc-root", root)
    assert p.stdout.splitlines()[1:3] == [
        "Proto Recv-Q Send-Q Local Address           Foreign Address         State       User       Inode",
        "tcp        3      0 127.0.0.1:8080          0.0.0.0:*               LISTEN      0          111"]
