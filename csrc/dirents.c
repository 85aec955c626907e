/*
 * dirents.c -- getdents64, for the directory listings of the /proc walk
 * (owners_proc.c: <root> and PID/fd) and of a process's threads
 * (proc_ident.c: PID/task). Called directly: glibc < 2.30 and some musl
 * builds lack a wrapper. One file of its own so that neither of its callers
 * depends on the other. The pure twin lists with os.listdir.
 */
#include "pn_internal.h"

#include <sys/syscall.h>
#include <unistd.h>

long pn_getdents64(int fd, char *buf, size_t len)
{
    return syscall(SYS_getdents64, fd, buf, len);
}
