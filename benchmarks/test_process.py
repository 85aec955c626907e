"""Whole processes: the CLI against ss and netstat, and the cost of importing.

Each round starts a fresh process, as an admin or a cron job would.
"""
import os
import shutil
import subprocess
import sys

import pytest

import procnet

from conftest import group, psutil_or_skip

ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(procnet.__file__)))


def run(argv, check=False):
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=check, env=ENV)


def test_cli_procnet(benchmark, workload):
    group(benchmark, "cli -tuaxnp", workload)
    benchmark(run, [sys.executable, "-m", "procnet", "-tuaxnp"], check=True)


@pytest.mark.parametrize("tool,args", [("ss", "-tuaxnp"), ("netstat", "-tuanpx")])
def test_cli_peer(benchmark, workload, tool, args):
    if not shutil.which(tool):
        pytest.skip("%s is not installed" % tool)
    group(benchmark, "cli -tuaxnp", workload)
    benchmark(run, [tool, args])


def test_listen_procnet(benchmark, workload):
    group(benchmark, "cli -tulnp", workload)
    benchmark(run, [sys.executable, "-m", "procnet", "-tulnp"], check=True)


def test_listen_ss(benchmark, workload):
    if not shutil.which("ss"):
        pytest.skip("ss is not installed")
    group(benchmark, "cli -tulnp", workload)
    benchmark(run, ["ss", "-tulnp"])


def peak_rss_kib(argv):
    """A whole process's peak RSS (KiB), as /usr/bin/time -f %M reports it. Not wait4's
    ru_maxrss: a forked child starts with its parent's (pytest's) high-water mark,
    which exec keeps, so every small tool would read as large as the benchmark."""
    import tempfile
    with tempfile.NamedTemporaryFile("r") as f:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=ENV)
        return int(f.read().split()[-1])


@pytest.mark.parametrize("tool,args", [("procnet", "-tuaxnp"), ("ss", "-tuaxnp"),
                                       ("procnet", "-tulnp"), ("ss", "-tulnp"),
                                       ("procnet", "--json -tuaxp"), ("procnet-py", "--json -tuaxp")])
def test_cli_peak_rss(benchmark, workload, tool, args):
    """Peak RSS of one run (extra_info peak_kib; the timing includes /usr/bin/time's).
    procnet's table is rendered by the core (csrc/netstat_render.c): no Python
    object per socket."""
    if tool == "ss" and not shutil.which("ss"):
        pytest.skip("ss is not installed")
    if not os.access("/usr/bin/time", os.X_OK):
        pytest.skip("GNU time (/usr/bin/time) is not installed")
    group(benchmark, "cli peak RSS %s" % args, workload)
    argv = ([sys.executable, "-m", "procnet"] + args.split() if tool == "procnet" else
            [sys.executable, "-c", PYTHON_RENDERERS] + args.split() if tool == "procnet-py" else [tool, args])
    peaks = []
    benchmark.pedantic(lambda: peaks.append(peak_rss_kib(argv)), rounds=5, iterations=1)
    benchmark.extra_info["peak_kib"] = max(peaks)


# the command line with the core's renderers off: the table by cli/netstat_render.py,
# JSON by cli/jsonout.py (what csrc/netstat_render.c and csrc/json_render.c save)
PYTHON_RENDERERS = ("import sys; import procnet.cli.core_render as r; r.ENABLED = False; "
                    "from procnet.cli import main; sys.exit(main(sys.argv[1:]))")


def test_cli_procnet_python_table(benchmark, workload):
    """The same run with the table formatted by cli/netstat_render.py (what the core's renderer saves)."""
    group(benchmark, "cli -tuaxnp", workload)
    benchmark(run, [sys.executable, "-c", PYTHON_RENDERERS, "-tuaxnp"], check=True)


def test_json_procnet(benchmark, workload):
    """procnet --json -tuaxp: the rows rendered by the core (csrc/json_render.c)."""
    group(benchmark, "cli --json -tuaxp", workload)
    benchmark(run, [sys.executable, "-m", "procnet", "--json", "-tuaxp"], check=True)


def test_json_procnet_python(benchmark, workload):
    """The same document written by cli/jsonout.py (Connection.as_dict() + json.dumps)."""
    group(benchmark, "cli --json -tuaxp", workload)
    benchmark(run, [sys.executable, "-c", PYTHON_RENDERERS, "--json", "-tuaxp"], check=True)


@pytest.mark.parametrize("module", [None, "procnet", "psutil"])
def test_import(benchmark, module):
    if module == "psutil":
        psutil_or_skip()
    group(benchmark, "import (python -c)")
    code = "pass" if module is None else "import " + module
    benchmark(run, [sys.executable, "-c", code], check=True)
