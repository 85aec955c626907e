/*
 * sock_diag.c -- the netlink socket source: SOCK_DIAG_BY_FAMILY dumps over a
 * NETLINK_SOCK_DIAG socket, decoded into the same struct pn_sock records as
 * the /proc/net text decoders, so the owner join cannot tell them apart.
 *
 * Why: the text tables cost ~3 us a line and walk the whole TCP hash even
 * when it is empty; a dump is several times cheaper and filters by state and
 * port in the kernel (idiag_states, INET_DIAG_REQ_BYTECODE).
 *
 * Field differences from the text tables (documented in README, tested):
 *  - TCP listeners: wq is the backlog (sk_max_ack_backlog) where text says 0;
 *  - unix: uid (UNIX_DIAG_UID) and queues (UNIX_DIAG_RQLEN) where text has
 *    none / 0;
 *  - netlink: the socket type, which text does not print.
 * Our own diag socket is left out of the listing.
 */
#include "pn_internal.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>
#include <linux/unix_diag.h>
#include <linux/packet_diag.h>
#include <linux/netlink_diag.h>

#define PN_DIAG_RCVBUF   (256 * 1024)
#define PN_DIAG_RETRIES  5           /* NLM_F_DUMP_INTR: the table changed mid-dump */
_Static_assert(PN_DIAG_RCVBUF <= PN_READ_CHUNK, "dumps are received into the sink's read buffer");

#ifndef SOCK_DIAG_BY_FAMILY
#define SOCK_DIAG_BY_FAMILY 20
#endif
#ifndef NLM_F_DUMP_INTR
#define NLM_F_DUMP_INTR 0x10
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_XDP
#define AF_XDP 44
#endif
/* vsock_diag and xdp_diag requests and answers, as linux/vm_sockets_diag.h
 * (4.10) and linux/xdp_diag.h (5.1) lay them out: defined here, because the
 * build hosts' headers may predate them (manylinux_2_28 ships 4.18's). */
struct pn_vsock_diag_req {
    uint8_t  sdiag_family, sdiag_protocol;
    uint16_t pad;
    uint32_t vdiag_states, vdiag_ino, vdiag_show, vdiag_cookie[2];
};
struct pn_vsock_diag_msg {
    uint8_t  vdiag_family, vdiag_type, vdiag_state, vdiag_shutdown;
    uint32_t vdiag_src_cid, vdiag_src_port, vdiag_dst_cid, vdiag_dst_port, vdiag_ino;
    uint32_t vdiag_cookie[2];
};
struct pn_xdp_diag_req {
    uint8_t  sdiag_family, sdiag_protocol;
    uint16_t pad;
    uint32_t xdiag_ino, xdiag_show, xdiag_cookie[2];
};
struct pn_xdp_diag_msg {
    uint8_t  xdiag_family, xdiag_type;
    uint16_t pad;
    uint32_t xdiag_ino, xdiag_cookie[2];
};
struct pn_xdp_diag_info {
    uint32_t ifindex, queue_id;
};
#define PN_XDP_SHOW_INFO 1
#define PN_XDP_DIAG_INFO 1
#define PN_XDP_DIAG_UID  2
_Static_assert(sizeof(struct pn_vsock_diag_msg) == 32 && sizeof(struct pn_xdp_diag_msg) == 16 &&
               sizeof(struct pn_vsock_diag_req) == 24 && sizeof(struct pn_xdp_diag_req) == 20,
               "the uapi layouts");
#define PN_IPPROTO_MPTCP 262          /* does not fit inet_diag_req_v2's u8 sdiag_protocol */
#define PN_IPPROTO_SCTP  132
#define PN_INET_DIAG_REQ_PROTOCOL 3   /* the u32 protocol attribute (Linux 5.9+) */
#ifndef TCPDIAG_GETSOCK
#define TCPDIAG_GETSOCK 18
#endif
_Static_assert(PN_DIAG_TCP46 == PN_NTABLES, "the pseudo-table follows the real ones");

int pn_diag_open(uint64_t *own_inode)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -1;
    struct stat st;
    *own_inode = fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
    return fd;
}

/* Which dump serves a table: address family and protocol. */
static int diag_target(int table, int *family, int *protocol)
{
    static const struct { uint8_t family; uint16_t protocol; } t[PN_NTABLES] = {
        [PN_TCP] = { AF_INET, IPPROTO_TCP },         [PN_TCP6] = { AF_INET6, IPPROTO_TCP },
        [PN_UDP] = { AF_INET, IPPROTO_UDP },         [PN_UDP6] = { AF_INET6, IPPROTO_UDP },
        [PN_UDPLITE] = { AF_INET, 136 },             [PN_UDPLITE6] = { AF_INET6, 136 },
        [PN_RAW] = { AF_INET, IPPROTO_RAW },         [PN_RAW6] = { AF_INET6, IPPROTO_RAW },
        [PN_ICMP] = { AF_INET, IPPROTO_ICMP },       [PN_ICMP6] = { AF_INET6, 58 },
        [PN_UNIX] = { AF_UNIX, 0 },                  [PN_PACKET] = { AF_PACKET, 0 },
        [PN_NETLINK] = { AF_NETLINK, NDIAG_PROTO_ALL },
        [PN_MPTCP] = { AF_INET, PN_IPPROTO_MPTCP },  [PN_MPTCP6] = { AF_INET6, PN_IPPROTO_MPTCP },
        [PN_SCTP] = { AF_INET, PN_IPPROTO_SCTP },    [PN_SCTP6] = { AF_INET6, PN_IPPROTO_SCTP },
        [PN_VSOCK] = { AF_VSOCK, 0 },                [PN_XDP] = { AF_XDP, 0 },
    };
    if (table < 0 || table >= PN_NTABLES)
        return -1;
    *family = t[table].family;
    *protocol = t[table].protocol;
    return 0;
}

/* The filters as inet_diag bytecode, every condition required: the local
 * address (S_COND with a host condition, when the dump is of its family), the
 * local port (S_EQ) and the remote port (D_EQ; each followed by a pseudo-op
 * carrying the port in `no`). "yes" steps to the next op, "no" jumps past the
 * end, which rejects. The C filter runs again on every record, so the kernel
 * only has to be at least as permissive -- it is: it also lets IPv4-mapped
 * addresses through for an IPv4 condition. family AF_UNSPEC (a tcp+tcp6
 * dump): the ports only. Returns the length in bytes. */
static size_t filter_bytecode(const struct pn_query *q, int family, unsigned char *bc, size_t cap)
{
    struct inet_diag_hostcond hc;
    size_t alen = family == AF_INET ? 4 : 16;
    int with_addr = family != AF_UNSPEC && q->laddr_family == family;
    size_t cond_len = sizeof(struct inet_diag_bc_op) + sizeof hc + alen;
    size_t len = (with_addr ? cond_len : 0) +
                 2 * sizeof(struct inet_diag_bc_op) * (size_t)((q->lport >= 0) + (q->rport >= 0));
    size_t at = 0;
    if (len > cap)
        return 0;
    if (with_addr) {
        struct inet_diag_bc_op op = { INET_DIAG_BC_S_COND, (unsigned char)cond_len,
                                      (unsigned short)(len + 4) };
        memset(&hc, 0, sizeof hc);
        hc.family = (uint8_t)family;
        hc.prefix_len = (uint8_t)(8 * alen);
        hc.port = -1;
        memcpy(bc, &op, sizeof op);
        memcpy(bc + sizeof op, &hc, sizeof hc);
        memcpy(bc + sizeof op + sizeof hc, q->laddr, alen);
        at = cond_len;
    }
    int conds[2][2] = { { INET_DIAG_BC_S_EQ, q->lport }, { INET_DIAG_BC_D_EQ, q->rport } };
    for (int i = 0; i < 2; i++) {
        if (conds[i][1] < 0)
            continue;
        struct inet_diag_bc_op ops[2] = {
            { (unsigned char)conds[i][0], 2 * sizeof ops[0], (unsigned short)(len - at + 4) },
            { 0, 0, (unsigned short)conds[i][1] },
        };
        memcpy(bc + at, ops, sizeof ops);
        at += sizeof ops;
    }
    return len;
}

/* One netlink attribute at `at` (room checked by the caller's fixed layout): its aligned size. */
static size_t put_attr(char *at, uint16_t type, const void *data, size_t len)
{
    struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + len), .nla_type = type };
    memcpy(at, &a, sizeof a);
    memcpy(at + NLA_HDRLEN, data, len);
    return NLA_ALIGN(a.nla_len);
}

/* The kernel state mask of an inet table's dump. */
static uint32_t inet_states(const struct pn_query *q, int table)
{
    uint32_t states = q->state_mask[table] ? q->state_mask[table] : 0xffffffffu;
    if (states & (1u << 3))
        states |= 1u << 12;         /* SYN_RECV entries live as TCP_NEW_SYN_RECV requests */
    return states;
}

static int send_dump(int fd, int table, const struct pn_query *q, uint32_t seq)
{
    union {
        struct nlmsghdr align;      /* the buffer must be aligned like a header */
        char bytes[256];
    } buf;
    size_t off = NLMSG_HDRLEN;
    int family, protocol;

    memset(&buf, 0, sizeof buf);
    unsigned char bc[96];
    size_t bclen;
    if (table == PN_DIAG_TCP46) {
        /* the inet_diag v1 request: its dump asks for AF_UNSPEC, both
         * families in one walk of the TCP hashes (the v2 request names one) */
        struct inet_diag_req r;
        memset(&r, 0, sizeof r);
        r.idiag_family = AF_INET;
        r.idiag_states = inet_states(q, PN_TCP);
        memcpy(buf.bytes + off, &r, sizeof r);
        off += NLMSG_ALIGN(sizeof r);
        bclen = filter_bytecode(q, AF_UNSPEC, bc, sizeof bc);     /* ports only */
        if (bclen)
            off += put_attr(buf.bytes + off, INET_DIAG_REQ_BYTECODE, bc, bclen);
    } else if (diag_target(table, &family, &protocol) < 0) {
        errno = EINVAL;
        return -1;
    } else if (family == AF_INET || family == AF_INET6) {
        struct inet_diag_req_raw r = {0};
        r.sdiag_family = (uint8_t)family;
        /* MPTCP (262) goes in the u32 attribute below; the u8 says 0, which no
         * handler serves, so a kernel that ignores the attribute fails the dump
         * (the table is then missing) instead of answering for TCP (262 & 0xff). */
        r.sdiag_protocol = protocol > 255 ? 0 : (uint8_t)protocol;
        r.sdiag_raw_protocol = protocol == IPPROTO_RAW ? IPPROTO_RAW : 0;   /* raw: all */
        /* SCTP association states are not sk_states: filtered here */
        r.idiag_states = protocol == PN_IPPROTO_SCTP ? 0xffffffffu : inet_states(q, table);
        memcpy(buf.bytes + off, &r, sizeof r);
        off += NLMSG_ALIGN(sizeof r);
        bclen = protocol == PN_IPPROTO_SCTP ? 0 : filter_bytecode(q, family, bc, sizeof bc);
        if (bclen)
            off += put_attr(buf.bytes + off, INET_DIAG_REQ_BYTECODE, bc, bclen);
        if (protocol > 255) {
            uint32_t proto32 = (uint32_t)protocol;
            off += put_attr(buf.bytes + off, PN_INET_DIAG_REQ_PROTOCOL, &proto32, 4);
        }
    } else if (family == AF_UNIX) {
        struct unix_diag_req r = {0};
        r.sdiag_family = AF_UNIX;
        r.udiag_states = 0xffffffffu;   /* unix states are filtered after mapping to SS_* */
        r.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN | UDIAG_SHOW_UID;
        memcpy(buf.bytes + off, &r, sizeof r);
        off += NLMSG_ALIGN(sizeof r);
    } else if (family == AF_VSOCK) {
        struct pn_vsock_diag_req r = {0};
        r.sdiag_family = AF_VSOCK;
        r.vdiag_states = q->state_mask[table] ? q->state_mask[table] : 0xffffffffu;
        memcpy(buf.bytes + off, &r, sizeof r);
        off += NLMSG_ALIGN(sizeof r);
    } else if (family == AF_XDP) {
        struct pn_xdp_diag_req r = {0};
        r.sdiag_family = AF_XDP;
        r.xdiag_show = PN_XDP_SHOW_INFO;
        memcpy(buf.bytes + off, &r, sizeof r);
        off += NLMSG_ALIGN(sizeof r);
    } else if (family == AF_PACKET) {
        struct packet_diag_req r = {0};
        r.sdiag_family = AF_PACKET;
        r.pdiag_show = PACKET_SHOW_INFO;
        memcpy(buf.bytes + off, &r, sizeof r);
        off += NLMSG_ALIGN(sizeof r);
    } else {                            /* AF_NETLINK */
        struct netlink_diag_req r = {0};
        r.sdiag_family = AF_NETLINK;
        r.sdiag_protocol = NDIAG_PROTO_ALL;
        r.ndiag_show = NDIAG_SHOW_GROUPS;
        memcpy(buf.bytes + off, &r, sizeof r);
        off += NLMSG_ALIGN(sizeof r);
    }
    buf.align.nlmsg_len = (uint32_t)off;
    buf.align.nlmsg_type = table == PN_DIAG_TCP46 ? TCPDIAG_GETSOCK : SOCK_DIAG_BY_FAMILY;
    buf.align.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    buf.align.nlmsg_seq = seq;

    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    ssize_t n;
    do
        n = sendto(fd, buf.bytes, off, 0, (struct sockaddr *)&kernel, sizeof kernel);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

/* Walk the attributes of one message: call back per (type, data, len). */
#define FOR_ATTRS(start, total, a)                                              \
    for (const struct nlattr *a = (const struct nlattr *)(start);               \
         (const char *)a + NLA_HDRLEN <= (const char *)(start) + (total) &&       \
         a->nla_len >= NLA_HDRLEN &&                                            \
         (const char *)a + a->nla_len <= (const char *)(start) + (total);        \
         a = (const struct nlattr *)((const char *)a + NLA_ALIGN(a->nla_len)))
#define ATTR_DATA(a) ((const char *)(a) + NLA_HDRLEN)
#define ATTR_LEN(a)  ((size_t)((a)->nla_len - NLA_HDRLEN))

static uint32_t get_u32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Decode one dump message into *s (and a unix name into the sink).
 * 1 = a record, 0 = malformed (counted), -1 = ENOMEM. */
static int decode_msg(int table, const struct nlmsghdr *h, struct pn_sock *s, struct pn_sink *sink)
{
    const char *data = NLMSG_DATA(h);
    size_t len = h->nlmsg_len - NLMSG_LENGTH(0);
    memset(s, 0, sizeof *s);
    if (table == PN_DIAG_TCP46) {       /* each answer says its family */
        if (len < 1 || (data[0] != AF_INET && data[0] != AF_INET6))
            return 0;
        table = data[0] == AF_INET6 ? PN_TCP6 : PN_TCP;
    }
    s->table = (uint8_t)table;

    if (pn_table_is_ip(table)) {
        struct inet_diag_msg m;
        if (len < sizeof m)
            return 0;
        memcpy(&m, data, sizeof m);
        int v6 = pn_inet_is_v6(table);
        memcpy(s->laddr, m.id.idiag_src, v6 ? 16 : 4);   /* already network order */
        memcpy(s->raddr, m.id.idiag_dst, v6 ? 16 : 4);
        s->lport = ntohs(m.id.idiag_sport);
        s->rport = ntohs(m.id.idiag_dport);
        s->state = m.idiag_state;
        s->rx_queue = m.idiag_rqueue;
        s->tx_queue = m.idiag_wqueue;
        s->uid = m.idiag_uid;
        s->inode = m.idiag_inode;
        pn_inet_kind(table, s);     /* protocol and type, as the text decoder gives them */
        if (table == PN_SCTP || table == PN_SCTP6) {
            /* an association (it has peers) reports its SCTP_STATE_*, an endpoint its sk_state */
            size_t hdr = NLMSG_ALIGN(sizeof m);
            if (len >= hdr) {
                FOR_ATTRS(data + hdr, len - hdr, a) {
                    if (a->nla_type == INET_DIAG_PEERS) {
                        s->state = (uint8_t)(m.idiag_state < 256 - PN_SCTP_ASSOC_STATE ?
                                             PN_SCTP_ASSOC_STATE + m.idiag_state : 255);
                        break;
                    }
                }
            }
        }
        return 1;
    }
    if (table == PN_VSOCK) {
        struct pn_vsock_diag_msg m;
        if (len < sizeof m)
            return 0;
        memcpy(&m, data, sizeof m);
        uint32_t lcid = htonl(m.vdiag_src_cid), rcid = htonl(m.vdiag_dst_cid);
        memcpy(s->laddr, &lcid, 4);     /* CIDs big-endian, like an IPv4 address */
        memcpy(s->raddr, &rcid, 4);
        s->ext = m.vdiag_src_port;      /* ports are 32-bit: not lport/rport */
        s->ext_len = m.vdiag_dst_port;
        s->stype = m.vdiag_type;
        s->state = m.vdiag_state;
        s->inode = m.vdiag_ino;
        s->flags = PN_SF_NO_UID;        /* vsock_diag reports no uid */
        return 1;
    }
    if (table == PN_XDP) {
        struct pn_xdp_diag_msg m;
        if (len < sizeof m)
            return 0;
        memcpy(&m, data, sizeof m);
        s->stype = m.xdiag_type;
        s->inode = m.xdiag_ino;
        s->flags = PN_SF_NO_UID;
        size_t hdr = NLMSG_ALIGN(sizeof m);
        if (len < hdr)
            return 1;
        FOR_ATTRS(data + hdr, len - hdr, a) {
            if (a->nla_type == PN_XDP_DIAG_INFO && ATTR_LEN(a) >= sizeof(struct pn_xdp_diag_info)) {
                struct pn_xdp_diag_info xi;
                memcpy(&xi, ATTR_DATA(a), sizeof xi);
                s->ext = xi.ifindex;
                s->ext_len = xi.queue_id;
            } else if (a->nla_type == PN_XDP_DIAG_UID && ATTR_LEN(a) >= 4) {
                s->uid = get_u32(ATTR_DATA(a));
                s->flags &= (uint16_t)~PN_SF_NO_UID;
            }
        }
        return 1;
    }
    if (table == PN_UNIX) {
        struct unix_diag_msg m;
        if (len < sizeof m)
            return 0;
        memcpy(&m, data, sizeof m);
        s->inode = m.udiag_ino;
        s->stype = m.udiag_type;
        s->flags = PN_SF_NO_UID;
        /* sk_state -> the SS_* state and listening flag /proc/net/unix prints */
        switch (m.udiag_state) {
        case 10: s->state = 1; s->flags |= PN_SF_UNIX_ACC; break;   /* TCP_LISTEN */
        case 1:  s->state = 3; break;                              /* TCP_ESTABLISHED */
        case 2:  s->state = 2; break;                              /* TCP_SYN_SENT */
        default: s->state = 1; break;                              /* TCP_CLOSE */
        }
        size_t hdr = NLMSG_ALIGN(sizeof m);
        if (len < hdr)
            return 1;
        FOR_ATTRS(data + hdr, len - hdr, a) {
            if (a->nla_type == UNIX_DIAG_NAME && ATTR_LEN(a) > 0) {
                /* as /proc/net/unix prints it: a path without the NUL that the
                 * kernel keeps after it, '@' for an abstract name's NULs */
                const char *name = ATTR_DATA(a);
                size_t n = ATTR_LEN(a) - (name[0] != '\0');
                char *p = pn_vec_reserve(&sink->strings, 1, n);
                if (!p)
                    return -1;
                for (size_t i = 0; i < n; i++)
                    p[i] = name[i] ? name[i] : '@';
                s->ext = (uint32_t)sink->strings.len;
                s->ext_len = (uint32_t)n;
                sink->strings.len += n;
            } else if (a->nla_type == UNIX_DIAG_RQLEN && ATTR_LEN(a) >= 8) {
                s->rx_queue = get_u32(ATTR_DATA(a));
                s->tx_queue = get_u32(ATTR_DATA(a) + 4);
            } else if (a->nla_type == UNIX_DIAG_UID && ATTR_LEN(a) >= 4) {
                s->uid = get_u32(ATTR_DATA(a));
                s->flags &= (uint16_t)~PN_SF_NO_UID;
            }
        }
        return 1;
    }
    if (table == PN_PACKET) {
        struct packet_diag_msg m;
        if (len < sizeof m)
            return 0;
        memcpy(&m, data, sizeof m);
        s->inode = m.pdiag_ino;
        s->stype = m.pdiag_type;
        s->protocol = m.pdiag_num;       /* the kernel already applied ntohs */
        size_t hdr = NLMSG_ALIGN(sizeof m);
        if (len < hdr)
            return 1;
        FOR_ATTRS(data + hdr, len - hdr, a) {
            if (a->nla_type == PACKET_DIAG_INFO && ATTR_LEN(a) >= sizeof(struct packet_diag_info)) {
                struct packet_diag_info pi;
                memcpy(&pi, ATTR_DATA(a), sizeof pi);
                s->ext = pi.pdi_index;
                if (pi.pdi_flags & PDI_RUNNING)
                    s->flags |= PN_SF_PKT_RUNNING;
            } else if (a->nla_type == PACKET_DIAG_UID && ATTR_LEN(a) >= 4) {
                s->uid = get_u32(ATTR_DATA(a));
            }
        }
        return 1;
    }
    /* PN_NETLINK */
    struct netlink_diag_msg m;
    if (len < sizeof m)
        return 0;
    memcpy(&m, data, sizeof m);
    s->inode = m.ndiag_ino;
    s->stype = m.ndiag_type;
    s->protocol = m.ndiag_protocol;
    s->ext = m.ndiag_portid;
    s->flags = PN_SF_NO_UID;
    size_t hdr = NLMSG_ALIGN(sizeof m);
    if (len >= hdr) {
        FOR_ATTRS(data + hdr, len - hdr, a) {
            if (a->nla_type == NETLINK_DIAG_GROUPS && ATTR_LEN(a) >= sizeof(unsigned long)) {
                unsigned long g;      /* a bitmap of longs: the text shows the first 32 bits */
                memcpy(&g, ATTR_DATA(a), sizeof g);
                s->ext_len = (uint32_t)g;
            }
        }
    }
    return 1;
}

int pn_diag_parse(const char *buf, size_t n, int table, const struct pn_query *q,
                  struct pn_sink *sink, uint32_t *skipped, uint64_t own_inode, uint32_t seq,
                  int *intr)
{
    /* Walk by offset, not with NLMSG_NEXT: an unaligned length in the last
     * message would make its size_t remainder wrap around (found by fuzzing). */
    const struct nlmsghdr *h;
    for (size_t off = 0, step; n - off >= NLMSG_HDRLEN; off += step) {
        h = (const struct nlmsghdr *)(buf + off);
        if (h->nlmsg_len < NLMSG_HDRLEN || h->nlmsg_len > n - off)
            break;                    /* truncated or garbage: nothing more to trust */
        step = NLMSG_ALIGN(h->nlmsg_len);
        if (step > n - off)
            step = n - off;
        if (h->nlmsg_seq != seq)
            continue;                 /* a stale answer to an earlier request */
        if (h->nlmsg_flags & NLM_F_DUMP_INTR)
            *intr = 1;
        if (h->nlmsg_type == NLMSG_DONE) {
            int err = 0;
            if (h->nlmsg_len >= NLMSG_LENGTH(sizeof err))
                memcpy(&err, NLMSG_DATA(h), sizeof err);
            if (err < 0) {
                errno = err == INT_MIN ? EPROTO : -err;
                return -1;
            }
            return 1;
        }
        if (h->nlmsg_type == NLMSG_ERROR) {
            struct nlmsgerr e;
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof e)) {
                errno = EPROTO;
                return -1;
            }
            memcpy(&e, NLMSG_DATA(h), sizeof e);
            errno = e.error < 0 && e.error != INT_MIN ? -e.error : EPROTO;
            return -1;
        }
        if (h->nlmsg_type != (table == PN_DIAG_TCP46 ? TCPDIAG_GETSOCK : SOCK_DIAG_BY_FAMILY))
            continue;
        struct pn_sock *s = pn_vec_reserve(&sink->socks, sizeof *s, 1);
        if (!s)
            return -1;
        size_t mark = sink->strings.len;
        int r = decode_msg(table, h, s, sink);
        if (r < 0)
            return -1;
        if (r == 0) {
            (*skipped)++;
            continue;
        }
        if ((own_inode && s->inode == own_inode && table == PN_NETLINK) || !pn_keep_sock(q, s)) {
            sink->strings.len = mark;   /* our own diag socket, or filtered out */
            continue;
        }
        sink->socks.len++;
    }
    return 0;
}

int pn_diag_decode(int table, const char *buf, size_t n, uint32_t seq,
                   const struct pn_query *q, struct pn_result *out)
{
    struct pn_query all;
    struct pn_sink sink;
    int intr = 0, r;
    memset(out, 0, sizeof *out);
    if (table < 0 || table > PN_DIAG_TCP46) {
        errno = EINVAL;
        return -1;
    }
    if (!q) {
        memset(&all, 0, sizeof all);
        all.lport = all.rport = -1;
        all.uid = -1;
        q = &all;
    }
    memset(&sink, 0, sizeof sink);
    r = pn_diag_parse(buf, n, table, q, &sink, &out->skipped[table == PN_DIAG_TCP46 ? PN_TCP : table],
                      0, seq, &intr);
    int e = errno;
    out->socks = sink.socks.data;       /* what was decoded before an error, too */
    out->nsocks = sink.socks.len;
    out->strings = sink.strings.data;
    out->strings_len = sink.strings.len;
    errno = e;
    return r;
}

/* One dump attempt. 0 done, 1 interrupted (retry), -1 error (errno). */
static int dump_once(int fd, int table, const struct pn_query *q, struct pn_sink *sink,
                     uint32_t *skipped, uint64_t own_inode, uint32_t seq)
{
    if (send_dump(fd, table, q, seq) < 0)
        return -1;
    int intr = 0;
    for (;;) {
        ssize_t n;
        do
            n = recv(fd, sink->readbuf, PN_DIAG_RCVBUF, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EPROTO;
            return -1;
        }
        int r = pn_diag_parse(sink->readbuf, (size_t)n, table, q, sink, skipped, own_inode, seq, &intr);
        if (r < 0)
            return -1;
        if (r > 0)
            return intr;
    }
}

/* A tcp+tcp6 dump answers in hash order; the records keep table order (tcp,
 * then tcp6, each in the order received), as two dumps would give them.
 * No strings: TCP records point into none. -1 only on ENOMEM. */
static int tcp_before_tcp6(struct pn_sink *sink, size_t from)
{
    struct pn_sock *s = (struct pn_sock *)sink->socks.data + from;
    size_t n = sink->socks.len - from, n6 = 0, k = 0;
    for (size_t i = 0; i < n; i++)
        n6 += s[i].table == PN_TCP6;
    if (n6 == 0 || n6 == n)
        return 0;
    struct pn_sock *six = malloc(n6 * sizeof *six);
    if (!six) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0, j = 0; i < n; i++) {
        if (s[i].table == PN_TCP6)
            six[j++] = s[i];
        else
            s[k++] = s[i];
    }
    memcpy(s + k, six, n6 * sizeof *six);
    free(six);
    return 0;
}

/* Whether one tcp+tcp6 dump can serve both tables of q: both asked for and
 * allowed over netlink, the same states, and no local address filter (the
 * kernel's address condition is of one family; ports are of both). */
int pn_diag_tcp46_serves(const struct pn_query *q)
{
    uint32_t both = (1u << PN_TCP) | (1u << PN_TCP6);
    return (q->tables & both) == both && !(q->netlink_deny & both) && !q->laddr_family &&
           q->state_mask[PN_TCP] == q->state_mask[PN_TCP6];
}

int pn_diag_table(int fd, int table, const struct pn_query *q, struct pn_sink *sink,
                  uint32_t *skipped, uint64_t own_inode, uint32_t *seq)
{
    size_t socks0 = sink->socks.len, strings0 = sink->strings.len;
    uint32_t skipped0 = *skipped;
    for (int attempt = 0; attempt <= PN_DIAG_RETRIES; attempt++) {
        int r = dump_once(fd, table, q, sink, skipped, own_inode, ++*seq);
        if (r == 0)
            return table == PN_DIAG_TCP46 ? tcp_before_tcp6(sink, socks0) : 0;
        /* interrupted or failed: drop what this table gave, start over or give up */
        sink->socks.len = socks0;
        sink->strings.len = strings0;
        *skipped = skipped0;
        if (r < 0)
            return -1;
    }
    errno = EAGAIN;     /* the table kept changing under every retry */
    return -1;
}
