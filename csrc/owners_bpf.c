/*
 * owners_bpf.c -- find socket owners with a BPF iterator instead of /proc.
 *
 * csrc/bpf/task_sockets.bpf.c is an iter/task_file program: reading an
 * iterator fd made from its link, the kernel runs it over every open file of
 * every task and it writes one fixed record per socket fd of a thread-group
 * leader (struct pn_bpf_rec below). One scan is a bpf_iter_create() on the
 * shared link plus read()s to EOF: no readlinkat per fd, no comm file per
 * process.
 *
 * The object is compiled at build time (procnet/_build_bpf.py, which writes
 * pn_bpf_obj.h; PN_HAVE_BPF_OBJ) and loaded at run time through libbpf 1.x,
 * dlopen()ed: neither libbpf nor its headers are needed to build or to run
 * procnet; without them pn_bpf_open just fails with a reason. Only libc and
 * dlfcn.h here, so this file builds for every target.
 *
 * Thread safety: after pn_bpf_open the struct is read-only; every scan makes
 * its own iterator fd (the kernel keeps the iteration state per fd) and the
 * program keeps no state, so any number of threads may scan at once.
 *
 * Loading and its process-wide effects: bpf_load.c.
 */
#include "bpf_load.h"

#include <errno.h>
#include <unistd.h>

#ifndef PN_HAVE_BPF_OBJ

int pn_bpf_scan(struct pn_bpf *b, const struct pn_query *q, struct pn_owners *o)
{
    (void)b;
    (void)q;
    memset(o, 0, sizeof *o);
    errno = ENOSYS;
    return -1;
}

#else /* PN_HAVE_BPF_OBJ */

/* What the program writes per record (task_sockets.bpf.c, struct pn_rec):
 * in the host's byte order, since the object is built for the host's. */
struct pn_bpf_rec {
    uint32_t tgid;
    uint32_t fd;
    uint64_t inode;     /* 0: a "first fd" marker, counts the process only */
    char     comm[16];  /* NUL-padded */
};
_Static_assert(sizeof(struct pn_bpf_rec) == 32, "pn_bpf_rec must match the BPF program's record");

/* ---- one scan ------------------------------------------------------------ */

/* Where the records stand: the kernel hands a task's fds over consecutively
 * (tasks in tid order, fds ascending), so "a new tgid" = "a new process". */
struct pn_bpf_parse {
    int64_t  pid;       /* tgid of the last record, -1 before the first */
    int      wanted;    /* passes q->pids */
    uint32_t proc;      /* its pn_proc_info, UINT32_MAX until its first socket */
};

static int take_records(const char *buf, size_t n, const struct pn_query *q,
                        struct pn_owners *o, struct pn_bpf_parse *st)
{
    for (size_t off = 0; off + sizeof(struct pn_bpf_rec) <= n; off += sizeof(struct pn_bpf_rec)) {
        struct pn_bpf_rec r;
        memcpy(&r, buf + off, sizeof r);
        int32_t pid = (int32_t)r.tgid;
        if ((int64_t)pid != st->pid) {
            st->pid = pid;
            st->wanted = pid > 0 && pn_pid_wanted(q, pid);
            st->proc = UINT32_MAX;
            if (st->wanted)
                o->nprocs++;
        }
        if (!st->wanted || r.inode == 0)
            continue;
        if (st->proc == UINT32_MAX) {
            struct pn_proc_info *pi = pn_vec_reserve(&o->procs, sizeof *pi, 1);
            if (!pi || o->procs.len >= UINT32_MAX)
                return -1;
            size_t len = strnlen(r.comm, sizeof r.comm);
            size_t soff = pn_vec_append_bytes(&o->strings, r.comm, len);
            if (soff == (size_t)-1 || soff > UINT32_MAX)
                return -1;
            memset(pi, 0, sizeof *pi);
            pi->pid = pid;
            pi->name_off = (uint32_t)soff;
            pi->name_len = (uint32_t)len;
            st->proc = (uint32_t)o->procs.len++;
        }
        struct pn_fd_entry *e = pn_vec_reserve(&o->entries, sizeof *e, 1);
        if (!e)
            return -1;
        e->inode = r.inode;
        e->pid = pid;
        e->fd = (int32_t)r.fd;
        e->proc = st->proc;
        e->next = UINT32_MAX;
        o->entries.len++;
    }
    return 0;
}

/*
 * One kernel-side walk. nprocs counts the thread-group leaders (passing
 * q->pids) with at least one open fd: the iterator never calls the program
 * for an empty fd table, so unlike the /proc walk it does not count kernel
 * threads, zombies or processes with every fd closed.
 */
int pn_bpf_scan(struct pn_bpf *b, const struct pn_query *q, struct pn_owners *o)
{
    struct pn_bpf_parse st = { -1, 0, UINT32_MAX };
    size_t have = 0;
    int e = 0;
    memset(o, 0, sizeof *o);
    if (!b) {
        errno = EINVAL;
        return -1;
    }
    char *buf = malloc(PN_READ_CHUNK);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    /* the iterator fd is O_CLOEXEC (the kernel creates it so) */
    int fd = b->f.iter_create(b->link_fd);
    if (fd < 0) {
        e = fd < -1 ? -fd : (errno ? errno : EIO);
        free(buf);
        errno = e;
        return -1;
    }
    for (;;) {
        ssize_t n = read(fd, buf + have, PN_READ_CHUNK - have);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            e = errno;
            break;
        }
        if (n == 0) {
            if (have)
                e = EIO;   /* a torn record at EOF: not the program's output */
            break;
        }
        /* Each read returns whole program outputs, but stay correct if a
         * record is ever split between reads: keep the tail for the next. */
        have += (size_t)n;
        size_t whole = have - have % sizeof(struct pn_bpf_rec);
        if (take_records(buf, whole, q, o, &st) < 0) {
            e = ENOMEM;
            break;
        }
        memmove(buf, buf + whole, have - whole);
        have -= whole;
    }
    close(fd);
    free(buf);
    if (e) {
        pn_owners_free(o);
        memset(o, 0, sizeof *o);
        errno = e;
        return -1;
    }
    return 0;
}

#endif /* PN_HAVE_BPF_OBJ */
