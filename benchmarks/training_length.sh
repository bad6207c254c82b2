#!/usr/bin/env bash
# Is the MNIST comparison limited by training length? (BENCHMARKS.md, "What matches the paper")
# Evaluates InvFussion at its step-1000 checkpoint and at the end of its run (invfinal), and ΠGDM on the
# unconditional model's step-1000 checkpoint and final weights, on motion blur and the random matrix;
# then the run's final weights against the shipped models (trained on a GPU with more images).
# RUNS is the --runs folder of benchmarks/train_mnist_models.py (its checkpoints are not shipped);
# RUNS/early-<conditioning>/ holds a copy of each run's step-1000 checkpoint (runs keep their last 3).
#
#   bash benchmarks/training_length.sh [RUNS] [OUT_DIR]
set -euo pipefail
RUNS=${1:-runs/cpu3}
OUT=${2:-benchmarks/results/previous-cpu90min}
INV=$RUNS/mnist32-invfussion
UNC=$RUNS/mnist32-unconditional
invfussion evaluate --models inv1000=$RUNS/early-invfussion/step-0001000.safetensors invfinal=$INV \
  --methods inv1000:posterior inv1000:mmse invfinal:posterior invfinal:mmse --degradations motion-blur matrix \
  --num-images 100 --out "$OUT/training_length.json"
invfussion evaluate --models unc1000=$RUNS/early-unconditional/step-0001000.safetensors uncfinal=$UNC \
  --methods unc1000:pigdm uncfinal:pigdm --degradations motion-blur matrix \
  --num-images 100 --out "$OUT/training_length_pigdm.json"
invfussion evaluate --models invfinal=$INV uncfinal=$UNC invshipped=mnist32-invfussion uncshipped=mnist32-unconditional \
  --methods invfinal:mmse invshipped:posterior invshipped:mmse uncshipped:pigdm --degradations motion-blur matrix \
  --num-images 100 --out "$OUT/training_length_shipped.json"
