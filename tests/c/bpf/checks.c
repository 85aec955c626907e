/* checks.c -- the checks test_bpf.c runs. */
#ifdef PN_TEST_BPF

#include "bpf_test.h"

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

void test_workload_cases(void)
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

void test_equal_to_walk(void)
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

void test_nprocs(void)
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

void test_threads(void)
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

void test_open_close(void)
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

void test_refusals(void)
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

#else
/* Not the BPF test build: nothing here. */
typedef int pn_test_bpf_not_built;
#endif /* PN_TEST_BPF */
