/*
 * render_out.h -- what the command line's renderers in the core share
 * (netstat_render.c: the table; json_render.c: JSON rows): an output sink
 * that streams through a fixed buffer to the caller's fd, and the text of a
 * record's fields that both spell the same way (state names, addresses).
 * Not part of the contract (procnet.h); native-only, no pure twin: the
 * Python renderers are the twins, and tests/test_render.py compares bytes.
 */
#ifndef PN_RENDER_OUT_H
#define PN_RENDER_OUT_H

#include "pn_internal.h"

#include <arpa/inet.h>

#define PN_OUT_CAP 65536        /* output buffer, flushed when full */
#define PN_SCRATCH_CAP 4096     /* a table cell longer than this is formatted twice */
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Where the bytes go: measuring (count code points) or the output buffer.
 * A write interrupted by a signal returns with err = EINTR; the caller runs
 * its handlers and calls again with pn_render.skip = written, and the output
 * is produced again from the start but only the rest is written. */
struct pn_out {
    struct pn_render *w;
    const struct pn_result *r;
    int       measure;         /* 1: count only; 2: also keep the bytes in scratch */
    int       need_unicode;    /* measuring met a non-ASCII character and no table */
    size_t    cps;             /* code points emitted (measure) */
    char     *buf;
    size_t    len;
    uint64_t  pos;             /* bytes of the whole output produced so far */
    int       err;             /* errno of a failed write */
    char      scratch[PN_SCRATCH_CAP];   /* one cell, formatted once for pass 2 */
    size_t    slen;
    int       overflow;        /* the cell did not fit: formatted again when written */
};

/* A sink on w's fd for r's records: 0, or -1 with errno ENOMEM. */
int  pn_out_open(struct pn_out *s, struct pn_render *w, const struct pn_result *r);
/* Flush what is left (when rc is 0) and free the buffer: 0, or -1 with errno
 * (the failed write's, EIO if none was recorded). */
int  pn_out_close(struct pn_out *s, int rc);

/* n bytes of cps code points; 0 or -1 (s->err). */
int  pn_put(struct pn_out *s, const char *p, size_t n, size_t cps);
int  pn_puts(struct pn_out *s, const char *ascii);
int  pn_put_u64(struct pn_out *s, uint64_t v);
int  pn_put_i64(struct pn_out *s, int64_t v);

/* The length of a valid UTF-8 sequence at p (Python's strict decoder: no
 * overlong forms, surrogates or code points past U+10FFFF), 0 if invalid. */
size_t pn_utf8_len(const unsigned char *p, size_t n, uint32_t *cp);

/* TCP_* state names by code (_tables); 13 of them. */
extern const char *const pn_tcp_states[13];
/* _tables.state_name(): NULL means "UNKNOWN_<code>". */
const char *pn_state_name(const struct pn_sock *k);
/* The kernel's code of a state pn_state_name() does not know ("UNKNOWN_<code>"):
 * an SCTP association's SCTP_STATE_*, not its offset in pn_sock.state. */
unsigned pn_state_code(const struct pn_sock *k);
/* Connection.listening */
int  pn_is_listening(const struct pn_sock *k);
/* _tables.TABLES: the table's name ("tcp" ...), "?" past the known ones. */
const char *pn_table_name(unsigned table);
/* The numeric host of an inet record's local or remote address, as
 * socket.inet_ntop prints it: its length, or 0 with errno. */
size_t pn_format_ip(const struct pn_sock *k, int remote, char ip[INET6_ADDRSTRLEN]);

static inline uint32_t pn_be32(const uint8_t *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

#endif /* PN_RENDER_OUT_H */
