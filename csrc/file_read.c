/*
 * file_read.c -- the one way the core opens and reads a file under the
 * procfs root: /proc/net tables, PID/comm, PID/stat, schedstat.
 *
 * proc_root may be any tree (a container's, captured text, a hostile one):
 * a FIFO there would block open() and read() forever, a character device
 * such as /dev/zero never reaches EOF. So a file is opened O_NONBLOCK (a FIFO
 * opens at once), checked with fstat and refused unless it is a regular
 * file (procfs files are); every read is bounded by its caller's buffer or by
 * PN_MAX_FILE. Twin: procnet/_pure/file_read.py.
 */
#include "pn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int pn_open_file(int dirfd, const char *path)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat st;
    int e = 0;
    if (fstat(fd, &st) < 0)
        e = errno;
    else if (S_ISDIR(st.st_mode))
        e = EISDIR;
    else if (!S_ISREG(st.st_mode))
        e = ENXIO;      /* FIFO, device, socket: what open(2) says of a socket */
    if (e) {
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

ssize_t pn_read_fd(int fd, char *buf, size_t cap)
{
    ssize_t n;
    do
        n = read(fd, buf, cap);
    while (n < 0 && errno == EINTR);
    return n;
}

ssize_t pn_read_small(int dirfd, const char *path, char *buf, size_t cap)
{
    int fd = pn_open_file(dirfd, path);
    if (fd < 0)
        return -1;
    ssize_t n = pn_read_fd(fd, buf, cap);
    int e = errno;
    close(fd);
    errno = e;
    return n;
}
