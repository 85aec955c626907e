/*
 * tests/c/test_core.c -- plain-C test driver for the procnet C core.
 *
 * Built and run natively and under qemu-user for foreign CPUs by
 * ci/cross/run_c.sh; needs nothing but libc and the csrc/ sources:
 *
 *   cc -std=c11 -O1 -Wall -Wextra -Werror -I csrc csrc/(all .c) tests/c/test_core.c -pthread
 *
 * What it pins down, beyond "it decodes":
 *   - the byte order of /proc/net address words: the same socket as printed
 *     by a little-endian and by a big-endian kernel, and as printed by *this*
 *     host's kernel (built at run time from the host's own memory layout, so
 *     on qemu-mips the HOST case really exercises big-endian);
 *   - the struct layout Python unpacks (sizes and offsets), which must not
 *     depend on the pointer size (32-bit arm/mips vs 64-bit);
 *   - pn_snapshot over a fixture tree built here at run time (real symlinks),
 *     and over the live /proc when there is one.
 *
 * Each test group runs in a forked child, so a crash in the core costs one
 * FAIL line, not the report. Checks that cannot apply where the driver runs
 * (qemu-user: the host's little-endian kernel text, no NETLINK_SOCK_DIAG)
 * print "skip [...]: why" instead of failing.
 *
 * The last line printed is "N passed, M failed" (", K skipped" when some
 * checks could not apply here); the exit status is 1 when anything failed.
 */
#define _GNU_SOURCE

#include "procnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* A tiny check framework                                                    */

static unsigned passed, failed, skipped;
static const char *current = "";     /* name of the running test group */

static int check_(int ok, const char *what, int line)
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
static int check_eq_(unsigned long long got, unsigned long long want,
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
static int check_mem_(const void *got, const void *want, size_t n,
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

static void skip(const char *fmt, ...)
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
static void group(const char *name, void (*fn)(void))
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

#define CHECK(c)           check_(!!(c), #c, __LINE__)
#define CHECK_EQ(a, b)     check_eq_((unsigned long long)(a), (unsigned long long)(b), #a, __LINE__)
#define CHECK_MEM(a, b, n) check_mem_((a), (b), (n), #a, __LINE__)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static int host_big_endian(void)
{
    const union { uint32_t u; uint8_t b[4]; } probe = { 0x01020304u };
    return probe.b[0] == 0x01;
}

/* Print 4 network-order bytes as a kernel would print them with %08X: the
 * kernel reads the 4 bytes as one native 32-bit word. For PN_ORDER_HOST use
 * this machine's own memory (memcpy), not a model of it, so the test is not
 * circular. */
static void kernel_word(char out[9], const uint8_t b[4], int order)
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
static void kernel_addr(char *out, const uint8_t *addr, int v6, int order)
{
    for (int i = 0; i < (v6 ? 4 : 1); i++)
        kernel_word(out + 8 * i, addr + 4 * i, order);
}

/* One /proc/net/tcp-style line, formatted like the kernel's tcp4_seq_show. */
static int inet_line(char *buf, size_t size, int sl, int v6, int order,
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

static int decode(int table, const char *line, int order, struct pn_sock *s)
{
    const char *path;
    size_t path_len;
    return pn_decode_line(table, line, strlen(line), order, s, &path, &path_len);
}

static const uint8_t LOOP4[4] = { 127, 0, 0, 1 };
static const uint8_t ZERO16[16] = { 0 };
static const uint8_t LOOP6[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
static const uint8_t MAPPED6[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1 };

/* ------------------------------------------------------------------------ */
/* Layout: Python unpacks these arrays with fixed struct formats.            */

static void test_layout(void)
{
    current = "layout";
    CHECK_EQ(sizeof(struct pn_sock), 80);
    CHECK_EQ(offsetof(struct pn_sock, inode), 0);
    CHECK_EQ(offsetof(struct pn_sock, laddr), 8);
    CHECK_EQ(offsetof(struct pn_sock, raddr), 24);
    CHECK_EQ(offsetof(struct pn_sock, uid), 40);
    CHECK_EQ(offsetof(struct pn_sock, tx_queue), 44);
    CHECK_EQ(offsetof(struct pn_sock, rx_queue), 48);
    CHECK_EQ(offsetof(struct pn_sock, owner_first), 52);
    CHECK_EQ(offsetof(struct pn_sock, owner_count), 56);
    CHECK_EQ(offsetof(struct pn_sock, ext), 60);
    CHECK_EQ(offsetof(struct pn_sock, ext_len), 64);
    CHECK_EQ(offsetof(struct pn_sock, lport), 68);
    CHECK_EQ(offsetof(struct pn_sock, rport), 70);
    CHECK_EQ(offsetof(struct pn_sock, protocol), 72);
    CHECK_EQ(offsetof(struct pn_sock, table), 74);
    CHECK_EQ(offsetof(struct pn_sock, state), 75);
    CHECK_EQ(offsetof(struct pn_sock, stype), 76);
    CHECK_EQ(offsetof(struct pn_sock, reserved), 77);
    CHECK_EQ(offsetof(struct pn_sock, flags), 78);

    CHECK_EQ(sizeof(struct pn_owner), 24);
    CHECK_EQ(offsetof(struct pn_owner, pid), 0);
    CHECK_EQ(offsetof(struct pn_owner, fd), 4);
    CHECK_EQ(offsetof(struct pn_owner, name_off), 8);
    CHECK_EQ(offsetof(struct pn_owner, name_len), 12);
    CHECK_EQ(offsetof(struct pn_owner, flags), 16);
    CHECK_EQ(offsetof(struct pn_owner, reserved), 20);

    CHECK_EQ(pn_abi_version(), PN_ABI_VERSION);
    CHECK(pn_version() != NULL && pn_version()[0] != '\0');
}

/* ------------------------------------------------------------------------ */
/* inet tables                                                               */

static void test_tcp4_orders(void)
{
    struct pn_sock s;
    current = "tcp4 byte order";

    /* 127.0.0.1:8080 listening, as an x86 (little-endian) kernel prints it */
    const char *le =
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0";
    /* the same socket as a big-endian kernel (mips, s390x, ppc) prints it */
    const char *be =
        "   0: 7F000001:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0";

    if (CHECK(decode(PN_TCP, le, PN_ORDER_LITTLE, &s))) {
        CHECK_MEM(s.laddr, LOOP4, 4);
        CHECK_EQ(s.lport, 8080);
        CHECK_MEM(s.raddr, ZERO16, 16);
        CHECK_EQ(s.rport, 0);
        CHECK_EQ(s.state, 0x0A);
        CHECK_EQ(s.uid, 1000);
        CHECK_EQ(s.inode, 12345);
        CHECK_EQ(s.table, PN_TCP);
        CHECK_EQ(s.protocol, IPPROTO_TCP);
        CHECK_EQ(s.stype, SOCK_STREAM);   /* the host's numbering (2 on MIPS) */
        CHECK_EQ(s.owner_count, 0);
    }
    if (CHECK(decode(PN_TCP, be, PN_ORDER_BIG, &s))) {
        CHECK_MEM(s.laddr, LOOP4, 4);
        CHECK_EQ(s.lport, 8080);
        CHECK_EQ(s.inode, 12345);
    }
    /* Read with the wrong order, the address comes out reversed: the decoder
     * really does use the order it is given. */
    if (CHECK(decode(PN_TCP, le, PN_ORDER_BIG, &s))) {
        const uint8_t rev[4] = { 1, 0, 0, 127 };
        CHECK_MEM(s.laddr, rev, 4);
        CHECK_EQ(s.lport, 8080);          /* ports are printed after ntohs */
    }

    /* PN_ORDER_HOST on a line printed in this host's own order */
    char line[512];
    const uint8_t ra[4] = { 192, 168, 1, 2 };
    inet_line(line, sizeof line, 7, 0, PN_ORDER_HOST, LOOP4, 8080, ra, 51000, 1, 0, 777);
    if (CHECK(decode(PN_TCP, line, PN_ORDER_HOST, &s))) {
        CHECK_MEM(s.laddr, LOOP4, 4);
        CHECK_MEM(s.raddr, ra, 4);
        CHECK_EQ(s.lport, 8080);
        CHECK_EQ(s.rport, 51000);
        CHECK_EQ(s.state, 1);
        CHECK_EQ(s.inode, 777);
    }
    /* and it matches the explicit order of this host */
    if (CHECK(decode(PN_TCP, line, host_big_endian() ? PN_ORDER_BIG : PN_ORDER_LITTLE, &s)))
        CHECK_MEM(s.raddr, ra, 4);
    printf("info: host is %s-endian\n", host_big_endian() ? "big" : "little");

    /* FFFFFFFF is a real address (255.255.255.255), not an error sentinel */
    const uint8_t bcast[4] = { 255, 255, 255, 255 };
    for (int order = PN_ORDER_HOST; order <= PN_ORDER_BIG; order++) {
        inet_line(line, sizeof line, 1, 0, order, bcast, 67, bcast, 0xFFFF, 7, 0, 4242);
        if (CHECK(decode(PN_UDP, line, order, &s))) {
            CHECK_MEM(s.laddr, bcast, 4);
            CHECK_MEM(s.raddr, bcast, 4);
            CHECK_EQ(s.rport, 0xFFFF);
        }
    }
    /* lower-case hex is accepted too (not printed by Linux, but harmless) */
    CHECK(decode(PN_TCP,
        "   0: 0100007f:1f90 00000000:0000 0a 00000000:00000000 00:00000000 00000000  1000        0 12345",
        PN_ORDER_LITTLE, &s) && s.lport == 8080);
}

static void test_tcp6(void)
{
    struct pn_sock s;
    char line[512];
    current = "tcp6";

    /* ::1 port 8080 */
    const char *le =
        "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 54321 1 0000000000000000 100 0 0 10 0";
    const char *be =
        "   0: 00000000000000000000000000000001:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 54321 1 0000000000000000 100 0 0 10 0";
    if (CHECK(decode(PN_TCP6, le, PN_ORDER_LITTLE, &s))) {
        CHECK_MEM(s.laddr, LOOP6, 16);
        CHECK_EQ(s.lport, 8080);
        CHECK_EQ(s.inode, 54321);
        CHECK_EQ(s.table, PN_TCP6);
        CHECK_EQ(s.protocol, IPPROTO_TCP);
    }
    if (CHECK(decode(PN_TCP6, be, PN_ORDER_BIG, &s)))
        CHECK_MEM(s.laddr, LOOP6, 16);

    /* ::ffff:127.0.0.1 -- each of the four words in the kernel's order */
    const char *mle =
        "   1: 0000000000000000FFFF00000100007F:0016 0000000000000000FFFF00000100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0";
    const char *mbe =
        "   1: 00000000000000000000FFFF7F000001:0016 00000000000000000000FFFF7F000001:C350 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0";
    if (CHECK(decode(PN_TCP6, mle, PN_ORDER_LITTLE, &s))) {
        CHECK_MEM(s.laddr, MAPPED6, 16);
        CHECK_MEM(s.raddr, MAPPED6, 16);
        CHECK_EQ(s.lport, 22);
        CHECK_EQ(s.rport, 50000);
    }
    if (CHECK(decode(PN_TCP6, mbe, PN_ORDER_BIG, &s))) {
        CHECK_MEM(s.laddr, MAPPED6, 16);
        CHECK_MEM(s.raddr, MAPPED6, 16);
    }

    /* a v6 address where every byte differs, in each order, built at run time */
    uint8_t a[16];
    for (int i = 0; i < 16; i++)
        a[i] = (uint8_t)(0x20 + i * 0x0B);
    for (int order = PN_ORDER_HOST; order <= PN_ORDER_BIG; order++) {
        inet_line(line, sizeof line, 3, 1, order, a, 443, LOOP6, 1, 1, 33, 31337);
        if (CHECK(decode(PN_TCP6, line, order, &s))) {
            CHECK_MEM(s.laddr, a, 16);
            CHECK_MEM(s.raddr, LOOP6, 16);
            CHECK_EQ(s.uid, 33);
        }
    }
    /* all-ones v6 address */
    const uint8_t ones[16] = { 255, 255, 255, 255, 255, 255, 255, 255,
                               255, 255, 255, 255, 255, 255, 255, 255 };
    inet_line(line, sizeof line, 3, 1, PN_ORDER_HOST, ones, 1, ones, 1, 7, 0, 5);
    if (CHECK(decode(PN_UDP6, line, PN_ORDER_HOST, &s)))
        CHECK_MEM(s.laddr, ones, 16);
    /* a v4 line is not a v6 line and vice versa */
    CHECK(!decode(PN_TCP6,
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345",
        PN_ORDER_LITTLE, &s));
    CHECK(!decode(PN_TCP, le, PN_ORDER_LITTLE, &s));
}

static void test_udp_raw_icmp(void)
{
    struct pn_sock s;
    current = "udp/raw/icmp";

    /* dhclient on 0.0.0.0:68 (udp4_seq_show: "%5d: ..." and a drops column) */
    const char *udp =
        "  123: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 15603 2 0000000000000000 0";
    if (CHECK(decode(PN_UDP, udp, PN_ORDER_LITTLE, &s))) {
        CHECK_EQ(s.lport, 68);
        CHECK_EQ(s.state, 7);
        CHECK_EQ(s.inode, 15603);
        CHECK_EQ(s.table, PN_UDP);
        CHECK_EQ(s.protocol, IPPROTO_UDP);
        CHECK_EQ(s.stype, SOCK_DGRAM);
    }
    /* udp with queued bytes: tx_queue/rx_queue */
    const char *udpq =
        "  124: 0100007F:0035 00000000:0000 07 00000010:00000200 00:00000000 00000000   101        0 15604 2 0000000000000000 3";
    if (CHECK(decode(PN_UDP, udpq, PN_ORDER_LITTLE, &s))) {
        CHECK_EQ(s.tx_queue, 0x10);
        CHECK_EQ(s.rx_queue, 0x200);
        CHECK_EQ(s.uid, 101);
        CHECK_MEM(s.laddr, LOOP4, 4);
    }
    /* udplite shares the format */
    if (CHECK(decode(PN_UDPLITE, udp, PN_ORDER_LITTLE, &s))) {
        CHECK_EQ(s.protocol, 136);
        CHECK_EQ(s.table, PN_UDPLITE);
    }
    /* raw: the "port" column is the IP protocol (1 = ICMP) */
    const char *raw =
        "   1: 00000000:0001 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 23456 2 0000000000000000 0";
    if (CHECK(decode(PN_RAW, raw, PN_ORDER_LITTLE, &s))) {
        CHECK_EQ(s.protocol, 1);
        CHECK_EQ(s.stype, SOCK_RAW);
        CHECK_EQ(s.inode, 23456);
    }
    /* raw6 with protocol 58 (ICMPv6) */
    const char *raw6 =
        "  58: 00000000000000000000000000000000:003A 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 23457 2 0000000000000000 0";
    if (CHECK(decode(PN_RAW6, raw6, PN_ORDER_LITTLE, &s)))
        CHECK_EQ(s.protocol, 58);
    /* icmp ("ping" sockets): port column is the echo identifier */
    const char *icmp =
        "   5: 0100007F:04D2 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 34567 2 0000000000000000 0";
    if (CHECK(decode(PN_ICMP, icmp, PN_ORDER_LITTLE, &s))) {
        CHECK_EQ(s.protocol, IPPROTO_ICMP);
        CHECK_EQ(s.stype, SOCK_DGRAM);
        CHECK_EQ(s.lport, 1234);
    }
    if (CHECK(decode(PN_ICMP6,
            "   5: 00000000000000000000000001000000:04D2 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 34568 2 0000000000000000 0",
            PN_ORDER_LITTLE, &s))) {
        CHECK_EQ(s.protocol, 58);
        CHECK_MEM(s.laddr, LOOP6, 16);
    }
    /* a negative timeout column and a 16-digit timer (64-bit jiffies) */
    CHECK(decode(PN_TCP,
        "   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 02:00000000000A8C0B 00000000  1000        -1 4444 1",
        PN_ORDER_LITTLE, &s) && s.inode == 4444 && s.rport == 0xD431);
    /* inode 0 (TIME_WAIT) decodes; it just never has an owner */
    CHECK(decode(PN_TCP,
        "   3: 0100007F:1F90 0100007F:D432 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000",
        PN_ORDER_LITTLE, &s) && s.inode == 0 && s.state == 6);
    /* a 20-digit inode (the kernel prints %lu) */
    CHECK(decode(PN_TCP,
        "   4: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18446744073709551615 1",
        PN_ORDER_LITTLE, &s) && s.inode == UINT64_MAX);
}

/* ------------------------------------------------------------------------ */
/* unix, packet, netlink                                                     */

static void test_unix(void)
{
    struct pn_sock s;
    const char *path;
    size_t plen;
    current = "unix";
#define UNIX_DECODE(str) pn_decode_line(PN_UNIX, (str), strlen(str), PN_ORDER_HOST, &s, &path, &plen)

    /* listening stream socket with a path containing spaces */
    const char *l1 = "0000000000000000: 00000002 00000000 00010000 0001 01 20311 /run/my app.sock";
    if (CHECK(UNIX_DECODE(l1))) {
        CHECK_EQ(s.inode, 20311);
        CHECK_EQ(s.table, PN_UNIX);
        CHECK_EQ(s.stype, 1);                  /* raw sk_type as the kernel printed it */
        CHECK_EQ(s.state, 1);
        CHECK(s.flags & PN_SF_UNIX_ACC);
        CHECK(s.flags & PN_SF_NO_UID);
        CHECK(path != NULL && plen == strlen("/run/my app.sock") &&
              memcmp(path, "/run/my app.sock", plen) == 0);
        CHECK(path == l1 + strlen(l1) - plen);  /* points into the line */
    }
    /* abstract name: printed with a leading '@' */
    const char *l2 = "0000000000000000: 00000002 00000000 00000000 0002 01 20312 @my-abstract";
    if (CHECK(UNIX_DECODE(l2))) {
        CHECK(!(s.flags & PN_SF_UNIX_ACC));
        CHECK_EQ(s.stype, 2);
        CHECK(path != NULL && plen == 12 && memcmp(path, "@my-abstract", 12) == 0);
    }
    /* unnamed: ends right after the inode (which the kernel pads with %5lu) */
    const char *l3 = "0000000000000000: 00000003 00000000 00000000 0001 03   913";
    if (CHECK(UNIX_DECODE(l3))) {
        CHECK_EQ(s.inode, 913);
        CHECK_EQ(s.state, 3);
        CHECK(path == NULL && plen == 0);
    }
    /* a path that starts with a space keeps it (one separator only) */
    const char *l4 = "0000000000000000: 00000002 00000000 00010000 0001 01 20314  lead";
    if (CHECK(UNIX_DECODE(l4)))
        CHECK(path != NULL && plen == 5 && memcmp(path, " lead", 5) == 0);
    /* a 32-bit kernel prints 8-digit pointers */
    CHECK(UNIX_DECODE("c1a2b3c4: 00000002 00000000 00010000 0005 01 20315 /tmp/s") && s.stype == 5);
    /* header, malformed */
    CHECK(!UNIX_DECODE("Num       RefCount Protocol Flags    Type St Inode Path"));
    CHECK(!UNIX_DECODE("0000000000000000: 00000002 00000000 00010000 0001 01"));
    CHECK(!UNIX_DECODE("0000000000000000: 00000002 00000000 00010000 0001 01 20311x /p"));
    CHECK(!UNIX_DECODE("0000000000000000 00000002 00000000 00010000 0001 01 20311 /p"));
    CHECK(!UNIX_DECODE("000000000000000G: 00000002 00000000 00010000 0001 01 20311 /p"));
    /* a NUL inside the path: the kernel never prints one */
    {
        const char nul[] = "0000000000000000: 00000002 00000000 00010000 0001 01 20311 /a\0b";
        CHECK(!pn_decode_line(PN_UNIX, nul, sizeof nul - 1, PN_ORDER_HOST, &s, &path, &plen));
    }
    /* the path/path_len out-parameters may be NULL */
    CHECK(pn_decode_line(PN_UNIX, l1, strlen(l1), PN_ORDER_HOST, &s, NULL, NULL));
#undef UNIX_DECODE
}

static void test_packet_netlink(void)
{
    struct pn_sock s;
    current = "packet/netlink";

    const char *pk = "0000000000000000 3      3    0003   2     1 0      0      31337";
    if (CHECK(decode(PN_PACKET, pk, PN_ORDER_HOST, &s))) {
        CHECK_EQ(s.table, PN_PACKET);
        CHECK_EQ(s.stype, 3);
        CHECK_EQ(s.protocol, 0x0003);        /* ETH_P_ALL */
        CHECK_EQ(s.ext, 2);                  /* ifindex */
        CHECK(s.flags & PN_SF_PKT_RUNNING);
        CHECK_EQ(s.uid, 0);
        CHECK_EQ(s.inode, 31337);
    }
    const char *pk2 = "0000000000000000 2      2    88cc   0     0 0      1000   31338 ";
    if (CHECK(decode(PN_PACKET, pk2, PN_ORDER_HOST, &s))) {
        CHECK_EQ(s.protocol, 0x88cc);        /* LLDP */
        CHECK(!(s.flags & PN_SF_PKT_RUNNING));
        CHECK_EQ(s.uid, 1000);
    }
    CHECK(!decode(PN_PACKET, "sk       RefCnt Type Proto  Iface R Rmem   User   Inode", PN_ORDER_HOST, &s));
    CHECK(!decode(PN_PACKET, "0000000000000000 3      3    0003   2     1 0      0", PN_ORDER_HOST, &s));

    const char *nl = "0000000000000000 0   812        00000551 0        0        0     2        0        24410";
    if (CHECK(decode(PN_NETLINK, nl, PN_ORDER_HOST, &s))) {
        CHECK_EQ(s.table, PN_NETLINK);
        CHECK_EQ(s.protocol, 0);             /* NETLINK_ROUTE */
        CHECK_EQ(s.ext, 812);                /* port id */
        CHECK_EQ(s.ext_len, 0x551);          /* groups */
        CHECK_EQ(s.inode, 24410);
        CHECK(s.flags & PN_SF_NO_UID);
    }
    /* kernel-owned socket: port id 0, family 16 (generic), big port id */
    CHECK(decode(PN_NETLINK,
        "0000000000000000 16  4294967295 00000000 0        0        0     2        0        11",
        PN_ORDER_HOST, &s) && s.protocol == 16 && s.ext == 4294967295u);
    CHECK(!decode(PN_NETLINK,
        "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode",
        PN_ORDER_HOST, &s));
    CHECK(!decode(PN_NETLINK, "0000000000000000 0   812        00000551 0        0        0     2        0",
                  PN_ORDER_HOST, &s));
}

/* ------------------------------------------------------------------------ */
/* Headers and malformed lines return 0                                       */

static void test_malformed(void)
{
    struct pn_sock s;
    const char *path;
    size_t plen;
    current = "malformed";

    const char *good =
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0";
    CHECK(decode(PN_TCP, good, PN_ORDER_LITTLE, &s));   /* the baseline decodes */

    /* headers */
    CHECK(!decode(PN_TCP, "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode", PN_ORDER_HOST, &s));
    CHECK(!decode(PN_TCP6, "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode", PN_ORDER_HOST, &s));
    CHECK(!decode(PN_UDP, "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops", PN_ORDER_HOST, &s));
    /* empty, blank */
    CHECK(!pn_decode_line(PN_TCP, "", 0, PN_ORDER_HOST, &s, &path, &plen));
    CHECK(!decode(PN_TCP, "      ", PN_ORDER_HOST, &s));
    CHECK(!pn_decode_line(PN_UNIX, "", 0, PN_ORDER_HOST, &s, &path, &plen));
    CHECK(!pn_decode_line(PN_PACKET, "", 0, PN_ORDER_HOST, &s, &path, &plen));
    CHECK(!pn_decode_line(PN_NETLINK, "", 0, PN_ORDER_HOST, &s, &path, &plen));
    /* garbage hex in the address, the port, the state */
    CHECK(!decode(PN_TCP, "   0: 0100007G:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345", PN_ORDER_LITTLE, &s));
    CHECK(!decode(PN_TCP, "   0: 0100007F:1FZ0 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345", PN_ORDER_LITTLE, &s));
    CHECK(!decode(PN_TCP, "   0: 0100007F:1F90 00000000:0000 QQ 00000000:00000000 00:00000000 00000000  1000        0 12345", PN_ORDER_LITTLE, &s));
    /* a short address (7 digits) or a long one (9) */
    CHECK(!decode(PN_TCP, "   0: 100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345", PN_ORDER_LITTLE, &s));
    CHECK(!decode(PN_TCP, "   0: 0100007F0:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345", PN_ORDER_LITTLE, &s));
    /* junk glued to the inode; a uid that overflows 32 bits */
    CHECK(!decode(PN_TCP, "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345abc", PN_ORDER_LITTLE, &s));
    CHECK(!decode(PN_TCP, "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  4294967296        0 12345", PN_ORDER_LITTLE, &s));
    /* an inode that overflows 64 bits */
    CHECK(!decode(PN_TCP, "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 18446744073709551616", PN_ORDER_LITTLE, &s));
    /* truncated at every field boundary of the good line */
    {
        size_t n = strlen(good);
        int all_rejected = 1;
        /* cut anywhere before the inode is complete: must never decode */
        const char *inode_end = strstr(good, "12345") + 5;
        for (size_t cut = 0; good + cut < inode_end - 5; cut++)
            if (pn_decode_line(PN_TCP, good, cut, PN_ORDER_LITTLE, &s, &path, &plen)) {
                printf("  truncated tcp line decoded at cut %zu of %zu\n", cut, n);
                all_rejected = 0;
            }
        CHECK(all_rejected);
    }
    /* a NUL byte in the middle (len covers it) */
    {
        char buf[256];
        size_t n = strlen(good);
        memcpy(buf, good, n);
        buf[20] = '\0';            /* inside the remote address */
        CHECK(!pn_decode_line(PN_TCP, buf, n, PN_ORDER_LITTLE, &s, &path, &plen));
        memcpy(buf, good, n);
        buf[8] = '\0';             /* inside the local address */
        CHECK(!pn_decode_line(PN_TCP, buf, n, PN_ORDER_LITTLE, &s, &path, &plen));
    }
    /* overlong: a valid line padded to 8 KiB is not anything the kernel prints */
    {
        size_t n = 8192;
        char *big = malloc(n);
        if (CHECK(big != NULL)) {
            memset(big, ' ', n);
            memcpy(big, good, strlen(good));
            CHECK(!pn_decode_line(PN_TCP, big, n, PN_ORDER_LITTLE, &s, &path, &plen));
            memset(big, 'A', n);
            CHECK(!pn_decode_line(PN_UNIX, big, n, PN_ORDER_HOST, &s, &path, &plen));
            free(big);
        }
    }
    /* unknown tables */
    CHECK(!pn_decode_line(PN_NTABLES, good, strlen(good), PN_ORDER_LITTLE, &s, &path, &plen));
    CHECK(!pn_decode_line(-1, good, strlen(good), PN_ORDER_LITTLE, &s, &path, &plen));
    CHECK(!pn_decode_line(1000, good, strlen(good), PN_ORDER_LITTLE, &s, &path, &plen));
}

/* ------------------------------------------------------------------------ */
/* readlink targets                                                          */

static int link_ok(const char *s, uint64_t *ino) { return pn_parse_socket_link(s, strlen(s), ino); }

static void test_socket_link(void)
{
    uint64_t ino = 0;
    current = "socket link";
    CHECK(link_ok("socket:[12345]", &ino) && ino == 12345);
    CHECK(link_ok("socket:[0]", &ino) && ino == 0);
    CHECK(link_ok("socket:[18446744073709551615]", &ino) && ino == UINT64_MAX);
    CHECK(!link_ok("socket:[18446744073709551616]", &ino));   /* overflow */
    CHECK(!link_ok("socket:[99999999999999999999999]", &ino));
    CHECK(!link_ok("pipe:[1]", &ino));
    CHECK(!link_ok("anon_inode:[eventpoll]", &ino));
    CHECK(!link_ok("/dev/null", &ino));
    CHECK(!link_ok("socket:[]", &ino));
    CHECK(!link_ok("socket:[12x]", &ino));
    CHECK(!link_ok("socket:[-1]", &ino));
    CHECK(!link_ok("socket:[ 1]", &ino));
    CHECK(!link_ok("socket:[12345", &ino));                     /* missing ] */
    CHECK(!link_ok("socket:[12345]x", &ino));
    CHECK(!link_ok("socket:12345]", &ino));
    CHECK(!link_ok("socket:", &ino));
    CHECK(!link_ok("", &ino));
    CHECK(!pn_parse_socket_link("socket:[12345]", 13, &ino));   /* len cuts the ] */
    {
        const char nul[] = "socket:[12\0" "45]";
        CHECK(!pn_parse_socket_link(nul, sizeof nul - 1, &ino));
    }
}

/* ------------------------------------------------------------------------ */
/* pn_snapshot over a fixture tree                                           */

static char base[200];   /* mkdtemp'd by main(), removed by main() */
static char root[256];   /* the fixture tree of the running group, under base */

/* Start a fresh fixture tree <base>/<name>; every put_* is relative to it. */
static int use_tree(const char *name)
{
    snprintf(root, sizeof root, "%s/%s", base, name);
    if (!CHECK(mkdir(root, 0755) == 0)) {
        printf("  mkdir %s: %s\n", root, strerror(errno));
        return 0;
    }
    return 1;
}

static void put_file(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    if (!CHECK(f != NULL)) {
        printf("  cannot create %s: %s\n", p, strerror(errno));
        return;
    }
    fputs(text, f);
    fclose(f);
}

static void put_dir(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        printf("  mkdir %s: %s\n", p, strerror(errno));
}

static void put_link(const char *rel, const char *target)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    if (!CHECK(symlink(target, p) == 0))
        printf("  symlink %s: %s\n", p, strerror(errno));
}

/* Owner fd: "<pid>/fd/<fd> -> socket:[<inode>]" */
static void put_fd(int pid, int fd, const char *target)
{
    char rel[64];
    snprintf(rel, sizeof rel, "%d", pid);
    put_dir(rel);
    snprintf(rel, sizeof rel, "%d/fd", pid);
    put_dir(rel);
    snprintf(rel, sizeof rel, "%d/fd/%d", pid, fd);
    put_link(rel, target);
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st; (void)ftw;
    return type == FTW_DP ? rmdir(p) : unlink(p);
}

static const struct pn_sock *find_inode(const struct pn_result *r, int table, uint64_t inode)
{
    for (size_t i = 0; i < r->nsocks; i++)
        if (r->socks[i].inode == inode && (table < 0 || r->socks[i].table == table))
            return &r->socks[i];
    return NULL;
}

/* Does owner i of socket s have this pid, fd and name? */
static int owner_is(const struct pn_result *r, const struct pn_sock *s, uint32_t i,
                    int pid, int fd, const char *name)
{
    if (!s || i >= s->owner_count || s->owner_first + i >= r->nowners)
        return 0;
    const struct pn_owner *o = &r->owners[s->owner_first + i];
    if (o->pid != pid || o->fd != fd)
        return 0;
    if (!name)
        return (o->flags & PN_SF_NO_NAME) != 0;
    return !(o->flags & PN_SF_NO_NAME) && o->name_len == strlen(name) &&
           o->name_off + o->name_len <= r->strings_len &&
           memcmp(r->strings + o->name_off, name, o->name_len) == 0;
}

static void dump_owners(const struct pn_result *r, const struct pn_sock *s)
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

static void test_snapshot_fixture(void)
{
    if (!use_tree("main"))
        return;

    /* net/tcp, in this host's own byte order, as this host's kernel would print */
    {
        char text[16384], line[512];
        size_t n = 0;
        const uint8_t any[4] = { 0, 0, 0, 0 };
        const uint8_t a10[4] = { 10, 0, 0, 5 }, peer[4] = { 192, 168, 1, 2 };
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\n",
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode");
        inet_line(line, sizeof line, 0, 0, PN_ORDER_HOST, LOOP4, 8080, any, 0, 0x0A, 1000, 111);
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\n", line);
        inet_line(line, sizeof line, 1, 0, PN_ORDER_HOST, a10, 22, peer, 51000, 0x01, 0, 222);
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\n", line);
        inet_line(line, sizeof line, 2, 0, PN_ORDER_HOST, a10, 22, peer, 51001, 0x06, 0, 0);
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\n", line);
        /* a malformed line: counted as skipped, does not stop the table */
        n += (size_t)snprintf(text + n, sizeof text - n, "   3: garbage here\n");
        /* an unowned socket */
        inet_line(line, sizeof line, 4, 0, PN_ORDER_HOST, a10, 443, any, 0, 0x0A, 0, 666);
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\n", line);
        (void)n;
        put_dir("net");
        put_file("net/tcp", text);
    }
    put_file("net/unix",
        "Num       RefCount Protocol Flags    Type St Inode Path\n"
        "0000000000000000: 00000002 00000000 00010000 0001 01   333 /run/my app.sock\n"
        "0000000000000000: 00000002 00000000 00000000 0002 01   444 @abstract\n"
        "0000000000000000: 00000003 00000000 00000000 0001 03   555\n"
        "this line is not a unix socket\n");
    /* net/tcp6 and net/udp are absent: MISSING, not an error */

    /* socket 111 shared by three processes (pid 100 holds it twice) */
    put_fd(100, 3, "socket:[111]");
    put_fd(100, 9, "socket:[111]");
    put_fd(100, 4, "pipe:[9]");
    put_fd(100, 7, "socket:[333]");
    put_fd(100, 8, "/dev/null");
    put_file("100/comm", "server\n");
    put_fd(200, 5, "socket:[111]");
    put_fd(200, 1, "socket:[222]");
    put_file("200/comm", "worker\n");
    put_fd(50, 10, "socket:[111]");
    put_file("50/comm", "init\n");
    /* 1000 sorts after 200 numerically but before it as text */
    put_fd(1000, 0, "socket:[444]");
    put_file("1000/comm", "late");
    /* owner without a comm file: kept, flagged PN_SF_NO_NAME */
    put_fd(500, 2, "socket:[555]");
    /* a pid dir without fd dir, a pid with an empty fd dir, non-numeric dirs */
    put_dir("300");
    put_file("300/comm", "zombie\n");
    put_dir("400");
    put_dir("400/fd");
    put_dir("self");
    put_dir("12ab");
    put_fd(0, 1, "socket:[111]");          /* pid 0 is never a process */
    /* a symlinked pid would lead out of the tree: ignored */
    put_link("600", "100");

    struct pn_query q;
    struct pn_result r;
    memset(&q, 0, sizeof q);
    q.proc_root = root;
    q.tables = 1u << PN_TCP | 1u << PN_TCP6 | 1u << PN_UDP | 1u << PN_UNIX;
    q.flags = PN_Q_OWNERS;
    q.byte_order = PN_ORDER_HOST;
    q.threads = 1;
    q.lport = q.rport = -1;
    q.uid = -1;
    q.source = PN_SRC_PROCFS;    /* the fixture's text, not this host's netlink */

    for (int threads = 1; threads <= 3; threads += 2) {
        q.threads = threads;
        printf("info: fixture snapshot with threads=%d\n", threads);
        if (!CHECK(pn_snapshot(&q, &r) == 0)) {
            printf("  pn_snapshot: %s\n", strerror(errno));
            pn_result_free(&r);
            continue;
        }
        CHECK_EQ(r.table_status[PN_TCP], PN_TABLE_READ);
        CHECK_EQ(r.table_status[PN_UNIX], PN_TABLE_READ);
        CHECK_EQ(r.table_status[PN_TCP6], PN_TABLE_MISSING);
        CHECK_EQ(r.table_status[PN_UDP], PN_TABLE_MISSING);
        CHECK_EQ(r.table_status[PN_RAW], PN_TABLE_NOT_ASKED);
        CHECK_EQ(r.table_source[PN_TCP], PN_SRC_PROCFS);
        CHECK_EQ(r.table_source[PN_UNIX], PN_SRC_PROCFS);
        CHECK_EQ(r.skipped[PN_TCP], 1);
        CHECK_EQ(r.skipped[PN_UNIX], 1);
        CHECK_EQ(r.skipped[PN_TCP6], 0);
        CHECK_EQ(r.nsocks, 4 + 3);
        CHECK_EQ(r.ndenied, 0);
        /* fd directories walked: 50 100 200 400 500 1000 (not 0, 300, 600) */
        CHECK_EQ(r.nprocs, 6);

        const struct pn_sock *s111 = find_inode(&r, PN_TCP, 111);
        if (CHECK(s111 != NULL)) {
            CHECK_MEM(s111->laddr, LOOP4, 4);
            CHECK_EQ(s111->lport, 8080);
            CHECK_EQ(s111->uid, 1000);
            /* sorted by pid, then fd */
            if (!CHECK_EQ(s111->owner_count, 4) ||
                !CHECK(owner_is(&r, s111, 0, 50, 10, "init")) ||
                !CHECK(owner_is(&r, s111, 1, 100, 3, "server")) ||
                !CHECK(owner_is(&r, s111, 2, 100, 9, "server")) ||
                !CHECK(owner_is(&r, s111, 3, 200, 5, "worker")))
                dump_owners(&r, s111);
        }
        const struct pn_sock *s222 = find_inode(&r, PN_TCP, 222);
        if (CHECK(s222 != NULL)) {
            const uint8_t a10[4] = { 10, 0, 0, 5 }, peer[4] = { 192, 168, 1, 2 };
            CHECK_MEM(s222->laddr, a10, 4);
            CHECK_MEM(s222->raddr, peer, 4);
            CHECK_EQ(s222->rport, 51000);
            CHECK_EQ(s222->owner_count, 1);
            CHECK(owner_is(&r, s222, 0, 200, 1, "worker"));
        }
        const struct pn_sock *s0 = find_inode(&r, PN_TCP, 0);
        CHECK(s0 != NULL && s0->owner_count == 0 && s0->state == 6);
        const struct pn_sock *s666 = find_inode(&r, PN_TCP, 666);
        CHECK(s666 != NULL && s666->owner_count == 0 && s666->lport == 443);

        const struct pn_sock *s333 = find_inode(&r, PN_UNIX, 333);
        if (CHECK(s333 != NULL)) {
            CHECK(s333->flags & PN_SF_UNIX_ACC);
            CHECK(s333->ext_len == strlen("/run/my app.sock") &&
                  s333->ext + s333->ext_len <= r.strings_len &&
                  memcmp(r.strings + s333->ext, "/run/my app.sock", s333->ext_len) == 0);
            CHECK(s333->owner_count == 1 && owner_is(&r, s333, 0, 100, 7, "server"));
        }
        const struct pn_sock *s444 = find_inode(&r, PN_UNIX, 444);
        if (CHECK(s444 != NULL)) {
            CHECK(s444->ext_len == 9 && s444->ext + 9 <= r.strings_len &&
                  memcmp(r.strings + s444->ext, "@abstract", 9) == 0);
            CHECK(s444->owner_count == 1 && owner_is(&r, s444, 0, 1000, 0, "late"));
        }
        const struct pn_sock *s555 = find_inode(&r, PN_UNIX, 555);
        if (CHECK(s555 != NULL)) {
            CHECK_EQ(s555->ext_len, 0);
            if (!CHECK(s555->owner_count == 1 && owner_is(&r, s555, 0, 500, 2, NULL)))
                dump_owners(&r, s555);
        }
        /* every owner range lies inside the owners array */
        int ranges_ok = 1;
        for (size_t i = 0; i < r.nsocks; i++)
            if ((size_t)r.socks[i].owner_first + r.socks[i].owner_count > r.nowners)
                ranges_ok = 0;
        CHECK(ranges_ok);
        CHECK_EQ(r.nowners, 4 + 1 + 1 + 1 + 1);
        pn_result_free(&r);
        CHECK(r.socks == NULL && r.owners == NULL && r.strings == NULL);
    }

    /* pid filter + owned-only: only pid 100's sockets, only its owner rows */
    {
        const int32_t pids[] = { 100 };
        q.pids = pids;
        q.npids = 1;
        q.flags = PN_Q_OWNERS | PN_Q_OWNED_ONLY;
        q.threads = 0;
        if (CHECK(pn_snapshot(&q, &r) == 0)) {
            CHECK_EQ(r.nsocks, 2);
            const struct pn_sock *s111 = find_inode(&r, PN_TCP, 111);
            CHECK(s111 != NULL && s111->owner_count == 2 &&
                  owner_is(&r, s111, 0, 100, 3, "server") &&
                  owner_is(&r, s111, 1, 100, 9, "server"));
            CHECK(find_inode(&r, PN_UNIX, 333) != NULL);
            CHECK(find_inode(&r, PN_TCP, 222) == NULL);
            CHECK_EQ(r.nprocs, 1);
        }
        pn_result_free(&r);
        q.pids = NULL;
        q.npids = 0;
    }

    /* filters decided from the table: lport, state, uid */
    {
        q.flags = 0;                  /* no owner walk */
        q.tables = 1u << PN_TCP;
        q.lport = 22;
        if (CHECK(pn_snapshot(&q, &r) == 0)) {
            CHECK_EQ(r.nsocks, 2);    /* 222 and the TIME_WAIT one */
            CHECK_EQ(r.nowners, 0);
            CHECK_EQ(r.nprocs, 0);
        }
        pn_result_free(&r);
        q.lport = -1;
        q.state_mask[PN_TCP] = 1u << 0x0A;   /* LISTEN only */
        if (CHECK(pn_snapshot(&q, &r) == 0)) {
            CHECK_EQ(r.nsocks, 2);    /* 111 and 666 */
            CHECK(find_inode(&r, PN_TCP, 111) && find_inode(&r, PN_TCP, 666));
        }
        pn_result_free(&r);
        q.state_mask[PN_TCP] = 0;
        q.uid = 1000;
        if (CHECK(pn_snapshot(&q, &r) == 0))
            CHECK(r.nsocks == 1 && r.socks[0].inode == 111);
        pn_result_free(&r);
        q.uid = -1;
    }

    /* Source selection, deterministic on every host (netlink refused by the
     * query's test hook): AUTO falls back to the fixture's text per table;
     * NETLINK alone reports the refusal as a table error. */
    {
        q.tables = 1u << PN_TCP | 1u << PN_UNIX;
        q.flags = PN_Q_OWNERS;
        q.source = PN_SRC_AUTO;
        q.netlink_deny = q.tables;
        if (CHECK(pn_snapshot(&q, &r) == 0)) {
            CHECK_EQ(r.table_status[PN_TCP], PN_TABLE_READ);
            CHECK_EQ(r.table_source[PN_TCP], PN_SRC_PROCFS);
            CHECK_EQ(r.table_source[PN_UNIX], PN_SRC_PROCFS);
            CHECK_EQ(r.nsocks, 4 + 3);
            const struct pn_sock *s111 = find_inode(&r, PN_TCP, 111);
            CHECK(s111 != NULL && s111->owner_count == 4);
        }
        pn_result_free(&r);
        q.source = PN_SRC_NETLINK;
        if (CHECK(pn_snapshot(&q, &r) == 0)) {
            CHECK_EQ(r.table_status[PN_TCP], PN_TABLE_ERROR);
            CHECK_EQ(r.table_errno[PN_TCP], EPERM);
            CHECK_EQ(r.table_source[PN_TCP], PN_SRC_NETLINK);
            CHECK_EQ(r.table_status[PN_UNIX], PN_TABLE_ERROR);
            CHECK_EQ(r.nsocks, 0);
        }
        pn_result_free(&r);
        q.source = PN_SRC_PROCFS;
        q.netlink_deny = 0;
        q.tables = 1u << PN_TCP;
        q.flags = 0;
    }

    /* a root that does not exist, and one without net/ */
    {
        char bad[320];
        snprintf(bad, sizeof bad, "%s/nonexistent", root);
        q.proc_root = bad;
        errno = 0;
        CHECK(pn_snapshot(&q, &r) == -1 && errno == ENOENT);
        pn_result_free(&r);
        snprintf(bad, sizeof bad, "%s/400", root);
        q.proc_root = bad;
        CHECK(pn_snapshot(&q, &r) == -1);
        pn_result_free(&r);
    }
}

/* A default query over the current fixture tree. */
static void fixture_query(struct pn_query *q, uint32_t tables)
{
    memset(q, 0, sizeof *q);
    q->proc_root = root;
    q->tables = tables;
    q->byte_order = PN_ORDER_HOST;
    q->lport = q->rport = -1;
    q->uid = -1;
    q->source = PN_SRC_PROCFS;
}

/* The table reader's edges: chunk boundaries, overlong and empty files. */
static void test_snapshot_reader(void)
{
    if (!use_tree("reader"))
        return;
    put_dir("net");

    /* 6000 lines (~1 MB): crosses the reader's 256 KiB chunks several times,
     * so lines split across reads must be reassembled. */
    {
        const int nlines = 6000;
        size_t cap = (size_t)nlines * 200 + 256, n = 0;
        char *text = malloc(cap), line[512];
        if (!CHECK(text != NULL))
            return;
        n += (size_t)snprintf(text + n, cap - n, "%s\n",
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode");
        for (int i = 0; i < nlines; i++) {
            const uint8_t a[4] = { 10, (uint8_t)(i >> 8), (uint8_t)i, 1 };
            inet_line(line, sizeof line, i, 0, PN_ORDER_HOST, a, (unsigned)(1000 + i), LOOP4,
                      80, 1, (unsigned)i, (unsigned long)(100000 + i));
            n += (size_t)snprintf(text + n, cap - n, "%s\n", line);
        }
        put_file("net/tcp", text);
        free(text);
    }
    /* udp: an overlong line (8 KiB, no newline within) between two good ones */
    {
        char line[512];
        size_t cap = 16384, n = 0;
        char *text = malloc(cap);
        if (!CHECK(text != NULL))
            return;
        n += (size_t)snprintf(text + n, cap - n, "   sl  local_address rem_address   st\n");
        inet_line(line, sizeof line, 0, 0, PN_ORDER_HOST, LOOP4, 53, LOOP4, 0, 7, 0, 7001);
        n += (size_t)snprintf(text + n, cap - n, "%s\n", line);
        memset(text + n, 'x', 8192);
        n += 8192;
        text[n++] = '\n';
        inet_line(line, sizeof line, 2, 0, PN_ORDER_HOST, LOOP4, 54, LOOP4, 0, 7, 0, 7002);
        n += (size_t)snprintf(text + n, cap - n, "%s\n", line);
        put_file("net/udp", text);
        free(text);
    }
    put_file("net/raw", "");                       /* empty: not even a header */
    put_file("net/unix", "Num       RefCount Protocol Flags    Type St Inode Path\n");

    struct pn_query q;
    struct pn_result r;
    fixture_query(&q, 1u << PN_TCP | 1u << PN_UDP | 1u << PN_RAW | 1u << PN_UNIX);
    if (CHECK(pn_snapshot(&q, &r) == 0)) {
        CHECK_EQ(r.table_status[PN_TCP], PN_TABLE_READ);
        CHECK_EQ(r.skipped[PN_TCP], 0);
        size_t ntcp = 0, bad = 0;
        for (size_t i = 0; i < r.nsocks; i++) {
            const struct pn_sock *s = &r.socks[i];
            if (s->table != PN_TCP)
                continue;
            unsigned k = (unsigned)(s->inode - 100000);
            const uint8_t a[4] = { 10, (uint8_t)(k >> 8), (uint8_t)k, 1 };
            if (s->inode != 100000 + (uint64_t)ntcp || s->lport != 1000 + k ||
                s->uid != k || memcmp(s->laddr, a, 4) != 0)
                bad++;
            ntcp++;
        }
        CHECK_EQ(ntcp, 6000);
        CHECK_EQ(bad, 0);                  /* in file order, every field intact */
        CHECK_EQ(r.table_status[PN_UDP], PN_TABLE_READ);
        CHECK_EQ(r.skipped[PN_UDP], 1);    /* the overlong line, counted once */
        CHECK(find_inode(&r, PN_UDP, 7001) != NULL);
        CHECK(find_inode(&r, PN_UDP, 7002) != NULL);
        CHECK_EQ(r.table_status[PN_RAW], PN_TABLE_READ);
        CHECK_EQ(r.skipped[PN_RAW], 0);
        CHECK_EQ(r.table_status[PN_UNIX], PN_TABLE_READ);
        CHECK_EQ(r.nsocks, 6000 + 2);
    }
    pn_result_free(&r);
}

/* A table whose last line has no trailing newline (a truncated file). Its own
 * group: a reader that runs past the end of its buffer crashes here. */
static void test_snapshot_no_final_newline(void)
{
    if (!use_tree("nonl"))
        return;
    char text[1024], line[512];
    inet_line(line, sizeof line, 0, 0, PN_ORDER_HOST, LOOP4, 8080, ZERO16, 0, 0x0A, 0, 4321);
    snprintf(text, sizeof text, "  sl  local_address rem_address\n%s", line);
    put_dir("net");
    put_file("net/tcp", text);
    put_file("net/unix", "Num       RefCount Protocol Flags    Type St Inode Path\n"
                         "0000000000000000: 00000002 00000000 00010000 0001 01 20311 /p q");

    struct pn_query q;
    struct pn_result r;
    fixture_query(&q, 1u << PN_TCP | 1u << PN_UNIX);
    if (CHECK(pn_snapshot(&q, &r) == 0)) {
        CHECK_EQ(r.skipped[PN_TCP], 0);
        CHECK_EQ(r.skipped[PN_UNIX], 0);
        CHECK(find_inode(&r, PN_TCP, 4321) != NULL);
        const struct pn_sock *u = find_inode(&r, PN_UNIX, 20311);
        CHECK(u != NULL && u->ext_len == 4 && memcmp(r.strings + u->ext, "/p q", 4) == 0);
        CHECK_EQ(r.nsocks, 2);
    }
    pn_result_free(&r);
}

/* ------------------------------------------------------------------------ */
/* The running kernel's /proc                                                 */

/* One live snapshot from `source`, checked against our own sockets. */
static void live_source(int source, int tcp, const struct sockaddr_in *sinp,
                        int tcp6, const struct sockaddr_in6 *sin6p, int ux, const char *upath)
{
    const char *sname = source == PN_SRC_PROCFS ? "procfs" : "auto";
    struct pn_query q;
    struct pn_result r;
    memset(&q, 0, sizeof q);
    q.proc_root = "/proc";
    q.tables = (1u << PN_NTABLES) - 1;
    q.flags = PN_Q_OWNERS;
    q.byte_order = PN_ORDER_HOST;
    q.lport = q.rport = -1;
    q.uid = -1;
    q.source = source;
    if (!CHECK(pn_snapshot(&q, &r) == 0)) {
        printf("  pn_snapshot(/proc, %s): %s\n", sname, strerror(errno));
        pn_result_free(&r);
        return;
    }
    int nnetlink = 0;
    for (int t = 0; t < PN_NTABLES; t++)
        if (r.table_status[t] == PN_TABLE_READ && r.table_source[t] == PN_SRC_NETLINK)
            nnetlink++;
    printf("info: live %s: %zu sockets, %zu owners, %u processes walked, %zu denied, "
           "%d tables from netlink\n", sname, r.nsocks, r.nowners, r.nprocs, r.ndenied, nnetlink);
    if (source == PN_SRC_AUTO && nnetlink == 0)
        skip("netlink sock_diag is not available here (e.g. under qemu-user): "
             "AUTO used the text tables, the netlink source is not covered");
    if (source == PN_SRC_PROCFS)
        for (int t = 0; t < PN_NTABLES; t++)
            if (r.table_status[t] == PN_TABLE_READ && r.table_source[t] != PN_SRC_PROCFS) {
                check_(0, "PN_SRC_PROCFS reads text only", __LINE__);
                printf("  table %d came from source %d\n", t, r.table_source[t]);
            }
    CHECK_EQ(r.table_status[PN_TCP], PN_TABLE_READ);
    CHECK_EQ(r.table_status[PN_UNIX], PN_TABLE_READ);
    /* Every line the running kernel printed must decode (whatever the byte
     * order, the fields parse the same). A skip here is a decoder bug. */
    for (int t = 0; t < PN_NTABLES; t++) {
        if (r.table_status[t] == PN_TABLE_READ && r.skipped[t] != 0) {
            check_(0, "live table decodes without skipped lines", __LINE__);
            printf("  table %d (source %d): %u lines skipped\n", t, r.table_source[t], r.skipped[t]);
        } else {
            passed++;
        }
    }
    CHECK(r.nprocs >= 1);

    /* Under qemu-user a big-endian guest reads the *host* kernel's text,
     * which is little-endian: addresses come out reversed, and that is not
     * the decoder's fault. Find out which case we are in from our own
     * 127.0.0.1 socket and say so, rather than fail. (Netlink carries
     * addresses as network-order bytes: there, no such excuse.) */
    int order_matches = 1;
    if (tcp >= 0) {
        struct stat st;
        const struct pn_sock *s = fstat(tcp, &st) == 0 ? find_inode(&r, PN_TCP, st.st_ino) : NULL;
        if (CHECK(s != NULL)) {
            CHECK_EQ(s->lport, ntohs(sinp->sin_port));   /* ports never depend on order */
            CHECK_EQ(s->state, 0x0A);
            if (memcmp(s->laddr, LOOP4, 4) == 0) {
                passed++;
            } else if (host_big_endian() && r.table_source[PN_TCP] == PN_SRC_PROCFS) {
                const uint8_t rev[4] = { 1, 0, 0, 127 };
                order_matches = 0;
                if (CHECK_MEM(s->laddr, rev, 4))
                    skip("big-endian guest on a little-endian kernel (qemu-user): "
                         "live address checks do not apply");
            } else {
                CHECK_MEM(s->laddr, LOOP4, 4);
            }
            /* our own fd, owned by us (qemu-user runs us as the same process) */
            int found = 0;
            for (uint32_t i = 0; i < s->owner_count; i++)
                if (r.owners[s->owner_first + i].pid == getpid() &&
                    r.owners[s->owner_first + i].fd == tcp)
                    found = 1;
            if (!CHECK(found))
                dump_owners(&r, s);
        }
    }
    if (tcp6 >= 0) {
        struct stat st;
        const struct pn_sock *s = fstat(tcp6, &st) == 0 ? find_inode(&r, PN_TCP6, st.st_ino) : NULL;
        if (CHECK(s != NULL)) {
            CHECK_EQ(s->lport, ntohs(sin6p->sin6_port));
            if (order_matches)
                CHECK_MEM(s->laddr, LOOP6, 16);
            else
                skip("tcp6 live address (kernel order differs from ours)");
        }
    }
    if (ux >= 0) {
        struct stat st;
        const struct pn_sock *s = fstat(ux, &st) == 0 ? find_inode(&r, PN_UNIX, st.st_ino) : NULL;
        if (CHECK(s != NULL)) {
            CHECK(s->flags & PN_SF_UNIX_ACC);
            CHECK(s->ext_len == strlen(upath) && s->ext + s->ext_len <= r.strings_len &&
                  memcmp(r.strings + s->ext, upath, s->ext_len) == 0);
            CHECK(s->owner_count >= 1 && r.owners[s->owner_first].pid == getpid());
        }
    }
    pn_result_free(&r);
}

static void test_live(void)
{
    current = "live /proc";
    if (access("/proc/net/tcp", R_OK) != 0) {
        skip("/proc/net/tcp is not readable here");
        return;
    }

    /* Sockets of our own, so there is something known to look for. */
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    socklen_t slen = sizeof sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (tcp < 0 || bind(tcp, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(tcp, 1) != 0 ||
        getsockname(tcp, (struct sockaddr *)&sin, &slen) != 0) {
        skip("cannot listen on 127.0.0.1: %s", strerror(errno));
        if (tcp >= 0) close(tcp);
        tcp = -1;
    }
    int tcp6 = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 sin6;
    socklen_t slen6 = sizeof sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_loopback;
    if (tcp6 < 0 || bind(tcp6, (struct sockaddr *)&sin6, sizeof sin6) != 0 ||
        listen(tcp6, 1) != 0 || getsockname(tcp6, (struct sockaddr *)&sin6, &slen6) != 0) {
        skip("cannot listen on [::1]: %s", strerror(errno));
        if (tcp6 >= 0) close(tcp6);
        tcp6 = -1;
    }
    /* a listening unix socket whose path has a space in it */
    char upath[108];
    const char *tmp = getenv("TMPDIR");
    snprintf(upath, sizeof upath, "%s/pn test %d.sock", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    int ux = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, upath, strlen(upath) + 1);
    unlink(upath);
    if (ux < 0 || bind(ux, (struct sockaddr *)&sun, sizeof sun) != 0 || listen(ux, 1) != 0) {
        skip("cannot listen on a unix socket: %s", strerror(errno));
        if (ux >= 0) close(ux);
        ux = -1;
    }

    /* Both sources: the /proc/net text, and netlink (AUTO: sock_diag where
     * the kernel and the environment allow it; qemu-user forwards only a few
     * netlink protocols, so under emulation AUTO falls back to the text). */
    static const int sources[] = { PN_SRC_PROCFS, PN_SRC_AUTO };
    for (size_t si = 0; si < sizeof sources / sizeof sources[0]; si++)
        live_source(sources[si], tcp, &sin, tcp6, &sin6, ux, upath);
    if (tcp >= 0) close(tcp);
    if (tcp6 >= 0) close(tcp6);
    if (ux >= 0) { close(ux); unlink(upath); }
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("info: procnet core %s, abi %d, %zu-bit pointers\n",
           pn_version(), pn_abi_version(), sizeof(void *) * 8);

    /* fixture trees live under one mkdtemp directory, removed at the end */
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/procnet-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
        printf("FAIL: mkdtemp %s: %s\n", base, strerror(errno));
        failed++;
        base[0] = '\0';
    }

    group("layout", test_layout);
    group("tcp4 byte order", test_tcp4_orders);
    group("tcp6", test_tcp6);
    group("udp/raw/icmp", test_udp_raw_icmp);
    group("unix", test_unix);
    group("packet/netlink", test_packet_netlink);
    group("malformed", test_malformed);
    group("socket link", test_socket_link);
    if (base[0]) {
        group("snapshot fixture", test_snapshot_fixture);
        group("snapshot reader", test_snapshot_reader);
        group("snapshot no final newline", test_snapshot_no_final_newline);
        current = "cleanup";
        if (!CHECK(nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0))
            printf("  could not remove %s\n", base);
    }
    group("live /proc", test_live);
    if (skipped)
        printf("%u passed, %u failed, %u skipped\n", passed, failed, skipped);
    else
        printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}
