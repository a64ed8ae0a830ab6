#!/usr/bin/env bash
# The one-shot GPU check of issue 28 (what it runs: tools/gpu_check.py). On the lent GPU machine, from the
# repository root, with .whl/ carried (the wheels of fvcore, iopath, yacs, termcolor, submitit, decord, and
# the generated videos in .whl/gpu_data/):
#     bash tools/gpu_check.sh                  # writes gpu_check.{json,md,tar.gz} and console.log into $OUT
# Dry run on a CPU machine: PYTHON=.venv/bin/python OUT=/tmp/out bash tools/gpu_check.sh --device cpu
# Extra arguments go to tools/gpu_check.py (--help).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
export OUT PYTHONUNBUFFERED=1
mkdir -p "$OUT"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$WHEELS"/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PYTHON" tools/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/console.log"
status=${PIPESTATUS[0]}
if [ ! -f "$OUT/gpu_check.tar.gz" ] && [ -d /tmp/gpu_check ]; then  # the script died before packing
    tar czf "$OUT/gpu_check.tar.gz" --exclude='*.pt' -C /tmp/gpu_check .
fi
exit "$status"
