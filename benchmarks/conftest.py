"""Benchmark fixtures: the workload at each scale, the floor, CLI commands.

Scales come from PROCNET_BENCH_SCALES (comma-separated names below; default
"1k,10k"; "50k" is opt-in because it needs a minute to set up and tear down).
Every contender of a group runs against the same workload in the same session,
so ratios between them are measured in one run.
"""
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from workload import Workload  # noqa: E402

SCALES = {"tiny": (100, 5), "1k": (1000, 50), "10k": (10000, 200), "50k": (50000, 500)}
CHOSEN = [s.strip() for s in os.environ.get("PROCNET_BENCH_SCALES", "1k,10k").split(",") if s.strip()]
for _s in CHOSEN:
    if _s not in SCALES:
        raise pytest.UsageError("PROCNET_BENCH_SCALES: unknown scale %r (have %s)" % (_s, ", ".join(SCALES)))


@pytest.fixture(scope="session", params=CHOSEN)
def workload(request):
    """N sockets in M worker processes, for the whole session at that scale."""
    import procnet
    n, m = SCALES[request.param]
    with Workload(n, m) as wl:
        wl.scale = request.param
        # every contender sees the whole host, not only the workload
        wl.host_sockets = len(procnet.connections("all", owners=False))
        yield wl


@pytest.fixture(scope="session")
def floor_lib():
    """benchmarks/floor.c built as a shared library: floor_run() times in-process."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the floor program")
    out = tempfile.mkdtemp(prefix="procnet-floor-")
    so = os.path.join(out, "floor.so")
    subprocess.run([cc, "-std=c11", "-O2", "-shared", "-fPIC", "-o", so, os.path.join(HERE, "floor.c")],
                   check=True)
    lib = ctypes.CDLL(so)
    lib.floor_run.restype = ctypes.c_size_t
    yield lib
    shutil.rmtree(out, ignore_errors=True)


def group(benchmark, name, wl=None):
    """Name the group after the measurement and the scale so reports line up."""
    benchmark.group = name if wl is None else "%s %s" % (name, wl.scale)
    if wl is not None:
        benchmark.extra_info["sockets"] = wl.host_sockets
        benchmark.extra_info["scale"] = wl.scale


def psutil_or_skip():
    return pytest.importorskip("psutil", reason="psutil is an optional benchmark dependency "
                               "(pip install '.[bench]'); its contenders are skipped")
