#!/usr/bin/env bash
# The MNIST reproduction of the paper's comparison (BENCHMARKS.md "MNIST benchmark"): three
# models on one backbone, InvFussion / Palette posterior + MMSE and zero-shot samplers on the
# unconditional model, on the balanced embedded test digits. Every cell is cached in the results
# JSON, so an interrupted run resumes; rerunning prints the tables again without recomputing.
#
#   bash benchmarks/mnist_benchmark.sh [NUM_IMAGES] [OUT_DIR]
set -euo pipefail
N=${1:-100}
OUT=${2:-benchmarks/results}
mkdir -p "$OUT"
MODELS="invfussion=mnist32-invfussion palette=mnist32-palette unconditional=mnist32-unconditional"
FAMILIES="motion-blur inpaint-patches matrix matrix:noise=0.1 outpaint-box"

echo "## Table 1: restoration (N=$N test digits, 1 sample each)"
invfussion evaluate --models $MODELS --degradations $FAMILIES --num-images "$N" --out "$OUT/table1.json" \
  --methods invfussion:posterior invfussion:mmse palette:posterior palette:mmse \
            unconditional:ddrm unconditional:ddnm unconditional:pigdm

echo "## Unconditional generation (zero operator), FD against the test digits"
invfussion evaluate --models $MODELS --degradations none --num-images 500 --out "$OUT/unconditional.json" \
  --methods invfussion:posterior palette:posterior unconditional:posterior

echo "## Cost and PSNR on motion blur, every method at its authors' budget (N=20)"
invfussion evaluate --models $MODELS --degradations motion-blur --num-images 20 --batch-size 20 \
  --out "$OUT/cost.json" \
  --methods invfussion:posterior invfussion:mmse unconditional:dps unconditional:ddrm unconditional:ddnm \
            unconditional:pigdm unconditional:daps
