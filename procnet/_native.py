"""The native backend: one call into the C core, records unpacked in bulk.

The core runs with the GIL released (cffi does that for API-mode calls), and
holds no global state, so any number of threads may snapshot at once. The
one process-wide thing is the loaded BPF owner program (see `bpf`), which the
core only reads.
"""
import os
import threading
from array import array
from typing import Any, Dict, Optional, Tuple

from ._contract import OWNER_STRUCT, SOCK_STRUCT, _Context
from ._core import ffi, lib  # type: ignore[import-not-found]
from ._errors import ProcNetError, ProcRootError
from ._query import OWNER_SOURCE_NAMES, OWNER_SOURCES, SOURCE_NAMES, Query, is_live_proc
from ._tables import TABLES
from ._version import __version__

if lib.pn_abi_version() != 4 or ffi.sizeof("struct pn_sock") != SOCK_STRUCT.size \
        or ffi.sizeof("struct pn_owner") != OWNER_STRUCT.size:
    raise ImportError("procnet's compiled core does not match its Python code; reinstall procnet")
CORE_VERSION = ffi.string(lib.pn_version()).decode()
if CORE_VERSION != __version__:
    raise ImportError("procnet %s found a compiled core of version %s; reinstall procnet"
                      % (__version__, CORE_VERSION))

_STATUS = {lib.PN_TABLE_READ: "read", lib.PN_TABLE_MISSING: "missing"}

# A one-shot call loads the BPF program (~15 ms, once per process) only when
# the host has at least this many sockets: below it the /proc walk is as fast
# (benchmarks/test_bpf.py measures the break-even; BENCHMARKS.md has it).
BPF_BREAK_EVEN = 20000


class _Bpf:
    """The process's loaded BPF owner program: loaded at most once, on demand."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handle: Any = None
        self.error: Optional[str] = None

    def load(self) -> Any:
        """The handle, loading it if needed; None (and .error says why) if it cannot be."""
        if self._handle is not None or self.error is not None:
            return self._handle
        with self._lock:
            if self._handle is None and self.error is None:
                out = ffi.new("struct pn_bpf **")
                why = ffi.new("char[]", 256)
                if lib.pn_bpf_open(out, why, 256) == 0:
                    self._handle = out[0]     # kept for the process's lifetime
                else:
                    self.error = ffi.string(why).decode("utf-8", "replace") or os.strerror(ffi.errno)
        return self._handle

    @property
    def loaded(self) -> bool:
        return self._handle is not None


bpf = _Bpf()


def bpf_status() -> Tuple[bool, str]:
    """(available, reason): loads the program if it was not yet."""
    return (True, "loaded") if bpf.load() is not None else (False, bpf.error or "unknown")


def _expected_sockets(root: str) -> int:
    """Sockets in use per <root>/net/sockstat: known before any listing, ~20 µs."""
    try:
        with open(os.path.join(root, "net", "sockstat"), "rb") as f:
            for line in f:
                if line.startswith(b"sockets:"):
                    return int(line.split()[2])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _bpf_for(q: Query, long_lived: bool) -> Any:
    """The BPF handle this query should use, or ffi.NULL for the /proc walk."""
    if not q.owners or q.owner_source == OWNER_SOURCES["procfs"]:
        return ffi.NULL
    if q.owner_source == OWNER_SOURCES["bpf"]:
        h = bpf.load()
        if h is None:
            raise ProcNetError("owner_source='bpf' is unavailable: %s" % bpf.error)
        return h
    if not is_live_proc(q.proc_root):
        return ffi.NULL
    if bpf.loaded or (bpf.error is None and (
            long_lived or _expected_sockets(q.proc_root) >= BPF_BREAK_EVEN)):
        h = bpf.load()
        return ffi.NULL if h is None else h
    return ffi.NULL


class Cache:
    """A Poller's state in the core (struct pn_cache), freed with this object."""

    def __init__(self) -> None:
        c = lib.pn_cache_new()
        if c == ffi.NULL:
            raise MemoryError("procnet: out of memory creating a poller cache")
        self.ptr = ffi.gc(c, lib.pn_cache_free)

    def close(self) -> None:
        ffi.release(self.ptr)     # frees it now rather than when collected


def _cquery(q: Query, bpf_handle: Any, cache: Optional[Cache]) -> Tuple[Any, list]:
    cq = ffi.new("struct pn_query *")
    root = ffi.new("char[]", os.fsencode(q.proc_root))
    keep = [root]
    cq.proc_root = root
    cq.tables = q.table_mask
    cq.flags = q.flags
    cq.byte_order = q.byte_order
    cq.threads = q.threads
    for i, m in enumerate(q.state_masks):
        cq.state_mask[i] = m
    cq.lport, cq.rport, cq.uid = q.lport, q.rport, q.uid
    cq.source, cq.netlink_deny = q.source, q.netlink_deny
    cq.laddr_family = q.laddr_family
    ffi.memmove(cq.laddr, q.laddr, 16)
    if q.pids is not None:
        pids = ffi.new("int32_t[]", q.pids or [0])
        keep.append(pids)
        cq.pids, cq.npids = pids, len(q.pids)
    cq.owner_source = q.owner_source
    cq.bpf = bpf_handle
    cq.cache = cache.ptr if cache is not None else ffi.NULL
    return cq, keep


def _fail(q: Query) -> None:
    err = ffi.errno
    if err == 12:
        raise MemoryError("procnet: out of memory taking a snapshot")
    raise ProcRootError(err, os.strerror(err), q.proc_root)


def _unpack(q: Query, res: Any) -> Tuple[Any, _Context, Dict[str, Any]]:
    # copy out of C memory: the records outlive this call
    socks = ffi.buffer(res.socks, res.nsocks * SOCK_STRUCT.size)[:] if res.nsocks else b""
    owners = ffi.buffer(res.owners, res.nowners * OWNER_STRUCT.size)[:] if res.nowners else b""
    strings = ffi.buffer(res.strings, res.strings_len)[:] if res.strings_len else b""
    denied = tuple(res.denied_pids[i] for i in range(res.ndenied))
    tables: Dict[str, str] = {}
    sources: Dict[str, str] = {}
    skipped: Dict[str, int] = {}
    for t in sorted(q.tables):
        st = res.table_status[t]
        tables[TABLES[t]] = _STATUS.get(st) or "error: " + os.strerror(res.table_errno[t])
        sources[TABLES[t]] = SOURCE_NAMES[res.table_source[t]]
        if res.skipped[t]:
            skipped[TABLES[t]] = res.skipped[t]
    meta = {"denied_pids": denied, "skipped": skipped, "tables": tables, "sources": sources,
            "processes": res.nprocs, "owner_source": OWNER_SOURCE_NAMES[res.owner_source]}
    stats = {"procs_cached": res.procs_cached, "fds_read": res.fds_read}
    meta["_stats"] = stats
    return SOCK_STRUCT.iter_unpack(socks), _Context(strings, owners), meta


def snapshot(q: Query, cache: Optional[Cache] = None) -> Tuple[Any, _Context, Dict[str, Any]]:
    """Run one snapshot; returns (raw records, context, metadata)."""
    cq, keep = _cquery(q, _bpf_for(q, cache is not None), cache)
    res = ffi.new("struct pn_result *")
    try:
        if lib.pn_snapshot(cq, res) != 0:
            _fail(q)
        return _unpack(q, res)
    finally:
        lib.pn_result_free(res)
        del keep


def _u32(ptr: Any, n: int) -> "array[int]":
    a = array("I")
    if n:
        a.frombytes(ffi.buffer(ptr, 4 * n))
    return a


def poll(q: Query, cache: Cache) -> Tuple[Any, _Context, Dict[str, Any], Dict[str, Any]]:
    """One poll: the new or changed records, and how the poll is made of the last one."""
    cq, keep = _cquery(q, _bpf_for(q, True), cache)
    res = ffi.new("struct pn_result *")
    d = ffi.new("struct pn_delta *")
    try:
        if lib.pn_poll(cq, cache.ptr, res, d) != 0:
            _fail(q)
        records, ctx, meta = _unpack(q, res)
        delta = {"take": _u32(d.take, d.ntake), "prev": _u32(d.prev, res.nsocks),
                 "kind": ffi.buffer(d.kind, res.nsocks)[:] if res.nsocks else b"",
                 "closed": _u32(d.closed, d.nclosed), "rebased": bool(d.rebased),
                 "nprev": d.nprev, "unchanged": bool(d.unchanged)}
        return records, ctx, meta, delta
    finally:
        lib.pn_result_free(res)
        lib.pn_delta_free(d)
        del keep


__all__ = ["snapshot", "poll", "Cache", "CORE_VERSION", "bpf_status"]
