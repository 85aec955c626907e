"""The BPF owner source (issue 10) against the /proc/PID/fd walk.

Groups (per scale, native core):
- "owner scan": owners only (no socket table read), the BPF iterator vs the
  readlinkat walk (threads as in a snapshot, and single-threaded);
- "owners" (shared with test_snapshot.py, so the floor and psutil are in the
  same group): a full snapshot, netlink listing + BPF owners;
- "bpf load": opening, loading and attaching the program once (what a
  one-shot call pays before its first scan; report.py turns it and the two
  scans' per-socket costs into the one-shot break-even).
`procnet -tuaxnp` against `ss -tuaxnp` is in test_process.py: the CLI uses BPF
through owner_source="auto" above BPF_BREAK_EVEN sockets.
"""
import pytest

import procnet

from conftest import group


def _native():
    from procnet import _native, _plan
    ok, why = _plan.bpf_status(_native)
    if not ok:
        pytest.skip("BPF owner source unavailable here: %s" % why)
    return _native


def _owner_scan(owner_source: str, threads: int = 0):
    """A query (and its plan) that reads no socket table: the owner search alone."""
    from procnet import _native, _plan
    from procnet._request import make_query
    q = make_query("tcp", owners=True, proc_root="/proc", threads=threads, owner_source=owner_source)
    q = q._replace(tables=frozenset())
    return q, _plan.plan(q, _native)


@pytest.mark.parametrize("source", ["bpf", "procfs", "procfs_single_thread"])
def test_owner_scan(benchmark, workload, source):
    nat = _native()
    group(benchmark, "owner scan", workload)
    q, p = _owner_scan(source.split("_")[0], threads=1 if "single" in source else 0)
    _, _, meta = benchmark(nat.snapshot, q, p)
    assert meta["owner_source"] == source.split("_")[0]


def test_owners_native_bpf(benchmark, workload):
    _native()
    group(benchmark, "owners", workload)
    snap = benchmark(procnet.connections, "all", backend="native", owner_source="bpf")
    assert snap.owner_source == "bpf"
    assert set(workload.expected) <= {c.inode for c in snap}


def test_bpf_load(benchmark, workload):
    nat = _native()
    group(benchmark, "bpf load", workload)
    ffi, lib = nat.ffi, nat.lib

    def load():
        out = ffi.new("struct pn_bpf **")
        why = ffi.new("char[]", 256)
        assert lib.pn_bpf_open(out, why, 256) == 0, ffi.string(why)
        lib.pn_bpf_close(out[0])

    benchmark.pedantic(load, rounds=15, iterations=1)
