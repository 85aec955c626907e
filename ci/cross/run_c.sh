#!/usr/bin/env bash
# ci/cross/run_c.sh -- build the C core + tests/c/test_core.c for every target
# and run it: natively (plain and with ASan/UBSan), under qemu-user for the
# foreign glibc arches, with musl-gcc, and with zig for big-endian MIPS musl.
#
#   bash ci/cross/run_c.sh              # every target
#   bash ci/cross/run_c.sh mips s390x   # just these (names as printed)
#
# Prints one line per target ("cross aarch64: 401 passed, 0 failed") and
# exits non-zero when any target failed or was unavailable:
#   0 all passed, 1 something failed, 3 nothing failed but some unavailable.
# Run install.sh first (run.sh does).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 1

OUT=$CROSS_BUILD/c
mkdir -p "$OUT"
rm -f "$OUT"/*.result

# The flags the issue asks for: strict C11, warnings are errors everywhere, so
# a warning that only a 32-bit or big-endian compiler sees turns CI red.
CFLAGS=(-std=c11 -O1 -Wall -Wextra -Werror -I csrc)
RUN_TIMEOUT=${PROCNET_CROSS_TIMEOUT:-300}

# The core's sources: every csrc/*.c (owners_bpf.c builds everywhere; without
# the BPF object it reports the source unavailable), plus the test driver.
SRCS=(csrc/*.c)
SRCS+=(tests/c/*.c)
if [ ! -f csrc/procnet.h ] || [ ${#SRCS[@]} -lt 2 ]; then
    echo "cross C tier: no C sources under csrc/" >&2
    exit 1
fi

# --- one target ---------------------------------------------------------------
# result file: "<status> <detail>" where status is PASS, FAIL or UNAVAILABLE.
result() { echo "$2" >"$OUT/$1.result"; }

# build_and_run NAME STATE-KEY "COMPILER ARGS..." "RUNNER ARGS..." [extra env]
build_and_run() {
    local name=$1 key=$2 cc=$3 runner=$4 env=${5:-}
    local bin=$OUT/test_core-$name log=$OUT/$name.log
    local st
    st=$(arch_state "$key")
    if [ -n "$st" ] && [ "$st" != ok ]; then
        result "$name" "UNAVAILABLE ${st#unavailable }"
        return
    fi
    local t0; t0=$(now)
    # shellcheck disable=SC2086  # $cc and $runner are word lists on purpose
    if ! $cc "${CFLAGS[@]}" "${SRCS[@]}" -pthread -o "$bin" >"$log" 2>&1; then
        result "$name" "FAIL build failed: $(grep -m1 -E 'error|Error' "$log" || tail -1 "$log")"
        return
    fi
    local tb; tb=$(since "$t0")
    local rc=0
    # shellcheck disable=SC2086
    env $env timeout -k 10 "$RUN_TIMEOUT" $runner "$bin" >>"$log" 2>&1 || rc=$?
    local tail_line
    tail_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if [ $rc = 0 ] && [ -n "$tail_line" ]; then
        result "$name" "PASS $tail_line (build $tb, total $(since "$t0"))"
    elif [ $rc = 124 ] || [ $rc = 137 ]; then
        result "$name" "FAIL timed out after ${RUN_TIMEOUT}s ${tail_line}"
    elif [ -n "$tail_line" ]; then
        result "$name" "FAIL $tail_line (exit $rc)"
    else
        result "$name" "FAIL crashed or no summary (exit $rc)"
    fi
}

target() {
    local name=$1
    case "$name" in
    host)
        build_and_run host "" "gcc" ""
        ;;
    host-asan)
        # ASan+UBSan on the host only (cheap here; the qemu targets would be
        # slow and the sanitizers' runtimes are not in the cross sysroots).
        build_and_run host-asan "" \
            "gcc -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
            "" "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1"
        ;;
    musl-x86_64)
        # musl-gcc sees only musl's headers. A musl system gets the kernel's
        # UAPI headers (linux/netlink.h, ...) from a separate package (Alpine:
        # linux-headers); here: linux-libc-dev's, and only those three trees,
        # so no glibc header can leak in. static: no musl loader needed.
        local kinc=$OUT/musl-kernel-headers
        rm -rf "$kinc"; mkdir -p "$kinc"
        ln -s /usr/include/linux "$kinc/linux"
        ln -s /usr/include/asm-generic "$kinc/asm-generic"
        ln -s "/usr/include/$(gcc -dumpmachine)/asm" "$kinc/asm"
        build_and_run musl-x86_64 musl-x86_64 "musl-gcc -static -idirafter $kinc" ""
        ;;
    mips-musl)
        # OpenWrt-like: big-endian MIPS32 with musl, soft-float ABI (musleabi).
        # zig ships musl for it; static because there is no musl sysroot.
        build_and_run mips-musl mips-musl \
            "env ZIG_GLOBAL_CACHE_DIR=$CROSS_CACHE/zig-cache $TOOLS_VENV/bin/python -m ziglang cc -target mips-linux-musleabi -static" \
            "qemu-mips-static"
        ;;
    *)
        local line
        line=$(cross_arches | awk -v a="$name" '$1 == a')
        if [ -z "$line" ]; then
            result "$name" "FAIL unknown target"
            return
        fi
        local arch triplet qemu
        read -r arch triplet qemu _ <<<"$line"
        # -L: where qemu finds the target's ld.so and libc (the cross sysroot);
        # explicit, so no binfmt_misc registration is needed.
        build_and_run "$arch" "$arch" "$triplet-gcc" "$qemu -L /usr/$triplet"
        ;;
    esac
}

ALL_TARGETS="host host-asan $(cross_arches | awk '{print $1}' | tr '\n' ' ')musl-x86_64 mips-musl"
TARGETS=${*:-$ALL_TARGETS}

# --- run them, two at a time (the machine has 2 cores) ------------------------
t_all=$(now)
JOBS=${PROCNET_CROSS_JOBS:-$(nproc)}
for t in $TARGETS; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    target "$t" &
done
wait

# --- report, in a fixed order --------------------------------------------------
worst=0
for t in $TARGETS; do
    r=$(cat "$OUT/$t.result" 2>/dev/null || echo "FAIL no result")
    status=${r%% *}
    detail=${r#* }
    case $status in
    PASS)
        echo "cross $t: $detail"
        ;;
    UNAVAILABLE)
        echo "cross $t: UNAVAILABLE ($detail)"
        [ $worst = 0 ] && worst=3
        ;;
    *)
        echo "cross $t: FAILED: $detail"
        # show what failed, not the whole log
        if [ -f "$OUT/$t.log" ]; then
            grep -E '^FAIL|error|ERROR|runtime error|Sanitizer' "$OUT/$t.log" | head -20 | sed 's/^/    /'
            echo "    (full log: $OUT/$t.log)"
        fi
        worst=1
        ;;
    esac
done
echo "cross C tier: done in $(since "$t_all")"
exit $worst
