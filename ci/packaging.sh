#!/usr/bin/env bash
# What can be checked of the wheels here without Docker:
#  - cibuildwheel.toml selects manylinux+musllinux x 5 archs x every CPython >= 3.9;
#  - an x86_64 wheel built strictly (PROCNET_REQUIRE_NATIVE=1) carries the C core,
#    and auditwheel can place it on a manylinux tag;
#  - without a C compiler the build falls back to pure Python, but not when strict.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m venv "$work/venv"
pip="$work/venv/bin/pip"
"$pip" install -q cibuildwheel auditwheel build

ids=$("$work/venv/bin/cibuildwheel" --print-build-identifiers --platform linux --config-file cibuildwheel.toml .)
for arch in x86_64 aarch64 armv7l ppc64le s390x; do
  for libc in manylinux musllinux; do
    for py in cp39 cp313; do
      grep -qx "$py-${libc}_$arch" <<<"$ids" || { echo "cibuildwheel.toml does not build $py-${libc}_$arch"; exit 1; }
    done
  done
done
! grep -q '^cp38-' <<<"$ids" || { echo "cibuildwheel.toml builds cp38"; exit 1; }
echo "cibuildwheel: $(wc -l <<<"$ids") identifiers, manylinux+musllinux x 5 archs from cp39"

mkdir -p "$work/src" && (cd "$work" && git -C "$OLDPWD" ls-files -z | (cd "$OLDPWD" && xargs -0 cp --parents -t "$work/src" --))
PROCNET_REQUIRE_NATIVE=1 "$pip" wheel -q --no-cache-dir --no-deps -w "$work/wheels" "$work/src"
whl=$(ls "$work"/wheels/procnet-*.whl)
unzip -l "$whl" | grep -q 'procnet/_core\..*\.so' || { echo "wheel has no C core: $whl"; exit 1; }
"$work/venv/bin/auditwheel" show "$whl"

# the fallback, and its strict refusal
rm -rf "$work/src/build"
env -u PROCNET_REQUIRE_NATIVE CC=/bin/false "$pip" wheel -q --no-cache-dir --no-deps -w "$work/pure" "$work/src" >/dev/null 2>&1 || { echo "non-strict build without a compiler failed"; exit 1; }
unzip -l "$work"/pure/procnet-*.whl | grep -q '_core\..*\.so' && { echo "a compiler-less build shipped a core?"; exit 1; }
rm -rf "$work/src/build"
if CC=/bin/false PROCNET_REQUIRE_NATIVE=1 "$pip" wheel -q --no-cache-dir --no-deps -w "$work/strict" "$work/src" >/dev/null 2>&1; then
  echo "PROCNET_REQUIRE_NATIVE=1 did not make a compiler-less build fail"; exit 1
fi
echo "packaging: strict wheel has the core; fallback to pure works; strict mode refuses it"
