#!/usr/bin/env bash
# The MNIST reproduction of the paper's comparison (BENCHMARKS.md "MNIST benchmark"): three
# models on one backbone, InvFussion / Palette posterior + MMSE and zero-shot samplers on the
# unconditional model, on the balanced embedded test digits. Every cell is cached in the results
# JSON files (Table 1: one per degradation family, OUT_DIR/table1/FAMILY.json with ':' and '=' as
# '_'), so an interrupted
# run resumes and rerunning prints the tables again without recomputing. JOBS evaluations run at
# once (one thread each); DEVICE (default cpu) is where they run.
#
#   [DEVICE=cuda] bash benchmarks/mnist_benchmark.sh [NUM_IMAGES] [OUT_DIR] [JOBS]
set -euo pipefail
N=${1:-100}
OUT=${2:-benchmarks/results}
JOBS=${3:-1}
mkdir -p "$OUT/table1"
export DEVICE=${DEVICE:-cpu} OMP_NUM_THREADS=1 MODELS="invfussion=mnist32-invfussion palette=mnist32-palette unconditional=mnist32-unconditional"
FAMILIES="motion-blur inpaint-patches matrix matrix:noise=0.1 outpaint-box"

echo "## Table 1: restoration (N=$N test digits, 1 sample each)"
file() { echo "$OUT/table1/$(echo "$1" | tr ':=' '__')"; }
export -f file
printf '%s\n' $FAMILIES | N=$N OUT=$OUT xargs -P "$JOBS" -I{} bash -c 'f=$(file "{}"); invfussion evaluate --device $DEVICE \
  --models $MODELS --degradations "{}" --num-images "$N" --out "$f.json" \
  --methods invfussion:posterior invfussion:mmse palette:posterior palette:mmse \
            unconditional:ddrm unconditional:ddnm unconditional:pigdm > "$f.log" 2>&1 \
  || { echo "evaluation of {} failed; see $f.log" >&2; exit 255; }'
python benchmarks/print_results.py --merge $(for fam in $FAMILIES; do echo "$(file "$fam").json"; done)

echo "## Unconditional generation (zero operator), FD against the test digits"
invfussion evaluate --device $DEVICE --models $MODELS --degradations none --num-images 500 --out "$OUT/unconditional.json" \
  --methods invfussion:posterior palette:posterior unconditional:posterior

echo "## Cost and PSNR on motion blur, every method at its authors' budget (N=20)"
invfussion evaluate --device $DEVICE --models $MODELS --degradations motion-blur --num-images 20 --batch-size 20 \
  --out "$OUT/cost.json" \
  --methods invfussion:posterior invfussion:mmse unconditional:dps unconditional:ddrm unconditional:ddnm \
            unconditional:pigdm unconditional:daps
