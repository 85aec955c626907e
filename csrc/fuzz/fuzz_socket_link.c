/* libFuzzer harness: readlink targets, as /proc/PID/fd/N gives them. */
#include "procnet.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    uint64_t inode = 0;
    if (pn_parse_socket_link(s, size, &inode)) {
        /* accepted means exactly "socket:[digits]" */
        if (size < 10 || memcmp(s, "socket:[", 8) != 0 || s[size - 1] != ']')
            abort();
        for (size_t i = 8; i < size - 1; i++)
            if (s[i] < '0' || s[i] > '9')
                abort();
    }
    free(s);
    return 0;
}
