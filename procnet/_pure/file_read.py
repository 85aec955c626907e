"""The one way the pure backend opens and reads a file under the procfs root;
twin of file_read.c (read its header comment).

A FIFO would block open() and read() forever and a character device never
ends: files are opened O_NONBLOCK, checked with fstat and refused unless
regular (EISDIR, ENXIO), and every read is bounded (MAX_FILE for a table).
"""
import errno
import os
import stat
from typing import Iterator, Optional, Union

Path = Union[str, bytes]

# As PN_MAX_FILE: no table is larger (~6 million sockets of 180-byte lines).
MAX_FILE = 1024 * 1024 * 1024
_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


def open_file(path: Path, dir_fd: Optional[int] = None) -> int:
    """A file descriptor for a regular file; OSError (EISDIR, ENXIO...) otherwise."""
    fd = os.open(path, _FLAGS, dir_fd=dir_fd)
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        e = errno.EISDIR if stat.S_ISDIR(mode) else errno.ENXIO
        raise OSError(e, os.strerror(e), path)
    return fd


def read_small(path: Path, cap: int, dir_fd: Optional[int] = None) -> bytes:
    """One read of at most `cap` bytes: a small file whole (comm, stat...).
    Raises OSError like pn_read_small fails."""
    fd = open_file(path, dir_fd)
    try:
        return os.read(fd, cap)
    finally:
        os.close(fd)


def read_chunks(path: Path, chunk: int, dir_fd: Optional[int] = None,
                limit: int = MAX_FILE) -> Iterator[bytes]:
    """The file in reads of `chunk` bytes, to EOF; OSError(EFBIG) past `limit`."""
    fd = open_file(path, dir_fd)
    try:
        total = 0
        while True:
            b = os.read(fd, chunk)
            if not b:
                return
            total += len(b)
            if total > limit:
                raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), path)
            yield b
    finally:
        os.close(fd)
