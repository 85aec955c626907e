"""One snapshot in pure Python; twin of snapshot.c (tables, owner walk, join)."""
import errno
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

from .._contract import R_EXT, R_INODE, R_OWNER_FIRST, Owner, _Context
from .._errors import ProcNetError
from .._plan import OWN_BPF, SRC_PROCFS, Plan
from .._query import Query
from .._tables import TABLES
from . import cache as _cache
from . import owners_proc, poll_diff, sock_diag, table_reader

_HOST_BIG = sys.byteorder == "big"


def _read_text(netfd: int, t: int, big: bool, keep, recs: List[tuple], strings: bytearray,
               tables: Dict[str, str], skipped: Dict[str, int]) -> None:
    mark = len(recs), len(strings)
    try:
        n = table_reader.read_table(netfd, t, big, keep, recs, strings)
    except OSError as e:
        del recs[mark[0]:]
        del strings[mark[1]:]
        tables[TABLES[t]] = "missing" if e.errno == errno.ENOENT else \
            "error: " + os.strerror(e.errno or errno.EIO)
        return
    tables[TABLES[t]] = "read"
    if n:
        skipped[TABLES[t]] = n


def read_tables(q: Query, p: Plan, netfd: int, big: bool, recs: List[tuple], strings: bytearray):
    """Every table asked for, from netlink where planned and working, else text (as C)."""
    tables: Dict[str, str] = {}
    sources: Dict[str, str] = {}
    skipped: Dict[str, int] = {}
    keep = table_reader.keep_sock(q)
    nl = None
    nl_error = None
    own_inode = 0
    seq = [0]
    if p.source != SRC_PROCFS:
        try:
            nl, own_inode = sock_diag.open_diag()
        except OSError as e:
            nl_error = e
    try:
        for t in sorted(q.tables):
            name = TABLES[t]
            if p.source != SRC_PROCFS:
                err = nl_error
                if q.netlink_deny & (1 << t):
                    err = OSError(errno.EPERM, os.strerror(errno.EPERM))
                elif nl is not None:
                    try:
                        n = sock_diag.dump_table(nl, t, q, keep, own_inode, seq, recs, strings)
                    except OSError as e:
                        err = e
                    else:
                        tables[name], sources[name] = "read", "netlink"
                        if n:
                            skipped[name] = n
                        continue
                if not p.text_fallback:
                    tables[name], sources[name] = "error: " + os.strerror(
                        (err.errno if err else 0) or errno.EIO), "netlink"
                    continue
                # this table alone falls back to its text file
            sources[name] = "procfs"
            _read_text(netfd, t, big, keep, recs, strings, tables, skipped)
    finally:
        if nl is not None:
            nl.close()
    return tables, sources, skipped


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
            tables, sources, skipped = read_tables(q, p, netfd, big, recs, strings)
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
            "_stats": {"procs_cached": owners.nreused, "fds_read": owners.nreadlink}}
    return out, _Context(bytes(strings), owner_list), meta


Cache = _cache.Cache
_NO_BPF = "it needs the native backend (the pure one walks /proc)"


def bpf_load() -> Optional[str]:
    """The BPF owner source is native-only: always why not."""
    return _NO_BPF


def bpf_loaded() -> bool:
    return False


def bpf_may_load() -> bool:
    return False


def poll(q: Query, p: Plan, cache: _cache.Cache) -> Tuple[List[tuple], _Context, Dict[str, Any], Dict[str, Any]]:
    """One poll (pn_poll): the new or changed records, and how to assemble the rest."""
    recs, ctx, meta = snapshot(q, p, cache)
    out, out_ctx, delta = poll_diff.diff(cache, recs, ctx)
    return out, out_ctx, meta, delta
