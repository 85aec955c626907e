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
#include <stdio.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#define PN_PROC_SUPER_MAGIC 0x9fa0     /* linux/magic.h */
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

/* A row that can leave the listing with nothing reported (change tracking
 * lists while one is there): TCP's and MPTCP's SYN_RECV (3), FIN_WAIT2 (5),
 * TIME_WAIT (6), NEW_SYN_RECV (12); any SCTP row (associations come and go
 * with the network). */
static int volatile_row(const struct pn_sock *s)
{
    switch (s->table) {
    case PN_TCP: case PN_TCP6: case PN_MPTCP: case PN_MPTCP6:
        return s->state == 3 || s->state == 5 || s->state == 6 || s->state == 12;
    case PN_SCTP: case PN_SCTP6:
        return 1;
    default:
        return 0;
    }
}

/* Fill owner_first/owner_count for every socket; drop unowned ones if asked.
 * matched (one byte per owner entry, or NULL) marks the entries joined. */
static int join(const struct pn_query *q, struct pn_sink *sink, struct pn_owners *own,
                uint32_t name_base, struct pn_vec *owners, uint8_t *matched, uint32_t *nvolatile)
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
            if (matched)
                matched[k] = 1;
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
        if (volatile_row(&s[i]))
            (*nvolatile)++;
        if (count > 1)
            sort_owners((struct pn_owner *)owners->data + first, count);
        s[i].owner_first = first;
        s[i].owner_count = count;
        s[kept++] = s[i];
    }
    sink->socks.len = kept;
    return 0;
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

/* A snapshot, or a poll's listing (listing: where this poll's namespaces go;
 * PN_Q_CARRY: its rows and the cache's last listing carry what is not listed). */
static int snapshot_run(const struct pn_query *q, struct pn_result *out, struct pn_vec *listing)
{
    struct pn_sink sink = {0};
    struct pn_owners own = {0};
    struct pn_vec owners = {0};
    struct pn_walk *walk = NULL;
    int rootfd = -1, netfd = -1, rc = -1;
    int want_owners = (q->flags & PN_Q_OWNERS) != 0;
    int use_bpf = 0;
    struct bpf_job bpf = { .q = q, .own = &own };
    struct pn_vec unlisted = {0};
    uint8_t *matched = NULL;

    struct pn_carry carry = { .q = q, .listing = listing };
    const struct pn_prev *pv = NULL;

    memset(out, 0, sizeof *out);
    if ((q->source != PN_SRC_PROCFS && q->source != PN_SRC_NETLINK) ||
        (want_owners && q->owner_source == PN_OWN_BPF && !q->bpf) ||
        ((q->flags & PN_Q_CARRY) && (!listing || !q->cache || !want_owners ||
                                     q->owner_source != PN_OWN_PROCFS))) {
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
            struct statfs sf;
            if (fstat(rootfd, &st) < 0)
                goto out;
            /* the short identity check holds on procfs only (proc_ident.c) */
            int procfs = fstatfs(rootfd, &sf) == 0 && sf.f_type == PN_PROC_SUPER_MAGIC;
            pn_cache_bind(q->cache, (uint64_t)st.st_dev, (uint64_t)st.st_ino, procfs);
        }
    }
    if (q->flags & PN_Q_CARRY) {
        /* after the bind: another root or user leaves nothing to carry */
        struct pn_prev *p = pn_cache_prev(q->cache);
        if (p->have && pn_cache_listing(q->cache)->len) {
            pv = p;
            carry.prev_listing = pn_cache_listing(q->cache);
        }
    }
    if (want_owners && !use_bpf && pn_walk_start(rootfd, q, &walk) < 0)
        goto out;
    if (use_bpf && q->threads != 1)
        bpf.started = pthread_create(&bpf.thread, NULL, bpf_main, &bpf) == 0;

    sink.readbuf = malloc(PN_READ_CHUNK + PN_MAX_LINE + 1);
    if (!sink.readbuf)
        goto out;
    if (pn_list_all(&carry, rootfd, netfd, &sink, out) < 0)
        goto out;
    if (pv && (pn_carry_rows(&carry, pv, out, &sink) < 0 || pn_order_rows(q, &sink) < 0))
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
        if (q->cache && out->owner_source == PN_OWN_PROCFS && pn_owners_holders(&own, &out->holders, &out->nholders) < 0)
            goto out;
        if (pn_vec_append_bytes(&sink.strings, own.strings.data, own.strings.len) == (size_t)-1 ||
            sink.strings.len > UINT32_MAX) {
            errno = ENOMEM;
            goto out;
        }
    }
    if (q->classify && want_owners) {
        matched = calloc(own.entries.len ? own.entries.len : 1, 1);
        if (!matched)
            goto out;
    }
    if (join(q, &sink, &own, name_base, &owners, matched, &out->nvolatile) < 0)
        goto out;
    if (matched && pn_classify_unlisted(q, out->netns_status, rootfd, &own, matched, &unlisted) < 0)
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
    out->unlisted = unlisted.data;
    out->nunlisted = unlisted.len;
    sink.socks.data = sink.strings.data = owners.data = own.denied.data = unlisted.data = NULL;
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
        pn_vec_free(&unlisted);
        free(matched);
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
    struct pn_vec listing = {0};
    qc.cache = c;
    if (snapshot_run(&qc, out, &listing) < 0 || pn_cache_diff(c, out, d) < 0) {
        pn_vec_free(&listing);
        return -1;
    }
    /* what the next poll may carry: this one's namespaces, with its rows */
    pn_vec_free(pn_cache_listing(c));
    *pn_cache_listing(c) = listing;
    return 0;
}

int pn_snapshot(const struct pn_query *q, struct pn_result *out)
{
    return snapshot_run(q, out, NULL);
}

void pn_result_free(struct pn_result *r)
{
    free(r->holders);
    free(r->socks);
    free(r->owners);
    free(r->strings);
    free(r->denied_pids);
    free(r->netns_status);
    free(r->unlisted);
    memset(r, 0, sizeof *r);
}
