#!/usr/bin/env bash
# The GPU check in one call on the lent GPU machine (bench/README.md, "GPU check"): install the wheels that travel
# in .whl/ into a private folder, run bench/gpu_check.py on the CIFAR archive in .gpudata/, and put what comes back
# into $OUT: summary.json, summary.md, gpu_check.log and gpu_check.tar.gz (the CIFAR run folders, data_pipeline.json).
#   prepare:   .venv/bin/python bench/gpu_prepare.py --slim   (makes .whl/ and .gpudata/, leaves out the checkpoints the check
#              does not read, refuses over the 64 MiB a call carries; bench/README.md)
#   run tool:  command "bash bench/gpu_check.sh", carry [".whl", ".gpudata"], timeout_s 600
#   after:     .venv/bin/python bench/gpu_prepare.py --restore   (= git checkout -- checkpoints bench/partial)
#   rehearsal: PY=".venv/bin/python -S" MIMIC=/tmp/device_site WHL=/tmp/whl311 OUT=/tmp/gpu_out bash bench/gpu_check.sh --dry-run
# Extra arguments go to gpu_check.py (e.g. --parts features,ratio --cifar-s 60).
set -u
PY=${PY:-python3}; WHL=${WHL:-.whl}; SITE=${SITE:-/tmp/bsgate_site}; OUT=${OUT:-/tmp/gpu_check_out}; RES=${RES:-/tmp/gpu_check}
mkdir -p "$OUT" "$RES"
PYTHONPATH="${MIMIC:-}" $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHL"/*.whl || { echo "gpu_check.sh: wheel install failed"; exit 3; }
export PYTHONPATH="$SITE:$PWD${MIMIC:+:$MIMIC}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# the check keeps to its --budget-s (530 s); `timeout` guarantees the packing below runs inside the tool's 600 s
timeout -k 5 "${CHECK_S:-565}" $PY bench/gpu_check.py --out "$RES" "$@" 2>&1 | tee "$OUT/gpu_check.log"; rc=${PIPESTATUS[0]}
cp "$RES"/summary.json "$RES"/summary.md "$OUT"/ 2>/dev/null
tar czf "$OUT/gpu_check.tar.gz" -C "$RES" . && ls -la "$OUT"
exit $rc
