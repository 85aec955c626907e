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


@pytest.fixture(scope="session")
def installed_python():
    """An interpreter that starts as it would where procnet is installed from a wheel.

    A fresh venv (no pip, no system site-packages) holding a copy of the procnet under test,
    its bytecode compiled as pip does at install time, and _cffi_backend (psutil too, when
    present, for the import benchmark). The development interpreter is no fair base for a
    whole-process time: its site-packages run .pth hooks that no install has (the
    editable-install finder, a sandbox's certificate hook: ~30 ms at every start here), and
    with PYTHONDONTWRITEBYTECODE a source tree's stale bytecode is compiled again at each run.
    Returns (python, env)."""
    import importlib.util
    import procnet
    out = tempfile.mkdtemp(prefix="procnet-installed-")
    py = os.path.join(out, "bin", "python")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", out], check=True, capture_output=True)
        prefix, site = subprocess.run(
            [py, "-c", "import sys, sysconfig; print(sys.prefix); print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True).stdout.splitlines()[-2:]
    except (OSError, ValueError, subprocess.CalledProcessError) as e:
        shutil.rmtree(out, ignore_errors=True)
        pytest.skip("no venv can be made here for the whole-process benchmarks: %s" % e)
    real = os.path.realpath(out)
    if os.path.realpath(prefix) != real or not os.path.realpath(site).startswith(real + os.sep):
        # (under qemu-user the interpreter is a wrapper that runs the sysroot's:
        # its site-packages is no venv's, and nothing may be copied there)
        shutil.rmtree(out, ignore_errors=True)
        pytest.skip("the venv's interpreter does not run as a venv here (prefix %s)" % prefix)
    shutil.copytree(os.path.dirname(procnet.__file__), os.path.join(site, "procnet"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for mod in ("_cffi_backend", "psutil"):
        spec = importlib.util.find_spec(mod)
        if spec is None or spec.origin is None:
            continue
        src = os.path.dirname(spec.origin) if spec.submodule_search_locations else spec.origin
        dst = os.path.join(site, os.path.basename(src))
        (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, dst)
    subprocess.run([py, "-m", "compileall", "-q", site], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    # the copy must run the backend the procnet under test runs: a copy without
    # its core would time the pure twin and say nothing
    from procnet import _backend
    probe = "from procnet import _backend; print(_backend.native_error())"
    theirs = subprocess.run([py, "-c", probe], env=env, check=True, capture_output=True,
                            text=True).stdout.strip()
    if _backend.native_error() is None and theirs != "None":
        shutil.rmtree(out, ignore_errors=True)
        pytest.fail("installed_python: the copy of %s runs without its core (%s)"
                    % (os.path.dirname(procnet.__file__), theirs))
    yield py, env
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
