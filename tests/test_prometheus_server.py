"""`procnet --serve` scraped for real: the exporter on prometheus-client's
server, and Debian's Prometheus server (started here on a free loopback port)
scraping it every second -- a listener this test opens must show up in
Prometheus's query API, and go away once closed.

Every wait is bounded; every process started is killed and every temporary
directory removed, whatever happens.
"""
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

import procnet

pytest.importorskip("prometheus_client", reason="prometheus-client is in the test extra")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

pytestmark = pytest.mark.live

PKG = os.path.dirname(os.path.dirname(procnet.__file__))
ENV = dict(os.environ, PYTHONPATH=PKG + os.pathsep + os.environ.get("PYTHONPATH", ""))
WAIT = 60.0                              # seconds, for anything to happen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_exporter(*args):
    """`procnet --serve 127.0.0.1:0 ARGS`; returns (process, metrics URL) once it serves."""
    p = subprocess.Popen([sys.executable, "-m", "procnet", "--serve", "127.0.0.1:0"] + list(args),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    deadline = time.monotonic() + WAIT
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        ready, _, _ = select.select([p.stderr], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(p.stderr.fileno(), 4096)
        if not chunk:
            break
        line += chunk
    text = line.decode("utf-8", "replace")
    if "serving metrics on " not in text:
        stop(p)
        pytest.fail("procnet --serve did not start: %r" % text)
    return p, text.split("serving metrics on ", 1)[1].split()[0]


def stop(p, timeout=10.0):
    """SIGTERM, then SIGKILL; returns the exit status."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout)
    for f in (p.stdout, p.stderr):
        if f is not None:
            f.close()
    return p.returncode


def get(url, timeout=10.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def my_comm() -> str:
    with open("/proc/self/comm", "rb") as f:
        return f.read().rstrip(b"\n").decode("utf-8", "surrogateescape")


def test_serve_metrics_and_sigterm():
    """The exporter alone: /metrics in Prometheus's text format with this
    test's listener, a scrape per request, exit status 0 on SIGTERM."""
    s = listener()
    p, url = start_exporter("-tl")
    try:
        status, ctype, body = get(url)
        assert status == 200 and ctype.startswith("text/plain")
        port = str(s.getsockname()[1])
        series = [x.labels for f in text_string_to_metric_families(body.decode())
                  for x in f.samples if x.name == "procnet_listening_socket_info"]
        mine = [lb for lb in series if lb["port"] == port and lb["address"] == "127.0.0.1"]
        assert [(lb["proto"], lb["process"]) for lb in mine] == [("tcp", my_comm())]
        s.close()
        _, _, body = get(url)
        series = [x.labels for f in text_string_to_metric_families(body.decode())
                  for x in f.samples if x.name == "procnet_listening_socket_info"]
        assert not [lb for lb in series if lb["port"] == port and lb["address"] == "127.0.0.1"]
    finally:
        s.close()
        rc = stop(p)
    assert rc == 0


def test_serve_refuses_a_busy_address():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = subprocess.run([sys.executable, "-m", "procnet", "--serve", "127.0.0.1:%d" % busy.getsockname()[1],
                            "-tl"], capture_output=True, env=ENV, timeout=WAIT)
    assert r.returncode == 1 and b"--serve 127.0.0.1:" in r.stderr, r.stderr


def query(base, promql):
    """The instant vector Prometheus returns for `promql` (a list of results)."""
    _, _, body = get(base + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    doc = json.loads(body)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def wait_for(what, check, deadline):
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for %s" % what)
        time.sleep(0.25)


def test_real_prometheus_scrapes_the_exporter():
    server = shutil.which("prometheus")
    if server is None:
        pytest.skip("the prometheus server is not installed (Debian's prometheus package; CI installs it)")
    tmp = tempfile.mkdtemp(prefix="procnet-prom-")
    procs = []
    s = None
    try:
        exporter, url = start_exporter("-tl")
        procs.append(exporter)
        target = urllib.parse.urlsplit(url).netloc
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: procnet\n    static_configs:\n"
                    "      - targets: ['%s']\n" % target)
        port = free_port()
        base = "http://127.0.0.1:%d" % port
        log = open(os.path.join(tmp, "prometheus.log"), "wb")
        try:
            procs.append(subprocess.Popen(
                [server, "--config.file=" + config, "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                 "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=tmp))
        finally:
            log.close()
        deadline = time.monotonic() + WAIT

        def ready():
            if procs[1].poll() is not None:
                with open(os.path.join(tmp, "prometheus.log"), "rb") as f:
                    pytest.fail("prometheus exited: %s" % f.read()[-2000:].decode("utf-8", "replace"))
            try:
                return get(base + "/-/ready", timeout=2)[0] == 200
            except OSError:
                return False
        wait_for("prometheus to be ready", ready, deadline)
        wait_for("a first scrape", lambda: query(base, 'up{job="procnet"} == 1'), deadline)

        s = listener()
        lport = s.getsockname()[1]
        mine = 'procnet_listening_socket_info{address="127.0.0.1",port="%d"}' % lport
        got = wait_for("the listener in Prometheus", lambda: query(base, mine), time.monotonic() + WAIT)
        assert len(got) == 1
        labels = got[0]["metric"]
        assert labels["proto"] == "tcp" and labels["process"] == my_comm()
        assert labels["netns"] == str(os.stat("/proc/self/ns/net").st_ino)
        assert labels["job"] == "procnet" and got[0]["value"][1] == "1"
        assert query(base, "procnet_up") and query(base, "procnet_scrape_duration_seconds")

        s.close()
        s = None
        wait_for("the listener to vanish", lambda: not query(base, mine), time.monotonic() + WAIT)
    finally:
        if s is not None:
            s.close()
        codes = [stop(p) for p in reversed(procs)]
        shutil.rmtree(tmp, ignore_errors=True)
    assert codes[-1] == 0                       # the exporter ends cleanly on SIGTERM
