"""Atomic files for textfile collectors (node_exporter's ``--collector.textfile.directory``,
OpenWrt's ``prometheus-node-exporter-lua`` textfile directory).

A reader must never see half a file: the data goes to a temporary file in the
same directory (a dot name without the ``.prom`` suffix, which the collectors
skip), is flushed to disk, and is renamed over the target in one step.
"""
import errno
import os
import stat
import tempfile


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically (same directory: rename(2) is atomic
    there). The temporary file is removed on any error.

    Only a regular file (or nothing) is replaced: a device, FIFO, socket,
    directory or symlink at `path` is refused with OSError -- the rename
    would put a plain file in its place (``--output /dev/null`` as root).
    """
    path = os.fspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EEXIST, "exists and is not a regular file (a device, FIFO, "
                          "directory or symlink is never replaced)", path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        try:
            os.fchmod(fd, mode)                     # mkstemp makes it 0600: readers are other users
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
