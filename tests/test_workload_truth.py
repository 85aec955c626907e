"""Ground truth at scale: 10 000 sockets in 200 processes, every owner found.

The workload's processes report their own socket inodes (os.fstat), so the
expected owners never come from a scanner that could share procnet's bugs.
PROCNET_TRUTH_SCALE=sockets,workers changes the size.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from workload import Workload  # noqa: E402

pytestmark = pytest.mark.live
N, M = (int(x) for x in os.environ.get("PROCNET_TRUTH_SCALE", "10000,200").split(","))


@pytest.fixture(scope="module")
def wl():
    with Workload(N, M) as w:
        yield w


def test_every_socket_every_owner(impl, wl):
    snap = impl.connections("all")
    got = {c.inode: {o.pid for o in c.owners} for c in snap}
    missing = [i for i in wl.expected if i not in got]
    wrong = {i: (got[i], pids) for i, pids in wl.expected.items() if i in got and got[i] != pids}
    assert not missing and not wrong
    assert len(wl.expected) == N
    assert sum(len(p) > 1 for p in wl.expected.values()) > 0      # shared sockets are in the mix


def test_backends_agree_exactly(both, wl):
    a, b = (i.connections("all") for i in both)
    mine = set(wl.expected)
    ra = [c.as_tuple() for c in a if c.inode in mine]
    rb = [c.as_tuple() for c in b if c.inode in mine]
    assert sorted(ra, key=repr) == sorted(rb, key=repr)
    assert len(ra) == N


def test_sources_agree_at_scale(impl, wl):
    from test_netlink import comparable
    nl = {c.inode: c for c in impl.connections("all", source="auto") if c.inode in wl.expected}
    tx = {c.inode: c for c in impl.connections("all", source="procfs") if c.inode in wl.expected}
    assert set(nl) == set(tx) == set(wl.expected)
    diff = [i for i in nl if comparable(nl[i]) != comparable(tx[i])]
    assert not diff, (comparable(nl[diff[0]]), comparable(tx[diff[0]]))
