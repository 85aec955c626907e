/*
 * tables_unix.c -- decoder for /proc/net/unix.
 *
 *   "Num       RefCount Protocol Flags    Type St Inode Path"
 *   "0000000000000000: 00000002 00000000 00010000 0001 01 20311 /run/my app.sock"
 *
 * The path is everything after the single space that follows the inode, so
 * paths with spaces survive (psutil and netstat split on blanks and lose them).
 * Abstract names are printed with a leading '@' (and '@' for embedded NULs).
 * An unnamed socket ends right after the inode.
 */
#include "pn_internal.h"

#define UNIX_ACCEPTCON 0x00010000u   /* __SO_ACCEPTCON: a listening socket */

int pn_decode_unix(const char *line, size_t len, struct pn_sock *out,
                   const char **path, size_t *path_len)
{
    const char *p = line, *end = line + len;
    uint64_t v, flags, type, state, inode;

    memset(out, 0, sizeof *out);
    *path = NULL;
    *path_len = 0;
    /* kernel pointer (hashed; 8 or 16 digits), then ':' */
    if (!pn_scan_hex(&p, end, 1, 16, &v) || !pn_scan_char(&p, end, ':'))
        return 0;
    if (!pn_scan_hex(&p, end, 1, 8, &v) ||          /* RefCount */
        !pn_scan_hex(&p, end, 1, 8, &v) ||          /* Protocol (always 0) */
        !pn_scan_hex(&p, end, 1, 8, &flags) ||
        !pn_scan_hex(&p, end, 1, 4, &type) ||
        !pn_scan_hex(&p, end, 1, 2, &state) ||
        !pn_scan_dec(&p, end, UINT64_MAX, &inode))
        return 0;
    if (p < end) {
        if (*p != ' ')
            return 0;          /* junk glued to the inode */
        p++;
        *path = p;
        *path_len = (size_t)(end - p);
    }
    out->table = PN_UNIX;
    out->inode = inode;
    out->stype = (uint8_t)type;     /* sk_type as the kernel numbers it, i.e. host SOCK_* */
    out->state = (uint8_t)state;
    out->flags = PN_SF_NO_UID;
    if (flags & UNIX_ACCEPTCON)
        out->flags |= PN_SF_UNIX_ACC;
    return 1;
}
