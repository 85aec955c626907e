/* bpf_load.h -- the loaded BPF owner program, shared by bpf_load.c (open,
 * close) and owners_bpf.c (scan). Internal to the core. */
#ifndef PN_BPF_LOAD_H
#define PN_BPF_LOAD_H

#include "pn_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>

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
struct bpf_map;
struct ring_buffer;
typedef int (*pn_ring_buffer_sample_fn)(void *ctx, void *data, size_t size);
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
    /* for the change tracker (change_track.c) and the choice of programs */
    struct bpf_program *(*next_program)(const struct bpf_object *obj, struct bpf_program *prev);
    const char *(*program_name)(const struct bpf_program *prog);
    int (*set_autoload)(struct bpf_program *prog, _Bool autoload);
    struct bpf_link *(*attach)(const struct bpf_program *prog);
    struct bpf_map *(*find_map)(const struct bpf_object *obj, const char *name);
    int (*map_fd)(const struct bpf_map *map);
    int (*set_max_entries)(struct bpf_map *map, uint32_t max_entries);
    int (*map_lookup)(int fd, const void *key, void *value);
    int (*map_update)(int fd, const void *key, const void *value, uint64_t flags);
    int (*map_delete)(int fd, const void *key);
    struct ring_buffer *(*rb_new)(int map_fd, pn_ring_buffer_sample_fn cb, void *ctx,
                                  const void *opts);
    int (*rb_consume)(struct ring_buffer *rb);
    void (*rb_free)(struct ring_buffer *rb);
};

/* libbpf 0.x returned ERR_PTR(-errno) instead of NULL; treat both as failure. */
static inline int bad_ptr(const void *p)
{
    return !p || (uintptr_t)p >= (uintptr_t)-4095;
}

static inline int ptr_errno(const void *p)
{
    if (p && bad_ptr(p))
        return (int)-(intptr_t)p;
    return errno ? errno : EINVAL;
}

struct pn_bpf {
    void *lib;                  /* dlopen handle of libbpf */
    struct pn_libbpf f;
    struct bpf_object *obj;
    struct bpf_link *link;
    int link_fd;                /* owned by link */
};

/* The object's two program sets: the owner iterator, the change trackers. */
#define PN_BPF_PROG       "pn_task_sockets"
#define PN_TRACK_PREFIX   "pn_track_"

/* Open libbpf and load the object with one set's programs (track: the
 * trackers, their ring buffer sized ringbuf_bytes; else the iterator, the
 * ring buffer at its minimum). 0, or -1 with errno and why[] set; close a
 * half-done *b with pn_bpf_close. */
int pn_bpf_load(struct pn_bpf *b, int track, uint32_t ringbuf_bytes, char *why, size_t whylen);

/* Release what pn_bpf_load and an attach made, not the struct itself. */
void pn_bpf_close_parts(struct pn_bpf *b);

/* Why an attach or a load failed, in words; returns the errno to report. */
int pn_bpf_explain(int err, const char *step, const char *msg, char *why, size_t whylen);

/* libbpf's first warning during pn_bpf_load/attach on this thread ("" if none). */
struct pn_bpf_msg {
    char text[200];
};
void pn_bpf_msg_begin(struct pn_bpf_msg *m);
void pn_bpf_msg_end(void);

#endif /* PN_HAVE_BPF_OBJ */
#endif /* PN_BPF_LOAD_H */
