/*
 * bpf_load.c -- open and close the BPF owner program (see owners_bpf.c for
 * what it does and how a scan reads it): libbpf 1.x dlopen()ed at run time,
 * the program compiled in (pn_bpf_obj.h), and a reason for every refusal.
 *
 * Process-wide effects of loading: libbpf's print callback is replaced by a
 * silent one (libbpf has one per process, shared with any other libbpf user
 * that resolves to the same libbpf.so.1); on kernels before 5.11 libbpf may
 * raise RLIMIT_MEMLOCK while loading.
 */
#include "bpf_load.h"

#include <errno.h>
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

int pn_bpf_open(struct pn_bpf **out, char *why, size_t whylen)
{
    if (out)
        *out = NULL;
    set_why(why, whylen, "procnet was built without its BPF program "
            "(built with PROCNET_NO_BPF=1, or its committed objects were stale and no clang "
            "could rebuild them: see the build log)");
    errno = ENOSYS;
    return -1;
}

void pn_bpf_close(struct pn_bpf *b)
{
    free(b);
}

#else /* PN_HAVE_BPF_OBJ */

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include "bpf/pn_bpf_obj.h"   /* pn_bpf_obj[], pn_bpf_obj_len: the compiled program, committed */

#define PN_PROC_PID_INIT_INO 0xEFFFFFFCu   /* the initial pid namespace's inode (proc_ns.h) */
#define PN_ENOTSUPP_KERNEL 524             /* the kernel-internal ENOTSUPP, leaking out of bpf() */
#define PN_STATUS_MAX   (16 * 1024)

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
int pn_bpf_explain(int err, const char *step, const char *msg, char *why, size_t whylen)
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
        set_why(why, whylen, "kernel too old: a hook procnet attaches to is missing "
                "(the owner iterator and change tracking need Linux 5.8+) (%s: %s%s%s)",
                step, strerror(err), sep, msg);
        return EOPNOTSUPP;
    }
    if (err == ENOSYS) {
        set_why(why, whylen, "kernel without the bpf() system call (CONFIG_BPF_SYSCALL)");
        return ENOSYS;
    }
    if (err == PN_ENOTSUPP_KERNEL || err == EOPNOTSUPP) {
        set_why(why, whylen, "kernel cannot run procnet's BPF programs (%s: not supported%s%s)",
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
    PN_SYM(lib, f->next_program, "bpf_object__next_program", &missing);
    PN_SYM(lib, f->program_name, "bpf_program__name", &missing);
    PN_SYM(lib, f->set_autoload, "bpf_program__set_autoload", &missing);
    PN_SYM(lib, f->attach, "bpf_program__attach", &missing);
    PN_SYM(lib, f->find_map, "bpf_object__find_map_by_name", &missing);
    PN_SYM(lib, f->map_fd, "bpf_map__fd", &missing);
    PN_SYM(lib, f->set_max_entries, "bpf_map__set_max_entries", &missing);
    PN_SYM(lib, f->map_lookup, "bpf_map_lookup_elem", &missing);
    PN_SYM(lib, f->map_update, "bpf_map_update_elem", &missing);
    PN_SYM(lib, f->map_delete, "bpf_map_delete_elem", &missing);
    PN_SYM(lib, f->rb_new, "ring_buffer__new", &missing);
    PN_SYM(lib, f->rb_consume, "ring_buffer__consume", &missing);
    PN_SYM(lib, f->rb_free, "ring_buffer__free", &missing);
    return missing;
}

void pn_bpf_close_parts(struct pn_bpf *b)
{
    if (b->link)
        b->f.link_destroy(b->link);
    if (b->obj)
        b->f.object_close(b->obj);
    if (b->lib)
        dlclose(b->lib);
    b->link = NULL;
    b->obj = NULL;
    b->lib = NULL;
}

void pn_bpf_close(struct pn_bpf *b)
{
    if (!b)
        return;
    pn_bpf_close_parts(b);
    free(b);
}

void pn_bpf_msg_begin(struct pn_bpf_msg *m)
{
    m->text[0] = '\0';
    pn_libbpf_msg = m->text;
    pn_libbpf_msg_len = sizeof m->text;
}

void pn_bpf_msg_end(void)
{
    pn_libbpf_msg = NULL;
}

/*
 * Open libbpf and load one program set of the object. Takes ~15 ms, nearly
 * all of it libbpf parsing the kernel's BTF (/sys/kernel/btf/vmlinux) for
 * the CO-RE relocations: do it once per process (owners) or per Poller
 * (tracking). Side effects beyond the struct: libbpf's (process-wide) print
 * callback is left pointing at a silent function in this library. Call
 * between pn_bpf_msg_begin/end.
 */
int pn_bpf_load(struct pn_bpf *b, int track, uint32_t ringbuf_bytes, char *why, size_t whylen)
{
    int err;
    b->link_fd = -1;
    if (check_pid_namespace(why, whylen) < 0)
        return -1;
    if (access("/sys/kernel/btf/vmlinux", F_OK) != 0 && errno == ENOENT) {
        set_why(why, whylen, "kernel without BTF (CONFIG_DEBUG_INFO_BTF): "
                "/sys/kernel/btf/vmlinux is missing");
        errno = EOPNOTSUPP;
        return -1;
    }
    const char *name = getenv("PROCNET_LIBBPF");
    if (!name || !*name)
        name = "libbpf.so.1";
    b->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!b->lib) {
        const char *de = dlerror();
        set_why(why, whylen, "libbpf 1.x is not installed (%s)", de ? de : name);
        errno = ENOENT;
        return -1;
    }
    const char *missing = load_libbpf(b->lib, &b->f);
    if (missing) {
        set_why(why, whylen, "%s is not libbpf 1.x: it lacks %s", name, missing);
        errno = ENOSYS;
        return -1;
    }
    b->f.set_print(pn_libbpf_print);

    errno = 0;
    b->obj = b->f.open_mem(pn_bpf_obj, pn_bpf_obj_len, NULL);
    if (bad_ptr(b->obj)) {
        err = ptr_errno(b->obj);
        b->obj = NULL;
        set_why(why, whylen, "libbpf cannot open the BPF object: %s%s%s", strerror(err),
                pn_libbpf_msg && pn_libbpf_msg[0] ? "; libbpf: " : "",
                pn_libbpf_msg ? pn_libbpf_msg : "");
        errno = err;
        return -1;
    }
    /* one set of programs; the ring buffer sized for its use (a power of 2
     * pages: the kernel's rule) */
    for (struct bpf_program *p = b->f.next_program(b->obj, NULL); p;
         p = b->f.next_program(b->obj, p)) {
        int is_track = strncmp(b->f.program_name(p), PN_TRACK_PREFIX,
                               sizeof PN_TRACK_PREFIX - 1) == 0;
        if (b->f.set_autoload(p, is_track == (track != 0)) < 0) {
            set_why(why, whylen, "libbpf cannot choose the programs to load");
            errno = EINVAL;
            return -1;
        }
    }
    struct bpf_map *rb = b->f.find_map(b->obj, "pn_changes");
    struct bpf_map *inflight = b->f.find_map(b->obj, "pn_inflight");
    long page = sysconf(_SC_PAGESIZE);
    uint32_t size = page > 0 ? (uint32_t)page : 4096;
    while (track && size < ringbuf_bytes && size < (1u << 30))
        size *= 2;
    /* the owner iterator's load still creates the trackers' maps: keep them
     * at their smallest (the in-flight hash is preallocated) */
    if (bad_ptr(rb) || bad_ptr(inflight) || b->f.set_max_entries(rb, size) < 0 ||
        (!track && b->f.set_max_entries(inflight, 1) < 0)) {
        set_why(why, whylen, "the BPF object lacks its tracking maps");
        errno = ENOENT;
        return -1;
    }
    /* The verifier gives up (EAGAIN) while a signal is pending for this
     * thread, and libbpf's few retries fail alike under a fast timer (a
     * sampling profiler's): the thread takes no signal while loading. A
     * process-directed one goes to another thread or waits the ~15 ms. */
    sigset_t all, old;
    sigfillset(&all);
    int masked = pthread_sigmask(SIG_BLOCK, &all, &old) == 0;
    errno = 0;
    int rc = b->f.load(b->obj);
    int load_errno = errno;
    if (masked)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = load_errno;
    if (rc < 0) {
        errno = pn_bpf_explain(rc < -1 ? -rc : (errno ? errno : EINVAL), "load",
                               pn_libbpf_msg ? pn_libbpf_msg : "", why, whylen);
        return -1;
    }
    return 0;
}

int pn_bpf_open(struct pn_bpf **out, char *why, size_t whylen)
{
    struct pn_bpf_msg msg;
    int err;
    if (why && whylen)
        why[0] = '\0';
    if (!out) {
        set_why(why, whylen, "no place for the result");
        errno = EINVAL;
        return -1;
    }
    *out = NULL;
    struct pn_bpf *b = calloc(1, sizeof *b);
    if (!b) {
        set_why(why, whylen, "out of memory");
        errno = ENOMEM;
        return -1;
    }
    pn_bpf_msg_begin(&msg);
    if (pn_bpf_load(b, 0, 0, why, whylen) < 0) {
        err = errno;
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
        err = pn_bpf_explain(ptr_errno(b->link), "attach", msg.text, why, whylen);
        b->link = NULL;
        goto fail;
    }
    b->link_fd = b->f.link_fd(b->link);
    if (b->link_fd < 0) {
        err = pn_bpf_explain(b->link_fd < -1 ? -b->link_fd : EINVAL, "link fd", msg.text, why,
                             whylen);
        goto fail;
    }
    pn_bpf_msg_end();
    *out = b;
    return 0;
fail:
    pn_bpf_msg_end();
    pn_bpf_close(b);
    errno = err;
    return -1;
}

#endif /* PN_HAVE_BPF_OBJ */
