/*
 * render_out.c -- the renderers' output sink and the field text they share
 * (see render_out.h). No state outside the caller's structs.
 */
#include "render_out.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static int flush_out(struct pn_out *s)
{
    size_t done = 0;
    while (done < s->len) {
        ssize_t n = write(s->w->fd, s->buf + done, s->len - done);
        if (n < 0) {
            /* EINTR (nothing written by this write): back to the caller, who runs
             * its signal handlers (Ctrl-C raises there) and calls again with
             * skip = written, which regenerates the output but writes only the rest */
            s->err = errno;
            return -1;
        }
        if (n == 0) {
            /* a write that takes nothing (a driver, a FUSE file system): calling
             * again would take nothing again -- an error, not a spin */
            s->err = EIO;
            return -1;
        }
        done += (size_t)n;
        s->w->written += (uint64_t)n;
        if (done < s->len) {
            /* a short write: a signal came (a blocking pipe or file writes all
             * otherwise); let the caller run its handler too, as for EINTR */
            s->err = EINTR;
            return -1;
        }
    }
    s->len = 0;
    return 0;
}

int pn_out_open(struct pn_out *s, struct pn_render *w, const struct pn_result *r)
{
    s->w = w;
    s->r = r;
    s->len = 0;
    s->pos = 0;
    s->err = 0;
    s->buf = malloc(PN_OUT_CAP);
    if (!s->buf) {
        errno = ENOMEM;
        return -1;
    }
    w->written = w->skip;
    return 0;
}

int pn_out_close(struct pn_out *s, int rc)
{
    if (rc == 0 && s->len)
        rc = flush_out(s);
    free(s->buf);
    s->buf = NULL;
    if (rc < 0) {
        errno = s->err ? s->err : EIO;
        return -1;
    }
    return 0;
}

int pn_put(struct pn_out *s, const char *p, size_t n, size_t cps)
{
    if (s->measure) {
        s->cps += cps;
        if (s->measure == 2) {
            if (n <= PN_SCRATCH_CAP - s->slen) {
                memcpy(s->scratch + s->slen, p, n);
                s->slen += n;
            } else
                s->overflow = 1;
        }
        return 0;
    }
    while (n) {
        /* bytes an interrupted call already wrote are produced again, not written */
        if (s->pos < s->w->skip) {
            uint64_t skip = s->w->skip - s->pos;
            size_t k = skip < n ? (size_t)skip : n;
            s->pos += k;
            p += k;
            n -= k;
            continue;
        }
        size_t room = PN_OUT_CAP - s->len;
        size_t k = n < room ? n : room;
        memcpy(s->buf + s->len, p, k);
        s->len += k;
        s->pos += k;
        p += k;
        n -= k;
        if (s->len == PN_OUT_CAP && flush_out(s) < 0)
            return -1;
    }
    return 0;
}

int pn_puts(struct pn_out *s, const char *p)
{
    size_t n = strlen(p);
    return pn_put(s, p, n, n);
}

int pn_put_u64(struct pn_out *s, uint64_t v)
{
    char b[24];
    size_t i = sizeof b;
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return pn_put(s, b + i, sizeof b - i, sizeof b - i);
}

int pn_put_i64(struct pn_out *s, int64_t v)
{
    if (v < 0) {
        if (pn_put(s, "-", 1, 1) < 0)
            return -1;
        return pn_put_u64(s, (uint64_t)(-(v + 1)) + 1);
    }
    return pn_put_u64(s, (uint64_t)v);
}

size_t pn_utf8_len(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned c = p[0];
    if (c >= 0xC2 && c <= 0xDF) {
        if (n >= 2 && (p[1] & 0xC0) == 0x80) {
            *cp = ((c & 0x1Fu) << 6) | (p[1] & 0x3Fu);
            return 2;
        }
        return 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        if (n >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80) {
            *cp = ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
            return 3;
        }
        return 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        if (n >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80) {
            *cp = ((c & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
            return 4;
        }
        return 0;
    }
    return 0;
}

/* -- field text ------------------------------------------------------------- */

const char *const pn_tcp_states[13] = {
    "NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
    "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
};
static const char *const unix_states[] = {
    "FREE", "NONE", "CONNECTING", "CONNECTED", "DISCONNECTING",
};
static const char *const sctp_assoc_states[] = {
    "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED", "SHUTDOWN_PENDING",
    "SHUTDOWN_SENT", "SHUTDOWN_RECEIVED", "SHUTDOWN_ACK_SENT",
};

const char *pn_state_name(const struct pn_sock *k)
{
    unsigned t = k->table, code = k->state;
    if (t == PN_TCP || t == PN_TCP6 || t == PN_MPTCP || t == PN_MPTCP6 || t == PN_VSOCK)
        return code < NELEM(pn_tcp_states) ? pn_tcp_states[code] : NULL;
    if (t == PN_SCTP || t == PN_SCTP6) {
        if (code >= PN_SCTP_ASSOC_STATE) {
            unsigned c = code - PN_SCTP_ASSOC_STATE;
            return c < NELEM(sctp_assoc_states) ? sctp_assoc_states[c] : NULL;
        }
        return code < NELEM(pn_tcp_states) ? pn_tcp_states[code] : NULL;
    }
    if (t < PN_UNIX) {
        if (code == 1)
            return "ESTABLISHED";
        if (code == 7)
            return "NONE";
        return code < NELEM(pn_tcp_states) ? pn_tcp_states[code] : NULL;
    }
    if (t == PN_UNIX) {
        if (k->flags & PN_SF_UNIX_ACC)
            return "LISTEN";
        return code < NELEM(unix_states) ? unix_states[code] : NULL;
    }
    return "NONE";
}

unsigned pn_state_code(const struct pn_sock *k)
{
    if ((k->table == PN_SCTP || k->table == PN_SCTP6) && k->state >= PN_SCTP_ASSOC_STATE)
        return k->state - PN_SCTP_ASSOC_STATE;
    return k->state;
}

int pn_is_listening(const struct pn_sock *k)
{
    const char *st = pn_state_name(k);
    if (!st)
        return 0;
    if (strcmp(st, "LISTEN") == 0)
        return 1;
    return k->table < PN_UNIX && k->table != PN_TCP && k->table != PN_TCP6 && strcmp(st, "NONE") == 0;
}

const char *pn_table_name(unsigned table)
{
    static const char *const names[PN_NTABLES] = {
        "tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6", "icmp", "icmp6",
        "unix", "packet", "netlink", "mptcp", "mptcp6", "sctp", "sctp6", "vsock", "xdp",
    };
    return table < PN_NTABLES ? names[table] : "?";
}

size_t pn_format_ip(const struct pn_sock *k, int remote, char ip[INET6_ADDRSTRLEN])
{
    const uint8_t *a = remote ? k->raddr : k->laddr;
    size_t n = 0;
    if (!pn_inet_is_v6((int)k->table)) {
        /* dotted quad: what every inet_ntop(AF_INET) prints, without its cost */
        for (int i = 0; i < 4; i++) {
            unsigned v = a[i];
            if (i)
                ip[n++] = '.';
            if (v >= 100)
                ip[n++] = (char)('0' + v / 100);
            if (v >= 10)
                ip[n++] = (char)('0' + v / 10 % 10);
            ip[n++] = (char)('0' + v % 10);
        }
        return n;
    }
    if (!inet_ntop(AF_INET6, a, ip, INET6_ADDRSTRLEN)) {
        if (!errno)
            errno = EINVAL;
        return 0;
    }
    return strlen(ip);
}
