"""The benchmark suite, run tiny and untimed, so it cannot rot unnoticed."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.live
def test_benchmark_suite_smoke(tmp_path):
    import procnet
    # the procnet under test (a source tree or an installed wheel), not whatever is in ROOT
    pkg = os.path.dirname(os.path.dirname(procnet.__file__))
    env = dict(os.environ, PROCNET_BENCH_SCALES="tiny",
               PYTHONPATH=pkg + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "pytest", os.path.join(ROOT, "benchmarks"), "-q",
                          "-p", "no:cacheprovider", "--benchmark-disable", "-x"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout


def test_report_renders(tmp_path):
    # a minimal pytest-benchmark JSON through the report generator
    import json
    bench = {"datetime": "2026-01-01T00:00:00", "machine_info": {"python_version": "3"},
             "benchmarks": [
                 {"name": "test_owners_native[1k]", "group": "owners 1k",
                  "stats": {"median": 0.01}, "extra_info": {"sockets": 1000, "scale": "1k"}},
                 {"name": "test_owners_floor[1k]", "group": "owners 1k",
                  "stats": {"median": 0.02}, "extra_info": {"sockets": 1000, "scale": "1k"}}]}
    p = tmp_path / "b.json"
    p.write_text(json.dumps(bench))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "report.py"), str(p),
                          "--plot", str(tmp_path / "s.png")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "| owners_native | 0.50 | 1.00 | 10.0 ms | 1000 |" in out.stdout
