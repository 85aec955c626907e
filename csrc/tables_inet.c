/*
 * tables_inet.c -- decoder for /proc/net/{tcp,udp,udplite,raw,icmp}{,6}.
 *
 * Every one of these tables starts with the same columns:
 *   "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
 *   "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 ..."
 * An address is the kernel's in-memory 32-bit word printed with %08X, i.e. in
 * the *kernel's* byte order: 127.0.0.1 is 0100007F on x86 and 7F000001 on a
 * big-endian MIPS. IPv6 is four such words. Ports are printed after ntohs and
 * are byte-order independent. raw tables print the IP protocol as the local
 * port; icmp ("ping") tables print the echo identifier.
 */
#include "pn_internal.h"

#include <sys/socket.h>
#include <netinet/in.h>

/* Store one kernel word in network order, given how the kernel ordered it. */
static void put_word(uint8_t *dst, uint32_t w, int big_endian)
{
    if (big_endian) {
        dst[0] = (uint8_t)(w >> 24); dst[1] = (uint8_t)(w >> 16);
        dst[2] = (uint8_t)(w >> 8);  dst[3] = (uint8_t)w;
    } else {
        dst[0] = (uint8_t)w;         dst[1] = (uint8_t)(w >> 8);
        dst[2] = (uint8_t)(w >> 16); dst[3] = (uint8_t)(w >> 24);
    }
}

/* "AAAAAAAA:PPPP" (IPv4) or 32 hex digits ":PPPP" (IPv6). */
static int scan_endpoint(const char **p, const char *end, int words, int big_endian,
                         uint8_t addr[16], uint16_t *port)
{
    pn_skip_blanks(p, end);
    for (int i = 0; i < words; i++) {
        /* Words are glued together without separators: read exactly 8 digits. */
        const char *s = *p;
        uint32_t w = 0;
        if (end - s < 8)
            return 0;
        for (int k = 0; k < 8; k++) {
            char c = s[k];
            unsigned d;
            if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
            else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
            else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
            else return 0;
            w = (w << 4) | d;
        }
        put_word(addr + 4 * i, w, big_endian);
        *p = s + 8;
    }
    uint64_t v;
    if (!pn_scan_char(p, end, ':') || !pn_scan_hex(p, end, 4, 4, &v))
        return 0;
    *port = (uint16_t)v;
    return 1;
}

static const struct {
    uint16_t protocol;
    uint8_t  stype;
    uint8_t  v6;
} inet_kind[PN_SCTP6 + 1] = {
    [PN_TCP]      = { IPPROTO_TCP,     SOCK_STREAM, 0 },
    [PN_TCP6]     = { IPPROTO_TCP,     SOCK_STREAM, 1 },
    [PN_UDP]      = { IPPROTO_UDP,     SOCK_DGRAM,  0 },
    [PN_UDP6]     = { IPPROTO_UDP,     SOCK_DGRAM,  1 },
    [PN_UDPLITE]  = { 136,             SOCK_DGRAM,  0 },  /* IPPROTO_UDPLITE */
    [PN_UDPLITE6] = { 136,             SOCK_DGRAM,  1 },
    [PN_RAW]      = { 0,               SOCK_RAW,    0 },  /* protocol from the line */
    [PN_RAW6]     = { 0,               SOCK_RAW,    1 },
    [PN_ICMP]     = { IPPROTO_ICMP,    SOCK_DGRAM,  0 },
    [PN_ICMP6]    = { 58,              SOCK_DGRAM,  1 },  /* IPPROTO_ICMPV6 */
    [PN_MPTCP]    = { 262,             SOCK_STREAM, 0 },  /* IPPROTO_MPTCP */
    [PN_MPTCP6]   = { 262,             SOCK_STREAM, 1 },
    [PN_SCTP]     = { 132,             0,           0 },  /* IPPROTO_SCTP; type from the text */
    [PN_SCTP6]    = { 132,             0,           1 },
};

int pn_table_is_ip(int table)
{
    return (table >= PN_TCP && table <= PN_ICMP6) || (table >= PN_MPTCP && table <= PN_SCTP6);
}

int pn_inet_is_v6(int table)
{
    return pn_table_is_ip(table) && inet_kind[table].v6;
}

void pn_inet_kind(int table, struct pn_sock *s)
{
    s->stype = inet_kind[table].stype;
    s->protocol = inet_kind[table].protocol;
    if (table == PN_RAW || table == PN_RAW6)
        s->protocol = s->lport;   /* raw sockets report their protocol as the port */
}

int pn_decode_inet(int table, const char *line, size_t len, int big_endian,
                   struct pn_sock *out)
{
    const char *p = line, *end = line + len;
    uint64_t v, tx, rx, uid, inode;
    int words = inet_kind[table].v6 ? 4 : 1;

    memset(out, 0, sizeof *out);
    /* "sl:" -- a header line fails here, on "sl" not being a number */
    if (!pn_scan_dec(&p, end, UINT32_MAX, &v) || !pn_scan_char(&p, end, ':'))
        return 0;
    if (!scan_endpoint(&p, end, words, big_endian, out->laddr, &out->lport) ||
        !scan_endpoint(&p, end, words, big_endian, out->raddr, &out->rport))
        return 0;
    if (!pn_scan_hex(&p, end, 1, 2, &v))            /* st */
        return 0;
    out->state = (uint8_t)v;
    if (!pn_scan_hex(&p, end, 1, 8, &tx) || !pn_scan_char(&p, end, ':') ||
        !pn_scan_hex(&p, end, 1, 8, &rx))
        return 0;
    if (!pn_scan_hex(&p, end, 1, 2, &v) || !pn_scan_char(&p, end, ':') ||  /* tr:when */
        !pn_scan_hex(&p, end, 1, 16, &v) ||
        !pn_scan_hex(&p, end, 1, 8, &v))                                    /* retrnsmt */
        return 0;
    if (!pn_scan_dec(&p, end, UINT32_MAX, &uid))
        return 0;
    pn_skip_blanks(&p, end);
    pn_scan_char(&p, end, '-');                      /* timeout may print negative */
    if (!pn_scan_dec(&p, end, UINT64_MAX, &v) ||
        !pn_scan_dec(&p, end, UINT64_MAX, &inode))
        return 0;
    /* the inode must be a whole field, not the prefix of junk */
    if (p < end && *p != ' ' && *p != '\t')
        return 0;

    out->inode = inode;
    out->uid = (uint32_t)uid;
    out->tx_queue = (uint32_t)tx;
    out->rx_queue = (uint32_t)rx;
    out->table = (uint8_t)table;
    pn_inet_kind(table, out);
    return 1;
}
