/*
 * task_sockets.bpf.c -- the BPF owner source's kernel side (see owners_bpf.c).
 *
 * An iter/task_file program: reading an iterator fd created from its link
 * makes the kernel call it once per open file of every task in the reader's
 * pid namespace (tasks in tid order, each task's fds in ascending order; a
 * thread sharing its leader's fd table is skipped by the kernel itself). It
 * writes one fixed-size record per socket fd of a thread-group leader, which
 * is exactly what /proc/PID/fd shows as "socket:[N]":
 *   - only task->pid == task->tgid: /proc/PID/fd lists the leader's table,
 *     and a thread that unshare(CLONE_FILES)d has its own table, which the
 *     kernel does iterate but /proc/PID/fd does not show;
 *   - only files on sockfs: an O_PATH fd opened on a unix socket's path is
 *     S_ISSOCK too, but lives on the path's filesystem and reads "/path".
 * Plus, so user space can count the fd tables visited, a record with inode
 * 0 (never a sockfs inode: get_next_ino() skips 0) on the first fd of each
 * leader whose first fd is not a socket. "First" is decided from the open_fds
 * bitmap, without state: a marker may repeat for a task with gaps of 64+ fds
 * (user space dedupes consecutive records of one tgid).
 *
 * Stateless on purpose: no maps, no globals (the maps in this object are
 * change_track.bpf.h's, which the owner loader does not load). When a record does not fit in
 * the reader's buffer the kernel throws that run's output away and runs the
 * program again on the same fd later, and many iterators (threads) run one
 * loaded program at the same time.
 *
 * Built by procnet/_build_bpf.py:  clang -target bpf -O2 -g -c
 */
#include "pn_kernel_types.h"

#define SEC(name) __attribute__((section(name), used))
#define PN_INLINE static inline __attribute__((always_inline))

/* Helpers, by their stable ids in the kernel's enum bpf_func_id. */
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)113;
static long (*bpf_seq_write)(struct seq_file *m, const void *data, __u32 len) = (void *)127;

#define PN_SOCKFS_MAGIC 0x534F434B
#define PN_S_IFMT       0170000
#define PN_S_IFSOCK     0140000

/* One record; owners_bpf.c reads the same layout (struct pn_bpf_rec). */
struct pn_rec {
    __u32 tgid;
    __u32 fd;
    __u64 inode;       /* 0: first-fd marker, not a socket */
    char  comm[16];    /* the leader's comm, NUL-padded */
};

/* Is there no open fd below fd in the word holding fd nor in the one before?
 * Word = the kernel's unsigned long, whose size CO-RE tells (s_magic is one).
 * Read with the kernel word's own width, so the bit order is right on either
 * endianness. Errs towards "yes" (a repeated marker is harmless). */
PN_INLINE int maybe_first_fd(const struct task_struct *task, __u32 fd)
{
    struct files_struct *files = task->files;
    if (!files)
        return 1;
    struct fdtable *fdt = files->fdt;
    if (!fdt)
        return 1;
    const char *bits = (const char *)fdt->open_fds;
    __u32 wsize = __builtin_preserve_field_info(((struct super_block *)0)->s_magic, 1);
    __u32 wbits = wsize == 4 ? 32 : 64;
    __u32 idx = fd / wbits;
    __u64 below = (1ull << (fd % wbits)) - 1;
    __u64 word = 0, prev = 0;
    if (wsize == 4) {
        __u32 w = 0, p = 0;
        bpf_probe_read_kernel(&w, 4, bits + (__u64)idx * 4);
        if (idx)
            bpf_probe_read_kernel(&p, 4, bits + (__u64)(idx - 1) * 4);
        word = w;
        prev = p;
    } else {
        bpf_probe_read_kernel(&word, 8, bits + (__u64)idx * 8);
        if (idx)
            bpf_probe_read_kernel(&prev, 8, bits + (__u64)(idx - 1) * 8);
    }
    return (word & below) == 0 && prev == 0;
}

SEC("iter/task_file")
int pn_task_sockets(struct bpf_iter__task_file *ctx)
{
    struct task_struct *task = ctx->task;
    struct file *file = ctx->file;
    if (!task || !file)                  /* the final call, after the last fd */
        return 0;
    if (task->pid != task->tgid)         /* a thread with its own fd table */
        return 0;

    __u32 fd = ctx->fd;
    struct inode *inode = file->f_inode;
    struct pn_rec r;
    __builtin_memset(&r, 0, sizeof r);
    r.tgid = (__u32)task->tgid;
    r.fd = fd;
    if (inode && (inode->i_mode & PN_S_IFMT) == PN_S_IFSOCK &&
        inode->i_sb->s_magic == PN_SOCKFS_MAGIC) {
        r.inode = inode->i_ino;
        /* task is its own group leader here: its comm is /proc/PID/comm */
        __builtin_memcpy(r.comm, task->comm, sizeof r.comm);
    } else if (fd != 0 && !maybe_first_fd(task, fd)) {
        return 0;
    }
    bpf_seq_write(ctx->meta->seq, &r, sizeof r);
    return 0;
}

/* The Poller's change tracking: its own programs and maps, in this object. */
#include "change_track.bpf.h"

/* bpf_seq_write and bpf_probe_read_kernel are GPL-only helpers; the kernel
 * takes "Dual MIT/GPL" as GPL-compatible, and procnet is MIT. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
