"""Helpers for test_cli: run the command line, read its tables (and netstat's), own sockets.

Everything is on loopback or unbound; close() closes every socket, reaps every
child and removes the temp dir.
"""
import collections
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

import pytest

from live_sockets import dgram, listener
from procnet.cli.names import escape

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=REPO, PYTHONIOENCODING="utf-8")
IPPROTO_UDPLITE = 136
PR_SET_NAME = 15
PR_SET_DUMPABLE = 4
HOSTILE_COMM = b"pn\x1b[2J\nfa\tke\xff"           # 15 bytes: the kernel's limit
HOSTILE_PATH = "evil\nrow\t\x1b[31mred \\x41.sock"
HOSTILE_PATH2 = "tab\tesc\x1b[2J\x7f.sock"                # no newline: intact from any source


def run(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = 60,
        prefix: Tuple[str, ...] = (), cwd: Optional[str] = None) -> subprocess.CompletedProcess:
    """`python -m procnet ARGS` with the repo on PYTHONPATH; output as text (bytes kept as \\udcXX)."""
    p = subprocess.run(list(prefix) + [sys.executable, "-m", "procnet"] + list(args), capture_output=True,
                       env=env or ENV, timeout=timeout, cwd=cwd)
    p.stdout = p.stdout.decode("utf-8", "surrogateescape")
    p.stderr = p.stderr.decode("utf-8", "surrogateescape")
    return p


def sections(text: str) -> Dict[str, List[Dict[str, str]]]:
    """procnet's table output -> {"inet"|"unix": [row as {header: value}]}.

    Cut by the header's column positions: the layout aligns every value to them.
    """
    out: Dict[str, List[Dict[str, str]]] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("Active "):
            name = "unix" if "UNIX" in line else "inet"
            header = lines[i + 1]
            titles = ["Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address", "State",
                      "User", "Inode", "Flags", "Type", "I-Node", "PID/Program name", "Path"]
            cols = sorted((header.index(t), t) for t in titles if t in header)
            starts = [s for s, _ in cols]
            rows = []
            i += 2
            while i < len(lines) and lines[i] and not lines[i].startswith("Active "):
                row = lines[i]
                d = {}
                for k, (s, t) in enumerate(cols):
                    end = starts[k + 1] if k + 1 < len(cols) else len(row)
                    v = row[s:end]
                    d[t] = v if k + 1 == len(cols) else v.strip()
                rows.append(d)
                i += 1
            out[name] = rows
            continue
        i += 1
    return out


def netstat_inet(text: str) -> List[Tuple[str, str, str, str, Optional[int]]]:
    """netstat -tulpanW rows -> (proto, local, foreign, state, pid or None)."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 5 or f[0] not in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6", "udpl", "udpl6"):
            continue
        rest = f[5:]
        state = ""
        if rest and "/" not in rest[0] and rest[0] != "-":
            state = rest.pop(0)
        prog = " ".join(rest)
        pid = int(prog.split("/", 1)[0]) if prog[:1].isdigit() else None
        rows.append((f[0], f[3], f[4], state, pid))
    return rows


def unbracket(addr: str) -> str:
    """procnet's "[::1]:80" as netstat -n prints it: "::1:80"."""
    return addr.replace("[", "").replace("]", "")


def _prctl(option: int, arg) -> None:
    try:
        ctypes.CDLL(None).prctl(option, arg, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class CliSockets:
    """The sockets and processes test_cli looks for."""

    def __init__(self) -> None:
        self.socks: Dict[str, socket.socket] = {}
        self.tmpdir = tempfile.mkdtemp(prefix="procnet-cli-")
        os.chmod(self.tmpdir, 0o755)
        self.children: Dict[str, int] = {}
        self.child_port: Dict[str, int] = {}
        self._pipes: List[int] = []
        self.skipped: Dict[str, str] = {}
        self.dup_fd = -1

    def _add(self, name: str, make) -> None:
        try:
            self.socks[name] = make()
        except OSError as e:
            self.skipped[name] = str(e)

    def open(self) -> "CliSockets":
        S = socket

        def unix(kind, name, listen=True):
            s = S.socket(S.AF_UNIX, kind)
            s.bind(name)
            if listen:
                s.listen(4)
            return s

        for fam, addr, tag in ((S.AF_INET, "127.0.0.1", "tcp"), (S.AF_INET6, "::1", "tcp6")):
            srv = self.socks[tag + "_listen"] = listener(fam, addr)
            c = S.socket(fam, S.SOCK_STREAM)
            c.connect(srv.getsockname()[:2])
            a, _ = srv.accept()
            self.socks[tag + "_client"], self.socks[tag + "_accepted"] = c, a
        self.socks["tcp_any"] = listener(S.AF_INET, "0.0.0.0")
        self.socks["udp"] = dgram(S.AF_INET, "127.0.0.1")
        self.socks["udp_connected"] = dgram(S.AF_INET, "127.0.0.1", connect=True)
        self.socks["udp6"] = dgram(S.AF_INET6, "::1")
        self._add("udplite", lambda: dgram(S.AF_INET, "127.0.0.1", IPPROTO_UDPLITE))
        self._add("raw", lambda: S.socket(S.AF_INET, S.SOCK_RAW, S.IPPROTO_ICMP))
        d = self.tmpdir
        self.socks["unix_spaces"] = unix(S.SOCK_STREAM, os.path.join(d, "stream with spaces.sock"))
        self.socks["unix_abstract"] = unix(S.SOCK_STREAM, "\0procnet-cli-%d" % os.getpid())
        self.socks["unix_dgram"] = unix(S.SOCK_DGRAM, os.path.join(d, "dgram.sock"), listen=False)
        self.socks["unix_hostile"] = unix(S.SOCK_STREAM, os.path.join(d, HOSTILE_PATH))
        self.socks["unix_hostile2"] = unix(S.SOCK_STREAM, os.path.join(d, HOSTILE_PATH2))
        self.socks["unix_bytes"] = unix(S.SOCK_STREAM, os.path.join(d.encode(), b"bad\xff\xfe.sock"))
        self.socks["pair_a"], self.socks["pair_b"] = S.socketpair()

        # a prefork server: the listener shared with two named children (one with a
        # hostile name), and held on a second fd by this process too
        shared = self.socks["shared"] = listener(S.AF_INET, "127.0.0.1")
        self.dup_fd = os.dup(shared.fileno())
        self._fork("child1", b"pn-child1", keep=shared)
        self._fork("evil", HOSTILE_COMM, keep=shared)
        if os.geteuid() == 0:
            self._fork("nobody", b"pn-nobody", keep=None, become_nobody=True)
        return self

    def _fork(self, tag: str, comm: bytes, keep: Optional[socket.socket],
              become_nobody: bool = False) -> None:
        r, w = os.pipe()            # parent -> child: EOF means "exit"
        r2, w2 = os.pipe()          # child -> parent: its port (or "-"), then ready
        pid = os.fork()
        if pid == 0:                                       # child
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                keepfds = {r, w2} | ({keep.fileno()} if keep is not None else set())
                for fd in os.listdir("/proc/self/fd"):
                    if int(fd) > 2 and int(fd) not in keepfds:
                        try:
                            os.close(int(fd))
                        except OSError:
                            pass
                _prctl(PR_SET_NAME, comm)
                port = b"-"
                if become_nobody:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    _prctl(PR_SET_DUMPABLE, 1)   # else /proc/PID/fd stays root's after setuid
                    s = socket.socket()
                    s.bind(("127.0.0.1", 0))
                    s.listen(1)
                    port = str(s.getsockname()[1]).encode()
                os.write(w2, port + b"\n")
                os.close(w2)
                os.read(r, 1)                              # until the parent closes w (or dies)
            finally:
                os._exit(0)
        os.close(r)
        os.close(w2)
        data = b""
        while not data.endswith(b"\n"):
            chunk = os.read(r2, 64)
            if not chunk:
                break
            data += chunk
        os.close(r2)
        self._pipes.append(w)
        self.children[tag] = pid
        if data.strip() not in (b"-", b""):
            self.child_port[tag] = int(data)

    def unix_path(self, name: str) -> str:
        """The path procnet can report for a unix socket of ours.

        /proc/net/unix prints a path raw, so a newline in it ends the line: read
        from that text (not over netlink), the path is cut at the newline.
        """
        path = self.socks[name].getsockname()
        path = path if isinstance(path, str) else os.fsdecode(path)
        import procnet
        sources = getattr(procnet.connections("unix", owners=False), "sources", {})
        return path if sources.get("unix") == "netlink" else path.split("\n")[0]

    def inode(self, name: str) -> int:
        return os.fstat(self.socks[name].fileno()).st_ino

    def port(self, name: str) -> int:
        return self.socks[name].getsockname()[1]

    def close(self) -> None:
        for w in self._pipes:
            os.close(w)
        for pid in self.children.values():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
        if self.dup_fd >= 0:
            os.close(self.dup_fd)
        for s in self.socks.values():
            s.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def nobody_python() -> Tuple[List[str], Dict[str, str], Optional[str], str]:
    """(prefix, env, tempdir to remove or None, reason) to run `python -m procnet` as nobody.

    The prefix is empty and the reason says why when it is impossible. The repo
    is used in place if nobody can import procnet from it; otherwise the package
    is copied to a fresh 0755 temp dir.
    """
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return [], {}, None, "needs root and setpriv to become nobody"
    pre = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    probe = "import procnet.cli, procnet; procnet.connections('tcp', owners=False)"

    def works(path: str) -> Tuple[bool, str]:
        env = dict(ENV, PYTHONPATH=path)
        p = subprocess.run(pre + [sys.executable, "-c", probe], capture_output=True, text=True,
                           env=env, timeout=60, cwd="/")
        return p.returncode == 0, (p.stderr.strip().splitlines() or ["?"])[-1]

    ok, why = works(REPO)
    if ok:
        return pre, dict(ENV, PYTHONPATH=REPO), None, ""
    tmp = tempfile.mkdtemp(prefix="procnet-nobody-")
    os.chmod(tmp, 0o755)
    shutil.copytree(os.path.join(REPO, "procnet"), os.path.join(tmp, "procnet"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.o", "*.c"))
    for root, dirs, files in os.walk(tmp):
        for n in dirs:
            os.chmod(os.path.join(root, n), 0o755)
        for n in files:
            os.chmod(os.path.join(root, n), 0o755 if n.endswith(".so") else 0o644)
    ok, why2 = works(tmp)
    if ok:
        return pre, dict(ENV, PYTHONPATH=tmp), tmp, ""
    shutil.rmtree(tmp, ignore_errors=True)
    return [], {}, None, "this interpreter cannot run procnet as nobody: %s / %s" % (why, why2)


# -- shared by test_cli.py and test_cli_options.py ---------------------------------

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


def hosts_file_name(ip):
    try:
        with open("/etc/hosts") as f:
            for line in f:
                w = line.split("#", 1)[0].split()
                if len(w) >= 2 and w[0] == ip:
                    return w[1]
    except OSError:
        pass
    return None


def service_name(port, proto):
    try:
        return socket.getservbyport(port, proto)
    except OSError:
        return str(port)


def protocol_name(n):
    try:
        with open("/etc/protocols") as f:
            for line in f:
                w = line.split("#", 1)[0].split()
                if len(w) >= 2 and w[1] == str(n):
                    return w[0]
    except OSError:
        pass
    return None
