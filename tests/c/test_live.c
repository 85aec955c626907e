/* tests/c/test_live.c -- pn_snapshot on the live /proc, where the byte orders match. */
#include "check.h"

/* ------------------------------------------------------------------------ */
/* The running kernel's /proc                                                 */

/* One live snapshot from `source`, checked against our own sockets. */
static void live_source(int source, int tcp, const struct sockaddr_in *sinp,
                        int tcp6, const struct sockaddr_in6 *sin6p, int ux, const char *upath)
{
    const char *sname = source == PN_SRC_PROCFS ? "procfs" : "netlink+text";
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
    if (source == PN_SRC_NETLINK)
        q.flags |= PN_Q_TEXT_FALLBACK;   /* as procnet's "auto" plans it for the live /proc */
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
    if (source == PN_SRC_NETLINK && nnetlink == 0)
        skip("netlink sock_diag is not available here (e.g. under qemu-user): "
             "the fallback read the text tables, the netlink source is not covered");
    if (source == PN_SRC_PROCFS)
        for (int t = 0; t < PN_NTABLES; t++)
            if (r.table_status[t] == PN_TABLE_READ && r.table_source[t] != PN_SRC_PROCFS) {
                check_(0, "PN_SRC_PROCFS reads text only", __LINE__);
                printf("  table %d came from source %d\n", t, r.table_source[t]);
            }
    CHECK_EQ(r.table_status[PN_TCP], PN_TABLE_READ);
    CHECK_EQ(r.table_status[PN_UNIX], PN_TABLE_READ);
    /* Every line the running kernel printed must decode (whatever the byte
     * order, the fields parse the same). A skip here is a decoder bug --
     * except in unix, where any local user can bind a path holding a newline,
     * which the kernel prints raw and so splits into two lines. */
    for (int t = 0; t < PN_NTABLES; t++) {
        if (r.table_status[t] == PN_TABLE_READ && r.skipped[t] != 0 && t != PN_UNIX) {
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

void test_live(void)
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

    /* Both sources: the /proc/net text, and netlink with the text fallback
     * (sock_diag where the kernel and the environment allow it; qemu-user
     * forwards only a few netlink protocols, so under emulation it falls back). */
    static const int sources[] = { PN_SRC_PROCFS, PN_SRC_NETLINK };
    for (size_t si = 0; si < sizeof sources / sizeof sources[0]; si++)
        live_source(sources[si], tcp, &sin, tcp6, &sin6, ux, upath);
    if (tcp >= 0) close(tcp);
    if (tcp6 >= 0) close(tcp6);
    if (ux >= 0) { close(ux); unlink(upath); }
}
