/* bpf_test.h -- shared by the files of the BPF owner source's C test
 * (test_bpf.c: what it checks and main; compare.c: scans and comparing owner
 * sets; workload.c: the live processes; checks.c: the tests; bench.c: the
 * micro-measurement). */
#ifndef PN_BPF_TEST_H
#define PN_BPF_TEST_H

#include "check.h"
#include "pn_internal.h"

#include <dirent.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>


#define NTHREADS 8
#define ATTEMPTS 3

/* compare.c */
extern struct pn_bpf *bpf;
extern int rootfd;
extern const int32_t *workload;   /* pids of the processes this test made */
extern size_t nworkload;

/* workload.c: children block reading gate[0] until it closes; each writes
 * one byte to ready[1] when set up */
extern int gate[2];
extern int ready[2];
struct sockets {
    int lst, sp[2], udp, ux, opath, pass[2], passed;
    uint64_t lst_ino, sp_ino[2], udp_ino, ux_ino, passed_ino, thread_ino;
    int passed_fd_in_a;
    pid_t kid_a, kid_b, kid_z, kid_g, kid_h, kid_e;
    char dir[200], path[240];
};
extern struct sockets W;

void query_init(struct pn_query *q, int threads, const int32_t *pids, size_t npids);
int walk(int threads, const int32_t *pids, size_t npids, struct pn_owners *o);
int scan(const int32_t *pids, size_t npids, struct pn_owners *o);
void check_shape(const struct pn_owners *o);
/* (pid, fd, inode) in one set and not the other, printed when verbose; *inside:
 * how many of them involve the workload's pids */
size_t diff(const struct pn_owners *a, const char *an, const struct pn_owners *b,
            const char *bn, size_t *inside, int verbose);
int compare_with_walk(const int32_t *pids, size_t npids, int threads, const char *what);
int setup_workload(void);
void teardown_workload(void);
void block_on_gate(void);
void say_ready(char c);
void test_workload_cases(void);
void test_equal_to_walk(void);
void test_nprocs(void);
void test_threads(void);
void test_open_close(void);
void test_refusals(void);
int bench(int nkids, int pairs);

#endif /* PN_BPF_TEST_H */
