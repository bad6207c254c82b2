#!/usr/bin/env bash
# Is the MNIST comparison limited by training length? (BENCHMARKS.md, "What matches the paper")
# Evaluates InvFussion at its step-1000 checkpoint and at the end of its run, and ΠGDM on the
# unconditional model's step-1000 checkpoint and final weights, on motion blur and the random matrix.
# RUNS is the --runs folder of benchmarks/train_mnist_models.py (its checkpoints are not shipped).
#
#   bash benchmarks/training_length.sh [RUNS] [OUT_DIR]
set -euo pipefail
RUNS=${1:-runs/cpu2}
OUT=${2:-benchmarks/results}
INV=$RUNS/mnist32-invfussion
UNC=$RUNS/mnist32-unconditional
invfussion evaluate --models inv1000=$INV/checkpoints/step-0001000.safetensors inv1771=$INV \
  --methods inv1000:posterior inv1000:mmse inv1771:posterior inv1771:mmse --degradations motion-blur matrix \
  --num-images 100 --out "$OUT/training_length.json"
invfussion evaluate --models unc1000=$UNC/checkpoints/step-0001000.safetensors unc2696=$UNC \
  --methods unc1000:pigdm unc2696:pigdm --degradations motion-blur matrix \
  --num-images 100 --out "$OUT/training_length_pigdm.json"
