"""The socket tables of every namespace a query names (or the caller's), in
pure Python; twin of listing.c: netlink dumps from a socket made inside each,
per-table text fallback, and how each table went. (listing.c also lists
only what a tracking Poller's records named, PN_Q_CARRY: native-only, as the
tracking is.)"""
import errno
import os
from typing import Any, Dict, List, Optional, Tuple

from .._plan import SOURCE_NAMES, SRC_NETLINK, SRC_PROCFS, Plan, table_status
from .._request import Query
from .._tables import DIAG_TCP46, TABLES, TCP, TCP6
from . import netns, sock_diag, table_reader


READ, MISSING, ERROR = 1, 2, 3       # PN_TABLE_*


class NsTables:
    """How one namespace's tables went (struct pn_ns_tables in listing.c)."""

    def __init__(self) -> None:
        self.status: Dict[int, Tuple[int, int]] = {}     # table -> (PN_TABLE_*, errno)
        self.skipped: Dict[int, int] = {}
        self.source: Dict[int, int] = {}


def _read_text(netfd: Optional[int], t: int, big: bool, keep, recs: List[tuple], strings: bytearray,
               o: NsTables, own_inode: int = 0) -> None:
    o.source[t] = SRC_PROCFS
    if netfd is None:           # a namespace with no process: no text to fall back to
        o.status[t] = (ERROR, errno.ENOENT)
        return
    mark = len(recs), len(strings)
    try:
        n = table_reader.read_table(netfd, t, big, keep, recs, strings, own_inode)
    except OSError as e:
        del recs[mark[0]:]
        del strings[mark[1]:]
        code = e.errno or errno.EIO
        o.status[t] = (MISSING if code == errno.ENOENT else ERROR, code)
        return
    o.status[t] = (READ, 0)
    if n:
        o.skipped[t] = o.skipped.get(t, 0) + n


def read_tables(q: Query, source: int, text_fallback: bool, nl, nl_error: Optional[OSError],
                own_inode: int, netfd: Optional[int], big: bool, recs: List[tuple],
                strings: bytearray, o: NsTables) -> None:
    """Every table asked for in one namespace: from its netlink socket nl where
    planned and working, else its text (netfd, None when it has none)."""
    keep = table_reader.keep_sock(q)
    seq = [0]
    done = frozenset()
    if source == SRC_NETLINK and nl is not None and sock_diag.tcp46_serves(q):
        # tcp and tcp6 from one walk of the TCP hashes; if that dump fails,
        # each is dumped (and, planned so, read from text) on its own below
        try:
            n = sock_diag.dump_table(nl, DIAG_TCP46, q, keep, own_inode, seq, recs, strings)
        except OSError:
            pass
        else:
            for t in (TCP, TCP6):
                o.status[t], o.source[t] = (READ, 0), SRC_NETLINK
            if n:
                o.skipped[TCP] = o.skipped.get(TCP, 0) + n
            done = frozenset((TCP, TCP6))
    for t in sorted(q.tables):
        if t in done:
            continue
        if source == SRC_NETLINK:
            err = nl_error
            if q.netlink_deny & (1 << t):
                err = OSError(errno.EPERM, os.strerror(errno.EPERM))
            elif nl is not None:
                try:
                    n = sock_diag.dump_table(nl, t, q, keep, own_inode, seq, recs, strings)
                except OSError as e:
                    err = e
                else:
                    o.status[t], o.source[t] = (READ, 0), SRC_NETLINK
                    if n:
                        o.skipped[t] = o.skipped.get(t, 0) + n
                    continue
            if not text_fallback:
                o.status[t] = (ERROR, (err.errno if err else 0) or errno.EIO)
                o.source[t] = SRC_NETLINK
                continue
            # this table alone falls back to its text file
        # (a text fallback lists our dump socket: leave it out, as C's pn_sink.own_inode)
        _read_text(netfd, t, big, keep, recs, strings, o, own_inode)


class Merged:
    """pn_result's per-table fields, over every namespace (merge_tables)."""

    def __init__(self) -> None:
        self.status: Dict[int, Tuple[int, int]] = {}
        self.skipped: Dict[int, int] = {}
        self.source: Dict[int, int] = {}

    def merge(self, o: NsTables) -> None:
        for t, (st, err) in o.status.items():
            self.skipped[t] = self.skipped.get(t, 0) + o.skipped.get(t, 0)
            self.source[t] = self.source.get(t, 0) | o.source.get(t, 0)
            cur = self.status.get(t, (0, 0))
            if cur[0] == ERROR:
                continue
            if st == ERROR:
                self.status[t] = (st, err)
            elif st == READ or not cur[0]:
                self.status[t] = (st, 0)

    def meta(self, q: Query) -> Tuple[Dict[str, str], Dict[str, str], Dict[str, int]]:
        """(tables, sources, skipped) as _native._unpack makes them."""
        tables: Dict[str, str] = {}
        sources: Dict[str, str] = {}
        skipped: Dict[str, int] = {}
        for t in sorted(q.tables):
            st, err = self.status.get(t, (0, 0))
            tables[TABLES[t]] = table_status(st, err)
            sources[TABLES[t]] = SOURCE_NAMES.get(self.source.get(t, 0), "")
            if self.skipped.get(t):
                skipped[TABLES[t]] = self.skipped[t]
        return tables, sources, skipped


def _stamp(recs: List[tuple], mark: int, netns: int) -> None:
    tail = (netns, 0)                     # pn_sock.netns, reserved2
    recs[mark:] = [r + tail for r in recs[mark:]]


def _list_own(q: Query, p: Plan, netfd: int, big: bool, recs: List[tuple], strings: bytearray,
              m: Merged) -> None:
    o = NsTables()
    mark = len(recs)
    nl, nl_error, own_inode = None, None, 0
    if p.source == SRC_NETLINK:
        try:
            nl, own_inode = sock_diag.open_diag()
        except OSError as e:
            nl_error = e
    try:
        read_tables(q, p.source, p.text_fallback, nl, nl_error, own_inode, netfd, big, recs,
                    strings, o)
    finally:
        if nl is not None:
            nl.close()
    m.merge(o)
    _stamp(recs, mark, p.self_netns)


def _list_netns(q: Query, p: Plan, rootfd: int, li, big: bool, recs: List[tuple],
                strings: bytearray, m: Merged) -> Tuple[int, int, int]:
    """One listed namespace; its (inode, source, errno, tables read) as pn_netns_status."""
    o = NsTables()
    mark = len(recs)
    source, nl, nl_error, own_inode, error = li.source, None, None, 0, 0
    if source == SRC_PROCFS and li.net_dir is None:
        return li.inode, 0, errno.ENOENT, 0       # no member process: no text to read
    if source == SRC_NETLINK:
        try:
            # the caller's own namespace needs no entering
            nl, own_inode = netns.netns_diag_open(li.enter, li.inode) if li.enter else \
                sock_diag.open_diag()
        except OSError as e:
            nl_error, error = e, e.errno or errno.EIO
            if not p.text_fallback or li.net_dir is None:
                return li.inode, 0, error, 0
            source = SRC_PROCFS                   # entering refused: the text
    netfd = None
    try:
        if li.net_dir is not None:
            try:
                netfd = os.open(li.net_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=rootfd)
                if not netns.member_still_in(rootfd, li.net_dir, li.inode):
                    os.close(netfd)
                    netfd = None
                    raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
            except OSError as e:
                if source == SRC_PROCFS:
                    return li.inode, 0, e.errno or errno.EIO, 0    # its process left or moved
        read_tables(q, source, p.text_fallback, nl, nl_error, own_inode, netfd, big, recs,
                    strings, o)
    finally:
        if nl is not None:
            nl.close()
        if netfd is not None:
            os.close(netfd)
    m.merge(o)
    _stamp(recs, mark, li.inode)
    read = sum(1 << t for t, (st, _) in o.status.items() if st == READ)
    return li.inode, source, error, read


def list_all(q: Query, p: Plan, rootfd: int, netfd: int, big: bool, recs: List[tuple],
             strings: bytearray, merged: "Merged") -> List[Any]:
    """pn_list_all: every namespace the plan lists (or the caller's, from
    netfd); returns their statuses (none for the caller's own)."""
    if p.listings is None:
        _list_own(q, p, netfd, big, recs, strings, merged)
        return []
    return [_list_netns(q, p, rootfd, li, big, recs, strings, merged) for li in p.listings]
