/*
 * listing.c -- the socket tables of every namespace a query names (or the
 * caller's): netlink dumps from a socket made inside each, per-table text
 * fallback, how each table went (merged into pn_result), and with PN_Q_CARRY
 * only the tables pn_netns.tables names, the others' statuses taken from the
 * last poll (poll_carry.c carries their rows).
 */
#include "pn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

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

/* What one thread lists a namespace's tables with: its own dump socket
 * (nl < 0: nl_errno says why not) and sequence numbers, the namespace's text
 * (netfd, or -1 when it has none) and the tables' outcomes (o: each table's
 * entries are written by the one thread that lists it). */
struct lister {
    const struct pn_query *q;
    int source, nl, nl_errno, netfd;
    uint64_t own_inode;
    uint32_t seq;
    struct pn_ns_tables *o;
};

/* Table t into sink: from netlink where planned and working, else its text.
 * PN_DIAG_TCP46: tcp and tcp6 from one walk of the TCP hashes; if that dump
 * fails, each is listed on its own. -1 only on ENOMEM. */
static int list_table(struct lister *l, int t, struct pn_sink *sink)
{
    const struct pn_query *q = l->q;
    struct pn_ns_tables *o = l->o;
    sink->own_inode = l->own_inode;  /* a text fallback lists our dump socket: leave it out */
    if (t == PN_DIAG_TCP46) {
        if (pn_diag_table(l->nl, PN_DIAG_TCP46, q, sink, &o->skipped[PN_TCP], l->own_inode,
                          &l->seq) == 0) {
            for (int k = PN_TCP; k <= PN_TCP6; k++) {
                o->status[k] = PN_TABLE_READ;
                o->source[k] = PN_SRC_NETLINK;
            }
            return 0;
        }
        if (errno == ENOMEM)
            return -1;
        return list_table(l, PN_TCP, sink) < 0 || list_table(l, PN_TCP6, sink) < 0 ? -1 : 0;
    }
    if (l->source == PN_SRC_NETLINK) {
        int r = -1;
        errno = l->nl_errno;
        if (q->netlink_deny & (1u << t))
            errno = EPERM;
        else if (l->nl >= 0)
            r = pn_diag_table(l->nl, t, q, sink, &o->skipped[t], l->own_inode, &l->seq);
        if (r == 0) {
            o->status[t] = PN_TABLE_READ;
            o->source[t] = PN_SRC_NETLINK;
            return 0;
        }
        if (errno == ENOMEM)
            return -1;
        if (!(q->flags & PN_Q_TEXT_FALLBACK)) {
            o->status[t] = PN_TABLE_ERROR;
            o->err[t] = errno;
            o->source[t] = PN_SRC_NETLINK;
            return 0;
        }
        /* this table alone falls back to its text file */
    }
    return read_text(q, l->netfd, t, sink, o);
}

/* The tables to list, as jobs in table order (PN_DIAG_TCP46 standing for
 * the pair when one dump serves both); returns how many. */
static int plan_jobs(const struct lister *l, uint32_t want, int *jobs)
{
    uint32_t tcp46 = (1u << PN_TCP) | (1u << PN_TCP6);
    int n = 0;
    if (l->source == PN_SRC_NETLINK && l->nl >= 0 && (want & tcp46) == tcp46 &&
        pn_diag_tcp46_serves(l->q)) {
        jobs[n++] = PN_DIAG_TCP46;
        want &= ~tcp46;
    }
    for (int t = 0; t < PN_NTABLES; t++)
        if (want & (1u << t))
            jobs[n++] = t;
    return n;
}

/* Two threads list one namespace when it is worth a thread: the host's big
 * tables (TCP's hashes, unix) are dumped side by side, each job into a sink
 * of its own, joined in table order after (the rows come as from one
 * thread). The netlink table is listed last, by the caller, once the
 * helper's dump socket is closed: it would be a row of it. */
struct job_run {
    struct lister tmpl;       /* the helper's, before its own socket */
    const int *jobs;          /* table order */
    const int *order;         /* indices into jobs, the costliest first */
    int njobs;
    struct pn_sink *sinks;    /* one per job */
    atomic_int next;
    atomic_int failed;        /* ENOMEM somewhere: stop */
    struct pn_track *track;
    int first_direct;         /* the caller listed jobs[0] into its own sink */
};

/* Costliest first, for the two threads to end together: the TCP hashes
 * (their walk is the largest part of a host's listing), unix, udp. */
static int job_weight(int t)
{
    return t == PN_DIAG_TCP46 || t == PN_TCP || t == PN_TCP6 ? 3 :
           t == PN_UNIX ? 2 : t == PN_UDP || t == PN_UDP6 || t == PN_MPTCP || t == PN_MPTCP6;
}

/* main: the caller's sink (NULL on the helper): the first job in table
 * order, when the caller takes it, goes straight there (no copy of the
 * largest table's rows). */
static int take_jobs(struct job_run *r, struct lister *l, char *readbuf, struct pn_sink *main)
{
    for (;;) {
        int i = atomic_fetch_add(&r->next, 1);
        if (i >= r->njobs || atomic_load(&r->failed))
            return 0;
        int k = r->order[i];
        if (r->jobs[k] == PN_NETLINK)
            continue;                            /* the caller's, after the join */
        struct pn_sink *dst = &r->sinks[k];
        if (k == 0 && main) {
            dst = main;
            r->first_direct = 1;
        }
        dst->readbuf = readbuf;
        if (list_table(l, r->jobs[k], dst) < 0) {
            atomic_store(&r->failed, 1);
            return -1;
        }
    }
}

static void *helper_main(void *arg)
{
    struct job_run *r = arg;
    struct lister l = r->tmpl;
    uint32_t tid = (uint32_t)syscall(SYS_gettid);
    char *readbuf = NULL;
    l.seq = 0;
    /* a tracking poll's listing makes no records: this thread quiets itself
     * for as long as its socket is open */
    if (r->track && pn_track_quiet(r->track, tid, 1) < 0)
        return NULL;                             /* the caller lists it all */
    l.nl = pn_diag_open(&l.own_inode);
    readbuf = malloc(PN_READ_CHUNK + PN_MAX_LINE + 1);
    if (l.nl >= 0 && readbuf)
        take_jobs(r, &l, readbuf, NULL);
    if (l.nl >= 0)
        close(l.nl);
    free(readbuf);
    if (r->track && pn_track_quiet(r->track, tid, 0) < 0)
        atomic_store(&r->failed, 2);   /* its tid would stay unrecorded: fail the listing */
    return NULL;
}

/* Append job sink js to sink: rows, and unix paths re-based. -1 on ENOMEM. */
static int join_sink(struct pn_sink *sink, const struct pn_sink *js)
{
    size_t base = sink->strings.len, n = js->socks.len;
    if (pn_vec_append_bytes(&sink->strings, js->strings.data, js->strings.len) == (size_t)-1 ||
        sink->strings.len > UINT32_MAX)
        return -1;
    struct pn_sock *s = pn_vec_reserve(&sink->socks, sizeof *s, n);
    if (!s)
        return -1;
    pn_copy(s, js->socks.data, n * sizeof *s);
    for (size_t i = 0; i < n; i++)
        if (s[i].table == PN_UNIX && s[i].ext_len)
            s[i].ext += (uint32_t)base;
    sink->socks.len += n;
    return 0;
}

static int list_parallel(struct lister *l, const int *jobs, int njobs, struct pn_sink *sink)
{
    int order[PN_NTABLES + 1], n = 0, rc = -1;
    struct pn_sink sinks[PN_NTABLES + 1];
    memset(sinks, 0, sizeof sinks);
    for (int w = 3; w >= 0; w--)
        for (int k = 0; k < njobs; k++)
            if (job_weight(jobs[k]) == w)
                order[n++] = k;
    struct job_run r = { .tmpl = *l, .jobs = jobs, .order = order, .njobs = njobs,
                         .sinks = sinks, .track = l->q->track };
    atomic_init(&r.next, 0);
    atomic_init(&r.failed, 0);
    pthread_t helper;
    int started = pthread_create(&helper, NULL, helper_main, &r) == 0;
    int mine = take_jobs(&r, l, sink->readbuf, sink);
    if (started)
        pthread_join(helper, NULL);
    if (mine < 0 || atomic_load(&r.failed) == 1) {
        errno = ENOMEM;
        goto out;
    }
    if (atomic_load(&r.failed) == 2) {
        errno = EIO;
        goto out;
    }
    for (int k = r.first_direct; k < njobs; k++) {
        if (jobs[k] == PN_NETLINK) {
            sinks[k].readbuf = sink->readbuf;
            if (list_table(l, PN_NETLINK, &sinks[k]) < 0)
                goto out;
        }
        if (join_sink(sink, &sinks[k]) < 0) {
            errno = ENOMEM;
            goto out;
        }
        pn_vec_free(&sinks[k].socks);            /* a lower peak: each goes once joined */
        pn_vec_free(&sinks[k].strings);
    }
    rc = 0;
out:
    for (int k = 0; k < njobs; k++) {
        pn_vec_free(&sinks[k].socks);
        pn_vec_free(&sinks[k].strings);
    }
    sink->own_inode = l->own_inode;
    return rc;
}

/* CPUs this thread may run on (a process pinned to one gains nothing). */
static int usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Is a second thread worth it: a dump socket of our own namespace (another
 * would need entering), threads allowed, and more than one big table. */
static int worth_a_thread(const struct lister *l, const int *jobs, int njobs)
{
    int big = 0;
    if (l->source != PN_SRC_NETLINK || l->nl < 0 || l->q->threads == 1)
        return 0;
    for (int k = 0; k < njobs; k++)
        big += job_weight(jobs[k]) >= 2;
    return big >= 2 && usable_cpus() > 1;
}

/* Every table asked for in one namespace (see struct lister). own_ns: nl is
 * a socket of the caller's namespace, so a helper thread can open another.
 * -1 on ENOMEM (or, rarely, EIO: see helper_main). */
static int read_tables(const struct pn_query *q, uint32_t want, int source, int nl, int nl_errno,
                       uint64_t own_inode, int netfd, int own_ns, struct pn_sink *sink,
                       struct pn_ns_tables *o)
{
    struct lister l = { .q = q, .source = source, .nl = nl, .nl_errno = nl_errno,
                        .netfd = netfd, .own_inode = own_inode, .o = o };
    int jobs[PN_NTABLES + 1];
    int njobs = plan_jobs(&l, want, jobs);
    if (own_ns && worth_a_thread(&l, jobs, njobs))
        return list_parallel(&l, jobs, njobs, sink);
    for (int k = 0; k < njobs; k++)
        if (list_table(&l, jobs[k], sink) < 0)
            return -1;
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

static int note_listed(const struct pn_carry *c, const struct pn_netns_status *st,
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
static int list_own(const struct pn_carry *c, int netfd, struct pn_sink *sink,
                    struct pn_result *out)
{
    const struct pn_query *q = c->q;
    struct pn_ns_tables o;
    memset(&o, 0, sizeof o);
    uint64_t own_inode = 0;
    int nl = -1, nl_errno = 0, rc = 0;
    size_t from = sink->socks.len;
    uint32_t want = fresh_tables(q, q->own_tables, pn_carried_from(c, q->self_netns), &o);
    if (q->source == PN_SRC_NETLINK && want) {
        nl = pn_diag_open(&own_inode);
        nl_errno = nl < 0 ? errno : 0;
    }
    if (want)
        rc = read_tables(q, want, q->source, nl, nl_errno, own_inode, netfd, 1, sink, &o);
    if (nl >= 0)
        close(nl);
    struct pn_netns_status st = { .inode = q->self_netns, .source = q->source };
    for (int t = 0; t < PN_NTABLES; t++)
        if (o.status[t] == PN_TABLE_READ)
            st.tables_read |= 1u << t;
    if (rc < 0)
        return -1;
    if (note_listed(c, &st, &o) < 0) {
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
static int list_netns(const struct pn_carry *c, int rootfd, const struct pn_netns *ns,
                      struct pn_sink *sink, struct pn_result *out, struct pn_netns_status *st)
{
    const struct pn_query *q = c->q;
    struct pn_ns_tables o;
    memset(&o, 0, sizeof o);
    uint64_t own_inode = 0;
    int nl = -1, nl_errno = 0, netfd = -1, source = ns->source, rc;
    size_t from = sink->socks.len;
    const struct pn_listed_ns *pc = pn_carried_from(c, ns->inode);
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
    rc = read_tables(q, want, source, nl, nl_errno, own_inode, netfd, !ns->enter, sink, &o);
    if (nl >= 0)
        close(nl);
    if (netfd >= 0)
        close(netfd);
    if (rc < 0)
        return -1;
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
int pn_list_all(const struct pn_carry *c, int rootfd, int netfd, struct pn_sink *sink,
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
