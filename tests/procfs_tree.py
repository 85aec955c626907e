"""Build procfs-like fixture trees: <root>/net/<table> text and <root>/PID/fd/N links.

The fd entries are real symlinks (``3 -> socket:[111]``), read back with
readlinkat exactly as in /proc.
"""
import os
import sys
from typing import Iterable, Mapping, Optional, Union

HEADERS = {
    "tcp": "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "tcp6": "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "unix": "Num       RefCount Protocol Flags    Type St Inode Path",
    "packet": "sk               RefCnt Type Proto  Iface R Rmem   User   Inode",
    "netlink": "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode",
}
for _t in ("udp", "udplite", "raw", "icmp"):
    HEADERS[_t] = HEADERS["tcp"]
    HEADERS[_t + "6"] = HEADERS["tcp6"]


def inet_line(sl: int, local: str, remote: str, st: int, inode: int, uid: int = 0,
              tx: int = 0, rx: int = 0) -> str:
    """A tcp/udp-style line; `local`/`remote` are already 'HEXWORDS:PORT'."""
    return ("%4d: %s %s %02X %08X:%08X 00:00000000 00000000 %5d        0 %d 1 0000000000000000 100 0 0 10 0"
            % (sl, local, remote, st, tx, rx, uid, inode))


def unix_line(inode: int, path: Optional[str] = None, *, stype: int = 1, state: int = 1,
              listening: bool = False) -> str:
    line = "0000000000000000: 00000002 00000000 %08X %04X %02X %5d" % (
        0x10000 if listening else 0, stype, state, inode)
    return line + (" " + path if path is not None else "")


def make_tree(root: str, net: Optional[Mapping[str, Union[str, Iterable[str]]]] = None,
              procs: Optional[Mapping[int, Mapping]] = None, *, headers: bool = True) -> str:
    """Create a fixture procfs under `root`.

    net: table name -> text (str, written as is) or lines (header prepended).
    procs: pid -> {"comm": str or None (no comm file), "fd": {fdnum: link target},
    "fd_dir": False (no fd directory)}.
    """
    os.makedirs(os.path.join(root, "net"), exist_ok=True)
    for table, content in (net or {}).items():
        if isinstance(content, (str, bytes)):
            data = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content
        else:
            lines = list(content)
            if headers:
                lines.insert(0, HEADERS[table])
            data = "".join(l + "\n" for l in lines).encode("utf-8", "surrogateescape")
        with open(os.path.join(root, "net", table), "wb") as f:
            f.write(data)
    for pid, spec in (procs or {}).items():
        pdir = os.path.join(root, str(pid))
        os.makedirs(pdir, exist_ok=True)
        comm = spec.get("comm", "proc%d" % pid)
        if comm is not None:
            with open(os.path.join(pdir, "comm"), "wb") as f:
                f.write((comm if isinstance(comm, bytes) else comm.encode()) + b"\n")
        if spec.get("fd_dir", True):
            fdir = os.path.join(pdir, "fd")
            os.makedirs(fdir, exist_ok=True)
            for fd, target in spec.get("fd", {}).items():
                os.symlink(target, os.path.join(fdir, str(fd)))
    return root


def sock(inode: int) -> str:
    return "socket:[%d]" % inode


def le_words(ip_bytes: bytes) -> str:
    """Hex words as a little-endian kernel prints them."""
    return "".join("%08X" % int.from_bytes(ip_bytes[i:i + 4], "little") for i in range(0, len(ip_bytes), 4))


def be_words(ip_bytes: bytes) -> str:
    """Hex words as a big-endian kernel prints them."""
    return "".join("%08X" % int.from_bytes(ip_bytes[i:i + 4], "big") for i in range(0, len(ip_bytes), 4))


def host_words(ip_bytes: bytes) -> str:
    """Hex words as this host's kernel prints them (what byteorder=None decodes)."""
    return le_words(ip_bytes) if sys.byteorder == "little" else be_words(ip_bytes)


# Two network namespaces in a fixture tree (both backends read it as text):
# A is the caller's (self) with pid 100's listener on :8080, B holds pid 200's
# listener on :8081 in 200/net -- links "net:[N]" as /proc/PID/ns/net shows them.
NETNS_A, NETNS_B = 4026531840, 4026532999


def two_netns_tree(root: str) -> str:
    lo = host_words(bytes((127, 0, 0, 1)))        # read with the host's byte order (the CLI's)
    make_tree(root, net={"tcp": [inet_line(0, lo + ":1F90", "00000000:0000", 0x0A, 111)]},
              procs={100: {"comm": "hostd", "fd": {3: sock(111)}},
                     200: {"comm": "podd", "fd": {4: sock(222)}}})
    for pid, ns in (("self", NETNS_A), ("100", NETNS_A), ("200", NETNS_B)):
        os.makedirs(os.path.join(root, pid, "ns"), exist_ok=True)
        os.symlink("net:[%d]" % ns, os.path.join(root, pid, "ns", "net"))
    os.makedirs(os.path.join(root, "200", "net"))
    with open(os.path.join(root, "200", "net", "tcp"), "w") as f:
        f.write(HEADERS["tcp"] + "\n" + inet_line(0, lo + ":1F91", "00000000:0000", 0x0A, 222) + "\n")
    return root
