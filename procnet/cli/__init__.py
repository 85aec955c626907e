"""procnet's command line: ``procnet -tulpn`` (console script) and ``python -m procnet``.

main() parses the options (cli.args), takes a snapshot (cli.selection), renders
it as netstat's table (cli.table), JSON (cli.jsonout) or change events
(cli.events) and writes it in one piece; with -c it repeats that in
continuous(), on a procnet.Poller whose owner cache makes every refresh after
the first cheap. See ``procnet --help``.
"""
import os
import sys
from typing import Callable, List, Optional, Sequence

from .._errors import ProcNetError
from .args import UsageError, parse

__all__ = ["main", "continuous"]

PARTIAL_WARNING = ("(Not all processes could be identified, non-owned process info will not be "
                   "shown, you would have to be root to see it all.)")
# root too can be refused a process's fds (an LSM, a process beyond its reach)
ROOT_PARTIAL_WARNING = "(Not all processes could be identified: the fds of pid %s could not be read.)"
_CLEAR = "\x1b[H\x1b[2J"


def continuous(refresh: Callable[[], None], interval: float) -> None:
    """Call refresh() now and every `interval` seconds after, until interrupted.

    Runs on a fixed cadence (a slow refresh shortens the next sleep, never
    piles up). Ends only by an exception: KeyboardInterrupt, BrokenPipeError.
    """
    import time
    next_at = time.monotonic()
    while True:
        refresh()
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()


class _Output:
    """Writes whole refreshes to stdout in one call each, encoded once."""

    def __init__(self) -> None:
        stream = sys.stdout
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        self.buffer = getattr(stream, "buffer", None)
        self.tty = stream.isatty() if hasattr(stream, "isatty") else False

    def write(self, text: str) -> None:
        if self.buffer is None:            # a text-only replacement stream (tests, embedding)
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        self.buffer.write(text.encode(self.encoding, "backslashreplace"))
        self.buffer.flush()


def _quiet_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush is silent.

    As the Python docs recommend (signal module, "Note on SIGPIPE").
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _version(opts) -> str:
    from .. import _backend
    from .._version import __version__
    from .._plan import bpf_status
    name, impl = _backend.resolve(opts.backend)
    text = "procnet %s (backend: %s)\n" % (__version__, name)
    ok, why = bpf_status(impl)
    text += "BPF owner source: %s\n" % ("available" if ok else "unavailable (%s)" % why)
    return text


def _run(argv: Sequence[str]) -> int:
    opts = parse(argv)
    if opts.version:
        sys.stdout.write(_version(opts))
        return 0
    if opts.export is not None:            # --serve, --format prom: metrics (cli/serve.py)
        from .serve import run
        return run(opts)
    from .selection import make_poller, take
    out = _Output()
    poller = None
    if opts.events or (opts.interval is not None and (opts.program or opts.json)):
        # the owner cache pays from the second refresh on; --events needs the diff
        poller = make_poller(opts)
    if opts.events:
        from .events import render_events

        def refresh() -> None:
            t = take(opts, poller)
            text = render_events(t.changes, opts)
            if text:
                out.write(text)
    elif opts.json:
        from .jsonout import document, dumps

        def refresh() -> None:
            t = take(opts, poller)
            out.write(dumps(document(t.snapshot, t.connections, t.tables)))
    else:
        from .table import Table
        table = Table(opts)
        # on a terminal, -c redraws: clear first, and repeat the warning under each
        # frame (the clear would wipe it); elsewhere warn once, before the table, as netstat
        clear = _CLEAR if opts.interval is not None and out.tty else ""
        warned: List[bool] = []

        def refresh() -> None:
            snap, conns, _, _ = take(opts, poller)
            text = clear + table.render(conns)
            warn = opts.program and bool(snap.denied_pids or snap.pids_hidden) and (
                bool(clear) or not warned)
            if warn and not clear:
                _warn(snap)
                warned.append(True)
            out.write(text)
            if warn and clear:
                _warn(snap)

    if opts.interval is None:
        refresh()
    else:
        continuous(refresh, opts.interval)
    return 0


def _warn(snap) -> None:
    if os.geteuid() == 0 and snap.denied_pids and not snap.pids_hidden:
        pids = ", ".join(map(str, snap.denied_pids[:10])) + (", ..." if len(snap.denied_pids) > 10 else "")
        sys.stderr.write(ROOT_PARTIAL_WARNING % pids + "\n")
    else:
        sys.stderr.write(PARTIAL_WARNING + "\n")
    sys.stderr.flush()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line; returns the exit status (0 ok, 1 error, 2 usage error)."""
    if argv is None:
        argv = sys.argv[1:]
    try:
        return _run(argv)
    except UsageError as e:
        sys.stderr.write("procnet: %s (see procnet --help)\n" % e)
        return 2
    except SystemExit as e:                # --help
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:              # Ctrl-C, typically ending -c
        return 0
    except BrokenPipeError:                # the reader went away (procnet ... | head)
        _quiet_stdout()
        return 0
    except ProcNetError as e:
        if isinstance(e, OSError) and e.strerror and e.filename:
            msg = "%s: %s" % (e.filename, e.strerror)
        else:
            msg = str(e)
        sys.stderr.write("procnet: %s\n" % " ".join(msg.split()))
        return 1
    except ValueError as e:                # an argument the core rejected
        sys.stderr.write("procnet: %s\n" % " ".join(str(e).split()))
        return 2
