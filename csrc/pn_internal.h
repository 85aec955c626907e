/* pn_internal.h -- helpers shared by the C core; not part of the contract. */
#ifndef PN_INTERNAL_H
#define PN_INTERNAL_H

/* POSIX 2008 *at() calls, DT_* and syscall(): must precede every system header. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "procnet.h"

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* Lines longer than this are not anything the kernel prints: skipped, counted. */
#define PN_MAX_LINE 4096
/* Large reads: the kernel's UDP seq_file restarts its hash walk on every read(). */
#define PN_READ_CHUNK (256 * 1024)
/* No table is larger (~6 million sockets of 180-byte lines): past this a
 * file is not a table but junk (or an endless file), and reading it fails
 * with EFBIG rather than running on. */
#define PN_MAX_FILE (1024L * 1024 * 1024)

/* Files under the root (file_read.c): opened without blocking, refused
 * unless regular (EISDIR, ENXIO for a FIFO, device or socket), read with
 * EINTR retried. -1 with errno. */
int     pn_open_file(int dirfd, const char *path);
ssize_t pn_read_fd(int fd, char *buf, size_t cap);
/* One read of at most cap bytes: a small file whole (comm, stat...). */
ssize_t pn_read_small(int dirfd, const char *path, char *buf, size_t cap);

/* A growable array of fixed-size items; amortised doubling, never per line. */
struct pn_vec {
    void  *data;
    size_t len;   /* items */
    size_t cap;   /* items */
};

/* Make room for `more` items; returns a pointer to the first free one or NULL
 * (never NULL on success, even for more == 0: callers test it for ENOMEM). */
static inline void *pn_vec_reserve(struct pn_vec *v, size_t item, size_t more)
{
    if (v->cap - v->len < more || !v->data) {
        size_t cap = v->cap ? v->cap : 64;
        while (cap - v->len < more) {
            if (cap > ((size_t)-1 / 2) / item)
                return NULL;
            cap *= 2;
        }
        void *d = realloc(v->data, cap * item);
        if (!d)
            return NULL;
        v->data = d;
        v->cap = cap;
    }
    return (char *)v->data + v->len * item;
}

/* memcpy that accepts NULL when there is nothing to copy (C forbids it). */
static inline void pn_copy(void *dst, const void *src, size_t n)
{
    if (n)
        memcpy(dst, src, n);
}

static inline void pn_vec_free(struct pn_vec *v)
{
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

/* Append raw bytes to a byte vector; returns the offset or (size_t)-1. */
static inline size_t pn_vec_append_bytes(struct pn_vec *v, const char *s, size_t n)
{
    char *p = pn_vec_reserve(v, 1, n);
    if (!p)
        return (size_t)-1;
    pn_copy(p, s, n);
    size_t off = v->len;
    v->len += n;
    return off;
}

/* Is the host big-endian? Decided at run time, so cross builds need no config. */
static inline int pn_host_big_endian(void)
{
    const union { uint32_t u; uint8_t b[4]; } probe = { 0x01020304u };
    return probe.b[0] == 0x01;
}

/* dirents.c: getdents64 directly (glibc < 2.30 and some musl builds lack a wrapper). */
struct pn_dirent64 {
    uint64_t       d_ino;
    int64_t        d_off;
    unsigned short d_reclen;
    unsigned char  d_type;
    char           d_name[];
};
long pn_getdents64(int fd, char *buf, size_t len);

/* Is pid in q->pids (sorted), or is there no pid filter? */
int  pn_pid_wanted(const struct pn_query *q, int32_t pid);

/* Table line decoders (tables_*.c). Same contract as pn_decode_line. */
int pn_decode_inet(int table, const char *line, size_t len, int big_endian,
                   struct pn_sock *out);
int pn_inet_is_v6(int table);                       /* table is pn_table_is_ip() */
void pn_inet_kind(int table, struct pn_sock *s);     /* fill stype, protocol (needs lport) */
int pn_decode_unix(const char *line, size_t len, struct pn_sock *out,
                   const char **path, size_t *path_len);
int pn_decode_packet(const char *line, size_t len, struct pn_sock *out);
int pn_decode_netlink(const char *line, size_t len, struct pn_sock *out);
/* /proc/net/sctp/eps and assocs lines (tables_sctp.c): out->table says which
 * SCTP table the line belongs to (sctp6 when any address is IPv6). */
int pn_decode_sctp(const char *line, size_t len, struct pn_sock *out);
/* Tables of IP sockets (laddr/raddr are addresses): PN_TCP..PN_ICMP6, mptcp, sctp. */
int pn_table_is_ip(int table);

/* Small scanners over [*p, end): skip blanks, then read one field. Each
 * returns 1 and advances *p on success, 0 (leaving junk behind) otherwise.
 * A NUL byte is never a digit, so embedded NULs fail the field. */
int pn_scan_hex(const char **p, const char *end, unsigned min_digits,
                unsigned max_digits, uint64_t *val);
int pn_scan_dec(const char **p, const char *end, uint64_t max, uint64_t *val);
int pn_scan_char(const char **p, const char *end, char c);
void pn_skip_blanks(const char **p, const char *end);
int pn_at_end(const char **p, const char *end);  /* only blanks remain */

/* Table reading (table_reader.c): decode one /proc/net file into socks. */
struct pn_filter;
struct pn_sink {
    struct pn_vec socks;    /* struct pn_sock */
    struct pn_vec strings;  /* char */
    char *readbuf;          /* PN_READ_CHUNK + PN_MAX_LINE bytes, reused per table */
    uint64_t own_inode;     /* the snapshot's own sock_diag socket (0: none): never a
                             * socket of the listing, read from netlink or from text */
};
int pn_read_table(int netdirfd, int table, const struct pn_query *q,
                  struct pn_sink *sink, uint32_t *skipped);
/* The files of each table under net/, read in order (NULL: none; sctp has two). */
extern const char *const pn_table_files[PN_NTABLES][2];
int pn_keep_sock(const struct pn_query *q, const struct pn_sock *s);

/* The netlink source (sock_diag.c): one socket per snapshot, one dump per table. */
int pn_diag_open(uint64_t *own_inode);
/* Can one PN_DIAG_TCP46 dump serve q's tcp and tcp6 tables? */
int pn_diag_tcp46_serves(const struct pn_query *q);
int pn_diag_table(int fd, int table, const struct pn_query *q, struct pn_sink *sink,
                  uint32_t *skipped, uint64_t own_inode, uint32_t *seq);
/* Decode one received buffer of a dump: 1 = the dump is done, 0 = more to
 * read, -1 = error (errno). Separate from the socket so it can be fuzzed. */
int pn_diag_parse(const char *buf, size_t n, int table, const struct pn_query *q,
                  struct pn_sink *sink, uint32_t *skipped, uint64_t own_inode, uint32_t seq,
                  int *intr);

/* Owner index (owners_proc.c walks /proc, owners_hash.c indexes). */
struct pn_fd_entry {
    uint64_t inode;
    int32_t  pid;
    int32_t  fd;
    uint32_t proc;   /* index into pn_owners.procs */
    uint32_t next;   /* chain link within the hash; UINT32_MAX ends it */
};
struct pn_proc_info {
    int32_t  pid;
    uint32_t name_off;
    uint32_t name_len;
    uint32_t flags;  /* PN_SF_NO_NAME */
};
/* What a process's threads had run when it was last looked at (cache.c). */
struct pn_task {
    int32_t  tid;
    uint32_t reserved;
    uint64_t runtime;  /* ns on CPU (schedstat field 1) */
    uint64_t pcount;   /* times scheduled in (schedstat field 3) */
};
/* How the walk treated one process (kept for the cache's update). */
#define PN_SEEN_WALKED  0      /* fd directory read */
#define PN_SEEN_REUSED  1      /* not run since the last poll: cached fds used */
#define PN_SEEN_DROP    2      /* gone or denied: forget it */
struct pn_seen {
    int32_t  pid;
    uint32_t status;       /* PN_SEEN_* */
    uint64_t start;        /* start time (clock ticks after boot); 0 = unknown */
    uint32_t task_first;   /* into pn_owners.tasks */
    uint32_t ntasks;       /* 0 = unknown: never reused */
    uint32_t ent_first;    /* its entries in pn_owners.entries (contiguous) */
    uint32_t ent_count;
    uint32_t proc;         /* into pn_owners.procs, or UINT32_MAX (no socket) */
    uint32_t full_check;   /* 1: its whole identity was read and found unchanged */
    uint64_t dir[2];       /* its <root>/PID directory's (dev, inode); 0 = unknown */
};
struct pn_owners {
    struct pn_vec entries;  /* struct pn_fd_entry */
    struct pn_vec procs;    /* struct pn_proc_info */
    struct pn_vec strings;  /* process names */
    struct pn_vec denied;   /* int32_t pids */
    struct pn_vec seen;     /* struct pn_seen, only when walking with a cache */
    struct pn_vec tasks;    /* struct pn_task, referenced by seen */
    uint32_t nprocs;        /* fd directories walked */
    uint32_t nreused;       /* processes served from the cache */
    uint64_t nreadlink;     /* readlinkat calls */
    /* hash: inode -> first entry (owners_hash.c) */
    uint32_t *slots;
    size_t    nslots;
};
/* The walk runs on worker threads while the caller reads the socket tables:
 * start it, do other work, then finish (the caller's thread helps, then joins). */
struct pn_walk;
int  pn_walk_start(int rootfd, const struct pn_query *q, struct pn_walk **out);
int  pn_walk_finish(struct pn_walk *w, struct pn_owners *o);
/* The pids holding any socket fd, ascending, once each (pn_result.holders:
 * what change tracking watches). 0, or -1 (ENOMEM). */
int  pn_owners_holders(const struct pn_owners *own, int32_t **out, size_t *nout);
int  pn_owners_index(struct pn_owners *o);
/* Owner cache (cache.c), read by the walk's threads, updated after it. */
struct pn_cproc;
const struct pn_cproc *pn_cache_find(const struct pn_cache *c, int32_t pid);
/* Read PID's start time and its threads' run counters into o->tasks, and
 * its directory's identity (dir): 1 (*ntasks 0 when they cannot be trusted:
 * walk it), -1 ENOMEM. cp: the cache's entry for PID where the short check
 * may serve (procfs), else NULL; *short_check: 1 when it did. */
int  pn_proc_ident(int rootfd, int32_t pid, const struct pn_cproc *cp, struct pn_owners *o,
                   uint64_t *start, uint32_t *ntasks, uint64_t dir[2], int *short_check);
/* Is cp a settled single-threaded process with a known directory? Then its
 * one thread's counters, start time and directory (for proc_ident.c). */
int  pn_cache_single(const struct pn_cproc *cp, struct pn_task *leader, uint64_t *start,
                     uint64_t dir[2]);
/* Is the cache's root a procfs (the short check holds only there)? */
int  pn_cache_procfs(const struct pn_cache *c);
/* Does the cached process have exactly this identity (and did it not run)? */
int  pn_cache_same(const struct pn_cproc *cp, const struct pn_owners *o, uint64_t start,
                   const uint64_t dir[2], uint32_t task_first, uint32_t ntasks);
/* Append the cached process's socket fds (and its name) to o as if walked. */
int  pn_cache_replay(const struct pn_cproc *cp, struct pn_owners *o, uint32_t *proc_idx);
/* After a walk: remember what it saw (a pid filter keeps the others). */
int  pn_cache_update(struct pn_cache *c, const struct pn_owners *o, int filtered);
/* Is the cache about this root? Resets it when not. */
void pn_cache_bind(struct pn_cache *c, uint64_t dev, uint64_t ino, int procfs);
/* The last poll, kept whole for the next diff (poll_diff.c). */
struct pn_prev {
    struct pn_sock  *socks;
    size_t           nsocks;
    struct pn_owner *owners;
    size_t           nowners;
    char            *strings;
    size_t           strings_len;
    int              have;
    size_t           handed_since_rebase;
};
struct pn_prev *pn_cache_prev(struct pn_cache *c);
/* How one namespace's tables went (listing.c). */
struct pn_ns_tables {
    uint32_t status[PN_NTABLES];
    int32_t  err[PN_NTABLES];
    uint32_t skipped[PN_NTABLES];
    uint8_t  source[PN_NTABLES];
};
/* One namespace of the last poll (st.inode 0 for the caller's own when
 * pn_query.netns is NULL): what PN_Q_CARRY reports again for what it carries. */
struct pn_listed_ns {
    struct pn_netns_status st;
    struct pn_ns_tables    t;
};
/* The last poll's namespaces (struct pn_listed_ns), replaced by each pn_poll. */
struct pn_vec *pn_cache_listing(struct pn_cache *c);
/* PN_Q_CARRY (listing.c, poll_carry.c): what a poll's listing carries from
 * the last poll, and where it notes the namespaces it listed. */
struct pn_carry {
    const struct pn_query *q;
    const struct pn_vec *prev_listing;  /* struct pn_listed_ns, or NULL: carry nothing */
    struct pn_vec *listing;             /* this poll's, or NULL (a one-shot snapshot) */
};
const struct pn_listed_ns *pn_carried_from(const struct pn_carry *c, uint32_t inode);
/* Every namespace asked for (or the caller's: netfd is <root>/net) into sink
 * and out's statuses. -1 on ENOMEM. */
int  pn_list_all(const struct pn_carry *c, int rootfd, int netfd, struct pn_sink *sink,
                 struct pn_result *out);
/* Append the last poll's rows of every (namespace, table) not listed afresh;
 * then order every row as a whole listing does. -1 on ENOMEM. */
int  pn_carry_rows(const struct pn_carry *c, const struct pn_prev *pv, const struct pn_result *out,
                   struct pn_sink *sink);
int  pn_order_rows(const struct pn_query *q, struct pn_sink *sink);
/* Is pid in the sorted pn_query.recheck? */
int  pn_recheck_has(const struct pn_query *q, int32_t pid);
void pn_prev_free(struct pn_prev *p);
/* The poll's diff: replace out's records by the new/changed ones, fill d,
 * keep the full result as the next poll's previous one. -1 on ENOMEM. */
int  pn_cache_diff(struct pn_cache *c, struct pn_result *out, struct pn_delta *d);
uint32_t pn_owners_first(const struct pn_owners *o, uint64_t inode);
void pn_owners_free(struct pn_owners *o);

/* Other network namespaces (netns.c). A sock_diag socket made inside the
 * namespace `enter` names (a short-lived thread setns()es in: the socket stays
 * bound to it): the fd, or -1 with errno (EPERM without CAP_SYS_ADMIN). */
int  pn_netns_diag_open(const char *enter, uint32_t inode, uint64_t *own_inode,
                        struct pn_track *track);
/* After the join: name the socket fds no listed table holds, as q->classify
 * asks, appending struct pn_unlisted to out (one per inode). -1 on ENOMEM. */
int  pn_classify_unlisted(const struct pn_query *q, const struct pn_netns_status *st, int rootfd,
                          const struct pn_owners *own, const uint8_t *matched, struct pn_vec *out);
/* "net:[4026531840]" -> 4026531840; 0 when it is not such a link. */
uint32_t pn_parse_netns_link(const char *s, size_t len);

/* The BPF owner source (owners_bpf.c): one kernel-side scan into o (entries,
 * procs with names, nprocs; q->pids respected). -1 with errno on failure,
 * and the caller falls back to the /proc walk unless BPF was insisted on. */
int  pn_bpf_scan(struct pn_bpf *b, const struct pn_query *q, struct pn_owners *o);

#endif /* PN_INTERNAL_H */
