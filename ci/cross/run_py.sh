#!/usr/bin/env bash
# ci/cross/run_py.sh -- the Python tier: build the real cffi extension for
# foreign CPUs and run the package's pytest suite under qemu-user with that
# CPU's own CPython.
#
#   bash ci/cross/run_py.sh                 # aarch64 armhf s390x
#   bash ci/cross/run_py.sh armhf           # just one
#
# Per arch:
#   1. sysroot: bookworm's CPython 3.11 + python3-cffi-backend + pytest (and
#      their dependency closure, libc included) for that arch, fetched with a
#      *private* apt state (its own lists, empty dpkg status, own archive
#      cache) so the host's dpkg is never touched (no dpkg --add-architecture),
#      and unpacked with dpkg-deb -x. Headers from libpython3.11-dev.
#   2. extension, one of two routes (PROCNET_CROSS_PY_BUILD):
#      wheel (default): a real foreign wheel. crossenv (PyPI) makes a venv
#        whose Python reports the foreign platform (sysconfig from the
#        sysroot's _sysconfigdata, CC=<triplet>-gcc), and `cross-pip wheel`
#        runs the project's own setup.py/pyproject build. The wheel is
#        unpacked into a staging dir, so the suite also proves the wheel's
#        contents (package list, package data), not just the C.
#      manual: the cffi C file is emitted on the host with the sources,
#        macros and flags procnet/_build_ffi.py gives setuptools, compiled
#        with the cross gcc into procnet/_core<EXT_SUFFIX> in a staging copy
#        of the tree. Independent of crossenv/setuptools; for when those are
#        the thing in doubt.
#   3. pytest under qemu-<arch>-static -L <sysroot>. A tiny host wrapper
#      becomes sys.executable (qemu's -0 sets argv[0]), so tests that re-run
#      sys.executable in a subprocess work without binfmt_misc.
#
# Big-endian arches (s390x) run without the tests marked `live`: under
# qemu-user the kernel is the host's little-endian one, so its /proc/net text
# is not in the guest's byte order; that is an emulation artefact, and the
# fixture-tree tests cover big-endian decoding. Printed, never silent.
#
# Exit: 0 all passed, 1 something failed, 3 nothing failed but some arch
# unavailable. Downloads are cached under $CROSS_CACHE (warm runs reuse them).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 1

PY_ARCHES=${*:-"aarch64 armhf s390x"}
PY_BUILD=${PROCNET_CROSS_PY_BUILD:-wheel}
PY_VER=3.11
# Runtime closure (apt resolves the dependencies, libc6 included) ...
PY_PKGS="python3.11-minimal libpython3.11-stdlib python3-cffi-backend
         python3-pytest python3-pytest-benchmark python3-hypothesis"
# ... and the headers (no dependencies wanted: the cross gcc has its libc).
PY_DEV_PKGS="libpython3.11-dev"
APT_TRIES=4
INDEX_MAX_AGE_MIN=${PROCNET_CROSS_INDEX_MAX_AGE_MIN:-720}   # refresh lists after 12 h
PYTEST_TIMEOUT=${PROCNET_CROSS_PYTEST_TIMEOUT:-1500}

OUT=$CROSS_BUILD/py
mkdir -p "$OUT"
rm -f "$OUT"/*.result
result() { echo "$2" >"$OUT/$1.result"; }

# ---------------------------------------------------------------------------
# 1. sysroot
# ---------------------------------------------------------------------------

# apt-get (or, with APT_TOOL=apt-cache, apt-cache) with everything private
# to $1, a directory under the cache.
apt_private() {
    local dir=$1 debarch=$2; shift 2
    "${APT_TOOL:-apt-get}" -q \
        -o APT::Architecture="$debarch" -o APT::Architectures::="$debarch" \
        -o Dir::State="$dir/state" -o Dir::State::status="$dir/status" \
        -o Dir::Cache="$dir/cache" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root \
        -o Acquire::Languages=none \
        "$@"
}

# The .deb files (absolute paths) that make up the sysroot, one per line.
# Decided by a simulated install against the private index, so only the
# versions the index names are unpacked, whatever else lies in the cache.
sysroot_debs() {
    local dir=$1 debarch=$2
    apt_private "$dir" "$debarch" install -s --no-install-recommends $PY_PKGS 2>/dev/null |
        # "Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [s390x]) []"
        sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*\[\([a-z0-9][a-z0-9]*\)\]).*/\1_\2_\3.deb/p' |
        sed 's/:/%3a/g' |
        sed "s|^|$dir/cache/archives/|"
    local p v
    for p in $PY_DEV_PKGS; do
        v=$(APT_TOOL=apt-cache apt_private "$dir" "$debarch" policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
        [ -n "$v" ] && [ "$v" != "(none)" ] && echo "$dir/dev/${p}_${v//:/%3a}_$debarch.deb"
    done
}

# Fetch (or reuse) everything for one arch; prints the sysroot path.
fetch_sysroot() {
    local debarch=$1
    local dir=$CROSS_CACHE/py-$debarch
    local root=$dir/sysroot
    mkdir -p "$dir/state/lists/partial" "$dir/cache/archives/partial" "$dir/dev"
    [ -f "$dir/status" ] || : >"$dir/status"    # empty: "nothing installed"

    local try delay=5 fresh=0 debs missing
    for try in $(seq 1 $APT_TRIES); do
        # The index: refresh when absent, old, or when the last try failed
        # (a stale index names .debs the mirror no longer has).
        if [ $fresh = 1 ] || [ -z "$(find "$dir/state/lists" -maxdepth 1 -name '*Packages*' -mmin -"$INDEX_MAX_AGE_MIN" 2>/dev/null | head -1)" ]; then
            log "py $debarch: apt-get update (private index)"
            if ! apt_private "$dir" "$debarch" update >"$dir/update.log" 2>&1; then
                log "py $debarch: update failed (try $try): $(grep -m1 '^E:' "$dir/update.log")"
                # A mirror mid-sync serves index files that do not match its
                # Release file: wait and ask again. On the last try, go on with
                # what apt kept (it resolves consistently within it).
                if [ $try -lt $APT_TRIES ]; then
                    fresh=1; sleep $delay; delay=$((delay * 2)); continue
                fi
            fi
        fi
        fresh=1
        debs=$(sysroot_debs "$dir" "$debarch")
        if [ -z "$debs" ]; then
            log "py $debarch: the index resolves no packages (try $try)"
        else
            missing=$(for f in $debs; do [ -f "$f" ] || echo "$f"; done)
            if [ -n "$missing" ]; then
                log "py $debarch: downloading $(echo "$missing" | wc -l) packages"
                apt_private "$dir" "$debarch" install --download-only -y --no-install-recommends \
                    $PY_PKGS >"$dir/download.log" 2>&1 || tail -3 "$dir/download.log" >&2
                for p in $PY_DEV_PKGS; do
                    (cd "$dir/dev" && apt_private "$dir" "$debarch" download "$p") \
                        >>"$dir/download.log" 2>&1 || tail -3 "$dir/download.log" >&2
                done
                missing=$(for f in $debs; do [ -f "$f" ] || echo "$f"; done)
            fi
            [ -z "$missing" ] && break
            log "py $debarch: still missing after try $try:"; echo "$missing" | head -5 >&2
        fi
        debs=""
        [ $try -lt $APT_TRIES ] && { sleep $delay; delay=$((delay * 2)); }
    done
    [ -n "$debs" ] || return 1

    # Unpack only when the set of .debs changed since the last unpack.
    local stamp
    stamp=$(echo "$debs" | sort | sha256sum | cut -c1-16)
    if [ "$(cat "$root/.stamp" 2>/dev/null)" != "$stamp" ]; then
        log "py $debarch: unpacking $(echo "$debs" | wc -l) packages into $root"
        rm -rf "$root"
        mkdir -p "$root"
        local f
        for f in $debs; do dpkg-deb -x "$f" "$root" || return 1; done
        # Debian ships no .pyc (postinst compiles them). Compiling on the host
        # is much faster than under qemu; a 3.11 pyc is valid for any 3.11.
        if [ "$("$TOOLS_VENV/bin/python" -c 'import sys; print(sys.implementation.cache_tag)')" = cpython-311 ]; then
            "$TOOLS_VENV/bin/python" -m compileall -q -j 0 -x 'lib2to3|test/|tests/|idlelib|turtledemo' \
                "$root/usr/lib/python$PY_VER" "$root/usr/lib/python3/dist-packages" >/dev/null 2>&1 || true
        fi
        echo "$stamp" >"$root/.stamp"
        # apt may keep superseded .debs: drop the ones no longer in the set
        for f in "$dir"/cache/archives/*.deb "$dir"/dev/*.deb; do
            case $'\n'"$debs"$'\n' in *$'\n'"$f"$'\n'*) ;; *) rm -f "$f";; esac
        done
    fi
    echo "$root"
}

# ---------------------------------------------------------------------------
# 2. the extension
# ---------------------------------------------------------------------------

# Emit procnet/_core's C once (it is the same for every arch) and record the
# compile arguments _build_ffi.py hands to setuptools: one per line.
emit_ffi() {
    local dir=$OUT/ffi
    rm -rf "$dir"; mkdir -p "$dir"
    "$TOOLS_VENV/bin/python" - "$dir" <<'PY' >"$dir/emit.log" 2>&1
import json, os, sys
out = sys.argv[1]
sys.path.insert(0, os.getcwd())
from procnet._build_ffi import ffibuilder
ffibuilder.emit_c_code(os.path.join(out, "_core.c"))
# set_source's arguments: (module name, source, source extension, kwds).
# Private in cffi, but stable for years; it is what setuptools compiles.
module, _src, _ext, kw = ffibuilder._assigned_source
assert module == "procnet._core", module
args = []
for name, value in kw.get("define_macros", []):
    args.append("-D%s=%s" % (name, value) if value is not None else "-D" + name)
for d in kw.get("include_dirs", []):
    args.append("-I" + d)
args += kw.get("extra_compile_args", [])
with open(os.path.join(out, "cflags"), "w") as f:
    f.write("\n".join(args) + "\n")
with open(os.path.join(out, "ldflags"), "w") as f:
    f.write("\n".join(kw.get("extra_link_args", [])) + "\n")
with open(os.path.join(out, "sources"), "w") as f:
    f.write("\n".join(kw.get("sources", [])) + "\n")
PY
}

# build_ext ARCH TRIPLET SYSROOT EXT_SUFFIX -> $OUT/ARCH/stage
build_ext() {
    local arch=$1 triplet=$2 root=$3 suffix=$4
    local dir=$OUT/$arch stage=$OUT/$arch/stage
    rm -rf "$dir"; mkdir -p "$dir"
    # A clean copy of the tree: the repo's procnet/ holds the host's build
    # products, which must not shadow (or be mistaken for) ours.
    copy_source "$stage"
    local cflags ldflags sources
    mapfile -t cflags <"$OUT/ffi/cflags"
    mapfile -t ldflags <"$OUT/ffi/ldflags"
    mapfile -t sources <"$OUT/ffi/sources"
    # -fPIC -shared: what setuptools adds for an extension. -idirafter: the
    # foreign Python headers go *after* the cross toolchain's own libc
    # headers; <triplet>/python3.11/pyconfig.h is Debian's per-arch config.
    "$triplet-gcc" -shared -fPIC "${cflags[@]}" \
        -idirafter "$root/usr/include/python$PY_VER" \
        -idirafter "$root/usr/include" -idirafter "$root/usr/include/$triplet" \
        "$OUT/ffi/_core.c" "${sources[@]}" "${ldflags[@]}" \
        -o "$stage/procnet/_core$suffix" >"$dir/build.log" 2>&1
}

# A clean copy of the source tree: no build/ (setuptools would reuse stale
# objects from it), no host build products, nothing written into the repo.
copy_source() {
    local dst=$1
    rm -rf "$dst"; mkdir -p "$dst"
    tar -C "$REPO_ROOT" --exclude=./.git --exclude=./build --exclude=./dist \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude='*.so' --exclude='*.o' \
        --exclude=./procnet/_core.c --exclude='./.venv*' -cf - . | tar -C "$dst" -xf -
}

# build_wheel ARCH TRIPLET SYSROOT DEBARCH -> $OUT/ARCH/stage (wheel unpacked)
build_wheel() {
    local arch=$1 triplet=$2 root=$3 debarch=$4
    local dir=$OUT/$arch stage=$OUT/$arch/stage
    local cenv=$CROSS_CACHE/crossenv-$debarch
    rm -rf "$dir"; mkdir -p "$dir/wheel"
    # The crossenv depends on the sysroot and the pins: rebuild when either moved.
    # os.uname().machine as the real machine reports it, which becomes the
    # wheel's platform tag; crossenv guesses armv8l for armhf, wrong there.
    local machine
    case $arch in armhf) machine=armv7l ;; powerpc) machine=ppc ;; mipsel) machine=mips ;; *) machine=$arch ;; esac
    local want
    want="$(cat "$root/.stamp") $machine $CROSSENV_BUILD_PINS"
    if [ "$(cat "$cenv/.stamp" 2>/dev/null)" != "$want" ]; then
        log "py $arch: creating crossenv"
        rm -rf "$cenv"
        "$TOOLS_VENV/bin/python" -m crossenv "$root/usr/bin/python$PY_VER" "$cenv" \
            --sysroot "$root" --cc "$triplet-gcc" --machine "$machine" >"$dir/crossenv.log" 2>&1 || return 1
        "$cenv/bin/build-pip" install -q --disable-pip-version-check $CROSSENV_BUILD_PINS \
            >>"$dir/crossenv.log" 2>&1 || return 1
        echo "$want" >"$cenv/.stamp"
    fi
    copy_source "$dir/src"
    # PROCNET_REQUIRE_NATIVE: setup.py must not fall back to a pure wheel.
    # --no-build-isolation --no-index: the build side is the crossenv's, as
    # prepared above; nothing is fetched here.
    (cd "$dir/src" && PROCNET_REQUIRE_NATIVE=1 PATH="$cenv/bin:$PATH" \
        "$cenv/bin/cross-pip" wheel --no-build-isolation --no-deps --no-index \
        --disable-pip-version-check -w "$dir/wheel" .) >"$dir/build.log" 2>&1 || return 1
    local whl
    whl=$(ls "$dir"/wheel/*.whl 2>/dev/null | head -1)
    [ -n "$whl" ] || { echo "no wheel produced" >>"$dir/build.log"; return 1; }
    # The stage: the source tree (tests/, benchmarks/, pyproject.toml for
    # pytest's options) with procnet/ replaced by exactly what the wheel holds.
    copy_source "$stage"
    rm -rf "$stage/procnet"
    "$TOOLS_VENV/bin/python" -m zipfile -e "$whl" "$stage" || return 1
    log "py $arch: built $(basename "$whl"): $(cd "$stage" && ls procnet/_core*.so 2>/dev/null)"
    basename "$whl" >"$dir/wheel.name"
}

# ---------------------------------------------------------------------------
# 3. run
# ---------------------------------------------------------------------------

# The foreign interpreter as a host executable: sys.executable points here.
make_wrapper() {
    local root=$1 qemu=$2
    cat >"$root/usr/bin/python$PY_VER-qemu" <<EOF
#!/bin/sh
# generated by ci/cross/run_py.sh: run the foreign python under qemu-user
exec $qemu -L "$root" -0 "$root/usr/bin/python$PY_VER-qemu" "$root/usr/bin/python$PY_VER" "\$@"
EOF
    chmod +x "$root/usr/bin/python$PY_VER-qemu"
    echo "$root/usr/bin/python$PY_VER-qemu"
}

# "127 passed, 2 skipped in 12.0s" -> "127 passed, 0 failed, 2 skipped"
pytest_counts() {
    local line=$1 p f e s
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | cut -d' ' -f1)
    f=$(grep -oE '[0-9]+ failed' <<<"$line" | cut -d' ' -f1)
    e=$(grep -oE '[0-9]+ errors?' <<<"$line" | cut -d' ' -f1)
    s=$(grep -oE '[0-9]+ skipped' <<<"$line" | cut -d' ' -f1)
    printf '%s passed, %s failed' "${p:-0}" "$(( ${f:-0} + ${e:-0} ))"
    [ -n "$s" ] && printf ', %s skipped' "$s"
}

one_arch() {
    local arch=$1 line triplet qemu debarch order
    line=$(cross_arches | awk -v a="$arch" '$1 == a')
    if [ -z "$line" ]; then result "$arch" "FAIL unknown arch"; return; fi
    read -r arch triplet qemu debarch order <<<"$line"
    local st; st=$(arch_state "$arch")
    if [ -n "$st" ] && [ "$st" != ok ]; then result "$arch" "UNAVAILABLE ${st#unavailable }"; return; fi

    local t0 t root suffix wrapper
    t0=$(now); t=$(now)
    if ! root=$(fetch_sysroot "$debarch"); then
        loud "cross-py $arch UNAVAILABLE: could not fetch bookworm's $debarch CPython packages"
        result "$arch" "UNAVAILABLE bookworm $debarch python packages could not be fetched"
        return
    fi
    local t_fetch; t_fetch=$(since "$t")

    wrapper=$(make_wrapper "$root" "$qemu")
    t=$(now)
    # Also a smoke test: the interpreter starts under qemu and has its backend.
    if ! suffix=$(PYTHONNOUSERSITE=1 timeout 120 "$wrapper" -c \
            'import sysconfig, _cffi_backend; print(sysconfig.get_config_var("EXT_SUFFIX"))' 2>"$OUT/$arch.smoke.log"); then
        result "$arch" "FAIL the $arch python does not start under qemu: $(tail -1 "$OUT/$arch.smoke.log")"
        return
    fi
    if [ "$PY_BUILD" = manual ]; then
        build_ext "$arch" "$triplet" "$root" "$suffix"
    else
        build_wheel "$arch" "$triplet" "$root" "$debarch"
    fi
    if [ $? != 0 ]; then
        local why
        why=$(grep -m1 -E 'error|Error' "$OUT/$arch/build.log" "$OUT/$arch/crossenv.log" 2>/dev/null ||
              tail -1 "$OUT/$arch/build.log" 2>/dev/null)
        result "$arch" "FAIL $PY_BUILD build: ${why:-see $OUT/$arch/}"
        return
    fi
    local t_build; t_build=$(since "$t")
    local what="$PY_BUILD build"
    [ -f "$OUT/$arch/wheel.name" ] && what=$(cat "$OUT/$arch/wheel.name")

    local stage=$OUT/$arch/stage marker=() note=""
    if [ "$order" = big ]; then
        marker=(-m "not live")
        note=" [live tests not run: little-endian host kernel under big-endian qemu]"
        log "py $arch: big-endian guest on a little-endian kernel: running -m 'not live'"
    fi
    # `cc`/`gcc` for the tests: on a real $arch machine they make $arch code
    # (benchmarks/conftest.py builds a helper .so it loads with ctypes).
    local bin=$OUT/$arch/bin c
    mkdir -p "$bin"
    for c in cc gcc; do
        printf '#!/bin/sh\nexec %s "$@"\n' "$triplet-gcc" >"$bin/$c"
        chmod +x "$bin/$c"
    done
    t=$(now)
    local rc=0
    # Run from the staging copy, so `import procnet` finds the cross-built
    # core (python -m puts the cwd first on sys.path), never the repo's.
    # PYTEST_PLUGINS=pytest_qemu: skips, with the reason, the tests that need
    # NETLINK_SOCK_DIAG, which qemu-user cannot forward (see that file). An
    # env var, so nested pytest runs (the benchmark smoke test) get it too.
    # Emulation is ~5x slower: the leak and churn tests run shorter here (the
    # host tier runs them at full length).
    (cd "$stage" && PATH="$bin:$PATH" PYTHONNOUSERSITE=1 PROCNET_BACKEND='' \
        PROCNET_LEAK_SNAPSHOTS=4000 PROCNET_CHURN_SECONDS=4 PROCNET_EMULATED=qemu-user \
        PYTHONPATH="$stage:$CROSS_DIR" PYTEST_PLUGINS=pytest_qemu \
        timeout -k 10 "$PYTEST_TIMEOUT" "$wrapper" -m pytest tests -q -p no:cacheprovider \
        "${marker[@]}") >"$OUT/$arch.log" 2>&1 || rc=$?
    local t_test; t_test=$(since "$t")
    local summary
    summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)|no tests ran' "$OUT/$arch.log" | tail -1)
    local times
    times="$what; fetch $t_fetch, build $t_build, pytest $t_test, total $(since "$t0")"
    if [ $rc = 0 ] && [ -n "$summary" ]; then
        result "$arch" "PASS $(pytest_counts "$summary")$note ($times)"
    elif [ $rc = 124 ] || [ $rc = 137 ]; then
        result "$arch" "FAIL pytest timed out after ${PYTEST_TIMEOUT}s ($times)"
    else
        result "$arch" "FAIL $(pytest_counts "$summary") (pytest exit $rc; $times)"
    fi
}

t_all=$(now)
st=$(arch_state python-tools)
if [ -n "$st" ] && [ "$st" != ok ]; then
    for a in $PY_ARCHES; do result "$a" "UNAVAILABLE ${st#unavailable }"; done
elif [ "$PY_BUILD" = manual ] && ! emit_ffi; then
    for a in $PY_ARCHES; do result "$a" "FAIL could not emit the cffi C code: $(tail -1 "$OUT/ffi/emit.log")"; done
else
    # Two chains side by side (2 cores): the little-endian arches one after
    # the other, because their live tests compare against the whole host's
    # socket tables, which a second live suite alongside would disturb; and
    # the big-endian ones, which run no live tests, next to them.
    le=""; be=""
    for a in $PY_ARCHES; do
        case "$(cross_arches | awk -v a="$a" '$1 == a { print $5 }')" in
        big) be+=" $a" ;;
        *)   le+=" $a" ;;
        esac
    done
    ( for a in $le; do one_arch "$a"; done ) &
    ( for a in $be; do one_arch "$a"; done ) &
    wait
fi

worst=0
for a in $PY_ARCHES; do
    r=$(cat "$OUT/$a.result" 2>/dev/null || echo "FAIL no result")
    status=${r%% *}; detail=${r#* }
    case $status in
    PASS) echo "cross-py $a: $detail" ;;
    UNAVAILABLE) echo "cross-py $a: UNAVAILABLE ($detail)"; [ $worst = 0 ] && worst=3 ;;
    *)
        echo "cross-py $a: FAILED: $detail"
        for f in "$OUT/$a.log" "$OUT/$a/build.log"; do
            [ -s "$f" ] || continue
            grep -E '^(FAILED|ERROR)|error:|Error' "$f" | head -15 | sed 's/^/    /'
            echo "    (full log: $f)"
        done
        worst=1
        ;;
    esac
done
echo "cross Python tier: done in $(since "$t_all")"
exit $worst
