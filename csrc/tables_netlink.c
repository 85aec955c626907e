/*
 * tables_netlink.c -- decoder for /proc/net/netlink (AF_NETLINK sockets).
 *
 *   "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode"
 *   "0000000000000000 0   812        00000551 0        0        0     2        0        24410"
 * Eth is the netlink family (0 = NETLINK_ROUTE), Pid the port id (not
 * necessarily a process id), Groups the first 32 multicast groups.
 * The text gives no uid and no socket type.
 */
#include "pn_internal.h"

int pn_decode_netlink(const char *line, size_t len, struct pn_sock *out)
{
    const char *p = line, *end = line + len;
    uint64_t v, family, portid, groups, inode;

    memset(out, 0, sizeof *out);
    if (!pn_scan_hex(&p, end, 1, 16, &v) ||              /* sk */
        !pn_scan_dec(&p, end, 255, &family) ||
        !pn_scan_dec(&p, end, UINT32_MAX, &portid) ||
        !pn_scan_hex(&p, end, 1, 8, &groups))
        return 0;
    for (int i = 0; i < 4; i++) {                        /* Rmem Wmem Dump Locks */
        pn_skip_blanks(&p, end);
        pn_scan_char(&p, end, '-');
        if (!pn_scan_dec(&p, end, UINT64_MAX, &v))
            return 0;
    }
    if (!pn_scan_dec(&p, end, UINT64_MAX, &v) ||         /* Drops */
        !pn_scan_dec(&p, end, UINT64_MAX, &inode) ||
        !pn_at_end(&p, end))
        return 0;
    out->table = PN_NETLINK;
    out->protocol = (uint16_t)family;
    out->ext = (uint32_t)portid;
    out->ext_len = (uint32_t)groups;
    out->inode = inode;
    out->flags = PN_SF_NO_UID;
    return 1;
}
