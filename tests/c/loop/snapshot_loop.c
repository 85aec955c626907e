/* tests/c/loop/snapshot_loop.c -- many snapshots of the live /proc in one
 * process, for LeakSanitizer and valgrind (ci/sanitize.sh): every allocation
 * the core makes must be returned by pn_result_free, on every path.
 *   snapshot_loop N   (alternates text/netlink sources, owners on/off, threads 1/2)
 */
#include "procnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    printf("%d snapshots, %zu sockets in all\n", n, total);
    return 0;
}
