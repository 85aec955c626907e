/*
 * poll_diff.c -- a poll against the last one (see cache.c): sockets matched
 * by identity (table + inode; the addresses when the inode is 0), and only
 * the new or changed records handed to Python, with the indices that build
 * the whole list from the previous one. Records handed over pin their poll's
 * strings in Python, so once more have been handed over than the poll holds
 * (plus a slack), the poll is rebased: everything is handed over afresh.
 */
#include "pn_internal.h"

#include <errno.h>

#define EMPTY UINT32_MAX
#define REBASE_SLACK 1024      /* at least; and half the poll's sockets */

/* Is the inode alone not a socket's identity? Inode 0 (TIME_WAIT, SYN_RECV)
 * is no socket's, and an SCTP one-to-many socket's endpoint and associations
 * are records of one inode: there the addresses (in their namespace) and
 * whether it is an association (state 16 + code) tell them apart. */
static int inode_shared(const struct pn_sock *s)
{
    return !s->inode || s->table == PN_SCTP || s->table == PN_SCTP6;
}

static uint64_t sock_key(const struct pn_sock *s)
{
    uint64_t h = (uint64_t)s->table * 0x100000001B3ull;
    if (!inode_shared(s))
        return (h ^ s->inode) * 0x9E3779B97F4A7C15ull;
    h = (h ^ s->inode) * 0x100000001B3ull;
    h = (h ^ (uint64_t)(s->state >= 16)) * 0x100000001B3ull;
    h = (h ^ s->netns) * 0x100000001B3ull;
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
    if (!inode_shared(a))
        return 1;
    return (a->state >= 16) == (b->state >= 16) && a->netns == b->netns &&
           a->lport == b->lport && a->rport == b->rport &&
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
    struct pn_prev *pv = pn_cache_prev(c);
    size_t n = out->nsocks, np = pv->have ? pv->nsocks : 0;
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
        size_t s = (size_t)sock_key(&pv->socks[j]) & mask;
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
            if (!matched[cand] && same_identity(&pv->socks[cand], s)) {
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
        const struct pn_sock *p = &pv->socks[j];
        const struct pn_owner *oa = out->owners + s->owner_first, *ob = pv->owners + p->owner_first;
        if (!same_owners(oa, s->owner_count, ob, p->owner_count))
            d->kind[i] = PN_CH_OWNERS;
        else if (!same_fields(s, out->strings, p, pv->strings) ||
                 !same_names(oa, out->strings, ob, pv->strings, s->owner_count))
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
    /* a slack of half the poll: a host replacing 2 % of its sockets per poll
     * would otherwise be rebased every other poll */
    size_t slack = n / 2 > REBASE_SLACK ? n / 2 : REBASE_SLACK;
    d->rebased = !pv->have || pv->handed_since_rebase + changed > n + slack;
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
    pv->handed_since_rebase = d->rebased ? n : pv->handed_since_rebase + nsel;

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
    size_t handed = pv->handed_since_rebase;
    pn_prev_free(pv);
    pv->handed_since_rebase = handed;
    pv->socks = full_socks;
    pv->nsocks = full_n;
    pv->owners = full_owners;
    pv->nowners = full_no;
    pv->strings = full_strings;
    pv->strings_len = full_sl;
    pv->have = 1;
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
