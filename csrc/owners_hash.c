/*
 * owners_hash.c -- index the owner walk by socket inode.
 *
 * Open addressing over a power-of-two table of entry indices; entries with the
 * same inode are chained through pn_fd_entry.next in walk order. The table is
 * built once per walk, after all threads merged, so lookups need no locking.
 */
#include "pn_internal.h"

#include <errno.h>

#define EMPTY UINT32_MAX

static size_t slot_of(uint64_t inode, size_t mask)
{
    /* inodes are sequential: spread them (Fibonacci hashing) */
    return (size_t)((inode * 0x9E3779B97F4A7C15ull) >> 17) & mask;
}

int pn_owners_index(struct pn_owners *o)
{
    size_t n = o->entries.len, nslots = 16;
    if (n >= UINT32_MAX) {
        errno = ENOMEM;
        return -1;
    }
    while (nslots < 2 * n)
        nslots *= 2;
    uint32_t *slots = malloc(nslots * sizeof *slots);
    if (!slots)
        return -1;
    memset(slots, 0xff, nslots * sizeof *slots);
    struct pn_fd_entry *e = o->entries.data;
    size_t mask = nslots - 1;
    /* Insert backwards so each chain ends up in walk order. */
    for (size_t i = n; i-- > 0;) {
        size_t s = slot_of(e[i].inode, mask);
        while (slots[s] != EMPTY && e[slots[s]].inode != e[i].inode)
            s = (s + 1) & mask;
        e[i].next = slots[s];
        slots[s] = (uint32_t)i;
    }
    free(o->slots);
    o->slots = slots;
    o->nslots = nslots;
    return 0;
}

uint32_t pn_owners_first(const struct pn_owners *o, uint64_t inode)
{
    if (!o->slots)
        return EMPTY;
    const struct pn_fd_entry *e = o->entries.data;
    size_t mask = o->nslots - 1, s = slot_of(inode, mask);
    while (o->slots[s] != EMPTY) {
        if (e[o->slots[s]].inode == inode)
            return o->slots[s];
        s = (s + 1) & mask;
    }
    return EMPTY;
}

void pn_owners_free(struct pn_owners *o)
{
    pn_vec_free(&o->entries);
    pn_vec_free(&o->procs);
    pn_vec_free(&o->strings);
    pn_vec_free(&o->denied);
    pn_vec_free(&o->seen);
    pn_vec_free(&o->tasks);
    free(o->slots);
    o->slots = NULL;
    o->nslots = 0;
}

static int cmp_pid(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int pn_owners_holders(const struct pn_owners *own, int32_t **out, size_t *nout)
{
    const struct pn_fd_entry *e = own->entries.data;
    size_t n = own->entries.len, k = 0;
    int32_t *pids = malloc((n ? n : 1) * sizeof *pids);
    if (!pids)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || pids[k - 1] != e[i].pid)   /* a process's fds come together */
            pids[k++] = e[i].pid;
    qsort(pids, k, sizeof *pids, cmp_pid);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || pids[u - 1] != pids[i])
            pids[u++] = pids[i];
    *out = pids;
    *nout = u;
    return 0;
}
