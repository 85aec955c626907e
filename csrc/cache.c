/*
 * cache.c -- a Poller's state: what each process held, and the last poll.
 *
 * Owners. A process can change its fd table only by running (a syscall of
 * one of its threads: io_uring workers are its threads too). So per process,
 * keyed by pid and start time, the cache keeps the socket fds the last walk
 * found and each thread's run counters (/proc/PID/task/TID/schedstat: ns on
 * CPU and times scheduled in). When a poll finds the same threads with the
 * same counters, the process has not run since: its cached fds are exact and
 * its fd directory is not read. Anything else -- new or vanished threads, a
 * counter that moved, unreadable counters, another start time, a thread found
 * running (its counters may lag: see read_thread) -- and the whole fd
 * directory is read again. (Re-reading only new fd numbers would not
 * be exact: an fd number reused for another socket keeps its /proc dentry,
 * so the listing does not show it, and the socket it held may live on in
 * another process.) Blind spot: a process sharing its fd table with another
 * *process* (clone(CLONE_FILES) without CLONE_THREAD) can see it changed by
 * that other process without running itself.
 *
 * Records. The last poll's records are kept; the next poll matches sockets by
 * identity (table + inode, or the addresses when the inode is 0) and hands
 * only new or changed records to Python, which keeps the objects of the rest.
 * Records handed over pin their poll's strings in Python, so once more have
 * been handed over than the poll holds (plus a slack), the poll is "rebased":
 * everything is handed over afresh, and memory stays bounded.
 */
#include "pn_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#define EMPTY UINT32_MAX
#define REBASE_SLACK 1024

struct pn_cfd {
    uint64_t inode;
    int32_t  fd;
    int32_t  reserved;
};

struct pn_cproc {
    int32_t  pid;
    uint32_t flags;       /* PN_SF_NO_NAME */
    uint64_t start;
    uint32_t ntasks;
    uint32_t nfds;
    uint32_t name_len;
    char     name[64];
    struct pn_task *tasks;  /* ntasks, then the fds in the same allocation */
};

struct pn_cache {
    /* processes: an array plus an open-addressing index by pid */
    struct pn_cproc *procs;
    size_t nprocs;
    uint32_t *slots;
    size_t nslots;
    uint64_t root_dev, root_ino;
    uid_t euid;                 /* whose rights the cached walks had */
    /* the previous poll, whole */
    struct pn_sock *socks;
    size_t nsocks;
    struct pn_owner *owners;
    size_t nowners;
    char *strings;
    size_t strings_len;
    int have_prev;
    size_t handed_since_rebase;
};

static struct pn_cfd *cproc_fds(const struct pn_cproc *p)
{
    return (struct pn_cfd *)(p->tasks + p->ntasks);
}

struct pn_cache *pn_cache_new(void)
{
    return calloc(1, sizeof(struct pn_cache));
}

static void free_procs(struct pn_cproc *procs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(procs[i].tasks);
    free(procs);
}

static void forget_prev(struct pn_cache *c)
{
    free(c->socks);
    free(c->owners);
    free(c->strings);
    c->socks = NULL;
    c->owners = NULL;
    c->strings = NULL;
    c->nsocks = c->nowners = c->strings_len = 0;
    c->have_prev = 0;
}

void pn_cache_free(struct pn_cache *c)
{
    if (!c)
        return;
    free_procs(c->procs, c->nprocs);
    free(c->slots);
    forget_prev(c);
    free(c);
}

void pn_cache_bind(struct pn_cache *c, uint64_t dev, uint64_t ino)
{
    /* another root, or other rights to read it: nothing cached still holds */
    uid_t euid = geteuid();
    if (c->root_dev == dev && c->root_ino == ino && c->euid == euid)
        return;
    c->euid = euid;
    free_procs(c->procs, c->nprocs);
    free(c->slots);
    c->procs = NULL;
    c->slots = NULL;
    c->nprocs = c->nslots = 0;
    forget_prev(c);
    c->root_dev = dev;
    c->root_ino = ino;
}

static size_t pid_slot(int32_t pid, size_t mask)
{
    return (size_t)(((uint64_t)(uint32_t)pid * 0x9E3779B97F4A7C15ull) >> 29) & mask;
}

const struct pn_cproc *pn_cache_find(const struct pn_cache *c, int32_t pid)
{
    if (!c || !c->slots)
        return NULL;
    size_t mask = c->nslots - 1;
    for (size_t s = pid_slot(pid, mask); c->slots[s] != EMPTY; s = (s + 1) & mask)
        if (c->procs[c->slots[s]].pid == pid)
            return &c->procs[c->slots[s]];
    return NULL;
}

/* ---- a process's identity: start time and its threads' run counters ---- */

/* Read a small file relative to dirfd; bytes read, or -1. */
static ssize_t read_small(int dirfd, const char *path, char *buf, size_t cap)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    ssize_t n;
    do
        n = read(fd, buf, cap);
    while (n < 0 && errno == EINTR);
    close(fd);
    return n;
}

/* "<runtime> <run_delay> <pcount>\n" -> task; 0 when absent, odd or all zero
 * (the kernel prints "0 0 0" when it keeps no schedstats). */
static int read_schedstat(int dirfd, const char *path, struct pn_task *t)
{
    char buf[96];
    ssize_t n = read_small(dirfd, path, buf, sizeof buf);
    uint64_t run, delay, count;
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    const char *p = buf, *end = buf + (n > 0 ? n : 0);
    if (n <= 0 || !pn_scan_dec(&p, end, UINT64_MAX, &run) ||
        !pn_scan_dec(&p, end, UINT64_MAX, &delay) || !pn_scan_dec(&p, end, UINT64_MAX, &count) ||
        !pn_at_end(&p, end) || (run == 0 && count == 0))
        return 0;
    t->runtime = run;
    t->pcount = count;
    t->reserved = 0;
    return 1;
}

/* From a stat file: state (field 3), num_threads (20), starttime (22). The
 * command name (field 2) may hold anything, ')' included: skip to the last ')'. */
static int read_stat(int dirfd, const char *path, char *state, uint64_t *threads, uint64_t *start)
{
    char buf[1024];
    ssize_t n = read_small(dirfd, path, buf, sizeof buf);
    if (n <= 0)
        return 0;
    const char *p = NULL, *end = buf + n;
    for (const char *q = buf; q < end; q++)
        if (*q == ')')
            p = q + 1;
    if (!p)
        return 0;
    pn_skip_blanks(&p, end);
    if (p >= end)
        return 0;
    *state = *p++;
    for (int field = 4; field <= 22; field++) {
        pn_skip_blanks(&p, end);
        const char *tok = p;
        while (p < end && *p != ' ' && *p != '\t' && *p != '\n')
            p++;
        if (p == tok)
            return 0;
        if (field == 20 || field == 22) {
            const char *q = tok;
            uint64_t v;
            if (!pn_scan_dec(&q, p, UINT64_MAX, &v) || q != p)
                return 0;
            *(field == 20 ? threads : start) = v;
        }
    }
    return 1;
}

static int cmp_task(const void *a, const void *b)
{
    const struct pn_task *x = a, *y = b;
    return (x->tid > y->tid) - (x->tid < y->tid);
}

/* A thread's counters, then its state: one found not running after its
 * counters were read can run again only by being switched in, which moves
 * pcount; one found running ('R') may run on without either counter moving
 * (the runtime is brought up to date only at a tick or a switch): unknown. */
static int read_thread(int dirfd, int32_t tid, int32_t leader, struct pn_task *t)
{
    char path[40], state = 0;
    uint64_t threads, start;
    t->tid = tid;
    snprintf(path, sizeof path, "%d/schedstat", (int)tid);
    if (!read_schedstat(dirfd, path, t))
        return 0;
    snprintf(path, sizeof path, "%d/stat", (int)tid);
    if (!read_stat(dirfd, path, &state, &threads, &start))
        return 0;
    /* a zombie leader's counters are frozen; the others must be asleep */
    return state != 'R' && (tid == leader || (state != 'Z' && state != 'X' && state != 'x'));
}

/* Every thread of PID (PID/task/TID); 1 ok, 0 unknown, -1 ENOMEM. */
static int read_tasks(int rootfd, int32_t pid, struct pn_owners *o)
{
    char path[32];
    union { char b[4096]; uint64_t align; } dents;
    snprintf(path, sizeof path, "%d/task", (int)pid);
    int dfd = openat(rootfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dfd < 0)
        return 0;
    size_t first = o->tasks.len;
    int rc = 1;
    for (;;) {
        long n = pn_getdents64(dfd, dents.b, sizeof dents.b);
        if (n < 0) {
            rc = 0;
            break;
        }
        if (n == 0)
            break;
        for (long off = 0; off < n && rc == 1;) {
            struct pn_dirent64 *d = (struct pn_dirent64 *)(dents.b + off);
            off += d->d_reclen;
            const char *q = d->d_name, *end = q + strlen(q);
            uint64_t tid;
            if (!pn_scan_dec(&q, end, 0x7fffffff, &tid) || q != end)
                continue;                      /* "." and ".." */
            struct pn_task *t = pn_vec_reserve(&o->tasks, sizeof *t, 1);
            if (!t) {
                rc = -1;
                break;
            }
            if (!read_thread(dfd, (int32_t)tid, pid, t))
                rc = 0;           /* running, ended meanwhile, or no schedstats */
            else
                o->tasks.len++;
        }
        if (rc != 1)
            break;
    }
    close(dfd);
    if (rc == 1 && o->tasks.len == first)
        rc = 0;
    if (rc == 1 && o->tasks.len - first > 1)
        qsort((struct pn_task *)o->tasks.data + first, o->tasks.len - first,
              sizeof(struct pn_task), cmp_task);   /* the listing is in thread-list order */
    if (rc != 1)
        o->tasks.len = first;
    return rc;
}

int pn_proc_ident(int rootfd, int32_t pid, struct pn_owners *o, uint64_t *start,
                  uint32_t *ntasks)
{
    char path[32], state = 0;
    uint64_t threads = 0, threads2 = 0, start2 = 0;
    size_t first = o->tasks.len;
    struct pn_task leader;
    *start = 0;
    *ntasks = 0;
    /* the leader's counters before its state (see read_thread) */
    snprintf(path, sizeof path, "%d/schedstat", (int)pid);
    int have_leader = read_schedstat(rootfd, path, &leader);
    leader.tid = pid;
    snprintf(path, sizeof path, "%d/stat", (int)pid);
    if (!read_stat(rootfd, path, &state, &threads, start) || *start == 0) {
        *start = 0;
        return 1;                              /* unknown: walk it */
    }
    if (threads == 1 && state != 'Z' && state != 'X' && state != 'x') {
        /* the common single-threaded process: its one thread is the leader,
         * and a thread made after the stat read would have made it run */
        if (!have_leader || state == 'R')
            return 1;
        struct pn_task *t = pn_vec_reserve(&o->tasks, sizeof *t, 1);
        if (!t)
            return -1;
        *t = leader;
        o->tasks.len++;
        *ntasks = 1;
        return 1;
    }
    int r = read_tasks(rootfd, pid, o);
    if (r < 0)
        return -1;
    /* every thread listed (num_threads counts a zombie leader too), and none
     * made while the list was read (it would not be in it): else not trusted */
    if (r == 1 && o->tasks.len - first != threads)
        r = 0;
    if (r == 1 && (!read_stat(rootfd, path, &state, &threads2, &start2) || threads2 != threads ||
                   start2 != *start))
        r = 0;
    if (r != 1) {
        o->tasks.len = first;
        return 1;
    }
    *ntasks = (uint32_t)(o->tasks.len - first);
    return 1;
}

int pn_cache_same(const struct pn_cproc *cp, const struct pn_owners *o, uint64_t start,
                  uint32_t task_first, uint32_t ntasks)
{
    return cp->start == start && start != 0 && cp->ntasks == ntasks && ntasks != 0 &&
           memcmp(cp->tasks, (const struct pn_task *)o->tasks.data + task_first,
                  ntasks * sizeof(struct pn_task)) == 0;
}

int pn_cache_replay(const struct pn_cproc *cp, struct pn_owners *o, uint32_t *proc_idx)
{
    *proc_idx = UINT32_MAX;
    if (!cp->nfds)
        return 0;
    struct pn_proc_info *pi = pn_vec_reserve(&o->procs, sizeof *pi, 1);
    if (!pi)
        return -1;
    memset(pi, 0, sizeof *pi);
    pi->pid = cp->pid;
    pi->flags = cp->flags;
    if (!(cp->flags & PN_SF_NO_NAME)) {
        size_t off = pn_vec_append_bytes(&o->strings, cp->name, cp->name_len);
        if (off == (size_t)-1)
            return -1;
        pi->name_off = (uint32_t)off;
        pi->name_len = cp->name_len;
    }
    *proc_idx = (uint32_t)o->procs.len++;
    struct pn_fd_entry *e = pn_vec_reserve(&o->entries, sizeof *e, cp->nfds);
    if (!e)
        return -1;
    const struct pn_cfd *f = cproc_fds(cp);
    for (uint32_t i = 0; i < cp->nfds; i++) {
        e[i].inode = f[i].inode;
        e[i].pid = cp->pid;
        e[i].fd = f[i].fd;
        e[i].proc = *proc_idx;
        e[i].next = EMPTY;
    }
    o->entries.len += cp->nfds;
    return 0;
}

/* A cache entry for a process the walk just read. */
static int make_cproc(const struct pn_owners *o, const struct pn_seen *sn, struct pn_cproc *cp)
{
    memset(cp, 0, sizeof *cp);
    cp->pid = sn->pid;
    cp->start = sn->start;
    cp->ntasks = sn->ntasks;
    cp->nfds = sn->ent_count;
    size_t bytes = sn->ntasks * sizeof(struct pn_task) + sn->ent_count * sizeof(struct pn_cfd);
    cp->tasks = malloc(bytes ? bytes : 1);
    if (!cp->tasks)
        return -1;
    pn_copy(cp->tasks, (const struct pn_task *)o->tasks.data + sn->task_first,
            sn->ntasks * sizeof(struct pn_task));
    struct pn_cfd *f = cproc_fds(cp);
    const struct pn_fd_entry *e = (const struct pn_fd_entry *)o->entries.data + sn->ent_first;
    for (uint32_t i = 0; i < sn->ent_count; i++) {
        f[i].inode = e[i].inode;
        f[i].fd = e[i].fd;
        f[i].reserved = 0;
    }
    if (sn->proc != EMPTY) {
        const struct pn_proc_info *pi = (const struct pn_proc_info *)o->procs.data + sn->proc;
        cp->flags = pi->flags;
        cp->name_len = pi->name_len <= sizeof cp->name ? pi->name_len : (uint32_t)sizeof cp->name;
        pn_copy(cp->name, (const char *)o->strings.data + pi->name_off, cp->name_len);
    }
    return 0;
}

static int index_procs(struct pn_cache *c)
{
    size_t nslots = 16;
    while (nslots < 2 * c->nprocs)
        nslots *= 2;
    uint32_t *slots = malloc(nslots * sizeof *slots);
    if (!slots)
        return -1;
    memset(slots, 0xff, nslots * sizeof *slots);
    for (size_t i = 0; i < c->nprocs; i++) {
        size_t s = pid_slot(c->procs[i].pid, nslots - 1);
        while (slots[s] != EMPTY)
            s = (s + 1) & (nslots - 1);
        slots[s] = (uint32_t)i;
    }
    free(c->slots);
    c->slots = slots;
    c->nslots = nslots;
    return 0;
}

/* Rebuild the process table from what the walk saw. Unknown identities are
 * not kept (they are walked every time anyway); with a pid filter, processes
 * the walk did not visit keep their entries. */
int pn_cache_update(struct pn_cache *c, const struct pn_owners *o, int filtered)
{
    const struct pn_seen *seen = o->seen.data;
    size_t cap = o->seen.len + (filtered ? c->nprocs : 0);
    struct pn_cproc *procs = calloc(cap ? cap : 1, sizeof *procs);
    size_t n = 0;
    if (!procs)
        return -1;
    /* mark: old entries moved over get tasks = NULL */
    for (size_t i = 0; i < o->seen.len; i++) {
        const struct pn_seen *sn = &seen[i];
        struct pn_cproc *old = (struct pn_cproc *)pn_cache_find(c, sn->pid);
        if (sn->status == PN_SEEN_REUSED && old && old->tasks) {
            procs[n++] = *old;
            old->tasks = NULL;
            old->pid = -1;              /* visited: not carried over below */
            continue;
        }
        if (old)
            old->pid = -1;
        if (sn->status != PN_SEEN_WALKED || !sn->ntasks)
            continue;
        if (make_cproc(o, sn, &procs[n]) < 0) {
            free_procs(procs, n);
            return -1;
        }
        n++;
    }
    for (size_t i = 0; filtered && i < c->nprocs; i++) {
        if (c->procs[i].pid >= 0 && c->procs[i].tasks) {
            procs[n++] = c->procs[i];
            c->procs[i].tasks = NULL;
        }
    }
    struct pn_cproc *old_procs = c->procs;
    size_t old_n = c->nprocs;
    c->procs = procs;
    c->nprocs = n;
    if (index_procs(c) < 0) {
        /* keep nothing rather than an index into the wrong array */
        free_procs(procs, n);
        free(c->slots);
        c->procs = NULL;
        c->slots = NULL;
        c->nprocs = c->nslots = 0;
        free_procs(old_procs, old_n);
        errno = ENOMEM;
        return -1;
    }
    free_procs(old_procs, old_n);
    return 0;
}

/* ---- the diff against the previous poll ---- */

static uint64_t sock_key(const struct pn_sock *s)
{
    uint64_t h = (uint64_t)s->table * 0x100000001B3ull;
    if (s->inode)
        return (h ^ s->inode) * 0x9E3779B97F4A7C15ull;
    /* inode 0 (TIME_WAIT, SYN_RECV): the addresses are the identity */
    for (int i = 0; i < 16; i++)
        h = (h ^ s->laddr[i]) * 0x100000001B3ull;
    for (int i = 0; i < 16; i++)
        h = (h ^ s->raddr[i]) * 0x100000001B3ull;
    h = (h ^ s->lport) * 0x100000001B3ull;
    h = (h ^ s->rport) * 0x100000001B3ull;
    return h * 0x9E3779B97F4A7C15ull;
}

static int same_identity(const struct pn_sock *a, const struct pn_sock *b)
{
    if (a->table != b->table || a->inode != b->inode)
        return 0;
    if (a->inode)
        return 1;
    return a->lport == b->lport && a->rport == b->rport &&
           memcmp(a->laddr, b->laddr, 16) == 0 && memcmp(a->raddr, b->raddr, 16) == 0;
}

static int same_text(const char *sa, uint32_t oa, uint32_t la, const char *sb, uint32_t ob,
                     uint32_t lb)
{
    return la == lb && (la == 0 || memcmp(sa + oa, sb + ob, la) == 0);
}

/* Everything Python shows of a socket except its owners: equal? */
static int same_fields(const struct pn_sock *a, const char *sa, const struct pn_sock *b,
                       const char *sb)
{
    if (a->uid != b->uid || a->tx_queue != b->tx_queue || a->rx_queue != b->rx_queue ||
        a->protocol != b->protocol || a->state != b->state || a->stype != b->stype ||
        a->flags != b->flags || a->lport != b->lport || a->rport != b->rport ||
        memcmp(a->laddr, b->laddr, 16) != 0 || memcmp(a->raddr, b->raddr, 16) != 0)
        return 0;
    if (a->table == PN_UNIX)
        return same_text(sa, a->ext, a->ext_len, sb, b->ext, b->ext_len);
    return a->ext == b->ext && a->ext_len == b->ext_len;
}

/* Same owner set: pids and fds; names compared separately (a rename is a
 * modification, not an owner change). */
static int same_owners(const struct pn_owner *a, uint32_t na, const struct pn_owner *b,
                       uint32_t nb)
{
    if (na != nb)
        return 0;
    for (uint32_t i = 0; i < na; i++)
        if (a[i].pid != b[i].pid || a[i].fd != b[i].fd)
            return 0;
    return 1;
}

static int same_names(const struct pn_owner *a, const char *sa, const struct pn_owner *b,
                      const char *sb, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (a[i].flags != b[i].flags ||
            !same_text(sa, a[i].name_off, a[i].name_len, sb, b[i].name_off, b[i].name_len))
            return 0;
    return 1;
}

void pn_delta_free(struct pn_delta *d)
{
    free(d->take);
    free(d->prev);
    free(d->kind);
    free(d->closed);
    memset(d, 0, sizeof *d);
}

/* Copy the records picked by sel[] (with their owners and texts) into out's
 * arrays, replacing the full ones (which the cache keeps). */
static int hand_over(struct pn_result *out, const uint32_t *sel, size_t nsel)
{
    struct pn_vec socks = {0}, owners = {0}, strings = {0};
    const char *str = out->strings;
    if (!pn_vec_reserve(&socks, sizeof(struct pn_sock), nsel))
        goto fail;
    for (size_t k = 0; k < nsel; k++) {
        struct pn_sock *s = (struct pn_sock *)socks.data + socks.len++;
        *s = out->socks[sel[k]];
        if (s->table == PN_UNIX && s->ext_len) {
            size_t off = pn_vec_append_bytes(&strings, str + s->ext, s->ext_len);
            if (off == (size_t)-1)
                goto fail;
            s->ext = (uint32_t)off;
        }
        struct pn_owner *o = pn_vec_reserve(&owners, sizeof *o, s->owner_count);
        if (!o)
            goto fail;
        pn_copy(o, out->owners + s->owner_first, s->owner_count * sizeof *o);
        for (uint32_t i = 0; i < s->owner_count; i++) {
            if (!o[i].name_len)
                continue;
            size_t off = pn_vec_append_bytes(&strings, str + o[i].name_off, o[i].name_len);
            if (off == (size_t)-1)
                goto fail;
            o[i].name_off = (uint32_t)off;
        }
        s->owner_first = (uint32_t)owners.len;
        owners.len += s->owner_count;
    }
    if (strings.len > UINT32_MAX || owners.len > UINT32_MAX) {
        errno = ENOMEM;
        goto fail;
    }
    out->socks = socks.data;
    out->nsocks = socks.len;
    out->owners = owners.data;
    out->nowners = owners.len;
    out->strings = strings.data;
    out->strings_len = strings.len;
    return 0;
fail:
    pn_vec_free(&socks);
    pn_vec_free(&owners);
    pn_vec_free(&strings);
    errno = ENOMEM;
    return -1;
}

int pn_cache_diff(struct pn_cache *c, struct pn_result *out, struct pn_delta *d)
{
    size_t n = out->nsocks, np = c->have_prev ? c->nsocks : 0;
    uint32_t *slots = NULL, *sel = NULL;
    uint8_t *matched = NULL;
    size_t nslots = 16, nsel = 0, nclosed = 0;
    memset(d, 0, sizeof *d);
    if (n >= UINT32_MAX / 2 || np >= UINT32_MAX / 2) {
        errno = ENOMEM;
        return -1;
    }
    while (nslots < 2 * np)
        nslots *= 2;
    d->take = malloc((n ? n : 1) * sizeof *d->take);
    d->prev = malloc((n ? n : 1) * sizeof *d->prev);
    d->kind = malloc(n ? n : 1);
    d->closed = malloc((np ? np : 1) * sizeof *d->closed);
    sel = malloc((n ? n : 1) * sizeof *sel);
    slots = malloc(nslots * sizeof *slots);
    matched = calloc(np ? np : 1, 1);
    if (!d->take || !d->prev || !d->kind || !d->closed || !sel || !slots || !matched)
        goto fail;
    memset(slots, 0xff, nslots * sizeof *slots);
    size_t mask = nslots - 1;
    for (size_t j = 0; j < np; j++) {
        size_t s = (size_t)sock_key(&c->socks[j]) & mask;
        while (slots[s] != EMPTY)
            s = (s + 1) & mask;
        slots[s] = (uint32_t)j;
    }
    /* match every socket to the previous poll's, by identity */
    for (size_t i = 0; i < n; i++) {
        const struct pn_sock *s = &out->socks[i];
        uint32_t j = EMPTY;
        for (size_t k = (size_t)sock_key(s) & mask; slots[k] != EMPTY; k = (k + 1) & mask) {
            uint32_t cand = slots[k];
            if (!matched[cand] && same_identity(&c->socks[cand], s)) {
                j = cand;
                break;
            }
        }
        d->prev[i] = j;
        if (j == EMPTY) {
            d->kind[i] = PN_CH_OPENED;
            continue;
        }
        matched[j] = 1;
        const struct pn_sock *p = &c->socks[j];
        const struct pn_owner *oa = out->owners + s->owner_first, *ob = c->owners + p->owner_first;
        if (!same_owners(oa, s->owner_count, ob, p->owner_count))
            d->kind[i] = PN_CH_OWNERS;
        else if (!same_fields(s, out->strings, p, c->strings) ||
                 !same_names(oa, out->strings, ob, c->strings, s->owner_count))
            d->kind[i] = PN_CH_MODIFIED;
        else
            d->kind[i] = PN_CH_SAME;
    }
    for (size_t j = 0; j < np; j++)
        if (!matched[j])
            d->closed[nclosed++] = (uint32_t)j;
    d->nclosed = nclosed;

    size_t changed = 0;
    for (size_t i = 0; i < n; i++)
        changed += d->kind[i] != PN_CH_SAME;
    /* Records handed over since the last rebase all pin memory in Python. */
    d->rebased = !c->have_prev || c->handed_since_rebase + changed > n + REBASE_SLACK;
    for (size_t i = 0; i < n; i++) {
        if (d->rebased || d->kind[i] != PN_CH_SAME) {
            d->take[i] = (uint32_t)(np + nsel);
            d->prev[nsel] = d->prev[i];      /* compacted in place: nsel <= i */
            d->kind[nsel] = d->kind[i];
            sel[nsel++] = (uint32_t)i;
        } else {
            d->take[i] = d->prev[i];
        }
    }
    d->ntake = n;
    d->nprev = (uint32_t)np;
    d->unchanged = !d->rebased && nsel == 0 && n == np;
    for (size_t i = 0; d->unchanged && i < n; i++)
        d->unchanged = d->take[i] == i;
    c->handed_since_rebase = d->rebased ? n : c->handed_since_rebase + nsel;

    /* keep the whole poll for the next diff; hand over the selection */
    struct pn_sock *full_socks = out->socks;
    struct pn_owner *full_owners = out->owners;
    char *full_strings = out->strings;
    size_t full_n = out->nsocks, full_no = out->nowners, full_sl = out->strings_len;
    if (!d->rebased) {
        if (hand_over(out, sel, nsel) < 0)
            goto fail;
    } else {
        /* everything goes: hand over copies, keep the originals */
        struct pn_sock *cs = malloc((n ? n : 1) * sizeof *cs);
        struct pn_owner *co = malloc((full_no ? full_no : 1) * sizeof *co);
        char *cstr = malloc(full_sl ? full_sl : 1);
        if (!cs || !co || !cstr) {
            free(cs);
            free(co);
            free(cstr);
            goto fail;
        }
        pn_copy(cs, full_socks, n * sizeof *cs);
        pn_copy(co, full_owners, full_no * sizeof *co);
        pn_copy(cstr, full_strings, full_sl);
        out->socks = cs;
        out->owners = co;
        out->strings = cstr;
    }
    forget_prev(c);
    c->socks = full_socks;
    c->nsocks = full_n;
    c->owners = full_owners;
    c->nowners = full_no;
    c->strings = full_strings;
    c->strings_len = full_sl;
    c->have_prev = 1;
    free(slots);
    free(sel);
    free(matched);
    return 0;
fail:
    free(slots);
    free(sel);
    free(matched);
    pn_delta_free(d);
    errno = ENOMEM;
    return -1;
}
