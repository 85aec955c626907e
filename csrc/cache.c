/*
 * cache.c -- a Poller's state: what each process held, and the last poll.
 *
 * Owners. A process can change its fd table only by running (a syscall of
 * one of its threads: io_uring workers are its threads too). So per process,
 * keyed by pid, start time and the inode of its <root>/PID directory (a
 * reused pid's is another), the cache keeps the socket fds the last walk
 * found and each thread's run counters (/proc/PID/task/TID/schedstat: ns on
 * CPU and times scheduled in). When a poll finds the same threads with the
 * same counters, the process has not run since: its cached fds are exact and
 * its fd directory is not read. Anything else -- new or vanished threads, a
 * counter that moved, unreadable counters, another start time, a thread found
 * running (its counters may lag: see proc_ident.c) -- and the whole fd
 * directory is read again. (Re-reading only new fd numbers would not
 * be exact: an fd number reused for another socket keeps its /proc dentry,
 * so the listing does not show it, and the socket it held may live on in
 * another process.) Blind spot: a process sharing its fd table with another
 * *process* (clone(CLONE_FILES) without CLONE_THREAD) can see it changed by
 * that other process without running itself.
 *
 * Records: the last poll is kept whole for the next diff (poll_diff.c).
 * Identities: proc_ident.c.
 */
#include "pn_internal.h"

#include <errno.h>
#include <unistd.h>

#define EMPTY UINT32_MAX

struct pn_cfd {
    uint64_t inode;
    int32_t  fd;
    int32_t  reserved;
};

struct pn_cproc {
    int32_t  pid;
    uint32_t flags;       /* PN_SF_NO_NAME */
    uint64_t start;
    uint64_t dir[2];      /* its directory's (dev, inode) when last read */
    uint32_t settled;     /* found asleep with the same counters by two whole reads */
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
    int procfs;                 /* the root is a procfs (fstatfs) */
    uid_t euid;                 /* whose rights the cached walks had */
    struct pn_prev prev;        /* the last poll, whole (poll_diff.c) */
    struct pn_vec listing;      /* its namespaces (struct pn_listed_ns) */
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

void pn_prev_free(struct pn_prev *p)
{
    free(p->socks);
    free(p->owners);
    free(p->strings);
    memset(p, 0, sizeof *p);
}

struct pn_prev *pn_cache_prev(struct pn_cache *c)
{
    return &c->prev;
}

struct pn_vec *pn_cache_listing(struct pn_cache *c)
{
    return &c->listing;
}

void pn_cache_free(struct pn_cache *c)
{
    if (!c)
        return;
    free_procs(c->procs, c->nprocs);
    free(c->slots);
    pn_prev_free(&c->prev);
    pn_vec_free(&c->listing);
    free(c);
}

int pn_cache_procfs(const struct pn_cache *c)
{
    return c && c->procfs;
}

void pn_cache_bind(struct pn_cache *c, uint64_t dev, uint64_t ino, int procfs)
{
    c->procfs = procfs;
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
    pn_prev_free(&c->prev);
    pn_vec_free(&c->listing);
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

int pn_cache_same(const struct pn_cproc *cp, const struct pn_owners *o, uint64_t start,
                  const uint64_t dir[2], uint32_t task_first, uint32_t ntasks)
{
    /* a directory known both times must be the same one: a reused pid's is not */
    int dir_ok = !cp->dir[1] || !dir[1] || (cp->dir[0] == dir[0] && cp->dir[1] == dir[1]);
    return dir_ok && cp->start == start && start != 0 && cp->ntasks == ntasks && ntasks != 0 &&
           memcmp(cp->tasks, (const struct pn_task *)o->tasks.data + task_first,
                  ntasks * sizeof(struct pn_task)) == 0;
}

int pn_cache_single(const struct pn_cproc *cp, struct pn_task *leader, uint64_t *start,
                    uint64_t dir[2])
{
    if (!cp || !cp->settled || cp->ntasks != 1 || cp->tasks[0].tid != cp->pid || !cp->dir[1])
        return 0;
    *leader = cp->tasks[0];
    *start = cp->start;
    dir[0] = cp->dir[0];
    dir[1] = cp->dir[1];
    return 1;
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
    cp->dir[0] = sn->dir[0];
    cp->dir[1] = sn->dir[1];
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
            procs[n] = *old;
            if (sn->full_check)
                procs[n].settled = 1;      /* same counters, asleep, twice */
            n++;
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

