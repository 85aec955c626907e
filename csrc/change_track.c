/*
 * change_track.c -- a Poller's kernel-side change tracking: load and attach
 * the pn_track_* programs of the BPF object (bpf/change_track.bpf.h), and
 * hand over what they recorded. All or nothing: a tracker with one hook
 * missing would answer stale, so any refused attach fails the open.
 *
 * State lives in the struct (one per Poller, one call at a time); records
 * are copied out of the ring buffer into a buffer of the tracker's, bounded:
 * past PN_TRACK_MAX records in one read the rest count as lost, and the
 * Poller lists everything again, which is cheaper than reading a storm.
 */
#include "bpf_load.h"

#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PN_TRACK_MAX  (1u << 16)
#define PN_TRACK_LINKS 64

#ifndef PN_HAVE_BPF_OBJ

int pn_track_open(struct pn_track **out, uint32_t ringbuf_bytes, const char *skip,
                  char *why, size_t whylen)
{
    (void)ringbuf_bytes;
    (void)skip;
    if (out)
        *out = NULL;
    if (why && whylen)
        snprintf(why, whylen, "procnet was built without its BPF programs");
    errno = ENOSYS;
    return -1;
}

long pn_track_read(struct pn_track *t, const struct pn_change **recs, uint64_t *lost)
{
    (void)t;
    (void)recs;
    (void)lost;
    errno = ENOSYS;
    return -1;
}

void pn_track_close(struct pn_track *t)
{
    (void)t;
}

int pn_track_quiet(struct pn_track *t, uint32_t tid, int on)
{
    (void)t;
    (void)tid;
    (void)on;
    errno = ENOSYS;
    return -1;
}

int pn_track_poll(struct pn_track *t, const struct pn_query *q, struct pn_cache *c,
                  struct pn_result *out, struct pn_delta *d)
{
    (void)t;
    return pn_poll(q, c, out, d);
}

#else /* PN_HAVE_BPF_OBJ */

/* The syscalls the programs watch (PN_SC_* in change_track.bpf.h), by this
 * build's numbers: the BPF object is the same on every architecture. The
 * programs read a syscall's number and first argument from the registers,
 * which they know for these 64-bit architectures only. */
#if defined(__x86_64__) && !defined(__ILP32__)
#define PN_TRACK_ARCH 1
#elif defined(__aarch64__) || defined(__s390x__)
#define PN_TRACK_ARCH 1
#endif
#define PN_SC_FDS      1
#define PN_SC_SOCKFD   2
#define PN_SC_NEW      4
#define PN_SC_RETFD    8
#define PN_SC_PAIR     16
#define PN_SC_UNIXRECV 32
#define PN_SC_CLOSE    64
#define PN_SC_SEND     128
#define PN_SC_FCNTL    256
#define W(name, class) { SYS_##name, class }
static const struct { long nr; uint32_t class; } watched[] = {
#ifdef PN_TRACK_ARCH
    /* each by #ifdef: an architecture may lack one (s390x has no accept) */
#ifdef SYS_close
    W(close, PN_SC_CLOSE),
#endif
#ifdef SYS_dup
    W(dup, PN_SC_FDS),
#endif
#ifdef SYS_dup3
    W(dup3, PN_SC_FDS),
#endif
#ifdef SYS_fcntl
    W(fcntl, PN_SC_FCNTL),
#endif
#ifdef SYS_unshare
    W(unshare, PN_SC_FDS),
#endif
#ifdef SYS_setns
    W(setns, PN_SC_FDS),
#endif
#ifdef SYS_bind
    W(bind, PN_SC_SOCKFD),
#endif
#ifdef SYS_listen
    W(listen, PN_SC_SOCKFD),
#endif
#ifdef SYS_connect
    W(connect, PN_SC_SOCKFD),
#endif
#ifdef SYS_shutdown
    W(shutdown, PN_SC_SOCKFD),
#endif
#ifdef SYS_setsockopt
    W(setsockopt, PN_SC_SOCKFD),  /* netlink groups, packet rings */
#endif
#ifdef SYS_socket
    W(socket, PN_SC_RETFD),
#endif
#ifdef SYS_accept
    W(accept, PN_SC_RETFD),
#endif
#ifdef SYS_accept4
    W(accept4, PN_SC_RETFD),
#endif
#ifdef SYS_socketpair
    W(socketpair, PN_SC_PAIR),
#endif
#ifdef SYS_recvmsg
    W(recvmsg, PN_SC_UNIXRECV),
#endif
#ifdef SYS_recvmmsg
    W(recvmmsg, PN_SC_UNIXRECV),
#endif
#ifdef SYS_sendto
    W(sendto, PN_SC_SEND),
#endif
#ifdef SYS_sendmsg
    W(sendmsg, PN_SC_SEND),
#endif
#ifdef SYS_sendmmsg
    W(sendmmsg, PN_SC_SEND),
#endif
#ifdef SYS_dup2
    W(dup2, PN_SC_FDS),
#endif
#ifdef SYS_close_range
    W(close_range, PN_SC_FDS),
#endif
#ifdef SYS_pidfd_getfd
    W(pidfd_getfd, PN_SC_RETFD),
#endif
#ifdef SYS_io_uring_enter
    W(io_uring_enter, PN_SC_NEW),        /* its ops open, accept and close */
#endif
#ifdef SYS_socketcall
    W(socketcall, PN_SC_NEW),            /* s390x's libc may still go through it */
#endif
#else
    { -1, 0 },                           /* none: pn_track_open refuses */
#endif
};
#undef W

/* A 32-bit process's syscalls (x86_64's ia32 entry: int 0x80, sysenter) go
 * by the ia32 table's numbers, with their arguments in other registers: the
 * programs record the ones that can change a socket or an fd table as "any
 * socket, anywhere" (pn_syscalls[PN_COMPAT_BASE + n]). The numbers are the
 * i386 ABI's (asm/unistd_32.h), fixed for good. */
#define PN_COMPAT_BASE 512
static const long compat_watched[] = {
#if defined(__x86_64__) && !defined(__ILP32__)
    6,      /* close */
    41,     /* dup */
    55,     /* fcntl */
    63,     /* dup2 */
    102,    /* socketcall: every socket call of an older libc */
    221,    /* fcntl64 */
    310,    /* unshare */
    330,    /* dup3 */
    337,    /* recvmmsg */
    345,    /* sendmmsg */
    346,    /* setns */
    359, 360, 361, 362, 363, 364,   /* socket socketpair bind connect listen accept4 */
    366,    /* setsockopt */
    369, 370, 372, 373,             /* sendto sendmsg recvmsg shutdown */
    417,    /* recvmmsg_time64 */
    426,    /* io_uring_enter */
    436,    /* close_range */
    438,    /* pidfd_getfd */
#endif
    -1
};

/* The kernel's record (struct pn_change in change_track.bpf.h). */
struct pn_krec {
    uint32_t kind, tgid, tid, other, netns;
    uint16_t family, type, protocol, pad;
    uint32_t pad2;
};

struct pn_track {
    struct pn_bpf b;
    struct bpf_link *links[PN_TRACK_LINKS];
    size_t nlinks;
    struct ring_buffer *rb;
    int lost_fd;
    int quiet_fd;
    uint64_t dropped;           /* records past PN_TRACK_MAX in a read */
    struct pn_change *recs;     /* PN_TRACK_MAX */
    size_t nrecs;
};

/* Which table lists a socket of (family, type, protocol); numbers from the
 * uapi headers. */
static uint8_t table_of(uint16_t family, uint16_t type, uint16_t protocol)
{
    int v6 = family == 10;
    switch (family) {
    case 1:  return PN_UNIX;
    case 16: return PN_NETLINK;
    case 17: return PN_PACKET;
    case 40: return PN_VSOCK;
    case 44: return PN_XDP;
    case 2:
    case 10:
        break;
    default:
        return PN_TABLE_NONE;
    }
    if (type == 3)                                       /* SOCK_RAW */
        return v6 ? PN_RAW6 : PN_RAW;
    switch (protocol) {
    case 6:   return v6 ? PN_TCP6 : PN_TCP;
    case 17:  return v6 ? PN_UDP6 : PN_UDP;
    case 136: return v6 ? PN_UDPLITE6 : PN_UDPLITE;
    case 1:
    case 58:  return v6 ? PN_ICMP6 : PN_ICMP;            /* ping sockets */
    case 132: return v6 ? PN_SCTP6 : PN_SCTP;
    case 262: return v6 ? PN_MPTCP6 : PN_MPTCP;
    default:  return PN_TABLE_NONE;
    }
}

static int take(void *ctx, void *data, size_t size)
{
    struct pn_track *t = ctx;
    struct pn_krec k;
    if (size < sizeof k) {
        t->dropped++;                   /* unreadable: count it lost, never ignore it */
        return 0;
    }
    if (t->nrecs >= PN_TRACK_MAX) {
        t->dropped++;
        return 0;                       /* never < 0: libbpf would drop the record anyway */
    }
    memcpy(&k, data, sizeof k);
    struct pn_change *c = &t->recs[t->nrecs++];
    c->kind = k.kind;
    c->tgid = k.tgid;
    c->tid = k.tid;
    c->other = k.other;
    c->netns = k.netns;
    c->family = k.family;
    c->type = k.type;
    c->protocol = k.protocol;
    c->table = k.family ? table_of(k.family, k.type, k.protocol) : PN_TABLE_NONE;
    c->pad = 0;
    return 0;
}

void pn_track_close(struct pn_track *t)
{
    if (!t)
        return;
    if (t->rb)
        t->b.f.rb_free(t->rb);
    for (size_t i = 0; i < t->nlinks; i++)
        t->b.f.link_destroy(t->links[i]);
    free(t->recs);
    t->b.link = NULL;
    pn_bpf_close_parts(&t->b);
    free(t);
}

int pn_track_open(struct pn_track **out, uint32_t ringbuf_bytes, const char *skip,
                  char *why, size_t whylen)
{
    struct pn_bpf_msg msg;
    char none[1];
    int err = 0;
    if (!why || !whylen) {
        why = none;                     /* every message below then goes nowhere */
        whylen = sizeof none;
    }
    why[0] = '\0';
    if (!out) {
        errno = EINVAL;
        return -1;
    }
    *out = NULL;
    struct pn_track *t = calloc(1, sizeof *t);
    if (t)
        t->recs = malloc(PN_TRACK_MAX * sizeof *t->recs);
    if (!t || !t->recs) {
        free(t);
        snprintf(why, whylen, "out of memory");
        errno = ENOMEM;
        return -1;
    }
    t->lost_fd = t->quiet_fd = -1;
    pn_bpf_msg_begin(&msg);
    if (pn_bpf_load(&t->b, 1, ringbuf_bytes, why, whylen) < 0) {
        err = errno;
        goto fail;
    }
    struct bpf_map *rbmap = t->b.f.find_map(t->b.obj, "pn_changes");
    struct bpf_map *lost = t->b.f.find_map(t->b.obj, "pn_lost");
    struct bpf_map *sc = t->b.f.find_map(t->b.obj, "pn_syscalls");
    struct bpf_map *quiet = t->b.f.find_map(t->b.obj, "pn_quiet");
    if (bad_ptr(rbmap) || bad_ptr(lost) || bad_ptr(sc) || bad_ptr(quiet)) {
        snprintf(why, whylen, "the BPF object lacks its maps");
        err = ENOENT;
        goto fail;
    }
    /* the syscall filter first: the programs may run as soon as attached,
     * and one that misses a syscall is stale; so fill it before attaching */
#ifndef PN_TRACK_ARCH
    if (1) {
        snprintf(why, whylen, "change tracking reads syscall registers of x86_64, arm64 and "
                 "s390x kernels only");
        err = EOPNOTSUPP;
        goto fail;
    }
#endif
    for (size_t i = 0; i < sizeof watched / sizeof watched[0]; i++) {
        uint32_t key = (uint32_t)watched[i].nr, class = watched[i].class;
        if (watched[i].nr < 0 || watched[i].nr >= PN_COMPAT_BASE) {
            snprintf(why, whylen, "syscall number %ld is past the filter's %d", watched[i].nr,
                     PN_COMPAT_BASE);
            err = ERANGE;
            goto fail;
        }
        if (t->b.f.map_update(t->b.f.map_fd(sc), &key, &class, 0) < 0) {
            err = errno ? errno : EINVAL;
            snprintf(why, whylen, "cannot watch syscall %ld: %s", watched[i].nr, strerror(err));
            goto fail;
        }
    }
    for (size_t i = 0; compat_watched[i] >= 0; i++) {
        uint32_t key = (uint32_t)(PN_COMPAT_BASE + compat_watched[i]), class = PN_SC_NEW;
        if (t->b.f.map_update(t->b.f.map_fd(sc), &key, &class, 0) < 0) {
            err = errno ? errno : EINVAL;
            snprintf(why, whylen, "cannot watch 32-bit syscall %ld: %s", compat_watched[i],
                     strerror(err));
            goto fail;
        }
    }
    for (struct bpf_program *p = t->b.f.next_program(t->b.obj, NULL); p;
         p = t->b.f.next_program(t->b.obj, p)) {
        const char *name = t->b.f.program_name(p);
        if (strncmp(name, PN_TRACK_PREFIX, sizeof PN_TRACK_PREFIX - 1) != 0)
            continue;
        if (t->nlinks == PN_TRACK_LINKS) {
            snprintf(why, whylen, "more tracking programs than links (%d)", PN_TRACK_LINKS);
            err = E2BIG;
            goto fail;
        }
        if (skip && strcmp(skip, name) == 0) {
            snprintf(why, whylen, "program %s was not attached (asked to skip it)", name);
            err = ECANCELED;
            goto fail;
        }
        errno = 0;
        struct bpf_link *l = t->b.f.attach(p);
        if (bad_ptr(l)) {
            char step[96];
            snprintf(step, sizeof step, "attach %s", name);
            err = pn_bpf_explain(ptr_errno(l), step, msg.text, why, whylen);
            goto fail;
        }
        t->links[t->nlinks++] = l;
    }
    t->lost_fd = t->b.f.map_fd(lost);
    t->quiet_fd = t->b.f.map_fd(quiet);
    errno = 0;
    t->rb = t->b.f.rb_new(t->b.f.map_fd(rbmap), take, t, NULL);
    if (bad_ptr(t->rb)) {
        err = pn_bpf_explain(ptr_errno(t->rb), "ring buffer", msg.text, why, whylen);
        t->rb = NULL;
        goto fail;
    }
    pn_bpf_msg_end();
    *out = t;
    return 0;
fail:
    pn_bpf_msg_end();
    pn_track_close(t);
    errno = err ? err : EINVAL;
    return -1;
}

long pn_track_read(struct pn_track *t, const struct pn_change **recs, uint64_t *lost)
{
    uint32_t zero = 0;
    uint64_t klost = 0;
    if (!t || !recs || !lost) {
        errno = EINVAL;
        return -1;
    }
    t->nrecs = 0;
    /* the lost count first: a record dropped before this read is then seen
     * now or at the next read, never after its successors were applied */
    if (t->b.f.map_lookup(t->lost_fd, &zero, &klost) < 0)
        return -1;
    int n = t->b.f.rb_consume(t->rb);
    if (n < 0) {
        errno = -n;
        return -1;
    }
    *recs = t->recs;
    *lost = klost + t->dropped;
    return (long)t->nrecs;
}

int pn_track_quiet(struct pn_track *t, uint32_t tid, int on)
{
    uint32_t one = 1;
    if (!t) {
        errno = EINVAL;
        return -1;
    }
    if (on)
        return t->b.f.map_update(t->quiet_fd, &tid, &one, 0) < 0 ? -1 : 0;
    if (t->b.f.map_delete(t->quiet_fd, &tid) < 0 && errno != ENOENT)
        return -1;
    return 0;
}

int pn_track_poll(struct pn_track *t, const struct pn_query *q, struct pn_cache *c,
                  struct pn_result *out, struct pn_delta *d)
{
    uint32_t tid = (uint32_t)syscall(SYS_gettid);
    if (pn_track_quiet(t, tid, 1) < 0) {
        memset(out, 0, sizeof *out);
        memset(d, 0, sizeof *d);
        return -1;
    }
    struct pn_query qc = *q;
    qc.track = t;                       /* its thread in another namespace quiets itself */
    int rc = pn_poll(&qc, c, out, d);
    int e = errno;
    if (pn_track_quiet(t, tid, 0) < 0) {
        /* the thread would stay unrecorded: fail the poll, the Poller stops tracking */
        e = errno;
        rc = -1;
    }
    errno = e;
    return rc;
}

#endif /* PN_HAVE_BPF_OBJ */
