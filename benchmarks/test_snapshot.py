"""In-process snapshots: procnet native and pure vs psutil vs the C floor.

Groups (per scale): "owners" -- every socket with its owners; "owners, all
fields" -- the same, with every field of every record read back (what a
consumer of psutil's eager records gets); "no owners" -- listing only.
psutil.net_connections("all") reads tcp/udp (v4+v6) and unix; procnet's "all"
reads every table (also udplite, raw, icmp, packet, netlink), so procnet does
at least the work psutil does. Owners come from the /proc walk here
(owner_source="procfs", like for like with the floor and psutil); the BPF
owner source has its own contender (test_bpf.py).
"""
import pytest

import procnet

from conftest import group, psutil_or_skip

FIELDS = ("proto", "family", "type", "laddr", "raddr", "state", "uid", "inode", "owners")


def touch_all(snap):
    for c in snap:
        for f in FIELDS:
            getattr(c, f)
    return snap


def test_owners_native(benchmark, workload):
    group(benchmark, "owners", workload)
    snap = benchmark(procnet.connections, "all", backend="native", owner_source="procfs")
    assert set(workload.expected) <= {c.inode for c in snap}


def test_owners_native_single_thread(benchmark, workload):
    group(benchmark, "owners", workload)
    benchmark(procnet.connections, "all", backend="native", threads=1, owner_source="procfs")


def test_owners_native_procfs(benchmark, workload):
    group(benchmark, "owners", workload)
    benchmark(procnet.connections, "all", backend="native", source="procfs", owner_source="procfs")


def test_owners_native_procfs_single_thread(benchmark, workload):
    group(benchmark, "owners", workload)
    benchmark(procnet.connections, "all", backend="native", source="procfs", threads=1,
              owner_source="procfs")


def test_owners_pure(benchmark, workload):
    group(benchmark, "owners", workload)
    benchmark(procnet.connections, "all", backend="pure")


def test_owners_psutil(benchmark, workload):
    psutil = psutil_or_skip()
    group(benchmark, "owners", workload)
    benchmark(psutil.net_connections, "all")


def test_owners_floor(benchmark, workload, floor_lib):
    group(benchmark, "owners", workload)
    n = benchmark(floor_lib.floor_run)
    assert n >= len(workload.expected)


def test_fields_native(benchmark, workload):
    group(benchmark, "owners, all fields", workload)
    benchmark(lambda: touch_all(procnet.connections("all", backend="native", owner_source="procfs")))


def test_fields_pure(benchmark, workload):
    group(benchmark, "owners, all fields", workload)
    benchmark(lambda: touch_all(procnet.connections("all", backend="pure")))


def test_fields_psutil(benchmark, workload):
    psutil = psutil_or_skip()
    group(benchmark, "owners, all fields", workload)
    benchmark(lambda: [(c.fd, c.family, c.type, c.laddr, c.raddr, c.status, c.pid)
                       for c in psutil.net_connections("all")])


@pytest.mark.parametrize("source", ["auto", "procfs"])
def test_no_owners_native(benchmark, workload, source):
    group(benchmark, "no owners", workload)
    benchmark(procnet.connections, "all", owners=False, backend="native", source=source)


@pytest.mark.parametrize("source", ["auto", "procfs"])
def test_no_owners_pure(benchmark, workload, source):
    group(benchmark, "no owners", workload)
    benchmark(procnet.connections, "all", owners=False, backend="pure", source=source)


@pytest.mark.parametrize("source", ["auto", "procfs"])
def test_no_owners_core(benchmark, workload, source):
    """The C core alone: one pn_snapshot() call, no Python objects."""
    from procnet._core import ffi, lib
    from procnet import _native, _plan
    from procnet._request import make_query
    group(benchmark, "no owners", workload)
    q = make_query("all", owners=False, proc_root="/proc", source=source)
    p = _plan.plan(q, _native)
    cq = ffi.new("struct pn_query *")
    root = ffi.new("char[]", b"/proc")
    cq.proc_root, cq.tables, cq.source, cq.flags = root, q.table_mask, p.source, q.flags | p.flags
    cq.lport = cq.rport = cq.uid = -1
    res = ffi.new("struct pn_result *")

    def once():
        lib.pn_snapshot(cq, res)
        n = res.nsocks
        lib.pn_result_free(res)
        return n
    assert benchmark(once) >= len(workload.expected)


@pytest.mark.parametrize("source", ["auto", "procfs"])
def test_listeners_native(benchmark, workload, source):
    group(benchmark, "listeners with owners", workload)
    benchmark(procnet.connections, "inet", state=["LISTEN", "NONE"], backend="native", source=source)
