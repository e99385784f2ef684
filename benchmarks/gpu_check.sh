#!/usr/bin/env bash
# The GPU checks in one run, sized for 8 minutes on one GPU: the CUDA tests (the CUDA precisions
# against the exact CPU frames, the CUDA model), then the default path (device auto: CUDA, backend
# auto, precision auto) against upstream's loop at 1280x720 and 1920x1080. JSON and logs in $OUT
# (default gpu_check/). On a machine without CUDA the tests skip and the default path runs on the CPU.
# Usage: benchmarks/gpu_check.sh   (PYTHON=... for another interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
status=0
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"; } > "$OUT/gpu.txt" 2>&1
"$PYTHON" -c "import json, torch; print(json.dumps({'torch': torch.__version__, 'cuda': torch.cuda.is_available(),
  'devices': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}))" > "$OUT/torch.json" || status=1
# 1. the CUDA tests (about 1 minute)
timeout 180 "$PYTHON" -m pytest -q -rs tests/test_determinism.py tests/test_unet_model.py \
    --junitxml "$OUT/cuda_tests.xml" > "$OUT/cuda_tests.txt" 2>&1 || status=1
tail -3 "$OUT/cuda_tests.txt"
# 2. the default path at 720p and 1080p, one round each, beside upstream's loop (about 5 minutes)
timeout 330 "$PYTHON" benchmarks/run.py --sizes 1280x720,1920x1080 --frames 100 --templates 50 --repeat 1 \
    --backends "" --no-presets --json "$OUT/default_path.json" > "$OUT/default_path.txt" 2>&1 || status=1
tail -8 "$OUT/default_path.txt"
echo "{\"status\": $status, \"out\": \"$OUT\"}" | tee "$OUT/summary.json"
exit $status
