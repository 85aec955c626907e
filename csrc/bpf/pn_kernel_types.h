/*
 * pn_kernel_types.h -- the few kernel types task_sockets.bpf.c reads.
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
} PN_CORE;

struct fdtable {
    unsigned long *open_fds;             /* bitmap: a plain pointer, read by probe */
} PN_CORE;

struct files_struct {
    struct fdtable *fdt;
} PN_CORE;

struct task_struct {
    int                  pid;
    int                  tgid;
    struct task_struct  *group_leader;
    struct files_struct *files;
    char                 comm[16];       /* TASK_COMM_LEN */
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
