/*
 * owners_bpf.c -- find socket owners with a BPF iterator instead of /proc.
 *
 * csrc/bpf/task_sockets.bpf.c is an iter/task_file program: reading an
 * iterator fd made from its link, the kernel runs it over every open file of
 * every task and it writes one fixed record per socket fd of a thread-group
 * leader (struct pn_bpf_rec below). One scan is a bpf_iter_create() on the
 * shared link plus read()s to EOF: no readlinkat per fd, no comm file per
 * process.
 *
 * The object is compiled at build time (procnet/_build_bpf.py, which writes
 * pn_bpf_obj.h; PN_HAVE_BPF_OBJ) and loaded at run time through libbpf 1.x,
 * dlopen()ed: neither libbpf nor its headers are needed to build or to run
 * procnet; without them pn_bpf_open just fails with a reason. Only libc and
 * dlfcn.h here, so this file builds for every target.
 *
 * Thread safety: after pn_bpf_open the struct is read-only; every scan makes
 * its own iterator fd (the kernel keeps the iteration state per fd) and the
 * program keeps no state, so any number of threads may scan at once.
 *
 * Process-wide effects of loading (documented in pn_bpf_open): libbpf's
 * print callback is replaced by a silent one (libbpf has one per process,
 * shared with any other libbpf user that resolves to the same libbpf.so.1);
 * on kernels before 5.11 libbpf may raise RLIMIT_MEMLOCK while loading.
 */
#include "pn_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

/* Print a reason into why[] (NUL-terminated, truncated to whylen). */
static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    if (!why || !whylen)
        return;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

#ifndef PN_HAVE_BPF_OBJ

/* Built without clang for the BPF target: the source exists, never loads. */
struct pn_bpf {
    int unused;
};

int pn_bpf_open(struct pn_bpf **out, char *why, size_t whylen)
{
    if (out)
        *out = NULL;
    set_why(why, whylen, "procnet was built without its BPF program "
            "(no clang with a BPF target at build time)");
    errno = ENOSYS;
    return -1;
}

void pn_bpf_close(struct pn_bpf *b)
{
    free(b);
}

int pn_bpf_scan(struct pn_bpf *b, const struct pn_query *q, struct pn_owners *o)
{
    (void)b;
    (void)q;
    memset(o, 0, sizeof *o);
    errno = ENOSYS;
    return -1;
}

#else /* PN_HAVE_BPF_OBJ */

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "pn_bpf_obj.h"   /* pn_bpf_obj[], pn_bpf_obj_len: the compiled program */

/* What the program writes per record (task_sockets.bpf.c, struct pn_rec):
 * in the host's byte order, since the object is built for the host's. */
struct pn_bpf_rec {
    uint32_t tgid;
    uint32_t fd;
    uint64_t inode;     /* 0: a "first fd" marker, counts the process only */
    char     comm[16];  /* NUL-padded */
};
_Static_assert(sizeof(struct pn_bpf_rec) == 32, "pn_bpf_rec must match the BPF program's record");

#define PN_BPF_PROG     "pn_task_sockets"
#define PN_PROC_PID_INIT_INO 0xEFFFFFFCu   /* the initial pid namespace's inode (proc_ns.h) */
#define PN_ENOTSUPP_KERNEL 524             /* the kernel-internal ENOTSUPP, leaking out of bpf() */
#define PN_STATUS_MAX   (16 * 1024)

/* libbpf 1.x, declared here (no libbpf headers): opaque structs, and the few
 * calls used, whose signatures are stable since libbpf 0.x. libbpf 1.x
 * returns NULL / a negative errno and sets errno (no ERR_PTR). */
struct bpf_object;
struct bpf_program;
struct bpf_link;
typedef int (*pn_libbpf_print_fn)(int level, const char *fmt, va_list ap);

struct pn_libbpf {
    pn_libbpf_print_fn (*set_print)(pn_libbpf_print_fn fn);
    struct bpf_object *(*open_mem)(const void *buf, size_t len, const void *opts);
    int (*load)(struct bpf_object *obj);
    struct bpf_program *(*find_program)(const struct bpf_object *obj, const char *name);
    struct bpf_link *(*attach_iter)(const struct bpf_program *prog, const void *opts);
    int (*link_fd)(const struct bpf_link *link);
    int (*iter_create)(int link_fd);
    int (*link_destroy)(struct bpf_link *link);
    void (*object_close)(struct bpf_object *obj);
};

struct pn_bpf {
    void *lib;                  /* dlopen handle of libbpf */
    struct pn_libbpf f;
    struct bpf_object *obj;
    struct bpf_link *link;
    int link_fd;                /* owned by link */
};

/* libbpf 0.x returned ERR_PTR(-errno) instead of NULL; treat both as failure. */
static int bad_ptr(const void *p)
{
    return !p || (uintptr_t)p >= (uintptr_t)-4095;
}

static int ptr_errno(const void *p)
{
    if (p && bad_ptr(p))
        return (int)-(intptr_t)p;
    return errno ? errno : EINVAL;
}

/* ---- libbpf's messages --------------------------------------------------- */

/* While pn_bpf_open runs on a thread, the first warning libbpf prints there
 * (e.g. "prog 'x': BPF program load failed: Invalid argument") is kept to
 * explain an unexpected failure. Thread-local and set only during the open:
 * no state shared between threads. */
static _Thread_local char *pn_libbpf_msg;
static _Thread_local size_t pn_libbpf_msg_len;

static int pn_libbpf_print(int level, const char *fmt, va_list ap)
{
    char line[256];
    if (level != 0 /* LIBBPF_WARN */ || !pn_libbpf_msg || pn_libbpf_msg[0])
        return 0;
    vsnprintf(line, sizeof line, fmt, ap);
    if (strncmp(line, "libbpf: ", 8) == 0)
        memmove(line, line + 8, strlen(line + 8) + 1);
    line[strcspn(line, "\n")] = '\0';
    if (line[0] && strncmp(line, "-- BEGIN", 8) != 0)   /* not the verifier log */
        snprintf(pn_libbpf_msg, pn_libbpf_msg_len, "%s", line);
    return 0;
}

/* ---- checks before loading ---------------------------------------------- */

/* Read a small /proc or /sys file whole; -1 with errno. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    if (fd < 0)
        return -1;
    while (len < size - 1) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* The program sees global pids (task->tgid); they are the caller's pids only
 * in the initial pid namespace. 0 when that is where we are. */
static int check_pid_namespace(char *why, size_t whylen)
{
    struct stat st;
    int known = 0;
    if (stat("/proc/self/ns/pid", &st) == 0) {
        /* also catches a container whose own /proc shows one NSpid number */
        if ((uint64_t)st.st_ino != PN_PROC_PID_INIT_INO)
            goto nested;
        known = 1;
    }
    char *buf = malloc(PN_STATUS_MAX);
    if (!buf) {
        errno = ENOMEM;
        set_why(why, whylen, "out of memory");
        return -1;
    }
    ssize_t n = read_small("/proc/self/status", buf, PN_STATUS_MAX);
    if (n < 0) {
        int e = errno;
        free(buf);
        if (known)
            return 0;
        set_why(why, whylen, "cannot tell the caller's pid namespace "
                "(/proc/self/status: %s)", strerror(e));
        errno = e;
        return -1;
    }
    const char *line = strstr(buf, "\nNSpid:");
    int numbers = 0;
    if (line) {
        const char *p = line + 7;
        while (*p && *p != '\n') {
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p >= '0' && *p <= '9')
                numbers++;
            while (*p && *p != '\n' && *p != ' ' && *p != '\t')
                p++;
        }
    }
    free(buf);
    if (numbers > 1)
        goto nested;
    return 0;
nested:
    set_why(why, whylen, "the caller is in a nested pid namespace");
    errno = EOPNOTSUPP;
    return -1;
}

static int lockdown_confidentiality(void)
{
    char buf[128];
    return read_small("/sys/kernel/security/lockdown", buf, sizeof buf) > 0 &&
           strstr(buf, "[confidentiality]") != NULL;
}

/* Explain a refused load or attach; returns the errno to report. */
static int explain(int err, const char *step, const char *msg, char *why, size_t whylen)
{
    const char *sep = msg[0] ? "; libbpf: " : "";
    if (err == EPERM || (err == EACCES && geteuid() != 0)) {
        if (lockdown_confidentiality())
            set_why(why, whylen, "kernel lockdown (confidentiality) forbids BPF reading "
                    "kernel memory (%s refused: %s)", step, strerror(err));
        else
            set_why(why, whylen, "loading BPF needs root or CAP_BPF+CAP_PERFMON "
                    "(%s refused: %s)", step, strerror(err));
        return EPERM;
    }
    if (err == ESRCH || err == ENOENT) {
        set_why(why, whylen, "kernel too old: no iter/task_file BPF iterator, needs Linux 5.8+ "
                "(%s: %s%s%s)", step, strerror(err), sep, msg);
        return EOPNOTSUPP;
    }
    if (err == ENOSYS) {
        set_why(why, whylen, "kernel without the bpf() system call (CONFIG_BPF_SYSCALL)");
        return ENOSYS;
    }
    if (err == PN_ENOTSUPP_KERNEL || err == EOPNOTSUPP) {
        set_why(why, whylen, "kernel cannot run the iter/task_file program (%s: not supported%s%s)",
                step, sep, msg);
        return EOPNOTSUPP;
    }
    set_why(why, whylen, "the kernel refused the BPF program (%s: %s%s%s)",
            step, strerror(err), sep, msg);
    return err;
}

/* ---- open / close -------------------------------------------------------- */

/* dlsym into a function pointer without an object-to-function pointer cast. */
#define PN_SYM(lib, field, name, missing)                                  \
    do {                                                                   \
        void *p_ = dlsym((lib), (name));                                   \
        if (!p_ && !*(missing))                                            \
            *(missing) = (name);                                           \
        memcpy(&(field), &p_, sizeof p_);                                  \
    } while (0)

static const char *load_libbpf(void *lib, struct pn_libbpf *f)
{
    const char *missing = NULL;
    _Static_assert(sizeof(void *) == sizeof(f->iter_create), "function pointers differ in size");
    PN_SYM(lib, f->set_print, "libbpf_set_print", &missing);
    PN_SYM(lib, f->open_mem, "bpf_object__open_mem", &missing);
    PN_SYM(lib, f->load, "bpf_object__load", &missing);
    PN_SYM(lib, f->find_program, "bpf_object__find_program_by_name", &missing);
    PN_SYM(lib, f->attach_iter, "bpf_program__attach_iter", &missing);
    PN_SYM(lib, f->link_fd, "bpf_link__fd", &missing);
    PN_SYM(lib, f->iter_create, "bpf_iter_create", &missing);
    PN_SYM(lib, f->link_destroy, "bpf_link__destroy", &missing);
    PN_SYM(lib, f->object_close, "bpf_object__close", &missing);
    return missing;
}

void pn_bpf_close(struct pn_bpf *b)
{
    if (!b)
        return;
    if (b->link)
        b->f.link_destroy(b->link);
    if (b->obj)
        b->f.object_close(b->obj);
    if (b->lib)
        dlclose(b->lib);
    free(b);
}

/*
 * Load and attach the program. Takes ~15 ms, nearly all of it libbpf parsing
 * the kernel's BTF (/sys/kernel/btf/vmlinux) for the CO-RE relocations: do it
 * once per process. Side effects beyond the struct: libbpf's (process-wide)
 * print callback is left pointing at a silent function in this library.
 */
int pn_bpf_open(struct pn_bpf **out, char *why, size_t whylen)
{
    char msg[200] = "";
    int err;
    if (why && whylen)
        why[0] = '\0';
    if (!out) {
        set_why(why, whylen, "no place for the result");
        errno = EINVAL;
        return -1;
    }
    *out = NULL;
    if (check_pid_namespace(why, whylen) < 0)
        return -1;
    if (access("/sys/kernel/btf/vmlinux", F_OK) != 0 && errno == ENOENT) {
        set_why(why, whylen, "kernel without BTF (CONFIG_DEBUG_INFO_BTF): "
                "/sys/kernel/btf/vmlinux is missing");
        errno = EOPNOTSUPP;
        return -1;
    }
    struct pn_bpf *b = calloc(1, sizeof *b);
    if (!b) {
        set_why(why, whylen, "out of memory");
        errno = ENOMEM;
        return -1;
    }
    b->link_fd = -1;
    const char *name = getenv("PROCNET_LIBBPF");
    if (!name || !*name)
        name = "libbpf.so.1";
    b->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!b->lib) {
        const char *de = dlerror();
        set_why(why, whylen, "libbpf 1.x is not installed (%s)", de ? de : name);
        err = ENOENT;
        goto fail;
    }
    const char *missing = load_libbpf(b->lib, &b->f);
    if (missing) {
        set_why(why, whylen, "%s is not libbpf 1.x: it lacks %s", name, missing);
        err = ENOSYS;
        goto fail;
    }

    pn_libbpf_msg = msg;
    pn_libbpf_msg_len = sizeof msg;
    b->f.set_print(pn_libbpf_print);

    errno = 0;
    b->obj = b->f.open_mem(pn_bpf_obj, pn_bpf_obj_len, NULL);
    if (bad_ptr(b->obj)) {
        err = ptr_errno(b->obj);
        b->obj = NULL;
        set_why(why, whylen, "libbpf cannot open the BPF object: %s%s%s", strerror(err),
                msg[0] ? "; libbpf: " : "", msg);
        goto fail;
    }
    errno = 0;
    int rc = b->f.load(b->obj);
    if (rc < 0) {
        err = explain(rc < -1 ? -rc : (errno ? errno : EINVAL), "load", msg, why, whylen);
        goto fail;
    }
    struct bpf_program *prog = b->f.find_program(b->obj, PN_BPF_PROG);
    if (bad_ptr(prog)) {
        set_why(why, whylen, "the BPF object has no program " PN_BPF_PROG);
        err = ENOENT;
        goto fail;
    }
    errno = 0;
    b->link = b->f.attach_iter(prog, NULL);
    if (bad_ptr(b->link)) {
        err = explain(ptr_errno(b->link), "attach", msg, why, whylen);
        b->link = NULL;
        goto fail;
    }
    b->link_fd = b->f.link_fd(b->link);
    if (b->link_fd < 0) {
        err = explain(b->link_fd < -1 ? -b->link_fd : EINVAL, "link fd", msg, why, whylen);
        goto fail;
    }
    pn_libbpf_msg = NULL;
    *out = b;
    return 0;
fail:
    pn_libbpf_msg = NULL;
    pn_bpf_close(b);
    errno = err;
    return -1;
}

/* ---- one scan ------------------------------------------------------------ */

/* Where the records stand: the kernel hands a task's fds over consecutively
 * (tasks in tid order, fds ascending), so "a new tgid" = "a new process". */
struct pn_bpf_parse {
    int64_t  pid;       /* tgid of the last record, -1 before the first */
    int      wanted;    /* passes q->pids */
    uint32_t proc;      /* its pn_proc_info, UINT32_MAX until its first socket */
};

static int take_records(const char *buf, size_t n, const struct pn_query *q,
                        struct pn_owners *o, struct pn_bpf_parse *st)
{
    for (size_t off = 0; off + sizeof(struct pn_bpf_rec) <= n; off += sizeof(struct pn_bpf_rec)) {
        struct pn_bpf_rec r;
        memcpy(&r, buf + off, sizeof r);
        int32_t pid = (int32_t)r.tgid;
        if ((int64_t)pid != st->pid) {
            st->pid = pid;
            st->wanted = pid > 0 && pn_pid_wanted(q, pid);
            st->proc = UINT32_MAX;
            if (st->wanted)
                o->nprocs++;
        }
        if (!st->wanted || r.inode == 0)
            continue;
        if (st->proc == UINT32_MAX) {
            struct pn_proc_info *pi = pn_vec_reserve(&o->procs, sizeof *pi, 1);
            if (!pi || o->procs.len >= UINT32_MAX)
                return -1;
            size_t len = strnlen(r.comm, sizeof r.comm);
            size_t soff = pn_vec_append_bytes(&o->strings, r.comm, len);
            if (soff == (size_t)-1 || soff > UINT32_MAX)
                return -1;
            memset(pi, 0, sizeof *pi);
            pi->pid = pid;
            pi->name_off = (uint32_t)soff;
            pi->name_len = (uint32_t)len;
            st->proc = (uint32_t)o->procs.len++;
        }
        struct pn_fd_entry *e = pn_vec_reserve(&o->entries, sizeof *e, 1);
        if (!e)
            return -1;
        e->inode = r.inode;
        e->pid = pid;
        e->fd = (int32_t)r.fd;
        e->proc = st->proc;
        e->next = UINT32_MAX;
        o->entries.len++;
    }
    return 0;
}

/*
 * One kernel-side walk. nprocs counts the thread-group leaders (passing
 * q->pids) with at least one open fd: the iterator never calls the program
 * for an empty fd table, so unlike the /proc walk it does not count kernel
 * threads, zombies or processes with every fd closed.
 */
int pn_bpf_scan(struct pn_bpf *b, const struct pn_query *q, struct pn_owners *o)
{
    struct pn_bpf_parse st = { -1, 0, UINT32_MAX };
    size_t have = 0;
    int e = 0;
    memset(o, 0, sizeof *o);
    if (!b) {
        errno = EINVAL;
        return -1;
    }
    char *buf = malloc(PN_READ_CHUNK);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    /* the iterator fd is O_CLOEXEC (the kernel creates it so) */
    int fd = b->f.iter_create(b->link_fd);
    if (fd < 0) {
        e = fd < -1 ? -fd : (errno ? errno : EIO);
        free(buf);
        errno = e;
        return -1;
    }
    for (;;) {
        ssize_t n = read(fd, buf + have, PN_READ_CHUNK - have);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            e = errno;
            break;
        }
        if (n == 0) {
            if (have)
                e = EIO;   /* a torn record at EOF: not the program's output */
            break;
        }
        /* Each read returns whole program outputs, but stay correct if a
         * record is ever split between reads: keep the tail for the next. */
        have += (size_t)n;
        size_t whole = have - have % sizeof(struct pn_bpf_rec);
        if (take_records(buf, whole, q, o, &st) < 0) {
            e = ENOMEM;
            break;
        }
        memmove(buf, buf + whole, have - whole);
        have -= whole;
    }
    close(fd);
    free(buf);
    if (e) {
        pn_owners_free(o);
        memset(o, 0, sizeof *o);
        errno = e;
        return -1;
    }
    return 0;
}

#endif /* PN_HAVE_BPF_OBJ */
