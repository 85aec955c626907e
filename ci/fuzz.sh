#!/usr/bin/env bash
# Fuzz the C core's decoders of outside input, and its renderers of hostile records,
# with libFuzzer (+ASan +UBSan).
#   bash ci/fuzz.sh                    every harness for $PROCNET_FUZZ_SECONDS (default 30) each
#   bash ci/fuzz.sh HARNESS [SECONDS]  one harness (fuzz_decode_line, fuzz_table_reader,
#                                      fuzz_socket_link, fuzz_diag_parse, fuzz_proc_ident,
#                                      fuzz_render) for as long as asked
# Seeds: csrc/fuzz/corpus/<harness>/ (copied; the repo is never written).
# Every input that ever crashed a harness is kept in csrc/fuzz/regressions/<harness>/
# and replayed first. Prints one line per harness: executions, seconds, findings.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${2:-${PROCNET_FUZZ_SECONDS:-30}}
CC=${FUZZ_CC:-clang-14}
if ! command -v "$CC" >/dev/null || ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  for i in 1 2 3 4; do
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      clang-14 libfuzzer-14-dev libclang-rt-14-dev && break
    sleep $((i * 10))
  done
fi
command -v "$CC" >/dev/null || { echo "FUZZ TIER UNAVAILABLE: $CC could not be installed"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
harnesses=(fuzz_decode_line fuzz_table_reader fuzz_socket_link fuzz_diag_parse fuzz_proc_ident fuzz_render)
[ $# -ge 1 ] && harnesses=("$1")
core=()
for f in csrc/*.c; do core+=("$f"); done
status=0
for h in "${harnesses[@]}"; do
  bin="$work/$h"
  if ! "$CC" -g -O1 -std=c11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
       -Icsrc "${core[@]}" "csrc/fuzz/$h.c" -o "$bin" -pthread 2>"$work/$h.build"; then
    echo "fuzz $h: BUILD FAILED"; cat "$work/$h.build"; status=1; continue
  fi
  regs=(csrc/fuzz/regressions/$h/*)
  if [ -e "${regs[0]}" ] && ! "$bin" "${regs[@]}" >"$work/$h.replay" 2>&1; then
    echo "fuzz $h: a regression input crashes again"; tail -30 "$work/$h.replay"; status=1; continue
  fi
  mkdir -p "$work/corpus-$h" "$work/crash-$h"
  cp csrc/fuzz/corpus/$h/* "$work/corpus-$h/" 2>/dev/null
  (cd "$work" && TMPDIR="$work" "$bin" -max_total_time="$SECS" -max_len=8192 -timeout=10 \
      -artifact_prefix="$work/crash-$h/" -print_final_stats=1 "$work/corpus-$h" >"$work/$h.log" 2>&1)
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$h.log" | grep -o '[0-9]*$')
  # a slow-unit-* artifact is libFuzzer noting a unit that took long on the clock (a
  # stalled machine: CI once kept a 131-byte link that replays in a millisecond); a
  # real hang exceeds -timeout, exits non-zero and leaves a timeout-* artifact
  slow=$(ls "$work/crash-$h" | grep -c '^slow-unit-')
  rm -f "$work/crash-$h"/slow-unit-*
  found=$(ls "$work/crash-$h" | wc -l)
  if [ $rc -ne 0 ] || [ "$found" -ne 0 ]; then
    echo "fuzz $h: FINDING after ${execs:-?} executions (kept under csrc/fuzz/regressions/$h/)"
    mkdir -p "csrc/fuzz/regressions/$h"
    cp "$work/crash-$h"/* "csrc/fuzz/regressions/$h/" 2>/dev/null
    grep -A 25 'ERROR\|SUMMARY' "$work/$h.log" | head -40
    status=1
  else
    note=""; [ "$slow" -gt 0 ] && note=" ($slow slow units on the clock, not findings)"
    echo "fuzz $h: ${execs:-0} executions in ${SECS}s, 0 findings$note"
  fi
done
exit $status
