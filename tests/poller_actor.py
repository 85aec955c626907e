"""A scripted process for the Poller's live tests: it changes its fd table on command.

Run as ``python poller_actor.py CTRL_FD``: reads JSON commands from the unix
SOCK_SEQPACKET control socket CTRL_FD, answers each with JSON once the change
is done, and blocks in recv otherwise -- so between commands it does not run,
which is what the Poller's owner cache relies on. Sockets are kept as raw fds
(never closed behind the test's back). Ops: listen, udp, close, dup2_new,
recv_fd, fork, exec, exit; for change tracking also close_range, thread_socket,
rename, autobind, sendto, connect, reset, exec_cloexec.
"""
import json
import os
import signal
import socket
import sys


def inode(fd: int) -> int:
    return os.fstat(fd).st_ino


def serve(ctrl: socket.socket) -> None:
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(ctrl, 4096, 4)
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)             # the test went away
        cmd = json.loads(msg)
        op = cmd["op"]
        reply = {"ok": op}
        if op in ("listen", "udp"):
            kind = socket.SOCK_STREAM if op == "listen" else socket.SOCK_DGRAM
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", 0))
            if op == "listen":
                s.listen(4)
            fd = s.detach()
            reply.update(fd=fd, inode=inode(fd))
        elif op == "close":
            os.close(cmd["fd"])
        elif op == "reset":                    # close with SO_LINGER 0: an RST, no FIN_WAIT rows
            import struct
            socket.socket(fileno=os.dup(cmd["fd"])).setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(cmd["fd"])
        elif op == "dup2_new":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))      # unbound sockets are in no table
            os.dup2(s.fileno(), cmd["fd"])
            s.close()
            reply.update(inode=inode(cmd["fd"]))
        elif op == "recv_fd":
            reply.update(fds=fds, inodes=[inode(f) for f in fds])
        elif op == "fork":
            (new_ctrl,) = fds
            pid = os.fork()
            if pid == 0:
                ctrl.close()
                ctrl = socket.socket(fileno=new_ctrl)
                ctrl.send(json.dumps({"ok": "forked", "pid": os.getpid()}).encode())
                continue
            os.close(new_ctrl)
            reply.update(pid=pid)
        elif op == "exec":
            # keep every fd across exec; the new image is named by the link
            for name in os.listdir("/proc/self/fd"):
                try:
                    os.set_inheritable(int(name), True)
                except OSError:
                    pass
            os.execv(cmd["path"], [cmd["path"], os.path.abspath(__file__), str(ctrl.fileno()),
                                   "exec"])
        elif op == "exit":
            os._exit(0)
        elif op == "close_range":             # the close_range syscall (os.closerange may loop)
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            if cmd["lo"] <= ctrl.fileno() <= cmd["hi"]:          # keep the control socket
                nfd = os.dup2(ctrl.fileno(), cmd["hi"] + 1)
                ctrl.detach()
                ctrl = socket.socket(fileno=nfd)
            if libc.syscall(436, cmd["lo"], cmd["hi"], 0) != 0:       # x86_64/arm64/s390x number
                for fd in range(cmd["lo"], cmd["hi"] + 1):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
        elif op == "thread_socket":            # a socket made by another thread of the process
            import threading
            box = {}
            t = threading.Thread(target=lambda: box.update(
                fd=socket.socket(socket.AF_INET, socket.SOCK_STREAM).detach()))
            t.start()
            t.join()
            s = socket.socket(fileno=box["fd"])
            s.bind(("127.0.0.1", 0))
            s.listen(2)
            fd = s.detach()
            reply.update(fd=fd, inode=inode(fd))
        elif op == "rename":
            import ctypes
            ctypes.CDLL(None).prctl(15, cmd["name"].encode(), 0, 0, 0)      # PR_SET_NAME
        elif op == "autobind":                 # unbound until sendto binds it
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            fd = s.detach()
            reply.update(fd=fd, inode=inode(fd))
        elif op == "sendto":
            socket.socket(fileno=os.dup(cmd["fd"])).sendto(b"x", ("127.0.0.1", cmd["port"]))
        elif op == "connect":
            s = socket.create_connection(("127.0.0.1", cmd["port"]))
            fd = s.detach()
            reply.update(fd=fd, inode=inode(fd))
        elif op == "exec_cloexec":            # exec: fds in cmd["drop"] close on it
            for name in os.listdir("/proc/self/fd"):
                try:
                    os.set_inheritable(int(name), int(name) not in cmd["drop"])
                except OSError:
                    pass
            os.execv(cmd["path"], [cmd["path"], os.path.abspath(__file__), str(ctrl.fileno()),
                                   "exec"])
        ctrl.send(json.dumps(reply).encode())


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)      # exited children are reaped at once
    ctrl = socket.socket(fileno=int(sys.argv[1]))
    ctrl.send(json.dumps({"ok": sys.argv[2] if len(sys.argv) > 2 else "start",
                          "pid": os.getpid()}).encode())
    serve(ctrl)


if __name__ == "__main__":
    main()
