/* bench.c -- the micro-measurement: open once, scan vs walk (test_bpf bench). */
#ifdef PN_TEST_BPF

#include "bpf_test.h"

/* ------------------------------------------------------------------------ */
/* The micro-measurement                                                     */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define RUNS 21

/* kind: 0 = bpf, else walk with threads = kind - 1 */
static double median_us(int kind, size_t *nfds)
{
    double t[RUNS];
    for (int i = 0; i < RUNS; i++) {
        struct pn_owners o;
        double t0 = now_us();
        int rc = kind == 0 ? scan(NULL, 0, &o) : walk(kind - 1, NULL, 0, &o);
        t[i] = now_us() - t0;
        if (rc < 0) {
            printf("scan failed: %s\n", strerror(errno));
            exit(1);
        }
        *nfds = o.entries.len;
        pn_owners_free(&o);
    }
    qsort(t, RUNS, sizeof t[0], cmp_double);
    return t[RUNS / 2];
}

static void measure(const char *label)
{
    static const char *const names[] = { "bpf scan", "walk threads=1", "walk threads=auto" };
    printf("%s (median of %d runs):\n", label, RUNS);
    for (int kind = 0; kind < 3; kind++) {
        size_t nfds = 0;
        double us = median_us(kind, &nfds);
        printf("  %-18s %9.0f us  %6zu socket fds  %.3f us/socket fd\n", names[kind], us, nfds,
               nfds ? us / (double)nfds : 0.0);
    }
}

int bench(int nkids, int pairs)
{
    char why[256];
    double t[5];
    for (int i = 0; i < 5; i++) {
        struct pn_bpf *b;
        double t0 = now_us();
        if (pn_bpf_open(&b, why, sizeof why) < 0) {
            printf("skip: %s\n", why);
            return 77;
        }
        t[i] = now_us() - t0;
        if (i < 4)
            pn_bpf_close(b);
        else
            bpf = b;
    }
    printf("pn_bpf_open: first %.1f ms; runs: %.1f %.1f %.1f %.1f ms\n",
           t[0] / 1e3, t[1] / 1e3, t[2] / 1e3, t[3] / 1e3, t[4] / 1e3);
    measure("this machine");

    if (pipe2(gate, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0)
        return 1;
    int32_t *kids = calloc((size_t)nkids, sizeof *kids);
    fflush(stdout);
    for (int k = 0; k < nkids; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            int sp[2];
            close(gate[1]);
            for (int i = 0; i < pairs; i++)
                if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
                    _exit(1);
            say_ready('k');
            block_on_gate();
            _exit(0);
        }
    }
    for (int k = 0; k < nkids; k++) {
        char c;
        if (read(ready[0], &c, 1) != 1)
            return 1;
    }
    char label[80];
    snprintf(label, sizeof label, "with %d children x %d socketpairs (+%d socket fds)",
             nkids, pairs, nkids * pairs * 2);
    measure(label);
    size_t inside = 0, d = 0;
    struct pn_owners ob, ow;
    if (scan(NULL, 0, &ob) == 0 && walk(1, NULL, 0, &ow) == 0) {
        workload = kids;
        nworkload = (size_t)nkids;
        d = diff(&ob, "bpf", &ow, "walk", &inside, 1);
        printf("bpf vs walk at scale: %zu differences (%zu in the children)\n", d, inside);
        pn_owners_free(&ob);
        pn_owners_free(&ow);
    }
    close(gate[1]);
    for (int k = 0; k < nkids; k++)
        waitpid(kids[k], NULL, 0);
    free(kids);
    pn_bpf_close(bpf);
    return 0;
}

#else
/* Not the BPF test build: nothing here. */
typedef int pn_test_bpf_not_built;
#endif /* PN_TEST_BPF */
