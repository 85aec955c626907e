"""The command line against real sockets: netstat's flags and layout, filters,
netstat itself, an unprivileged user, JSON, continuous mode, pipes and signals.

Every run is a real `python -m procnet` process against sockets this module
opens (cli_support.CliSockets), compared with what the test knows, with
procnet.connections() and with net-tools netstat. test_cli_options.py has the
option parsing, errors, names and the exact layout.
"""
import collections
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

import procnet
from conftest import unreadable_pids
from procnet.cli import PARTIAL_WARNING

from cli_support import (ENV, HOSTILE_COMM, ME, MY_COMM, hosts_file_name, inet_by, me, netstat_inet, nobody_python, ok,
                         protocol_name, run, sections, service_name, shared_owners, unbracket,
                         unix_by_inode)
from cli_support import socks  # noqa: F401  (a fixture)

LIVE = pytest.mark.live


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
    host = hosts_file_name("127.0.0.1") or "127.0.0.1"
    cport, lport = socks.socks["tcp_client"].getsockname()[1], socks.port("tcp_listen")
    rows = inet_by(out)
    r, = rows["%s:%s" % (host, service_name(cport, "tcp"))]
    assert r["Foreign Address"] == "%s:%s" % (host, service_name(lport, "tcp"))
    assert r["State"] == "ESTABLISHED"
    assert "%s:%s" % (host, service_name(lport, "tcp")) not in [
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
    assert r["Local Address"] == "0.0.0.0:" + (protocol_name(1) or "1")


@LIVE
def test_names_without_n(socks):
    t0 = time.monotonic()
    out = ok("-tl").stdout
    assert time.monotonic() - t0 < 20
    host = hosts_file_name("127.0.0.1") or "127.0.0.1"
    rows = inet_by(out)
    port = socks.port("tcp_listen")
    r, = rows["%s:%s" % (host, service_name(port, "tcp"))]
    assert r["Foreign Address"] == "0.0.0.0:*"
    assert "0.0.0.0:%s" % service_name(socks.port("tcp_any"), "tcp") in rows
    host6 = hosts_file_name("::1") or "[::1]"
    assert "%s:%s" % (host6, service_name(socks.port("tcp6_listen"), "tcp")) in rows


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
    # other processes may use the same port number on other addresses or protocols
    rows = [r for r in sections(out)["inet"] if r["Proto"] == "tcp" and
            r["Local Address"].startswith("127.0.0.1:")]
    cport = socks.socks["tcp_client"].getsockname()[1]
    assert sorted((r["Local Address"], r["Foreign Address"]) for r in rows) == sorted([
        ("127.0.0.1:%d" % lport, "0.0.0.0:*"),                    # the listener (-a implied)
        ("127.0.0.1:%d" % cport, "127.0.0.1:%d" % lport),          # remote port
        ("127.0.0.1:%d" % lport, "127.0.0.1:%d" % cport)])         # local port
    assert sections(out)["unix"] == []
    # repeatable; with -l the port goes to the core as lport
    u = socks.port("udp")
    rows = inet_by(ok("-ln", "--port", str(lport), "--port", str(u)).stdout)
    assert {a for a in rows if a.startswith("127.0.0.1:")} == {"127.0.0.1:%d" % lport, "127.0.0.1:%d" % u}
    assert all(a.rsplit(":", 1)[1] in (str(lport), str(u)) for a in rows)
    rows = inet_by(ok("-tlnp", "--port", str(lport)).stdout)
    assert {a for a in rows if a.startswith("127.0.0.1:")} == {"127.0.0.1:%d" % lport}
    assert all(a.rsplit(":", 1)[1] == str(lport) for a in rows)


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
        # the BPF owner source sees every process; the /proc walk not those it may not read
        assert doc["denied_pids"] == (unreadable_pids() if doc["owner_source"] == "procfs" else [])
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
    # quiet: nothing but the notes on what procnet could not show -- the partial
    # warning, where some process's fds are unreadable even to us, and other
    # network namespaces' sockets, where other tests (or containers) run some
    allowed = [b"(Not all processes could be identified"] if unreadable_pids() else []
    allowed.append(re.compile(rb"\(\d+ sockets? in \d+ other network namespaces? not shown"))
    assert p.returncode == 0 and all(any(a.match(l) if hasattr(a, "match") else l.startswith(a)
                                         for a in allowed) for l in err.splitlines()), err
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
