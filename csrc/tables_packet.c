/*
 * tables_packet.c -- decoder for /proc/net/packet (AF_PACKET sockets).
 *
 *   "sk               RefCnt Type Proto  Iface R Rmem   User   Inode"
 *   "0000000000000000 3      3    0003   2     1 0      0      31337"
 * Proto is the ethertype in host order after ntohs (0003 = ETH_P_ALL),
 * Iface the bound ifindex (0 = all), R whether the socket is running.
 */
#include "pn_internal.h"

int pn_decode_packet(const char *line, size_t len, struct pn_sock *out)
{
    const char *p = line, *end = line + len;
    uint64_t v, type, proto, iface, running, uid, inode;

    memset(out, 0, sizeof *out);
    if (!pn_scan_hex(&p, end, 1, 16, &v) ||              /* sk */
        !pn_scan_dec(&p, end, UINT32_MAX, &v) ||         /* RefCnt */
        !pn_scan_dec(&p, end, 255, &type) ||
        !pn_scan_hex(&p, end, 1, 4, &proto) ||
        !pn_scan_dec(&p, end, UINT32_MAX, &iface) ||
        !pn_scan_dec(&p, end, 1, &running) ||
        !pn_scan_dec(&p, end, UINT32_MAX, &v) ||         /* Rmem */
        !pn_scan_dec(&p, end, UINT32_MAX, &uid) ||
        !pn_scan_dec(&p, end, UINT64_MAX, &inode) ||
        !pn_at_end(&p, end))
        return 0;
    out->table = PN_PACKET;
    out->stype = (uint8_t)type;
    out->protocol = (uint16_t)proto;
    out->ext = (uint32_t)iface;
    out->uid = (uint32_t)uid;
    out->inode = inode;
    if (running)
        out->flags |= PN_SF_PKT_RUNNING;
    return 1;
}
