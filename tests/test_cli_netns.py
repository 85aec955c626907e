"""The command line across network namespaces: --all-netns, --netns, the note.

A fixture tree stands for a host with two namespaces (net:[A] links under
PID/ns/net, the second one's tables under its member's PID/net); a live test
makes a real named namespace (root) for the note and the column by name.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from procfs_tree import NETNS_A as A, NETNS_B as B, two_netns_tree



def run(*args, root):
    return subprocess.run([sys.executable, "-m", "procnet", "--proc-root", root] + list(args),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("backend", ["native", "pure"])
def test_all_netns_adds_the_column(tmp_path, backend):
    root = two_netns_tree(str(tmp_path / "proc"))
    p = run("-tlnp", "--all-netns", "--backend", backend, root=root)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "Net namespace" in lines[1]
    rows = {l.split()[3]: l.split() for l in lines[2:]}
    assert rows["127.0.0.1:8080"][6:] == [str(A), "100/hostd"]
    assert rows["127.0.0.1:8081"][6:] == [str(B), "200/podd"]
    # one namespace: no column, and only its sockets
    p = run("-tlnp", "--netns", "200", "--backend", backend, root=root)
    assert p.returncode == 0, p.stderr
    assert "Net namespace" not in p.stdout and "8081" in p.stdout and "8080" not in p.stdout
    # the caller's: as before
    p = run("-tlnp", "--backend", backend, root=root)
    assert "Net namespace" not in p.stdout and "8080" in p.stdout and "8081" not in p.stdout


def test_json_carries_the_namespace(tmp_path):
    root = two_netns_tree(str(tmp_path / "proc"))
    doc = json.loads(run("-tln", "--all-netns", "--json", root=root).stdout)
    assert {c["laddr"]["port"]: c["netns"] for c in doc["connections"]} == {8080: A, 8081: B}
    assert sorted(ns["inode"] for ns in doc["namespaces"]) == [A, B]
    assert all(ns["source"] == "procfs" for ns in doc["namespaces"])


def test_netns_arguments_are_checked():
    for bad, why in (("nosuch-ns", "no network namespace named"), ("-1", "invalid pid"),
                     ("0", "invalid pid")):
        p = subprocess.run([sys.executable, "-m", "procnet", "--netns", bad],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and why in p.stderr, (bad, p.stderr)
    # every namespace, or one: not both (--all-netns silently won)
    p = subprocess.run([sys.executable, "-m", "procnet", "--all-netns", "--netns", str(os.getpid())],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "not allowed with argument --all-netns" in p.stderr, p.stderr


@pytest.mark.live
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and ip")
def test_live_named_namespace_note_and_column():
    name = "pncli%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", name], check=True)
    child = None
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        child = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, "-c",
             "import socket, sys, time\n"
             "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
             "print(s.getsockname()[1], flush=True); time.sleep(60)"],
            stdout=subprocess.PIPE, text=True)
        port = int(child.stdout.readline())
        p = subprocess.run([sys.executable, "-m", "procnet", "-tlnp"], capture_output=True,
                           text=True, timeout=60)
        assert ":%d " % port not in p.stdout
        assert "other network namespace" in p.stderr and "--all-netns" in p.stderr
        p = subprocess.run([sys.executable, "-m", "procnet", "-tlnp", "--all-netns", "--port",
                            str(port)], capture_output=True, text=True, timeout=60)
        # (ports are per namespace: other namespaces may use the same number)
        row = [l for l in p.stdout.splitlines() if ":%d " % port in l and name in l.split()]
        assert len(row) == 1 and "/python" in row[0], p.stdout
        p = subprocess.run([sys.executable, "-m", "procnet", "-tlnp", "--netns", name],
                           capture_output=True, text=True, timeout=60)
        assert ":%d " % port in p.stdout
    finally:
        if child is not None:
            child.kill()
            child.wait()
        for _ in range(20):
            if subprocess.run(["ip", "netns", "del", name]).returncode == 0:
                break
            time.sleep(0.1)
