/*
 * change_track.bpf.h -- kernel-side change tracking for the Poller (issue 18):
 * raw tracepoints (tp_btf) on what can change "which process holds which
 * socket" or a socket listing, each pushing one compact record into a ring
 * buffer that csrc/change_track.c drains. Included into task_sockets.bpf.c:
 * one object, one committed build; the loaders pick their programs by name
 * (pn_task_sockets vs pn_track_*).
 *
 * Why tracepoints only: on kernels with a BPF LSM policy (the development
 * one) every fentry/fexit program is refused, and kprobes may not be built
 * (docs/change_tracking.md). Raw tracepoints by BTF need neither nor tracefs.
 * The price: sys_enter/sys_exit send every syscall of the host through the
 * tracing slow path (~120 ns each, measured) while a tracking Poller lives.
 *
 * Records name a process or a socket's (namespace, family, type, protocol),
 * never a row: the user side decides whether its last poll still holds.
 * Syscalls are recorded at exit (after the change; close and send also look
 * at their socket on entry), by number from pn_syscalls, which user space
 * fills with its architecture's numbers; a record names the socket it is
 * about where the call has one, so the user side can tell its tables. Some changes can only be seen before they happen
 * (inet_sock_set_state fires before sk_state is stored): PN_CHG_SOCK_PRE,
 * which the user side honours in this poll and the next.
 *
 * Lost records: a full ring buffer (or in-flight table) bumps pn_lost[0];
 * the user side reads it first and lists everything again when it moved.
 */

#define PN_RINGBUF_TYPE 27              /* BPF_MAP_TYPE_RINGBUF */
#define PN_ARRAY_TYPE   2               /* BPF_MAP_TYPE_ARRAY */
#define PN_HASH_TYPE    1               /* BPF_MAP_TYPE_HASH */
#define PN_RB_NO_WAKEUP 1               /* the reader polls; it never waits */
#define PN_NSYSCALLS    1024
#define PN_COMPAT_BASE  512             /* pn_syscalls[512 + n]: 32-bit syscall n (x86_64: ia32) */

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
                                   __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, __u64 size, __u64 flags) = (void *)130;

/* Sized by the loader (bpf_map__set_max_entries); one page in the object. */
struct {
    int (*type)[PN_RINGBUF_TYPE];
    int (*max_entries)[4096];
} pn_changes SEC(".maps");

struct {
    int (*type)[PN_ARRAY_TYPE];
    int (*max_entries)[1];
    __u32 *key;
    __u64 *value;
} pn_lost SEC(".maps");

/* Per syscall number: PN_SC_* (0: not watched). Filled by user space. */
#define PN_SC_FDS      1    /* changes the caller's fd table (dup2, fcntl, close_range...) */
#define PN_SC_SOCKFD   2    /* changes the socket its first argument is (bind, listen...) */
#define PN_SC_NEW      4    /* may make sockets of any kind (io_uring_enter, socketcall) */
#define PN_SC_RETFD    8    /* returns a new socket fd (socket, accept, pidfd_getfd) */
#define PN_SC_PAIR     16   /* socketpair: two unix sockets */
#define PN_SC_UNIXRECV 32   /* recvmsg on a unix socket: may receive fds (SCM_RIGHTS) */
#define PN_SC_CLOSE    64   /* close: recorded only if its fd is a socket (read at entry) */
#define PN_SC_SEND     128  /* recorded only if it bound a datagram socket or changed a unix one */
#define PN_SC_FCNTL    256  /* recorded only for F_DUPFD, F_DUPFD_CLOEXEC */
struct {
    int (*type)[PN_ARRAY_TYPE];
    int (*max_entries)[PN_NSYSCALLS];
    __u32 *key;
    __u32 *value;
} pn_syscalls SEC(".maps");

/* The poller's own threads while the core lists (the polling thread, its
 * thread inside another namespace): their syscalls then are the listing's
 * own reading of /proc and netlink, thousands per listing. */
struct {
    int (*type)[PN_HASH_TYPE];
    int (*max_entries)[256];
    __u32 *key;
    __u32 *value;
} pn_quiet SEC(".maps");

/* Threads inside a close or send: what entry saw (the socket may be gone at
 * exit). Every other syscall is recorded from its exit alone. */
#define PN_CLOSE_INFLIGHT 1   /* pn_inflight.mark of a close: a unix socket with fds in flight */
struct pn_inflight {
    __u32 nr;
    __u32 class;
    __u64 sk;           /* PN_SC_SEND: the socket */
    __u32 netns;        /* PN_SC_CLOSE: the socket being closed */
    __u16 family, type, protocol, port;
    __u64 mark;         /* PN_SC_SEND: what a send may change (port, address, peer) */
};
struct {
    int (*type)[PN_HASH_TYPE];
    int (*max_entries)[16384];
    __u32 *key;
    struct pn_inflight *value;
} pn_inflight SEC(".maps");

/* One record; csrc/change_track.c reads the same layout (struct pn_krec). */
#define PN_CHG_NEW        1   /* tgid may now hold sockets it did not hold */
#define PN_CHG_FDS        2   /* tgid's fd table or one of its sockets changed */
#define PN_CHG_EXIT       3   /* a thread of tgid exited */
#define PN_CHG_FORK       4   /* tgid forked process other, copying its fd table */
#define PN_CHG_FORK_SHARE 5   /* ... sharing it: clone(CLONE_FILES) without CLONE_THREAD */
#define PN_CHG_COMM       6   /* tgid's name changed */
#define PN_CHG_SOCK       7   /* a socket's listing changed (after the change) */
#define PN_CHG_SOCK_PRE   8   /* ... is about to change */

struct pn_change {
    __u32 kind;
    __u32 tgid;
    __u32 tid;        /* syscall and exit records: the thread (else 0: softirq has no caller) */
    __u32 other;      /* PN_CHG_FORK*: the child; syscall records: the number */
    __u32 netns;      /* the socket's or the caller's network namespace inode */
    __u16 family;
    __u16 type;
    __u16 protocol;
    __u16 pad;
    __u32 pad2;
};

PN_INLINE void lost(void)
{
    __u32 zero = 0;
    __u64 *n = bpf_map_lookup_elem(&pn_lost, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
}

PN_INLINE void emit(struct pn_change *c)
{
    if (bpf_ringbuf_output(&pn_changes, c, sizeof *c, PN_RB_NO_WAKEUP) < 0)
        lost();
}

/* Fill the socket part of a record. */
PN_INLINE void read_sock(struct pn_change *c, const struct sock *sk, int full)
{
    struct net *net = 0;
    if (!sk)
        return;
    bpf_probe_read_kernel(&c->family, sizeof c->family, &sk->__sk_common.skc_family);
    bpf_probe_read_kernel(&net, sizeof net, &sk->__sk_common.skc_net.net);
    if (net)
        bpf_probe_read_kernel(&c->netns, sizeof c->netns, &net->ns.inum);
    if (full) {
        bpf_probe_read_kernel(&c->type, sizeof c->type, &sk->sk_type);
        bpf_probe_read_kernel(&c->protocol, sizeof c->protocol, &sk->sk_protocol);
    }
}

PN_INLINE void sock_event(__u32 kind, const struct sock *sk)
{
    struct pn_change c;
    __builtin_memset(&c, 0, sizeof c);
    c.kind = kind;
    c.tgid = (__u32)(bpf_get_current_pid_tgid() >> 32);
    read_sock(&c, sk, 1);
    emit(&c);
}

#include "change_track_read.bpf.h"

PN_INLINE __u32 watched(long nr)
{
    if (nr < 0 || nr >= PN_NSYSCALLS)
        return 0;
    __u32 key = (__u32)nr;
    __u32 *class = bpf_map_lookup_elem(&pn_syscalls, &key);
    return class ? *class : 0;
}

PN_INLINE int quiet_thread(__u32 tid)
{
    return bpf_map_lookup_elem(&pn_quiet, &tid) != 0;
}

/* ---- syscalls: recorded at exit (after the change) --------------------------- */

/* close and send need what the socket was before the call. */
SEC("tp_btf/sys_enter")
int pn_track_sys_enter(unsigned long long *ctx)
{
    long id = (long)ctx[1];
    __u32 class = watched(id);
    if (!(class & (PN_SC_CLOSE | PN_SC_SEND)))
        return 0;
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    if (quiet_thread(tid))
        return 0;
    const struct task_struct *t = current_task();
    if (compat_syscall(t))
        return 0;                        /* another table's number: sys_exit records it */
    long fd = first_arg((const void *)ctx[0]);
    const struct sock *sk = fd_sock(t, fd);
    if (!sk)
        return 0;                        /* not a socket: no socket changes */
    struct pn_inflight in;
    __builtin_memset(&in, 0, sizeof in);
    in.nr = (__u32)id;
    in.class = class;
    __u16 fam = sock_u16(sk, 0), type = sock_u16(sk, 1);
    if (class & PN_SC_SEND) {
        in.mark = send_mark(sk, fam, type);
        if (!in.mark || ((fam == 2 || fam == 10) && in.mark != 1))
            return 0;                    /* nothing a send changes (a bound inet socket) */
        in.sk = (__u64)sk;
    } else {
        struct pn_change c;
        __builtin_memset(&c, 0, sizeof c);
        read_sock(&c, sk, 1);
        in.netns = c.netns;
        in.family = c.family;
        in.type = c.type;
        in.protocol = c.protocol;
        /* sockets in flight in its queue go with it, whatever their table */
        if (fam == 1 && unix_close_frees_inflight(sk))
            in.mark = PN_CLOSE_INFLIGHT;
    }
    if (bpf_map_update_elem(&pn_inflight, &tid, &in, 0) < 0)
        lost();
    return 0;
}

SEC("tp_btf/sys_exit")
int pn_track_sys_exit(unsigned long long *ctx)
{
    long nr = syscall_nr((const void *)ctx[0]);
    __u32 class = watched(nr);
    /* a 32-bit process's syscall numbers are another table's (PN_COMPAT_BASE) */
    __u32 compat_class = nr >= 0 && nr < PN_COMPAT_BASE ? watched(PN_COMPAT_BASE + nr) : 0;
    if (!class && !compat_class)
        return 0;
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tid = (__u32)id;
    if (quiet_thread(tid))
        return 0;
    long ret = (long)ctx[1];
    const struct task_struct *t = current_task();
    struct pn_change c;
    __builtin_memset(&c, 0, sizeof c);
    c.tgid = (__u32)(id >> 32);
    c.tid = tid;
    c.other = (__u32)nr;
    if (compat_syscall(t)) {
        if (!compat_class)
            return 0;
        /* its arguments are elsewhere: a change of any socket, anywhere */
        c.kind = PN_CHG_NEW;
        c.netns = task_netns(t);
        emit(&c);
        return 0;
    }
    if (!class)
        return 0;
    if (class & (PN_SC_CLOSE | PN_SC_SEND)) {
        struct pn_inflight *in = bpf_map_lookup_elem(&pn_inflight, &tid);
        if (!in)
            return 0;                    /* not a socket, or nothing to see */
        struct pn_inflight seen = *in;
        bpf_map_delete_elem(&pn_inflight, &tid);
        if (class & PN_SC_SEND) {
            const struct sock *sk = (const struct sock *)seen.sk;
            if (send_mark(sk, sock_u16(sk, 0), sock_u16(sk, 1)) == seen.mark)
                return 0;                /* nothing listed changed */
            read_sock(&c, sk, 1);
            c.kind = PN_CHG_SOCK;
        } else if (seen.mark == PN_CLOSE_INFLIGHT) {
            c.kind = PN_CHG_NEW;         /* any socket, anywhere, may have gone */
            c.netns = seen.netns;
        } else {
            c.kind = PN_CHG_FDS;         /* the closed socket's owners changed */
            c.netns = seen.netns;
            c.family = seen.family;
            c.type = seen.type;
            c.protocol = seen.protocol;
        }
    } else if (class & PN_SC_SOCKFD) {
        const struct sock *sk = fd_sock(t, first_arg((const void *)ctx[0]));
        if (!sk)
            return 0;                    /* not a socket: the call failed */
        read_sock(&c, sk, 1);
        c.kind = PN_CHG_FDS;
    } else if (class & PN_SC_RETFD) {
        const struct sock *sk = ret >= 0 ? fd_sock(t, ret) : 0;
        if (!sk)
            return 0;                    /* it failed: nothing made */
        read_sock(&c, sk, 1);
        c.kind = PN_CHG_NEW;
    } else if (class & PN_SC_PAIR) {
        if (ret < 0)
            return 0;
        c.kind = PN_CHG_NEW;
        c.family = 1;                    /* socketpair makes unix sockets only */
        c.netns = task_netns(t);
    } else if (class & PN_SC_UNIXRECV) {
        const struct sock *sk = fd_sock(t, first_arg((const void *)ctx[0]));
        if (!sk || sock_u16(sk, 0) != 1)
            return 0;                    /* fds travel over unix sockets only */
        c.kind = PN_CHG_FDS;             /* the receiver holds that unix socket */
    } else if (class & PN_SC_NEW) {
        c.kind = PN_CHG_NEW;             /* no socket to name: counts everywhere */
    } else if (class & PN_SC_FCNTL) {
        long cmd = second_arg((const void *)ctx[0]);
        if (ret < 0 || (cmd != 0 && cmd != 1030))
            return 0;                    /* flags, locks, pipes: no new fd */
        c.kind = PN_CHG_FDS;
        c.netns = task_netns(t);
    } else {
        c.kind = PN_CHG_FDS;
        c.netns = task_netns(t);
    }
    emit(&c);
    return 0;
}

/* ---- processes ----------------------------------------------------------- */

SEC("tp_btf/sched_process_fork")
int pn_track_fork(unsigned long long *ctx)
{
    const struct task_struct *parent = (const struct task_struct *)ctx[0];
    const struct task_struct *child = (const struct task_struct *)ctx[1];
    struct files_struct *pf = 0, *cf = 0;
    int cpid = 0, ctgid = 0, ptgid = 0;
    bpf_probe_read_kernel(&cpid, sizeof cpid, &child->pid);
    bpf_probe_read_kernel(&ctgid, sizeof ctgid, &child->tgid);
    if (cpid != ctgid)                   /* a thread: same process, same table */
        return 0;
    bpf_probe_read_kernel(&ptgid, sizeof ptgid, &parent->tgid);
    pf = task_files(parent);
    cf = task_files(child);
    struct pn_change c;
    __builtin_memset(&c, 0, sizeof c);
    c.kind = pf && pf == cf ? PN_CHG_FORK_SHARE : PN_CHG_FORK;
    c.tgid = (__u32)ptgid;
    c.other = (__u32)ctgid;
    c.netns = task_netns(child);         /* a new one with clone(CLONE_NEWNET) */
    emit(&c);
    return 0;
}

PN_INLINE void task_event(__u32 kind, const struct task_struct *t)
{
    struct pn_change c;
    int tgid = 0;
    __builtin_memset(&c, 0, sizeof c);
    bpf_probe_read_kernel(&tgid, sizeof tgid, &t->tgid);
    c.kind = kind;
    c.tgid = (__u32)tgid;
    emit(&c);
}

SEC("tp_btf/sched_process_exec")         /* close-on-exec, a new name, de_thread */
int pn_track_exec(unsigned long long *ctx)
{
    task_event(PN_CHG_FDS, (const struct task_struct *)ctx[0]);
    return 0;
}

SEC("tp_btf/sched_process_exit")
int pn_track_exit(unsigned long long *ctx)
{
    const struct task_struct *t = (const struct task_struct *)ctx[0];
    struct signal_struct *sig = 0;
    int pid = 0, tgid = 0, live = 0;
    bpf_probe_read_kernel(&pid, sizeof pid, &t->pid);
    bpf_probe_read_kernel(&tgid, sizeof tgid, &t->tgid);
    __u32 tid = (__u32)pid;
    bpf_map_delete_elem(&pn_inflight, &tid);   /* a close or send that never returns */
    /* /proc/PID/fd changes when the leader exits (a zombie leader shows no
     * fds) or the last thread does (the table goes); another thread's exit
     * leaves the table it shares. do_exit() has counted this thread out of
     * `live` before the tracepoint (it passes group_dead since 6.13): the
     * last thread sees 0. An unreadable count records. A thread with a
     * table of its own (unshare(CLONE_FILES)) drops it, and sockets only it
     * held leave the listing, whoever the process is: a socket record. */
    live = -1;
    bpf_probe_read_kernel(&sig, sizeof sig, &t->signal);
    if (sig)
        bpf_probe_read_kernel(&live, sizeof live, &sig->live.counter);
    if (pid != tgid && live > 0) {
        struct task_struct *leader = 0;
        bpf_probe_read_kernel(&leader, sizeof leader, &t->group_leader);
        if (!leader || task_files(t) == task_files(leader))
            return 0;
        struct pn_change c;
        __builtin_memset(&c, 0, sizeof c);
        c.kind = PN_CHG_SOCK_PRE;        /* before exit_files(): this poll and the next */
        c.tgid = (__u32)tgid;
        c.tid = tid;
        emit(&c);
        return 0;
    }
    struct pn_change c;
    __builtin_memset(&c, 0, sizeof c);
    c.kind = PN_CHG_EXIT;
    c.tgid = (__u32)tgid;
    c.tid = tid;
    c.netns = task_netns(t);
    emit(&c);
    return 0;
}

SEC("tp_btf/task_rename")                /* PR_SET_NAME, /proc/PID/comm */
int pn_track_rename(unsigned long long *ctx)
{
    const struct task_struct *t = (const struct task_struct *)ctx[0];
    int pid = 0, tgid = 0;
    bpf_probe_read_kernel(&pid, sizeof pid, &t->pid);
    bpf_probe_read_kernel(&tgid, sizeof tgid, &t->tgid);
    if (pid == tgid)                     /* /proc/PID/comm is the leader's */
        task_event(PN_CHG_COMM, t);
    return 0;
}

/* ---- sockets changed by the network -------------------------------------- */

SEC("tp_btf/inet_sock_set_state")        /* TCP, MPTCP, SCTP: before sk_state is stored */
int pn_track_set_state(unsigned long long *ctx)
{
    sock_event(PN_CHG_SOCK_PRE, (const struct sock *)ctx[0]);
    return 0;
}

/* A SYN_RECV row (a request) appears with no record; its first SYN-ACK
 * retransmit (the initial RTO, 1 s) is the first sign of one that lingers. */
SEC("tp_btf/tcp_retransmit_synack")
int pn_track_synack(unsigned long long *ctx)
{
    sock_event(PN_CHG_SOCK, (const struct sock *)ctx[0]);
    return 0;
}
