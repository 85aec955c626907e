"""The native backend: one call into the C core, records unpacked in bulk.

The core runs with the GIL released (cffi does that for API-mode calls), and
holds no global state, so any number of threads may snapshot at once. The
one process-wide thing is the loaded BPF owner program (see `bpf`), which the
core only reads.
"""
import errno
import os
import struct
import threading
from array import array
from operator import itemgetter
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._records import OWNER_STRUCT, SOCK_STRUCT, _Context
from ._core import ffi, lib  # type: ignore[import-not-found]
from ._errors import ProcRootError
from ._plan import OWN_BPF, OWNER_SOURCE_NAMES, SOURCE_NAMES, Plan, table_status
from ._request import Query
from ._tables import TABLES
from ._version import __version__

# PN_ABI_VERSION of the csrc/procnet.h this Python code was written against
ABI_VERSION = 11
if lib.pn_abi_version() != ABI_VERSION or ffi.sizeof("struct pn_sock") != SOCK_STRUCT.size \
        or ffi.sizeof("struct pn_owner") != OWNER_STRUCT.size:
    raise ImportError("procnet's compiled core does not match its Python code; reinstall procnet")
CORE_VERSION = ffi.string(lib.pn_version()).decode()
if CORE_VERSION != __version__:
    raise ImportError("procnet %s found a compiled core of version %s; reinstall procnet"
                      % (__version__, CORE_VERSION))

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


def bpf_load() -> Optional[str]:
    """Load the BPF owner program if needed: None when loaded, else why it cannot be."""
    return None if bpf.load() is not None else (bpf.error or "unknown")


def bpf_loaded() -> bool:
    """Is the BPF owner program loaded in this process?"""
    return bpf.loaded


def can_enter_netns() -> bool:
    """The core setns()es a thread into another namespace to list it over netlink."""
    return True


def bpf_may_load() -> bool:
    """Could a load succeed (not yet refused in this process)?"""
    return bpf.error is None


class Cache:
    """A Poller's state in the core (struct pn_cache), freed with this object."""

    def __init__(self) -> None:
        c = lib.pn_cache_new()
        if c == ffi.NULL:
            raise MemoryError("procnet: out of memory creating a poller cache")
        self.ptr = ffi.gc(c, lib.pn_cache_free)

    def close(self) -> None:
        ptr, self.ptr = self.ptr, ffi.NULL    # a use after this is EINVAL, never a freed cache
        if ptr != ffi.NULL:
            ffi.release(ptr)      # frees it now rather than when collected


# struct pn_change (csrc/procnet.h): kind tgid tid other netns family type protocol table pad
_CHANGE = struct.Struct("=IIIIIHHHBB")
_CHANGE_FIELDS = itemgetter(0, 1, 2, 3, 4, 8)    # (kind, tgid, tid, other, netns, table)
if ffi.sizeof("struct pn_change") != _CHANGE.size:
    raise ImportError("procnet's compiled core does not match its Python code; reinstall procnet")


class Tracker:
    """A Poller's kernel-side change tracking (csrc/change_track.c): the
    records the kernel made since the last read. Open with `open_tracker`."""

    def __init__(self, ptr: Any) -> None:
        self.ptr = ffi.gc(ptr, lib.pn_track_close)
        self._recs = ffi.new("const struct pn_change **")
        self._lost = ffi.new("uint64_t *")

    def read(self) -> Tuple[List[Tuple[int, int, int, int, int, int]], int]:
        """([(kind, tgid, tid, other, netns, table)], records lost since the open)."""
        n = lib.pn_track_read(self.ptr, self._recs, self._lost)
        if n < 0:
            e = ffi.errno
            raise OSError(e, "procnet: reading the change records: " + os.strerror(e))
        if not n:
            return [], int(self._lost[0])
        raw = ffi.buffer(self._recs[0], n * _CHANGE.size)
        return list(map(_CHANGE_FIELDS, _CHANGE.iter_unpack(raw))), int(self._lost[0])

    def close(self) -> None:
        ffi.release(self.ptr)


def open_tracker(ringbuf_bytes: int = 1 << 22, skip: Optional[str] = None
                 ) -> Tuple[Optional[Tracker], str]:
    """(a Tracker, "") or (None, why it cannot be opened). `skip` (tests): a
    program left unattached, which fails the open like a refused attach."""
    out = ffi.new("struct pn_track **")
    why = ffi.new("char[]", 512)
    sk = ffi.new("char[]", skip.encode()) if skip else ffi.NULL
    if lib.pn_track_open(out, ringbuf_bytes, sk, why, 512) != 0:
        return None, ffi.string(why).decode("utf-8", "replace") or os.strerror(ffi.errno)
    return Tracker(out[0]), ""


def _cquery(q: Query, p: Plan, cache: Optional[Cache], carry: Any = None) -> Tuple[Any, list]:
    cq = ffi.new("struct pn_query *")
    root = ffi.new("char[]", os.fsencode(q.proc_root))
    keep = [root]
    cq.proc_root = root
    cq.tables = q.table_mask
    cq.flags = q.flags | p.flags
    cq.byte_order = q.byte_order
    cq.threads = q.threads
    for i, m in enumerate(q.state_masks):
        cq.state_mask[i] = m
    cq.lport, cq.rport, cq.uid = q.lport, q.rport, q.uid
    cq.source, cq.netlink_deny = p.source, q.netlink_deny
    cq.laddr_family = q.laddr_family
    ffi.memmove(cq.laddr, q.laddr, 16)
    if q.pids is not None:
        pids = ffi.new("int32_t[]", q.pids or [0])
        keep.append(pids)
        cq.pids, cq.npids = pids, len(q.pids)
    cq.owner_source = p.owner_source
    # the plan asked for BPF only after loading it (_plan.plan)
    cq.bpf = bpf.load() if p.owner_source == OWN_BPF else ffi.NULL
    cq.cache = cache.ptr if cache is not None else ffi.NULL
    cq.self_netns, cq.classify = p.self_netns, p.classify
    if p.listings is not None:
        ns = ffi.new("struct pn_netns[]", max(1, len(p.listings)))
        keep.append(ns)
        for i, li in enumerate(p.listings):
            ns[i].inode, ns[i].source = li.inode, li.source
            if carry is not None:
                ns[i].tables = carry.tables_in(li.inode)
            for field in ("enter", "net_dir"):
                v = getattr(li, field)
                if v is not None:
                    b = ffi.new("char[]", os.fsencode(v))
                    keep.append(b)
                    setattr(ns[i], field, b)
        cq.netns, cq.nnetns = ns, len(p.listings)
    if carry is not None:       # a tracking Poller's poll of what records named (_track.Carry)
        cq.flags |= lib.PN_Q_CARRY
        cq.own_tables = carry.tables_in(p.self_netns)
        recheck = ffi.new("int32_t[]", list(carry.recheck) or [0])
        keep.append(recheck)
        cq.recheck, cq.nrecheck = recheck, len(carry.recheck)
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
    return SOCK_STRUCT.iter_unpack(socks), _Context(strings, owners), _meta(q, res)


def _meta(q: Query, res: Any) -> Dict[str, Any]:
    """What a result says besides its records (Snapshot's attributes, raw)."""
    denied = tuple(res.denied_pids[i] for i in range(res.ndenied))
    tables: Dict[str, str] = {}
    sources: Dict[str, str] = {}
    skipped: Dict[str, int] = {}
    for t in sorted(q.tables):
        tables[TABLES[t]] = table_status(res.table_status[t], res.table_errno[t])
        sources[TABLES[t]] = SOURCE_NAMES.get(res.table_source[t], "")
        if res.skipped[t]:
            skipped[TABLES[t]] = res.skipped[t]
    meta = {"denied_pids": denied, "skipped": skipped, "tables": tables, "sources": sources,
            "processes": res.nprocs, "owner_source": OWNER_SOURCE_NAMES[res.owner_source]}
    stats = {"procs_cached": res.procs_cached, "fds_read": res.fds_read,
             "holders": list(res.holders[0:res.nholders]) if res.nholders else [],
             "volatile": res.nvolatile}
    meta["_stats"] = stats
    meta["_netns_status"] = [(st.inode, st.source, st.error, st.tables_read) for st in
                             (res.netns_status[i] for i in range(res.nnetns_status))]
    meta["_unlisted"] = [(u.inode, u.netns, u.pid, ffi.string(u.proto).decode("ascii", "replace"))
                         for u in (res.unlisted[i] for i in range(res.nunlisted))]
    return meta


def snapshot(q: Query, p: Plan, cache: Optional[Cache] = None) -> Tuple[Any, _Context, Dict[str, Any]]:
    """Run one snapshot as planned; returns (raw records, context, metadata)."""
    cq, keep = _cquery(q, p, cache)
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


def poll(q: Query, p: Plan, cache: Cache, tracker: "Optional[Tracker]" = None, carry: Any = None
         ) -> Tuple[Any, _Context, Dict[str, Any], Dict[str, Any]]:
    """One poll: the new or changed records, and how the poll is made of the last one.
    With a `tracker`, the calling thread's syscalls go unrecorded while the
    core lists, and only then: no Python code (a signal handler, a finalizer)
    runs on the thread meanwhile. With a `carry` (_track.Carry), only what
    it names is listed and walked; the rest is the last poll's."""
    cq, keep = _cquery(q, p, cache, carry)
    res = ffi.new("struct pn_result *")
    d = ffi.new("struct pn_delta *")
    try:
        if tracker is None:
            rc = lib.pn_poll(cq, cache.ptr, res, d)
        else:
            rc = lib.pn_track_poll(tracker.ptr, cq, cache.ptr, res, d)
        if rc != 0:
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


# netstat's table in the core (csrc/netstat_render.c), for the command line
RENDER_EXTEND, RENDER_PROGRAM = lib.PN_R_EXTEND, lib.PN_R_PROGRAM
RENDER_SECTIONS = {"inet": lib.PN_R_INET, "unix": lib.PN_R_UNIX, "vsock": lib.PN_R_VSOCK,
                   "xdp": lib.PN_R_XDP}
RENDER_MODES = {"all": lib.PN_R_ALL, "listening": lib.PN_R_LISTENING, "connected": lib.PN_R_CONNECTED}
_type_names: Optional[bytes] = None


def _render_type_names() -> bytes:
    """The Type column per pn_sock.stype (256 x 16 bytes): SOCK_STREAM -> "STREAM", "-" unknown."""
    global _type_names
    if _type_names is None:
        from ._records import _socktype
        out = bytearray(256 * 16)
        for n in range(256):
            t = _socktype(n)
            name = (t.name[5:] if t is not None else "-").encode("ascii")[:15]
            out[16 * n:16 * n + len(name)] = name
        _type_names = bytes(out)
    return _type_names


def _nonprintable(strings: bytes) -> "array[int]":
    """The code points above 0x7f in `strings` that str.isprintable() refuses, sorted:
    the core escapes exactly what Python's own Unicode tables call non-printable."""
    text = strings.decode("utf-8", "surrogateescape")
    return array("I", sorted({ord(ch) for ch in set(text) if ord(ch) > 0x7F and not ch.isprintable()}))


def render_table(q: Query, p: Plan, fd: int, flags: int, mode: int,
                 before: Callable[[Dict[str, Any], Callable[[], Tuple[Any, _Context]]],
                                  Optional[Dict[int, str]]]) -> int:
    """One snapshot rendered as netstat's table and written to `fd` by the core.

    `before(meta, records)` runs between the snapshot and the writing: it gets
    the snapshot's metadata (as snapshot() returns it) and a function giving
    its records (tests compare renderers on them), and returns the Net
    namespace column's texts {inode: text}, or None for no such column.
    Returns 0, or the errno of the write that failed (EPIPE...); the
    snapshot's own errors raise as snapshot()'s do.
    """
    def setup(w: Any, meta: Dict[str, Any], records: Any, keep: List[Any]) -> None:
        names = before(meta, records)
        w.flags = flags | (lib.PN_R_NETNS if names is not None else 0)
        if names:
            texts = [(inode, text.encode("utf-8", "surrogateescape")) for inode, text in names.items()]
            ns = ffi.new("struct pn_render_netns[]", len(texts))
            for i, (inode, b) in enumerate(texts):
                cb = ffi.new("char[]", b)
                keep.append(cb)
                ns[i].inode, ns[i].len, ns[i].text = inode, len(b), cb
            keep.append(ns)
            w.netns, w.nnetns = ns, len(texts)

    return _render(lib.pn_render_table, q, p, fd, mode, setup)


def render_json(q: Query, p: Plan, fd: int, mode: int,
                before: Callable[[Dict[str, Any], Callable[[], Tuple[Any, _Context]]],
                                 Tuple[bytes, bytes]]) -> int:
    """One snapshot's --json document written to `fd`: `before(meta, records)`
    (as for render_table) returns the bytes before the rows and after them;
    the core writes the rows (csrc/json_render.c). Returns as render_table."""
    def setup(w: Any, meta: Dict[str, Any], records: Any, keep: List[Any]) -> None:
        head, tail = before(meta, records)
        bh, bt = ffi.new("char[]", head), ffi.new("char[]", tail)
        keep += [bh, bt]
        w.head, w.head_len, w.tail, w.tail_len = bh, len(head), bt, len(tail)

    return _render(lib.pn_render_json, q, p, fd, mode, setup)


def _render(render: Callable[[Any, Any], int], q: Query, p: Plan, fd: int, mode: int,
            setup: Callable[[Any, Dict[str, Any], Any, List[Any]], None]) -> int:
    """Snapshot, let `setup` fill the struct pn_render, and call `render` until
    done: again after a signal (its handler runs here: Ctrl-C raises) and
    once more with the non-printable table when the core met non-ASCII text."""
    cq, keep = _cquery(q, p, None)
    res = ffi.new("struct pn_result *")
    try:
        if lib.pn_snapshot(cq, res) != 0:
            _fail(q)

        def records() -> Tuple[Any, _Context]:
            r, ctx, _ = _unpack(q, res)
            return r, ctx

        w = ffi.new("struct pn_render *")
        w.fd, w.mode = fd, mode
        setup(w, _meta(q, res), records, keep)
        types = ffi.from_buffer(_render_type_names())
        keep.append(types)
        w.type_names = types
        while render(res, w) != 0:
            err = ffi.errno
            if err == errno.EINTR:                 # a signal: its handler runs here (Ctrl-C raises)
                w.skip = w.written
                continue
            if err == errno.EDOM and w.nonprint == ffi.NULL:
                table = _nonprintable(ffi.buffer(res.strings, res.strings_len)[:]) or array("I", [0])
                cp = ffi.new("uint32_t[]", list(table))
                keep.append(cp)
                w.nonprint, w.nnonprint = cp, len(table)
                continue
            if err == errno.ENOMEM:
                raise MemoryError("procnet: out of memory rendering")
            return err
        return 0
    finally:
        lib.pn_result_free(res)
        del keep


__all__ = ["render_table", "render_json", "snapshot", "poll", "Cache", "Tracker", "open_tracker", "CORE_VERSION", "bpf_load", "bpf_loaded", "bpf_may_load",
           "can_enter_netns"]
