#!/bin/sh
# tests/c/bpf/run_bpf.sh -- build and run tests/c/bpf/test_bpf.c: the BPF owner source
# (csrc/owners_bpf.c + csrc/bpf/task_sockets.bpf.c) against the /proc walk.
#
#   sh tests/c/bpf/run_bpf.sh             # build + run; exit 77 = skipped (BPF cannot load here)
#   ASAN=1 sh tests/c/bpf/run_bpf.sh      # the same with ASan+UBSan (LeakSanitizer at exit)
#   sh tests/c/bpf/run_bpf.sh bench [CHILDREN [SOCKETPAIRS]]   # the micro-measurement
#
# Needs python3 (to check the committed BPF objects; no clang), cc ($CC),
# and to pass: root or
# CAP_BPF+CAP_PERFMON, libbpf.so.1, a kernel with BTF and iter/task_file.
set -u
cd "$(dirname "$0")/../../.." || exit 1
OUT=$(mktemp -d "${TMPDIR:-/tmp}/procnet-bpf-test.XXXXXX") || exit 1
trap 'rm -rf "$OUT"' EXIT

python3 procnet/_build_bpf.py --check || { echo "the committed BPF objects are stale: python3 procnet/_build_bpf.py --regenerate"; exit 1; }

CFLAGS="-std=c11 -O2 -g -Wall -Wextra"
if [ -n "${ASAN:-}" ]; then
    CFLAGS="$CFLAGS -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
fi
CC=${CC:-cc}
# -Werror on the BPF source and the test; the rest of the core (edited by
# others meanwhile) is ci/cross/run_c.sh's business: its warnings only show.
objs=
for f in csrc/*.c tests/c/check.c tests/c/bpf/*.c; do
    case $f in
    csrc/owners_bpf.c|tests/c/*) werror=-Werror ;;
    *) werror= ;;
    esac
    o="$OUT/$(basename "$f" .c).o"
    # shellcheck disable=SC2086  # CFLAGS is a word list
    $CC $CFLAGS $werror -DPN_TEST_BPF -DPN_HAVE_BPF_OBJ -Icsrc -Itests/c -c "$f" -o "$o" || exit 1
    objs="$objs $o"
done
# shellcheck disable=SC2086
$CC $CFLAGS $objs -o "$OUT/test_bpf" -pthread -ldl || exit 1
"$OUT/test_bpf" "$@"
