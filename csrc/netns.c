/*
 * netns.c -- the sockets of other network namespaces.
 *
 * Listing: a NETLINK_SOCK_DIAG socket belongs to the namespace it was created
 * in, whatever its creator does next, so a short-lived thread setns()es into
 * the namespace, creates the socket and exits; the caller dumps from it.
 * setns() needs CAP_SYS_ADMIN; without it the plan falls back to the text of
 * a member process's /proc/PID/net (listing.c).
 *
 * Accounting: after the join, a socket fd whose inode no listed table holds
 * is placed by its holder's namespace (/proc/PID/ns/net) and named through
 * a copy of it (pidfd_getfd; checked to be that very socket by asking the
 * socket layer, SO_TYPE, then its sockfs inode -- never a file touched: a
 * reused fd might be a FUSE file that blocks): its system.sockprotoname attribute ("TCP", "UNIX-STREAM",
 * "AF_VSOCK", ...) and, where the holder's namespace was listed, the
 * socket's own namespace (SIOCGSKNS) -- so that nothing is dropped silently.
 * Socket inodes are unique host-wide: the join needs no namespace.
 */
#include "pn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434          /* the same number on every architecture */
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SIOCGSKNS
#define SIOCGSKNS 0x894C            /* linux/sockios.h: the socket's network namespace */
#endif

struct enter_job {
    struct pn_track *track;     /* a tracking Poller's: this thread is its own listing */
    const char *enter;
    uint32_t inode;
    int fd;
    int err;
    uint64_t own_inode;
};

static void enter_in(struct enter_job *j);

static void *enter_main(void *arg)
{
    struct enter_job *j = arg;
    uint32_t tid = (uint32_t)syscall(SYS_gettid);
    if (j->track && pn_track_quiet(j->track, tid, 1) < 0) {
        j->err = errno;
        return NULL;
    }
    enter_in(j);
    if (j->track && pn_track_quiet(j->track, tid, 0) < 0 && j->fd >= 0) {
        j->err = errno;                 /* it would stay unrecorded: fail the listing */
        close(j->fd);
        j->fd = -1;
    }
    return NULL;
}

static void enter_in(struct enter_job *j)
{
    /* non-blocking: a FIFO in its place must not hang the call (setns then refuses it) */
    int nsfd = open(j->enter, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (nsfd < 0) {
        j->err = errno;
        return;
    }
    /* the namespace planned, not another: PID may have exited and its number
     * been reused (or the process moved) since the plan found it there */
    struct stat st;
    if (j->inode && (fstat(nsfd, &st) < 0 || st.st_ino != j->inode)) {
        j->err = ESTALE;
        close(nsfd);
        return;
    }
    /* this thread alone moves, and ends right after: no way back needed */
    if (setns(nsfd, CLONE_NEWNET) < 0) {
        j->err = errno;
        close(nsfd);
        return;
    }
    close(nsfd);
    j->fd = pn_diag_open(&j->own_inode);
    if (j->fd < 0)
        j->err = errno;
    return;
}

int pn_netns_diag_open(const char *enter, uint32_t inode, uint64_t *own_inode,
                       struct pn_track *track)
{
    struct enter_job j = { .track = track, .enter = enter, .inode = inode, .fd = -1 };
    pthread_t t;
    if (!enter) {
        errno = EINVAL;
        return -1;
    }
    int e = pthread_create(&t, NULL, enter_main, &j);
    if (e != 0) {
        errno = e;
        return -1;
    }
    pthread_join(t, NULL);
    if (j.fd < 0) {
        errno = j.err ? j.err : EIO;
        return -1;
    }
    *own_inode = j.own_inode;
    return j.fd;
}

uint32_t pn_parse_netns_link(const char *s, size_t len)
{
    uint64_t v = 0;
    if (len < 7 || memcmp(s, "net:[", 5) != 0 || s[len - 1] != ']')
        return 0;
    for (size_t i = 5; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > UINT32_MAX)
            return 0;
    }
    return (uint32_t)v;
}

/* PID's network namespace, 0 when it cannot be read (gone, denied). */
static uint32_t proc_netns(int rootfd, int32_t pid)
{
    char path[32], buf[64];
    snprintf(path, sizeof path, "%d/ns/net", (int)pid);
    ssize_t n = readlinkat(rootfd, path, buf, sizeof buf);
    return n > 0 && (size_t)n < sizeof buf ? pn_parse_netns_link(buf, (size_t)n) : 0;
}

/* A copy of PID's fd FD (pidfd_getfd), if it is still the socket `inode`: the
 * walk saw it a moment ago, and the fd or even the pid may have been reused
 * since. -1 when not allowed (ptrace rights), gone, or another file now.
 * Checked through /proc/self/fd's link, never by touching the file: a file
 * of a FUSE mount whose daemon does not answer would block any fstat. */
struct pidfd_cache {                /* the last process's pidfd: entries come grouped by process */
    int32_t pid;
    int fd;
};

static int socket_copy(struct pidfd_cache *pc, int32_t pid, int32_t fd, uint64_t inode)
{
    if (pc->pid != pid) {
        if (pc->fd >= 0)
            close(pc->fd);
        pc->pid = pid;
        pc->fd = (int)syscall(SYS_pidfd_open, (int)pid, 0);
    }
    if (pc->fd < 0)
        return -1;
    int s = (int)syscall(SYS_pidfd_getfd, pc->fd, (int)fd, 0);
    if (s < 0)
        return -1;
    /* a socket? asked of the socket layer (ENOTSOCK otherwise), so that a
     * file is never touched; then, sockfs's own, the inode is safe to stat */
    int type;
    socklen_t len = sizeof type;
    struct stat st;
    if (getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || fstat(s, &st) < 0 ||
        (uint64_t)st.st_ino != inode) {
        close(s);
        return -1;
    }
    return s;
}

/* The namespace the socket belongs to (SIOCGSKNS): a process may hold
 * sockets of a namespace it has left. 0 when the kernel says not. */
static uint32_t socket_netns(int s)
{
    uint32_t ino = 0;
    int nsfd = ioctl(s, SIOCGSKNS);
    if (nsfd >= 0) {
        struct stat st;
        if (fstat(nsfd, &st) == 0 && st.st_ino <= UINT32_MAX)
            ino = (uint32_t)st.st_ino;
        close(nsfd);
    }
    return ino;
}

/* Were ns's tables listed? (One asked for but refused is not.) */
static int listed(const struct pn_query *q, const struct pn_netns_status *st, uint32_t ns)
{
    if (!q->netns)
        return ns == q->self_netns;
    for (size_t i = 0; i < q->nnetns; i++)
        if (st[i].inode == ns && st[i].source)
            return 1;
    return 0;
}

int pn_classify_unlisted(const struct pn_query *q, const struct pn_netns_status *st, int rootfd,
                         const struct pn_owners *own, const uint8_t *matched, struct pn_vec *out)
{
    const struct pn_fd_entry *e = own->entries.data;
    size_t nprocs = own->procs.len;
    /* per process: its namespace + 1 once read (0 = not yet) */
    uint64_t *ns_of = calloc(nprocs ? nprocs : 1, sizeof *ns_of);
    struct pidfd_cache pc = { .pid = 0, .fd = -1 };
    if (!ns_of)
        return -1;
    for (size_t k = 0; k < own->entries.len; k++) {
        /* one look per socket, through its lowest (pid, fd): the same holder
         * whatever order the walk's threads merged in */
        if (matched[k] || !e[k].inode || pn_owners_first(own, e[k].inode) != (uint32_t)k)
            continue;
        size_t h = k;
        for (uint32_t j = e[k].next; j != UINT32_MAX; j = e[j].next)
            if (e[j].pid < e[h].pid || (e[j].pid == e[h].pid && e[j].fd < e[h].fd))
                h = j;
        uint32_t proc = e[h].proc;
        if (proc < nprocs && !ns_of[proc])
            ns_of[proc] = (uint64_t)proc_netns(rootfd, e[h].pid) + 1;
        uint32_t ns = proc < nprocs ? (uint32_t)(ns_of[proc] - 1) : 0;
        if (!(q->classify & PN_CL_ALL) &&
            !((q->classify & PN_CL_OTHER_NS) && ns && !listed(q, st, ns)))
            continue;
        struct pn_unlisted *u = pn_vec_reserve(out, sizeof *u, 1);
        if (!u) {
            if (pc.fd >= 0)
                close(pc.fd);
            free(ns_of);
            return -1;
        }
        memset(u, 0, sizeof *u);
        u->inode = e[h].inode;
        u->pid = e[h].pid;
        /* held from a listed namespace yet in no table: either it belongs to
         * another namespace (its holder moved), or it is in none of the
         * kernel's tables at all (unbound, closed): the socket says which.
         * Asked of a copy checked to be the same socket, else by its path. */
        /* Only ever through a copy checked to be that socket: the file at
         * PID/fd/N may be another by now, even one that blocks whoever
         * touches it (FUSE). Without PN_CL_ASK_SOCKET (not this host's
         * /proc) nothing is asked: the protocol stays unknown. */
        int copy = (q->classify & PN_CL_ASK_SOCKET) ? socket_copy(&pc, e[h].pid, e[h].fd, e[h].inode) : -1;
        if (copy >= 0) {
            if (!ns || listed(q, st, ns)) {
                uint32_t own_ns = socket_netns(copy);
                if (own_ns)
                    ns = own_ns;
            }
            ssize_t got = fgetxattr(copy, "system.sockprotoname", u->proto, sizeof u->proto - 1);
            u->proto[got > 0 ? (size_t)got : 0] = '\0';   /* (the value carries its own NUL) */
            close(copy);
        }
        u->netns = ns;
        out->len++;
    }
    if (pc.fd >= 0)
        close(pc.fd);
    free(ns_of);
    return 0;
}
