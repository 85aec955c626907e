"""Metrics from the command line: ``--serve [HOST]:PORT`` and ``--format prom``.

``procnet --serve 127.0.0.1:9977 [-tuwx46l] [filters]`` serves
``/metrics`` on prometheus-client's own HTTP server until stopped (SIGTERM,
SIGINT): each scrape takes one poll of one Poller (see
procnet.exporters.prometheus). ``procnet --format prom [--output FILE]``
prints the same metrics once (with ``-c SECONDS``, again every SECONDS), for
node_exporter's textfile collector or OpenWrt's
prometheus-node-exporter-lua; ``--output`` replaces FILE atomically.

The socket flags and filters mean what they mean for the listing, except
that without ``-l`` every socket is counted (netstat's default of
non-listening sockets would leave the listener series empty). With only the
``listeners`` and ``status`` metrics, only listening sockets are polled.
"""
import argparse
import errno
import os
import re
import signal
import sys
import threading
from typing import Any, Callable, NamedTuple, Optional, Tuple

from .._errors import ProcNetError
from .args import UsageError

METRIC_GROUPS = ("listeners", "sockets", "unowned", "status")


class ExportOptions(NamedTuple):
    """What --serve / --format prom ask for, validated."""

    serve: Optional[Tuple[str, int]]    # (host, port) to serve on, or None
    format: Optional[str]               # "prom": print (or --output) once / every -c seconds
    output: Optional[str]
    metrics: Tuple[str, ...]
    pid_label: bool


def _listen_address(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    # ASCII digits only (str.isdigit takes fullwidth ones), and a bounded echo
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port) or int(port) > 65535 or (
            "]" in host or "[" in host):
        raise argparse.ArgumentTypeError(
            "invalid address %r: [HOST]:PORT expected, e.g. 127.0.0.1:9977, [::1]:9977 or :9977"
            % (text if len(text) <= 64 else text[:60] + "..."))
    return host or "0.0.0.0", int(port)


def _metric_list(text: str) -> Tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in METRIC_GROUPS]
    if bad or not names:
        raise argparse.ArgumentTypeError("invalid metrics %r (valid: a comma-separated list of %s)" % (
            text if len(text) <= 64 else text[:60] + "...", ", ".join(METRIC_GROUPS)))
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The metrics options, as a group of the command line's parser."""
    g = p.add_argument_group("metrics (Prometheus; needs procnet[prometheus])")
    g.add_argument("--serve", type=_listen_address, metavar="[HOST]:PORT",
                   help="serve the metrics on http://HOST:PORT/metrics until stopped (one poll per "
                        "scrape); HOST defaults to every IPv4 address")
    g.add_argument("--format", choices=("prom",),
                   help="prom: print the metrics once in Prometheus's text format (with -c: every "
                        "SECONDS), e.g. for node_exporter's textfile collector")
    g.add_argument("--output", metavar="FILE",
                   help="with --format prom: replace FILE atomically instead of printing")
    g.add_argument("--metrics", type=_metric_list, metavar="LIST",
                   help="which metrics: a comma-separated list of %s (default: all)"
                        % ",".join(METRIC_GROUPS))
    g.add_argument("--pid-label", action="store_true",
                   help="a pid label on the listener series (one per owner pid; pids churn)")


def export_options(ns: argparse.Namespace) -> Optional[ExportOptions]:
    """ExportOptions from the parsed arguments, None without --serve/--format;
    raises UsageError for combinations that mean nothing."""
    if ns.serve is None and ns.format is None:
        for flag, given in (("--output", ns.output), ("--metrics", ns.metrics), ("--pid-label", ns.pid_label)):
            if given:
                raise UsageError("%s needs --serve or --format prom" % flag)
        return None
    if ns.serve is not None and ns.format is not None:
        raise UsageError("--serve and --format prom: choose one")
    if ns.output is not None and ns.format is None:
        raise UsageError("--output needs --format prom")
    if ns.output == "":
        raise UsageError("--output: a file name expected")
    for flag, given in (("--json", ns.json), ("--events", ns.events),
                        ("-c", ns.serve is not None and ns.interval is not None)):
        if given:
            raise UsageError("%s does not go with %s" % (flag, "--serve" if ns.serve else "--format prom"))
    return ExportOptions(ns.serve, ns.format, ns.output, ns.metrics or METRIC_GROUPS, ns.pid_label)


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):     # stderr closed: best-effort
        pass


def _keep(opts: Any) -> Optional[Callable[[Any], bool]]:
    """The listing's filters that the core does not apply (see cli.selection),
    per socket; the exporters apply it once per new or changed socket."""
    tests = []
    if opts.mode == "listening":
        tests.append(lambda c: c.listening)
    if opts.ports:
        ports = frozenset(opts.ports)
        tests.append(lambda c: c.raddr is not None and (c.laddr.port in ports or c.raddr.port in ports))
    if len(opts.uids) > 1:
        uids = frozenset(opts.uids)
        tests.append(lambda c: c.uid in uids)
    if not tests:
        return None
    return lambda c: all(t(c) for t in tests)


def _collector(opts: Any) -> Any:
    try:
        from ..exporters.prometheus import ProcnetCollector
    except ImportError as e:
        raise ProcNetError(str(e)) from None
    from .selection import make_poller
    exp: ExportOptions = opts.export
    mode = opts.mode
    if mode == "connected":                 # netstat's default; metrics count every socket
        mode = "all"
    if mode == "all" and not opts.states and set(exp.metrics) <= {"listeners", "status"}:
        mode = "listening"                  # the kernel lists only listeners: far cheaper
    opts = opts._replace(mode=mode)
    return ProcnetCollector(make_poller(opts), metrics=exp.metrics, pid_label=exp.pid_label, keep=_keep(opts))


def _first(collector: Any) -> None:
    """The first poll (it fills the owner cache): a failure ends the run."""
    collector.collect()
    if collector.error is not None:
        raise collector.error


def run(opts: Any) -> int:
    """--serve or --format prom (opts.export set); returns the exit status."""
    exp: ExportOptions = opts.export
    collector = _collector(opts)
    try:
        if exp.serve is not None:
            return _serve(collector, exp.serve)
        return _textfile(collector, exp.output, opts.interval)
    finally:
        collector.poller.close()


def _serve(collector: Any, address: Tuple[str, int]) -> int:
    from prometheus_client import start_http_server
    from prometheus_client.registry import CollectorRegistry
    _first(collector)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    host, port = address
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise ProcNetError("--serve %s:%d: %s" % (host, port, e.strerror or e)) from None
    bound = server.server_address
    shown = "[%s]" % bound[0] if ":" in bound[0] else bound[0]
    _say("procnet: serving metrics on http://%s:%d/metrics" % (shown, bound[1]))
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:               # Ctrl-C is how it ends
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.shutdown()
        server.server_close()
        thread.join(5)
    return 0


def _textfile(collector: Any, output: Optional[str], interval: Optional[float]) -> int:
    from ..exporters.prometheus import exposition
    from ..exporters.textfile import write_atomic

    def refresh() -> None:
        data = exposition(collector)
        if collector.error is not None and interval is None:
            raise collector.error            # once: say why and exit 1 (with -c: procnet_up 0)
        try:
            if output is not None:
                write_atomic(output, data)
            else:
                out = getattr(sys.stdout, "buffer", None)   # UTF-8 bytes as the library encoded them
                if out is None:             # started with stdout closed (>&-)
                    raise OSError(errno.EBADF, os.strerror(errno.EBADF))
                out.write(data)
                out.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise ProcNetError("write error: %s%s" % (
                "%s: " % output if output is not None else "", e.strerror or e)) from None

    if interval is None:
        refresh()
        return 0
    from . import continuous
    try:
        continuous(refresh, interval)
    except KeyboardInterrupt:
        pass
    return 0
