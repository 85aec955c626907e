/*
 * tests/c/test_bpf.c -- the BPF owner source (csrc/owners_bpf.c) against the
 * /proc walk (csrc/owners_proc.c), on the live system. Its own main(); built
 * and run by tests/c/run_bpf.sh, which amounts to:
 *
 *   python3 procnet/_build_bpf.py GEN     # GEN/pn_bpf_obj.h
 *   cc -std=c11 -Wall -Wextra -Werror -DPN_TEST_BPF -DPN_HAVE_BPF_OBJ -IGEN -Icsrc \
 *      csrc/(all .c) tests/c/check.c tests/c/test_bpf.c -pthread -ldl
 *   ./test_bpf            # exit 77 when BPF cannot load here (prints why)
 *   ./test_bpf bench      # the micro-measurement (open, scan vs walk)
 *
 * Without -DPN_TEST_BPF this file compiles to nothing: ci/cross/run_c.sh
 * builds tests/c/(all .c) into the test_core driver, which has its own main.
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

/* ------------------------------------------------------------------------ */
/* Scans                                                                     */

static struct pn_bpf *bpf;
static int rootfd = -1;

static void query_init(struct pn_query *q, int threads, const int32_t *pids, size_t npids)
{
    memset(q, 0, sizeof *q);
    q->proc_root = "/proc";
    q->flags = PN_Q_OWNERS;
    q->threads = threads;
    q->lport = q->rport = -1;
    q->uid = -1;
    q->pids = pids;
    q->npids = npids;
}

static int walk(int threads, const int32_t *pids, size_t npids, struct pn_owners *o)
{
    struct pn_query q;
    struct pn_walk *w;
    query_init(&q, threads, pids, npids);
    if (pn_walk_start(rootfd, &q, &w) < 0)
        return -1;
    return pn_walk_finish(w, o);
}

static int scan(const int32_t *pids, size_t npids, struct pn_owners *o)
{
    struct pn_query q;
    query_init(&q, 0, pids, npids);
    return pn_bpf_scan(bpf, &q, o);
}

/* ------------------------------------------------------------------------ */
/* Comparing two owner sets                                                  */

struct trip {
    int32_t pid;
    int32_t fd;
    uint64_t inode;
    const char *name;
    uint32_t name_len;
};

static int cmp_trip(const void *a, const void *b)
{
    const struct trip *x = a, *y = b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    if (x->fd != y->fd)
        return x->fd < y->fd ? -1 : 1;
    return (x->inode > y->inode) - (x->inode < y->inode);
}

/* The entries as a sorted array, each with its process's name. */
static struct trip *trips(const struct pn_owners *o, size_t *n)
{
    const struct pn_fd_entry *e = o->entries.data;
    const struct pn_proc_info *p = o->procs.data;
    struct trip *t = calloc(o->entries.len + 1, sizeof *t);
    if (!t)
        abort();
    for (size_t i = 0; i < o->entries.len; i++) {
        t[i].pid = e[i].pid;
        t[i].fd = e[i].fd;
        t[i].inode = e[i].inode;
        if (e[i].proc < o->procs.len) {
            t[i].name = (const char *)o->strings.data + p[e[i].proc].name_off;
            t[i].name_len = p[e[i].proc].name_len;
        }
    }
    qsort(t, o->entries.len, sizeof *t, cmp_trip);
    *n = o->entries.len;
    return t;
}

static const int32_t *workload;   /* pids of the processes this test made */
static size_t nworkload;

static int in_workload(int32_t pid)
{
    for (size_t i = 0; i < nworkload; i++)
        if (workload[i] == pid)
            return 1;
    return 0;
}

static void show(const char *side, const struct trip *t)
{
    printf("    only in %s: pid %d fd %d inode %" PRIu64 " '%.*s'%s\n", side, t->pid, t->fd,
           t->inode, (int)t->name_len, t->name ? t->name : "",
           in_workload(t->pid) ? " (workload)" : "");
}

/* Differences between a and b: *inside counts those about workload pids. */
static size_t diff(const struct pn_owners *a, const char *an, const struct pn_owners *b,
                   const char *bn, size_t *inside, int verbose)
{
    size_t na, nb, i = 0, j = 0, d = 0, shown = 0;
    struct trip *ta = trips(a, &na), *tb = trips(b, &nb);
    *inside = 0;
    while (i < na || j < nb) {
        int c = i == na ? 1 : j == nb ? -1 : cmp_trip(&ta[i], &tb[j]);
        const struct trip *odd = NULL;
        const char *side = NULL;
        if (c == 0) {
            if (ta[i].name_len != tb[j].name_len ||
                memcmp(ta[i].name ? ta[i].name : "", tb[j].name ? tb[j].name : "",
                       ta[i].name_len) != 0) {
                d++;
                *inside += in_workload(ta[i].pid);
                if (verbose && shown++ < 20)
                    printf("    name differs for pid %d: %s '%.*s', %s '%.*s'\n", ta[i].pid, an,
                           (int)ta[i].name_len, ta[i].name ? ta[i].name : "", bn,
                           (int)tb[j].name_len, tb[j].name ? tb[j].name : "");
            }
            i++, j++;
            continue;
        }
        if (c < 0)
            odd = &ta[i++], side = an;
        else
            odd = &tb[j++], side = bn;
        d++;
        *inside += in_workload(odd->pid);
        if (verbose && shown++ < 20)
            show(side, odd);
    }
    free(ta);
    free(tb);
    return d;
}

/* Structural invariants of a pn_bpf_scan result. */
static void check_shape(const struct pn_owners *o)
{
    const struct pn_fd_entry *e = o->entries.data;
    const struct pn_proc_info *p = o->procs.data;
    int ok = 1;
    for (size_t i = 0; i < o->entries.len; i++)
        ok &= e[i].proc < o->procs.len && p[e[i].proc].pid == e[i].pid &&
              e[i].next == UINT32_MAX && e[i].inode != 0 && e[i].fd >= 0;
    CHECK(ok);
    for (size_t i = 0; i < o->procs.len; i++) {
        ok &= p[i].name_off + (size_t)p[i].name_len <= o->strings.len && p[i].flags == 0;
        ok &= memchr((const char *)o->strings.data + p[i].name_off, '\0', p[i].name_len) == NULL;
        for (size_t j = 0; j < i; j++)
            ok &= p[j].pid != p[i].pid;          /* one pn_proc_info per pid */
    }
    CHECK(ok);
    CHECK_EQ(o->denied.len, 0);
    CHECK(o->nprocs >= o->procs.len);
    CHECK(o->slots == NULL);                      /* the caller indexes */
}

/* Compare a BPF scan with the /proc walk, retrying when only other
 * processes of the system differ. Returns 1 when equal. */
static int compare_with_walk(const int32_t *pids, size_t npids, int threads, const char *what)
{
    for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
        struct pn_owners ob, ow;
        size_t inside = 0;
        if (!CHECK(scan(pids, npids, &ob) == 0)) {
            printf("    pn_bpf_scan: %s\n", strerror(errno));
            return 0;
        }
        if (!CHECK(walk(threads, pids, npids, &ow) == 0)) {
            pn_owners_free(&ob);
            return 0;
        }
        check_shape(&ob);
        int last = attempt == ATTEMPTS;
        size_t d = diff(&ob, "bpf", &ow, "walk", &inside, 0);
        if (d && (inside || last))
            diff(&ob, "bpf", &ow, "walk", &inside, 1);
        pn_owners_free(&ob);
        pn_owners_free(&ow);
        if (d == 0) {
            passed++;
            printf("  %s: equal (attempt %d)\n", what, attempt);
            return 1;
        }
        if (inside || last) {
            failed++;
            printf("FAIL [%s] %s: %zu differences (%zu in the workload)\n", current, what, d,
                   inside);
            return 0;
        }
        printf("  %s: %zu differences outside the workload, retrying\n", what, d);
        usleep(50 * 1000);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The workload                                                              */

static int gate[2] = { -1, -1 };          /* children block reading gate[0] until it closes */
static int ready[2];         /* each child writes one byte when set up */

struct sockets {
    int lst, sp[2], udp, ux, opath, pass[2], passed;
    uint64_t lst_ino, sp_ino[2], udp_ino, ux_ino, passed_ino, thread_ino;
    int passed_fd_in_a;
    pid_t kid_a, kid_b, kid_z, kid_g, kid_h, kid_e;
    char dir[200], path[240];
};
static struct sockets W;

static uint64_t ino_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static void block_on_gate(void)
{
    char c;
    while (read(gate[0], &c, 1) < 0 && errno == EINTR)
        ;
}

static void say_ready(char c)
{
    while (write(ready[1], &c, 1) < 0 && errno == EINTR)
        ;
}

static int recv_fd(int sock)
{
    char data;
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { &data, 1 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                        .msg_controllen = sizeof ctl };
    if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) != 1)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    int fd;
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return -1;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

static int send_fd(int sock, int fd)
{
    char data = 'f';
    char ctl[CMSG_SPACE(sizeof(int))];
    memset(ctl, 0, sizeof ctl);
    struct iovec iov = { &data, 1 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                        .msg_controllen = sizeof ctl };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}

/* Kid A: receives a socket over SCM_RIGHTS, reports its fd number. */
static void kid_a(void)
{
    close(gate[1]);
    prctl(PR_SET_NAME, "pn-kid-a", 0, 0, 0);
    int fd = recv_fd(W.pass[1]);
    int32_t num = fd;
    while (write(W.pass[1], &num, sizeof num) < 0 && errno == EINTR)
        ;
    say_ready('a');
    block_on_gate();
    _exit(0);
}

static void kid_b(void)
{
    close(gate[1]);
    prctl(PR_SET_NAME, "pn-kid-b", 0, 0, 0);
    say_ready('b');
    block_on_gate();
    _exit(0);
}

/* Kid Z's second thread: holds a socket of its own after the leader exits. */
static void *kid_z_thread(void *arg)
{
    (void)arg;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    (void)s;
    say_ready('z');
    block_on_gate();
    _exit(0);              /* exit_group: ends the process */
    return NULL;
}

static void kid_z(void)
{
    pthread_t t;
    close(gate[1]);
    prctl(PR_SET_NAME, "pn-kid-z", 0, 0, 0);
    if (pthread_create(&t, NULL, kid_z_thread, NULL) != 0)
        _exit(1);
    syscall(SYS_exit, 0);  /* only the leader thread: it stays a zombie */
}

/* Close every fd but the ones listed (-1 ends the list). */
static void close_all_but(int a, int b, int c)
{
    for (int fd = 0; fd < 1024; fd++)
        if (fd != a && fd != b && fd != c)
            close(fd);
}

/* Kid G: fds only at 70 and 200 (the gate) and a socket at 500: the
 * program's "first fd" markers repeat across the gaps; counted once. */
static void kid_g(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    prctl(PR_SET_NAME, "pn-kid-g", 0, 0, 0);
    if (s < 0 || dup2(s, 500) < 0 || dup2(gate[0], 70) < 0 || dup2(gate[0], 200) < 0)
        _exit(1);
    close_all_but(70, 200, 500);
    char c;
    while (read(70, &c, 1) < 0 && errno == EINTR)
        ;
    _exit(0);
}

/* Kid H: no socket, fds only at 100 and 300. */
static void kid_h(void)
{
    if (dup2(gate[0], 100) < 0 || dup2(gate[0], 300) < 0)
        _exit(1);
    close_all_but(100, 300, -1);
    char c;
    while (read(100, &c, 1) < 0 && errno == EINTR)
        ;
    _exit(0);
}

/* Kid E: an empty fd table (killed at the end). */
static void kid_e(void)
{
    close_all_but(-1, -1, -1);
    for (;;)
        pause();
}

/* Number of entries in /proc/PID/fd, -1 when it cannot be listed. */
static int fd_entries(pid_t pid)
{
    char path[64];
    int n = 0;
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static int wait_fd_entries(pid_t pid, int want)
{
    for (int i = 0; i < 400; i++) {
        if (fd_entries(pid) == want)
            return 1;
        usleep(5000);
    }
    return 0;
}

/* The thread with its own fd table (in this process). */
static int tctl[2];          /* the thread reports its socket's inode, then waits for a byte */
static void *unshare_thread(void *arg)
{
    (void)arg;
    uint64_t ino = 0;
    char c;
    if (unshare(CLONE_FILES) == 0) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ino = s >= 0 ? ino_of(s) : 0;
    }
    while (write(tctl[1], &ino, sizeof ino) < 0 && errno == EINTR)
        ;
    while (read(tctl[1], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;             /* its fd table (with its copies) goes with it */
}
static pthread_t uthread;
static int uthread_started;

static int wait_zombie(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 400; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (n > 0) {
            buf[n] = '\0';
            const char *p = strrchr(buf, ')');
            if (p && p[1] == ' ' && p[2] == 'Z')
                return 1;
        }
        usleep(5000);
    }
    return 0;
}

static int32_t wpids[7];

static int setup_workload(void)
{
    const char *tmp = getenv("TMPDIR");
    struct sockaddr_in sin = { .sin_family = AF_INET };
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    snprintf(W.dir, sizeof W.dir, "%s/procnet-bpf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(W.dir))
        return -1;
    snprintf(W.path, sizeof W.path, "%s/sock", W.dir);
    if (strlen(W.path) >= sizeof sun.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, W.path, strlen(W.path) + 1);

    if (pipe2(gate, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tctl) < 0)
        return -1;
    W.lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (W.lst < 0 || bind(W.lst, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(W.lst, 8) < 0)
        return -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, W.sp) < 0 ||
        socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, W.pass) < 0)
        return -1;
    W.udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    W.ux = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (W.udp < 0 || W.ux < 0 || bind(W.ux, (struct sockaddr *)&sun, sizeof sun) < 0)
        return -1;
    W.opath = open(W.path, O_PATH | O_CLOEXEC);
    if (W.opath < 0)
        return -1;
    W.lst_ino = ino_of(W.lst);
    W.sp_ino[0] = ino_of(W.sp[0]);
    W.sp_ino[1] = ino_of(W.sp[1]);
    W.udp_ino = ino_of(W.udp);
    W.ux_ino = ino_of(W.ux);

    fflush(stdout);
    if ((W.kid_a = fork()) == 0)
        kid_a();
    if ((W.kid_b = fork()) == 0)
        kid_b();
    if ((W.kid_z = fork()) == 0)
        kid_z();
    if ((W.kid_g = fork()) == 0)
        kid_g();
    if ((W.kid_h = fork()) == 0)
        kid_h();
    if ((W.kid_e = fork()) == 0)
        kid_e();
    if (W.kid_a < 0 || W.kid_b < 0 || W.kid_z < 0 || W.kid_g < 0 || W.kid_h < 0 || W.kid_e < 0)
        return -1;

    /* a socket only kid A will hold */
    W.passed = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (W.passed < 0)
        W.passed = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    W.passed_ino = ino_of(W.passed);
    if (W.passed < 0 || send_fd(W.pass[0], W.passed) < 0)
        return -1;
    close(W.passed);
    int32_t num = -1;
    if (read(W.pass[0], &num, sizeof num) != (ssize_t)sizeof num)
        return -1;
    W.passed_fd_in_a = num;

    for (int i = 0; i < 3; i++) {
        char c;
        if (read(ready[0], &c, 1) != 1)
            return -1;
    }
    if (!wait_zombie(W.kid_z))
        printf("  note: kid Z's leader did not show as a zombie\n");
    if (!wait_fd_entries(W.kid_g, 3) || !wait_fd_entries(W.kid_h, 2) ||
        !wait_fd_entries(W.kid_e, 0))
        return -1;

    if (pthread_create(&uthread, NULL, unshare_thread, NULL) != 0)
        return -1;
    uthread_started = 1;
    if (read(tctl[0], &W.thread_ino, sizeof W.thread_ino) != (ssize_t)sizeof W.thread_ino)
        return -1;

    wpids[0] = getpid();
    wpids[1] = W.kid_a;
    wpids[2] = W.kid_b;
    wpids[3] = W.kid_z;
    wpids[4] = W.kid_g;
    wpids[5] = W.kid_h;
    wpids[6] = W.kid_e;
    workload = wpids;
    nworkload = 7;
    return 0;
}

static void teardown_workload(void)
{
    if (uthread_started) {
        while (write(tctl[0], "x", 1) < 0 && errno == EINTR)
            ;
        pthread_join(uthread, NULL);
    }
    if (gate[1] >= 0)
        close(gate[1]);
    if (W.kid_e > 0)
        kill(W.kid_e, SIGKILL);
    pid_t kids[6] = { W.kid_a, W.kid_b, W.kid_z, W.kid_g, W.kid_h, W.kid_e };
    for (int i = 0; i < 6; i++)
        if (kids[i] > 0)
            while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
                ;
    unlink(W.path);
    rmdir(W.dir);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */

static size_t count(const struct pn_owners *o, int32_t pid, int32_t fd, uint64_t inode)
{
    const struct pn_fd_entry *e = o->entries.data;
    size_t n = 0;
    for (size_t i = 0; i < o->entries.len; i++)
        n += (pid < 0 || e[i].pid == pid) && (fd < 0 || e[i].fd == fd) &&
             (!inode || e[i].inode == inode);
    return n;
}

static int name_is(const struct pn_owners *o, int32_t pid, const char *want)
{
    const struct pn_proc_info *p = o->procs.data;
    for (size_t i = 0; i < o->procs.len; i++)
        if (p[i].pid == pid)
            return p[i].name_len == strlen(want) &&
                   memcmp((const char *)o->strings.data + p[i].name_off, want, p[i].name_len) == 0;
    return 0;
}

static void test_workload_cases(void)
{
    struct pn_owners o;
    int32_t me = getpid();
    current = "workload";
    if (!CHECK(scan(NULL, 0, &o) == 0))
        return;
    check_shape(&o);
    CHECK_EQ(count(&o, me, W.lst, W.lst_ino), 1);
    CHECK_EQ(count(&o, W.kid_a, W.lst, W.lst_ino), 1);   /* shared by both kids */
    CHECK_EQ(count(&o, W.kid_b, W.lst, W.lst_ino), 1);
    CHECK_EQ(count(&o, me, W.sp[0], W.sp_ino[0]), 1);
    CHECK_EQ(count(&o, me, W.sp[1], W.sp_ino[1]), 1);
    CHECK_EQ(count(&o, me, W.udp, W.udp_ino), 1);
    CHECK_EQ(count(&o, me, W.ux, W.ux_ino), 1);
    CHECK_EQ(count(&o, me, W.opath, 0), 0);              /* O_PATH on the socket's path */
    CHECK(W.thread_ino != 0);
    CHECK_EQ(count(&o, -1, -1, W.thread_ino), 0);        /* the unshared thread's socket */
    CHECK_EQ(count(&o, -1, -1, W.passed_ino), 1);        /* SCM_RIGHTS: only the receiver */
    CHECK_EQ(count(&o, W.kid_a, W.passed_fd_in_a, W.passed_ino), 1);
    CHECK_EQ(count(&o, W.kid_z, -1, 0), 0);              /* zombie leader: no fd table */
    CHECK(name_is(&o, W.kid_a, "pn-kid-a"));
    CHECK(name_is(&o, W.kid_b, "pn-kid-b"));
    printf("  scan: %zu socket fds, %zu processes with sockets, nprocs %u\n",
           o.entries.len, o.procs.len, o.nprocs);
    pn_owners_free(&o);

    /* the walk agrees on the workload's special cases too */
    if (CHECK(walk(1, NULL, 0, &o) == 0)) {
        CHECK_EQ(count(&o, me, W.opath, 0), 0);
        CHECK_EQ(count(&o, -1, -1, W.thread_ino), 0);
        CHECK_EQ(count(&o, W.kid_z, -1, 0), 0);
        pn_owners_free(&o);
    }
}

static int cmp_i32_test(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void test_equal_to_walk(void)
{
    current = "bpf == walk";
    compare_with_walk(NULL, 0, 1, "all processes, walk single-threaded");
    compare_with_walk(NULL, 0, 0, "all processes, walk threads auto");

    int32_t pids[3] = { getpid(), W.kid_a, W.kid_z };
    qsort(pids, 3, sizeof pids[0], cmp_i32_test);
    compare_with_walk(pids, 3, 1, "pid filter");
    struct pn_owners o;
    if (CHECK(scan(pids, 3, &o) == 0)) {
        CHECK_EQ(o.nprocs, 2);               /* Z's leader has no fd table */
        CHECK_EQ(o.procs.len, 2);
        CHECK_EQ(count(&o, W.kid_b, -1, 0), 0);
        CHECK_EQ(o.entries.len, count(&o, getpid(), -1, 0) + count(&o, W.kid_a, -1, 0));
        pn_owners_free(&o);
    }
    int32_t none[1] = { 0x7ffffff0 };
    if (CHECK(scan(none, 1, &o) == 0)) {
        CHECK_EQ(o.entries.len, 0);
        CHECK_EQ(o.nprocs, 0);
        pn_owners_free(&o);
    }
}

/* Does /proc/PID/fd list an fd whose link we may read? (Not all of them:
 * on the sandbox this was written on, even root gets EACCES on pid 1's links,
 * and the BPF iterator does not show pid 1 either.) */
static int readable_fd(pid_t pid)
{
    char path[64], target[64];
    int found = 0;
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *de;
    while (!found && (de = readdir(d)))
        found = de->d_name[0] != '.' && readlinkat(dirfd(d), de->d_name, target, sizeof target) > 0;
    closedir(d);
    return found;
}

/* Thread-group leaders with at least one open (readable) fd, from /proc. */
static int leaders_with_fds(void)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        n += readable_fd((pid_t)pid);
    }
    closedir(d);
    return n;
}

static void test_nprocs(void)
{
    struct pn_owners o;
    current = "nprocs";
    /* one process each: fds only past gaps of 64+ (markers repeat), none at all */
    int32_t g = W.kid_g, h = W.kid_h, e = W.kid_e;
    if (CHECK(scan(&g, 1, &o) == 0)) {
        CHECK_EQ(o.nprocs, 1);
        CHECK_EQ(o.entries.len, 1);
        CHECK_EQ(count(&o, g, 500, 0), 1);
        CHECK(name_is(&o, g, "pn-kid-g"));
        pn_owners_free(&o);
    }
    if (CHECK(scan(&h, 1, &o) == 0)) {
        CHECK_EQ(o.nprocs, 1);
        CHECK_EQ(o.entries.len, 0);
        CHECK_EQ(o.procs.len, 0);
        pn_owners_free(&o);
    }
    if (CHECK(scan(&e, 1, &o) == 0)) {
        CHECK_EQ(o.nprocs, 0);
        pn_owners_free(&o);
    }
    /* all processes: the leaders whose fd table is not empty */
    for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
        int before = leaders_with_fds();
        if (!CHECK(scan(NULL, 0, &o) == 0))
            return;
        int after = leaders_with_fds();
        uint32_t n = o.nprocs;
        pn_owners_free(&o);
        if (before == after || attempt == ATTEMPTS) {
            CHECK_EQ(n, before);
            printf("  nprocs %u: the leaders with an open fd (attempt %d)\n", n, attempt);
            return;
        }
    }
}

/* 8 threads at once through one loaded program. */
struct par {
    pthread_barrier_t *bar;
    struct pn_owners o;
    int rc, err;
};

static void *par_main(void *arg)
{
    struct par *p = arg;
    pthread_barrier_wait(p->bar);
    p->rc = scan(NULL, 0, &p->o);
    p->err = errno;
    return NULL;
}

static void test_threads(void)
{
    current = "threads";
    for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
        pthread_barrier_t bar;
        pthread_t t[NTHREADS];
        struct par p[NTHREADS];
        size_t worst = 0, inside = 0;
        pthread_barrier_init(&bar, NULL, NTHREADS);
        memset(p, 0, sizeof p);
        for (int i = 0; i < NTHREADS; i++) {
            p[i].bar = &bar;
            if (pthread_create(&t[i], NULL, par_main, &p[i]) != 0)
                abort();
        }
        for (int i = 0; i < NTHREADS; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&bar);
        int ok = 1;
        for (int i = 0; i < NTHREADS; i++)
            ok &= CHECK(p[i].rc == 0);
        if (ok) {
            for (int i = 1; i < NTHREADS; i++) {
                size_t in = 0, d = diff(&p[0].o, "thread 0", &p[i].o, "thread i", &in, 0);
                if (d > worst)
                    worst = d;
                inside += in;
            }
        }
        int last = attempt == ATTEMPTS;
        if (ok && worst && (inside || last))
            for (int i = 1; i < NTHREADS; i++)
                diff(&p[0].o, "thread 0", &p[i].o, "another thread", &inside, 1);
        for (int i = 0; i < NTHREADS; i++)
            pn_owners_free(&p[i].o);
        if (!ok)
            return;
        if (!worst) {
            passed++;
            printf("  %d threads: identical results (attempt %d)\n", NTHREADS, attempt);
            return;
        }
        if (inside || last) {
            failed++;
            printf("FAIL [threads]: results differ (%zu in the workload)\n", inside);
            return;
        }
    }
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void test_open_close(void)
{
    current = "open/close";
    char why[256];
    int before = count_fds();
    for (int i = 0; i < 5; i++) {
        struct pn_bpf *b = NULL;
        if (!CHECK(pn_bpf_open(&b, why, sizeof why) == 0)) {
            printf("    %s\n", why);
            return;
        }
        struct pn_query q;
        struct pn_owners o;
        query_init(&q, 0, NULL, 0);
        CHECK(pn_bpf_scan(b, &q, &o) == 0);
        pn_owners_free(&o);
        pn_bpf_close(b);
    }
    pn_bpf_close(NULL);
    CHECK_EQ(count_fds(), before);
}

/* Run fn in a child; returns its exit status (or -1). */
static int in_child(int (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* 0 = refused as expected, 1 = loaded, 2 = other errno, 3 = reason lacks the words. */
static int expect_refusal(int want_errno, const char *want_words)
{
    char why[256] = "x";
    struct pn_bpf *b = (struct pn_bpf *)&why;
    int rc = pn_bpf_open(&b, why, sizeof why);
    int e = errno;
    printf("    -> rc %d errno %d (%s): %s\n", rc, e, strerror(e), why);
    fflush(stdout);
    if (rc == 0) {
        pn_bpf_close(b);
        return 1;
    }
    if (b != NULL)
        return 4;
    if (e != want_errno)
        return 2;
    return strstr(why, want_words) ? 0 : 3;
}

static int refuse_no_libbpf(void)
{
    setenv("PROCNET_LIBBPF", "/nonexistent/libbpf.so.1", 1);
    return expect_refusal(ENOENT, "libbpf");
}

static int refuse_unprivileged(void)
{
    if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
        return 5;
    return expect_refusal(EPERM, "CAP_BPF");
}

static int nested_grandchild(void)
{
    return expect_refusal(EOPNOTSUPP, "nested pid namespace");
}

static int refuse_nested(void)
{
    if (unshare(CLONE_NEWPID) < 0)
        return 6;
    return in_child(nested_grandchild);   /* the first child is pid 1 there */
}

static void test_refusals(void)
{
    current = "refusals";
    printf("  no libbpf:\n");
    CHECK_EQ(in_child(refuse_no_libbpf), 0);
    if (geteuid() == 0) {
        printf("  unprivileged (uid 65534):\n");
        CHECK_EQ(in_child(refuse_unprivileged), 0);
        printf("  nested pid namespace:\n");
        int rc = in_child(refuse_nested);
        if (rc == 6)
            skip("unshare(CLONE_NEWPID) refused");
        else
            CHECK_EQ(rc, 0);
    } else {
        skip("not root: the EPERM and pid namespace refusals are not exercised");
    }
}

/* ------------------------------------------------------------------------ */
/* The micro-measurement                                                     */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define RUNS 21

/* kind: 0 = bpf, else walk with threads = kind - 1 */
static double median_us(int kind, size_t *nfds)
{
    double t[RUNS];
    for (int i = 0; i < RUNS; i++) {
        struct pn_owners o;
        double t0 = now_us();
        int rc = kind == 0 ? scan(NULL, 0, &o) : walk(kind - 1, NULL, 0, &o);
        t[i] = now_us() - t0;
        if (rc < 0) {
            printf("scan failed: %s\n", strerror(errno));
            exit(1);
        }
        *nfds = o.entries.len;
        pn_owners_free(&o);
    }
    qsort(t, RUNS, sizeof t[0], cmp_double);
    return t[RUNS / 2];
}

static void measure(const char *label)
{
    static const char *const names[] = { "bpf scan", "walk threads=1", "walk threads=auto" };
    printf("%s (median of %d runs):\n", label, RUNS);
    for (int kind = 0; kind < 3; kind++) {
        size_t nfds = 0;
        double us = median_us(kind, &nfds);
        printf("  %-18s %9.0f us  %6zu socket fds  %.3f us/socket fd\n", names[kind], us, nfds,
               nfds ? us / (double)nfds : 0.0);
    }
}

static int bench(int nkids, int pairs)
{
    char why[256];
    double t[5];
    for (int i = 0; i < 5; i++) {
        struct pn_bpf *b;
        double t0 = now_us();
        if (pn_bpf_open(&b, why, sizeof why) < 0) {
            printf("skip: %s\n", why);
            return 77;
        }
        t[i] = now_us() - t0;
        if (i < 4)
            pn_bpf_close(b);
        else
            bpf = b;
    }
    printf("pn_bpf_open: first %.1f ms; runs: %.1f %.1f %.1f %.1f ms\n",
           t[0] / 1e3, t[1] / 1e3, t[2] / 1e3, t[3] / 1e3, t[4] / 1e3);
    measure("this machine");

    if (pipe2(gate, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0)
        return 1;
    int32_t *kids = calloc((size_t)nkids, sizeof *kids);
    fflush(stdout);
    for (int k = 0; k < nkids; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            int sp[2];
            close(gate[1]);
            for (int i = 0; i < pairs; i++)
                if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
                    _exit(1);
            say_ready('k');
            block_on_gate();
            _exit(0);
        }
    }
    for (int k = 0; k < nkids; k++) {
        char c;
        if (read(ready[0], &c, 1) != 1)
            return 1;
    }
    char label[80];
    snprintf(label, sizeof label, "with %d children x %d socketpairs (+%d socket fds)",
             nkids, pairs, nkids * pairs * 2);
    measure(label);
    size_t inside = 0, d = 0;
    struct pn_owners ob, ow;
    if (scan(NULL, 0, &ob) == 0 && walk(1, NULL, 0, &ow) == 0) {
        workload = kids;
        nworkload = (size_t)nkids;
        d = diff(&ob, "bpf", &ow, "walk", &inside, 1);
        printf("bpf vs walk at scale: %zu differences (%zu in the children)\n", d, inside);
        pn_owners_free(&ob);
        pn_owners_free(&ow);
    }
    close(gate[1]);
    for (int k = 0; k < nkids; k++)
        waitpid(kids[k], NULL, 0);
    free(kids);
    pn_bpf_close(bpf);
    return 0;
}

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
/* Not the BPF test build (see the top): nothing here. */
typedef int pn_test_bpf_not_built;
#endif /* PN_TEST_BPF */
