"""The owner cache's short identity check on a live procfs (proc_ident.c).

A settled single-threaded process -- found asleep with the same run
counters by two whole identity reads in a row -- whose counters still did
not move and whose /proc/PID directory is the same inode is known without
its stat (the costly read). Observed through an LD_PRELOAD shim that logs
every "PID/stat" the poller opens: a sleeper's stat is read by the first two
polls only, again twice after it ran, and a multi-threaded process's at
every poll. Both backends decide alike.
"""
import json
import os
import subprocess
import sys

import pytest

from c_build import compiled, preload

pytestmark = pytest.mark.live

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* log each relative path ending in "/stat" opened with openat */
static void note(const char *path)
{
    size_t n = strlen(path);
    const char *log = getenv("SHIM_LOG");
    if (!log || n < 6 || strcmp(path + n - 5, "/stat") != 0 || path[0] == '/')
        return;
    FILE *f = fopen(log, "a");
    if (f) { fprintf(f, "%s\n", path); fclose(f); }
}

#define WRAP(name)                                                          \
int name(int dirfd, const char *path, int flags, ...)                       \
{                                                                           \
    static int (*real)(int, const char *, int, ...);                        \
    mode_t mode = 0;                                                        \
    if (!real)                                                              \
        real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, #name); \
    if (flags & O_CREAT) {                                                  \
        va_list ap;                                                         \
        va_start(ap, flags);                                                \
        mode = va_arg(ap, mode_t);                                          \
        va_end(ap);                                                         \
    }                                                                       \
    note(path);                                                             \
    return real(dirfd, path, flags, mode);                                  \
}
WRAP(openat)
WRAP(openat64)
"""

CHILD = r"""
import json, os, sys, time
import procnet
sys.path.insert(0, sys.argv[2])
from live_sockets import sleeping_holder

single, _, kick = sleeping_holder()
multi, _, _ = sleeping_holder(threads=True)
time.sleep(0.3)
log = os.environ["SHIM_LOG"]
p = procnet.Poller("tcp", backend=sys.argv[1])

def stats_read():
    with open(log) as f:
        n0 = len(f.read().split())
    p.poll()
    with open(log) as f:
        names = f.read().split()[n0:]
    return [names.count("%d/stat" % pid) for pid in (single, multi)]

out = [stats_read() for _ in range(4)]
os.write(kick, b"k")
time.sleep(0.3)
out += [stats_read() for _ in range(3)]
with open("/proc/%d/stat" % single) as f:
    threads = int(f.read().rsplit(")", 1)[1].split()[17])
for pid in (single, multi):
    os.kill(pid, 9)
    os.waitpid(pid, 0)
print(json.dumps({"reads": out, "threads": threads}))
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    return compiled(tmp_path_factory, "statlog", SHIM, shared=True)


@pytest.mark.parametrize("backend", ["native", "pure"])
def test_a_settled_sleeper_is_known_without_its_stat(shim, tmp_path, backend):
    log = tmp_path / "stat.log"
    log.write_text("")
    env = dict(os.environ, LD_PRELOAD=preload(shim), SHIM_LOG=str(log))
    out = subprocess.run([sys.executable, "-c", CHILD, backend, os.path.dirname(__file__)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    if got["threads"] != 1:
        pytest.skip("the holder has threads of its emulator's here (qemu-user)")
    reads = got["reads"]
    single = [r[0] for r in reads]
    # polls 1-2: whole reads (the second settles it); 3-4: the short check;
    # kicked, it ran: two whole reads again, then the short check
    assert single == [1, 1, 0, 0, 1, 1, 0], reads
    # a multi-threaded process is never known by the short check
    assert all(r[1] >= 1 for r in reads), reads
