/* compare.c -- the BPF scan and the /proc walk, and comparing what they find (see test_bpf.c). */
#ifdef PN_TEST_BPF

#include "bpf_test.h"

/* ------------------------------------------------------------------------ */
/* Scans                                                                     */

struct pn_bpf *bpf;            /* loaded once by main() */
int rootfd = -1;

void query_init(struct pn_query *q, int threads, const int32_t *pids, size_t npids)
{
    memset(q, 0, sizeof *q);
    q->proc_root = "/proc";
    q->flags = PN_Q_OWNERS;
    q->threads = threads;
    q->lport = q->rport = -1;
    q->uid = -1;
    q->pids = pids;
    q->npids = npids;
}

int walk(int threads, const int32_t *pids, size_t npids, struct pn_owners *o)
{
    struct pn_query q;
    struct pn_walk *w;
    query_init(&q, threads, pids, npids);
    if (pn_walk_start(rootfd, &q, &w) < 0)
        return -1;
    return pn_walk_finish(w, o);
}

int scan(const int32_t *pids, size_t npids, struct pn_owners *o)
{
    struct pn_query q;
    query_init(&q, 0, pids, npids);
    return pn_bpf_scan(bpf, &q, o);
}

/* ------------------------------------------------------------------------ */
/* Comparing two owner sets                                                  */

struct trip {
    int32_t pid;
    int32_t fd;
    uint64_t inode;
    const char *name;
    uint32_t name_len;
};

static int cmp_trip(const void *a, const void *b)
{
    const struct trip *x = a, *y = b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    if (x->fd != y->fd)
        return x->fd < y->fd ? -1 : 1;
    return (x->inode > y->inode) - (x->inode < y->inode);
}

/* The entries as a sorted array, each with its process's name. */
static struct trip *trips(const struct pn_owners *o, size_t *n)
{
    const struct pn_fd_entry *e = o->entries.data;
    const struct pn_proc_info *p = o->procs.data;
    struct trip *t = calloc(o->entries.len + 1, sizeof *t);
    if (!t)
        abort();
    for (size_t i = 0; i < o->entries.len; i++) {
        t[i].pid = e[i].pid;
        t[i].fd = e[i].fd;
        t[i].inode = e[i].inode;
        if (e[i].proc < o->procs.len) {
            t[i].name = (const char *)o->strings.data + p[e[i].proc].name_off;
            t[i].name_len = p[e[i].proc].name_len;
        }
    }
    qsort(t, o->entries.len, sizeof *t, cmp_trip);
    *n = o->entries.len;
    return t;
}

const int32_t *workload;   /* pids of the processes this test made */
size_t nworkload;

static int in_workload(int32_t pid)
{
    for (size_t i = 0; i < nworkload; i++)
        if (workload[i] == pid)
            return 1;
    return 0;
}

static void show(const char *side, const struct trip *t)
{
    printf("    only in %s: pid %d fd %d inode %" PRIu64 " '%.*s'%s\n", side, t->pid, t->fd,
           t->inode, (int)t->name_len, t->name ? t->name : "",
           in_workload(t->pid) ? " (workload)" : "");
}

/* Differences between a and b: *inside counts those about workload pids. */
size_t diff(const struct pn_owners *a, const char *an, const struct pn_owners *b,
            const char *bn, size_t *inside, int verbose)
{
    size_t na, nb, i = 0, j = 0, d = 0, shown = 0;
    struct trip *ta = trips(a, &na), *tb = trips(b, &nb);
    *inside = 0;
    while (i < na || j < nb) {
        int c = i == na ? 1 : j == nb ? -1 : cmp_trip(&ta[i], &tb[j]);
        const struct trip *odd = NULL;
        const char *side = NULL;
        if (c == 0) {
            if (ta[i].name_len != tb[j].name_len ||
                memcmp(ta[i].name ? ta[i].name : "", tb[j].name ? tb[j].name : "",
                       ta[i].name_len) != 0) {
                d++;
                *inside += in_workload(ta[i].pid);
                if (verbose && shown++ < 20)
                    printf("    name differs for pid %d: %s '%.*s', %s '%.*s'\n", ta[i].pid, an,
                           (int)ta[i].name_len, ta[i].name ? ta[i].name : "", bn,
                           (int)tb[j].name_len, tb[j].name ? tb[j].name : "");
            }
            i++, j++;
            continue;
        }
        if (c < 0)
            odd = &ta[i++], side = an;
        else
            odd = &tb[j++], side = bn;
        d++;
        *inside += in_workload(odd->pid);
        if (verbose && shown++ < 20)
            show(side, odd);
    }
    free(ta);
    free(tb);
    return d;
}

/* Structural invariants of a pn_bpf_scan result. */
void check_shape(const struct pn_owners *o)
{
    const struct pn_fd_entry *e = o->entries.data;
    const struct pn_proc_info *p = o->procs.data;
    int ok = 1;
    for (size_t i = 0; i < o->entries.len; i++)
        ok &= e[i].proc < o->procs.len && p[e[i].proc].pid == e[i].pid &&
              e[i].next == UINT32_MAX && e[i].inode != 0 && e[i].fd >= 0;
    CHECK(ok);
    for (size_t i = 0; i < o->procs.len; i++) {
        ok &= p[i].name_off + (size_t)p[i].name_len <= o->strings.len && p[i].flags == 0;
        ok &= memchr((const char *)o->strings.data + p[i].name_off, '\0', p[i].name_len) == NULL;
        for (size_t j = 0; j < i; j++)
            ok &= p[j].pid != p[i].pid;          /* one pn_proc_info per pid */
    }
    CHECK(ok);
    CHECK_EQ(o->denied.len, 0);
    CHECK(o->nprocs >= o->procs.len);
    CHECK(o->slots == NULL);                      /* the caller indexes */
}

/* Compare a BPF scan with the /proc walk, retrying when only other
 * processes of the system differ. Returns 1 when equal. */
int compare_with_walk(const int32_t *pids, size_t npids, int threads, const char *what)
{
    for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
        struct pn_owners ob, ow;
        size_t inside = 0;
        if (!CHECK(scan(pids, npids, &ob) == 0)) {
            printf("    pn_bpf_scan: %s\n", strerror(errno));
            return 0;
        }
        if (!CHECK(walk(threads, pids, npids, &ow) == 0)) {
            pn_owners_free(&ob);
            return 0;
        }
        check_shape(&ob);
        int last = attempt == ATTEMPTS;
        size_t d = diff(&ob, "bpf", &ow, "walk", &inside, 0);
        if (d && (inside || last))
            diff(&ob, "bpf", &ow, "walk", &inside, 1);
        pn_owners_free(&ob);
        pn_owners_free(&ow);
        if (d == 0) {
            passed++;
            printf("  %s: equal (attempt %d)\n", what, attempt);
            return 1;
        }
        if (inside || last) {
            failed++;
            printf("FAIL [%s] %s: %zu differences (%zu in the workload)\n", current, what, d,
                   inside);
            return 0;
        }
        printf("  %s: %zu differences outside the workload, retrying\n", what, d);
        usleep(50 * 1000);
    }
    return 0;
}

#else
/* Not the BPF test build: nothing here. */
typedef int pn_test_bpf_not_built;
#endif /* PN_TEST_BPF */
