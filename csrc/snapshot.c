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

/* One table from its text file; -1 only on ENOMEM. */
static int read_text(const struct pn_query *q, int netfd, int t, struct pn_sink *sink,
                     struct pn_ns_tables *o)
{
    o->source[t] = PN_SRC_PROCFS;
    if (netfd < 0) {
        errno = ENOENT;            /* a namespace with no process: no text to fall back to */
    } else if (pn_read_table(netfd, t, q, sink, &o->skipped[t]) == 0) {
        o->status[t] = PN_TABLE_READ;
        return 0;
    }
    if (errno == ENOMEM)
        return -1;
    o->status[t] = netfd < 0 ? PN_TABLE_ERROR : errno == ENOENT ? PN_TABLE_MISSING : PN_TABLE_ERROR;
    o->err[t] = errno;
    return 0;
}

/* Every table asked for in one namespace: from its netlink socket nl where
 * planned and working (nl < 0: nl_errno says why not), else its text (netfd,
 * or -1 when it has none). -1 only on ENOMEM. */
static int read_tables(const struct pn_query *q, uint32_t want, int source, int nl, int nl_errno,
                       uint64_t own_inode, int netfd, struct pn_sink *sink, struct pn_ns_tables *o)
{
    uint32_t seq = 0, done = 0, tcp46 = (1u << PN_TCP) | (1u << PN_TCP6);
    sink->own_inode = own_inode;    /* a text fallback lists our dump socket: leave it out */
    if (source == PN_SRC_NETLINK && nl >= 0 && (want & tcp46) == tcp46 && pn_diag_tcp46_serves(q)) {
        /* tcp and tcp6 from one walk of the TCP hashes; if that dump fails,
         * each is dumped (and, planned so, read from text) on its own below */
        if (pn_diag_table(nl, PN_DIAG_TCP46, q, sink, &o->skipped[PN_TCP], own_inode, &seq) == 0) {
            for (int t = PN_TCP; t <= PN_TCP6; t++) {
                o->status[t] = PN_TABLE_READ;
                o->source[t] = PN_SRC_NETLINK;
            }
            done = (1u << PN_TCP) | (1u << PN_TCP6);
        } else if (errno == ENOMEM) {
            return -1;
        }
    }
    for (int t = 0; t < PN_NTABLES; t++) {
        if (!(want & (1u << t)) || (done & (1u << t)))
            continue;
        if (source == PN_SRC_NETLINK) {
            int r = -1;
            errno = nl_errno;
            if (q->netlink_deny & (1u << t))
                errno = EPERM;
            else if (nl >= 0)
                r = pn_diag_table(nl, t, q, sink, &o->skipped[t], own_inode, &seq);
            if (r == 0) {
                o->status[t] = PN_TABLE_READ;
                o->source[t] = PN_SRC_NETLINK;
                continue;
            }
            if (errno == ENOMEM)
                return -1;
            if (!(q->flags & PN_Q_TEXT_FALLBACK)) {
                o->status[t] = PN_TABLE_ERROR;
                o->err[t] = errno;
                o->source[t] = PN_SRC_NETLINK;
                continue;
            }
            /* this table alone falls back to its text file */
        }
        if (read_text(q, netfd, t, sink, o) < 0)
            return -1;
    }
    return 0;
}

/* A table's status over every namespace: an error anywhere wins, then read. */
static void merge_tables(const struct pn_query *q, const struct pn_ns_tables *o, struct pn_result *out)
{
    for (int t = 0; t < PN_NTABLES; t++) {
        if (!(q->tables & (1u << t)) || !o->status[t])
            continue;
        out->skipped[t] += o->skipped[t];
        out->table_source[t] |= o->source[t];
        if (out->table_status[t] == PN_TABLE_ERROR)
            continue;
        if (o->status[t] == PN_TABLE_ERROR) {
            out->table_status[t] = PN_TABLE_ERROR;
            out->table_errno[t] = o->err[t];
        } else if (o->status[t] == PN_TABLE_READ || !out->table_status[t]) {
            out->table_status[t] = o->status[t];
        }
    }
}

static void stamp(struct pn_sink *sink, size_t from, uint32_t netns)
{
    struct pn_sock *s = sink->socks.data;
    for (size_t i = from; i < sink->socks.len; i++)
        s[i].netns = netns;
}

/* PN_Q_CARRY: what a namespace's listing carries from the last poll. */
struct carry {
    const struct pn_query *q;
    const struct pn_vec *prev_listing;  /* struct pn_listed_ns, or NULL: carry nothing */
    struct pn_vec *listing;             /* this poll's, or NULL (a one-shot snapshot) */
};

/* The last poll's entry for a namespace, if it listed it whole and well
 * (nothing is carried from a namespace it could not list). */
static const struct pn_listed_ns *carried_from(const struct carry *c, uint32_t inode)
{
    if (!c->prev_listing)
        return NULL;
    const struct pn_listed_ns *p = c->prev_listing->data;
    for (size_t i = 0; i < c->prev_listing->len; i++)
        if (p[i].st.inode == inode && p[i].st.source && !p[i].st.error)
            return &p[i];
    return NULL;
}

/* The tables to list afresh in a namespace; the others' statuses come from
 * the last poll (pc: NULL when nothing is carried). */
static uint32_t fresh_tables(const struct pn_query *q, uint32_t fresh, const struct pn_listed_ns *pc,
                             struct pn_ns_tables *o)
{
    if (!pc)
        return q->tables;
    for (int t = 0; t < PN_NTABLES; t++) {
        if ((q->tables & ~fresh) & (1u << t)) {
            o->status[t] = pc->t.status[t];
            o->err[t] = pc->t.err[t];
            o->skipped[t] = pc->t.skipped[t];
            o->source[t] = pc->t.source[t];
        }
    }
    return q->tables & fresh;
}

static int note_listed(const struct carry *c, const struct pn_netns_status *st,
                       const struct pn_ns_tables *o)
{
    if (!c->listing)
        return 0;
    struct pn_listed_ns *l = pn_vec_reserve(c->listing, sizeof *l, 1);
    if (!l)
        return -1;
    l->st = *st;
    l->t = *o;
    c->listing->len++;
    return 0;
}

/* The caller's own namespace (pn_query.netns NULL): netlink from this
 * thread, text from <root>/net. */
static int list_own(const struct carry *c, int netfd, struct pn_sink *sink,
                    struct pn_result *out)
{
    const struct pn_query *q = c->q;
    struct pn_ns_tables o;
    memset(&o, 0, sizeof o);
    uint64_t own_inode = 0;
    int nl = -1, nl_errno = 0, rc = 0;
    size_t from = sink->socks.len;
    uint32_t want = fresh_tables(q, q->own_tables, carried_from(c, q->self_netns), &o);
    if (q->source == PN_SRC_NETLINK && want) {
        nl = pn_diag_open(&own_inode);
        nl_errno = nl < 0 ? errno : 0;
    }
    if (want)
        rc = read_tables(q, want, q->source, nl, nl_errno, own_inode, netfd, sink, &o);
    if (nl >= 0)
        close(nl);
    struct pn_netns_status st = { .inode = q->self_netns, .source = q->source };
    for (int t = 0; t < PN_NTABLES; t++)
        if (o.status[t] == PN_TABLE_READ)
            st.tables_read |= 1u << t;
    if (rc < 0 || note_listed(c, &st, &o) < 0) {
        errno = ENOMEM;
        return -1;
    }
    merge_tables(q, &o, out);
    stamp(sink, from, q->self_netns);
    return 0;
}

/* Is the member whose "PID/net" text we opened still in namespace `inode`?
 * (Its number may have been reused, or it moved, since the plan.) */
static int member_still_in(int rootfd, const char *net_dir, uint32_t inode)
{
    char path[64], link[64];
    size_t n = strlen(net_dir);
    if (n < 4 || n > 40 || strcmp(net_dir + n - 4, "/net") != 0)
        return 1;                          /* the caller's own "net": nothing to check */
    snprintf(path, sizeof path, "%.*s/ns/net", (int)(n - 4), net_dir);
    ssize_t len = readlinkat(rootfd, path, link, sizeof link);
    return len > 0 && (size_t)len < sizeof link && pn_parse_netns_link(link, (size_t)len) == inode;
}

/* One listed namespace: netlink from a socket made inside it, falling back
 * to its text (PID/net) when that cannot be made and the plan allows. */
static int list_netns(const struct carry *c, int rootfd, const struct pn_netns *ns,
                      struct pn_sink *sink, struct pn_result *out, struct pn_netns_status *st)
{
    const struct pn_query *q = c->q;
    struct pn_ns_tables o;
    memset(&o, 0, sizeof o);
    uint64_t own_inode = 0;
    int nl = -1, nl_errno = 0, netfd = -1, source = ns->source, rc;
    size_t from = sink->socks.len;
    const struct pn_listed_ns *pc = carried_from(c, ns->inode);
    /* carried only from a listing by the same source, and a text one only
     * while a member's tables are there to read */
    if (pc && (pc->st.source != ns->source || (ns->source == PN_SRC_PROCFS && !ns->net_dir)))
        pc = NULL;
    uint32_t want = fresh_tables(q, ns->tables, pc, &o);
    st->inode = ns->inode;
    if (!want && pc) {
        /* nothing to list afresh: the namespace is not entered at all */
        *st = pc->st;
        goto done;
    }
    if (source == PN_SRC_PROCFS && !ns->net_dir) {
        st->error = ENOENT;                /* no member process: no text to read */
        return 0;
    }
    if (source == PN_SRC_NETLINK) {
        /* the caller's own namespace needs no entering */
        nl = ns->enter ? pn_netns_diag_open(ns->enter, ns->inode, &own_inode, q->track)
                       : pn_diag_open(&own_inode);
        if (nl < 0) {
            nl_errno = st->error = errno;
            if (!(q->flags & PN_Q_TEXT_FALLBACK) || !ns->net_dir)
                return 0;                  /* unlisted: the caller reads netns_status */
            source = PN_SRC_PROCFS;        /* entering refused (no CAP_SYS_ADMIN): the text */
        }
    }
    if (ns->net_dir) {
        netfd = openat(rootfd, ns->net_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (netfd >= 0 && !member_still_in(rootfd, ns->net_dir, ns->inode)) {
            close(netfd);
            netfd = -1;
            errno = ESTALE;
        }
        if (netfd < 0 && source == PN_SRC_PROCFS) {   /* (then no netlink socket is open) */
            if (errno == ENOMEM)
                return -1;
            st->error = errno;             /* its process left or moved: unlisted */
            return 0;
        }
    }
    rc = read_tables(q, want, source, nl, nl_errno, own_inode, netfd, sink, &o);
    if (nl >= 0)
        close(nl);
    if (netfd >= 0)
        close(netfd);
    if (rc < 0) {
        errno = ENOMEM;
        return -1;
    }
    st->source = source;
    st->tables_read = 0;
    for (int t = 0; t < PN_NTABLES; t++)
        if (o.status[t] == PN_TABLE_READ)
            st->tables_read |= 1u << t;
done:
    if (note_listed(c, st, &o) < 0) {
        errno = ENOMEM;
        return -1;
    }
    merge_tables(q, &o, out);
    stamp(sink, from, ns->inode);
    return 0;
}

/* Every namespace asked for (or the caller's: netfd is <root>/net). -1 on ENOMEM. */
static int list_all(const struct carry *c, int rootfd, int netfd, struct pn_sink *sink,
                    struct pn_result *out)
{
    const struct pn_query *q = c->q;
    if (!q->netns)
        return list_own(c, netfd, sink, out);
    out->netns_status = calloc(q->nnetns ? q->nnetns : 1, sizeof *out->netns_status);
    if (!out->netns_status)
        return -1;
    out->nnetns_status = q->nnetns;
    for (size_t i = 0; i < q->nnetns; i++)
        if (list_netns(c, rootfd, &q->netns[i], sink, out, &out->netns_status[i]) < 0)
            return -1;
    return 0;
}

/* PN_Q_CARRY: put carried rows where a whole listing has them -- by the
 * namespaces' order, then by table (tcp before tcp6...), each (namespace,
 * table) keeping its own order: a stable counting sort. -1 on ENOMEM. */
static int order_rows(const struct pn_query *q, struct pn_sink *sink)
{
    size_t n = sink->socks.len, nns = q->netns ? q->nnetns : 0;
    size_t nkeys = (nns + 1) * PN_NTABLES;
    struct pn_sock *s = sink->socks.data;
    uint32_t *key = malloc((n ? n : 1) * sizeof *key);
    size_t *start = calloc(nkeys + 1, sizeof *start);
    struct pn_sock *out = malloc((n ? n : 1) * sizeof *out);
    if (!key || !start || !out) {
        free(key);
        free(start);
        free(out);
        return -1;
    }
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        if (q->netns && (ns >= nns || q->netns[ns].inode != s[i].netns)) {
            for (ns = 0; ns < nns && q->netns[ns].inode != s[i].netns; ns++)
                ;                       /* rows come grouped: rarely searched */
        }
        key[i] = (uint32_t)((q->netns ? ns : 0) * PN_NTABLES + s[i].table % PN_NTABLES);
        start[key[i] + 1]++;
    }
    for (size_t k = 0; k < nkeys; k++)
        start[k + 1] += start[k];
    for (size_t i = 0; i < n; i++)
        out[start[key[i]]++] = s[i];
    free(sink->socks.data);
    sink->socks.data = out;
    sink->socks.cap = n ? n : 1;
    free(key);
    free(start);
    return 0;
}

/* PN_Q_CARRY: the last poll's rows of every (namespace, table) this poll
 * did not list afresh, appended as they were (owners are joined again). */
static int carry_rows(const struct carry *c, const struct pn_prev *pv, const struct pn_result *out,
                      struct pn_sink *sink)
{
    const struct pn_query *q = c->q;
    size_t nns = q->netns ? q->nnetns : 1;
    uint32_t last_inode = 0, last_mask = 0;
    int have_last = 0;
    for (size_t j = 0; j < pv->nsocks; j++) {
        const struct pn_sock *p = &pv->socks[j];
        if (!have_last || p->netns != last_inode) {
            /* rows come grouped by namespace: one lookup per group */
            last_inode = p->netns;
            last_mask = 0;
            have_last = 1;
            for (size_t i = 0; i < nns; i++) {
                int own = !q->netns;
                if (!own && q->netns[i].inode != p->netns)
                    continue;
                /* (not from a namespace this poll could not list, or listed
                 * whole: list_netns decides, and says so in its status) */
                const struct pn_listed_ns *pc = carried_from(c, own ? q->self_netns : p->netns);
                if (pc && (own || (out->netns_status[i].source == pc->st.source &&
                                   !out->netns_status[i].error &&
                                   (pc->st.source != PN_SRC_PROCFS || q->netns[i].net_dir))))
                    last_mask = q->tables & ~(own ? q->own_tables : q->netns[i].tables);
                break;
            }
        }
        if (!(last_mask & (1u << p->table)))
            continue;
        struct pn_sock *s = pn_vec_reserve(&sink->socks, sizeof *s, 1);
        if (!s)
            return -1;
        *s = *p;
        s->owner_first = s->owner_count = 0;
        if (p->table == PN_UNIX && p->ext_len) {
            size_t off = pn_vec_append_bytes(&sink->strings, pv->strings + p->ext, p->ext_len);
            if (off == (size_t)-1 || off > UINT32_MAX)
                return -1;
            s->ext = (uint32_t)off;
        }
        sink->socks.len++;
    }
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

    struct carry carry = { .q = q, .listing = listing };
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
            if (fstat(rootfd, &st) < 0)
                goto out;
            pn_cache_bind(q->cache, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
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
    if (list_all(&carry, rootfd, netfd, &sink, out) < 0)
        goto out;
    if (pv && (carry_rows(&carry, pv, out, &sink) < 0 || order_rows(q, &sink) < 0))
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
