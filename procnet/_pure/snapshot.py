"""One snapshot in pure Python; twin of snapshot.c (tables via listing.py, owner walk, join)."""
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

from .._records import R_EXT, R_INODE, R_OWNER_FIRST, Owner, _Context
from .._errors import ProcNetError
from .._plan import OWN_BPF, Plan
from .._request import Query
from . import cache as _cache
from . import listing, netns, owners_proc, poll_diff

_HOST_BIG = sys.byteorder == "big"


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


def _on_procfs(dev: int) -> bool:
    """Is the filesystem of device dev a procfs? (C asks fstatfs; Python has
    no f_type, so the mount table says.)"""
    want = "%d:%d" % (os.major(dev), os.minor(dev))
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2].decode("ascii", "replace") == want and b"-" in fields:
                    return fields[fields.index(b"-") + 1] == b"proc"
    except OSError:
        pass
    return False


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
                # the short identity check holds on procfs only (proc_ident.py)
                cache.bind((st.st_dev, st.st_ino), lambda: _on_procfs(st.st_dev))
            # As in C, the owner walk runs beside the table reading: its
            # readlinkat/getdents calls release the GIL while decoding holds it.
            walker = _Walker(rootfd, q, cache) if q.owners and q.threads != 1 else None
            recs: List[tuple] = []
            strings = bytearray()
            merged = listing.Merged()
            ns_status = listing.list_all(q, p, rootfd, netfd, big, recs, strings, merged)
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
