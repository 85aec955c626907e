"""The native backend: one call into the C core, records unpacked in bulk.

The core runs with the GIL released (cffi does that for API-mode calls), and
holds no global state, so any number of threads may snapshot at once.
"""
import os
from typing import Any, Dict, Tuple

from ._contract import OWNER_STRUCT, SOCK_STRUCT, _Context
from ._core import ffi, lib  # type: ignore[import-not-found]
from ._errors import ProcRootError
from ._query import SOURCE_NAMES, Query
from ._tables import TABLES
from ._version import __version__

if lib.pn_abi_version() != 3 or ffi.sizeof("struct pn_sock") != SOCK_STRUCT.size \
        or ffi.sizeof("struct pn_owner") != OWNER_STRUCT.size:
    raise ImportError("procnet's compiled core does not match its Python code; reinstall procnet")
CORE_VERSION = ffi.string(lib.pn_version()).decode()
if CORE_VERSION != __version__:
    raise ImportError("procnet %s found a compiled core of version %s; reinstall procnet"
                      % (__version__, CORE_VERSION))

_STATUS = {lib.PN_TABLE_READ: "read", lib.PN_TABLE_MISSING: "missing"}


def snapshot(q: Query) -> Tuple[Any, _Context, Dict[str, Any]]:
    """Run one snapshot; returns (raw records, context, metadata)."""
    cq = ffi.new("struct pn_query *")
    root = ffi.new("char[]", os.fsencode(q.proc_root))
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
    pids = None
    if q.pids is not None:
        pids = ffi.new("int32_t[]", q.pids or [0])
        cq.pids, cq.npids = pids, len(q.pids)
    res = ffi.new("struct pn_result *")
    try:
        if lib.pn_snapshot(cq, res) != 0:
            err = ffi.errno
            if err == 12:
                raise MemoryError("procnet: out of memory taking a snapshot")
            raise ProcRootError(err, os.strerror(err), q.proc_root)
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
        nprocs = res.nprocs
    finally:
        lib.pn_result_free(res)
    ctx = _Context(strings, owners)
    meta = {"denied_pids": denied, "skipped": skipped, "tables": tables, "sources": sources,
            "processes": nprocs}
    return SOCK_STRUCT.iter_unpack(socks), ctx, meta


__all__ = ["snapshot", "CORE_VERSION"]
