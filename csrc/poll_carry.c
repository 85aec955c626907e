/*
 * poll_carry.c -- PN_Q_CARRY: a tracking Poller's poll that listed only the
 * tables the kernel's records named carries every other (namespace, table)'s
 * rows from the last poll (cache.c keeps it, and the namespaces it listed),
 * then puts every row where a whole listing has it.
 */
#include "pn_internal.h"

#include <stdlib.h>

/* The last poll's entry for a namespace, if it listed it whole and well
 * (nothing is carried from a namespace it could not list). */
const struct pn_listed_ns *pn_carried_from(const struct pn_carry *c, uint32_t inode)
{
    if (!c->prev_listing)
        return NULL;
    const struct pn_listed_ns *p = c->prev_listing->data;
    for (size_t i = 0; i < c->prev_listing->len; i++)
        if (p[i].st.inode == inode && p[i].st.source && !p[i].st.error)
            return &p[i];
    return NULL;
}

/* PN_Q_CARRY: put carried rows where a whole listing has them -- by the
 * namespaces' order, then by table (tcp before tcp6...), each (namespace,
 * table) keeping its own order: a stable counting sort. -1 on ENOMEM. */
int pn_order_rows(const struct pn_query *q, struct pn_sink *sink)
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
int pn_carry_rows(const struct pn_carry *c, const struct pn_prev *pv, const struct pn_result *out,
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
                const struct pn_listed_ns *pc = pn_carried_from(c, own ? q->self_netns : p->netns);
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
