"""Peak memory of one snapshot, procnet vs psutil, in fresh processes.

Peak RSS (VmHWM) after the snapshot minus RSS before it, so the C core's
allocations count as much as Python objects do. Recorded in extra_info of a
one-round benchmark so it lands in the same JSON as the timings.
"""
import json
import os
import subprocess
import sys

import pytest

import procnet
from conftest import group, psutil_or_skip

PROBE = r"""
import json, sys
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith(("VmHWM", "VmRSS")):
            yield int(line.split()[1])
%s
before = max(hwm())
snap = %s
peak = max(hwm())
print(json.dumps({"kib": peak - before, "n": len(snap)}))
"""

# The warm-up loads each library's code with a call that returns (almost)
# nothing, so the growth measured is the snapshot's own: the same for all.
CONTENDERS = {
    "native": ("import procnet; procnet.connections('udplite', owners=False, backend='native')",
               "procnet.connections('all', backend='native', owner_source='procfs')"),
    "pure": ("import procnet; procnet.connections('udplite', owners=False, backend='pure')",
             "procnet.connections('all', backend='pure')"),
    "psutil": ("import psutil; psutil.net_connections('udp6')", "psutil.net_connections('all')"),
}


@pytest.mark.parametrize("who", sorted(CONTENDERS))
def test_peak_memory(benchmark, workload, who):
    if who == "psutil":
        psutil_or_skip()
    group(benchmark, "peak memory", workload)
    warm, take = CONTENDERS[who]
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(procnet.__file__)))

    def probe():
        out = subprocess.run([sys.executable, "-c", PROBE % (warm, take)], capture_output=True,
                             text=True, env=env, check=True)
        return json.loads(out.stdout)
    r = benchmark.pedantic(probe, rounds=1, iterations=1)
    benchmark.extra_info["peak_kib"] = r["kib"]
    benchmark.extra_info["records"] = r["n"]
