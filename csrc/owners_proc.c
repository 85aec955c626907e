/*
 * owners_proc.c -- find socket owners by walking <root>/PID/fd/.
 *
 * For each numeric directory of <root>: open PID/fd relative to the root
 * directory fd, list it with getdents64, readlinkat() every entry relative to
 * that directory fd and keep the "socket:[N]" ones as (inode, pid, fd).
 * A process's comm is read once, when its first socket fd is seen.
 *
 * The walk is shared between worker threads and the caller: pids are handed
 * out by an atomic counter in small batches, each worker fills its own
 * vectors (no locks on the hot path), and pn_walk_finish() merges them.
 * Races are normal: a process or fd that vanishes mid-walk is skipped.
 */
#include "pn_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#define PN_MAX_THREADS 4
#define PN_DENTS_BUF   (32 * 1024)
#define PN_BATCH       4          /* pids taken per atomic increment */

/* A decimal directory name ("812", "3"); anything else is not ours. */
static int parse_num(const char *s, int32_t *out)
{
    uint32_t v = 0;
    if (!*s || (s[0] == '0' && s[1]))   /* "010" is no name /proc gives: not pid 10 again */
        return 0;
    for (; *s; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (d > 9 || v > (0x7fffffffu - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = (int32_t)v;
    return 1;
}

int pn_parse_socket_link(const char *s, size_t len, uint64_t *inode)
{
    /* "socket:[" digits "]" and nothing else */
    static const char prefix[] = "socket:[";
    const size_t plen = sizeof prefix - 1;
    uint64_t v = 0;
    size_t i;
    if (len < plen + 2 || memcmp(s, prefix, plen) != 0 || s[len - 1] != ']')
        return 0;
    for (i = plen; i < len - 1; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *inode = v;
    return 1;
}

/* Per-thread results, merged at the end. */
struct pn_worker {
    struct pn_walk *walk;
    struct pn_owners part;
    pthread_t thread;
    int started;
    int failed;      /* errno of a fatal error (ENOMEM), else 0 */
};

struct pn_walk {
    int rootfd;
    const struct pn_query *q;
    const struct pn_cache *cache;   /* read-only during the walk; NULL: walk everything */
    int32_t *pids;                  /* numeric entries of the root */
    size_t npids;
    atomic_size_t next;
    int nworkers;
    struct pn_worker workers[PN_MAX_THREADS];
};

static int sorted_has(const int32_t *v, size_t n, int32_t pid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] == pid)
            return 1;
        if (v[mid] < pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

int pn_pid_wanted(const struct pn_query *q, int32_t pid)
{
    return !q->pids || sorted_has(q->pids, q->npids, pid);
}

int pn_recheck_has(const struct pn_query *q, int32_t pid)
{
    return q->recheck && sorted_has(q->recheck, q->nrecheck, pid);
}

/* Read PID/comm into part->strings; the trailing newline is not part of it. */
static int read_comm(int rootfd, int32_t pid, struct pn_owners *part, struct pn_proc_info *pi)
{
    char path[32], name[64];
    snprintf(path, sizeof path, "%d/comm", (int)pid);
    ssize_t n = pn_read_small(rootfd, path, name, sizeof name);
    if (n < 0) {
        /* gone, unreadable, or no regular file: the owner stays */
        pi->flags = PN_SF_NO_NAME;
        return 0;
    }
    if (n > 0 && name[n - 1] == '\n')
        n--;
    size_t off = pn_vec_append_bytes(&part->strings, name, (size_t)n);
    if (off == (size_t)-1)
        return -1;
    pi->name_off = (uint32_t)off;
    pi->name_len = (uint32_t)n;
    return 0;
}

static int add_denied(struct pn_owners *part, int32_t pid)
{
    int32_t *d = pn_vec_reserve(&part->denied, sizeof *d, 1);
    if (!d)
        return -1;
    *d = pid;
    part->denied.len++;
    return 0;
}

/* With a cache: note the process's identity, and replay its cached fds if
 * none of its threads ran since the last poll (it cannot have changed its fd
 * table then). 1 = served from the cache, 0 = walk it, -1 = ENOMEM.
 * The identity is read before the fd walk, so a change during the walk shows
 * at the next poll as a changed identity. */
static int try_cache(struct pn_walk *w, struct pn_owners *part, int32_t pid, size_t *seen_idx)
{
    uint64_t start, dir[2] = {0, 0};
    uint32_t ntasks, task_first = (uint32_t)part->tasks.len;
    int short_check = 0;
    const struct pn_cproc *cp = pn_cache_find(w->cache, pid);
    /* PN_Q_CARRY: the kernel recorded no change to the fds of a process
     * outside `recheck`: its cached fds stand without reading its identity */
    int trusted = cp && (w->q->flags & PN_Q_CARRY) && !pn_recheck_has(w->q, pid);
    if (trusted) {
        start = 0;
        ntasks = 0;
    } else if (pn_proc_ident(w->rootfd, pid, pn_cache_procfs(w->cache) ? cp : NULL, part, &start,
                             &ntasks, dir, &short_check) < 0) {
        return -1;
    }
    struct pn_seen *sn = pn_vec_reserve(&part->seen, sizeof *sn, 1);
    if (!sn)
        return -1;
    memset(sn, 0, sizeof *sn);
    sn->pid = pid;
    sn->status = PN_SEEN_WALKED;
    sn->start = start;
    sn->dir[0] = dir[0];
    sn->dir[1] = dir[1];
    sn->task_first = task_first;
    sn->ntasks = ntasks;
    sn->ent_first = (uint32_t)part->entries.len;
    sn->proc = UINT32_MAX;
    *seen_idx = part->seen.len++;
    if (!trusted && (!cp || !ntasks || !pn_cache_same(cp, part, start, dir, task_first, ntasks)))
        return 0;
    uint32_t proc_idx;
    if (pn_cache_replay(cp, part, &proc_idx) < 0)
        return -1;
    sn = (struct pn_seen *)part->seen.data + *seen_idx;
    sn->status = PN_SEEN_REUSED;
    sn->full_check = !trusted && !short_check;
    sn->ent_count = (uint32_t)part->entries.len - sn->ent_first;
    sn->proc = proc_idx;
    part->nreused++;
    part->nprocs++;
    return 1;
}

/* Walk one process; -1 only on ENOMEM. */
static int walk_pid(struct pn_walk *w, struct pn_owners *part, int32_t pid, char *dents)
{
    char path[32], target[64];
    size_t seen_idx = (size_t)-1;
    if (w->cache) {
        int r = try_cache(w, part, pid, &seen_idx);
        if (r != 0)
            return r < 0 ? -1 : 0;
    }
    snprintf(path, sizeof path, "%d/fd", (int)pid);
    int dfd = openat(w->rootfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dfd < 0) {
        if (seen_idx != (size_t)-1)
            ((struct pn_seen *)part->seen.data)[seen_idx].status = PN_SEEN_DROP;
        if (errno == ENOENT || errno == ESRCH)
            return 0;                  /* exited, or a kernel thread's leftovers */
        return add_denied(part, pid);  /* EACCES, hidepid, ENOTDIR, EMFILE...: incomplete */
    }
    part->nprocs++;
    int32_t proc_idx = -1;
    int rc = 0;
    int denied = 0;
    for (;;) {
        long n = pn_getdents64(dfd, dents, PN_DENTS_BUF);
        if (n <= 0) {
            if (n < 0 && errno != ENOENT && errno != ESRCH) {
                rc = add_denied(part, pid);   /* listing failed part-way */
                denied = 1;
            }
            break;
        }
        for (long off = 0; off < n;) {
            struct pn_dirent64 *d = (struct pn_dirent64 *)(dents + off);
            off += d->d_reclen;
            int32_t fdnum;
            if (!parse_num(d->d_name, &fdnum))
                continue;                    /* "." and ".." */
            part->nreadlink++;
            ssize_t len = readlinkat(dfd, d->d_name, target, sizeof target);
            uint64_t inode;
            if (len < 0 && (errno == EACCES || errno == EPERM)) {
                /* listable but not readable (an LSM, a process out of reach):
                 * what its fds hold is unknown, and the result must say so;
                 * the other links would be refused alike */
                rc = add_denied(part, pid);
                denied = 1;
                goto out;
            }
            if (len <= 0 || (size_t)len >= sizeof target ||
                !pn_parse_socket_link(target, (size_t)len, &inode))
                continue;                    /* closed meanwhile, or not a socket */
            if (proc_idx < 0) {
                struct pn_proc_info *pi = pn_vec_reserve(&part->procs, sizeof *pi, 1);
                if (!pi) { rc = -1; goto out; }
                memset(pi, 0, sizeof *pi);
                pi->pid = pid;
                if (read_comm(w->rootfd, pid, part, pi) < 0) { rc = -1; goto out; }
                proc_idx = (int32_t)part->procs.len++;
            }
            struct pn_fd_entry *e = pn_vec_reserve(&part->entries, sizeof *e, 1);
            if (!e) { rc = -1; goto out; }
            e->inode = inode;
            e->pid = pid;
            e->fd = fdnum;
            e->proc = (uint32_t)proc_idx;
            e->next = UINT32_MAX;
            part->entries.len++;
        }
    }
out:
    close(dfd);
    if (seen_idx != (size_t)-1 && rc == 0) {
        struct pn_seen *sn = (struct pn_seen *)part->seen.data + seen_idx;
        /* a listing that failed part-way is not a table worth remembering */
        sn->status = denied ? PN_SEEN_DROP : PN_SEEN_WALKED;
        sn->ent_count = (uint32_t)part->entries.len - sn->ent_first;
        sn->proc = proc_idx < 0 ? UINT32_MAX : (uint32_t)proc_idx;
    }
    return rc;
}

static void *worker_main(void *arg)
{
    struct pn_worker *wk = arg;
    struct pn_walk *w = wk->walk;
    char *dents = malloc(PN_DENTS_BUF);
    if (!dents) {
        wk->failed = ENOMEM;
        return NULL;
    }
    for (;;) {
        size_t i = atomic_fetch_add(&w->next, PN_BATCH);
        if (i >= w->npids)
            break;
        size_t stop = i + PN_BATCH < w->npids ? i + PN_BATCH : w->npids;
        for (; i < stop; i++) {
            if (walk_pid(w, &wk->part, w->pids[i], dents) < 0) {
                wk->failed = ENOMEM;
                atomic_store(&w->next, w->npids);   /* stop the others too */
                break;
            }
        }
    }
    free(dents);
    return NULL;
}

/* List the numeric entries of the root directory. */
static int list_pids(struct pn_walk *w)
{
    struct pn_vec pids = {0};
    char *dents = malloc(PN_DENTS_BUF);
    int dirfd = openat(w->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = -1;
    if (!dents || dirfd < 0)
        goto out;
    for (;;) {
        long n = pn_getdents64(dirfd, dents, PN_DENTS_BUF);
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        for (long off = 0; off < n;) {
            struct pn_dirent64 *d = (struct pn_dirent64 *)(dents + off);
            off += d->d_reclen;
            int32_t pid;
            /* a symlinked "pid" in a fixture tree would lead out of the root */
            if (d->d_type != DT_DIR && d->d_type != DT_UNKNOWN)
                continue;
            if (!parse_num(d->d_name, &pid) || pid == 0 || !pn_pid_wanted(w->q, pid))
                continue;
            int32_t *slot = pn_vec_reserve(&pids, sizeof *slot, 1);
            if (!slot)
                goto out;
            *slot = pid;
            pids.len++;
        }
    }
    w->pids = pids.data;
    w->npids = pids.len;
    pids.data = NULL;
    rc = 0;
out:
    {
        int e = errno;
        pn_vec_free(&pids);
        free(dents);
        if (dirfd >= 0)
            close(dirfd);
        errno = e;
    }
    return rc;
}

static int auto_threads(size_t npids)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int t = cpus > 0 ? (int)cpus : 1;
    /* below a few dozen processes a thread costs more than it saves */
    int useful = (int)(npids / 32) + 1;
    if (t > useful) t = useful;
    if (t > PN_MAX_THREADS) t = PN_MAX_THREADS;
    return t;
}

int pn_walk_start(int rootfd, const struct pn_query *q, struct pn_walk **out)
{
    struct pn_walk *w = calloc(1, sizeof *w);
    *out = NULL;
    if (!w)
        return -1;
    w->rootfd = rootfd;
    w->q = q;
    w->cache = q->cache;
    atomic_init(&w->next, 0);
    if (list_pids(w) < 0) {
        int e = errno;
        free(w);
        errno = e;
        return -1;
    }
    int t = q->threads > 0 ? q->threads : auto_threads(w->npids);
    if (t > PN_MAX_THREADS)
        t = PN_MAX_THREADS;
    w->nworkers = t;
    for (int i = 0; i < t; i++)
        w->workers[i].walk = w;
    /* worker 0 is the caller's thread, in pn_walk_finish */
    for (int i = 1; i < t; i++) {
        if (pthread_create(&w->workers[i].thread, NULL, worker_main, &w->workers[i]) == 0)
            w->workers[i].started = 1;
        /* if a thread cannot start, the others simply take its share */
    }
    *out = w;
    return 0;
}

/* Append src's vectors to dst, re-basing the indices that point into them. */
static int merge_part(struct pn_owners *dst, struct pn_owners *src)
{
    uint32_t proc_base = (uint32_t)dst->procs.len, str_base = (uint32_t)dst->strings.len;
    uint32_t ent_base = (uint32_t)dst->entries.len, task_base = (uint32_t)dst->tasks.len;
    if (!pn_vec_reserve(&dst->entries, sizeof(struct pn_fd_entry), src->entries.len) ||
        !pn_vec_reserve(&dst->procs, sizeof(struct pn_proc_info), src->procs.len) ||
        !pn_vec_reserve(&dst->denied, sizeof(int32_t), src->denied.len) ||
        !pn_vec_reserve(&dst->seen, sizeof(struct pn_seen), src->seen.len) ||
        !pn_vec_reserve(&dst->tasks, sizeof(struct pn_task), src->tasks.len) ||
        pn_vec_append_bytes(&dst->strings, src->strings.data, src->strings.len) == (size_t)-1)
        return -1;
    struct pn_seen *sn = (struct pn_seen *)dst->seen.data + dst->seen.len;
    pn_copy(sn, src->seen.data, src->seen.len * sizeof *sn);
    for (size_t i = 0; i < src->seen.len; i++) {
        sn[i].ent_first += ent_base;
        sn[i].task_first += task_base;
        if (sn[i].proc != UINT32_MAX)
            sn[i].proc += proc_base;
    }
    dst->seen.len += src->seen.len;
    pn_copy((struct pn_task *)dst->tasks.data + dst->tasks.len, src->tasks.data,
            src->tasks.len * sizeof(struct pn_task));
    dst->tasks.len += src->tasks.len;
    dst->nreused += src->nreused;
    dst->nreadlink += src->nreadlink;
    struct pn_fd_entry *e = (struct pn_fd_entry *)dst->entries.data + dst->entries.len;
    pn_copy(e, src->entries.data, src->entries.len * sizeof *e);
    for (size_t i = 0; i < src->entries.len; i++)
        e[i].proc += proc_base;
    dst->entries.len += src->entries.len;
    struct pn_proc_info *p = (struct pn_proc_info *)dst->procs.data + dst->procs.len;
    pn_copy(p, src->procs.data, src->procs.len * sizeof *p);
    for (size_t i = 0; i < src->procs.len; i++)
        p[i].name_off += str_base;
    dst->procs.len += src->procs.len;
    pn_copy((int32_t *)dst->denied.data + dst->denied.len, src->denied.data,
           src->denied.len * sizeof(int32_t));
    dst->denied.len += src->denied.len;
    dst->nprocs += src->nprocs;
    return 0;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int pn_walk_finish(struct pn_walk *w, struct pn_owners *o)
{
    int failed = 0;
    worker_main(&w->workers[0]);
    for (int i = 1; i < w->nworkers; i++)
        if (w->workers[i].started)
            pthread_join(w->workers[i].thread, NULL);
    memset(o, 0, sizeof *o);
    for (int i = 0; i < w->nworkers; i++) {
        struct pn_worker *wk = &w->workers[i];
        if (wk->failed || (!failed && merge_part(o, &wk->part) < 0))
            failed = 1;
        pn_owners_free(&wk->part);
    }
    free(w->pids);
    free(w);
    if (failed) {
        pn_owners_free(o);
        errno = ENOMEM;
        return -1;
    }
    if (o->denied.len > 1)
        qsort(o->denied.data, o->denied.len, sizeof(int32_t), cmp_i32);
    return 0;
}
