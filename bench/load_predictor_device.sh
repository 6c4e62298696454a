#!/bin/bash
# The request-load predictor's device measurements in ONE call (a machine start costs minutes of device time):
#   1. GPU: `predict` incl. tokenization on real ShareGPT prompts (`real`, and `real-par`: tokenization on a pool,
#      parallel to the forward) at the serving length 128 and the checkpoint's full 512, beside `engine`;
#   2. the device's CPU pinned to 2 cores (taskset -c 0,1, 2 torch/ORT threads), ONNX int8: the 2-core CPU figure;
#   3. optional (SEEDS="1 2"): the shipped recipe retrained with other seeds, each checkpoint (7.5 MB) and its raw
#      validation/test outputs (for models/request_load/ensemble_study.py) copied to $OUT.
# Before the call, on this machine (writes the ignored bundle: fp16 encoder copy + response-free prompt files):
#   python -m models.request_load.device_bundle --data ../shared/data/prompts/alpaca_eval_pairs.jsonl.gz \
#       --data ../shared/data/prompts/sharegpt_pairs.jsonl.gz
# Then run(command="bash bench/load_predictor_device.sh", carry=[".devcarry"]); about 3 min without SEEDS, plus
# about 1.5 min per seed on an H200.
set -u
BUNDLE=${BUNDLE:-.devcarry/load_predictor}
OUT=${OUT:-out/device}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH=$PWD
export PRESERVE_ENCODER_PATH=$PWD/$BUNDLE/encoder
D=$BUNDLE/data
nvidia-smi -L; nproc
python3 -c 'import torch, transformers, onnxruntime; print("torch", torch.__version__, "transformers", transformers.__version__, "onnxruntime", onnxruntime.__version__)'
B="python3 bench/bench_load_predictor.py --data $D/sharegpt_pairs.jsonl.gz --iters 5"
$B --device cuda --seconds 1 --seq 128 --batches 64 256 512 1024 --modes engine real real-par \
    --par-threads 8 --par-rows 64 --json "$OUT/gpu128.json" 2>&1 | grep -v Warn
$B --device cuda --seconds 1 --seq 512 --batches 256 512 --modes engine real real-par \
    --par-threads 8 --par-rows 64 --json "$OUT/gpu512.json" 2>&1 | grep -v Warn
taskset -c 0,1 $B --device cpu --threads 2 --int8 --backend onnx --seq 128 --batches 8 32 128 --seconds 2 \
    --modes engine real real-par --par-threads 2 --par-rows 8 --json "$OUT/cpu2.json" 2>&1 | grep -v Warn
if [ -n "${SEEDS:-}" ]; then  # the shipped checkpoint's raw outputs too, so every ensemble member is GPU fp32
  python3 -m models.request_load.ensemble_study --raw-only --device cuda --cache "$OUT" \
      --data $D/alpaca_eval_pairs.jsonl.gz --data $D/sharegpt_pairs.jsonl.gz models/request_load/checkpoints/default 2>&1 | grep -v Warn
fi
for seed in ${SEEDS:-}; do
  t0=$SECONDS
  python3 -m preserve_cli.main load-predictor train --data $D/alpaca_eval_pairs.jsonl.gz \
      --data $D/sharegpt_pairs.jsonl.gz --out "$BUNDLE/seed$seed" --epochs 10 --device cuda --seed "$seed" \
      --lr-soft 1e-2 --lr-head 2e-3 --lr-layer 2e-4 --encoder-layers 3 --train-last-layers 2 2>&1 | grep -v Warn | tail -12
  echo "train seed $seed: $((SECONDS - t0)) s"
  tar -C "$BUNDLE" -czf "$OUT/seed$seed.tgz" "seed$seed"
  python3 -m models.request_load.ensemble_study --raw-only --device cuda --cache "$OUT" \
      --data $D/alpaca_eval_pairs.jsonl.gz --data $D/sharegpt_pairs.jsonl.gz "$BUNDLE/seed$seed" 2>&1 | grep -v Warn
done
ls -la "$OUT"
