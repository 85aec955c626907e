#!/usr/bin/env python3
"""Run the whole benchmark suite and write BENCHMARKS.md and the scaling plot.

    python benchmarks/run.py [--scales 1k,10k,50k] [--json bench.json]

Needs pytest-benchmark, and psutil / matplotlib for their contenders and the plot
(`pip install '.[bench]'`). Run as root on an otherwise idle machine.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1k,10k,50k")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench.json"))
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments, e.g. -k owners")
    a = ap.parse_args()
    env = dict(os.environ, PROCNET_BENCH_SCALES=a.scales)
    rc = subprocess.call([sys.executable, "-m", "pytest", HERE, "-p", "no:cacheprovider", "-q",
                          "--benchmark-enable", "--benchmark-json=" + a.json] + a.pytest_args,
                         cwd=ROOT, env=env)
    if rc != 0:
        return rc
    return subprocess.call([sys.executable, os.path.join(HERE, "report.py"), a.json, "--out", a.out,
                            "--plot", os.path.join(HERE, "scaling.png")], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
