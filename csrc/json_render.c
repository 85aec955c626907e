/*
 * json_render.c -- the command line's --json rows, rendered from a
 * snapshot's flat records and streamed to a file descriptor.
 *
 * Byte for byte what procnet/cli/jsonout.py writes: json.dumps of
 * Connection.as_dict() with separators (",", ":") and ensure_ascii, the
 * strings being the records' bytes decoded with surrogateescape. Python
 * writes the document around the rows (its keys before "connections" need
 * the whole snapshot's metadata, not the records): the caller's head and
 * tail go out through the same buffer, so an interrupted call resumes
 * exactly where it stopped. No state outside the caller's struct pn_render.
 */
#include "render_out.h"

#include <errno.h>

/* json.dumps(str) with ensure_ascii: ASCII out, every other code point as
 * \uXXXX (a surrogate pair past U+FFFF); a byte that is not UTF-8 is the
 * lone surrogate surrogateescape made of it, \udcXX. */
static int put_json_string(struct pn_out *s, const char *text, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    if (pn_put(s, "\"", 1, 1) < 0)
        return -1;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] >= 0x20 && p[j] < 0x7F && p[j] != '\\' && p[j] != '"')
            j++;
        if (j > i && pn_put(s, text + i, j - i, j - i) < 0)
            return -1;
        i = j;
        if (i >= n)
            break;
        unsigned c = p[i];
        const char *two = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" :
                          c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b" :
                          c == '\f' ? "\\f" : NULL;
        if (two) {
            if (pn_put(s, two, 2, 2) < 0)
                return -1;
            i++;
            continue;
        }
        uint32_t cp = c, units[2];
        size_t k = 1, nu = 1;
        if (c >= 0x80) {
            k = pn_utf8_len(p + i, n - i, &cp);
            if (k == 0) {
                k = 1;
                cp = 0xDC00 + c;
            }
        }
        units[0] = cp;
        if (cp >= 0x10000) {
            units[0] = 0xD800 + ((cp - 0x10000) >> 10);
            units[1] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
            nu = 2;
        }
        for (size_t u = 0; u < nu; u++) {
            char b[6] = { '\\', 'u', hex[(units[u] >> 12) & 0xF], hex[(units[u] >> 8) & 0xF],
                          hex[(units[u] >> 4) & 0xF], hex[units[u] & 0xF] };
            if (pn_put(s, b, 6, 6) < 0)
                return -1;
        }
        i += k;
    }
    return pn_put(s, "\"", 1, 1);
}

/* Text in the snapshot's strings, bounds-checked: a bad offset is "". */
static int put_json_text(struct pn_out *s, uint32_t off, uint32_t len)
{
    const struct pn_result *r = s->r;
    if (!len || (uint64_t)off + len > (uint64_t)r->strings_len)
        return put_json_string(s, "", 0);   /* strings may be NULL when empty: no offset from it */
    return put_json_string(s, r->strings + off, len);
}

static int key(struct pn_out *s, const char *k)
{
    return pn_puts(s, k);
}

static int pair_u64(struct pn_out *s, const char *k, uint64_t v)
{
    return key(s, k) < 0 ? -1 : pn_put_u64(s, v);
}

/* An inet endpoint: {"ip":"...","port":N}; vsock {"cid":..,"port":..}; xdp {"ifindex":..,"queue_id":..}. */
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
        if (key(s, "{\"ip\":\"") < 0 || pn_put(s, ip, n, n) < 0 ||
            pair_u64(s, "\",\"port\":", remote ? k->rport : k->lport) < 0)
            return -1;
        return pn_put(s, "}", 1, 1);
    }
    if (t == PN_VSOCK) {
        if (pair_u64(s, "{\"cid\":", pn_be32(remote ? k->raddr : k->laddr)) < 0 ||
            pair_u64(s, ",\"port\":", remote ? k->ext_len : k->ext) < 0)
            return -1;
        return pn_put(s, "}", 1, 1);
    }
    if (remote)
        return pn_puts(s, "null");
    if (t == PN_UNIX)
        return put_json_text(s, k->ext, k->ext_len);
    if (t == PN_XDP) {
        if (pair_u64(s, "{\"ifindex\":", k->ext) < 0 || pair_u64(s, ",\"queue_id\":", k->ext_len) < 0)
            return -1;
        return pn_put(s, "}", 1, 1);
    }
    return pn_put_u64(s, k->ext);      /* packet: ifindex; netlink: port id */
}

static const char *family_name(unsigned table)
{
    if (pn_table_is_ip((int)table))
        return pn_inet_is_v6((int)table) ? "AF_INET6" : "AF_INET";
    switch (table) {
    case PN_UNIX:    return "AF_UNIX";
    case PN_PACKET:  return "AF_PACKET";
    case PN_NETLINK: return "AF_NETLINK";
    case PN_VSOCK:   return "AF_VSOCK";
    case PN_XDP:     return "AF_XDP";
    }
    return "?";
}

static int put_owners(struct pn_out *s, const struct pn_sock *k)
{
    const struct pn_result *r = s->r;
    if (pn_put(s, "[", 1, 1) < 0)
        return -1;
    if ((uint64_t)k->owner_first + k->owner_count <= (uint64_t)r->nowners) {
        for (uint32_t i = 0; i < k->owner_count; i++) {
            const struct pn_owner *o = &r->owners[k->owner_first + i];
            if ((i && pn_put(s, ",", 1, 1) < 0) || key(s, "{\"pid\":") < 0 || pn_put_i64(s, o->pid) < 0 ||
                key(s, ",\"fd\":") < 0 || pn_put_i64(s, o->fd) < 0 || key(s, ",\"name\":") < 0)
                return -1;
            if (((o->flags & PN_SF_NO_NAME) ? pn_puts(s, "null") :
                 put_json_text(s, o->name_off, o->name_len)) < 0 || pn_put(s, "}", 1, 1) < 0)
                return -1;
        }
    }
    return pn_put(s, "]", 1, 1);
}

/* One row: Connection.as_dict(), its keys in Connection._FIELDS order. */
static int put_row(struct pn_out *s, const struct pn_sock *k)
{
    const char *type = s->w->type_names ? s->w->type_names + 16 * (size_t)k->stype : "-";
    const char *state = pn_state_name(k);
    if (key(s, "{\"proto\":\"") < 0 || pn_puts(s, pn_table_name(k->table)) < 0 ||
        key(s, "\",\"family\":\"") < 0 || pn_puts(s, family_name(k->table)) < 0 ||
        key(s, "\",\"type\":") < 0)
        return -1;
    if (!*type || strcmp(type, "-") == 0) {
        if (pn_puts(s, "null") < 0)
            return -1;
    } else if (key(s, "\"SOCK_") < 0 || pn_puts(s, type) < 0 || pn_put(s, "\"", 1, 1) < 0)
        return -1;
    if (key(s, ",\"laddr\":") < 0 || put_address(s, k, 0) < 0 ||
        key(s, ",\"raddr\":") < 0 || put_address(s, k, 1) < 0 || key(s, ",\"state\":\"") < 0)
        return -1;
    if ((state ? pn_puts(s, state) : (pn_puts(s, "UNKNOWN_") < 0 ? -1 : pn_put_u64(s, pn_state_code(k)))) < 0)
        return -1;
    if (pair_u64(s, "\",\"tx_queue\":", k->tx_queue) < 0 || pair_u64(s, ",\"rx_queue\":", k->rx_queue) < 0 ||
        key(s, ",\"uid\":") < 0 ||
        ((k->flags & PN_SF_NO_UID) ? pn_puts(s, "null") : pn_put_u64(s, k->uid)) < 0 ||
        pair_u64(s, ",\"inode\":", k->inode) < 0 || pair_u64(s, ",\"protocol\":", k->protocol) < 0 ||
        key(s, ",\"owners\":") < 0 || put_owners(s, k) < 0 || key(s, ",\"netns\":") < 0 ||
        (k->netns ? pn_put_u64(s, k->netns) : pn_puts(s, "null")) < 0)
        return -1;
    return pn_put(s, "}", 1, 1);
}

int pn_render_json(const struct pn_result *r, struct pn_render *w)
{
    struct pn_out s;
    memset(&s, 0, sizeof s);
    w->written = 0;
    w->rows = 0;
    w->need_unicode = 0;
    if (w->mode != PN_R_ALL && w->mode != PN_R_LISTENING && w->mode != PN_R_CONNECTED) {
        errno = EINVAL;
        return -1;
    }
    if (pn_out_open(&s, w, r) < 0)
        return -1;
    int rc = w->head_len ? pn_put(&s, w->head, w->head_len, w->head_len) : 0;
    for (size_t i = 0; i < r->nsocks && rc == 0; i++) {
        const struct pn_sock *k = &r->socks[i];
        int listening = pn_is_listening(k);
        if ((w->mode == PN_R_LISTENING && !listening) || (w->mode == PN_R_CONNECTED && listening))
            continue;
        if (w->rows && pn_put(&s, ",", 1, 1) < 0) {
            rc = -1;
            break;
        }
        rc = put_row(&s, k);
        w->rows++;
    }
    if (rc == 0 && w->tail_len)
        rc = pn_put(&s, w->tail, w->tail_len, w->tail_len);
    return pn_out_close(&s, rc);
}
