#!/usr/bin/env bash
# Issue 14: one model for every σ_y — short runs at equal steps, decided on the embedded MNIST
# *validation* digits. Arms (paper mixture, batch 64, lr 4e-4, --mmse-share 0.25, one CPU thread
# each, side by side):
#   noise-invfussion, noise-palette — σ_y per example: half noiseless, half U(0, 0.2]
#                                     (--noise 0:0.2,zero=0.5), noise-aware inverse and σ_y embedding
#   share25 (from benchmarks/mmse_recipe.sh) — the same InvFussion recipe trained noiseless
# Then Table 8 at our scale (σ_y = 0.1: PSNR and FD of every method, with the linear MMSE) and
# one-call MMSE PSNR against σ_y ∈ {0, 0.025, 0.05, 0.1, 0.2}. The zero-shot rows run on
# UNCONDITIONAL (default: the shipped model, whose training split still held the validation digits).
#
#   bash benchmarks/noise_levels.sh [RUNS] [STEPS] [N] [OUT] [UNCONDITIONAL]
set -euo pipefail
RUNS=${1:-runs/ab}
STEPS=${2:-2000}
N=${3:-100}
OUT=${4:-benchmarks/results/noise-levels}
UNCONDITIONAL=${5:-mnist32-unconditional}
mkdir -p "$RUNS" "$OUT"
export OMP_NUM_THREADS=1

train() {  # NAME, extra flags...
  local name=$1; shift
  local resume=(); [ -e "$RUNS/$name/checkpoints/latest" ] && resume=(--resume)
  invfussion train --steps "$STEPS" --batch-size 64 --lr 4e-4 --warmup-steps 200 --log-every 50 \
    --sample-every 1000 --checkpoint-every 500 --keep-checkpoints 10 --num-workers 0 --mmse-share 0.25 \
    --out "$RUNS/$name" "${resume[@]}" "$@" > "$RUNS/$name.log" 2>&1
}
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  train noise-invfussion --noise 0:0.2,zero=0.5 &
  train noise-palette --conditioning palette --noise 0:0.2,zero=0.5 &
  wait
fi

stem=$(printf "step-%07d.safetensors" "$STEPS")
models=(inv="$RUNS/noise-invfussion/checkpoints/$stem" pal="$RUNS/noise-palette/checkpoints/$stem"
        quiet="$RUNS/share25/checkpoints/$stem" unc="$UNCONDITIONAL")
for sigma in 0 0.025 0.05 0.1 0.2; do
  invfussion evaluate --models "${models[@]}" \
    --methods inv:mmse pal:mmse quiet:mmse inv:lmmse \
    --degradations "motion-blur:stride=2,noise=$sigma" "motion-blur:stride=4,noise=$sigma" "matrix:rows=64,noise=$sigma" \
    --num-images "$N" --split validation --out "$OUT/mmse-sigma-$sigma.json" | grep '^|'
done
invfussion evaluate --models "${models[@]}" \
  --methods inv:posterior pal:posterior inv:mmse pal:mmse inv:lmmse unc:ddrm unc:ddnm unc:pigdm \
  --degradations motion-blur:noise=0.1 inpaint-patches:noise=0.1 matrix:noise=0.1 \
  --num-images "$N" --split validation --out "$OUT/table8.json" | grep '^|'
