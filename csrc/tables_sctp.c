/*
 * tables_sctp.c -- decoder for /proc/net/sctp/eps and /proc/net/sctp/assocs
 * (net/sctp/proc.c), the text source of the sctp and sctp6 tables.
 *
 * eps, one line per bound endpoint (a listener):
 *   " ENDPT     SOCK   STY SST HBKT LPORT   UID INODE LADDRS"
 *   "0000000000000000 0000000000000000 2   10  40   9000      0 30311 10.0.0.1 10.0.0.2 "
 * assocs, one line per association:
 *   " ASSOC     SOCK   STY SST ST HBKT ASSOC-ID TX_QUEUE RX_QUEUE UID INODE LPORT RPORT
 *     LADDRS <-> RADDRS HBINT INS OUTS MAXRT T1X T2X RTXC wmema wmemq sndbuf rcvbuf"
 *   "... 2   1   3  0       1        0        0       0 30312 9000  40000  10.0.0.1 <-> *10.0.0.9 \t 30000 ..."
 * Addresses are printed by family ("%pI4 ", "%pI6 ": IPv6 in full, 8 groups
 * of 4 digits); a '*' marks the primary one. Neither file prints the
 * socket's family, so a line belongs to sctp6 when any address on it is
 * IPv6 (IPv4 ones then become IPv4-mapped), else to sctp. laddr is the
 * first local address, raddr the primary remote one (else the first): what
 * sctp_diag puts in its message. SST is sk_state (TCP codes); an
 * association's ST (SCTP_STATE_*) is stored as PN_SCTP_ASSOC_STATE + ST.
 * STY is SCTP_SOCKET_UDP (0, one-to-many: SOCK_SEQPACKET),
 * _UDP_HIGH_BANDWIDTH (1, likewise) or _TCP (2, one-to-one: SOCK_STREAM).
 */
#include "pn_internal.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#define SCTP_ADDR_MAX 45      /* INET6_ADDRSTRLEN - 1: the longest address text */

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* One address token [s, e): "*"? then an IPv4 or IPv6 address.
 * 4 or 6 (and the 16 network-order bytes, IPv4 in the first 4), or 0. */
static int parse_addr(const char *s, const char *e, uint8_t out[16], int *primary)
{
    char text[SCTP_ADDR_MAX + 1];
    *primary = s < e && *s == '*';
    s += *primary;
    if (e - s < 1 || e - s > SCTP_ADDR_MAX)
        return 0;
    memcpy(text, s, (size_t)(e - s));
    text[e - s] = '\0';
    memset(out, 0, 16);
    if (inet_pton(AF_INET, text, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, text, out) == 1)
        return 6;
    return 0;
}

/* The address tokens of [p, end), split on `seps`: the first (or, with
 * want_primary, the starred one, else the first) into *pick. Returns the
 * number of tokens, -1 for a bad one; *any_v6 when one was IPv6. */
static int scan_addrs(const char *p, const char *end, int want_primary, uint8_t pick[16],
                      int *pick_v6, int *any_v6)
{
    int n = 0, have_primary = 0;
    while (p < end) {
        while (p < end && is_blank(*p))
            p++;
        if (p == end)
            break;
        const char *e = p;
        while (e < end && !is_blank(*e))
            e++;
        uint8_t a[16];
        int primary, fam = parse_addr(p, e, a, &primary);
        if (!fam)
            return -1;
        if (fam == 6)
            *any_v6 = 1;
        if (n == 0 || (want_primary && primary && !have_primary)) {
            memcpy(pick, a, 16);
            *pick_v6 = fam == 6;
            have_primary = want_primary && primary;
        }
        n++;
        p = e;
    }
    return n;
}

/* An IPv4 address of an sctp6 line as the IPv4-mapped IPv6 one. */
static void to_mapped(uint8_t a[16])
{
    uint8_t v4[4];
    memcpy(v4, a, 4);
    memset(a, 0, 16);
    a[10] = a[11] = 0xff;
    memcpy(a + 12, v4, 4);
}

/* Where the " <-> " separator of an assocs line starts, or NULL. */
static const char *find_arrow(const char *p, const char *end)
{
    for (const char *s = p; end - s >= 3; s++) {
        if (s[0] == '<' && s[1] == '-' && s[2] == '>' &&
            (s == p || is_blank(s[-1])) && (end - s == 3 || is_blank(s[3])))
            return s;
    }
    return NULL;
}

int pn_decode_sctp(const char *line, size_t len, struct pn_sock *out)
{
    const char *p = line, *end = line + len;
    const char *arrow = find_arrow(line, end);
    uint64_t v, sty, sst, st = 0, tx = 0, rx = 0, uid, inode, lport, rport = 0;

    memset(out, 0, sizeof *out);
    if (!pn_scan_hex(&p, end, 1, 16, &v) ||                 /* ENDPT / ASSOC (a pointer) */
        !pn_scan_hex(&p, end, 1, 16, &v) ||                 /* SOCK */
        !pn_scan_dec(&p, end, 255, &sty) ||
        !pn_scan_dec(&p, end, 255, &sst))
        return 0;
    if (arrow) {
        if (!pn_scan_dec(&p, end, 255, &st) ||
            !pn_scan_dec(&p, end, UINT32_MAX, &v) ||        /* HBKT */
            !pn_scan_dec(&p, end, UINT32_MAX, &v) ||        /* ASSOC-ID */
            !pn_scan_dec(&p, end, UINT32_MAX, &tx) ||
            !pn_scan_dec(&p, end, UINT32_MAX, &rx) ||
            !pn_scan_dec(&p, end, UINT32_MAX, &uid) ||
            !pn_scan_dec(&p, end, UINT64_MAX, &inode) ||
            !pn_scan_dec(&p, end, 65535, &lport) ||
            !pn_scan_dec(&p, end, 65535, &rport))
            return 0;
    } else if (!pn_scan_dec(&p, end, UINT32_MAX, &v) ||     /* HBKT */
               !pn_scan_dec(&p, end, 65535, &lport) ||
               !pn_scan_dec(&p, end, UINT32_MAX, &uid) ||
               !pn_scan_dec(&p, end, UINT64_MAX, &inode)) {
        return 0;
    }
    /* the last number must be a whole field: addresses follow after a blank */
    if (p < end && !is_blank(*p))
        return 0;

    int any_v6 = 0, l_v6 = 0, r_v6 = 0, nl, nr = 0;
    if (arrow) {
        if (p > arrow)
            return 0;                   /* the arrow was inside the numbers */
        const char *rend = arrow + 3;   /* remote addresses end at the tab */
        while (rend < end && *rend != '\t')
            rend++;
        nl = scan_addrs(p, arrow, 0, out->laddr, &l_v6, &any_v6);
        nr = scan_addrs(arrow + 3, rend, 1, out->raddr, &r_v6, &any_v6);
        if (nl < 0 || nr < 1)
            return 0;                   /* an association has a peer */
        if (nl == 0)
            l_v6 = r_v6;
    } else {
        nl = scan_addrs(p, end, 0, out->laddr, &l_v6, &any_v6);
        if (nl < 1)
            return 0;                   /* an endpoint is bound to something */
    }
    if (any_v6) {
        if (nl && !l_v6)
            to_mapped(out->laddr);
        if (nr && !r_v6)
            to_mapped(out->raddr);
    }
    out->table = (uint8_t)(any_v6 ? PN_SCTP6 : PN_SCTP);
    out->protocol = 132;                /* IPPROTO_SCTP */
    out->stype = (uint8_t)(sty == 2 ? SOCK_STREAM : sty <= 1 ? SOCK_SEQPACKET : 0);
    out->state = (uint8_t)(arrow ? (st < 256 - PN_SCTP_ASSOC_STATE ? PN_SCTP_ASSOC_STATE + st : 255)
                                 : sst);
    out->lport = (uint16_t)lport;
    out->rport = (uint16_t)rport;
    out->tx_queue = (uint32_t)tx;
    out->rx_queue = (uint32_t)rx;
    out->uid = (uint32_t)uid;
    out->inode = inode;
    return 1;
}
