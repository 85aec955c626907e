/* workload.c -- the live processes with the awkward cases (see test_bpf.c). */
#ifdef PN_TEST_BPF

#include "bpf_test.h"

/* ------------------------------------------------------------------------ */
/* The workload                                                              */

int gate[2] = { -1, -1 };          /* children block reading gate[0] until it closes */
int ready[2];         /* each child writes one byte when set up */

struct sockets W;

static uint64_t ino_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

void block_on_gate(void)
{
    char c;
    while (read(gate[0], &c, 1) < 0 && errno == EINTR)
        ;
}

void say_ready(char c)
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

int setup_workload(void)
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

void teardown_workload(void)
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

#else
/* Not the BPF test build: nothing here. */
typedef int pn_test_bpf_not_built;
#endif /* PN_TEST_BPF */
