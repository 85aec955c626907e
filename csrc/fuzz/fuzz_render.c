/* libFuzzer harness: the command line's renderers (netstat_render.c,
 * json_render.c) over a hostile pn_result. The records reach them from the
 * core, but every offset in them (unix path ext/ext_len, owner_first/count,
 * owner name_off/name_len) must be bounds-checked, and every byte of a
 * record (table, state, stype, flags) may be anything a decoder let through.
 * Input: byte 0 = sockets, byte 1 = owners, byte 2 = mode and sections,
 * byte 3 = optional columns and where to resume; then the raw
 * pn_sock records (88 bytes each), the raw pn_owner records (24 bytes each),
 * and the rest is the strings blob. Counts are cut to what the input holds.
 * Checks beyond the sanitizers: every call succeeds (0; EDOM only without a
 * nonprint table, having written nothing); the rows of the listening and the
 * connected modes add up to all sockets; the table's text is UTF-8 without
 * control bytes or a raw non-printable code point; the JSON is ASCII whose
 * strings, braces and brackets close, one object per row; an interrupted call
 * resumed with skip writes exactly the rest (at any point, and through a
 * pipe that takes a page at a time); a failed write is the call's error. */
#define _GNU_SOURCE
#include "procnet.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_SOCKS 32
#define MAX_OWNERS 16
/* Text in bounds that one render escapes, at most: sockets may all name the
 * whole blob, and every render regenerates its output from the start (the
 * pipe's resume loop once per page), so an unbounded input times out. */
#define MAX_TEXT (4 * 1024)
#define MAX_PIPED (16 * 1024)

/* A UTF-8 sequence at p as Python's strict decoder takes it: its length and
 * code point, or 0 for a byte that starts none. Independent of render_out.c. */
static size_t utf8_next(const uint8_t *p, size_t n, uint32_t *cp)
{
    unsigned c = p[0], need, lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        need = 1, *cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 2, *cp = c & 0x0F, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 3, *cp = c & 0x07, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n <= need || p[1] < lo || p[1] > hi)
        return 0;
    for (unsigned i = 1; i <= need; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (p[i] & 0x3Fu);
    }
    return need + 1;
}

/* Roughly what str.isprintable() refuses above 0x7f (C1 controls, spaces
 * other than ' ', format characters, private use, the last planes): enough
 * to escape as \x, \u and \U. U+00E9 (in a namespace's text) stays printable. */
static int python_nonprintable(uint32_t cp)
{
    return cp <= 0xA0 || cp == 0xAD || (cp >= 0x2000 && cp <= 0x200F) ||
           (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF ||
           (cp >= 0xE000 && cp <= 0xF8FF) || (cp >= 0xE0000 && cp <= 0xE007F) || cp >= 0xF0000;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The nonprint table _native._render gives: the non-printable code points
 * above 0x7f the strings hold, sorted, distinct; { 0 } if none. */
static uint32_t *nonprint_table(const uint8_t *s, size_t n, size_t *count)
{
    uint32_t *t = malloc((n + 1) * sizeof *t);
    size_t k = 0;
    if (!t)
        abort();
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_next(s + i, n - i, &cp);
        if (len > 1 && python_nonprintable(cp))
            t[k++] = cp;
        i += len ? len : 1;
    }
    qsort(t, k, sizeof *t, cmp_u32);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || t[u - 1] != t[i])
            t[u++] = t[i];
    if (!u)
        t[u++] = 0;
    *count = u;
    return t;
}

static int in_table(const uint32_t *t, size_t n, uint32_t cp)
{
    return bsearch(&cp, t, n, sizeof *t, cmp_u32) != NULL;
}

/* The bytes of the strings blob a render of r escapes (in bounds only). */
static uint64_t text_cost(const struct pn_result *r)
{
    uint64_t cost = 0;
    for (size_t i = 0; i < r->nsocks; i++) {
        const struct pn_sock *k = &r->socks[i];
        if ((uint64_t)k->ext + k->ext_len <= r->strings_len)
            cost += k->ext_len;
        if ((uint64_t)k->owner_first + k->owner_count > r->nowners)
            continue;
        for (uint32_t j = 0; j < k->owner_count; j++) {
            const struct pn_owner *o = &r->owners[k->owner_first + j];
            if ((uint64_t)o->name_off + o->name_len <= r->strings_len)
                cost += o->name_len;
        }
    }
    return cost;
}

/* -- an in-memory output file ------------------------------------------------ */

static void reset_fd(int fd)
{
    if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
        abort();
}

/* What fd holds (malloc'd, *n bytes). */
static uint8_t *contents(int fd, size_t *n)
{
    off_t end = lseek(fd, 0, SEEK_CUR);
    if (end < 0)
        abort();
    uint8_t *b = malloc((size_t)end + 1);
    if (!b || pread(fd, b, (size_t)end, 0) != end)
        abort();
    *n = (size_t)end;
    return b;
}

/* -- renders and their checks ------------------------------------------------ */

/* One render: the table with the nonprint table on EDOM, as the CLI does. */
static int render(int is_json, const struct pn_result *r, struct pn_render *w, const uint32_t *np, size_t nnp)
{
    if (is_json)
        return pn_render_json(r, w);
    w->nonprint = NULL;
    w->nnonprint = 0;
    int rc = pn_render_table(r, w);
    if (rc < 0 && errno == EDOM) {
        if (!w->need_unicode || w->written != 0)
            abort();                  /* EDOM writes nothing and says why */
        w->nonprint = np;
        w->nnonprint = nnp;
        rc = pn_render_table(r, w);
    }
    return rc;
}

/* A render that must succeed (no write fails on /dev/null or a memfd): its rows. */
static uint64_t table(const struct pn_result *r, struct pn_render *w, const uint32_t *np, size_t nnp)
{
    if (render(0, r, w, np, nnp) != 0)
        abort();
    return w->rows;
}

static uint64_t json(const struct pn_result *r, struct pn_render *w)
{
    if (render(1, r, w, NULL, 0) != 0)
        abort();
    return w->rows;
}

/* The table's text: UTF-8, no control byte but '\n', no code point the
 * nonprint table names left raw, one line per title, header and row. */
static void check_table(const uint8_t *b, size_t n, const uint32_t *np, size_t nnp, uint64_t lines)
{
    uint64_t nl = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_next(b + i, n - i, &cp);
        if (!len || (cp < 0x20 && cp != '\n') || cp == 0x7F || (cp > 0x7F && in_table(np, nnp, cp)))
            abort();
        nl += cp == '\n';
        i += len;
    }
    if (nl != lines || (n && b[n - 1] != '\n'))
        abort();
}

/* The JSON document head + rows + tail: ASCII; strings close and escape only
 * as JSON allows; braces and brackets outside strings balance, the document
 * is one value; the array holds one object per row. */
static void check_json(const uint8_t *b, size_t n, uint64_t rows)
{
    size_t depth = 0, values = 0;
    uint64_t objects = 0;
    char stack[16];
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i];
        if (c >= 0x80)
            abort();
        if (in_str) {
            if (c < 0x20)
                abort();
            if (c == '"')
                in_str = 0;
            else if (c == '\\') {
                if (++i >= n || !b[i] || !strchr("\"\\/bfnrtu", b[i]))
                    abort();
                if (b[i] == 'u')
                    for (int k = 0; k < 4; k++)
                        if (++i >= n || !b[i] || !strchr("0123456789abcdef", b[i]))
                            abort();
            }
            continue;
        }
        if (c == '"')
            in_str = 1;
        else if (c == '{' || c == '[') {
            if (depth == 0)
                values++;
            if (depth == 2 && c == '{' && stack[0] == '{' && stack[1] == '[')
                objects++;            /* a row: an object in the "connections" array */
            if (depth == sizeof stack)
                abort();              /* deeper than a row ever nests */
            stack[depth++] = (char)c;
        } else if (c == '}' || c == ']') {
            if (!depth || stack[--depth] != (c == '}' ? '{' : '['))
                abort();
        }
    }
    if (in_str || depth || values != 1 || objects != rows)
        abort();
}

/* Render once whole and once as resumed after k bytes went out: the second
 * writes exactly the rest, and both report the whole length as written. */
static void check_resume(int mfd, const struct pn_result *r, struct pn_render *w, int is_json,
                         const uint32_t *np, size_t nnp, const uint8_t *full, size_t n, uint8_t frac)
{
    uint64_t k = (uint64_t)n * frac / 255;
    reset_fd(mfd);
    w->fd = mfd;
    w->skip = k;
    if (render(is_json, r, w, np, nnp) != 0)
        abort();
    size_t m;
    uint8_t *rest = contents(mfd, &m);
    if (w->written != n || m != n - k || memcmp(rest, full + k, m) != 0)
        abort();
    free(rest);
    w->skip = 0;
}

/* Empty the pipe into out[*got..n): what came out may not exceed the whole. */
static void drain(int fd, uint8_t *out, size_t n, size_t *got)
{
    for (;;) {
        uint8_t b[4096];
        ssize_t k = read(fd, b, sizeof b);
        if (k < 0 && errno == EAGAIN)
            return;
        if (k <= 0 || (size_t)k > n - *got)
            abort();
        memcpy(out + *got, b, (size_t)k);
        *got += (size_t)k;
    }
}

/* The caller's loop of _native._render through a one-page non-blocking pipe:
 * a write cut short (EINTR) or refused (EAGAIN) is resumed with skip =
 * written once the pipe is drained; the bytes that come out are the whole. */
static void check_pipe(const struct pn_result *r, struct pn_render *w, int is_json,
                       const uint32_t *np, size_t nnp, const uint8_t *full, size_t n)
{
    if (n > MAX_PIPED)
        return;                       /* a render per page: quadratic */
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
        abort();
    fcntl(p[1], F_SETPIPE_SZ, 4096);  /* the smallest; a failure leaves a larger one */
    uint8_t *out = malloc(n + 1);
    size_t got = 0;
    if (!out)
        abort();
    w->fd = p[1];
    w->skip = 0;
    while (render(is_json, r, w, np, nnp) != 0) {
        if ((errno != EINTR && errno != EAGAIN) || w->written < w->skip)
            abort();
        drain(p[0], out, n, &got);
        if (got != w->written)
            abort();
        w->skip = w->written;
    }
    drain(p[0], out, n, &got);
    if (got != n || w->written != n || memcmp(out, full, n) != 0)
        abort();
    free(out);
    close(p[0]);
    close(p[1]);
    w->skip = 0;
}

/* A write that fails (a descriptor not open for writing) is the call's
 * error, EBADF, whatever was rendered before it. */
static void check_write_error(const struct pn_result *r, struct pn_render *w, int is_json, int ro_fd,
                              const uint32_t *np, size_t nnp)
{
    w->fd = ro_fd;
    if (render(is_json, r, w, np, nnp) != -1 || errno != EBADF || w->written != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t nsocks = data[0] % (MAX_SOCKS + 1), nowners = data[1] % (MAX_OWNERS + 1);
    uint8_t knobs = data[2], cols = data[3];
    const uint8_t *p = data + 4;
    size_t left = size - 4;
    if (nsocks > left / sizeof(struct pn_sock))
        nsocks = left / sizeof(struct pn_sock);
    left -= nsocks * sizeof(struct pn_sock);
    if (nowners > left / sizeof(struct pn_owner))
        nowners = left / sizeof(struct pn_owner);
    left -= nowners * sizeof(struct pn_owner);

    /* exact-size copies (NULL when empty, as pn_snapshot leaves them), so ASan
     * sees a read one past any of them */
    struct pn_result r;
    memset(&r, 0, sizeof r);
    r.nsocks = nsocks;
    r.nowners = nowners;
    r.strings_len = left;
    if (nsocks && !(r.socks = malloc(nsocks * sizeof *r.socks)))
        abort();
    if (nowners && !(r.owners = malloc(nowners * sizeof *r.owners)))
        abort();
    if (left && !(r.strings = malloc(left)))
        abort();
    if (nsocks)
        memcpy(r.socks, p, nsocks * sizeof *r.socks);
    p += nsocks * sizeof *r.socks;
    if (nowners)
        memcpy(r.owners, p, nowners * sizeof *r.owners);
    p += nowners * sizeof *r.owners;
    if (left)
        memcpy(r.strings, p, left);
    if (text_cost(&r) > MAX_TEXT) {
        free(r.socks);
        free(r.owners);
        free(r.strings);
        return -1;                    /* too slow to render ~40 times: not kept */
    }

    /* the Type column as _native._render_type_names gives it */
    static const char *const known[] = {
        [1] = "STREAM", [2] = "DGRAM", [3] = "RAW", [4] = "RDM", [5] = "SEQPACKET",
        [6] = "DCCP", [10] = "PACKET",
    };
    char *types = calloc(256, 16);
    if (!types)
        abort();
    for (size_t i = 0; i < 256; i++)
        strcpy(types + 16 * i, i < sizeof known / sizeof known[0] && known[i] ? known[i] : "-");

    /* Net namespace texts: the first sockets' namespaces (so some match), one
     * with no text (shown as the number), one UTF-8 */
    char texts[3][32];
    struct pn_render_netns ns[3];
    for (size_t i = 0; i < 3; i++) {
        ns[i].inode = i < nsocks ? r.socks[i].netns : 4026531840u + (uint32_t)i;
        ns[i].len = (uint32_t)strlen(strcpy(texts[i], i == 2 ? "net:[caf\xc3\xa9]" : "net:[ns]"));
        ns[i].text = texts[i];
    }
    ns[1].len = 0;

    size_t nnp;
    uint32_t *np = nonprint_table((const uint8_t *)r.strings, r.strings_len, &nnp);
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int ro_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int mfd = memfd_create("fuzz_render", MFD_CLOEXEC);
    if (null_fd < 0 || ro_fd < 0 || mfd < 0)
        abort();

    static const char head[] = "{\"connections\":[", tail[] = "]}";
    const uint32_t sections = PN_R_INET | PN_R_UNIX | PN_R_VSOCK | PN_R_XDP;
    struct pn_render w;

    /* the table: every mode, without and with every optional column (byte 3
     * picks the columns of the one captured below); the sections together
     * hold every record, so the modes' rows add up */
    for (uint32_t extra = 0; extra < 8; extra += 7) {
        uint64_t rows[3];
        for (int mode = PN_R_ALL; mode <= PN_R_CONNECTED; mode++) {
            memset(&w, 0, sizeof w);
            w.fd = null_fd;
            w.mode = mode;
            w.flags = sections | (extra & 1 ? PN_R_EXTEND : 0) | (extra & 2 ? PN_R_PROGRAM : 0) |
                      (extra & 4 ? PN_R_NETNS : 0);
            w.netns = ns;
            w.nnetns = 3;
            w.type_names = types;
            rows[mode] = table(&r, &w, np, nnp);
        }
        if (rows[PN_R_ALL] != nsocks || rows[PN_R_LISTENING] + rows[PN_R_CONNECTED] != nsocks)
            abort();
    }

    /* one table captured (bytes 2 and 3 pick mode, sections, columns): its
     * text, resumed, through a pipe, to a bad descriptor */
    memset(&w, 0, sizeof w);
    w.fd = mfd;
    w.mode = knobs % 3;
    w.flags = ((knobs >> 2) & 0xF ? (uint32_t)((knobs >> 2) & 0xF) << 2 : sections) |
              (cols & 1 ? PN_R_EXTEND : 0) | (cols & 2 ? PN_R_PROGRAM : 0) | (cols & 4 ? PN_R_NETNS : 0);
    w.netns = ns;
    w.nnetns = 3;
    w.type_names = types;
    uint64_t rows = table(&r, &w, np, nnp);
    uint64_t nsec = (uint64_t)__builtin_popcount(w.flags & sections);
    size_t n;
    uint8_t *out = contents(mfd, &n);
    if (w.written != n)
        abort();
    check_table(out, n, np, nnp, 2 * nsec + rows);
    check_resume(mfd, &r, &w, 0, np, nnp, out, n, (uint8_t)(cols * 37));
    check_pipe(&r, &w, 0, np, nnp, out, n);
    check_write_error(&r, &w, 0, ro_fd, np, nnp);
    free(out);

    /* no sections: nothing; a bad mode: EINVAL */
    memset(&w, 0, sizeof w);
    w.fd = null_fd;
    if (pn_render_table(&r, &w) != 0 || w.written || w.rows)
        abort();
    w.mode = 3;
    if (pn_render_table(&r, &w) != -1 || errno != EINVAL || pn_render_json(&r, &w) != -1 || errno != EINVAL)
        abort();

    /* JSON: every mode, bare rows to /dev/null, then the document captured */
    uint64_t jrows[3];
    for (int mode = PN_R_ALL; mode <= PN_R_CONNECTED; mode++) {
        memset(&w, 0, sizeof w);
        w.fd = null_fd;
        w.mode = mode;
        w.type_names = types;
        uint64_t bare = json(&r, &w);
        reset_fd(mfd);
        w.fd = mfd;
        w.head = head;
        w.head_len = sizeof head - 1;
        w.tail = tail;
        w.tail_len = sizeof tail - 1;
        jrows[mode] = json(&r, &w);
        out = contents(mfd, &n);
        if (jrows[mode] != bare || w.written != n)
            abort();
        check_json(out, n, jrows[mode]);
        if (mode == knobs % 3) {
            check_resume(mfd, &r, &w, 1, NULL, 0, out, n, (uint8_t)(cols * 101));
            check_pipe(&r, &w, 1, NULL, 0, out, n);
            check_write_error(&r, &w, 1, ro_fd, NULL, 0);
        }
        free(out);
    }
    if (jrows[PN_R_ALL] != nsocks || jrows[PN_R_LISTENING] + jrows[PN_R_CONNECTED] != nsocks)
        abort();

    close(mfd);
    close(ro_fd);
    close(null_fd);
    free(np);
    free(types);
    free(r.socks);
    free(r.owners);
    free(r.strings);
    return 0;
}
