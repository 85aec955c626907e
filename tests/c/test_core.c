/*
 * tests/c/test_core.c -- plain-C test driver for the procnet C core.
 *
 * Built and run natively and under qemu-user for foreign CPUs by
 * ci/cross/run_c.sh; needs nothing but libc and the csrc/ sources:
 *
 *   cc -std=c11 -O1 -Wall -Wextra -Werror -I csrc csrc/(all .c) tests/c/(all .c) -pthread
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
#include "check.h"

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
