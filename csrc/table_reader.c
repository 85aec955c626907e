/*
 * table_reader.c -- read one /proc/net table with large reads and decode it
 * line by line into the sink, applying the query's filters as it goes.
 *
 * Lines are decoded in place in the read buffer; only a partial last line is
 * moved to the front before the next read. Nothing is allocated per line.
 */
#include "pn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

const char *const pn_table_files[PN_NTABLES][2] = {
    {"tcp"}, {"tcp6"}, {"udp"}, {"udp6"}, {"udplite"}, {"udplite6"}, {"raw"}, {"raw6"},
    {"icmp"}, {"icmp6"}, {"unix"}, {"packet"}, {"netlink"},
    [PN_MPTCP] = {NULL}, [PN_MPTCP6] = {NULL},        /* no text: sock_diag only */
    /* both files list both families; each line goes to the table of its own */
    [PN_SCTP] = {"sctp/eps", "sctp/assocs"}, [PN_SCTP6] = {"sctp/eps", "sctp/assocs"},
    [PN_VSOCK] = {NULL}, [PN_XDP] = {NULL},
};

int pn_decode_line(int table, const char *line, size_t len, int byte_order,
                   struct pn_sock *out, const char **path, size_t *path_len)
{
    const char *dummy_path;
    size_t dummy_len;
    if (!path) path = &dummy_path;
    if (!path_len) path_len = &dummy_len;
    *path = NULL;
    *path_len = 0;
    /* The kernel never prints a NUL, and no line of ours is this long:
     * either means corrupt or foreign text, so the line is malformed. */
    if (len > PN_MAX_LINE || memchr(line, '\0', len))
        return 0;
    int big = byte_order == PN_ORDER_BIG ||
              (byte_order == PN_ORDER_HOST && pn_host_big_endian());
    switch (table) {
    case PN_TCP: case PN_TCP6: case PN_UDP: case PN_UDP6:
    case PN_UDPLITE: case PN_UDPLITE6: case PN_RAW: case PN_RAW6:
    case PN_ICMP: case PN_ICMP6:
        return pn_decode_inet(table, line, len, big, out);
    case PN_UNIX:
        return pn_decode_unix(line, len, out, path, path_len);
    case PN_PACKET:
        return pn_decode_packet(line, len, out);
    case PN_NETLINK:
        return pn_decode_netlink(line, len, out);
    case PN_SCTP: case PN_SCTP6:
        return pn_decode_sctp(line, len, out);
    default:
        return 0;
    }
}

/* The filters that can be decided from the table alone. */
int pn_keep_sock(const struct pn_query *q, const struct pn_sock *s)
{
    uint32_t mask = q->state_mask[s->table];
    if (mask) {
        unsigned st = s->table == PN_UNIX && (s->flags & PN_SF_UNIX_ACC) ? PN_STATE_UNIX_LISTEN : s->state;
        if (!(st < 32 && (mask >> st) & 1u))
            return 0;
    }
    /* vsock ports are 32-bit, kept in ext/ext_len */
    uint32_t lport = s->table == PN_VSOCK ? s->ext : s->lport;
    uint32_t rport = s->table == PN_VSOCK ? s->ext_len : s->rport;
    if (q->lport >= 0 && lport != (uint32_t)q->lport)
        return 0;
    if (q->rport >= 0 && rport != (uint32_t)q->rport)
        return 0;
    if (q->uid >= 0 && ((s->flags & PN_SF_NO_UID) || s->uid != (uint64_t)q->uid))
        return 0;
    if (q->laddr_family) {
        /* exact: the socket's own family (an IPv4-mapped IPv6 address is IPv6) */
        if (!pn_table_is_ip(s->table) ||
            (pn_inet_is_v6(s->table) ? q->laddr_family != AF_INET6 : q->laddr_family != AF_INET) ||
            memcmp(s->laddr, q->laddr, q->laddr_family == AF_INET6 ? 16 : 4) != 0)
            return 0;
    }
    return 1;
}

/* Decode one complete line; returns 0 on success, -1 on ENOMEM. */
static int take_line(int table, const struct pn_query *q, const char *line, size_t len,
                     struct pn_sink *sink, uint32_t *skipped)
{
    struct pn_sock *s = pn_vec_reserve(&sink->socks, sizeof *s, 1);
    const char *path;
    size_t path_len;
    if (!s)
        return -1;
    if (!pn_decode_line(table, line, len, q->byte_order, s, &path, &path_len)) {
        (*skipped)++;
        return 0;
    }
    if (s->table != table || !pn_keep_sock(q, s))   /* sctp: a line of the other family */
        return 0;
    if (table == PN_NETLINK && sink->own_inode && s->inode == sink->own_inode)
        return 0;                 /* our dump socket, open while the text is read */
    if (path) {
        size_t off = pn_vec_append_bytes(&sink->strings, path, path_len);
        if (off == (size_t)-1 || off > UINT32_MAX)
            return -1;
        s->ext = (uint32_t)off;
        s->ext_len = (uint32_t)path_len;
    }
    sink->socks.len++;
    return 0;
}

/* Does the first line decode as a data line (the header is missing)? */
static int header_is_data(int table, const struct pn_query *q, const char *line, size_t len)
{
    struct pn_sock s;
    return pn_decode_line(table, line, len, q->byte_order, &s, NULL, NULL);
}

static int read_file(int netdirfd, const char *file, int table, const struct pn_query *q,
                     struct pn_sink *sink, uint32_t *skipped)
{
    int fd = pn_open_file(netdirfd, file);
    if (fd < 0)
        return -1;

    char *buf = sink->readbuf;
    size_t have = 0;          /* bytes of an unfinished line at buf[0..have) */
    int header = 1;           /* every table starts with one header line */
    int overlong = 0;         /* discarding the rest of an overlong line */
    int rc = 0;
    size_t total_read = 0;    /* bounded by PN_MAX_FILE */
    size_t start_socks = sink->socks.len, start_strings = sink->strings.len;
    uint32_t start_skipped = *skipped;

    for (;;) {
        ssize_t n = pn_read_fd(fd, buf + have, PN_READ_CHUNK);
        if (n < 0) {
            rc = -1;
            break;
        }
        total_read += (size_t)n;
        if (total_read > (size_t)PN_MAX_FILE) {
            errno = EFBIG;
            rc = -1;
            break;
        }
        int eof = n == 0;
        size_t total = have + (size_t)n;
        size_t pos = 0;
        for (;;) {
            char *nl = memchr(buf + pos, '\n', total - pos);
            size_t end;
            if (nl)
                end = (size_t)(nl - buf);
            else if (eof && pos < total)
                end = total;          /* last line without a newline */
            else
                break;
            if (overlong) {
                overlong = 0;
                if (header)
                    header = 0;
                else
                    (*skipped)++;
            } else if (header) {
                /* the header, unless it is missing: a data line in its
                 * place is counted, as the malformed ones are */
                header = 0;
                if (header_is_data(table, q, buf + pos, end - pos))
                    (*skipped)++;
            } else if (take_line(table, q, buf + pos, end - pos, sink, skipped) < 0) {
                errno = ENOMEM;
                rc = -1;
                goto out;
            }
            if (!nl) {
                pos = total;          /* that was the unterminated last line */
                break;
            }
            pos = end + 1;
        }
        have = total - pos;
        if (have > PN_MAX_LINE) {
            /* No newline within any sane line length: drop what we hold and
             * keep dropping until the next newline, then count one skip. */
            overlong = 1;
            have = 0;
        } else if (have && pos) {
            memmove(buf, buf + pos, have);
        }
        if (eof) {
            if (overlong && !header)
                (*skipped)++;
            break;
        }
    }
out:
    if (rc < 0) {
        int e = errno;
        /* a table that failed mid-way contributes nothing rather than half */
        sink->socks.len = start_socks;
        sink->strings.len = start_strings;
        *skipped = start_skipped;
        errno = e;
    }
    close(fd);
    return rc;
}

int pn_read_table(int netdirfd, int table, const struct pn_query *q,
                  struct pn_sink *sink, uint32_t *skipped)
{
    if (table < 0 || table >= PN_NTABLES || !pn_table_files[table][0]) {
        errno = ENOENT;               /* a table with no text: missing, as on old kernels */
        return -1;
    }
    size_t start_socks = sink->socks.len, start_strings = sink->strings.len;
    uint32_t start_skipped = *skipped;
    for (int i = 0; i < 2 && pn_table_files[table][i]; i++) {
        if (read_file(netdirfd, pn_table_files[table][i], table, q, sink, skipped) < 0) {
            int e = errno;            /* all of the table or nothing */
            sink->socks.len = start_socks;
            sink->strings.len = start_strings;
            *skipped = start_skipped;
            errno = e;
            return -1;
        }
    }
    return 0;
}
