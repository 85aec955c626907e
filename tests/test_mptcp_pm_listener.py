"""An MPTCP socket that no process holds and no counter counts is still listed.

The in-kernel path manager opens a listener of its own for an endpoint with the
"signal" flag and a port (`ip mptcp endpoint add ADDR signal port N`). The MPTCP
sock_diag dump lists it. But /proc/net/protocols' MPTCP count (kernel >= 6.3)
stays 0, because that listener never went through listen(2). So an empty count
does not mean an empty table, and the MPTCP dump must not be skipped on it. A
poll would then miss a row that a fresh listing has (BENCHMARKS.md,
2026-12-01 12:48). This test runs in a network namespace of its own, with both
backends.
"""
import json
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.live

PORT = 10007

CHILD = r"""
import json, subprocess, sys
import procnet
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
added = subprocess.run(["ip", "mptcp", "endpoint", "add", "127.0.0.1", "dev", "lo", "signal",
                        "port", "%d"], capture_output=True, text=True)
if added.returncode != 0:
    print(json.dumps({"skip": "ip mptcp endpoint add: " + added.stderr.strip()}))
    sys.exit(0)
count = None
for line in open("/proc/net/protocols"):
    f = line.split()
    if f and f[0] in ("MPTCP", "MPTCPv6"):
        count = (count or 0) + int(f[2])
out = {"count": count}
for backend in ("native", "pure"):
    snap = procnet.connections("mptcp", backend=backend)
    out[backend] = {"tables": snap.tables,
                    "rows": [[c.state, len(c.owners)] for c in snap]}
p = procnet.Poller("mptcp", backend="native")
p.poll()
out["poll"] = [[c.state, len(c.owners)] for c in p.poll().snapshot]
print(json.dumps(out))
""" % PORT


def test_a_path_manager_listener_is_listed(both):
    if not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs unshare and ip (iproute2)")
    r = subprocess.run(["unshare", "--net", sys.executable, "-c", CHILD],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0 and "unshare" in r.stderr:
        pytest.skip("cannot make a network namespace: " + r.stderr.strip())
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    if "skip" in got:
        pytest.skip(got["skip"])
    for backend in ("native", "pure"):
        tables = got[backend]["tables"]
        if tables.get("mptcp") != "read":
            pytest.skip("the MPTCP table is not listed here (%s): %s" % (backend, tables))
    # the one socket in the namespace: the path manager's listener, held by no process
    for backend in ("native", "pure"):
        assert got[backend]["rows"] == [["LISTEN", 0]], (backend, got)
    assert got["poll"] == [["LISTEN", 0]], got
