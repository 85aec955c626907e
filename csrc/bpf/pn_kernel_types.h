/*
 * pn_kernel_types.h -- the few kernel types task_sockets.bpf.c and
 * change_track.bpf.h read.
 *
 * Not a generated vmlinux.h: only the fields the program touches, declared
 * with preserve_access_index so that clang emits CO-RE relocations and libbpf
 * fixes every offset (and load size) against the running kernel's BTF at load
 * time. Field order, sizes and the other members do not matter; only the
 * names (of structs and fields) must match the kernel's.
 */
#ifndef PN_KERNEL_TYPES_H
#define PN_KERNEL_TYPES_H

typedef unsigned char      __u8;
typedef unsigned short     __u16;
typedef unsigned int       __u32;
typedef unsigned long long __u64;

#define PN_CORE __attribute__((preserve_access_index))

struct seq_file;                         /* only passed to bpf_seq_write */

struct super_block {
    unsigned long s_magic;
} PN_CORE;

struct inode {
    unsigned short      i_mode;          /* umode_t */
    struct super_block *i_sb;
    unsigned long       i_ino;
} PN_CORE;

struct file {
    struct inode *f_inode;
    void         *private_data;          /* a sockfs file's struct socket */
} PN_CORE;

struct fdtable {
    unsigned int   max_fds;
    struct file  **fd;
    unsigned long *open_fds;             /* bitmap: a plain pointer, read by probe */
} PN_CORE;

struct files_struct {
    struct fdtable *fdt;
    unsigned int    next_fd;             /* lowest fd that may be free: moves up on allocation */
} PN_CORE;

typedef struct {
    int counter;
} atomic_t;

struct signal_struct {
    atomic_t live;                       /* threads not yet exiting */
} PN_CORE;

struct nsproxy {
    struct net *net_ns;
} PN_CORE;

struct task_struct {
    int                  pid;
    int                  tgid;
    struct task_struct  *group_leader;
    struct files_struct *files;
    struct nsproxy      *nsproxy;
    struct signal_struct *signal;
    char                 comm[16];       /* TASK_COMM_LEN */
} PN_CORE;

/* A syscall's number and first argument, as saved on entry: one flavour
 * per 64-bit architecture (libbpf ignores the ___suffix; a missing field is
 * known at load time). */
struct pt_regs___x86 {
    unsigned long r15;                   /* only to tell x86_64 from i386 */
    unsigned long di;
    unsigned long si;
    unsigned long orig_ax;
} PN_CORE;

struct pt_regs___arm64 {
    unsigned long regs[31];
    unsigned long orig_x0;
    int           syscallno;
} PN_CORE;

struct pt_regs___s390 {
    unsigned long gprs[16];
    unsigned long orig_gpr2;
    unsigned int  int_code;
} PN_CORE;

/* x86_64: a task in a 32-bit syscall (int 0x80, sysenter from a 32-bit
 * process) has TS_COMPAT in thread_info.status, its first member. */
struct thread_info___x86 {
    __u32 status;
} PN_CORE;

struct task_struct___x86 {
    struct thread_info___x86 thread_info;
} PN_CORE;

/* For change_track.bpf.h: a socket's namespace and table. */
struct ns_common {
    unsigned int inum;
} PN_CORE;

struct net {
    struct ns_common ns;
} PN_CORE;

typedef struct {
    struct net *net;
} possible_net_t;

struct sock_common {
    unsigned short skc_num;              /* the local port, 0 while unbound */
    unsigned short skc_family;
    unsigned char  skc_state;
    possible_net_t skc_net;
} PN_CORE;

struct sock {
    struct sock_common __sk_common;
    __u16              sk_type;
    __u16              sk_protocol;
} PN_CORE;

struct unix_address;

struct unix_sock {
    struct unix_address *addr;           /* NULL while unbound (autobind on send) */
    struct sock         *peer;           /* a datagram socket's, dropped when it dies */
} PN_CORE;

/* Closing a unix socket frees the fds in flight in its queue (SCM_RIGHTS),
 * and its unaccepted connections' (queued on a listener): nr_fds counts the
 * former (5.8+). Flavours: only these fields are relocated. */
struct sk_buff_head {
    __u32 qlen;
} PN_CORE;

struct sock___queue {
    struct sk_buff_head sk_receive_queue;
} PN_CORE;

struct scm_stat {
    atomic_t nr_fds;
} PN_CORE;

struct unix_sock___scm {
    struct scm_stat scm_stat;
} PN_CORE;

struct netlink_sock {
    unsigned int portid;                 /* 0 until bound (autobind on send) */
} PN_CORE;

struct socket {
    struct sock *sk;
} PN_CORE;

struct bpf_iter_meta {
    struct seq_file *seq;
    __u64 session_id;
    __u64 seq_num;
} PN_CORE;

/* The iterator's context: what the kernel passes to an iter/task_file program. */
struct bpf_iter__task_file {
    struct bpf_iter_meta *meta;
    struct task_struct   *task;
    __u32                 fd;
    struct file          *file;
} PN_CORE;

#endif /* PN_KERNEL_TYPES_H */
