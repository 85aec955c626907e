/* bpf_load.h -- the loaded BPF owner program, shared by bpf_load.c (open,
 * close) and owners_bpf.c (scan). Internal to the core. */
#ifndef PN_BPF_LOAD_H
#define PN_BPF_LOAD_H

#include "pn_internal.h"

#include <stdarg.h>

#ifndef PN_HAVE_BPF_OBJ

/* Built without the BPF program (PROCNET_NO_BPF, or stale objects and no clang): the source exists, never loads. */
struct pn_bpf {
    int unused;
};

#else /* PN_HAVE_BPF_OBJ */

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

#endif /* PN_HAVE_BPF_OBJ */
#endif /* PN_BPF_LOAD_H */
