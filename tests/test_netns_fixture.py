"""Namespaces on a fixture tree, both backends: selection, a Poller whose
namespace goes away, and what a kind-filtered call counts.

(Real namespaces: tests/test_netns.py.)
"""
import os
import shutil

import procnet
from procfs_tree import NETNS_A as A, NETNS_B as B, make_tree, sock, two_netns_tree



def test_select_by_pid_and_inode(impl, tmp_path):
    root = two_netns_tree(str(tmp_path / "p"))
    for sel in (200, B):
        s = impl.connections("tcp", proc_root=root, netns=sel)
        assert [(c.inode, c.netns, [o.pid for o in c.owners]) for c in s] == [(222, B, [200])]
        assert list(s.namespaces) == [B] and s.namespaces[B].source == "procfs"
        assert s.namespaces[B].pids == (200,)
    s = impl.connections("tcp", proc_root=root, netns="all")
    assert sorted((c.inode, c.netns) for c in s) == [(111, A), (222, B)]
    s = impl.connections("tcp", proc_root=root)
    assert [(c.inode, c.netns) for c in s] == [(111, A)]


def test_poller_survives_its_namespace_ending(impl, tmp_path):
    root = two_netns_tree(str(tmp_path / "p"))
    with procnet.Poller("tcp", proc_root=root, netns=B, backend=impl.name) as p:
        assert [c.inode for c in p.poll().snapshot] == [222]
        shutil.rmtree(os.path.join(root, "200"))          # its only process exited
        r = p.poll()
        assert [(c.event, c.conn.inode) for c in r.changes] == [("close", 222)]
        ns = r.snapshot.namespaces[B]
        assert ns.source == "" and ns.error and not r.snapshot.complete


def test_leading_zero_pids_and_absurd_namespace_links(impl, tmp_path):
    root = two_netns_tree(str(tmp_path / "p"))
    # "010" is no name /proc gives: not pid 10 a second time (its owner listed twice)
    make_tree(root, procs={10: {"comm": "web", "fd": {3: sock(111)}}})
    os.rename(os.path.join(root, "10"), os.path.join(root, "010"))
    make_tree(root, procs={10: {"comm": "web", "fd": {3: sock(111)}}})
    s = impl.connections("tcp", proc_root=root)
    assert sorted((o.pid, o.fd) for c in s for o in c.owners) == [(10, 3), (100, 3)]
    # namespace links past 32 bits, with non-ASCII digits or a newline: no namespace
    for pid, link in ((300, "net:[4294967296]"), (301, "net:[\u0967\u0968\u0969]"), (302, "net:[5]\n")):
        make_tree(root, procs={pid: {"fd": {}}})
        os.makedirs(os.path.join(root, str(pid), "ns"))
        os.symlink(link, os.path.join(root, str(pid), "ns", "net"))
    s = impl.connections("tcp", proc_root=root, netns="all")
    assert sorted(s.namespaces) == [A, B]
