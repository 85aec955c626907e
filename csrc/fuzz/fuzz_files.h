/* fuzz_files.h -- for the harnesses that build a fixture tree on disk. */
#ifndef PN_FUZZ_FILES_H
#define PN_FUZZ_FILES_H

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* Write a whole file; any failure is the harness's, not the target's: abort. */
static inline void put(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        abort();
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            abort();
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

#endif /* PN_FUZZ_FILES_H */
