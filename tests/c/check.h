/*
 * tests/c/check.h -- what the C test driver's files share: a tiny check
 * framework (check.c), fixture helpers and the test groups (test_*.c).
 * See test_core.c for what the driver pins down and how it runs.
 */
#ifndef PROCNET_TEST_CHECK_H
#define PROCNET_TEST_CHECK_H

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

/* the check framework (check.c) */
extern unsigned passed, failed, skipped;
extern const char *current;          /* name of the running test group */
int  check_(int ok, const char *what, int line);
int  check_eq_(unsigned long long got, unsigned long long want, const char *expr, int line);
int  check_mem_(const void *got, const void *want, size_t n, const char *expr, int line);
void skip(const char *fmt, ...);
void group(const char *name, void (*fn)(void));
#define CHECK(c)           check_(!!(c), #c, __LINE__)
#define CHECK_EQ(a, b)     check_eq_((unsigned long long)(a), (unsigned long long)(b), #a, __LINE__)
#define CHECK_MEM(a, b, n) check_mem_((a), (b), (n), #a, __LINE__)

/* helpers (check.c) */
int  host_big_endian(void);
void kernel_word(char out[9], const uint8_t b[4], int order);
void kernel_addr(char *out, const uint8_t *addr, int v6, int order);
int  inet_line(char *buf, size_t size, int sl, int v6, int order,
               const uint8_t *la, unsigned lp, const uint8_t *ra, unsigned rp,
               unsigned state, unsigned uid, unsigned long inode);
int  decode(int table, const char *line, int order, struct pn_sock *s);
extern const uint8_t LOOP4[4], ZERO16[16], LOOP6[16], MAPPED6[16];
const struct pn_sock *find_inode(const struct pn_result *r, int table, uint64_t inode);
void dump_owners(const struct pn_result *r, const struct pn_sock *s);

/* test groups */
void test_layout(void);
void test_tcp4_orders(void);
void test_tcp6(void);
void test_udp_raw_icmp(void);
void test_unix(void);
void test_packet_netlink(void);
void test_malformed(void);
void test_socket_link(void);
void test_snapshot_fixture(void);
void test_snapshot_reader(void);
void test_snapshot_no_final_newline(void);
void test_live(void);

/* fixture trees (test_snapshot.c) live under one mkdtemp directory */
extern char base[200];
int rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw);

#endif
