"""Real sockets of every kind this kernel allows, for live tests.

Everything is on loopback or unbound; the holder closes everything it opened.
"""
import os
import signal
import socket
import tempfile
from typing import Dict, List, Tuple

ETH_P_ALL = 3
IPPROTO_UDPLITE = 136


def listener(af: int, addr: str) -> socket.socket:
    """A listening TCP socket on a kernel-chosen port."""
    s = socket.socket(af, socket.SOCK_STREAM)
    s.bind((addr, 0))
    s.listen(8)
    return s


def dgram(af: int, addr: str, proto: int = 0, connect: bool = False) -> socket.socket:
    """A bound datagram socket, connected to itself if asked."""
    s = socket.socket(af, socket.SOCK_DGRAM, proto)
    s.bind((addr, 0))
    if connect:
        s.connect(s.getsockname())
    return s


def inet_set(af: int, addr: str) -> List[socket.socket]:
    """A listener, an established pair to it (client, accepted) and a bound
    UDP socket, in that order; the caller closes them."""
    srv = listener(af, addr)
    cli = socket.create_connection(srv.getsockname()[:2])
    return [srv, cli, srv.accept()[0], dgram(af, addr)]


class LiveSockets:
    """Opens the sockets; `expected` maps inode -> (proto, {(pid, fd)})."""

    def __init__(self) -> None:
        self.socks: Dict[str, socket.socket] = {}
        self.children: List[int] = []
        self.tmpdir = tempfile.mkdtemp(prefix="procnet-live-")
        self.skipped: Dict[str, str] = {}

    def _add(self, name: str, make) -> None:
        try:
            self.socks[name] = make()
        except OSError as e:            # not allowed or not built into this kernel
            self.skipped[name] = str(e)

    def open(self) -> "LiveSockets":
        S = socket
        self._add("tcp_listen", lambda: listener(S.AF_INET, "127.0.0.1"))
        self._add("tcp6_listen", lambda: listener(S.AF_INET6, "::1"))
        for fam, addr, tag in ((S.AF_INET, "127.0.0.1", "tcp"), (S.AF_INET6, "::1", "tcp6")):
            srv = self.socks.get(tag + "_listen")
            if srv is not None:
                c = S.socket(fam, S.SOCK_STREAM)
                c.connect(srv.getsockname())
                a, _ = srv.accept()
                self.socks[tag + "_client"], self.socks[tag + "_accepted"] = c, a

        def mapped():
            s = S.socket(S.AF_INET6, S.SOCK_STREAM)
            s.setsockopt(S.IPPROTO_IPV6, S.IPV6_V6ONLY, 0)
            s.bind(("::ffff:127.0.0.1", 0))
            s.listen(1)
            return s
        self._add("tcp6_mapped", mapped)

        self._add("udp", lambda: dgram(S.AF_INET, "127.0.0.1"))
        self._add("udp_connected", lambda: dgram(S.AF_INET, "127.0.0.1", connect=True))
        self._add("udp6", lambda: dgram(S.AF_INET6, "::1"))
        self._add("udplite", lambda: dgram(S.AF_INET, "127.0.0.1", IPPROTO_UDPLITE))
        self._add("udplite6", lambda: dgram(S.AF_INET6, "::1", IPPROTO_UDPLITE))
        self._add("raw", lambda: S.socket(S.AF_INET, S.SOCK_RAW, S.IPPROTO_ICMP))
        self._add("raw6", lambda: S.socket(S.AF_INET6, S.SOCK_RAW, S.IPPROTO_ICMPV6))
        self._add("packet", lambda: S.socket(S.AF_PACKET, S.SOCK_RAW, S.htons(ETH_P_ALL)))

        def netlink():
            s = S.socket(S.AF_NETLINK, S.SOCK_RAW, 0)
            s.bind((0, 0))
            return s
        self._add("netlink", netlink)

        def unix(kind, name):
            s = S.socket(S.AF_UNIX, kind)
            s.bind(name)
            if kind != S.SOCK_DGRAM:
                s.listen(4)
            return s
        p = os.path.join(self.tmpdir, "stream with spaces.sock")
        self._add("unix_stream", lambda: unix(S.SOCK_STREAM, p))
        self._add("unix_dgram", lambda: unix(S.SOCK_DGRAM, os.path.join(self.tmpdir, "dgram.sock")))
        self._add("unix_seqpacket", lambda: unix(S.SOCK_SEQPACKET, os.path.join(self.tmpdir, "seq.sock")))
        self._add("unix_abstract", lambda: unix(S.SOCK_STREAM, "\0procnet-live-%d" % os.getpid()))
        a, b = S.socketpair()
        self.socks["unix_pair_a"], self.socks["unix_pair_b"] = a, b

        # a listener shared with two forked children (a prefork server)
        shared = listener(S.AF_INET, "127.0.0.1")
        self.socks["shared"] = shared
        for _ in range(2):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:                               # child: keep only the listener
                try:
                    keep = {shared.fileno(), r}
                    for fd in os.listdir("/proc/self/fd"):
                        if int(fd) not in keep and int(fd) > 2:
                            try:
                                os.close(int(fd))
                            except OSError:
                                pass
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    os.read(r, 1)                      # until the parent closes w or dies
                finally:
                    os._exit(0)
            os.close(r)
            self.children.append(pid)
            self._pipes = getattr(self, "_pipes", []) + [w]
        return self

    def inode(self, name: str) -> int:
        return os.fstat(self.socks[name].fileno()).st_ino

    def expected(self) -> Dict[int, Tuple[str, set]]:
        me = os.getpid()
        out = {}
        for name, s in self.socks.items():
            owners = {(me, s.fileno())}
            if name == "shared":
                owners |= {(pid, s.fileno()) for pid in self.children}
            out[os.fstat(s.fileno()).st_ino] = (name, owners)
        return out

    def close(self) -> None:
        for w in getattr(self, "_pipes", []):
            os.close(w)
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
        for s in self.socks.values():
            s.close()
        import shutil
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def sleeping_holder(threads: bool = False) -> Tuple[int, int, int]:
    """Fork a process holding a TCP listener on loopback, asleep in a read
    (with threads=True, beside a second thread asleep too). Returns (pid,
    the listener's inode, an fd whose byte wakes it once). It ends when
    killed or when that fd's last holder, the caller, is gone: it keeps no
    other fd (not the caller's stdout either, which a test may wait on)."""
    import threading
    import time
    ready_r, ready_w = os.pipe()
    kick_r, kick_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            s = listener(socket.AF_INET, "127.0.0.1")
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            keep = {0, 1, 2, s.fileno(), ready_w, kick_r}
            for name in os.listdir("/proc/self/fd"):
                if int(name) not in keep:
                    try:
                        os.close(int(name))
                    except OSError:
                        pass
            if threads:
                threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
            os.write(ready_w, b"%d" % os.fstat(s.fileno()).st_ino)
            while os.read(kick_r, 1):
                pass
        finally:
            os._exit(0)
    inode = int(os.read(ready_r, 64))
    for fd in (ready_r, ready_w, kick_r):
        os.close(fd)
    return pid, inode, kick_w
