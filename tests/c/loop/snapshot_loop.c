/* tests/c/loop/snapshot_loop.c -- many snapshots of the live /proc in one
 * process, for LeakSanitizer and valgrind (ci/sanitize.sh): every allocation
 * the core makes must be returned by pn_result_free, on every path.
 *   snapshot_loop N   (alternates text/netlink sources, owners on/off, threads 1/2)
 */
#include "procnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        struct pn_query q;
        memset(&q, 0, sizeof q);
        q.proc_root = (i % 7 == 6) ? "/nonexistent-procnet-root" : "/proc";   /* the error path too */
        q.tables = (1u << PN_NTABLES) - 1;
        q.flags = (i & 1) ? PN_Q_OWNERS : 0;
        q.source = (i & 2) ? PN_SRC_NETLINK : PN_SRC_PROCFS;
        q.threads = (i & 4) ? 2 : 1;
        q.lport = q.rport = -1;
        q.uid = -1;
        struct pn_result r;
        if (pn_snapshot(&q, &r) == 0)
            total += r.nsocks;
        pn_result_free(&r);
    }
    /* and polls through one owner cache (cache.c): replays, diffs, rebases,
     * the error path, polls that carry what they do not list (PN_Q_CARRY:
     * udp alone, or nothing afresh); then the cache is freed */
    struct pn_cache *c = pn_cache_new();
    size_t handed = 0;
    if (!c)
        return 1;
    for (int i = 0; i < n; i++) {
        struct pn_query q;
        memset(&q, 0, sizeof q);
        q.proc_root = (i % 7 == 6) ? "/nonexistent-procnet-root" : "/proc";
        q.tables = (1u << PN_NTABLES) - 1;
        q.flags = PN_Q_OWNERS | PN_Q_TEXT_FALLBACK;
        q.threads = (i & 4) ? 2 : 1;
        q.source = PN_SRC_NETLINK;
        q.owner_source = PN_OWN_PROCFS;
        q.lport = q.rport = -1;
        q.uid = -1;
        int32_t me = (int32_t)getpid();
        if (i % 3) {
            q.flags |= PN_Q_CARRY;
            q.own_tables = i % 3 == 1 ? 1u << PN_UDP : 0;
            q.recheck = &me;
            q.nrecheck = 1;
        }
        struct pn_result r;
        struct pn_delta d;
        if (pn_poll(&q, c, &r, &d) == 0)
            handed += r.nsocks;
        pn_result_free(&r);
        pn_delta_free(&d);
    }
    pn_cache_free(c);
    printf("%d snapshots, %zu sockets in all; %d polls, %zu records handed over\n", n, total, n,
           handed);
    return 0;
}
