/* libFuzzer harness: one /proc/net line of any table, in any byte order.
 * Input: byte 0 picks the table, byte 1 the byte order, the rest is the line. */
#include "procnet.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int table = data[0] % PN_NTABLES, order = data[1] % 3;
    size_t len = size - 2;
    /* a copy of exactly len bytes: ASan sees any read past the line's end */
    char *line = malloc(len ? len : 1);
    if (!line)
        return 0;
    memcpy(line, data + 2, len);
    struct pn_sock s;
    const char *path = NULL;
    size_t path_len = 0;
    if (pn_decode_line(table, line, len, order, &s, &path, &path_len)) {
        /* a line of /proc/net/sctp/{eps,assocs} belongs to the SCTP table of its addresses */
        int sctp = (table == PN_SCTP || table == PN_SCTP6) && (s.table == PN_SCTP || s.table == PN_SCTP6);
        if (s.table != table && !sctp)
            abort();
        if (path && (path < line || path + path_len > line + len))
            abort();                      /* the path must lie inside the line */
    }
    free(line);
    return 0;
}
