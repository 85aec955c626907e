/* tests/c/check.c -- the check framework and fixture helpers (see check.h). */
#include "check.h"

/* ------------------------------------------------------------------------ */
/* A tiny check framework                                                    */

unsigned passed, failed, skipped;
const char *current = "";     /* name of the running test group */

int check_(int ok, const char *what, int line)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL [%s] line %d: %s\n", current, line, what);
    }
    return ok;
}

/* Integer equality that prints both sides when it fails. */
int check_eq_(unsigned long long got, unsigned long long want,
                     const char *expr, int line)
{
    if (got == want) {
        passed++;
        return 1;
    }
    failed++;
    printf("FAIL [%s] line %d: %s == %llu (0x%llx), want %llu (0x%llx)\n",
           current, line, expr, got, got, want, want);
    return 0;
}

/* Bytes equality (addresses) that prints both sides when it fails. */
int check_mem_(const void *got, const void *want, size_t n,
                      const char *expr, int line)
{
    if (memcmp(got, want, n) == 0) {
        passed++;
        return 1;
    }
    failed++;
    printf("FAIL [%s] line %d: %s:\n   got ", current, line, expr);
    for (size_t i = 0; i < n; i++) printf("%02x", ((const uint8_t *)got)[i]);
    printf("\n  want ");
    for (size_t i = 0; i < n; i++) printf("%02x", ((const uint8_t *)want)[i]);
    printf("\n");
    return 0;
}

void skip(const char *fmt, ...)
{
    va_list ap;
    skipped++;
    printf("skip [%s]: ", current);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}


/* Run one test group in a child process, so that a crash in the core (a bad
 * pointer, an over-read) costs one FAIL line instead of the whole report.
 * The child sends its counts back through a pipe. */
void group(const char *name, void (*fn)(void))
{
    int fds[2];
    current = name;
    fflush(stdout);
    if (pipe(fds) != 0) {
        fn();                          /* no isolation, but still run it */
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        fn();
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        passed = failed = skipped = 0;
        fn();
        fflush(stdout);
        unsigned counts[3] = { passed, failed, skipped };
        ssize_t w = write(fds[1], counts, sizeof counts);
        _exit(w == (ssize_t)sizeof counts ? 0 : 1);
    }
    close(fds[1]);
    unsigned counts[3];
    ssize_t n;
    do
        n = read(fds[0], counts, sizeof counts);
    while (n < 0 && errno == EINTR);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (n == (ssize_t)sizeof counts) {
        passed += counts[0];
        failed += counts[1];
        skipped += counts[2];
    }
    if (WIFSIGNALED(status)) {
        failed++;
        printf("FAIL [%s]: crashed with signal %d (%s)%s\n", name, WTERMSIG(status),
               strsignal(WTERMSIG(status)),
               n == (ssize_t)sizeof counts ? "" : "; its checks so far are lost");
    } else if (n != (ssize_t)sizeof counts || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        failed++;
        printf("FAIL [%s]: test child exited abnormally (status 0x%x)\n", name, status);
    }
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

int host_big_endian(void)
{
    const union { uint32_t u; uint8_t b[4]; } probe = { 0x01020304u };
    return probe.b[0] == 0x01;
}

/* Print 4 network-order bytes as a kernel would print them with %08X: the
 * kernel reads the 4 bytes as one native 32-bit word. For PN_ORDER_HOST use
 * this machine's own memory (memcpy), not a model of it, so the test is not
 * circular. */
void kernel_word(char out[9], const uint8_t b[4], int order)
{
    uint32_t w;
    if (order == PN_ORDER_HOST)
        memcpy(&w, b, 4);
    else if (order == PN_ORDER_BIG)
        w = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    else
        w = (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
    snprintf(out, 9, "%08X", (unsigned)w);
}

/* An address (4 or 16 bytes) as the kernel prints it: words glued together. */
void kernel_addr(char *out, const uint8_t *addr, int v6, int order)
{
    for (int i = 0; i < (v6 ? 4 : 1); i++)
        kernel_word(out + 8 * i, addr + 4 * i, order);
}

/* One /proc/net/tcp-style line, formatted like the kernel's tcp4_seq_show. */
int inet_line(char *buf, size_t size, int sl, int v6, int order,
                     const uint8_t *la, unsigned lp, const uint8_t *ra, unsigned rp,
                     unsigned state, unsigned uid, unsigned long inode)
{
    char l[33], r[33];
    kernel_addr(l, la, v6, order);
    kernel_addr(r, ra, v6, order);
    return snprintf(buf, size,
                    "%4d: %s:%04X %s:%04X %02X %08X:%08X %02X:%08lX %08X %5u %8d %lu "
                    "1 0000000000000000 100 0 0 10 0",
                    sl, l, lp, r, rp, state, 0u, 0u, 0u, 0ul, 0u, uid, 0, inode);
}

int decode(int table, const char *line, int order, struct pn_sock *s)
{
    const char *path;
    size_t path_len;
    return pn_decode_line(table, line, strlen(line), order, s, &path, &path_len);
}

const uint8_t LOOP4[4] = { 127, 0, 0, 1 };
const uint8_t ZERO16[16] = { 0 };
const uint8_t LOOP6[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
const uint8_t MAPPED6[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1 };

/* The socket of this table (any, if table < 0) with this inode, or NULL. */
const struct pn_sock *find_inode(const struct pn_result *r, int table, uint64_t inode)
{
    for (size_t i = 0; i < r->nsocks; i++)
        if (r->socks[i].inode == inode && (table < 0 || r->socks[i].table == table))
            return &r->socks[i];
    return NULL;
}

/* Print a socket's owners (after a failed check). */
void dump_owners(const struct pn_result *r, const struct pn_sock *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->owner_count && s->owner_first + i < r->nowners; i++) {
        const struct pn_owner *o = &r->owners[s->owner_first + i];
        printf("    owner %u: pid %d fd %d name '%.*s' flags %u\n", i, o->pid, o->fd,
               (int)o->name_len, o->name_off + o->name_len <= r->strings_len
                   ? r->strings + o->name_off : "?", o->flags);
    }
}
