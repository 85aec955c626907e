"""The C core releases the GIL: two threads snapshotting at once on two cores.

Each contender runs K snapshots per thread (text source, one walker thread
inside the core, so each call is one core's worth of work). With the GIL held
during the C call, two threads would take twice as long as one; released, they
take about as long as one plus the Python-side work, which does hold the GIL.
"""
import threading

import procnet

from conftest import group

K = 3


def _run(threads: int) -> None:
    def work():
        for _ in range(K):
            procnet.connections("all", backend="native", source="procfs", threads=1, owners=True,
                                owner_source="procfs")
    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def test_gil_one_thread(benchmark, workload):
    group(benchmark, "threads (3 snapshots per thread)", workload)
    benchmark(_run, 1)


def test_gil_two_threads(benchmark, workload):
    group(benchmark, "threads (3 snapshots per thread)", workload)
    benchmark(_run, 2)
