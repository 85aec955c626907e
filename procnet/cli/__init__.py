"""procnet's command line: ``procnet -tulpn`` (console script) and ``python -m procnet``.

main() parses the options (cli.args), takes a snapshot (cli.selection), renders
it as netstat's table (cli.netstat_render), JSON (cli.jsonout) or change events
(cli.events) -- every value spelled by cli.fields -- and writes it in one piece
(cli.streams); with -c it repeats that in continuous(), on a procnet.Poller
whose owner cache makes every refresh after the first cheap. What a snapshot
missed is said on stderr (cli.notices). See ``procnet --help``.

Exit status: 0 success, also when -c is stopped by Ctrl-C (the way it ends)
or the reader of stdout goes away (``| head``); 1 error (an unusable
--proc-root, a write error); 2 usage error; 130 a run without -c interrupted
by Ctrl-C (SIGINT), as shells report a command killed by it.
"""
import sys
import time
from typing import Callable, Optional, Sequence

from .._errors import ProcNetError
from .args import HelpRequested, UsageError, parse
from .notices import PARTIAL_WARNING, ROOT_PARTIAL_WARNING, data_note, netns_note, owners_note
from .streams import Output, WriteError, quiet_stdout, say

__all__ = ["main", "continuous", "PARTIAL_WARNING", "ROOT_PARTIAL_WARNING"]

EXIT_INTERRUPTED = 130                 # 128 + SIGINT, what a shell reports for Ctrl-C
_CLEAR = "\x1b[H\x1b[2J"


def continuous(refresh: Callable[[], None], interval: float,
               wait: Callable[[float], None] = time.sleep) -> None:
    """Call refresh() now and every `interval` seconds after, until interrupted.

    Runs on a fixed cadence (a slow refresh shortens the next wait, never
    piles up); `wait(seconds)` sleeps (Output.wait: unless stdout's reader
    goes away). Ends only by an exception: KeyboardInterrupt, BrokenPipeError.
    """
    next_at = time.monotonic()
    while True:
        refresh()
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            wait(delay)
        else:
            next_at = time.monotonic()


def _version(opts) -> str:
    from .. import _backend
    from .._version import __version__
    from .._plan import bpf_status
    name, impl = _backend.resolve(opts.backend)
    text = "procnet %s (backend: %s)\n" % (__version__, name)
    ok, why = bpf_status(impl)
    text += "BPF owner source: %s\n" % ("available" if ok else "unavailable (%s)" % why)
    return text


class _Notes:
    """stderr notes about what the snapshots missed: each said once while it lasts.

    `every_frame`: on a terminal that -c redraws, the clear wipes them: repeat
    them under every frame instead.
    """

    def __init__(self, every_frame: bool) -> None:
        self.every_frame = every_frame
        self.said: dict = {}

    def say(self, kind: str, line: Optional[str]) -> None:
        if line is not None and (self.every_frame or self.said.get(kind) != line):
            say(line)
        self.said[kind] = line


def _run(argv: Sequence[str], out: Output) -> int:
    try:
        opts = parse(argv)
    except HelpRequested as h:
        out.write(h.text)
        return 0
    if opts.version:
        out.write(_version(opts))
        return 0
    if opts.export is not None:            # --serve, --format prom: metrics (cli/serve.py)
        from .serve import run
        return run(opts)
    try:
        _show(opts, out)
    except KeyboardInterrupt:
        if opts.interval is None:
            raise
        quiet_stdout()                 # not a half-written frame, nor a wait for its reader at exit
        return 0                       # Ctrl-C is how -c ends
    return 0


def _show(opts, out: Output) -> None:
    from .selection import make_poller, take
    from .core_render import usable
    if usable(opts, out):               # one table or JSON document, rendered by the core (cli/core_render.py)
        from .core_render import show
        core_notes = _Notes(every_frame=False)

        def say_notes(snap) -> None:        # as refresh() below says them
            core_notes.say("data", data_note(snap))
            if not opts.json:
                core_notes.say("netns", netns_note(snap))
                core_notes.say("owners", owners_note(snap) if opts.program else None)
        show(opts, out, say_notes)
        return
    poller = None
    if opts.events or (opts.interval is not None and (opts.program or opts.json)):
        # the owner cache pays from the second refresh on; --events needs the diff
        poller = make_poller(opts)
    # on a terminal, -c redraws: clear first, and repeat the notes under each
    # frame (the clear would wipe them); elsewhere they come before the output, as netstat's
    clear = _CLEAR if opts.interval is not None and out.tty and not (opts.events or opts.json) else ""
    notes = _Notes(every_frame=bool(clear))
    render: Callable[..., str]
    if opts.events:
        from .events import EventWriter
        events = EventWriter(opts)

        def render(t) -> str:
            return events.render(t.changes)
    elif opts.json:
        from .jsonout import document, dumps

        def render(t) -> str:
            return dumps(document(t.snapshot, t.connections))
    else:
        from .netstat_render import Table
        table = Table(opts)

        def render(t) -> str:
            return clear + table.render(t.connections, t.snapshot.namespaces)

    def refresh() -> None:
        t = take(opts, poller)
        text = render(t)
        owners = owners_note(t.snapshot) if opts.program and not (opts.json or opts.events) else None
        netns = netns_note(t.snapshot) if not (opts.json or opts.events) else None
        if not clear:
            notes.say("data", data_note(t.snapshot))
            notes.say("netns", netns)
            notes.say("owners", owners)
        if text:
            out.write(text)
        if clear:
            notes.say("data", data_note(t.snapshot))
            notes.say("netns", netns)
            notes.say("owners", owners)

    if opts.interval is None:
        refresh()
    else:
        continuous(refresh, opts.interval, out.wait)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line; returns the exit status (see the module's docstring)."""
    if argv is None:
        argv = sys.argv[1:]
    try:
        return _run(argv, Output())
    except UsageError as e:
        say("procnet: %s (see procnet --help)" % e)
        return 2
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:              # Ctrl-C before a one-shot run was done
        quiet_stdout()                     # drop what is still buffered: the run did not finish
        return EXIT_INTERRUPTED
    except BrokenPipeError:                # the reader went away (procnet ... | head)
        quiet_stdout()
        return 0
    except WriteError as e:
        say("procnet: write error: %s" % e)
        quiet_stdout()
        return 1
    except ProcNetError as e:
        if isinstance(e, OSError) and e.strerror and e.filename is not None:
            msg = "%s: %s" % (e.filename or "''", e.strerror)
        else:
            msg = str(e)
        say("procnet: %s" % " ".join(msg.split()))
        return 1
    except ValueError as e:                # an argument the core rejected
        say("procnet: %s" % " ".join(str(e).split()))
        return 2
