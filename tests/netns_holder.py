"""A socket holder for the network-namespace tests (tests/test_netns.py).

Run as ``python netns_holder.py '<json steps>'``; it performs the steps in
order, prints one JSON line (its pid and, per socket label, the inode, the fd,
the namespace the socket was made in -- the calling thread's at the time,
read from /proc/thread-self/ns/net, not from procnet -- and the kernel's
protocol name), then holds everything until stdin reaches EOF (every process
that shares the pipe, forked children included, sees the same EOF).

Steps: ``["lo"]`` brings lo up; ``["open", label, family]`` (tcp, tcp_est,
udp, unix, unix_pair, raw, packet, netlink, mptcp); ``["setns", path]``;
``["fork"]`` (a child holding the same fds until EOF; reported as
"children"); ``["send", fd, [labels]]`` passes those sockets over the unix
socket ``fd`` (SCM_RIGHTS) and closes them here; ``["recv", fd, [labels]]``
receives them; ``["exit"]`` exits right after printing.
"""
import array
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys

CLONE_NEWNET = 0x40000000
IPPROTO_MPTCP = 262
_libc = ctypes.CDLL(None, use_errno=True)


def ns_now() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
    finally:
        os.close(fd)


def open_family(family: str):
    """The socket(s) of one family, in the calling thread's namespace."""
    if family == "tcp":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("0.0.0.0", 0))
        s.listen(8)
        return [s]
    if family == "tcp_est":             # both ends and the listener (needs lo up)
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.bind(("127.0.0.1", 0))
        lst.listen(8)
        c = socket.create_connection(lst.getsockname())
        a, _ = lst.accept()
        return [lst, c, a]
    if family == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        return [s]
    if family == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(b"\0procnet-netns-test-%d-%d" % (os.getpid(), ns_now()))
        s.listen(8)
        return [s]
    if family == "unix_pair":
        return list(socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM))
    if family == "raw":
        return [socket.socket(socket.AF_INET, socket.SOCK_RAW, 253)]
    if family == "packet":
        return [socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))]
    if family == "netlink":
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        s.bind((0, 0))
        return [s]
    if family == "mptcp":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
        s.bind(("0.0.0.0", 0))
        s.listen(8)
        return [s]
    raise ValueError("unknown family %r" % family)


def describe(s: socket.socket) -> dict:
    fd = s.fileno()
    try:
        proto = os.getxattr("/proc/self/fd/%d" % fd, "system.sockprotoname").split(b"\0")[0].decode()
    except OSError:
        proto = ""
    own = ns_now()
    try:        # the socket's own namespace (SIOCGSKNS), as a cross-check of own
        import fcntl
        nsfd = fcntl.ioctl(fd, 0x894C)
        own = os.fstat(nsfd).st_ino
        os.close(nsfd)
    except OSError:
        pass
    return {"inode": os.fstat(fd).st_ino, "fd": fd, "ns": own, "proto": proto}


def main() -> None:
    steps = json.loads(sys.argv[1])
    keep, out, children, exit_now = {}, {}, [], False
    for step in steps:
        op = step[0]
        if op == "lo":
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        elif op == "open":
            socks = open_family(step[2])
            for i, s in enumerate(socks):
                label = step[1] if len(socks) == 1 else "%s.%d" % (step[1], i)
                keep[label] = s
                out[label] = describe(s)
        elif op == "setns":
            setns(step[1])
        elif op == "fork":
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                sys.stdin.buffer.read()
                os._exit(0)
            children.append(pid)
        elif op == "send":
            chan = socket.socket(fileno=step[1])
            fds = [keep[label].fileno() for label in step[2]]
            chan.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            for label in step[2]:
                keep.pop(label).close()
                out.pop(label)
        elif op == "recv":
            chan = socket.socket(fileno=step[1])
            _, anc, _, _ = chan.recvmsg(1, socket.CMSG_SPACE(4 * len(step[2])))
            fds = array.array("i")
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds.frombytes(data[:len(data) - len(data) % 4])
            for label, fd in zip(step[2], fds):
                keep[label] = socket.socket(fileno=fd)
                out[label] = describe(keep[label])
        elif op == "exit":
            exit_now = True
        else:
            raise ValueError("unknown step %r" % (step,))
    print(json.dumps({"pid": os.getpid(), "children": children, "socks": out}), flush=True)
    if exit_now:
        os._exit(0)
    sys.stdin.buffer.read()
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
