/* floor.c - the speed floor for "which process owns each socket".
 *
 * Does only the unavoidable work, single-threaded, so every procnet result can
 * be reported against it:
 *   1. read /proc/net/{tcp,tcp6,udp,udp6,udplite,udplite6,raw,raw6,icmp,icmp6,
 *      unix,packet,netlink} with 256 KiB read() calls (the kernel restarts the
 *      UDP hash walk on every read; note seq_file still returns at most about
 *      one page per read - measured ~4 KiB on 6.18 - so the call count, and
 *      UDP's quadratic cost, cannot be cut further through /proc) and decode
 *      each row minimally (inode; inet: raw address words, ports, state; unix:
 *      type, state, path pointer; packet/netlink: inode via the header's column);
 *   2. getdents64 over /proc; per numeric pid openat(PID/fd) relative to the
 *      /proc fd, getdents64 it, readlinkat each entry, parse "socket:[N]" and
 *      insert (inode -> pid, fd) into an open-addressing hash (duplicates kept);
 *   3. read /proc/PID/comm once per pid holding at least one socket;
 *   4. join: look up every table row's inode and count distinct owner pids.
 * Vanished processes (ENOENT/ESRCH) and EACCES are skipped silently.
 *
 * Build:  gcc -std=c11 -O2 -Wall -Wextra -o benchmarks/floor benchmarks/floor.c
 *   (benchmarks/conftest.py builds it as a shared library and calls floor_run()
 *   in-process, so it is timed exactly like the Python contenders)
 * Usage:  floor [--repeat K] [--json] [--dump]
 *   One line: sockets (table rows), owned (rows with >= 1 owner), owners
 *   (socket-pid pairs), procs (pids holding a socket), pids, fds scanned and
 *   elapsed seconds (median and min over K runs; medians of the /proc/net and
 *   fd-scan phases in brackets, the rest is the join).  --dump also prints
 *   "inode pid..." per owned socket (last run) for checking ground truth.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

struct sock { uint64_t inode; uint32_t laddr[4], raddr[4]; const char *path;
              uint16_t lport, rport; uint8_t state, table, owners; };
struct ent { uint64_t inode; int32_t pid, fd; };      /* inode 0 = empty slot */
struct proc { int32_t pid; char comm[16]; };
struct ldirent64 { uint64_t d_ino; int64_t d_off; unsigned short d_reclen;
                  unsigned char d_type; char d_name[]; };

static const char *tables[] = { "tcp", "tcp6", "udp", "udp6", "udplite", "udplite6",
    "raw", "raw6", "icmp", "icmp6", "unix", "packet", "netlink" };
#define NTABLES (sizeof tables / sizeof tables[0])

static struct sock *socks; static size_t nsocks, capsocks;
static struct ent *hash; static size_t hcap, hused;
static struct proc *procs; static size_t nprocs, capprocs;
static char *tbuf[NTABLES]; static size_t tcap[NTABLES];
static size_t nfds, npids;

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n);
    if (!p) { perror("realloc"); exit(1); }
    return p;
}

/* Whole file into a growing buffer, CHUNK bytes per read(). */
static size_t slurp(int dirfd, const char *name, char **buf, size_t *cap) {
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t len = 0;
    for (;;) {
        if (*cap - len < CHUNK + 1) { *cap = *cap * 2 + CHUNK + 1; *buf = xrealloc(*buf, *cap); }
        ssize_t n = read(fd, *buf + len, CHUNK);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    (*buf)[len] = 0;
    return len;
}

static uint32_t hexn(const char **p, int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        char c = **p;
        v = v * 16 + (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}
static uint64_t dec(const char **p) {
    uint64_t v = 0;
    while (**p >= '0' && **p <= '9') v = v * 10 + (uint64_t)(*(*p)++ - '0');
    return v;
}
static const char *skipws(const char *p) { while (*p == ' ' || *p == '\t') p++; return p; }
static const char *skiptok(const char *p) { while (*p && *p != ' ' && *p != '\n') p++; return skipws(p); }

static struct sock *newsock(int table) {
    if (nsocks == capsocks) { capsocks = capsocks * 2 + 4096; socks = xrealloc(socks, capsocks * sizeof *socks); }
    struct sock *s = &socks[nsocks++];
    memset(s, 0, sizeof *s);
    s->table = (uint8_t)table;
    return s;
}

/* "  sl: AAAAAAAA:PPPP AAAAAAAA:PPPP ST tx:rx tr:when retr uid timeout inode ..." */
static void parse_inet(char *b, int table, int words) {
    char *line = strchr(b, '\n');                      /* skip header */
    while (line && *++line) {
        const char *p = skipws(line);
        p = skiptok(p);                                /* "sl:" */
        struct sock *s = newsock(table);
        for (int w = 0; w < words; w++) s->laddr[w] = hexn(&p, 8);
        p++; s->lport = (uint16_t)hexn(&p, 4); p = skipws(p);
        for (int w = 0; w < words; w++) s->raddr[w] = hexn(&p, 8);
        p++; s->rport = (uint16_t)hexn(&p, 4); p = skipws(p);
        s->state = (uint8_t)hexn(&p, 2); p = skipws(p);
        for (int i = 0; i < 5; i++) p = skiptok(p);    /* tx:rx tr:when retr uid timeout */
        s->inode = dec(&p);
        line = strchr(p, '\n');
    }
}

/* "Num: RefCount Protocol Flags Type St Inode [Path]" */
static void parse_unix(char *b, int table) {
    char *line = strchr(b, '\n');
    while (line && *++line) {
        const char *p = skiptok(line);
        for (int i = 0; i < 3; i++) p = skiptok(p);     /* refcount protocol flags */
        struct sock *s = newsock(table);
        s->rport = (uint16_t)hexn(&p, 4); p = skipws(p); /* type (kept in rport) */
        s->state = (uint8_t)hexn(&p, 2); p = skipws(p);
        s->inode = dec(&p); p = skipws(p);
        char *nl = strchr(p, '\n');
        if (*p && p != nl) s->path = p;
        if (!nl) break;
        *nl = 0; line = nl;
    }
}

/* packet, netlink: inode column found by name in the header. */
static void parse_generic(char *b, int table) {
    int col = 0;
    const char *p = b;
    while (*p && *p != '\n' && strncmp(p, "Inode", 5)) { p = skiptok(p); col++; }
    if (strncmp(p, "Inode", 5)) return;
    char *line = strchr(b, '\n');
    while (line && *++line) {
        p = skipws(line);
        for (int i = 0; i < col; i++) p = skiptok(p);
        newsock(table)->inode = dec(&p);
        line = strchr(p, '\n');
    }
}

static inline size_t hslot(uint64_t ino) { return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (hcap - 1); }

static void hput(uint64_t ino, int32_t pid, int32_t fd) {
    if ((hused + 1) * 2 > hcap) {                      /* grow at load 0.5 */
        struct ent *old = hash; size_t ocap = hcap;
        hcap = hcap ? hcap * 2 : 1u << 16; hash = calloc(hcap, sizeof *hash);
        if (!hash) { perror("calloc"); exit(1); }
        hused = 0;
        for (size_t i = 0; i < ocap; i++) if (old[i].inode) hput(old[i].inode, old[i].pid, old[i].fd);
        free(old);
    }
    size_t i = hslot(ino);
    while (hash[i].inode) i = (i + 1) & (hcap - 1);
    hash[i] = (struct ent){ ino, pid, fd };
    hused++;
}

static long getdents(int fd, char *buf, size_t n) { return syscall(SYS_getdents64, fd, buf, n); }

/* Scan one /proc/PID/fd; returns sockets found. */
static int scan_pid(int procfd, const char *pidname, int32_t pid, char *dbuf, size_t dlen) {
    char path[64], link[64];
    snprintf(path, sizeof path, "%s/fd", pidname);
    int dfd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return 0;                             /* ENOENT, ESRCH, EACCES: skip */
    int found = 0;
    long n;
    while ((n = getdents(dfd, dbuf, dlen)) > 0) {
        for (long off = 0; off < n;) {
            struct ldirent64 *d = (struct ldirent64 *)(dbuf + off);
            off += d->d_reclen;
            if (d->d_name[0] == '.') continue;
            nfds++;
            ssize_t l = readlinkat(dfd, d->d_name, link, sizeof link - 1);
            if (l < 9 || memcmp(link, "socket:[", 8)) continue;
            link[l] = 0;
            const char *p = link + 8;
            uint64_t ino = dec(&p);
            if (*p != ']') continue;
            const char *q = d->d_name;
            hput(ino, pid, (int32_t)dec(&q));
            found++;
        }
    }
    close(dfd);
    return found;
}

static void read_comm(int procfd, const char *pidname, int32_t pid) {
    char path[64], buf[64];
    snprintf(path, sizeof path, "%s/comm", pidname);
    int fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n <= 0) return;
    if (nprocs == capprocs) { capprocs = capprocs * 2 + 256; procs = xrealloc(procs, capprocs * sizeof *procs); }
    struct proc *pr = &procs[nprocs++];
    pr->pid = pid;
    size_t m = (size_t)n < sizeof pr->comm ? (size_t)n : sizeof pr->comm;
    memcpy(pr->comm, buf, m);
    pr->comm[m - 1] = 0;                               /* drop '\n' */
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct result { size_t sockets, owned, owners, procs, pids, fds; double secs, net, scan; };

static struct result run(int dump) {
    double t0 = now();
    nsocks = hused = nprocs = nfds = npids = 0;
    if (hash) memset(hash, 0, hcap * sizeof *hash);

    int netfd = open("/proc/net", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (size_t t = 0; t < NTABLES; t++) {
        if (!slurp(netfd, tables[t], &tbuf[t], &tcap[t])) continue;
        if (!strcmp(tables[t], "unix")) parse_unix(tbuf[t], (int)t);
        else if (!strcmp(tables[t], "packet") || !strcmp(tables[t], "netlink")) parse_generic(tbuf[t], (int)t);
        else parse_inet(tbuf[t], (int)t, strchr(tables[t], '6') ? 4 : 1);
    }
    close(netfd);
    double t1 = now();

    static char pbuf[CHUNK], dbuf[32768];
    int procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (procfd < 0) { perror("/proc"); exit(1); }
    long n;
    while ((n = getdents(procfd, pbuf, sizeof pbuf)) > 0) {
        for (long off = 0; off < n;) {
            struct ldirent64 *d = (struct ldirent64 *)(pbuf + off);
            off += d->d_reclen;
            if (d->d_name[0] < '1' || d->d_name[0] > '9') continue;
            const char *q = d->d_name;
            int32_t pid = (int32_t)dec(&q);
            npids++;
            if (scan_pid(procfd, d->d_name, pid, dbuf, sizeof dbuf)) read_comm(procfd, d->d_name, pid);
        }
    }
    close(procfd);
    double t2 = now();

    struct result r = { .sockets = nsocks, .procs = nprocs, .pids = npids, .fds = nfds,
                        .net = t1 - t0, .scan = t2 - t1 };
    for (size_t s = 0; s < nsocks; s++) {
        uint64_t ino = socks[s].inode;
        if (!ino || !hcap) continue;                   /* TIME_WAIT etc. have inode 0 */
        int32_t seen[64]; unsigned k = 0;
        for (size_t i = hslot(ino); hash[i].inode; i = (i + 1) & (hcap - 1)) {
            if (hash[i].inode != ino) continue;
            unsigned j = 0;
            while (j < k && seen[j] != hash[i].pid) j++;
            if (j == k && k < 64) seen[k++] = hash[i].pid;
        }
        socks[s].owners = (uint8_t)k;
        if (k) { r.owned++; r.owners += k; }
        if (dump && k) {
            printf("%llu %s", (unsigned long long)ino, tables[socks[s].table]);
            for (unsigned j = 0; j < k; j++) printf(" %d", seen[j]);
            putchar('\n');
        }
    }
    r.secs = now() - t0;
    return r;
}

/* For in-process timing by the benchmark suite (ctypes, built with -shared):
 * one full run, returning the number of sockets it saw. */
size_t floor_run(void);
size_t floor_run(void) { return run(0).sockets; }

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmpd);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
    int repeat = 1, json = 0, dump = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--dump")) dump = 1;
        else { fprintf(stderr, "usage: %s [--repeat K] [--json] [--dump]\n", argv[0]); return 2; }
    }
    if (repeat < 1) repeat = 1;
    double *t = xrealloc(NULL, 3 * (size_t)repeat * sizeof *t), *tn = t + repeat, *ts = tn + repeat;
    struct result r = {0};
    for (int i = 0; i < repeat; i++) {
        r = run(dump && i == repeat - 1);
        t[i] = r.secs; tn[i] = r.net; ts[i] = r.scan;
    }
    double med = median(t, repeat), min = t[0], net = median(tn, repeat), scan = median(ts, repeat);
    double us = r.sockets ? med * 1e6 / (double)r.sockets : 0;
    if (json)
        printf("{\"sockets\": %zu, \"owned\": %zu, \"owners\": %zu, \"procs\": %zu, \"pids\": %zu, "
               "\"fds\": %zu, \"repeat\": %d, \"median_s\": %.6f, \"min_s\": %.6f, \"us_per_socket\": %.3f, "
               "\"net_s\": %.6f, \"scan_s\": %.6f}\n",
               r.sockets, r.owned, r.owners, r.procs, r.pids, r.fds, repeat, med, min, us, net, scan);
    else
        printf("floor: sockets=%zu owned=%zu owners=%zu procs=%zu pids=%zu fds=%zu "
               "median=%.6fs min=%.6fs (K=%d) us/socket=%.3f [net=%.6fs scan=%.6fs]\n",
               r.sockets, r.owned, r.owners, r.procs, r.pids, r.fds, med, min, repeat, us, net, scan);
    free(t);
    return 0;
}
