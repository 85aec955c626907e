/*
 * procnet.h -- the contract between the C core and Python.
 *
 * Everything between the PN_CDEF_BEGIN / PN_CDEF_END markers is also fed to
 * cffi's cdef() verbatim by procnet/_build_ffi.py, so it must stay within the
 * C subset cffi parses: no #include, no expressions in #define, no macros.
 *
 * Data flow of one snapshot (see snapshot.c):
 *   <root>/net/<table>  -> table reader + line decoder -> struct pn_sock[]
 *   <root>/PID/fd/N     -> owner walk (getdents64 + readlinkat) -> owner index
 *   join (same call)    -> pn_sock.owner_first/owner_count into pn_owner[]
 * The whole result is handed to Python as three flat arrays in one call.
 */
#ifndef PROCNET_H
#define PROCNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* PN_CDEF_BEGIN */

/* Bump when any struct below changes; Python refuses a core that disagrees. */
#define PN_ABI_VERSION 11

/* Socket tables, in the order /proc/net lists them to users. */
#define PN_TCP       0
#define PN_TCP6      1
#define PN_UDP       2
#define PN_UDP6      3
#define PN_UDPLITE   4
#define PN_UDPLITE6  5
#define PN_RAW       6
#define PN_RAW6      7
#define PN_ICMP      8
#define PN_ICMP6     9
#define PN_UNIX     10
#define PN_PACKET   11
#define PN_NETLINK  12
/* Families ss lists that /proc/net has no (or no line) table for: sock_diag
 * dumps only, except SCTP, whose text is /proc/net/sctp/{eps,assocs}. */
#define PN_MPTCP    13
#define PN_MPTCP6   14
#define PN_SCTP     15
#define PN_SCTP6    16
#define PN_VSOCK    17
#define PN_XDP      18
#define PN_NTABLES  19

/* pn_query.byte_order: how the kernel that printed the text orders words. */
#define PN_ORDER_HOST   0
#define PN_ORDER_LITTLE 1
#define PN_ORDER_BIG    2

/* pn_query.source / pn_result.table_source[]: where a table's sockets come from.
 * The caller decides (procnet/_plan.py: the live /proc or not, the fallbacks);
 * the core does what the query says and re-decides nothing. */
#define PN_SRC_PROCFS   1      /* <root>/net/<table> text */
#define PN_SRC_NETLINK  2      /* NETLINK_SOCK_DIAG dumps (the caller's netns); see PN_Q_TEXT_FALLBACK */

/* pn_query.owner_source / pn_result.owner_source: how owners are found */
#define PN_OWN_PROCFS   1      /* <root>/PID/fd walk (getdents64 + readlinkat) */
#define PN_OWN_BPF      2      /* the kernel's iter/task_file walk (owners_bpf.c); needs pn_query.bpf */

/* pn_delta.kind[]: what a record handed over by pn_poll is, against the last poll */
#define PN_CH_SAME      0      /* identical to the previous record prev[] (after a rebase) */
#define PN_CH_OPENED    1      /* a socket the previous poll did not have */
#define PN_CH_OWNERS    2      /* the same socket with another owner set (other fields may differ too) */
#define PN_CH_MODIFIED  3      /* the same socket and owners; state, queues or names differ */

/* pn_result.table_status[] */
#define PN_TABLE_NOT_ASKED 0
#define PN_TABLE_READ      1
#define PN_TABLE_MISSING   2   /* file absent on this kernel: not an error */
#define PN_TABLE_ERROR     3   /* open/read failed otherwise; errno in table_errno[] */

/* pn_sock.flags */
#define PN_SF_NO_UID     1     /* the source gives no uid (unix text table) */
#define PN_SF_UNIX_ACC   2     /* unix: listening (__SO_ACCEPTCON) */
#define PN_SF_NO_NAME    4     /* pn_owner: comm could not be read */
#define PN_SF_PKT_RUNNING 8    /* packet: bound and running */

/* pn_query.state_mask: the bit a listening unix socket is filtered by. The
 * kernel prints it as SS_UNCONNECTED (like an unbound one) plus a flag; its
 * own bit makes "LISTEN" and "NONE" one filter, decided once, in the core. */
#define PN_STATE_UNIX_LISTEN 30

/* pn_sock.state of an SCTP association: this plus its SCTP_STATE_* code, so
 * one table holds endpoints (sk_state, TCP codes < 16) and associations. */
#define PN_SCTP_ASSOC_STATE 16

/* pn_query.flags */
#define PN_Q_OWNERS      1     /* walk /proc/PID/fd and join owners */
#define PN_Q_OWNED_ONLY  2     /* drop sockets with no owner (set by pid filters) */
#define PN_Q_TEXT_FALLBACK 4   /* PN_SRC_NETLINK: a table whose dump fails is read from its text */
#define PN_Q_WALK_FALLBACK 8   /* PN_OWN_BPF: a scan that fails gives way to the /proc walk */
#define PN_Q_CARRY      16     /* pn_poll only: list afresh only the tables pn_netns.tables
                                * (pn_query.own_tables) name, carry the rest from the last
                                * poll; walk only `recheck` pids and processes the cache does
                                * not know (a tracking Poller: the kernel said what changed) */

/*
 * One socket. Fixed layout without implicit padding (88 bytes), so Python can
 * unpack the whole array with one struct.iter_unpack (see _native.py).
 * Addresses are in network byte order: IPv4 uses laddr[0..3]; vsock keeps
 * its CIDs there (laddr/raddr[0..3], big-endian) and its ports in ext/ext_len.
 */
struct pn_sock {
    uint64_t inode;
    uint8_t  laddr[16];
    uint8_t  raddr[16];
    uint32_t uid;
    uint32_t tx_queue;
    uint32_t rx_queue;
    uint32_t owner_first;  /* index into pn_result.owners */
    uint32_t owner_count;
    uint32_t ext;          /* unix: path offset in strings; packet: ifindex; netlink: portid;
                              vsock: local port (32-bit); xdp: ifindex */
    uint32_t ext_len;      /* unix: path length; netlink: groups bitmap; vsock: remote port;
                              xdp: queue id */
    uint16_t lport;
    uint16_t rport;
    uint16_t protocol;     /* inet, mptcp, sctp: IPPROTO_*; packet: ethertype; netlink: family */
    uint8_t  table;        /* PN_TCP ... */
    uint8_t  state;        /* kernel state code (inet: TCP_*, unix: SS_*) */
    uint8_t  stype;        /* socket type, numbered as the host's SOCK_* (0 = unknown) */
    uint8_t  reserved;
    uint16_t flags;        /* PN_SF_* */
    uint32_t netns;        /* inode of its network namespace (nsfs inodes are 32-bit); 0 unknown */
    uint32_t reserved2;
};

/* One (process, fd) holding a socket. Per socket, sorted by (pid, fd). */
struct pn_owner {
    int32_t  pid;
    int32_t  fd;
    uint32_t name_off;     /* comm in pn_result.strings */
    uint32_t name_len;
    uint32_t flags;        /* PN_SF_NO_NAME */
    uint32_t reserved;
};

struct pn_bpf;     /* below: the BPF owner source */
struct pn_cache;   /* below: a Poller's state */

/* One network namespace to list (pn_query.netns). The caller found it and
 * chose its source (procnet/_plan.py); the core only does it. */
struct pn_netns {
    uint32_t    inode;     /* stamped on its sockets (pn_sock.netns) */
    int32_t     source;    /* PN_SRC_NETLINK (a sock_diag socket made inside it) or PN_SRC_PROCFS */
    const char *enter;     /* netlink: the file setns() enters (/proc/PID/ns/net, /run/netns/NAME) */
    const char *net_dir;   /* text: its tables' directory under proc_root ("PID/net"), or NULL */
    uint32_t    tables;    /* PN_Q_CARRY: the tables listed afresh in it (bit per PN_xxx) */
    uint32_t    reserved;
};
/* How one namespace was listed (pn_result.netns_status). */
struct pn_netns_status {
    uint32_t inode;
    int32_t  source;       /* PN_SRC_* that served it; 0 = not listed */
    int32_t  error;        /* errno of the failure that left it unlisted (or fell back to text) */
    uint32_t tables_read;  /* bit (1 << PN_xxx) per table read in it */
};
/* A socket fd no listed table holds (pn_result.unlisted): what it is, by the
 * system.sockprotoname attribute of /proc/PID/fd/N, and whose namespace. */
struct pn_unlisted {
    uint64_t inode;
    uint32_t netns;        /* its namespace (asked of the socket, PN_CL_ASK_SOCKET), else its holder's; 0 unknown */
    int32_t  pid;
    char     proto[24];    /* "TCP", "UNIX-STREAM", "AF_VSOCK", ...; "" when unreadable */
};

/* pn_query.classify: which socket fds that no listed table holds are named */
#define PN_CL_OTHER_NS  1      /* those held by processes of a namespace not listed */
#define PN_CL_ALL       2      /* every one (kind "all" without filters: nothing may hide) */
#define PN_CL_ASK_SOCKET 4     /* where the holder's namespace was listed, ask the socket its
                                * own (a copy by pidfd_getfd, SIOCGSKNS): this host's /proc only */

/* What to read and what to keep. Filters run while decoding, before the join. */
struct pn_query {
    const char *proc_root;     /* "/proc", or any tree laid out like it */
    uint32_t tables;           /* bit (1 << PN_xxx) per table */
    uint32_t flags;            /* PN_Q_* */
    int32_t  byte_order;       /* PN_ORDER_* */
    int32_t  threads;          /* owner walk threads: 0 = auto, 1 = none */
    uint32_t state_mask[PN_NTABLES]; /* bit (1 << state) kept, PN_STATE_UNIX_LISTEN for a
                                  * listening unix socket; 0 = all states */
    int32_t  lport;            /* -1 = any */
    int32_t  rport;            /* -1 = any */
    int64_t  uid;              /* -1 = any */
    int32_t  laddr_family;     /* AF_INET / AF_INET6: keep inet sockets bound to laddr; 0 = any */
    uint8_t  laddr[16];        /* network order (IPv4: the first 4 bytes) */
    const int32_t *pids;       /* owner pid filter (sorted ascending), or NULL */
    size_t   npids;
    int32_t  source;           /* PN_SRC_PROCFS or PN_SRC_NETLINK (the caller's netns, not proc_root) */
    uint32_t netlink_deny;     /* tests: bit per table whose dump is refused (EPERM) */
    int32_t  owner_source;     /* PN_OWN_BPF (with bpf), else the /proc walk */
    struct pn_bpf *bpf;        /* a loaded BPF owner source (pn_bpf_open), or NULL */
    struct pn_cache *cache;    /* a Poller's owner cache (pn_cache_new), or NULL */
    const struct pn_netns *netns; /* the namespaces to list; NULL: the caller's (source, net/) */
    size_t   nnetns;
    uint32_t self_netns;       /* netns NULL: the inode stamped on the sockets (0 unknown) */
    uint32_t classify;         /* PN_CL_* */
    struct pn_track *track;    /* set by pn_track_poll: threads the core makes quiet themselves */
    uint32_t own_tables;       /* PN_Q_CARRY, netns NULL: the tables listed afresh */
    const int32_t *recheck;    /* PN_Q_CARRY: the pids whose fds may have changed (sorted) */
    size_t   nrecheck;
};

struct pn_result {
    struct pn_sock  *socks;
    size_t           nsocks;
    struct pn_owner *owners;
    size_t           nowners;
    char            *strings;     /* unix paths and process names, not NUL-separated */
    size_t           strings_len;
    int32_t         *denied_pids; /* pids whose fd directory we may not read */
    size_t           ndenied;
    uint32_t         nprocs;      /* processes whose fds were walked */
    uint32_t         table_status[PN_NTABLES];
    int32_t          table_errno[PN_NTABLES];
    uint32_t         skipped[PN_NTABLES];  /* malformed lines (or messages) per table */
    uint8_t          table_source[PN_NTABLES]; /* PN_SRC_PROCFS or PN_SRC_NETLINK */
    uint8_t          owner_source; /* PN_OWN_PROCFS or PN_OWN_BPF (0 without owners) */
    uint32_t         procs_cached; /* processes whose owners came from the cache unread */
    uint32_t         fds_read;     /* readlinkat calls made (0 with BPF) */
    struct pn_netns_status *netns_status;  /* one per pn_query.netns entry */
    size_t           nnetns_status;
    struct pn_unlisted *unlisted;  /* one per socket inode no listed table holds (PN_CL_*) */
    size_t           nunlisted;
    int32_t         *holders;     /* with a cache (polls) and the walk: the pids it found
                                     holding any socket fd, ascending (change tracking) */
    size_t           nholders;
    uint32_t         nvolatile;   /* rows that can leave unreported: TCP/MPTCP SYN_RECV, FIN_WAIT2,
                                     TIME_WAIT, NEW_SYN_RECV; any SCTP row (change tracking) */
    void            *priv;        /* allocation bookkeeping; do not touch */
};

/* Take a snapshot. 0 on success; -1 with errno set when proc_root is unusable
 * (ENOENT, ENOTDIR, ...) or memory ran out. Free with pn_result_free even on error. */
int  pn_snapshot(const struct pn_query *q, struct pn_result *out);
void pn_result_free(struct pn_result *r);

/* Decode one line of a table (no trailing newline needed). Returns 1 and fills
 * *out on success, 0 for a header or malformed line. For unix lines the path is
 * reported through *path / *path_len (pointing into line). Exposed for tests
 * and fuzzing; pn_snapshot uses the same code. */
int  pn_decode_line(int table, const char *line, size_t len, int byte_order,
                    struct pn_sock *out, const char **path, size_t *path_len);

/* pn_diag_decode's pseudo-table: one TCPDIAG_GETSOCK dump of tcp and tcp6 at
 * once (the kernel walks its TCP hashes once for both families); each record
 * goes to PN_TCP or PN_TCP6 by its message's family, skipped ones count in
 * out->skipped[PN_TCP]. */
#define PN_DIAG_TCP46 19

/* Decode one received NETLINK_SOCK_DIAG dump buffer of a table (messages of
 * sequence number seq) into out->socks/strings and out->skipped[table],
 * keeping what q's filters keep (q NULL: everything): 1 = the dump is done,
 * 0 = more would follow, -1 = an error message or ENOMEM (errno). Free with
 * pn_result_free. Exposed for tests and fuzzing; pn_snapshot decodes its
 * dumps with the same code. */
int  pn_diag_decode(int table, const char *buf, size_t n, uint32_t seq,
                    const struct pn_query *q, struct pn_result *out);

/* Parse a readlink target "socket:[12345]". 1 and *inode on success, else 0. */
int  pn_parse_socket_link(const char *s, size_t len, uint64_t *inode);

/*
 * The BPF owner source (owners_bpf.c): an iter/task_file program run by the
 * kernel instead of one readlinkat per fd. Load once per process and pass it
 * in pn_query.bpf from any number of threads; libbpf is loaded at run time.
 * pn_bpf_open returns 0, or -1 with errno and a reason in why[] (NUL-ended).
 */
struct pn_bpf;
int  pn_bpf_open(struct pn_bpf **out, char *why, size_t whylen);
void pn_bpf_close(struct pn_bpf *b);

/*
 * Kernel-side change tracking for a Poller (change_track.c; programs in
 * bpf/change_track.bpf.h): what happened since the last read, as records
 * naming processes and socket tables. Native only, like the BPF owners.
 */
#define PN_CHG_NEW        1   /* tgid may now hold sockets it did not (socket, accept, SCM_RIGHTS) */
#define PN_CHG_FDS        2   /* tgid's fd table or one of its sockets changed (close, dup2, bind, exec) */
#define PN_CHG_EXIT       3   /* a thread of tgid exited */
#define PN_CHG_FORK       4   /* tgid forked process `other`, copying its fd table */
#define PN_CHG_FORK_SHARE 5   /* ... sharing it (clone(CLONE_FILES), no CLONE_THREAD) */
#define PN_CHG_COMM       6   /* tgid's name changed */
#define PN_CHG_SOCK       7   /* a socket of (netns, table) changed */
#define PN_CHG_SOCK_PRE   8   /* ... is about to: list the table in this poll and the next */
#define PN_TABLE_NONE   255   /* a socket of a family no table lists */

struct pn_change {
    uint32_t kind;            /* PN_CHG_* */
    uint32_t tgid;
    uint32_t tid;             /* syscall and exit records: the thread, else 0 */
    uint32_t other;           /* PN_CHG_FORK*: the child; syscall records: its number */
    uint32_t netns;           /* the socket's namespace inode, else the caller's (0 unknown) */
    uint16_t family, type, protocol;
    uint8_t  table;           /* PN_CHG_SOCK*: PN_TCP ..., or PN_TABLE_NONE (unknown) */
    uint8_t  pad;
};

struct pn_track;
/* Load and attach every tracking program, with a ring buffer of at least
 * ringbuf_bytes. skip (tests): a program to leave unattached, which fails
 * the open as a refused attach would. 0, or -1 with errno and why[]. */
int  pn_track_open(struct pn_track **out, uint32_t ringbuf_bytes, const char *skip,
                   char *why, size_t whylen);
/* Everything recorded since the last read: *recs (the tracker's own buffer,
 * valid until the next call), *lost: records the kernel dropped (ring buffer
 * full) or this side could not keep, since the open. Returns the number of
 * records, or -1 with errno. */
long pn_track_read(struct pn_track *t, const struct pn_change **recs, uint64_t *lost);
void pn_track_close(struct pn_track *t);
/* Leave thread tid's syscalls unrecorded (on) or record them again: the
 * poller's own threads while the core lists. 0 or -1. */
int  pn_track_quiet(struct pn_track *t, uint32_t tid, int on);

/*
 * A Poller's state (cache.c): per process (pid + start time) the socket fds
 * the last walk found and what its threads had run, so a process that has
 * not run since is not walked again; and the last poll's records, so a poll
 * hands over only what changed. One call at a time per cache.
 */
struct pn_cache;
struct pn_cache *pn_cache_new(void);
void pn_cache_free(struct pn_cache *c);

/* What pn_poll adds to a pn_result, whose records are then only the new or
 * changed ones (all of them after a rebase). */
struct pn_delta {
    uint32_t *take;       /* per socket of the poll, in order: index into the previous
                             poll's list followed by this result's records */
    size_t    ntake;
    uint32_t *prev;       /* per record: the same socket's index in the previous list,
                             or UINT32_MAX (opened) */
    uint8_t  *kind;       /* per record: PN_CH_* */
    uint32_t *closed;     /* indices in the previous list of sockets gone */
    size_t    nclosed;
    uint32_t  rebased;    /* 1: every socket handed over afresh (take[i] >= nprev) */
    uint32_t  nprev;      /* length of the previous list take/prev refer to */
    uint32_t  unchanged;  /* 1: nothing handed over and take[i] == i: the previous list as is */
};

/* One poll: a snapshot with the owner cache, diffed against the last poll.
 * Same errors as pn_snapshot; free with pn_result_free and pn_delta_free. */
int  pn_poll(const struct pn_query *q, struct pn_cache *c, struct pn_result *out,
             struct pn_delta *d);
void pn_delta_free(struct pn_delta *d);
/* pn_poll with the calling thread quiet (pn_track_quiet) for exactly its
 * duration: nothing of the caller's (a signal handler, a finalizer) runs on
 * the thread meanwhile. */
int  pn_track_poll(struct pn_track *t, const struct pn_query *q, struct pn_cache *c,
                   struct pn_result *out, struct pn_delta *d);

/*
 * The command line's netstat table (netstat_render.c), rendered from a
 * pn_result's records and written to a file descriptor: byte for byte what
 * procnet/cli/netstat_render.py writes with numeric hosts, ports and users.
 */
/* pn_render.flags: the sections (in this order) and optional columns */
#define PN_R_EXTEND    1       /* -e: User and Inode */
#define PN_R_PROGRAM   2       /* -p: PID/Program name */
#define PN_R_INET      4
#define PN_R_UNIX      8
#define PN_R_VSOCK    16
#define PN_R_XDP      32
#define PN_R_NETNS    64       /* the Net namespace column (several namespaces shown) */
/* pn_render.mode: which sockets (Connection.listening) */
#define PN_R_ALL        0
#define PN_R_LISTENING  1
#define PN_R_CONNECTED  2

/* A namespace's text in the Net namespace column (UTF-8, already escaped). */
struct pn_render_netns {
    uint32_t    inode;
    uint32_t    len;
    const char *text;
};

struct pn_render {
    int32_t  fd;               /* written with write(2), in chunks of a fixed buffer */
    uint32_t flags;            /* PN_R_* */
    int32_t  mode;             /* PN_R_ALL, PN_R_LISTENING, PN_R_CONNECTED */
    uint32_t need_unicode;     /* out: a non-ASCII character and no nonprint table (EDOM) */
    const struct pn_render_netns *netns;
    size_t   nnetns;
    const uint32_t *nonprint;  /* sorted code points > 0x7f that are not printable
                                  (Python's str.isprintable), or NULL: none met so far */
    size_t   nnonprint;
    const char *type_names;    /* 256 x 16 bytes: the Type column per pn_sock.stype */
    uint64_t skip;             /* in: output bytes an interrupted call already wrote */
    uint64_t written;          /* out: output bytes written (skip included) */
    uint64_t rows;             /* out: rows written */
    const char *head;          /* JSON: bytes written before the rows (the document so far) */
    size_t   head_len;
    const char *tail;          /* JSON: bytes written after them */
    size_t   tail_len;
};

/* Render and write. 0, or -1 with errno: EDOM (need_unicode: nothing written;
 * call again with the nonprint table), EINTR (call again with skip = written),
 * a write's errno (EPIPE, ENOSPC...), ENOMEM, EINVAL (a bad mode). */
int  pn_render_table(const struct pn_result *r, struct pn_render *w);

/* --json's rows (json_render.c): head, then Connection.as_dict() of every
 * record the mode shows as json.dumps writes it (ensure_ascii, separators
 * "," and ":"), comma-separated, then tail. flags, netns and nonprint are
 * not used. 0, or -1 with errno as pn_render_table (never EDOM). */
int  pn_render_json(const struct pn_result *r, struct pn_render *w);

/* The version the core was built as (PN_VERSION in the build). */
const char *pn_version(void);
int  pn_abi_version(void);

/* PN_CDEF_END */

#ifdef __cplusplus
}
#endif
#endif /* PROCNET_H */
