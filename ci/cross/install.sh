#!/usr/bin/env bash
# ci/cross/install.sh -- install everything the cross tier needs, idempotently.
#
#   * glibc cross compilers + libc dev packages for every arch in lib.sh
#   * qemu-user-static (we call qemu-<arch>-static -L <sysroot> explicitly,
#     so binfmt_misc registration is never needed: CI machines may lack it)
#   * musl-tools (musl-gcc, x86_64 musl build)
#   * a private venv with ziglang (big-endian MIPS musl, OpenWrt-like) and
#     cffi (emits the extension's C for the Python tier), pinned in lib.sh
#
# Writes $CROSS_STATE: one line per target, "ok" or "unavailable <why>".
# A package the mirror does not carry is reported LOUDLY and its arch marked
# unavailable, never silently skipped. Exit status:
#   0  everything installed
#   3  some targets unavailable (the others are usable; see the state file)
#   4  nothing usable (no qemu): CROSS TIER UNAVAILABLE
set -uo pipefail
. "$(dirname "$0")/lib.sh"

export DEBIAN_FRONTEND=noninteractive
APT_TRIES=4

mkdir -p "$CROSS_BUILD" "$CROSS_CACHE"
t_all=$(now)

# --- which packages, for which targets ---------------------------------------
declare -A PKGS_OF          # arch -> its packages
read -ra want <<<"$CROSS_COMMON_PKGS"
while read -r arch triplet _qemu debarch _order; do
    PKGS_OF[$arch]=$(cross_pkgs_for "$triplet" "$debarch")
    read -ra more <<<"${PKGS_OF[$arch]}"
    want+=("${more[@]}")
done < <(cross_arches)

missing_now() {             # the wanted packages not installed yet
    local p
    for p in "${want[@]}"; do deb_installed "$p" || echo "$p"; done
}

has_candidate() {           # does the current apt index offer this package?
    local c
    c=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
    [ -n "$c" ] && [ "$c" != "(none)" ]
}

# --- apt: update + install with retries ---------------------------------------
# The mirror sometimes serves a stale or half-updated index (hash sum
# mismatches, 404s on .debs that the index still names). Each try refreshes
# the index and installs again; apt keeps what it already fetched.
declare -A NO_CANDIDATE
todo=$(missing_now)
if [ -z "$todo" ]; then
    log "apt: all $(( ${#want[@]} )) packages already installed"
else
    log "apt: to install: $(echo $todo)"
    t_apt=$(now)
    delay=5
    for try in $(seq 1 $APT_TRIES); do
        log "apt: try $try/$APT_TRIES: apt-get update"
        apt-get update -q >"$CROSS_BUILD/apt-update.log" 2>&1 \
            || log "apt: update failed (see $CROSS_BUILD/apt-update.log)"
        # Ask the index first: installing a list with one unknown name would
        # fail the whole list.
        avail=()
        NO_CANDIDATE=()
        for p in $(missing_now); do
            if has_candidate "$p"; then avail+=("$p"); else NO_CANDIDATE[$p]=1; fi
        done
        ok=1
        if [ ${#avail[@]} -gt 0 ]; then
            log "apt: try $try: apt-get install ${avail[*]}"
            if ! apt-get install -y -q --no-install-recommends "${avail[@]}" \
                    >"$CROSS_BUILD/apt-install.log" 2>&1; then
                ok=0
                log "apt: install failed; tail of log:"
                tail -5 "$CROSS_BUILD/apt-install.log" >&2
            fi
        fi
        # Done when everything is in, or when the only gaps are packages the
        # index does not have (re-asking a few times in case it was stale).
        if [ $ok = 1 ] && [ -z "$(missing_now)" ]; then break; fi
        if [ $try -lt $APT_TRIES ]; then
            log "apt: not complete; retrying in ${delay}s"
            sleep $delay
            delay=$((delay * 2))
        fi
    done
    log "apt: took $(since $t_apt)"
fi

# --- per-target state ---------------------------------------------------------
: >"$CROSS_STATE.tmp"
unavail=0
still=" $(missing_now | tr '\n' ' ') "
common_missing=""
for p in $CROSS_COMMON_PKGS; do
    case "$still" in *" $p "*) common_missing+=" $p";; esac
done

while read -r arch _triplet qemu _debarch _order; do
    why=""
    for p in ${PKGS_OF[$arch]} qemu-user-static; do
        case "$still" in *" $p "*)
            if [ -n "${NO_CANDIDATE[$p]:-}" ]; then why+=" $p(not in the mirror's index)"
            else why+=" $p(install failed)"; fi;;
        esac
    done
    # The package can be present yet the qemu binary not (renamed upstream).
    [ -z "$why" ] && ! command -v "$qemu" >/dev/null && why=" $qemu(binary not found)"
    if [ -n "$why" ]; then
        loud "cross $arch UNAVAILABLE:$why"
        echo "$arch unavailable$why" >>"$CROSS_STATE.tmp"
        unavail=1
    else
        echo "$arch ok" >>"$CROSS_STATE.tmp"
    fi
done < <(cross_arches)

# musl-gcc on the host (x86_64 musl)
if command -v musl-gcc >/dev/null; then
    echo "musl-x86_64 ok" >>"$CROSS_STATE.tmp"
else
    loud "cross musl-x86_64 UNAVAILABLE: musl-gcc missing (musl-tools)"
    echo "musl-x86_64 unavailable musl-tools" >>"$CROSS_STATE.tmp"
    unavail=1
fi

# --- host tools from PyPI (private venv, pinned) -------------------------------
t_tools=$(now)
tools_ok=0
# Already there with exactly these pins? (pip freeze spells them like TOOLS_PINS)
tools_current() {
    [ -x "$TOOLS_VENV/bin/python" ] || return 1
    local have p
    have=" $("$TOOLS_VENV/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null | tr '\n' ' ') "
    for p in $TOOLS_PINS; do
        case "$have" in *" $p "*) ;; *) return 1;; esac
    done
}
if tools_current; then
    tools_ok=1
    log "tools: $TOOLS_PINS already in $TOOLS_VENV"
else
    rm -rf "$TOOLS_VENV"
    delay=5
    for try in 1 2 3; do
        if "$HOST_PY" -m venv "$TOOLS_VENV" &&
           "$TOOLS_VENV/bin/python" -m pip install -q --disable-pip-version-check \
               $TOOLS_PINS >"$CROSS_BUILD/pip-tools.log" 2>&1; then
            tools_ok=1; break
        fi
        log "tools: pip install failed (try $try); tail:"; tail -3 "$CROSS_BUILD/pip-tools.log" >&2
        rm -rf "$TOOLS_VENV"; sleep $delay; delay=$((delay * 2))
    done
    log "tools: took $(since $t_tools)"
fi
if [ $tools_ok = 1 ] && deb_installed qemu-user-static; then
    echo "mips-musl ok" >>"$CROSS_STATE.tmp"
    echo "python-tools ok" >>"$CROSS_STATE.tmp"
else
    loud "cross mips-musl and Python tier UNAVAILABLE: $TOOLS_PINS from PyPI (or qemu-user-static) missing"
    echo "mips-musl unavailable pip-install-of-$(echo $TOOLS_PINS | tr ' ' ',')-failed" >>"$CROSS_STATE.tmp"
    echo "python-tools unavailable pip-install-of-$(echo $TOOLS_PINS | tr ' ' ',')-failed" >>"$CROSS_STATE.tmp"
    unavail=1
fi

mv "$CROSS_STATE.tmp" "$CROSS_STATE"
log "install: took $(since $t_all); state:"
sed 's/^/[cross]   /' "$CROSS_STATE" >&2

if [ -n "$common_missing" ] && case "$common_missing" in *qemu-user-static*) true;; *) false;; esac; then
    loud "CROSS TIER UNAVAILABLE: qemu-user-static could not be installed"
    exit 4
fi
[ $unavail = 0 ] || exit 3
exit 0
