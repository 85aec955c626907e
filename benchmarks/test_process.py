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


@pytest.mark.parametrize("module", [None, "procnet", "psutil"])
def test_import(benchmark, module):
    if module == "psutil":
        psutil_or_skip()
    group(benchmark, "import (python -c)")
    code = "pass" if module is None else "import " + module
    benchmark(run, [sys.executable, "-c", code], check=True)
