/* libFuzzer harness: the owner cache's view of a process (cache.c) -- its
 * stat, its schedstat and one thread's stat and schedstat -- through two
 * polls of one cache over a fixture tree, with the diff between them.
 * Input: four parts separated by 0xFF bytes: PID/stat, PID/schedstat,
 * PID/task/43/stat, PID/task/43/schedstat (PID 42 holds one socket fd).
 * The second poll sees the same files with the last byte of each part
 * flipped, so the compare and replay paths run too. */
#include "procnet.h"
#include "fuzz_files.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];

static void setup(void)
{
    char path[160];
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/pnfuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root))
        abort();
    const char *dirs[] = { "net", "42", "42/fd", "42/task", "42/task/42", "42/task/43" };
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
        mkdir(path, 0755);
    }
    static const char tcp[] =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1\n";
    snprintf(path, sizeof path, "%s/net/tcp", root);
    put(path, (const uint8_t *)tcp, sizeof tcp - 1);
    snprintf(path, sizeof path, "%s/42/fd/3", root);
    if (symlink("socket:[111]", path) != 0)
        abort();
    snprintf(path, sizeof path, "%s/42/comm", root);
    put(path, (const uint8_t *)"f\n", 2);
}

static void poll_once(struct pn_cache *c)
{
    struct pn_query q;
    memset(&q, 0, sizeof q);
    q.proc_root = root;
    q.tables = 1u << PN_TCP;
    q.flags = PN_Q_OWNERS;
    q.threads = 1;
    q.source = PN_SRC_PROCFS;
    q.owner_source = PN_OWN_PROCFS;
    q.lport = q.rport = -1;
    q.uid = -1;
    struct pn_result r;
    struct pn_delta d;
    if (pn_poll(&q, c, &r, &d) == 0 && r.nsocks > 1)
        abort();                         /* one socket in the table, whatever the process */
    pn_result_free(&r);
    pn_delta_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const files[4] = { "42/stat", "42/schedstat", "42/task/43/stat",
                                          "42/task/43/schedstat" };
    const uint8_t *part[4], *part_end[4];
    char path[160];
    if (!root[0])
        setup();
    const uint8_t *p = data, *end = data + size;
    for (int i = 0; i < 4; i++) {
        const uint8_t *cut = p < end ? memchr(p, 0xFF, (size_t)(end - p)) : NULL;
        part[i] = p;
        part_end[i] = cut ? cut : end;
        p = cut ? cut + 1 : end;
    }
    struct pn_cache *c = pn_cache_new();
    if (!c)
        abort();
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 4; i++) {
            size_t n = (size_t)(part_end[i] - part[i]);
            uint8_t *copy = malloc(n + 1);
            if (!copy)
                abort();
            if (n)
                memcpy(copy, part[i], n);
            if (round && n)
                copy[n - 1] ^= 1;        /* "it ran" (or a broken file) */
            snprintf(path, sizeof path, "%s/%s", root, files[i]);
            put(path, copy, n);
            free(copy);
        }
        /* the leader's thread entry mirrors PID/stat and PID/schedstat */
        snprintf(path, sizeof path, "%s/42/task/42/stat", root);
        put(path, part[0], (size_t)(part_end[0] - part[0]));
        snprintf(path, sizeof path, "%s/42/task/42/schedstat", root);
        put(path, part[1], (size_t)(part_end[1] - part[1]));
        poll_once(c);
        poll_once(c);
    }
    pn_cache_free(c);
    return 0;
}
