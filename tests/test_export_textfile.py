"""`procnet --format prom [--output FILE]`: the metrics once, for textfile
collectors -- valid for promtool, replaced atomically -- and the command
line's checks of the metrics options."""
import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest

import procnet
from procfs_tree import inet_line, le_words, make_tree, sock

pytest.importorskip("prometheus_client", reason="prometheus-client is in the test extra")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from procnet.exporters import textfile  # noqa: E402

PKG = os.path.dirname(os.path.dirname(procnet.__file__))
ENV = dict(os.environ, PYTHONPATH=PKG + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "procnet"] + list(args), capture_output=True,
                          env=ENV, timeout=timeout)


def promtool_check(data: bytes) -> None:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; CI installs it)")
    r = subprocess.run([tool, "check", "metrics"], input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, (r.stdout + r.stderr).decode("utf-8", "replace")


def listeners(data: bytes):
    return {(s.labels["port"], s.labels["process"])
            for fam in text_string_to_metric_families(data.decode("utf-8"))
            for s in fam.samples if s.name == "procnet_listening_socket_info"}


def tree(root, n=3, comm="web"):
    lines = [inet_line(i, "%s:%04X" % (le_words(socket.inet_aton("127.0.0.1")), 8000 + i),
                       "00000000:0000", 0x0A, 100 + i) for i in range(n)]
    return make_tree(root, {"tcp": lines}, {10: {"comm": comm, "fd": {3 + i: sock(100 + i) for i in range(n)}}})


def test_output_file_valid_and_replaced(tmp_path, impl):
    root = tree(str(tmp_path / "proc"))
    out_dir = tmp_path / "textfile"
    out_dir.mkdir()
    target = out_dir / "procnet.prom"
    target.write_bytes(b"old\n")
    before = os.stat(target).st_ino
    r = run("--format", "prom", "--output", str(target), "-t", "--proc-root", root, "--backend", impl.name)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""
    data = target.read_bytes()
    promtool_check(data)
    assert listeners(data) == {("8000", "web"), ("8001", "web"), ("8002", "web")}
    st = os.stat(target)
    assert st.st_ino != before                  # a new file renamed over the old one
    assert st.st_mode & 0o777 == 0o644          # readable by the exporter's user
    assert os.listdir(out_dir) == ["procnet.prom"]          # no temporary file left


def test_stdout_and_options(tmp_path):
    root = tree(str(tmp_path / "proc"))
    r = run("--format", "prom", "-t", "--proc-root", root, "--metrics", "listeners", "--pid-label")
    assert r.returncode == 0, r.stderr
    promtool_check(r.stdout)
    fams = {f.name: f for f in text_string_to_metric_families(r.stdout.decode())}
    assert set(fams) == {"procnet_listening_socket_info", "procnet_up"}
    assert {s.labels["pid"] for s in fams["procnet_listening_socket_info"].samples} == {"10"}
    # --port: local or remote port, as for the listing
    r = run("--format", "prom", "-t", "--proc-root", root, "--port", "8001")
    assert r.returncode == 0, r.stderr
    assert listeners(r.stdout) == {("8001", "web")}


@pytest.mark.parametrize("args, message", [
    (["--output", "x.prom"], "--output needs --serve or --format prom"),
    (["--pid-label"], "--pid-label needs --serve or --format prom"),
    (["--format", "prom", "--serve", "127.0.0.1:0"], "choose one"),
    (["--serve", "127.0.0.1:0", "-c", "1"], "-c does not go with --serve"),
    (["--format", "prom", "--json"], "--json does not go with --format prom"),
    (["--serve", "127.0.0.1:0", "--output", "x"], "--output needs --format prom"),
    (["--serve", "localhost"], "invalid address"),
    (["--serve", "1.2.3.4:99999"], "invalid address"),
    (["--format", "prom", "--metrics", "listeners,nope"], "invalid metrics"),
    (["--format", "json"], "invalid choice"),
])
def test_usage_errors(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert message in r.stderr.decode(), r.stderr


def test_errors_exit_1(tmp_path):
    root = tree(str(tmp_path / "proc"))
    r = run("--format", "prom", "--output", str(tmp_path / "no" / "such" / "dir.prom"), "--proc-root", root)
    assert r.returncode == 1 and b"write error" in r.stderr, r.stderr
    r = run("--format", "prom", "--proc-root", str(tmp_path / "missing"))
    assert r.returncode == 1 and r.stdout == b"", r.stderr


def test_write_atomic_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "m.prom"
    target.write_bytes(b"old\n")

    def broken(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        textfile.write_atomic(str(target), b"new\n" * 1000)
    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["m.prom"]


def test_readers_never_see_a_partial_file(tmp_path):
    """A reader polling the file while it is rewritten again and again sees
    only whole expositions (each ends with the last family)."""
    root = tree(str(tmp_path / "proc"), n=2000)
    from procnet.exporters.prometheus import ProcnetCollector, exposition
    c = ProcnetCollector(procnet.Poller("tcp", proc_root=root))
    target = str(tmp_path / "m.prom")
    textfile.write_atomic(target, exposition(c))
    want_end = b"procnet_up 1.0\n"
    stop = threading.Event()
    errors = []

    def writer():
        try:
            while not stop.is_set():
                textfile.write_atomic(target, exposition(c))
        except Exception as e:      # noqa: BLE001 - reported below
            errors.append(e)
    t = threading.Thread(target=writer)
    t.start()
    reads = 0
    try:
        for _ in range(300):
            with open(target, "rb") as f:
                data = f.read()
            assert data.endswith(want_end) and data.count(want_end) == 1
            reads += 1
    finally:
        stop.set()
        t.join(60)
    assert not errors and reads == 300
    assert sorted(os.listdir(tmp_path)) == ["m.prom", "proc"]


def test_listeners_only_polls_listeners():
    """--metrics listeners (and status) needs no other socket: the kernel is
    asked for listeners only; any other metric, or --state, counts every socket."""
    from procnet.cli import serve
    from procnet.cli.args import parse

    def states(*argv):
        c = serve._collector(parse(list(argv)))
        try:
            return c.poller._args["state"]
        finally:
            c.poller.close()
    assert states("--format", "prom", "-t", "--metrics", "listeners,status") == ("LISTEN",)
    assert states("--format", "prom", "-tu", "--metrics", "listeners") == ("LISTEN", "NONE")
    assert states("--format", "prom", "-t") is None
    assert states("--format", "prom", "-t", "--metrics", "listeners", "--state", "ESTABLISHED") == ("ESTABLISHED",)
    assert states("--serve", ":0", "-tl") == ("LISTEN",)


def test_output_never_replaces_what_is_not_a_regular_file(tmp_path):
    # a rename would put a plain file where /dev/null, a FIFO or a symlink was
    root = tree(str(tmp_path / "proc"))
    os.mkfifo(str(tmp_path / "fifo"))
    os.symlink("/proc/self/fd/1", str(tmp_path / "link"))
    os.mkdir(str(tmp_path / "dir"))
    targets = ["fifo", "link", "dir"]
    if os.geteuid() == 0:
        os.mknod(str(tmp_path / "null"), 0o666 | 0o020000, os.makedev(1, 3))
        targets.append("null")
    for name in targets:
        before = os.lstat(str(tmp_path / name))
        r = run("--format", "prom", "--output", str(tmp_path / name), "--proc-root", root)
        assert r.returncode == 1 and b"not a regular file" in r.stderr, (name, r.stderr)
        after = os.lstat(str(tmp_path / name))
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino), name
    assert sorted(os.listdir(str(tmp_path))) == sorted(targets + ["proc"])   # no temporary left


def test_stdout_closed_is_a_write_error(tmp_path):
    root = tree(str(tmp_path / "proc"))
    r = subprocess.run("%s -m procnet --format prom --proc-root %s >&-" % (sys.executable, root),
                       shell=True, capture_output=True, env=ENV, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith(b"procnet: write error:"), r.stderr
    assert b"Traceback" not in r.stderr
