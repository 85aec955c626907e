/*
 * tests/c/bpf/test_bpf.c -- the BPF owner source (csrc/owners_bpf.c) against the
 * /proc walk (csrc/owners_proc.c), on the live system. Its own main(); built
 * and run by tests/c/bpf/run_bpf.sh, which amounts to:
 *
 *   python3 procnet/_build_bpf.py --check  # the committed objects are fresh
 *   cc -std=c11 -Wall -Wextra -Werror -DPN_TEST_BPF -DPN_HAVE_BPF_OBJ -Icsrc \
 *      csrc/(all .c) tests/c/check.c tests/c/bpf/(all .c) -pthread -ldl
 *   ./test_bpf            # exit 77 when BPF cannot load here (prints why)
 *   ./test_bpf bench      # the micro-measurement (open, scan vs walk)
 *
 * Without -DPN_TEST_BPF these files compile to nothing. The checks are in
 * checks.c, the workload in workload.c, the comparison in compare.c.
 *
 * What it pins down (needs root, or CAP_BPF+CAP_PERFMON):
 *   - pn_bpf_scan gives the same (pid, fd, inode) set and the same names per
 *     pid as the /proc walk, over every process of the system, with a
 *     workload of the awkward cases: a TCP listener shared by two forked
 *     children, a socketpair, UDP, a unix socket bound to a path plus an
 *     O_PATH fd on that path (S_ISSOCK but not a socket: absent), a thread
 *     that unshare(CLONE_FILES)s and opens its own socket (absent: /proc/PID/fd
 *     shows the leader's table), an fd passed with SCM_RIGHTS (owned by the
 *     receiver), and a process whose leader exited while a thread still holds
 *     sockets (a zombie leader: nothing, as in /proc/PID/fd);
 *   - nprocs: the leaders with at least one open fd (one process with fds
 *     only past gaps of 64+ fds counts once, one with no fd not at all);
 *   - the pid filter; 8 threads scanning at once through one loaded program;
 *   - open/close cycles leak no fd (run under ASan for memory: ASAN=1);
 *   - the refusals: no libbpf (PROCNET_LIBBPF=/nonexistent) -> ENOENT, a
 *     nested pid namespace -> EOPNOTSUPP, no privileges -> EPERM.
 * Other processes of the system may open or close sockets between the two
 * scans: a mismatch that involves only pids outside the workload is retried.
 */
#ifdef PN_TEST_BPF

#include "bpf_test.h"

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    char why[256];
    setvbuf(stdout, NULL, _IOLBF, 0);
    rootfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        printf("skip: no /proc\n");
        return 77;
    }
    if (argc > 1 && strcmp(argv[1], "bench") == 0)
        return bench(argc > 2 ? atoi(argv[2]) : 100, argc > 3 ? atoi(argv[3]) : 50);

    current = "open";
    if (pn_bpf_open(&bpf, why, sizeof why) < 0) {
        printf("skip: the BPF owner source cannot load here: %s (errno %d, %s)\n", why, errno,
               strerror(errno));
        return 77;
    }
    test_refusals();
    test_open_close();
    current = "setup";
    if (!CHECK(setup_workload() == 0)) {
        printf("    workload setup failed: %s\n", strerror(errno));
    } else {
        test_workload_cases();
        test_equal_to_walk();
        test_nprocs();
        test_threads();
    }
    teardown_workload();
    pn_bpf_close(bpf);
    close(rootfd);
    printf("%u passed, %u failed", passed, failed);
    if (skipped)
        printf(", %u skipped", skipped);
    printf("\n");
    return failed ? 1 : 0;
}

#else
/* Not the BPF test build: nothing here. */
typedef int pn_test_bpf_not_built;
#endif /* PN_TEST_BPF */
