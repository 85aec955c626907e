"""The command line: netstat's flags and layout, filters, names, JSON, -c, errors, hostile names.

Every run is a real `python -m procnet` process against sockets this module
opens (cli_support.CliSockets), compared with what the test knows, with
procnet.connections() and with net-tools netstat.
"""
import collections
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import procnet
from procnet.cli import PARTIAL_WARNING
from procnet.cli import args as cli_args
from procnet.cli.names import Hosts, Services, escape

from cli_support import (ENV, HOSTILE_COMM, CliSockets, netstat_inet,
                         nobody_python, run, sections, unbracket)
from procfs_tree import be_words, inet_line, le_words, make_tree, sock, unix_line

LIVE = pytest.mark.live
ME = os.getpid()
with open("/proc/self/comm", "rb") as _f:
    MY_COMM = _f.read().rstrip(b"\n").decode("utf-8", "surrogateescape")


@pytest.fixture(scope="module")
def socks():
    s = CliSockets()
    try:
        yield s.open()
    finally:
        s.close()


def ok(*args, **kw):
    """Run procnet; it must succeed without a traceback."""
    p = run(*args, **kw)
    assert p.returncode == 0, (args, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def inet_by(out, col="Local Address"):
    rows = collections.defaultdict(list)
    for r in sections(out).get("inet", []):
        rows[r[col]].append(r)
    return rows


def unix_by_inode(out):
    return {int(r["I-Node"]): r for r in sections(out).get("unix", [])}


def me(name=MY_COMM):
    return "%d/%s" % (ME, escape(name))


def shared_owners(s):
    pids = sorted([(ME, MY_COMM), (s.children["child1"], "pn-child1"),
                   (s.children["evil"], HOSTILE_COMM.decode("utf-8", "surrogateescape"))])
    return ",".join("%d/%s" % (pid, escape(name)) for pid, name in pids)


# -- netstat's flags ---------------------------------------------------------


@LIVE
def test_tulpn_listeners_with_every_owner(socks):
    p = ok("-tulpn")
    out = p.stdout
    assert out.startswith("Active Internet connections (only servers)\n")
    assert "Active UNIX" not in out
    assert re.search(r"^Proto\s+Recv-Q Send-Q Local Address\s+Foreign Address\s+State\s+PID/Program name$",
                     out, re.M)
    rows = inet_by(out)
    r, = rows["127.0.0.1:%d" % socks.port("tcp_listen")]
    assert (r["Proto"], r["Foreign Address"], r["State"], r["PID/Program name"]) == (
        "tcp", "0.0.0.0:*", "LISTEN", me())
    r, = rows["[::1]:%d" % socks.port("tcp6_listen")]
    assert (r["Proto"], r["Foreign Address"], r["State"]) == ("tcp6", "[::]:*", "LISTEN")
    r, = rows["0.0.0.0:%d" % socks.port("tcp_any")]
    assert r["State"] == "LISTEN"
    r, = rows["127.0.0.1:%d" % socks.port("udp")]
    assert (r["Proto"], r["Foreign Address"], r["State"], r["PID/Program name"]) == (
        "udp", "0.0.0.0:*", "", me())
    r, = rows["[::1]:%d" % socks.port("udp6")]
    assert r["Proto"] == "udp6"
    if "udplite" in socks.socks:               # -u lists UDP-Lite too
        r, = rows["127.0.0.1:%d" % socks.port("udplite")]
        assert r["Proto"] == "udplite"
    # a listener shared by three processes, held twice by this one: each pid once
    r, = rows["127.0.0.1:%d" % socks.port("shared")]
    assert r["PID/Program name"] == shared_owners(socks)
    # established and connected sockets are not servers
    assert "127.0.0.1:%d" % socks.socks["tcp_client"].getsockname()[1] not in rows
    assert "127.0.0.1:%d" % socks.port("udp_connected") not in rows
    for line in out.splitlines():
        assert line == line.rstrip(), "trailing blanks: %r" % line


@LIVE
def test_atnp_all_tcp_states(socks):
    out = ok("-atnp").stdout
    assert out.startswith("Active Internet connections (servers and established)\n")
    rows = inet_by(out)
    assert {r["Proto"] for rs in rows.values() for r in rs} <= {"tcp", "tcp6"}
    lport = socks.port("tcp_listen")
    cport = socks.socks["tcp_client"].getsockname()[1]
    r, = rows["127.0.0.1:%d" % cport]
    assert (r["Foreign Address"], r["State"], r["PID/Program name"]) == (
        "127.0.0.1:%d" % lport, "ESTABLISHED", me())
    assert any(r["Foreign Address"] == "127.0.0.1:%d" % cport for r in rows["127.0.0.1:%d" % lport])
    c6 = socks.socks["tcp6_client"].getsockname()[1]
    r, = rows["[::1]:%d" % c6]
    assert r["Foreign Address"] == "[::1]:%d" % socks.port("tcp6_listen")
    assert rows["127.0.0.1:%d" % lport][0]["State"] in ("LISTEN", "ESTABLISHED")


@LIVE
def test_no_flags_is_netstat_default(socks):
    out = ok().stdout
    heads = [l for l in out.splitlines() if l.startswith("Active")]
    assert heads == ["Active Internet connections (w/o servers)", "Active UNIX domain sockets (w/o servers)"]
    assert "PID/Program name" not in out
    assert re.search(r"^Proto\s+Recv-Q Send-Q Local Address\s+Foreign Address\s+State$", out, re.M)
    host = _hosts_file_name("127.0.0.1") or "127.0.0.1"
    cport, lport = socks.socks["tcp_client"].getsockname()[1], socks.port("tcp_listen")
    rows = inet_by(out)
    r, = rows["%s:%s" % (host, _service(cport, "tcp"))]
    assert r["Foreign Address"] == "%s:%s" % (host, _service(lport, "tcp"))
    assert r["State"] == "ESTABLISHED"
    assert "%s:%s" % (host, _service(lport, "tcp")) not in [
        k for k, rs in rows.items() if any(x["State"] == "LISTEN" for x in rs)]
    unix = {r["Path"] for r in sections(out)["unix"]}
    assert socks.socks["unix_spaces"].getsockname() not in unix       # a listener


@LIVE
def test_xap_unix_layout(socks):
    out = ok("-xap").stdout
    assert out.startswith("Active UNIX domain sockets (servers and established)\n")
    assert "Active Internet" not in out
    assert re.search(r"^Proto Flags\s+Type\s+State\s+I-Node\s+PID/Program name\s+Path$", out, re.M)
    rows = unix_by_inode(out)
    r = rows[socks.inode("unix_spaces")]
    assert (r["Proto"], r["Flags"], r["Type"], r["State"], r["PID/Program name"], r["Path"]) == (
        "unix", "[ ACC ]", "STREAM", "LISTENING", me(), socks.socks["unix_spaces"].getsockname())
    assert rows[socks.inode("unix_abstract")]["Path"] == "@procnet-cli-%d" % ME
    r = rows[socks.inode("unix_dgram")]
    assert (r["Flags"], r["Type"], r["State"]) == ("[ ]", "DGRAM", "")
    r = rows[socks.inode("pair_a")]
    assert (r["State"], r["Path"]) == ("CONNECTED", "")
    assert rows[socks.inode("unix_bytes")]["Path"].endswith("/bad\\xff\\xfe.sock")


@LIVE
def test_xl_only_listening_unix(socks):
    out = ok("-xlp").stdout
    assert out.startswith("Active UNIX domain sockets (only servers)\n")
    rows = unix_by_inode(out)
    assert socks.inode("unix_spaces") in rows and socks.inode("unix_abstract") in rows
    assert socks.inode("unix_dgram") not in rows and socks.inode("pair_a") not in rows
    assert {r["State"] for r in rows.values()} == {"LISTENING"}


@LIVE
def test_extend_user_and_inode(socks):
    rows = inet_by(ok("-tlne").stdout)
    r, = rows["127.0.0.1:%d" % socks.port("tcp_listen")]
    assert (r["User"], r["Inode"]) == ("0" if os.geteuid() == 0 else str(os.geteuid()),
                                        str(socks.inode("tcp_listen")))
    rows = inet_by(ok("-tle", "--numeric-hosts", "--numeric-ports").stdout)
    r, = rows["127.0.0.1:%d" % socks.port("tcp_listen")]
    import pwd
    assert r["User"] == pwd.getpwuid(os.geteuid()).pw_name
    if "nobody" in socks.child_port:
        r, = rows["127.0.0.1:%d" % socks.child_port["nobody"]]
        assert r["User"] == pwd.getpwuid(65534).pw_name


@LIVE
def test_family_flags(socks):
    rows = inet_by(ok("-tln4").stdout)
    assert {r["Proto"] for rs in rows.values() for r in rs} == {"tcp"}
    assert "127.0.0.1:%d" % socks.port("tcp_listen") in rows
    rows = inet_by(ok("-tln6").stdout)
    assert {r["Proto"] for rs in rows.values() for r in rs} == {"tcp6"}
    assert "[::1]:%d" % socks.port("tcp6_listen") in rows
    out = ok("-ln4").stdout                   # netstat -4: every inet table of the family, no unix
    assert "Active UNIX" not in out
    assert {r["Proto"] for r in sections(out)["inet"]} <= {"tcp", "udp", "udplite", "raw"}
    assert "127.0.0.1:%d" % socks.port("udp") in inet_by(out)


@LIVE
def test_raw_state_and_protocol_as_netstat(socks):
    if "raw" not in socks.socks:
        pytest.skip("no raw socket: %s" % socks.skipped.get("raw"))
    ino = str(socks.inode("raw"))
    r, = [r for r in sections(ok("-wane").stdout)["inet"] if r["Inode"] == ino]
    assert (r["Proto"], r["Local Address"], r["Foreign Address"], r["State"]) == (
        "raw", "0.0.0.0:1", "0.0.0.0:*", "7")
    r, = [r for r in sections(ok("-wae", "--numeric-hosts").stdout)["inet"] if r["Inode"] == ino]
    assert r["Local Address"] == "0.0.0.0:" + (_protocol_name(1) or "1")


@LIVE
def test_names_without_n(socks):
    t0 = time.monotonic()
    out = ok("-tl").stdout
    assert time.monotonic() - t0 < 20
    host = _hosts_file_name("127.0.0.1") or "127.0.0.1"
    rows = inet_by(out)
    port = socks.port("tcp_listen")
    r, = rows["%s:%s" % (host, _service(port, "tcp"))]
    assert r["Foreign Address"] == "0.0.0.0:*"
    assert "0.0.0.0:%s" % _service(socks.port("tcp_any"), "tcp") in rows
    host6 = _hosts_file_name("::1") or "[::1]"
    assert "%s:%s" % (host6, _service(socks.port("tcp6_listen"), "tcp")) in rows


@LIVE
def test_backend_pure_same_rows(socks):
    mine = {"127.0.0.1:%d" % socks.port(n) for n in ("tcp_listen", "shared")}
    a = {k: v[0]["PID/Program name"] for k, v in inet_by(ok("-tlnp").stdout).items() if k in mine}
    b = {k: v[0]["PID/Program name"] for k, v in inet_by(
        ok("-tlnp", "--backend", "pure").stdout).items() if k in mine}
    assert a == b and len(a) == 2


# -- filters -----------------------------------------------------------------


@LIVE
def test_port_filter_local_or_remote(socks):
    lport = socks.port("tcp_listen")
    out = ok("--port", str(lport), "-n").stdout
    rows = sections(out)["inet"]
    cport = socks.socks["tcp_client"].getsockname()[1]
    assert sorted((r["Local Address"], r["Foreign Address"]) for r in rows) == sorted([
        ("127.0.0.1:%d" % lport, "0.0.0.0:*"),                    # the listener (-a implied)
        ("127.0.0.1:%d" % cport, "127.0.0.1:%d" % lport),          # remote port
        ("127.0.0.1:%d" % lport, "127.0.0.1:%d" % cport)])         # local port
    assert sections(out)["unix"] == []
    # repeatable; with -l the port goes to the core as lport
    u = socks.port("udp")
    rows = inet_by(ok("-ln", "--port", str(lport), "--port", str(u)).stdout)
    assert set(rows) == {"127.0.0.1:%d" % lport, "127.0.0.1:%d" % u}
    rows = inet_by(ok("-tlnp", "--port", str(lport)).stdout)
    assert set(rows) == {"127.0.0.1:%d" % lport}


@LIVE
def test_pid_user_state_proto_filters(socks):
    child = socks.children["child1"]
    rows = sections(ok("-anp", "--pid", str(child)).stdout)
    assert [(r["Local Address"], r["PID/Program name"]) for r in rows["inet"]] == [
        ("127.0.0.1:%d" % socks.port("shared"), "%d/pn-child1" % child)]
    assert rows["unix"] == []
    lp = "127.0.0.1:%d" % socks.port("tcp_listen")
    if "nobody" in socks.child_port:
        np_ = "127.0.0.1:%d" % socks.child_port["nobody"]
        rows = inet_by(ok("-tln", "--user", "nobody").stdout)
        assert np_ in rows and lp not in rows
        rows = inet_by(ok("-tln", "--user", "0").stdout)
        assert lp in rows and np_ not in rows
        rows = inet_by(ok("-tln", "--user", "root", "--user", "65534").stdout)
        assert lp in rows and np_ in rows
    rows = inet_by(ok("-tn", "--state", "established").stdout)
    assert {r["State"] for rs in rows.values() for r in rs} == {"ESTABLISHED"}
    assert "127.0.0.1:%d" % socks.socks["tcp_client"].getsockname()[1] in rows
    rows = inet_by(ok("-tn", "--state", "LISTEN", "--state", "ESTABLISHED").stdout)
    assert lp in rows and "127.0.0.1:%d" % socks.socks["tcp_client"].getsockname()[1] in rows
    rows = inet_by(ok("-n", "--proto", "tcp6").stdout)
    assert {r["Proto"] for rs in rows.values() for r in rs} == {"tcp6"}
    assert "[::1]:%d" % socks.port("tcp6_listen") in rows                # -a implied
    assert "[::1]:%d" % socks.socks["tcp6_client"].getsockname()[1] in rows
    rows = sections(ok("-n", "--proto", "udp", "--port", str(socks.port("udp"))).stdout)["inet"]
    assert [r["Local Address"] for r in rows] == ["127.0.0.1:%d" % socks.port("udp")]
    # unix LISTEN and NONE together (one kernel code, told apart by a flag)
    rows = unix_by_inode(ok("-x", "--state", "listen", "--state", "none").stdout)
    assert socks.inode("unix_spaces") in rows and socks.inode("unix_dgram") in rows
    assert socks.inode("pair_a") not in rows


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


# -- netstat itself ------------------------------------------------------------


def _our_keys(text):
    """(proto, local, foreign) as netstat -n writes them -> (states, pids)."""
    out = collections.defaultdict(lambda: ([], set()))
    for r in sections(text)["inet"]:
        key = (r["Proto"], unbracket(r["Local Address"]), unbracket(r["Foreign Address"]))
        out[key][0].append(r["State"])
        for part in r["PID/Program name"].split(","):
            if part[:1].isdigit():
                out[key][1].add(int(part.split("/")[0]))
    return out


@LIVE
def test_rows_match_netstat(socks):
    netstat = shutil.which("netstat")
    if netstat is None:
        pytest.skip("net-tools netstat is not installed")
    # netstat -tulpan, plus -w (raw) and -W: netstat would otherwise cut long addresses
    # (procnet accepts -W and ignores it)
    a = _our_keys(ok("-tuwlpanW").stdout)
    n = subprocess.run([netstat, "-tuwlpanW"], capture_output=True, text=True, timeout=60)
    assert n.returncode == 0, n.stderr
    b = _our_keys(ok("-tuwlpan").stdout)
    theirs = collections.defaultdict(lambda: ([], set()))
    for proto, local, foreign, state, pid in netstat_inet(n.stdout):
        theirs[(proto, local, foreign)][0].append(state)
        if pid is not None:
            theirs[(proto, local, foreign)][1].add(pid)

    def key(name, proto):
        s = socks.socks[name]
        la = s.getsockname()
        try:
            ra = s.getpeername()
        except OSError:
            ra = ("::" if ":" in la[0] else "0.0.0.0", 0)
        return (proto, "%s:%d" % la[:2], "%s:%s" % (ra[0], ra[1] or "*"))

    own = [key("tcp_listen", "tcp"), key("tcp_client", "tcp"), key("tcp_accepted", "tcp"),
           key("tcp6_listen", "tcp6"), key("tcp6_client", "tcp6"), key("tcp_any", "tcp"),
           key("udp", "udp"), key("udp_connected", "udp"), key("udp6", "udp6"), key("shared", "tcp")]
    if "raw" in socks.socks:
        own.append(("raw", "0.0.0.0:1", "0.0.0.0:*"))
    for k in own:
        assert k in theirs, ("netstat lacks", k)
        assert k in a, ("procnet lacks", k)
        assert set(theirs[k][0]) == set(a[k][0]), k
        if k[0] == "raw":                     # "0.0.0.0:1" is every ICMP raw socket's key
            assert ME in theirs[k][1] and ME in a[k][1], k
        else:
            assert theirs[k][1] and theirs[k][1] <= a[k][1], (k, theirs[k][1], a[k][1])
    # every other socket listed by both, unchanged over the three runs: same states,
    # and (where the key names one socket) the pid netstat picked is one of procnet's owners
    common = [k for k in theirs if k in a and k in b and sorted(a[k][0]) == sorted(b[k][0])]
    assert len(common) >= len(own)
    for k in common:
        assert set(theirs[k][0]) == set(a[k][0]), (k, theirs[k][0], a[k][0])
        if len(theirs[k][0]) == len(a[k][0]) == 1:
            assert theirs[k][1] <= a[k][1] | b[k][1], (k, theirs[k][1], a[k][1], b[k][1])


# -- completeness as an unprivileged user ------------------------------------


@LIVE
def test_unprivileged_user_sees_dashes_and_warning(socks):
    pre, env, tmp, why = nobody_python()
    if not pre:
        pytest.skip(why)
    try:
        p = run("-tlnp", prefix=tuple(pre), env=env, cwd="/")
        q = run("-tln", prefix=tuple(pre), env=env, cwd="/")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().splitlines() == [PARTIAL_WARNING]
    rows = inet_by(p.stdout)
    r, = rows["127.0.0.1:%d" % socks.port("tcp_listen")]
    assert r["PID/Program name"] == "-"                    # root's process: not readable
    if "nobody" in socks.child_port:
        r, = rows["127.0.0.1:%d" % socks.child_port["nobody"]]
        assert r["PID/Program name"] == "%d/pn-nobody" % socks.children["nobody"]
    assert q.returncode == 0 and q.stderr == ""            # no -p: nothing to warn about


# -- JSON ----------------------------------------------------------------------


@LIVE
def test_json_matches_the_api(socks):
    p = ok("--json", "-tuwxan")
    assert p.stdout.count("\n") == 1 and p.stdout.isascii()
    doc = json.loads(p.stdout)
    for k in ("version", "backend", "time", "complete", "denied_pids", "skipped", "tables", "connections"):
        assert k in doc, k
    assert doc["backend"] == procnet.backend and doc["version"] == procnet.__version__
    assert set(doc["tables"]) <= {"tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6", "unix"}
    if os.geteuid() == 0:
        assert doc["denied_pids"] == []
    got = {c["inode"]: c for c in doc["connections"]}
    api = {c.inode: c.as_dict() for c in procnet.connections("all")}
    for name in socks.socks:
        ino = socks.inode(name)
        assert got[ino] == json.loads(json.dumps(api[ino])), name
    owners = [(o["pid"], o["name"]) for o in got[socks.inode("shared")]["owners"]]
    assert sorted(set(owners)) == sorted([
        (ME, MY_COMM), (socks.children["child1"], "pn-child1"),
        (socks.children["evil"], HOSTILE_COMM.decode("utf-8", "surrogateescape"))])
    assert len(owners) == 4                                  # this process holds it on two fds
    assert got[socks.inode("unix_hostile")]["laddr"] == socks.unix_path("unix_hostile")
    assert got[socks.inode("unix_hostile2")]["laddr"] == socks.unix_path("unix_hostile2")
    assert os.fsencode(got[socks.inode("unix_bytes")]["laddr"]).endswith(b"/bad\xff\xfe.sock")


@LIVE
def test_json_lines_with_continuous(socks):
    p = subprocess.Popen([sys.executable, "-m", "procnet", "--json", "-tln", "-c", "0.1",
                          "--port", str(socks.port("tcp_listen"))],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    docs = [json.loads(p.stdout.readline()) for _ in range(3)]
    p.stdout.close()
    _, err = p.communicate(timeout=20)
    assert p.returncode == 0 and err == b""
    for d in docs:
        assert [c["laddr"]["port"] for c in d["connections"]] == [socks.port("tcp_listen")]
    assert docs[0]["time"] < docs[1]["time"] < docs[2]["time"]


# -- continuous mode, pipes, signals -------------------------------------------


def _sigint_default():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@LIVE
def test_continuous_into_a_closed_pipe_ends_quietly(socks):
    p = subprocess.Popen([sys.executable, "-m", "procnet", "-tulpnc", "0.05"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    heads = 0
    while heads < 2:
        line = p.stdout.readline()
        assert line, "procnet -c ended early"
        heads += line.startswith(b"Active Internet")
    p.stdout.close()
    _, err = p.communicate(timeout=20)
    assert p.returncode == 0 and err == b"", err
    # the shell way: | head -n 3, with pipefail so procnet's own status counts
    bash = shutil.which("bash")
    if bash:
        cmd = '"$PY" -m procnet -tlnc 0.05 | head -n 3'
        r = subprocess.run([bash, "-o", "pipefail", "-c", cmd], capture_output=True, timeout=30,
                           env=dict(ENV, PY=sys.executable))
        assert r.returncode == 0 and r.stderr == b"", r.stderr
        assert len(r.stdout.splitlines()) == 3 and b"\x1b[" not in r.stdout


@LIVE
def test_sigint_during_continuous_exits_zero(socks):
    p = subprocess.Popen([sys.executable, "-m", "procnet", "-tlnp", "-c", "0.2"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=ENV, preexec_fn=_sigint_default)
    assert p.stdout.readline().startswith(b"Active Internet")
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err


@LIVE
def test_continuous_clears_a_terminal(socks):
    master, slave = os.openpty()
    try:
        p = subprocess.Popen([sys.executable, "-m", "procnet", "-tln", "-c", "0.1", "--port",
                              str(socks.port("tcp_listen"))], stdout=slave, stderr=subprocess.PIPE,
                             env=ENV, preexec_fn=_sigint_default)
        os.close(slave)
        slave = -1
        buf = b""
        end = time.monotonic() + 20
        while buf.count(b"Active Internet") < 2 and time.monotonic() < end:
            if select.select([master], [], [], 1)[0]:
                try:
                    buf += os.read(master, 65536)
                except OSError:
                    break
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=20)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert p.returncode == 0 and b"Traceback" not in err
    assert buf.count(b"\x1b[H\x1b[2J") >= 2


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
    assert p.returncode == 0 and p.stdout == "procnet %s (backend: %s)\n" % (procnet.__version__,
                                                                            procnet.backend)
    assert run("-V", "--backend", "pure").stdout == "procnet %s (backend: pure)\n" % procnet.__version__


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


def _hosts_file_name(ip):
    try:
        with open("/etc/hosts") as f:
            for line in f:
                w = line.split("#", 1)[0].split()
                if len(w) >= 2 and w[0] == ip:
                    return w[1]
    except OSError:
        pass
    return None


def _service(port, proto):
    try:
        return socket.getservbyport(port, proto)
    except OSError:
        return str(port)


def _protocol_name(n):
    try:
        with open("/etc/protocols") as f:
            for line in f:
                w = line.split("#", 1)[0].split()
                if len(w) >= 2 and w[1] == str(n):
                    return w[0]
    except OSError:
        pass
    return None


def test_services_agree_with_getservbyport():
    s = Services()
    ports = list(range(1, 1100)) + [3306, 5353, 8080, 33434, 40000, 65535]
    for proto in ("tcp", "udp"):
        for port in ports:
            assert s.name(port, proto) == _service(port, proto), (port, proto)
    assert Services("/nonexistent/services").name(22, "tcp") == _service(22, "tcp")


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
