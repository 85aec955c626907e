#!/usr/bin/env bash
# The whole test suite against a C core built with AddressSanitizer and
# UndefinedBehaviorSanitizer (PROCNET_SANITIZE, read by procnet/_build_ffi.py).
# Python itself is not instrumented, so the runtimes are preloaded; leak
# checking is off here because the interpreter's own allocations at exit
# would drown it (issue 9 adds a LeakSanitizer run over a snapshot loop).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"     # the tests that run as nobody import the package from here
git ls-files -z | xargs -0 cp --parents -t "$work"
cd "$work"
PROCNET_SANITIZE=address,undefined "$PY" procnet/_build_ffi.py >build.log 2>&1 || { tail -20 build.log; exit 1; }
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# the benchmark smoke test times nothing and would only slow down here; the
# leak and churn runs are shorter (the tests tier runs them at full length:
# here they are for the memory errors ASan sees, the C loop below for leaks)
PROCNET_LEAK_SNAPSHOTS=2000 PROCNET_CHURN_SECONDS=4 \
  "$PY" -m pytest tests -q -p no:cacheprovider --deselect tests/test_benchmarks_smoke.py::test_benchmark_suite_smoke

# LeakSanitizer and valgrind on a snapshot loop in C: every source, owners
# on and off, one and two threads, and the error path for a missing root.
unset LD_PRELOAD
cc=${CC:-gcc}
"$cc" -std=c11 -g -O1 -fsanitize=address -Icsrc csrc/*.c tests/c/loop/snapshot_loop.c -o loop-asan -pthread
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ./loop-asan 200
if ! command -v valgrind >/dev/null; then
  for i in 1 2 3; do apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind && break; sleep $((i * 10)); done
fi
"$cc" -std=c11 -g -O1 -Icsrc csrc/*.c tests/c/loop/snapshot_loop.c -o loop-plain -pthread
valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=3 ./loop-plain 30
# the BPF owner source's own C test (scan vs walk, 8 threads, refusals) with
# ASan+UBSan and LeakSanitizer; 77 = BPF cannot load on this machine
rc=0; ASAN=1 sh tests/c/bpf/run_bpf.sh >bpf.log 2>&1 || rc=$?
tail -3 bpf.log
[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || { cat bpf.log; exit 1; }
echo "sanitize: suite clean under ASan+UBSan; snapshot and poll loops leak-free under LeakSanitizer and valgrind; BPF test rc=$rc"
