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
#include <stdio.h>
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
