"""The Prometheus collector (procnet.exporters.prometheus): what a scrape says,
parsed back with prometheus_client's own parser and checked by promtool.

Fixture trees give exact expectations on both backends; live tests check a
real listener, processes with hostile names (prctl), and that the tally kept
across polls equals one computed afresh from the same snapshot.
"""
import os
import shutil
import socket
import subprocess
import sys

import pytest

import procnet
from procfs_tree import inet_line, le_words, make_tree, sock, unix_line

pytest.importorskip("prometheus_client", reason="prometheus-client is in the test extra")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from procnet.exporters.prometheus import METRICS, ProcnetCollector, exposition  # noqa: E402
from procnet.exporters.tally import Tally  # noqa: E402

LISTENER_LABELS = {"proto", "address", "port", "process", "netns"}
# Names a local user can give a process (and more: a fixture has no 15-byte limit):
# each must come back exactly, in one label, and forge nothing.
HOSTILE = ['a"b', "back\\slash", "new\nline", "brace}", '{x="y"}', '",x="1', '\\"} 1\nforged 1',
           "# HELP x y", "esc\x1b[2J", "tab\there", "sp ace"]


def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; CI installs it)")
    return path


def promtool_check(data: bytes) -> None:
    """`promtool check metrics` must accept the exposition (lint problems included)."""
    r = subprocess.run([promtool(), "check", "metrics"], input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, (r.stdout + r.stderr).decode("utf-8", "replace")


def parse(data: bytes):
    """name -> list of (labels, value), via prometheus_client's parser."""
    out = {}
    for fam in text_string_to_metric_families(data.decode("utf-8")):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def tcp_line(sl, ip, port, inode, st=0x0A, remote="00000000:0000"):
    return inet_line(sl, "%s:%04X" % (le_words(socket.inet_aton(ip)), port), remote, st, inode)


def hostile_tree(root):
    """One listener per hostile name (pid 100+i), a listener shared by two
    names, a non-UTF-8 name, an established and an unowned socket, and unix
    listeners on hostile paths."""
    tcp = [tcp_line(i, "127.0.0.1", 10000 + i, 1000 + i) for i in range(len(HOSTILE))]
    procs = {100 + i: {"comm": name, "fd": {3: sock(1000 + i)}} for i, name in enumerate(HOSTILE)}
    n = len(HOSTILE)
    tcp.append(tcp_line(n, "0.0.0.0", 80, 2000))                        # shared: nginx and a helper
    procs[300] = {"comm": "nginx", "fd": {4: sock(2000)}}
    procs[301] = {"comm": "nginx", "fd": {4: sock(2000)}}
    procs[302] = {"comm": "helper", "fd": {9: sock(2000)}}
    tcp.append(tcp_line(n + 1, "0.0.0.0", 81, 2001))                    # not UTF-8
    procs[303] = {"comm": b"bad\xff\xfename", "fd": {3: sock(2001)}}
    tcp.append(tcp_line(n + 2, "127.0.0.1", 5555, 2002, st=0x01,
                        remote="%s:%04X" % (le_words(socket.inet_aton("127.0.0.1")), 40000)))
    procs[304] = {"comm": "client", "fd": {5: sock(2002)}}
    tcp.append(tcp_line(n + 3, "0.0.0.0", 82, 2003))                    # held by no process
    unix = [unix_line(3000, '/run/we"ird}\\dir {x="y"}/s', listening=True, state=1),
            unix_line(3001, "@abstract name", listening=True, state=1)]
    procs[305] = {"comm": "unixd", "fd": {3: sock(3000), 4: sock(3001)}}
    return make_tree(root, {"tcp": tcp, "unix": unix}, procs)


def collector(impl, root, kind=("tcp", "unix"), **kw):
    return ProcnetCollector(procnet.Poller(kind, proc_root=root, backend=impl.name), **kw)


def test_hostile_names_fixture(impl, tmp_path):
    root = hostile_tree(str(tmp_path / "proc"))
    c = collector(impl, root)
    data = exposition(c)
    promtool_check(data)
    m = parse(data)
    listeners = m["procnet_listening_socket_info"]
    for labels, value in listeners:
        assert set(labels) == LISTENER_LABELS and value == 1.0       # no forged label
    got = {(l["proto"], l["address"], l["port"], l["process"]) for l, _ in listeners}
    want = {("tcp", "127.0.0.1", str(10000 + i), name) for i, name in enumerate(HOSTILE)}
    want |= {("tcp", "0.0.0.0", "80", "nginx"), ("tcp", "0.0.0.0", "80", "helper"),
             ("tcp", "0.0.0.0", "81", "bad\\xff\\xfename"), ("tcp", "0.0.0.0", "82", ""),
             ("unix", '/run/we"ird}\\dir {x="y"}/s', "", "unixd"), ("unix", "@abstract name", "", "unixd")}
    assert got == want
    assert len(listeners) == len(want)                      # nginx twice (two pids): one series
    assert {l["netns"] for l, _ in listeners} == {""}       # a fixture root has no self/ns/net
    # no sample of any name but procnet's
    assert set(m) == {"procnet_listening_socket_info", "procnet_sockets", "procnet_sockets_unowned",
                      "procnet_snapshot_complete", "procnet_denied_processes",
                      "procnet_scrape_duration_seconds", "procnet_source_info", "procnet_up"}
    counts = {(l["proto"], l["state"], l["process"]): v for l, v in m["procnet_sockets"]}
    assert counts[("tcp", "LISTEN", "nginx")] == 1 and counts[("tcp", "LISTEN", "helper")] == 1
    assert counts[("tcp", "ESTABLISHED", "client")] == 1
    assert counts[("unix", "LISTEN", "unixd")] == 2
    for name in HOSTILE:
        assert counts[("tcp", "LISTEN", name)] == 1
    assert m["procnet_sockets_unowned"] == [({"proto": "tcp", "state": "LISTEN"}, 1.0)]
    assert m["procnet_up"] == [({}, 1.0)]
    assert m["procnet_snapshot_complete"] == [({}, 1.0)]
    assert m["procnet_denied_processes"] == [({}, 0.0)]
    assert {(l["table"], l["source"], l["backend"]) for l, _ in m["procnet_source_info"]} == {
        ("tcp", "procfs", impl.name), ("tcp6", "procfs", impl.name), ("unix", "procfs", impl.name)}


def test_pid_label_and_metric_groups(impl, tmp_path):
    root = hostile_tree(str(tmp_path / "proc"))
    c = collector(impl, root, pid_label=True, metrics=("listeners",))
    data = exposition(c)
    promtool_check(data)
    m = parse(data)
    assert set(m) == {"procnet_listening_socket_info", "procnet_up"}
    port80 = sorted((l["process"], l["pid"]) for l, _ in m["procnet_listening_socket_info"] if l["port"] == "80")
    assert port80 == [("helper", "302"), ("nginx", "300"), ("nginx", "301")]
    unowned = [l for l, _ in m["procnet_listening_socket_info"] if l["port"] == "82"]
    assert unowned == [{"proto": "tcp", "address": "0.0.0.0", "port": "82", "process": "", "netns": "",
                        "pid": ""}]
    with pytest.raises(ValueError, match="metrics"):
        collector(impl, root, metrics=("listeners", "bogus"))
    names = {f.name for f in collector(impl, root).describe()}
    assert names == {"procnet_listening_socket_info", "procnet_sockets", "procnet_sockets_unowned",
                     "procnet_snapshot_complete", "procnet_denied_processes",
                     "procnet_scrape_duration_seconds", "procnet_source_info", "procnet_up"}
    assert METRICS == ("listeners", "sockets", "unowned", "status")


def test_scrapes_follow_changes(impl, tmp_path):
    """A listener that appears or goes, and a process renamed, between scrapes."""
    root = str(tmp_path / "proc")
    make_tree(root, {"tcp": [tcp_line(0, "127.0.0.1", 8080, 111)]}, {10: {"comm": "web", "fd": {3: sock(111)}}})
    c = collector(impl, root, kind="tcp")

    def listeners():
        return {(l["port"], l["process"]) for l, _ in parse(exposition(c))["procnet_listening_socket_info"]}
    assert listeners() == {("8080", "web")}
    assert listeners() == {("8080", "web")}                 # steady: the same again
    with open(os.path.join(root, "net", "tcp"), "a") as f:
        f.write(tcp_line(1, "127.0.0.1", 9090, 222) + "\n")
    make_tree(root, None, {11: {"comm": "api", "fd": {3: sock(222)}}})
    assert listeners() == {("8080", "web"), ("9090", "api")}
    make_tree(root, {"tcp": [tcp_line(1, "127.0.0.1", 9090, 222)]})
    shutil.rmtree(os.path.join(root, "10"))
    assert listeners() == {("9090", "api")}
    m = parse(exposition(c))
    assert [(l["process"], v) for l, v in m["procnet_sockets"]] == [("api", 1.0)]


def test_failed_poll_is_up_0_then_recovers(impl, tmp_path):
    root = str(tmp_path / "proc")
    make_tree(root, {"tcp": [tcp_line(0, "127.0.0.1", 8080, 111)]}, {10: {"comm": "web", "fd": {3: sock(111)}}})
    c = collector(impl, root, kind="tcp")
    assert parse(exposition(c))["procnet_up"] == [({}, 1.0)]
    moved = root + ".away"
    os.rename(root, moved)
    m = parse(exposition(c))
    assert m["procnet_up"] == [({}, 0.0)] and "procnet_listening_socket_info" not in m
    assert isinstance(c.error, procnet.ProcNetError)
    os.rename(moved, root)
    m = parse(exposition(c))
    assert m["procnet_up"] == [({}, 1.0)] and c.error is None
    assert len(m["procnet_listening_socket_info"]) == 1


def fresh_tally(snap, **kw):
    t = Tally(**kw)
    t.update(list(snap))
    return t.listeners, t.counts


@pytest.mark.live
def test_tally_across_polls_equals_a_fresh_one(impl):
    """Sockets opened, closed and changing state between polls: the tally kept
    across polls equals one computed from scratch on the same snapshot."""
    poller = procnet.Poller(("tcp", "udp", "unix"), backend=impl.name)
    kept = Tally()
    held = []
    try:
        for step in range(6):
            if step % 2 == 0:
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                s.listen()
                c = socket.create_connection(s.getsockname())
                a, _ = s.accept()
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.bind(("127.0.0.1", 0))
                held += [s, c, a, u]
            else:
                for x in held[:3]:
                    x.close()
                del held[:3]
            snap = poller.poll().snapshot
            kept.update(snap)
            assert (kept.listeners, kept.counts) == fresh_tally(snap)
    finally:
        for x in held:
            x.close()
        poller.close()


CHILD = r"""
import ctypes, socket, sys
name = bytes.fromhex(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(15, ctypes.c_char_p(name), 0, 0, 0) != 0:      # PR_SET_NAME
    raise SystemExit("prctl failed")
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


@pytest.mark.live
def test_hostile_process_names_live(impl):
    """Real processes named by prctl (the kernel keeps 15 bytes): each
    listener's series carries the exact name, nothing else is forged, and
    promtool accepts the text."""
    names = [b'a"b\\c\nd}', b'{x="y"}', b'",x="1"} 1', b"\\n\\\"\n# HELP", b"bad\xff\xfe\x1b[2J"]
    kids = []
    try:
        for n in names:
            p = subprocess.Popen([sys.executable, "-c", CHILD, n.hex()], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE)
            kids.append((n, p, int(p.stdout.readline())))
        c = ProcnetCollector(procnet.Poller("tcp", backend=impl.name, state="LISTEN"))
        data = exposition(c)
        promtool_check(data)
        series = parse(data)["procnet_listening_socket_info"]
        for labels, value in series:
            assert set(labels) == LISTENER_LABELS and value == 1.0
        by_port = {}
        for labels, _ in series:
            if labels["address"] == "127.0.0.1":
                by_port.setdefault(labels["port"], set()).add(labels["process"])
        for n, p, port in kids:
            want = n.decode("utf-8", "surrogateescape").encode("utf-8", "surrogateescape").decode(
                "utf-8", "backslashreplace")
            assert by_port[str(port)] == {want}, (n, by_port.get(str(port)))
        assert all(l["netns"].isdigit() for l, _ in series)
        assert int(series[0][0]["netns"]) == os.stat("/proc/self/ns/net").st_ino
    finally:
        for _, p, _ in kids:
            p.stdin.close()
            p.wait(10)
            p.stdout.close()



def test_scrape_cost_follows_changes(impl, tmp_path):
    """Per-socket Python work only for new or changed sockets: the filter of
    one's own runs once per socket object, not once per scrape."""
    root = str(tmp_path / "proc")
    lines = [tcp_line(i, "127.0.0.1", 8000 + i, 100 + i) for i in range(50)]
    make_tree(root, {"tcp": lines}, {10: {"comm": "web", "fd": {3 + i: sock(100 + i) for i in range(50)}}})
    seen = []
    c = collector(impl, root, kind="tcp", keep=lambda conn: seen.append(conn.inode) or conn.laddr.port % 2 == 0)
    m = parse(exposition(c))
    assert len(seen) == 50 and len(m["procnet_listening_socket_info"]) == 25
    exposition(c)
    exposition(c)
    assert len(seen) == 50                      # steady: nothing looked at again
    with open(os.path.join(root, "net", "tcp"), "a") as f:
        f.write(tcp_line(50, "127.0.0.1", 9000, 999) + "\n")
    m = parse(exposition(c))
    assert seen[50:] == [999] and len(m["procnet_listening_socket_info"]) == 26


def test_same_labels_are_one_series(impl, tmp_path):
    """Two sockets with the same labels (SO_REUSEPORT listeners of one
    program) make one series, which stays until the last of them goes."""
    root = str(tmp_path / "proc")
    lines = [tcp_line(0, "0.0.0.0", 443, 111), tcp_line(1, "0.0.0.0", 443, 222)]
    make_tree(root, {"tcp": lines}, {10: {"comm": "nginx", "fd": {3: sock(111)}},
                                     11: {"comm": "nginx", "fd": {3: sock(222)}}})
    c = collector(impl, root, kind="tcp")
    m = parse(exposition(c))
    assert [(l["port"], l["process"]) for l, _ in m["procnet_listening_socket_info"]] == [("443", "nginx")]
    assert m["procnet_sockets"] == [({"proto": "tcp", "state": "LISTEN", "process": "nginx"}, 2.0)]
    make_tree(root, {"tcp": lines[1:]})
    m = parse(exposition(c))
    assert [(l["port"], l["process"]) for l, _ in m["procnet_listening_socket_info"]] == [("443", "nginx")]
    assert m["procnet_sockets"] == [({"proto": "tcp", "state": "LISTEN", "process": "nginx"}, 1.0)]


def test_incomplete_snapshot(impl, tmp_path):
    """A process whose fds cannot be read: complete 0, one denied process, and
    its listener counted as unowned (its series has no process)."""
    root = str(tmp_path / "proc")
    make_tree(root, {"tcp": [tcp_line(0, "0.0.0.0", 8080, 111)]})
    make_tree(str(tmp_path / "elsewhere"), procs={7: {"fd": {3: sock(111)}}})
    os.makedirs(os.path.join(root, "501"))
    os.symlink(str(tmp_path / "elsewhere" / "7" / "fd"), os.path.join(root, "501", "fd"))   # refused
    m = parse(exposition(collector(impl, root, kind="tcp")))
    assert m["procnet_snapshot_complete"] == [({}, 0.0)]
    assert m["procnet_denied_processes"] == [({}, 1.0)]
    assert [(l["port"], l["process"]) for l, _ in m["procnet_listening_socket_info"]] == [("8080", "")]
    assert m["procnet_sockets_unowned"] == [({"proto": "tcp", "state": "LISTEN"}, 1.0)]
    assert "procnet_sockets" not in m
