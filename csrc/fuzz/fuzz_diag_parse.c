/* libFuzzer harness: a received NETLINK_SOCK_DIAG dump buffer for any table
 * (the kernel's answer is outside input too: other kernels, other versions).
 * Input: byte 0 picks the table (or PN_DIAG_TCP46, the tcp+tcp6 dump), the
 * rest is the buffer. */
#include "pn_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int table = data[0] % (PN_DIAG_TCP46 + 1);
    size_t n = size - 1;
    /* netlink buffers are 4-byte aligned; malloc gives more */
    char *buf = malloc(n ? n : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, n);
    struct pn_query q;
    memset(&q, 0, sizeof q);
    q.lport = q.rport = -1;
    q.uid = -1;
    struct pn_sink sink;
    memset(&sink, 0, sizeof sink);
    uint32_t skipped = 0;
    int intr = 0;
    uint32_t seq;
    memcpy(&seq, buf + (n >= 12 ? 8 : 0), n >= 12 ? 4 : 0);   /* accept the input's own seq */
    if (n < 12)
        seq = 0;
    pn_diag_parse(buf, n, table, &q, &sink, &skipped, 0, seq, &intr);
    struct pn_sock *s = sink.socks.data;
    for (size_t i = 0; i < sink.socks.len; i++) {
        if (table == PN_DIAG_TCP46 ? s[i].table != PN_TCP && s[i].table != PN_TCP6 : s[i].table != table)
            abort();
        if (table == PN_UNIX && (size_t)s[i].ext + s[i].ext_len > sink.strings.len)
            abort();                      /* a name must lie inside the string pool */
    }
    pn_vec_free(&sink.socks);
    pn_vec_free(&sink.strings);
    free(buf);
    return 0;
}
