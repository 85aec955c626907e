"""Whole processes: the CLI against ss and netstat, and the cost of importing.

Each round starts a fresh process, as an admin or a cron job would. procnet runs from
installed_python (conftest.py): a clean venv holding a copy of the procnet under test, as a
wheel install would have it.
"""
import os
import shutil
import subprocess

import pytest

from conftest import group, psutil_or_skip


def run(argv, check=False, env=None):
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=check, env=env)


def procnet_run(installed, args, code=None, **extra_env):
    """Run procnet (or `python -c code`) with args from the installed interpreter."""
    py, env = installed
    env = dict(env, **extra_env)
    argv = [py, "-m", "procnet"] if code is None else [py, "-c", code]
    return lambda: run(argv + list(args), check=True, env=env)


def test_cli_procnet(benchmark, workload, installed_python):
    group(benchmark, "cli -tuaxnp", workload)
    benchmark(procnet_run(installed_python, ["-tuaxnp"]))


def test_cli_procnet_walk(benchmark, workload, installed_python):
    """The same with owners found by the /proc walk (no BPF: issue 18's >= 3x case)."""
    group(benchmark, "cli -tuaxnp", workload)
    benchmark(procnet_run(installed_python, ["-tuaxnp"], PROCNET_OWNER_SOURCE="procfs"))


@pytest.mark.parametrize("tool,args", [("ss", "-tuaxnp"), ("netstat", "-tuanpx")])
def test_cli_peer(benchmark, workload, tool, args):
    if not shutil.which(tool):
        pytest.skip("%s is not installed" % tool)
    group(benchmark, "cli -tuaxnp", workload)
    benchmark(run, [tool, args])


def test_listen_procnet(benchmark, workload, installed_python):
    group(benchmark, "cli -tulnp", workload)
    benchmark(procnet_run(installed_python, ["-tulnp"]))


def test_listen_procnet_dev_interpreter(benchmark, workload):
    """The same from the interpreter running the benchmarks (its site hooks, and the source
    tree on PYTHONPATH): what installed_python leaves out, measured in the same run."""
    import sys
    import procnet
    group(benchmark, "cli -tulnp", workload)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(procnet.__file__)))
    benchmark(run, [sys.executable, "-m", "procnet", "-tulnp"], check=True, env=env)


def test_listen_ss(benchmark, workload):
    if not shutil.which("ss"):
        pytest.skip("ss is not installed")
    group(benchmark, "cli -tulnp", workload)
    benchmark(run, ["ss", "-tulnp"])


def peak_rss_kib(argv, env=None):
    """A whole process's peak RSS (KiB), as /usr/bin/time -f %M reports it. Not wait4's
    ru_maxrss: a forked child starts with its parent's (pytest's) high-water mark,
    which exec keeps, so every small tool would read as large as the benchmark."""
    import tempfile
    with tempfile.NamedTemporaryFile("r") as f:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=env)
        return int(f.read().split()[-1])


@pytest.mark.parametrize("tool,args", [("procnet", "-tuaxnp"), ("ss", "-tuaxnp"),
                                       ("procnet", "-tulnp"), ("ss", "-tulnp"),
                                       ("procnet", "--json -tuaxp"), ("procnet-py", "--json -tuaxp")])
def test_cli_peak_rss(benchmark, workload, installed_python, tool, args):
    """Peak RSS of one run (extra_info peak_kib; the timing includes /usr/bin/time's).
    procnet's table is rendered by the core (csrc/netstat_render.c): no Python
    object per socket."""
    if tool == "ss" and not shutil.which("ss"):
        pytest.skip("ss is not installed")
    if not os.access("/usr/bin/time", os.X_OK):
        pytest.skip("GNU time (/usr/bin/time) is not installed")
    group(benchmark, "cli peak RSS %s" % args, workload)
    py, env = installed_python
    argv = ([py, "-m", "procnet"] + args.split() if tool == "procnet" else
            [py, "-c", PYTHON_RENDERERS] + args.split() if tool == "procnet-py" else [tool, args])
    peaks = []
    benchmark.pedantic(lambda: peaks.append(peak_rss_kib(argv, env)), rounds=5, iterations=1)
    benchmark.extra_info["peak_kib"] = max(peaks)


# the command line with the core's renderers off: the table by cli/netstat_render.py,
# JSON by cli/jsonout.py (what csrc/netstat_render.c and csrc/json_render.c save)
PYTHON_RENDERERS = ("import sys; import procnet.cli.core_render as r; r.ENABLED = False; "
                    "from procnet.cli import main; sys.exit(main(sys.argv[1:]))")


def test_cli_procnet_python_table(benchmark, workload, installed_python):
    """The same run with the table formatted by cli/netstat_render.py (what the core's renderer saves)."""
    group(benchmark, "cli -tuaxnp", workload)
    benchmark(procnet_run(installed_python, ["-tuaxnp"], PYTHON_RENDERERS))


def test_json_procnet(benchmark, workload, installed_python):
    """procnet --json -tuaxp: the rows rendered by the core (csrc/json_render.c)."""
    group(benchmark, "cli --json -tuaxp", workload)
    benchmark(procnet_run(installed_python, ["--json", "-tuaxp"]))


def test_json_procnet_python(benchmark, workload, installed_python):
    """The same document written by cli/jsonout.py (Connection.as_dict() + json.dumps)."""
    group(benchmark, "cli --json -tuaxp", workload)
    benchmark(procnet_run(installed_python, ["--json", "-tuaxp"], PYTHON_RENDERERS))


@pytest.mark.parametrize("module", [None, "procnet", "psutil"])
def test_import(benchmark, installed_python, module):
    if module == "psutil":
        psutil_or_skip()
    group(benchmark, "import (python -c)")
    benchmark(procnet_run(installed_python, [], "pass" if module is None else "import " + module))
