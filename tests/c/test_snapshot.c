/* tests/c/test_snapshot.c -- pn_snapshot on fixture trees built here, and on the live /proc. */
#include "check.h"

/* ------------------------------------------------------------------------ */
/* pn_snapshot over a fixture tree                                           */

char base[200];   /* mkdtemp'd by main(), removed by main() */
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

int rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st; (void)ftw;
    return type == FTW_DP ? rmdir(p) : unlink(p);
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

void test_snapshot_fixture(void)
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

    /* Source fallback, deterministic on every host (netlink refused by the
     * query's test hook): NETLINK with PN_Q_TEXT_FALLBACK falls back to the
     * fixture's text per table; NETLINK alone reports the refusal as a table
     * error. An unplanned source is refused. */
    {
        q.tables = 1u << PN_TCP | 1u << PN_UNIX;
        q.flags = PN_Q_OWNERS;
        q.source = 0;
        errno = 0;
        CHECK(pn_snapshot(&q, &r) == -1 && errno == EINVAL);
        pn_result_free(&r);
        q.source = PN_SRC_NETLINK;
        q.flags = PN_Q_OWNERS | PN_Q_TEXT_FALLBACK;
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
        q.flags = PN_Q_OWNERS;
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
void test_snapshot_reader(void)
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
void test_snapshot_no_final_newline(void)
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
