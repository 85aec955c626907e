#!/usr/bin/env bash
# What can be checked of the wheels here without Docker:
#  - cibuildwheel.toml selects manylinux+musllinux x 5 archs x every CPython >= 3.9;
#  - an x86_64 wheel built strictly (PROCNET_REQUIRE_NATIVE=1) carries the C core,
#    and auditwheel can place it on a manylinux tag;
#  - without a C compiler the build falls back to pure Python, but not when strict;
#  - without clang the wheel's core still embeds the committed BPF object, and the
#    sdist carries the objects (csrc/bpf/task_sockets_bpf{el,eb}.h).
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
# No clang (failing stubs first on PATH, as on most machines): the committed object serves.
mkdir -p "$work/noclang"
for c in clang clang-14 clang-15 clang-16 clang-17 clang-18 clang-19; do
  printf '#!/bin/sh\nexit 1\n' >"$work/noclang/$c"; chmod +x "$work/noclang/$c"
done
PATH="$work/noclang:$PATH" PROCNET_CLANG=/bin/false PROCNET_REQUIRE_NATIVE=1 \
  "$pip" wheel -q --no-cache-dir --no-deps -w "$work/wheels" "$work/src"
whl=$(ls "$work"/wheels/procnet-*.whl)
# (grep -q on a here-string: in a pipe under pipefail its early exit can fail unzip)
grep -q 'procnet/_core\..*\.so' <<<"$(unzip -l "$whl")" || { echo "wheel has no C core: $whl"; exit 1; }
"$PY" - "$whl" <<'PY' || exit 1
import importlib.util, sys, zipfile
spec = importlib.util.spec_from_file_location("bb", "procnet/_build_bpf.py")
bb = importlib.util.module_from_spec(spec); spec.loader.exec_module(bb)
_, obj = bb.read_header("csrc/bpf/" + bb.generated_name("bpfel"))      # an x86_64 wheel
with zipfile.ZipFile(sys.argv[1]) as z:
    core = [n for n in z.namelist() if n.startswith("procnet/_core.")]
    if len(core) != 1 or obj not in z.read(core[0]):
        sys.exit("the wheel's core does not embed csrc/bpf/task_sockets_bpfel.h's object")
PY
"$work/venv/bin/python" -m build -q --sdist -o "$work/sdist" "$work/src" >/dev/null 2>&1 || { echo "sdist failed"; exit 1; }
listing=$(tar -tzf "$work"/sdist/procnet-*.tar.gz)
for f in pn_bpf_obj.h task_sockets_bpfel.h task_sockets_bpfeb.h task_sockets.bpf.c; do
  grep -q "/csrc/bpf/$f\$" <<<"$listing" || { echo "the sdist lacks csrc/bpf/$f"; exit 1; }
done
"$work/venv/bin/auditwheel" show "$whl"

# the fallback, and its strict refusal
rm -rf "$work/src/build"
env -u PROCNET_REQUIRE_NATIVE CC=/bin/false "$pip" wheel -q --no-cache-dir --no-deps -w "$work/pure" "$work/src" >/dev/null 2>&1 || { echo "non-strict build without a compiler failed"; exit 1; }
grep -q '_core\..*\.so' <<<"$(unzip -l "$work"/pure/procnet-*.whl)" && { echo "a compiler-less build shipped a core?"; exit 1; }
rm -rf "$work/src/build"
if CC=/bin/false PROCNET_REQUIRE_NATIVE=1 "$pip" wheel -q --no-cache-dir --no-deps -w "$work/strict" "$work/src" >/dev/null 2>&1; then
  echo "PROCNET_REQUIRE_NATIVE=1 did not make a compiler-less build fail"; exit 1
fi
echo "packaging: strict wheel built without clang has the core and the committed BPF object; sdist carries the objects; fallback to pure works; strict mode refuses it"
