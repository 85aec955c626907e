/*
 * proc_ident.c -- what the owner cache knows a process by (see cache.c):
 * its start time and, per thread, the run counters of schedstat.
 *
 * Counters are read before the state: a thread found asleep after its
 * counters were read can run again only by being switched in, which moves
 * pcount; a thread found running may run on with counters that lag (the
 * runtime is brought up to date only at a tick or a switch), so a process
 * with one is never trusted. Anything unreadable or odd: not trusted either
 * (the process is then walked, which is always exact).
 *
 * The short check, on procfs only: a settled single-threaded process --
 * found asleep with the same counters by two whole reads in a row -- whose
 * counters still have not moved and whose <root>/PID directory is the same
 * inode is that process, unchanged: its stat is not read (the costly read:
 * the kernel computes every field of it). The directory says the pid was not
 * reused: procfs gives a new process's directory a new inode (the old dentry
 * no longer revalidates once its process is gone; another filesystem may
 * hand a freed inode straight back). Settled, because one read may see a
 * thread asleep that is still on its CPU (state set, schedule() not yet
 * called): woken then, it runs on without a switch and with a runtime that
 * lags, so unchanged counters alone do not say it did not run; a second
 * whole read finds it running ('R') or its counters moved. The directory is
 * looked at after the counters, so a pid reused in between shows there.
 */
#include "pn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* "<runtime> <run_delay> <pcount>\n" -> task; 0 when absent, odd or all zero
 * (the kernel prints "0 0 0" when it keeps no schedstats). */
static int read_schedstat(int dirfd, const char *path, struct pn_task *t)
{
    char buf[96];
    ssize_t n = pn_read_small(dirfd, path, buf, sizeof buf);
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
    ssize_t n = pn_read_small(dirfd, path, buf, sizeof buf);
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

/* <root>/PID's (dev, inode), or zeros. */
static void read_dir(int rootfd, int32_t pid, uint64_t dir[2])
{
    char path[16];
    struct stat st;
    snprintf(path, sizeof path, "%d", (int)pid);
    dir[0] = dir[1] = 0;
    if (fstatat(rootfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
        dir[0] = (uint64_t)st.st_dev;
        dir[1] = (uint64_t)st.st_ino;
    }
}

int pn_proc_ident(int rootfd, int32_t pid, const struct pn_cproc *cp, struct pn_owners *o,
                  uint64_t *start, uint32_t *ntasks, uint64_t dir[2], int *short_check)
{
    char path[32], state = 0;
    uint64_t threads = 0, threads2 = 0, start2 = 0, was_start, was_dir[2];
    size_t first = o->tasks.len;
    struct pn_task leader, was;
    *start = 0;
    *ntasks = 0;
    *short_check = 0;
    /* the leader's counters before its state (see read_thread) */
    snprintf(path, sizeof path, "%d/schedstat", (int)pid);
    int have_leader = read_schedstat(rootfd, path, &leader);
    leader.tid = pid;
    read_dir(rootfd, pid, dir);
    if (have_leader && dir[1] && pn_cache_single(cp, &was, &was_start, was_dir) &&
        was.runtime == leader.runtime && was.pcount == leader.pcount &&
        was_dir[0] == dir[0] && was_dir[1] == dir[1]) {
        /* the short check (see the top) */
        struct pn_task *t = pn_vec_reserve(&o->tasks, sizeof *t, 1);
        if (!t)
            return -1;
        *t = leader;
        o->tasks.len++;
        *start = was_start;
        *ntasks = 1;
        *short_check = 1;
        return 1;
    }
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

