#!/usr/bin/env bash
# The project's one prepared GPU check, for a session lent a GPU machine (about 15 minutes of device time in all).
#
#   here, once:  echo /.whl/ >> .git/info/exclude
#                python3 -m pip download --no-deps --only-binary=:all: -d .whl fastcore==1.14.5
#   device run:  command "bash tools/gpu_check.sh", carry [".whl"], timeout_s 540
#
# The device image has torch, torchvision, timm, safetensors, matplotlib and scikit-learn; fastcore travels as a
# wheel. It writes under $OUT (default ./gpu_out): benchmark_gpu.json (copy it to figures/ and fill the README's
# performance row from it), paths_gpu.json (one MLO-MAE iteration timed by every solver path of 30_benchmark's PATHS at
# ViT-B/2, batch 128, with its peak memory: the fused first-order paths run with PyTorch's fused attention kernels, only
# kind='exact' with the math kernel; a forward-mode T path that a fused kernel refuses says so in one line of
# paths.log and falls back to the math kernel for that pass), and a 30-iteration paper-preset MLO-MAE run on cifar10_mini.
# DEVICE=cpu runs the same script here as a dry run.
set -uo pipefail
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
if [ "$DEVICE" = cuda ]; then nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv; fi
quick=(); [ "$DEVICE" = cpu ] && quick=(--quick --threads 1)
echo "== benchmark"; time python3 -m mlo_mae.benchmark --device "$DEVICE" --profile "${quick[@]}" --out "$OUT/benchmark_gpu.json" 2>&1 | tee "$OUT/benchmark.log"
echo "== every solver path, one iteration each (default, forward-mode T path, Eq. 6 reuse, kind='exact')"
paths=(--settings cifar); [ "$DEVICE" = cpu ] && paths=(--settings micro --threads 1)
time python3 -m mlo_mae.benchmark --device "$DEVICE" "${paths[@]}" --steps 2 --warmup 1 --no-check --no-tf32 --paths --flops cifar \
  --out "$OUT/paths_gpu.json" 2>&1 | tee "$OUT/paths.log" | grep -v '^{' ; grep -q '"kind": "paths"' "$OUT/paths_gpu.json" || echo "paths: FAILED"
echo "== paper preset, 30 iterations"
preset=(--preset paper); [ "$DEVICE" = cpu ] && preset=(--preset smoke)
time python3 -m mlo_mae.train --dataset cifar10_mini "${preset[@]}" --max_steps 30 --epochs 100 --checkpoint_every 1000 \
  --device "$DEVICE" --progress false --num_workers 0 --out_dir "$OUT/run" 2>&1 | tail -3 | tee "$OUT/train.log"
tail -n 2 "$OUT/run/metrics.jsonl" > "$OUT/last_metrics.jsonl" 2>/dev/null
rm -rf "$OUT/run"   # the weights are 0.4 GB: only the logs come back
ls -la "$OUT"
