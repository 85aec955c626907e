"""The command line's flags for the new families (ss's: -M/--mptcp, -S/--sctp, --vsock,
--xdp) and how their rows read: mptcp and sctp in the inet section, vsock and
xdp in sections of their own."""
import json
import socket
import subprocess
import sys
import textwrap

import pytest

from cli_support import run
from procnet.cli import args
from procnet.cli.fields import Formatter
from procnet.cli.netstat_render import Table
from test_families import conns, sctp_tree

DEFAULT = frozenset(("tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6", "unix"))


@pytest.mark.parametrize("argv, tables, inet, unix, other", [
    ([], DEFAULT, True, True, ()),                                   # netstat's default, unchanged
    (["-a"], DEFAULT, True, True, ()),
    (["-t"], {"tcp", "tcp6"}, True, False, ()),
    (["-M"], {"mptcp", "mptcp6"}, True, False, ()),
    (["--mptcp", "-6"], {"mptcp6"}, True, False, ()),
    (["-Mlnp"], {"mptcp", "mptcp6"}, True, False, ()),
    (["-S"], {"sctp", "sctp6"}, True, False, ()),
    (["-tSan4"], {"tcp", "sctp"}, True, False, ()),
    (["-Mx"], {"mptcp", "mptcp6", "unix"}, True, True, ()),
    (["--vsock"], {"vsock"}, False, False, ("vsock",)),
    (["--xdp", "-4"], {"xdp"}, False, False, ("xdp",)),                # -4/-6 are inet's
    (["--xdp", "--vsock", "-M"], {"xdp", "vsock", "mptcp", "mptcp6"}, True, False, ("vsock", "xdp")),
    (["--proto", "sctp6"], {"sctp6"}, True, False, ()),
    (["--proto", "vsock"], {"vsock"}, False, False, ("vsock",)),
])
def test_flags_select_tables(argv, tables, inet, unix, other):
    o = args.parse(argv)
    assert (o.tables, o.inet_section, o.unix_section, o.other_sections) == (tables, inet, unix, other)


def test_netstat_flags_keep_their_meaning():
    assert args.parse(["-tulpn"]).tables == {"tcp", "tcp6", "udp", "udp6", "udplite", "udplite6"}
    assert args.parse(["-w"]).tables == {"raw", "raw6"}
    assert args.parse(["-x"]).tables == {"unix"}
    with pytest.raises(args.UsageError):
        args.parse(["-tQ"])


def _section(text, title):
    lines = text.split("\n")
    at = [i for i, l in enumerate(lines) if l.startswith("Active " + title)]
    assert at, text
    out = []
    for l in lines[at[0] + 2:]:
        if not l or l.startswith("Active "):
            break
        out.append(l.split())
    return out


def test_sctp_rows_from_text(tmp_path):
    root = sctp_tree(str(tmp_path))
    p = run("-San", "-e", "--proc-root", root)
    assert p.returncode == 0, p.stderr
    rows = _section(p.stdout, "Internet")
    by_inode = {r[-1]: r for r in rows}
    assert by_inode["40001"][:6] == ["sctp", "0", "0", "10.0.0.1:9000", "0.0.0.0:*", "LISTEN"]
    assert by_inode["40011"][:6] == ["sctp", "200", "100", "10.0.0.1:9001", "10.0.0.21:41001", "COOKIE_WAIT"]
    assert by_inode["40012"][:6] == ["sctp6", "0", "0", "[fe80::1]:9002", "[2001:db8::2]:41002",
                                     "SHUTDOWN_SENT"]
    assert "skipped" in p.stderr        # the malformed fixture lines are said, as for any table
    listening = _section(run("-Sln", "--proc-root", root).stdout, "Internet")
    assert sorted(r[3] for r in listening) == ["10.0.0.1:9000", "[::]:9001", "[::ffff:127.0.0.1]:9002"]
    js = json.loads(run("-S", "--json", "--state", "COOKIE_WAIT", "--proc-root", root).stdout)
    (c,) = js["connections"]
    assert (c["proto"], c["laddr"], c["raddr"], c["state"], c["family"]) == (
        "sctp", {"ip": "10.0.0.1", "port": 9001}, {"ip": "10.0.0.21", "port": 41001}, "COOKIE_WAIT", "AF_INET")


def test_vsock_and_xdp_rows():
    class Opts:
        numeric_ports = numeric_users = numeric_hosts = False
        extend = program = True
        mode = "all"
        other_sections = ("vsock", "xdp")
        inet_section = unix_section = False
    vs, _ = conns("vsock")
    xs, _ = conns("xdp")
    out = Table(Opts()).render(vs + xs)
    vrows = _section(out, "VSOCK")
    assert [r[:6] for r in vrows] == [
        ["vsock", "0", "0", "*:1024", "*:*", "LISTEN"],
        ["vsock", "0", "0", "3:70000", "2:4000000000", "ESTABLISHED"],
        ["vsock", "0", "0", "3:1234", "*:*", "CLOSE"]]
    assert [r[6:] for r in vrows] == [["-", "7001", "-"], ["-", "7002", "-"], ["-", "7003", "-"]]
    xrows = _section(out, "XDP")
    lo4 = socket.if_indextoname(4) if 4 in [i for i, _ in socket.if_nameindex()] else "4"
    assert xrows[0][:5] == ["xdp", "0", "0", "%s:2" % lo4, "-"]
    assert [r[3] for r in xrows[1:]] == ["0:0", "0:0"]
    assert Formatter(type("N", (Opts,), {"numeric_hosts": True})()).address(xs[0].laddr, "xdp") == "4:2"


def test_a_family_this_kernel_cannot_list_is_said():
    p = run("--vsock", "--xdp", "-an")
    assert p.returncode == 0
    # no vsock_diag / xdp_diag here: the sections are empty and stderr says why
    if "cannot list" in p.stderr:
        assert "vsock" in p.stderr and "xdp" in p.stderr
    else:
        pytest.skip("this kernel lists vsock and xdp sockets")
    assert "cannot list" not in run("-tan").stderr


HOLD = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
    s.bind(("127.0.0.1", 0)); s.listen(1)
    print(s.getsockname()[1], flush=True)
    sys.stdin.read()
""")


def test_mptcp_listener_in_the_listing():
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262).close()
    except OSError:
        pytest.skip("no MPTCP here")
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        port = int(holder.stdout.readline())
        for backend in ("native", "pure"):
            p = run("-Mlnp", "--backend", backend)
            assert p.returncode == 0, p.stderr
            rows = [r for r in _section(p.stdout, "Internet") if r[3] == "127.0.0.1:%d" % port]
            assert len(rows) == 1 and rows[0][:6] == [
                "mptcp", "0", "1", "127.0.0.1:%d" % port, "0.0.0.0:*", "LISTEN"]   # Send-Q: backlog
            assert rows[0][6].startswith("%d/" % holder.pid)
        assert "127.0.0.1:%d" % port not in run("-uln").stdout
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
