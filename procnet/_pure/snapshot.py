"""One snapshot in pure Python; twin of snapshot.c (tables, owner walk, join)."""
import errno
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

from .._records import R_EXT, R_INODE, R_OWNER_FIRST, Owner, _Context
from .._errors import ProcNetError
from .._plan import OWN_BPF, SOURCE_NAMES, SRC_NETLINK, SRC_PROCFS, Plan, table_status
from .._request import Query
from .._tables import DIAG_TCP46, TABLES, TCP, TCP6
from . import cache as _cache
from . import netns, owners_proc, poll_diff, sock_diag, table_reader

_HOST_BIG = sys.byteorder == "big"


READ, MISSING, ERROR = 1, 2, 3       # PN_TABLE_*


class NsTables:
    """How one namespace's tables went (struct ns_tables in snapshot.c)."""

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


class _Walker:
    """owners_proc.walk() on a thread of its own; result() joins it."""

    def __init__(self, rootfd: int, q: Query, cache: Optional[_cache.Cache]) -> None:
        import threading
        self._owners: Optional[owners_proc.Owners] = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, args=(rootfd, q.pids, cache), daemon=True)
        self._thread.start()

    def _run(self, rootfd: int, pids, cache) -> None:
        try:
            self._owners = owners_proc.walk(rootfd, pids, cache)
        except BaseException as e:     # handed to the caller's thread in result()
            self._error = e

    def result(self) -> owners_proc.Owners:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._owners is not None
        return self._owners


def snapshot(q: Query, p: Plan, cache: Optional[_cache.Cache] = None) -> Tuple[List[tuple], _Context, Dict[str, Any]]:
    """Run one snapshot as planned; returns (raw records, context, metadata) like _native."""
    if q.owners and p.owner_source == OWN_BPF:
        raise ProcNetError("owner_source='bpf' needs the native backend (the pure one walks /proc)")
    big = q.byte_order == 2 or (q.byte_order == 0 and _HOST_BIG)
    rootfd = os.open(q.proc_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    walker: Optional[_Walker] = None
    try:
        netfd = os.open("net", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=rootfd)
        try:
            if cache is not None and q.owners:
                st = os.fstat(rootfd)
                cache.bind((st.st_dev, st.st_ino))
            # As in C, the owner walk runs beside the table reading: its
            # readlinkat/getdents calls release the GIL while decoding holds it.
            walker = _Walker(rootfd, q, cache) if q.owners and q.threads != 1 else None
            recs: List[tuple] = []
            strings = bytearray()
            merged = Merged()
            ns_status = []
            if p.listings is None:
                _list_own(q, p, netfd, big, recs, strings, merged)
            else:
                ns_status = [_list_netns(q, p, rootfd, li, big, recs, strings, merged)
                             for li in p.listings]
            tables, sources, skipped = merged.meta(q)
        finally:
            os.close(netfd)
        if walker is not None:
            w, walker = walker, None
            owners = w.result()
        else:
            owners = owners_proc.walk(rootfd, q.pids, cache) if q.owners else owners_proc.Owners()
        if cache is not None and q.owners:
            _cache.cache_update(cache, owners.seen, q.pids is not None)
    finally:
        if walker is not None:      # the tables failed: the walk still uses rootfd (and the cache)
            try:
                walker.result()
            except BaseException:
                pass
        os.close(rootfd)

    # join: owners of each socket, sorted by (pid, fd)
    owner_list: List[Owner] = []
    extend = owner_list.extend
    by_inode = owners.by_inode
    owned_only = q.pids is not None
    out = []
    append = out.append
    unlisted: List[Tuple[int, int, int, str]] = []
    if p.classify and q.owners:
        rootfd = os.open(q.proc_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            unlisted = netns.classify_unlisted(
                rootfd, p.classify, netns.listed_set(p.listings, p.self_netns, ns_status),
                by_inode, {r[R_INODE] for r in recs})
        finally:
            os.close(rootfd)
    for r in recs:
        held = by_inode.get(r[R_INODE]) if r[R_INODE] else None
        if held is None:
            if not owned_only:
                append(r)
            continue
        first = len(owner_list)
        extend(sorted(held) if len(held) > 1 else held)      # Owner sorts by (pid, fd, ...)
        append(r[:R_OWNER_FIRST] + (first, len(held)) + r[R_EXT:])
    meta = {"denied_pids": tuple(owners.denied), "skipped": skipped, "tables": tables, "sources": sources,
            "processes": owners.nprocs, "owner_source": "procfs" if q.owners else "",
            "_stats": {"procs_cached": owners.nreused, "fds_read": owners.nreadlink,
                       "holders": sorted({o.pid for held in by_inode.values() for o in held})
                       if cache is not None and q.owners else []},
            "_netns_status": ns_status, "_unlisted": unlisted}
    return out, _Context(bytes(strings), owner_list), meta


Cache = _cache.Cache
_NO_BPF = "the pure backend walks /proc; the BPF owner source is the native one's"


def bpf_load() -> Optional[str]:
    """The BPF owner source is native-only: always why not."""
    return _NO_BPF


def bpf_loaded() -> bool:
    return False


def bpf_may_load() -> bool:
    return False


def open_tracker(ringbuf_bytes: int = 0, skip: Optional[str] = None) -> Tuple[None, str]:
    """Change tracking runs BPF programs: native-only, like the BPF owners."""
    return None, "the pure backend cannot load BPF programs; change tracking is the native one's"


def can_enter_netns() -> bool:
    """Another namespace is listed over netlink where Python has os.setns (3.12+)."""
    return hasattr(os, "setns")


def poll(q: Query, p: Plan, cache: _cache.Cache, tracker: None = None
         ) -> Tuple[List[tuple], _Context, Dict[str, Any], Dict[str, Any]]:
    """One poll (pn_poll): the new or changed records, and how to assemble the rest.
    (`tracker`: never one; change tracking is native-only.)"""
    recs, ctx, meta = snapshot(q, p, cache)
    out, out_ctx, delta = poll_diff.diff(cache, recs, ctx)
    return out, out_ctx, meta, delta
