# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# ci/cross/lib.sh -- shared settings and helpers for the cross tier.
# Sourced (not run) by install.sh, run_c.sh, run_py.sh and run.sh.
#
# Everything the tier needs is installed by install.sh; nothing here assumes
# a hand-prepared machine.

# Repository root: the parent of ci/cross/, wherever the clone lives.
CROSS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CROSS_DIR/../.." && pwd)

# Downloads that are worth keeping between runs on the same machine (Debian
# .debs for the foreign Python sysroots, the zig venv). Never inside the repo:
# CI clones afresh each time.
CROSS_CACHE=${PROCNET_CROSS_CACHE:-/var/cache/procnet-cross}
# Build outputs and the state file written by install.sh; throwaway.
CROSS_BUILD=${PROCNET_CROSS_BUILD:-/tmp/procnet-cross-build}
# install.sh writes one line per arch here: "<arch> ok" or "<arch> unavailable <why>".
CROSS_STATE=$CROSS_BUILD/toolchains.state

# The glibc cross targets. Columns:
#   arch  gnu-triplet  qemu-binary  debian-arch  byte-order
# The sysroot of each is /usr/<triplet> (from libc6-dev-<debian-arch>-cross),
# which is what qemu's -L needs to find the dynamic loader and libc.
CROSS_ARCHES="
aarch64 aarch64-linux-gnu   qemu-aarch64-static arm64   little
armhf   arm-linux-gnueabihf qemu-arm-static     armhf   little
mips    mips-linux-gnu      qemu-mips-static    mips    big
mipsel  mipsel-linux-gnu    qemu-mipsel-static  mipsel  little
s390x   s390x-linux-gnu     qemu-s390x-static   s390x   big
powerpc powerpc-linux-gnu   qemu-ppc-static     powerpc big
"

# Print the arch table without blank lines, for `while read` loops.
cross_arches() { printf '%s\n' "$CROSS_ARCHES" | sed '/^[[:space:]]*$/d'; }

# The cross packages one arch needs. The libc dev package is listed explicitly
# (gcc-<triplet> only Recommends it, and we install without recommends).
cross_pkgs_for() { # triplet debian-arch
    echo "gcc-$1 libc6-dev-$2-cross"
}

# Packages that every arch shares.
# linux-libc-dev: kernel UAPI headers for the musl-gcc build (see run_c.sh).
CROSS_COMMON_PKGS="qemu-user-static musl-tools binutils linux-libc-dev"

# Python used on the host for the tools venv. 3.11 on purpose: it matches the
# foreign Debian CPython (bookworm's 3.11), so .pyc files it precompiles into
# the foreign sysroots are valid there. Overridable.
HOST_PY=${PROCNET_HOST_PYTHON:-$(command -v python3.11 || command -v python3)}

# Host-side tools in a private venv, so the project's own environment is
# untouched: ziglang (the big-endian MIPS musl compiler), crossenv (builds the
# real foreign wheel) and cffi (emits the extension's C code for the manual
# route of the Python tier). cffi is pinned to the version of
# bookworm's python3-cffi-backend, which loads the module under qemu: the
# pair then matches what a Debian user building against python3-cffi gets.
TOOLS_VENV=$CROSS_CACHE/tools-venv
TOOLS_PINS="ziglang==0.14.1 cffi==1.15.1 pycparser==2.21 crossenv==1.6.2"
# What the crossenv's build side needs to run setup.py (--no-build-isolation):
# the same cffi pin, and a setuptools that satisfies pyproject's >=61.
CROSSENV_BUILD_PINS="cffi==1.15.1 pycparser==2.21 setuptools==65.5.0 wheel==0.45.1"

log()  { printf '[cross] %s\n' "$*" >&2; }
loud() {
    printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
    printf '!!! %s\n' "$@" >&2
    printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' >&2
}

# Wall-clock timer: `t0=$(now)` ... `log "took $(since $t0)"`.
now()   { date +%s.%N; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }

# Is a Debian package installed (and fully configured)?
deb_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

# Status of an arch from install.sh's state file: "ok", "unavailable ..." or "".
arch_state() {
    [ -f "$CROSS_STATE" ] || return 0
    awk -v a="$1" '$1 == a { $1 = ""; sub(/^ /, ""); print; exit }' "$CROSS_STATE"
}
