/*
 * netstat_render.c -- the command line's netstat table, rendered from a
 * snapshot's flat records and streamed to a file descriptor.
 *
 * Byte for byte what procnet/cli/netstat_render.py writes for the cases it accepts
 * (numeric hosts, ports and users; the CLI falls back to Python otherwise):
 * sections inet, unix, vsock, xdp; every column as wide as its widest value
 * (code points, as Python's len()), no trailing blanks; text a local user
 * chooses (unix paths, process names) escaped as cli/names.py escape() does.
 *
 * Two passes over the records: the first measures every cell (widths), the
 * second writes; output goes through a fixed buffer flushed to the fd, so
 * memory does not grow with the number of sockets. No state outside the
 * caller's struct pn_render.
 */
#include "render_out.h"

#include <errno.h>

#define MAX_COLS 10

/* column kinds */
enum col {
    COL_PROTO, COL_RECVQ, COL_SENDQ, COL_LOCAL, COL_FOREIGN, COL_STATE, COL_USER,
    COL_INODE, COL_NETNS, COL_PROGRAM, COL_UFLAGS, COL_UTYPE, COL_USTATE, COL_PATH
};

struct column {
    enum col    kind;
    const char *header;
    size_t      width;         /* netstat's minimum; grown to the data */
    int         right;
};

struct section {
    int           which;       /* PN_R_INET, PN_R_UNIX, PN_R_VSOCK, PN_R_XDP */
    const char   *title;       /* "Active Internet connections" ... */
    struct column cols[MAX_COLS];
    size_t        ncols;
};

static int spaces(struct pn_out *s, size_t n)
{
    static const char blanks[] = "                                ";
    while (n) {
        size_t k = n < sizeof blanks - 1 ? n : sizeof blanks - 1;
        if (pn_put(s, blanks, k, k) < 0)
            return -1;
        n -= k;
    }
    return 0;
}

/* -- escaping, as cli/names.py escape() on text decoded with surrogateescape -- */

static int nonprintable(const struct pn_render *w, uint32_t cp)
{
    size_t lo = 0, hi = w->nnonprint;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->nonprint[mid] == cp)
            return 1;
        if (w->nonprint[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static int put_hex_escape(struct pn_out *s, char kind, uint32_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    char b[10];
    b[0] = '\\';
    b[1] = kind;
    for (int i = 0; i < digits; i++)
        b[2 + i] = hex[(v >> (4 * (digits - 1 - i))) & 0xF];
    return pn_put(s, b, (size_t)digits + 2, (size_t)digits + 2);
}

static int put_escaped(struct pn_out *s, const char *text, size_t n)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        /* a run kept as is: printable ASCII but the backslash */
        size_t j = i;
        while (j < n && p[j] >= 0x20 && p[j] < 0x7F && p[j] != '\\')
            j++;
        if (j > i && pn_put(s, text + i, j - i, j - i) < 0)
            return -1;
        i = j;
        if (i >= n)
            break;
        unsigned c = p[i];
        int rc;
        uint32_t cp = 0;
        size_t k;
        if (c == '\n')
            rc = pn_put(s, "\\n", 2, 2);
        else if (c == '\t')
            rc = pn_put(s, "\\t", 2, 2);
        else if (c == '\r')
            rc = pn_put(s, "\\r", 2, 2);
        else if (c == '\\')
            rc = pn_put(s, "\\\\", 2, 2);
        else if (c < 0x80)                         /* other C0 controls, DEL */
            rc = put_hex_escape(s, 'x', c, 2);
        else if ((k = pn_utf8_len(p + i, n - i, &cp)) == 0)
            rc = put_hex_escape(s, 'x', c, 2);     /* a byte that was not UTF-8 */
        else {
            if (!s->w->nonprint) {                 /* printable? Python's Unicode tables say */
                s->need_unicode = 1;
                rc = pn_put(s, text + i, k, 1);
            } else if (!nonprintable(s->w, cp))
                rc = pn_put(s, text + i, k, 1);
            else if (cp < 0x100)
                rc = put_hex_escape(s, 'x', cp, 2);
            else if (cp < 0x10000)
                rc = put_hex_escape(s, 'u', cp, 4);
            else
                rc = put_hex_escape(s, 'U', cp, 8);
            i += k;
            if (rc < 0)
                return -1;
            continue;
        }
        if (rc < 0)
            return -1;
        i++;
    }
    return 0;
}

/* UTF-8 text already escaped by Python: code points are the bytes but continuation bytes. */
static int put_utf8(struct pn_out *s, const char *text, size_t n)
{
    size_t cps = 0;
    for (size_t i = 0; i < n; i++)
        cps += ((unsigned char)text[i] & 0xC0) != 0x80;
    return pn_put(s, text, n, cps);
}

/* -- field text ------------------------------------------------------------- */

static int put_unknown_state(struct pn_out *s, unsigned code)
{
    if (pn_puts(s, "UNKNOWN_") < 0)
        return -1;
    return pn_put_u64(s, code);
}

/* The State column of inet and other sections (table.py _STATE_TEXT / _DGRAM_STATE). */
static int put_state(struct pn_out *s, const struct pn_sock *k)
{
    const char *st = pn_state_name(k);
    if (!st)
        return put_unknown_state(s, pn_state_code(k));
    if (k->table == PN_RAW || k->table == PN_RAW6) {
        /* netstat prints raw sockets' state as the kernel's number: the code of the name */
        unsigned code = 0;
        if (strcmp(st, "NONE") == 0 || strcmp(st, "CLOSE") == 0)
            code = 7;
        else
            for (unsigned c = 1; c < NELEM(pn_tcp_states); c++)
                if (strcmp(st, pn_tcp_states[c]) == 0)
                    code = c;
        return code ? pn_put_u64(s, code) : pn_puts(s, st);
    }
    if (k->table == PN_TCP || k->table == PN_TCP6)
        return pn_puts(s, st);
    return strcmp(st, "NONE") == 0 ? 0 : pn_puts(s, st);
}

static int put_unix_state(struct pn_out *s, const struct pn_sock *k)
{
    const char *st = pn_state_name(k);
    if (!st)
        return put_unknown_state(s, pn_state_code(k));
    if (strcmp(st, "LISTEN") == 0)
        return pn_puts(s, "LISTENING");
    return strcmp(st, "NONE") == 0 ? 0 : pn_puts(s, st);
}

/* Local or Foreign Address of any family (fields.py Formatter.address, numeric). */
static int put_address(struct pn_out *s, const struct pn_sock *k, int remote)
{
    unsigned t = k->table;
    if (pn_table_is_ip((int)t)) {
        char ip[INET6_ADDRSTRLEN];
        size_t n = pn_format_ip(k, remote, ip);
        if (!n) {
            s->err = errno;
            return -1;
        }
        int bracket = memchr(ip, ':', n) != NULL;
        if ((bracket && pn_put(s, "[", 1, 1) < 0) || pn_put(s, ip, n, n) < 0 ||
            (bracket && pn_put(s, "]", 1, 1) < 0) || pn_put(s, ":", 1, 1) < 0)
            return -1;
        uint16_t port = remote ? k->rport : k->lport;
        return port ? pn_put_u64(s, port) : pn_put(s, "*", 1, 1);
    }
    if (t == PN_VSOCK) {
        uint32_t cid = pn_be32(remote ? k->raddr : k->laddr), port = remote ? k->ext_len : k->ext;
        if ((cid == 0xFFFFFFFFu ? pn_put(s, "*", 1, 1) : pn_put_u64(s, cid)) < 0 || pn_put(s, ":", 1, 1) < 0)
            return -1;
        return port == 0xFFFFFFFFu ? pn_put(s, "*", 1, 1) : pn_put_u64(s, port);
    }
    if (t == PN_XDP) {
        if (remote)
            return pn_put(s, "-", 1, 1);
        if (pn_put_u64(s, k->ext) < 0 || pn_put(s, ":", 1, 1) < 0)
            return -1;
        return pn_put_u64(s, k->ext_len);
    }
    if (remote)
        return pn_put(s, "-", 1, 1);
    return pn_put_u64(s, k->ext);      /* packet ifindex, netlink port id */
}

static int put_netns(struct pn_out *s, const struct pn_sock *k)
{
    const struct pn_render *w = s->w;
    for (size_t i = 0; i < w->nnetns; i++)
        if (w->netns[i].inode == k->netns && k->netns && w->netns[i].len)
            return put_utf8(s, w->netns[i].text, w->netns[i].len);
    return k->netns ? pn_put_u64(s, k->netns) : pn_put(s, "-", 1, 1);
}

/* "pid/name,pid/name": each pid once (owners are sorted by pid, fd); "-" for none. */
static int put_owners(struct pn_out *s, const struct pn_sock *k)
{
    const struct pn_result *r = s->r;
    if (!k->owner_count || (uint64_t)k->owner_first + k->owner_count > (uint64_t)r->nowners)
        return pn_put(s, "-", 1, 1);
    int64_t last = -1;
    int first = 1;
    for (uint32_t i = 0; i < k->owner_count; i++) {
        const struct pn_owner *o = &r->owners[k->owner_first + i];
        if (o->pid == last)
            continue;
        last = o->pid;
        if ((!first && pn_put(s, ",", 1, 1) < 0) || pn_put_i64(s, o->pid) < 0 || pn_put(s, "/", 1, 1) < 0)
            return -1;
        first = 0;
        int rc;
        if ((o->flags & PN_SF_NO_NAME) || (uint64_t)o->name_off + o->name_len > (uint64_t)r->strings_len)
            rc = pn_put(s, "-", 1, 1);
        else
            rc = o->name_len ? put_escaped(s, r->strings + o->name_off, o->name_len) : 0;   /* strings may be NULL */
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int put_path(struct pn_out *s, const struct pn_sock *k)
{
    const struct pn_result *r = s->r;
    if (!k->ext_len || (uint64_t)k->ext + k->ext_len > (uint64_t)r->strings_len)
        return 0;                   /* none (strings may then be NULL: no offset from it) */
    return put_escaped(s, r->strings + k->ext, k->ext_len);
}

static int put_cell(struct pn_out *s, enum col c, const struct pn_sock *k)
{
    switch (c) {
    case COL_PROTO:   return pn_puts(s, pn_table_name(k->table));
    case COL_RECVQ:   return pn_put_u64(s, k->rx_queue);
    case COL_SENDQ:   return pn_put_u64(s, k->tx_queue);
    case COL_LOCAL:   return put_address(s, k, 0);
    case COL_FOREIGN: return put_address(s, k, 1);
    case COL_STATE:   return put_state(s, k);
    case COL_USER:    return (k->flags & PN_SF_NO_UID) ? pn_put(s, "-", 1, 1) : pn_put_u64(s, k->uid);
    case COL_INODE:   return pn_put_u64(s, k->inode);
    case COL_NETNS:   return put_netns(s, k);
    case COL_PROGRAM: return put_owners(s, k);
    case COL_UFLAGS:  return (k->flags & PN_SF_UNIX_ACC) ? pn_puts(s, "[ ACC ]") : pn_puts(s, "[ ]");
    case COL_UTYPE: {
        const char *name = s->w->type_names ? s->w->type_names + 16 * (size_t)k->stype : "-";
        return pn_puts(s, *name ? name : "-");
    }
    case COL_USTATE:  return put_unix_state(s, k);
    case COL_PATH:    return put_path(s, k);
    }
    return 0;
}

/* The code points of one cell. */
static int measure(struct pn_out *s, enum col c, const struct pn_sock *k, size_t *cps)
{
    int was = s->measure;
    s->measure = 1;
    s->cps = 0;
    int rc = put_cell(s, c, k);
    s->measure = was;
    *cps = s->cps;
    return rc;
}

/* Format one cell into scratch (its code points in *cps); 1 if it did not fit. */
static int format_cell(struct pn_out *s, enum col c, const struct pn_sock *k, size_t *cps, int *over)
{
    int was = s->measure;
    s->measure = 2;
    s->cps = 0;
    s->slen = 0;
    s->overflow = 0;
    int rc = put_cell(s, c, k);
    s->measure = was;
    *cps = s->cps;
    *over = s->overflow;
    return rc;
}

/* The cell format_cell left in scratch (or, if it overflowed, formatted again). */
static int put_formatted(struct pn_out *s, enum col c, const struct pn_sock *k, size_t cps, int over)
{
    return over ? put_cell(s, c, k) : pn_put(s, s->scratch, s->slen, cps);
}

/* -- sections ---------------------------------------------------------------- */

static void add(struct section *sec, enum col kind, const char *header, size_t width, int right)
{
    struct column *c = &sec->cols[sec->ncols++];
    size_t h = strlen(header);
    c->kind = kind;
    c->header = header;
    c->width = width > h ? width : h;
    c->right = right;
}

static void build_section(struct section *sec, int which, uint32_t flags)
{
    memset(sec, 0, sizeof *sec);
    sec->which = which;
    if (which == PN_R_UNIX) {
        sec->title = "Active UNIX domain sockets";
        add(sec, COL_PROTO, "Proto", 5, 0);
        add(sec, COL_UFLAGS, "Flags", 11, 0);
        add(sec, COL_UTYPE, "Type", 10, 0);
        add(sec, COL_USTATE, "State", 13, 0);
        add(sec, COL_INODE, "I-Node", 8, 0);
        if (flags & PN_R_NETNS)
            add(sec, COL_NETNS, "Net namespace", 13, 0);
        if (flags & PN_R_PROGRAM)
            add(sec, COL_PROGRAM, "PID/Program name", 20, 0);
        add(sec, COL_PATH, "Path", 0, 0);
        return;
    }
    sec->title = which == PN_R_INET ? "Active Internet connections" :
                 which == PN_R_VSOCK ? "Active VSOCK sockets" : "Active XDP sockets";
    add(sec, COL_PROTO, "Proto", 5, 0);
    add(sec, COL_RECVQ, "Recv-Q", 6, 1);
    add(sec, COL_SENDQ, "Send-Q", 6, 1);
    add(sec, COL_LOCAL, "Local Address", 23, 0);
    add(sec, COL_FOREIGN, "Foreign Address", 23, 0);
    add(sec, COL_STATE, "State", 11, 0);
    if (flags & PN_R_EXTEND) {
        add(sec, COL_USER, "User", 10, 0);
        add(sec, COL_INODE, "Inode", 10, 0);
    }
    if (flags & PN_R_NETNS)
        add(sec, COL_NETNS, "Net namespace", 13, 0);
    if (flags & PN_R_PROGRAM)
        add(sec, COL_PROGRAM, "PID/Program name", 0, 0);
}

static int section_of(const struct pn_sock *k)
{
    if (k->table == PN_UNIX)
        return PN_R_UNIX;
    if (k->table == PN_VSOCK)
        return PN_R_VSOCK;
    if (k->table == PN_XDP)
        return PN_R_XDP;
    return PN_R_INET;
}

static int shown(const struct pn_render *w, const struct pn_sock *k, int which)
{
    if (section_of(k) != which)
        return 0;
    if (w->mode == PN_R_LISTENING)
        return pn_is_listening(k);
    if (w->mode == PN_R_CONNECTED)
        return !pn_is_listening(k);
    return 1;
}

/* Pass 1: grow the widths of every column but the last to the widest value. */
static int measure_section(struct pn_out *s, struct section *sec)
{
    const struct pn_result *r = s->r;
    for (size_t i = 0; i < r->nsocks; i++) {
        const struct pn_sock *k = &r->socks[i];
        if (!shown(s->w, k, sec->which))
            continue;
        for (size_t c = 0; c + 1 < sec->ncols; c++) {
            size_t n;
            if (measure(s, sec->cols[c].kind, k, &n) < 0)
                return -1;
            if (n > sec->cols[c].width)
                sec->cols[c].width = n;
        }
        if (s->need_unicode)
            return 0;
        /* the last column is never padded, but its text must be measurable too */
        size_t n;
        if (measure(s, sec->cols[sec->ncols - 1].kind, k, &n) < 0)
            return -1;
        if (s->need_unicode)
            return 0;
    }
    return 0;
}

/* A header, padded to its column's width. */
static int put_padded(struct pn_out *s, const struct column *c, const char *text, size_t n)
{
    size_t pad = c->width > n ? c->width - n : 0;
    if (c->right && spaces(s, pad) < 0)
        return -1;
    if (pn_put(s, text, n, n) < 0)
        return -1;
    return c->right ? 0 : spaces(s, pad);
}

static const char *mode_title(int32_t mode)
{
    return mode == PN_R_LISTENING ? " (only servers)\n" :
           mode == PN_R_ALL ? " (servers and established)\n" : " (w/o servers)\n";
}

/* Pass 2: the title, the header and the rows. */
static int write_section(struct pn_out *s, const struct section *sec)
{
    const struct pn_result *r = s->r;
    size_t last = sec->ncols - 1;
    if (pn_puts(s, sec->title) < 0 || pn_puts(s, mode_title(s->w->mode)) < 0)
        return -1;
    for (size_t c = 0; c < sec->ncols; c++) {
        const struct column *col = &sec->cols[c];
        size_t n = strlen(col->header);
        if (c && pn_put(s, " ", 1, 1) < 0)
            return -1;
        if ((c == last ? pn_put(s, col->header, n, n) : put_padded(s, col, col->header, n)) < 0)
            return -1;
    }
    if (pn_put(s, "\n", 1, 1) < 0)
        return -1;
    for (size_t i = 0; i < r->nsocks; i++) {
        const struct pn_sock *k = &r->socks[i];
        if (!shown(s->w, k, sec->which))
            continue;
        size_t n_last;
        if (measure(s, sec->cols[last].kind, k, &n_last) < 0)
            return -1;
        /* an empty last value: the row ends after the previous value, unpadded */
        size_t end = n_last ? last : last - 1;
        for (size_t c = 0; c <= end; c++) {
            const struct column *col = &sec->cols[c];
            size_t cps, pad;
            int over;
            if (c && pn_put(s, " ", 1, 1) < 0)
                return -1;
            if (format_cell(s, col->kind, k, &cps, &over) < 0)
                return -1;
            pad = c == end || col->width <= cps ? 0 : col->width - cps;
            if ((col->right && spaces(s, pad) < 0) || put_formatted(s, col->kind, k, cps, over) < 0 ||
                (!col->right && spaces(s, pad) < 0))
                return -1;
        }
        if (pn_put(s, "\n", 1, 1) < 0)
            return -1;
        s->w->rows++;
    }
    return 0;
}

int pn_render_table(const struct pn_result *r, struct pn_render *w)
{
    static const int order[] = { PN_R_INET, PN_R_UNIX, PN_R_VSOCK, PN_R_XDP };
    struct section secs[4];
    size_t nsec = 0;
    struct pn_out s;
    memset(&s, 0, sizeof s);
    s.w = w;
    s.r = r;
    w->written = 0;
    w->rows = 0;
    w->need_unicode = 0;
    if (w->mode != PN_R_ALL && w->mode != PN_R_LISTENING && w->mode != PN_R_CONNECTED) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < NELEM(order); i++)
        if (w->flags & (uint32_t)order[i])
            build_section(&secs[nsec++], order[i], w->flags);
    for (size_t i = 0; i < nsec; i++) {
        if (measure_section(&s, &secs[i]) < 0) {
            errno = s.err ? s.err : EINVAL;
            return -1;
        }
        if (s.need_unicode) {      /* nothing written yet: the caller supplies the table */
            w->need_unicode = 1;
            errno = EDOM;
            return -1;
        }
    }
    if (pn_out_open(&s, w, r) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < nsec && rc == 0; i++)
        rc = write_section(&s, &secs[i]);
    return pn_out_close(&s, rc);
}
