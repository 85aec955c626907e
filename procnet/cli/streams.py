"""stdout and stderr as the command line uses them, faults included.

- stdout gets whole refreshes, encoded once, written to its fd until all is
  taken (a write cut short by a signal or a size limit goes on). A write that
  fails raises :class:`WriteError` (a full disk, a closed stdout: the caller
  says ``procnet: write error: ...`` and exits 1), except EPIPE, which stays
  BrokenPipeError: a reader that went away (``| head``) is no error.
- Between refreshes, :meth:`Output.wait` sleeps in poll() on stdout, so a
  reader that went away ends a -c run even while nothing is written (a pipe
  whose reader closed reports POLLERR, a hung-up terminal POLLHUP).
- stderr may be closed (``2>&-``: sys.stderr is None) or full: :func:`say`
  is best-effort and never fails the run (nor its exit status).

Nothing here writes to fd 1 or 2 behind Python's back: with ``>&-`` or
``2>&-`` those numbers may be reused by files procnet opens.
"""
import errno
import math
import os
import sys
import time
from typing import Optional

__all__ = ["Output", "WriteError", "say", "quiet_stdout"]


class WriteError(Exception):
    """stdout refused a write; str() is the reason (strerror)."""


def _fileno(stream: object) -> Optional[int]:
    try:
        return stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):   # None, closed, or a text-only replacement
        return None


class Output:
    """stdout, written in whole refreshes."""

    def __init__(self) -> None:
        stream = sys.stdout
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        self.buffer = getattr(stream, "buffer", None)
        try:
            self.tty = bool(stream.isatty())   # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):
            self.tty = False
        self.fd = _fileno(stream)

    def write(self, text: str) -> None:
        """Write and flush `text`; raises WriteError or BrokenPipeError."""
        try:
            if self.stream is None:               # started with stdout closed (>&-)
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            if self.buffer is None:               # a text-only replacement stream (tests, embedding)
                self.stream.write(text)
                self.stream.flush()
                return
            data = memoryview(text.encode(self.encoding, "backslashreplace"))
            if self.fd is None:
                self.buffer.write(data)
                self.buffer.flush()
                return
            # Straight to the fd, as the core's renderers write: a write that takes part
            # (a signal, RLIMIT_FSIZE) goes on, one that takes nothing is an error -- a
            # BufferedWriter would spin on it, a raw one (-u) return short, and lose the rest
            self.buffer.flush()
            while data:
                n = os.write(self.fd, data)        # EINTR retried (PEP 475); EAGAIN raises
                if n == 0:
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                data = data[n:]
        except BrokenPipeError:
            raise
        except OSError as e:
            raise WriteError(e.strerror or str(e)) from None
        except ValueError as e:                   # closed underneath us
            raise WriteError(str(e)) from None

    def wait(self, seconds: float) -> None:
        """Sleep `seconds`; raise BrokenPipeError as soon as stdout's reader is gone."""
        import select
        if self.fd is None or not hasattr(select, "poll"):
            time.sleep(seconds)
            return
        poller = select.poll()
        poller.register(self.fd, 0)               # POLLERR, POLLHUP, POLLNVAL: always reported
        if poller.poll(math.ceil(seconds * 1000)):
            raise BrokenPipeError(errno.EPIPE, "the reader of stdout is gone")


def quiet_stdout() -> None:
    """After EPIPE or a write error: point stdout at /dev/null, so the interpreter's final flush
    of what is left in its buffer is silent (as the Python docs recommend: signal module,
    "Note on SIGPIPE"). Not when stdout was closed from the start: fd 1 may be another file now.
    """
    fd = _fileno(sys.stdout)
    if fd is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass


def say(line: str) -> None:
    """One line to stderr, if stderr takes it (closed, full: dropped).

    After a failed write, stderr is dropped for good (sys.stderr = None): its
    buffer may still hold the line, and the interpreter's final flush of it
    would fail and turn the exit status into 120.
    """
    err = sys.stderr
    if err is None:
        return
    try:
        err.write(line + "\n")
        err.flush()
    except (OSError, ValueError):
        sys.stderr = None
