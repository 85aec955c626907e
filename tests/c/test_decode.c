/* tests/c/test_decode.c -- line decoders of every table, by byte order; struct layout. */
#include "check.h"

/* ------------------------------------------------------------------------ */
/* Layout: Python unpacks these arrays with fixed struct formats.            */

void test_layout(void)
{
    current = "layout";
    CHECK_EQ(sizeof(struct pn_sock), 88);
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
    CHECK_EQ(offsetof(struct pn_sock, netns), 80);
    CHECK_EQ(offsetof(struct pn_sock, reserved2), 84);

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

void test_tcp4_orders(void)
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

void test_tcp6(void)
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

void test_udp_raw_icmp(void)
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

void test_unix(void)
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

void test_packet_netlink(void)
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

void test_malformed(void)
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

void test_socket_link(void)
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
