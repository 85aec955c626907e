#!/usr/bin/env bash
# ci/bpf_check.sh -- the committed BPF objects (csrc/bpf/task_sockets_bpf{el,eb}.h)
# are what clang makes of their sources now.
#
#   bash ci/bpf_check.sh                         # with clang-14, as CI
#   PROCNET_CLANG=clang-19 bash ci/bpf_check.sh  # another clang: fails unless it made them
#
# 1. each object's recorded inputs-sha256 matches its sources and flags (no clang);
# 2. clang rebuilds both and the bytes must be identical. Bytes are reproducible
#    for one clang version wherever the tree lies (-fdebug-compilation-dir=.), not
#    across versions (DWARF names the producer, code generation moves): so the
#    objects are made with the clang CI installs, clang-14, which this checks.
# On failure: PROCNET_CLANG=clang-14 python3 procnet/_build_bpf.py --regenerate
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PROCNET_CLANG=${PROCNET_CLANG:-clang-14}
command -v "$PROCNET_CLANG" >/dev/null || { echo "bpf check: $PROCNET_CLANG is not installed"; exit 1; }

if ! "$PY" procnet/_build_bpf.py --check --rebuild; then
  echo "bpf check: FAILED; regenerate with: PROCNET_CLANG=$PROCNET_CLANG $PY procnet/_build_bpf.py --regenerate"
  exit 1
fi
echo "bpf check: csrc/bpf/task_sockets_bpfel.h and _bpfeb.h are what $("$PROCNET_CLANG" --version | head -1) makes of their sources"
