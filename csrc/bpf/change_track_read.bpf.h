/*
 * change_track_read.bpf.h -- what change_track.bpf.h's programs read of the
 * kernel: the current task, its namespace and fd table, the socket behind an
 * fd, a syscall's number and first argument from the saved registers, and
 * what a send may change of a socket. Reads only (probe reads of CO-RE
 * relocated fields), no maps, no records.
 */
#define PN_FIELD_EXISTS 2               /* BPF_FIELD_EXISTS */

static __u64 (*bpf_get_current_task)(void) = (void *)35;

PN_INLINE const struct task_struct *current_task(void)
{
    return (const struct task_struct *)bpf_get_current_task();
}

PN_INLINE struct files_struct *task_files(const struct task_struct *t)
{
    struct files_struct *f = 0;
    bpf_probe_read_kernel(&f, sizeof f, &t->files);
    return f;
}

PN_INLINE __u32 task_netns(const struct task_struct *t)
{
    struct nsproxy *ns = 0;
    struct net *net = 0;
    __u32 inum = 0;
    bpf_probe_read_kernel(&ns, sizeof ns, &t->nsproxy);
    if (ns)
        bpf_probe_read_kernel(&net, sizeof net, &ns->net_ns);
    if (net)
        bpf_probe_read_kernel(&inum, sizeof inum, &net->ns.inum);
    return inum;
}

/* Can closing this unix socket free sockets held only in flight: fds in its
 * queue, or a listener's unaccepted connections (with queues of their own)?
 * Unknown (a kernel without scm_stat) counts as yes. */
PN_INLINE int unix_close_frees_inflight(const struct sock *sk)
{
    unsigned char state = 0;
    __u32 qlen = 0;
    int nr = 0;
    bpf_probe_read_kernel(&state, sizeof state, &sk->__sk_common.skc_state);
    if (state == 10) {                  /* TCP_LISTEN */
        bpf_probe_read_kernel(&qlen, sizeof qlen, &((const struct sock___queue *)sk)->sk_receive_queue.qlen);
        return qlen != 0;
    }
    if (!__builtin_preserve_field_info(((struct unix_sock___scm *)0)->scm_stat, PN_FIELD_EXISTS))
        return 1;
    bpf_probe_read_kernel(&nr, sizeof nr, &((const struct unix_sock___scm *)sk)->scm_stat.nr_fds.counter);
    return nr != 0;
}

/* Is t in a 32-bit syscall on a 64-bit kernel (x86_64's TS_COMPAT)? Its
 * number is then the ia32 table's, and its arguments are not where
 * first_arg() looks. 0 where the architecture is not known to tell. */
PN_INLINE int compat_syscall(const struct task_struct *t)
{
    if (__builtin_preserve_field_info(((struct pt_regs___x86 *)0)->r15, PN_FIELD_EXISTS) &&
        __builtin_preserve_field_info(((struct thread_info___x86 *)0)->status, PN_FIELD_EXISTS)) {
        __u32 v = 0;
        bpf_probe_read_kernel(&v, sizeof v, &((const struct task_struct___x86 *)t)->thread_info.status);
        return (v & 0x0002) != 0;       /* TS_COMPAT */
    }
    return 0;
}

/* The syscall's first argument as saved on entry; -1 where the architecture
 * is not known (the caller then records without looking at the socket). */
PN_INLINE long first_arg(const void *regs)
{
    unsigned long v = 0;
    if (__builtin_preserve_field_info(((struct pt_regs___x86 *)0)->r15, PN_FIELD_EXISTS))
        bpf_probe_read_kernel(&v, sizeof v, &((const struct pt_regs___x86 *)regs)->di);
    else if (__builtin_preserve_field_info(((struct pt_regs___arm64 *)0)->orig_x0, PN_FIELD_EXISTS))
        bpf_probe_read_kernel(&v, sizeof v, &((const struct pt_regs___arm64 *)regs)->orig_x0);
    else if (__builtin_preserve_field_info(((struct pt_regs___s390 *)0)->orig_gpr2, PN_FIELD_EXISTS))
        bpf_probe_read_kernel(&v, sizeof v, &((const struct pt_regs___s390 *)regs)->orig_gpr2);
    else
        return -1;
    return (long)(int)v;                /* an fd: the low 32 bits */
}

/* The syscall's second argument (registers as saved on entry); -1 elsewhere. */
PN_INLINE long second_arg(const void *regs)
{
    unsigned long v = 0;
    if (__builtin_preserve_field_info(((struct pt_regs___x86 *)0)->r15, PN_FIELD_EXISTS))
        bpf_probe_read_kernel(&v, sizeof v, &((const struct pt_regs___x86 *)regs)->si);
    else if (__builtin_preserve_field_info(((struct pt_regs___arm64 *)0)->orig_x0, PN_FIELD_EXISTS))
        bpf_probe_read_kernel(&v, sizeof v, &((const struct pt_regs___arm64 *)regs)->regs[1]);
    else if (__builtin_preserve_field_info(((struct pt_regs___s390 *)0)->orig_gpr2, PN_FIELD_EXISTS))
        bpf_probe_read_kernel(&v, sizeof v, &((const struct pt_regs___s390 *)regs)->gprs[3]);
    else
        return -1;
    return (long)(int)v;
}

/* The syscall's number, from the registers saved on entry; -1 where the
 * architecture is not one of these (change_track.c refuses to load there). */
PN_INLINE long syscall_nr(const void *regs)
{
    if (__builtin_preserve_field_info(((struct pt_regs___x86 *)0)->r15, PN_FIELD_EXISTS)) {
        unsigned long v = 0;
        bpf_probe_read_kernel(&v, sizeof v, &((const struct pt_regs___x86 *)regs)->orig_ax);
        return (long)v;
    }
    if (__builtin_preserve_field_info(((struct pt_regs___arm64 *)0)->syscallno, PN_FIELD_EXISTS)) {
        int v = -1;
        bpf_probe_read_kernel(&v, sizeof v, &((const struct pt_regs___arm64 *)regs)->syscallno);
        return v;
    }
    if (__builtin_preserve_field_info(((struct pt_regs___s390 *)0)->int_code, PN_FIELD_EXISTS)) {
        unsigned int v = 0;
        bpf_probe_read_kernel(&v, sizeof v, &((const struct pt_regs___s390 *)regs)->int_code);
        return v & 0xffff;
    }
    return -1;
}

/* The struct sock behind fd of task t, or 0 (not a socket, no such fd). */
PN_INLINE const struct sock *fd_sock(const struct task_struct *t, long fd)
{
    struct files_struct *files = task_files(t);
    struct fdtable *fdt = 0;
    struct file **fds = 0, *f = 0;
    struct inode *inode = 0;
    struct super_block *sb = 0;
    struct socket *sock = 0;
    struct sock *sk = 0;
    unsigned int max = 0;
    unsigned long magic = 0;
    unsigned short mode = 0;
    if (!files || fd < 0)
        return 0;
    bpf_probe_read_kernel(&fdt, sizeof fdt, &files->fdt);
    if (!fdt)
        return 0;
    bpf_probe_read_kernel(&max, sizeof max, &fdt->max_fds);
    if ((unsigned long)fd >= max)
        return 0;
    bpf_probe_read_kernel(&fds, sizeof fds, &fdt->fd);
    if (!fds)
        return 0;
    bpf_probe_read_kernel(&f, sizeof f, fds + fd);
    if (!f)
        return 0;
    bpf_probe_read_kernel(&inode, sizeof inode, &f->f_inode);
    if (!inode)
        return 0;
    bpf_probe_read_kernel(&mode, sizeof mode, &inode->i_mode);
    bpf_probe_read_kernel(&sb, sizeof sb, &inode->i_sb);
    if ((mode & PN_S_IFMT) != PN_S_IFSOCK || !sb)
        return 0;
    bpf_probe_read_kernel(&magic, sizeof magic, &sb->s_magic);
    if (magic != PN_SOCKFS_MAGIC)
        return 0;
    bpf_probe_read_kernel(&sock, sizeof sock, &f->private_data);
    if (sock)
        bpf_probe_read_kernel(&sk, sizeof sk, &sock->sk);
    return sk;
}

PN_INLINE __u16 sock_port(const struct sock *sk)
{
    __u16 port = 0;
    bpf_probe_read_kernel(&port, sizeof port, &sk->__sk_common.skc_num);
    return port;
}

/* What a send may change of a socket that the listing shows: an inet
 * datagram socket's port (autobind), a unix datagram socket's address
 * (autobind with SO_PASSCRED), peer and state (a dead peer disconnects it),
 * a netlink socket's port id (autobind). 0 for other sockets. */
PN_INLINE __u64 send_mark(const struct sock *sk, __u16 fam, __u16 type)
{
    __u64 mark = 0;
    if ((fam == 2 || fam == 10) && type != 1) {
        mark = 1 + (__u64)sock_port(sk);
    } else if (fam == 1 && type == 2) {
        const struct unix_sock *u = (const struct unix_sock *)sk;
        void *addr = 0, *peer = 0;
        __u8 state = 0;
        bpf_probe_read_kernel(&addr, sizeof addr, &u->addr);
        bpf_probe_read_kernel(&peer, sizeof peer, &u->peer);
        bpf_probe_read_kernel(&state, sizeof state, &sk->__sk_common.skc_state);
        mark = 1 + ((__u64)addr ^ ((__u64)peer << 1) ^ state);
    } else if (fam == 16) {
        unsigned int portid = 0;
        bpf_probe_read_kernel(&portid, sizeof portid, &((const struct netlink_sock *)sk)->portid);
        mark = 1 + (__u64)portid;
    }
    return mark;
}

PN_INLINE __u16 sock_u16(const struct sock *sk, int what)
{
    __u16 v = 0;
    if (what == 0)
        bpf_probe_read_kernel(&v, sizeof v, &sk->__sk_common.skc_family);
    else
        bpf_probe_read_kernel(&v, sizeof v, &sk->sk_type);
    return v;
}
