/*
 * snapshot.c -- one snapshot: socket tables -> owner walk -> join -> result.
 *
 * The owner walk starts first on worker threads, the caller's thread reads
 * the socket tables meanwhile, then helps finish the walk; the join runs once
 * both are done and writes the three flat arrays Python unpacks in bulk.
 */
#include "pn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PN_VERSION
#define PN_VERSION "0+unknown"
#endif

const char *pn_version(void) { return PN_VERSION; }
int pn_abi_version(void) { return PN_ABI_VERSION; }

static int cmp_owner(const void *a, const void *b)
{
    const struct pn_owner *x = a, *y = b;
    if (x->pid != y->pid)
        return (x->pid > y->pid) - (x->pid < y->pid);
    return (x->fd > y->fd) - (x->fd < y->fd);
}

static void sort_owners(struct pn_owner *o, size_t n)
{
    if (n > 16) {
        qsort(o, n, sizeof *o, cmp_owner);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        struct pn_owner t = o[i];
        size_t j = i;
        while (j > 0 && cmp_owner(&o[j - 1], &t) > 0) {
            o[j] = o[j - 1];
            j--;
        }
        o[j] = t;
    }
}

/* Fill owner_first/owner_count for every socket; drop unowned ones if asked. */
static int join(const struct pn_query *q, struct pn_sink *sink, struct pn_owners *own,
                uint32_t name_base, struct pn_vec *owners)
{
    struct pn_sock *s = sink->socks.data;
    const struct pn_fd_entry *e = own->entries.data;
    const struct pn_proc_info *procs = own->procs.data;
    size_t kept = 0;
    for (size_t i = 0; i < sink->socks.len; i++) {
        uint32_t first = (uint32_t)owners->len, count = 0;
        /* inode 0 (TIME_WAIT, SYN_RECV) can never have an owner */
        uint32_t k = s[i].inode ? pn_owners_first(own, s[i].inode) : UINT32_MAX;
        for (; k != UINT32_MAX; k = e[k].next) {
            struct pn_owner *o = pn_vec_reserve(owners, sizeof *o, 1);
            if (!o)
                return -1;
            const struct pn_proc_info *pi = &procs[e[k].proc];
            o->pid = e[k].pid;
            o->fd = e[k].fd;
            o->name_off = pi->name_off + name_base;
            o->name_len = pi->name_len;
            o->flags = pi->flags;
            o->reserved = 0;
            owners->len++;
            count++;
        }
        if (count == 0 && (q->flags & PN_Q_OWNED_ONLY))
            continue;
        if (count > 1)
            sort_owners((struct pn_owner *)owners->data + first, count);
        s[i].owner_first = first;
        s[i].owner_count = count;
        s[kept++] = s[i];
    }
    sink->socks.len = kept;
    return 0;
}

/* One table from its text file; -1 only on ENOMEM. */
static int read_text(const struct pn_query *q, int netfd, int t, struct pn_sink *sink,
                     struct pn_result *out)
{
    out->table_source[t] = PN_SRC_PROCFS;
    out->skipped[t] = 0;
    if (pn_read_table(netfd, t, q, sink, &out->skipped[t]) == 0) {
        out->table_status[t] = PN_TABLE_READ;
    } else if (errno == ENOENT) {
        out->table_status[t] = PN_TABLE_MISSING;
    } else if (errno == ENOMEM) {
        return -1;
    } else {
        out->table_status[t] = PN_TABLE_ERROR;
        out->table_errno[t] = errno;
    }
    return 0;
}

/* Every table asked for, from netlink where asked and working, else text. */
static int read_tables(const struct pn_query *q, int netfd, struct pn_sink *sink,
                       struct pn_result *out)
{
    int nl = -1, nl_errno = 0;
    uint64_t own_inode = 0;
    uint32_t seq = 0;
    int source = q->source;
    if (source != PN_SRC_PROCFS) {
        nl = pn_diag_open(&own_inode);
        nl_errno = nl < 0 ? errno : 0;
    }
    for (int t = 0; t < PN_NTABLES; t++) {
        if (!(q->tables & (1u << t)))
            continue;
        if (source != PN_SRC_PROCFS) {
            int r = -1;
            errno = nl_errno;
            if (q->netlink_deny & (1u << t))
                errno = EPERM;
            else if (nl >= 0)
                r = pn_diag_table(nl, t, q, sink, &out->skipped[t], own_inode, &seq);
            if (r == 0) {
                out->table_status[t] = PN_TABLE_READ;
                out->table_source[t] = PN_SRC_NETLINK;
                continue;
            }
            if (errno == ENOMEM)
                goto fail;
            if (!(q->flags & PN_Q_TEXT_FALLBACK)) {
                out->table_status[t] = PN_TABLE_ERROR;
                out->table_errno[t] = errno;
                out->table_source[t] = PN_SRC_NETLINK;
                continue;
            }
            /* this table alone falls back to its text file */
        }
        if (read_text(q, netfd, t, sink, out) < 0)
            goto fail;
    }
    if (nl >= 0)
        close(nl);
    return 0;
fail:
    if (nl >= 0)
        close(nl);
    errno = ENOMEM;
    return -1;
}

/* The BPF scan on a thread of its own while the caller reads the tables
 * (both are mostly kernel time, so two cores halve the wait). */
struct bpf_job {
    const struct pn_query *q;
    struct pn_owners *own;
    pthread_t thread;
    int started;
    int rc;
    int err;
};

static void *bpf_main(void *arg)
{
    struct bpf_job *j = arg;
    j->rc = pn_bpf_scan(j->q->bpf, j->q, j->own);
    j->err = j->rc < 0 ? errno : 0;
    return NULL;
}

/* Join the scan (or run it here if no thread could start); its rc, errno set. */
static int bpf_finish(struct bpf_job *j)
{
    if (j->started)
        pthread_join(j->thread, NULL);
    else
        bpf_main(j);
    j->started = 0;
    errno = j->err;
    return j->rc;
}

int pn_snapshot(const struct pn_query *q, struct pn_result *out)
{
    struct pn_sink sink = {0};
    struct pn_owners own = {0};
    struct pn_vec owners = {0};
    struct pn_walk *walk = NULL;
    int rootfd = -1, netfd = -1, rc = -1;
    int want_owners = (q->flags & PN_Q_OWNERS) != 0;
    int use_bpf = 0;
    struct bpf_job bpf = { .q = q, .own = &own };

    memset(out, 0, sizeof *out);
    if ((q->source != PN_SRC_PROCFS && q->source != PN_SRC_NETLINK) ||
        (want_owners && q->owner_source == PN_OWN_BPF && !q->bpf)) {
        errno = EINVAL;                 /* the caller plans; an unplanned query is a bug */
        goto out;
    }
    rootfd = open(q->proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        goto out;
    netfd = openat(rootfd, "net", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (netfd < 0)
        goto out;
    if (want_owners) {
        use_bpf = q->owner_source == PN_OWN_BPF;
        out->owner_source = use_bpf ? PN_OWN_BPF : PN_OWN_PROCFS;
        if (q->cache && !use_bpf) {
            struct stat st;
            if (fstat(rootfd, &st) < 0)
                goto out;
            pn_cache_bind(q->cache, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
        }
    }
    if (want_owners && !use_bpf && pn_walk_start(rootfd, q, &walk) < 0)
        goto out;
    if (use_bpf && q->threads != 1)
        bpf.started = pthread_create(&bpf.thread, NULL, bpf_main, &bpf) == 0;

    sink.readbuf = malloc(PN_READ_CHUNK + PN_MAX_LINE + 1);
    if (!sink.readbuf)
        goto out;
    if (read_tables(q, netfd, &sink, out) < 0)
        goto out;
    free(sink.readbuf);
    sink.readbuf = NULL;

    uint32_t name_base = (uint32_t)sink.strings.len;
    if (walk || use_bpf) {
        int r;
        if (use_bpf) {
            r = bpf_finish(&bpf);
            if (r < 0 && errno != ENOMEM && (q->flags & PN_Q_WALK_FALLBACK)) {
                /* a scan that fails gives way to the walk, recorded */
                out->owner_source = PN_OWN_PROCFS;
                r = pn_walk_start(rootfd, q, &walk);
                if (r == 0) {
                    r = pn_walk_finish(walk, &own);
                    walk = NULL;
                }
            }
        } else {
            r = pn_walk_finish(walk, &own);
            walk = NULL;
            if (r == 0 && q->cache && pn_cache_update(q->cache, &own, q->pids != NULL) < 0)
                r = -1;
        }
        if (r < 0 || pn_owners_index(&own) < 0)
            goto out;
        if (pn_vec_append_bytes(&sink.strings, own.strings.data, own.strings.len) == (size_t)-1 ||
            sink.strings.len > UINT32_MAX) {
            errno = ENOMEM;
            goto out;
        }
    }
    if (join(q, &sink, &own, name_base, &owners) < 0)
        goto out;

    out->socks = sink.socks.data;
    out->nsocks = sink.socks.len;
    out->owners = owners.data;
    out->nowners = owners.len;
    out->strings = sink.strings.data;
    out->strings_len = sink.strings.len;
    out->denied_pids = own.denied.data;
    out->ndenied = own.denied.len;
    out->nprocs = own.nprocs;
    out->procs_cached = own.nreused;
    out->fds_read = own.nreadlink > UINT32_MAX ? UINT32_MAX : (uint32_t)own.nreadlink;
    sink.socks.data = sink.strings.data = owners.data = own.denied.data = NULL;
    rc = 0;
out:
    {
        int e = errno;
        if (bpf.started)
            bpf_finish(&bpf);          /* its result goes with own, freed below */
        if (walk) {
            struct pn_owners discard;
            if (pn_walk_finish(walk, &discard) == 0)
                pn_owners_free(&discard);
        }
        free(sink.readbuf);
        pn_vec_free(&sink.socks);
        pn_vec_free(&sink.strings);
        pn_vec_free(&owners);
        pn_owners_free(&own);
        if (netfd >= 0)
            close(netfd);
        if (rootfd >= 0)
            close(rootfd);
        errno = e;
    }
    return rc;
}

int pn_poll(const struct pn_query *q, struct pn_cache *c, struct pn_result *out,
            struct pn_delta *d)
{
    memset(d, 0, sizeof *d);
    if (!c) {
        memset(out, 0, sizeof *out);
        errno = EINVAL;
        return -1;
    }
    struct pn_query qc = *q;
    qc.cache = c;
    if (pn_snapshot(&qc, out) < 0)
        return -1;
    return pn_cache_diff(c, out, d);
}

void pn_result_free(struct pn_result *r)
{
    free(r->socks);
    free(r->owners);
    free(r->strings);
    free(r->denied_pids);
    memset(r, 0, sizeof *r);
}
