/* libFuzzer harness: a whole /proc/net table file through pn_snapshot (large
 * reads, line splitting across reads, overlong lines, the header), and a
 * process's comm and fd link in the same fixture tree.
 * Input: byte 0 picks the table; then the table text up to the first 0xFF
 * byte; then the comm text up to the next 0xFF; the rest is the link target. */
#include "procnet.h"
#include "fuzz_files.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file the text goes to; SCTP tables read two files: the text goes to
 * both (each line meets both decoders). NULL: a table with no text. */
static const char *const names[PN_NTABLES][2] = {
    {"tcp"}, {"tcp6"}, {"udp"}, {"udp6"}, {"udplite"}, {"udplite6"}, {"raw"}, {"raw6"},
    {"icmp"}, {"icmp6"}, {"unix"}, {"packet"}, {"netlink"},
    [PN_SCTP] = {"sctp/eps", "sctp/assocs"}, [PN_SCTP6] = {"sctp/eps", "sctp/assocs"},
};
static char root[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128], target[512];
    if (!root[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(root, sizeof root, "%s/pnfuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(root))
            abort();
        snprintf(path, sizeof path, "%s/net", root);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/net/sctp", root);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/42", root);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/42/fd", root);
        mkdir(path, 0755);
    }
    if (size < 1)
        return 0;
    int table = data[0] % PN_NTABLES;
    if (!names[table][0])
        return 0;                         /* sock_diag only: nothing to read */
    const uint8_t *p = data + 1, *end = data + size;
    const uint8_t *cut = memchr(p, 0xFF, (size_t)(end - p));
    const uint8_t *text_end = cut ? cut : end;
    for (int f = 0; f < 2 && names[table][f]; f++) {
        snprintf(path, sizeof path, "%s/net/%s", root, names[table][f]);
        put(path, p, (size_t)(text_end - p));
    }
    p = cut ? cut + 1 : end;
    cut = memchr(p, 0xFF, (size_t)(end - p));
    snprintf(path, sizeof path, "%s/42/comm", root);
    put(path, p, (size_t)((cut ? cut : end) - p));
    p = cut ? cut + 1 : end;
    size_t tlen = (size_t)(end - p) < sizeof target - 1 ? (size_t)(end - p) : sizeof target - 1;
    memcpy(target, p, tlen);
    target[tlen] = '\0';
    snprintf(path, sizeof path, "%s/42/fd/3", root);
    unlink(path);
    if (tlen && !memchr(target, '\0', tlen))
        (void)symlink(target, path);

    struct pn_query q;
    memset(&q, 0, sizeof q);
    q.proc_root = root;
    q.tables = 1u << table;
    q.flags = PN_Q_OWNERS;
    q.threads = 1;
    q.source = PN_SRC_PROCFS;
    q.lport = q.rport = -1;
    q.uid = -1;
    struct pn_result r;
    if (pn_snapshot(&q, &r) == 0) {
        for (size_t i = 0; i < r.nsocks; i++) {
            const struct pn_sock *s = &r.socks[i];
            if ((size_t)s->owner_first + s->owner_count > r.nowners)
                abort();
            if (table == PN_UNIX && (size_t)s->ext + s->ext_len > r.strings_len)
                abort();
        }
        for (size_t i = 0; i < r.nowners; i++)
            if ((size_t)r.owners[i].name_off + r.owners[i].name_len > r.strings_len)
                abort();
    }
    pn_result_free(&r);
    return 0;
}
