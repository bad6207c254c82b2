#!/usr/bin/env bash
# Issue 14: one model for every σ_y — short runs at equal steps, decided on the embedded MNIST
# *validation* digits. Arms (paper mixture, batch 64, lr 4e-4, --mmse-share 0.25, one CPU thread
# each, side by side):
#   noise-invfussion, noise-palette — σ_y per example: half noiseless, half U(0, 0.2]
#                                     (--noise 0:0.2,zero=0.5), noise-aware inverse and σ_y embedding
#   share25 (from benchmarks/mmse_recipe.sh) — the same InvFussion recipe trained noiseless
# Then Table 8 at our scale (σ_y = 0.1: PSNR and FD of every method, with the linear MMSE) and
# one-call MMSE PSNR against σ_y ∈ {0, 0.025, 0.05, 0.1, 0.2}. The zero-shot rows run on
# UNCONDITIONAL (default: the shipped model, whose training split still held the validation digits);
# DPS and DAPS (1,000 network calls with gradients each) run on 20 of the digits.
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

source "$(dirname "$0")/ab_train.sh"
train() { ab_train "$@" --mmse-share 0.25; }
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  train noise-invfussion --noise 0:0.2,zero=0.5 &
  train noise-palette --conditioning palette --noise 0:0.2,zero=0.5 &
  wait
fi

stem=$(printf "step-%07d.safetensors" "$STEPS")
sweep=()
for sigma in 0 0.025 0.05 0.1 0.2; do
  sweep+=("motion-blur:stride=2,noise=$sigma" "motion-blur:stride=4,noise=$sigma" "matrix:rows=64,noise=$sigma")
done
table8=(motion-blur:noise=0.1 inpaint-patches:noise=0.1 matrix:noise=0.1)
common=(--num-images "$N" --split validation)
evaluate() {  # FILE, KEY=MODEL, methods...  (one results file per model: cached independently)
  local file=$1 model=$2; shift 2
  invfussion evaluate --models "$model" --methods "$@" "${common[@]}" --out "$OUT/$file" > /dev/null
}
for arm in inv:noise-invfussion pal:noise-palette quiet:share25; do
  key=${arm%%:*}; run=${arm#*:}
  evaluate "sweep-$key.json" "$key=$RUNS/$run/checkpoints/$stem" "$key:mmse" --degradations "${sweep[@]}"
done
evaluate sweep-lmmse.json "pal=$RUNS/noise-palette/checkpoints/$stem" pal:lmmse --degradations "${sweep[@]}"
for arm in inv:noise-invfussion pal:noise-palette; do
  key=${arm%%:*}; run=${arm#*:}
  evaluate "table8-$key.json" "$key=$RUNS/$run/checkpoints/$stem" "$key:posterior" "$key:mmse" --degradations "${table8[@]}"
done
evaluate table8-lmmse.json "pal=$RUNS/noise-palette/checkpoints/$stem" pal:lmmse --degradations "${table8[@]}"
evaluate table8-unc.json "unc=$UNCONDITIONAL" unc:ddrm unc:ddnm unc:pigdm --degradations "${table8[@]}"
for m in dps daps; do  # 1,000 network calls with gradients per digit: 20 digits
  invfussion evaluate --models "unc=$UNCONDITIONAL" --methods "unc:$m" --degradations "${table8[@]}" \
    --num-images 20 --split validation --out "$OUT/table8-n20-$m.json" > /dev/null
done
python benchmarks/print_results.py --merge "$OUT"/sweep-*.json
python benchmarks/print_results.py --merge "$OUT"/table8-{inv,pal,lmmse,unc}.json
python benchmarks/print_results.py --merge "$OUT"/table8-n20-*.json
