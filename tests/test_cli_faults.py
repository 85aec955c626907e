"""The command line under faults, run for real: a closed or full stdout or stderr, a reader
that goes away while -c prints nothing, Ctrl-C, a table with malformed lines or one that
cannot be read, and numbers on the command line that are not plain ASCII numbers.

Fixture trees (--proc-root) keep every run exact: nothing changes between refreshes.
"""
import fcntl
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

import procnet
from procnet.cli import args as cli_args
from procnet.cli.notices import data_note

from cli_support import ENV, run
from procfs_tree import be_words, inet_line, le_words, make_tree, sock

F_SETPIPE_SZ = 1031
# Python's streams as users get them: buffered (this test environment may set PYTHONUNBUFFERED)
USER_ENV = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"}


def _words(ip: bytes) -> str:
    return le_words(ip) if sys.byteorder == "little" else be_words(ip)


LO = _words(bytes([127, 0, 0, 1]))
LO2 = _words(bytes([127, 0, 0, 2]))
ANY = _words(bytes(4))


def tree(tmp_path, *, tcp=None, procs=None, **net) -> str:
    """A fixture root: a listener 127.0.0.1:80 of pid 42 ("web") and an established pair."""
    if tcp is None:
        tcp = [inet_line(0, LO + ":0050", ANY + ":0000", 0x0A, 111),
               inet_line(1, LO + ":0050", LO2 + ":C350", 0x01, 112)]
    procs = procs if procs is not None else {42: {"comm": "web", "fd": {3: sock(111), 4: sock(112)}}}
    return make_tree(str(tmp_path / "proc"), dict(net, tcp=tcp), procs)


def _child_setup(close):
    def setup():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for fd in close:
            os.close(fd)
    return setup


def procnet_raw(*args, close=(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                buffered=True):
    """`python -m procnet ARGS` with the given stdout/stderr, fds in `close` closed before exec.

    `buffered`: Python's streams as users get them (PYTHONUNBUFFERED unset: a write
    error may leave bytes in a buffer for the interpreter's final flush).
    """
    env = dict(USER_ENV) if buffered else dict(ENV, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "procnet"] + list(args), stdout=stdout, stderr=stderr,
                          env=env, preexec_fn=_child_setup(close), timeout=timeout)


# -- stderr closed or full: warnings are lost, the output is not ------------------------


@pytest.mark.parametrize("buffered", [True, False])
@pytest.mark.parametrize("stderr", ["closed", "full", "broken pipe"])
def test_stderr_closed_or_full_keeps_the_table(tmp_path, stderr, buffered):
    # pid 77's fds cannot be read: a run with -p has a warning to write on stderr
    root = tree(tmp_path, procs={42: {"comm": "web", "fd": {3: sock(111)}}, 77: {"fd_dir": False}})
    open(os.path.join(root, "77", "fd"), "w").close()
    warned = run("-tlnp", "--proc-root", root)
    assert warned.returncode == 0 and "Not all processes could be identified" in warned.stderr
    rfd, wfd = os.pipe()
    os.close(rfd)                           # a reader that went away
    try:
        with open("/dev/full", "wb") as full:
            p = procnet_raw("-tlnp", "--proc-root", root, close=(2,) if stderr == "closed" else (),
                            stderr={"full": full, "broken pipe": wfd}.get(stderr, subprocess.DEVNULL),
                            buffered=buffered)
    finally:
        os.close(wfd)
    assert p.returncode == 0
    assert p.stdout.decode() == warned.stdout
    assert "42/web" in p.stdout.decode()


# -- stdout full or closed: one line, exit 1 ------------------------------------------


@pytest.mark.parametrize("args", [["-tlnp"], ["--json", "-tlnp"], ["--events", "-tlnp"], ["--help"],
                                  ["--version"], ["-tlnp", "-c", "0.1"]])
@pytest.mark.parametrize("stdout,buffered", [("full", True), ("full", False), ("closed", True)])
def test_stdout_full_or_closed_is_one_write_error(tmp_path, args, stdout, buffered):
    root = tree(tmp_path)
    with open("/dev/full", "wb") as full:
        p = procnet_raw(*args, "--proc-root", root, close=(1,) if stdout == "closed" else (),
                        stdout=full if stdout == "full" else subprocess.DEVNULL, timeout=30,
                        buffered=buffered)
    reason = os.strerror(28 if stdout == "full" else 9)      # ENOSPC, EBADF
    assert p.stderr.decode() == "procnet: write error: %s\n" % reason
    assert p.returncode == 1


# -- a reader that goes away ends -c, even when nothing is written ------------------------


@pytest.mark.parametrize("mode", [["--events"], ["--events", "--json"], ["--json"], []])
def test_continuous_ends_when_its_reader_goes_away(tmp_path, mode):
    root = tree(tmp_path)
    p = subprocess.Popen([sys.executable, "-m", "procnet", "-tanp", "-c", "30", "--proc-root", root] + mode,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=USER_ENV)
    try:
        assert p.stdout.readline()
        p.stdout.close()                # the next refresh is 30 s away (and --events has nothing to say)
        start = time.monotonic()
        _, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and err == b""
    assert time.monotonic() - start < 10


@pytest.mark.skipif(not shutil.which("bash") or not shutil.which("head"), reason="needs bash and head")
def test_events_into_head_ends(tmp_path):
    root = tree(tmp_path)
    cmd = '"$PY" -m procnet -tnp -c 1 --events --proc-root "$ROOT" | head -1'
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, timeout=30,
                       env=dict(USER_ENV, PY=sys.executable, ROOT=root))
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout.decode().split() == ["open", "tcp", "127.0.0.1:80", "127.0.0.2:50000", "ESTABLISHED",
                                         "42/web"]


# -- Ctrl-C ----------------------------------------------------------------------------


def _pipe_filled(rfd, pid, size, timeout=20.0) -> bool:
    """Wait until the pipe holds `size` bytes and its writer sleeps (blocked writing)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        n = struct.unpack("i", fcntl.ioctl(rfd, termios.FIONREAD, b"\0\0\0\0"))[0]
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if n >= size and state == "S":
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("buffered", [True, False])
@pytest.mark.parametrize("continuous,status", [(False, 130), (True, 0)])
def test_ctrl_c(tmp_path, continuous, status, buffered):
    """Interrupted without -c: 130 (the run did not finish); with -c: 0 (Ctrl-C is how it ends).

    SIGINT arrives while procnet is blocked writing into a full pipe nobody reads: it
    must also not hang at exit trying to flush the rest.
    """
    lines = [inet_line(i, _words(bytes([10, 0, i // 250, i % 250])) + ":%04X" % (1000 + i),
                       LO + ":0050", 0x01, 1000 + i) for i in range(400)]
    root = tree(tmp_path, tcp=lines, procs={})
    rfd, wfd = os.pipe()
    try:
        size = fcntl.fcntl(wfd, F_SETPIPE_SZ, 4096)
        p = subprocess.Popen([sys.executable, "-m", "procnet", "-tan", "--proc-root", root]
                             + (["-c", "30"] if continuous else []),
                             stdout=wfd, stderr=subprocess.PIPE, preexec_fn=_child_setup(()),
                             env=USER_ENV if buffered else dict(ENV, PYTHONUNBUFFERED="1"))
        os.close(wfd)
        wfd = -1
        try:
            assert _pipe_filled(rfd, p.pid, size), "procnet never blocked on its full stdout"
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=15)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
    assert p.returncode == status and err == b"", err


# -- what a snapshot missed, said on stderr ------------------------------------------------


def test_skipped_lines_and_unread_tables_said_on_stderr(tmp_path):
    good = inet_line(0, LO + ":0050", ANY + ":0000", 0x0A, 111)
    root = tree(tmp_path, tcp=[good, "   1: this is no socket", "   2: " + "F" * 40])
    os.mkdir(os.path.join(root, "net", "tcp6"))              # a table that cannot be read
    snap = procnet.connections(["tcp4", "tcp6"], proc_root=root)
    assert snap.skipped.get("tcp") and snap.tables["tcp6"].startswith("error")
    line = data_note(snap)
    assert line.startswith("procnet: warning: skipped %d malformed line" % snap.skipped["tcp"])
    assert "(tcp: %d)" % snap.skipped["tcp"] in line and "could not read tcp6 (" in line

    p = run("-tlnp", "--proc-root", root)
    assert p.returncode == 0 and "42/web" in p.stdout
    assert p.stderr.splitlines() == [line]
    p = run("--json", "-tln", "--proc-root", root)
    doc = json.loads(p.stdout)
    assert doc["complete"] is False and doc["complete"] == snap.complete
    assert doc["skipped"] == snap.skipped and doc["tables"] == snap.tables
    assert p.stderr.splitlines() == [line]
    # with -c (not on a terminal): once, not under every refresh
    c = subprocess.Popen([sys.executable, "-m", "procnet", "-tln", "-c", "0.05", "--proc-root", root],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=USER_ENV)
    heads = 0
    while heads < 4:
        out = c.stdout.readline()
        assert out, "procnet -c ended early"
        heads += out.startswith(b"Active Internet")
    c.stdout.close()
    _, err = c.communicate(timeout=15)
    assert err.decode().splitlines() == [line]
    # and a clean tree says nothing
    clean = tree(tmp_path / "clean", tcp=[good])
    p = run("-tlnp", "--proc-root", clean)
    assert p.returncode == 0 and p.stderr == ""
    assert json.loads(run("--json", "-tln", "--proc-root", clean).stdout)["complete"] is True


# -- numbers on the command line ---------------------------------------------------------


@pytest.mark.parametrize("argv,message", [
    (["--port", "-1"], "invalid port '-1'"),
    (["--pid", "-1"], "invalid pid '-1'"),
    (["--user", "-1"], "invalid uid '-1'"),
    (["-c", "-1"], "invalid interval '-1'"),
    (["-tnc", "-0.5"], "invalid interval '-0.5'"),
    (["--continuous", "-2"], "invalid interval '-2'"),
    (["--po", "-1"], "invalid port '-1'"),                   # an abbreviation, as argparse takes it
    (["--port", "\uff12\uff10\uff12\uff14"], "invalid port '\uff12\uff10\uff12\uff14'"),   # fullwidth 2024
    (["--pid", "\uff14\uff12"], "invalid pid '\uff14\uff12'"),
    (["--user", "\uff14\uff12"], "unknown user '\uff14\uff12'"),
    (["--port", "\u00b2"], "invalid port '\u00b2'"),          # superscript two: isdigit(), not int()
    (["-c", "\uff12"], "invalid interval '\uff12'"),
    (["-tc\uff12"], "invalid interval '\uff12'"),
    (["-c", "1e3"], "invalid interval '1e3'"),
    (["-c", "nan"], "invalid interval 'nan'"),
    (["-c", "inf"], "invalid interval 'inf'"),
    (["--port", "9" * 4000], "invalid port '9999"),
    (["--port", "9" * 5000], "invalid port '9999"),
    (["--pid", "9" * 5000], "invalid pid '9999"),
    (["--user", "9" * 5000], "invalid uid '9999"),
    (["-c", "9" * 5000], "invalid interval '9999"),
    (["--state", "x" * 5000], "unknown state 'xxxx"),
])
def test_numbers_are_ascii_and_bounded(argv, message):
    p = run(*argv)
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("procnet: ") and message in lines[0], p.stderr
    assert len(lines[0]) < 600 and "_port" not in lines[0] and "value:" not in lines[0], lines[0]


def test_numbers_still_accepted():
    o = cli_args.parse(["--port=80", "--port", "0443", "--pid", "7", "--user", "0", "--user", "4294967295"])
    assert (o.ports, o.pids, o.uids) == ((80, 443), (7,), (0, 4294967295))
    o = cli_args.parse(["-c", "-4"])                  # -c without a value, then IPv4
    assert o.interval == 1.0 and o.tables == {"tcp", "udp", "udplite", "raw"}
    assert cli_args.parse(["-c", ".5"]).interval == 0.5 and cli_args.parse(["-tc2.5"]).interval == 2.5
    assert cli_args.parse(["-c", "86400"]).interval == 86400
