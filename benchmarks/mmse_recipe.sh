#!/usr/bin/env bash
# Issue 13: which recipe trains the one-call MMSE end — A/B runs at equal steps from scratch,
# decided on the embedded MNIST *validation* digits (never the test digits), plus the paper's
# Table 7 at our scale (a dedicated MMSE model of the same architecture and steps).
#
#   bash benchmarks/mmse_recipe.sh [RUNS] [STEPS] [N] [OUT]
#
# Arms (InvFussion, paper mixture, batch 64, lr 4e-4, one CPU thread each, side by side):
#   share0  — today's recipe (EDM2 log-normal σ only)
#   share25 — 25% of the conditional examples trained at the one-call MMSE end (--mmse-share 0.25)
#   share50 — the same with 50%
#   mmse    — a dedicated MMSE model (--objective mmse)
# Runs that exist are continued (--resume) up to STEPS. Evaluation: N validation digits per
# family, one-call MMSE, one posterior sample, the mean of 8 posterior samples, and the linear
# MMSE floor; cells are cached in OUT/<arm>.json (delete them to recompute); ARMS="share0 share25"
# evaluates some arms only.
set -euo pipefail
RUNS=${1:-runs/ab}
STEPS=${2:-2000}
N=${3:-100}
OUT=${4:-benchmarks/results/mmse-recipe}
mkdir -p "$RUNS" "$OUT"
export OMP_NUM_THREADS=1

source "$(dirname "$0")/ab_train.sh"
train() { ab_train "$@" --noise 0; }
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  train share0 --mmse-share 0 &
  train share25 --mmse-share 0.25 &
  wait
  train share50 --mmse-share 0.5 &
  train mmse --objective mmse &
  wait
fi

stem=$(printf "step-%07d.safetensors" "$STEPS")
common=(--degradations motion-blur:stride=4 matrix:rows=64 --num-images "$N" --split validation)
for arm in ${ARMS:-share0 share25 share50 mmse}; do  # one results file per arm: cached independently
  model=(--models "$arm=$RUNS/$arm/checkpoints/$stem")
  if [ "$arm" = mmse ]; then
    invfussion evaluate "${model[@]}" --methods "$arm:mmse" "${common[@]}" --out "$OUT/$arm.json" > /dev/null
    continue
  fi
  extra=(); [ "$arm" = share0 ] && extra=("$arm:lmmse")
  invfussion evaluate "${model[@]}" --methods "$arm:mmse" "$arm:posterior" "${extra[@]}" "${common[@]}" \
    --out "$OUT/$arm.json" > /dev/null
  invfussion evaluate "${model[@]}" --methods "$arm:posterior-mean" "${common[@]}" --samples-per-image 8 \
    --out "$OUT/$arm-mean-of-8.json" > /dev/null
done
python benchmarks/print_results.py --merge "$OUT"/*.json
