#!/usr/bin/env bash
# The MNIST reproduction of the paper's comparison (BENCHMARKS.md "MNIST benchmark"): InvFussion /
# Palette posterior + one-call MMSE, the linear-MMSE floor and the zero-shot samplers on the
# unconditional model, on the balanced embedded test digits, every method at its authors' budget.
#
#   [DEVICE=cuda] [MODELS="invfussion=... palette=... unconditional=..."] [MMSE_MODEL=...] \
#     bash benchmarks/mnist_benchmark.sh [NUM_IMAGES] [OUT_DIR] [JOBS] [SUBSET]
#
# Tables (each cell cached in a results JSON, so an interrupted run resumes and a rerun only prints):
#   Table 1 / 3  noiseless: motion-blur, inpaint-patches, matrix; outpaint-box (out of distribution)
#   Table 8      σ_y = 0.1: the same three families
#     — OUT/table1/FAMILY.json (':' and '=' as '_'): InvFussion posterior and MMSE with their
#       consistent rows (--consistent), lmmse, Palette, DDRM, DDNM, ΠGDM on NUM_IMAGES digits;
#       OUT/table1/FAMILY-nSUBSET.json: DPS and DAPS (1,000 network calls with gradients) on the
#       first SUBSET balanced digits (default 100, a subset of the NUM_IMAGES), beside InvFussion's
#       posterior and MMSE and ΠGDM on the same digits
#   Table 7      the MMSE: one call, a dedicated MMSE model (MMSE_MODEL; skipped when unset), the
#                mean of 8 posterior samples (OUT/table7-*.json)
#   NFE          InvFussion's posterior against network calls: Heun 63 / 31 / 15, DPM-Solver++(2M) 15 / 9
#   Unconditional generation (zero operator), FD against the test digits; cost on motion blur.
# JOBS evaluations run at once (one thread each); DEVICE (default cpu) is where they run.
set -euo pipefail
N=${1:-100}
OUT=${2:-benchmarks/results}
JOBS=${3:-1}
SUBSET=${4:-100}
[ "$SUBSET" -le "$N" ] || SUBSET=$N
mkdir -p "$OUT/table1"
export DEVICE=${DEVICE:-cpu} OMP_NUM_THREADS=1 N OUT SUBSET
export MODELS=${MODELS:-"invfussion=mnist32-invfussion palette=mnist32-palette unconditional=mnist32-unconditional"}
NOISELESS="motion-blur inpaint-patches matrix outpaint-box"
NOISY="motion-blur:noise=0.1 inpaint-patches:noise=0.1 matrix:noise=0.1"

file() { echo "$OUT/table1/$(echo "$1" | tr ':=' '__')"; }
evaluate() {  # FILE, then evaluate's arguments; its log beside the file
  local f=$1; shift
  invfussion evaluate --device "$DEVICE" --models $MODELS --out "$f.json" "$@" >> "$f.log" 2>&1 \
    || { echo "evaluation into $f.json failed; see $f.log" >&2; return 255; }
}
family() {  # one degradation family: every method, cached in its own files
  local f; f=$(file "$1")
  evaluate "$f" --degradations "$1" --num-images "$N" --consistent --methods invfussion:posterior invfussion:mmse
  evaluate "$f" --degradations "$1" --num-images "$N" --methods invfussion:lmmse palette:posterior palette:mmse \
    unconditional:ddrm unconditional:ddnm unconditional:pigdm
  evaluate "$f-n$SUBSET" --degradations "$1" --num-images "$SUBSET" --methods invfussion:posterior invfussion:mmse \
    unconditional:pigdm unconditional:dps unconditional:daps
}
export -f file evaluate family
printf '%s\n' $NOISELESS $NOISY | xargs -P "$JOBS" -I{} bash -c 'family "{}"'

files() { local suffix=$1; shift; for fam in "$@"; do echo "$(file "$fam")$suffix.json"; done; }  # SUFFIX FAMILY...
echo "## Table 1 (+ Table 3 column outpaint-box): noiseless, N=$N test digits, 1 sample each"
python benchmarks/print_results.py --merge $(files "" $NOISELESS)
echo "## DPS and DAPS on the first $SUBSET of those digits, beside InvFussion and ΠGDM on the same digits"
python benchmarks/print_results.py --merge $(files "-n$SUBSET" $NOISELESS)
echo "## Table 8: σ_y = 0.1, N=$N"
python benchmarks/print_results.py --merge $(files "" $NOISY)
echo "## Table 8, DPS and DAPS on the first $SUBSET digits, beside InvFussion and ΠGDM on the same digits"
python benchmarks/print_results.py --merge $(files "-n$SUBSET" $NOISY)

echo "## Table 7: the MMSE — one call, a dedicated MMSE model, the mean of 8 posterior samples (N=$N)"
TABLE7="motion-blur matrix"
evaluate "$OUT/table7-mean-of-8" --degradations $TABLE7 --num-images "$N" --samples-per-image 8 \
  --methods invfussion:posterior-mean
tables7=("$OUT/table7-mean-of-8.json")
if [ -n "${MMSE_MODEL:-}" ]; then
  MODELS="mmse=$MMSE_MODEL" evaluate "$OUT/table7-dedicated" --degradations $TABLE7 --num-images "$N" --methods mmse:mmse
  tables7+=("$OUT/table7-dedicated.json")
fi
python benchmarks/print_results.py --merge "${tables7[@]}" $(files "" $TABLE7) \
  --rows invfussion:mmse invfussion:posterior-mean mmse:mmse invfussion:lmmse

echo "## InvFussion's posterior against network calls (N=$N; rows: solver-NFE)"
INVFUSSION=$(printf '%s\n' $MODELS | sed -n 's/^invfussion=//p')
nfe_files=()
for setting in heun:32:63 heun:16:31 heun:8:15 dpmpp2m:15:15 dpmpp2m:9:9; do
  IFS=: read -r solver steps calls <<< "$setting"
  MODELS="$solver-$calls=$INVFUSSION" evaluate "$OUT/nfe-$solver-$calls" --degradations motion-blur matrix \
    --num-images "$N" --solver "$solver" --steps "$steps" --methods "$solver-$calls:posterior"
  nfe_files+=("$OUT/nfe-$solver-$calls.json")
done
python benchmarks/print_results.py --merge "${nfe_files[@]}"

echo "## Unconditional generation (zero operator), FD against the test digits"
evaluate "$OUT/unconditional" --degradations none --num-images 500 \
  --methods invfussion:posterior palette:posterior unconditional:posterior
python benchmarks/print_results.py "$OUT/unconditional.json"

echo "## Cost and PSNR on motion blur, every method at its authors' budget (N=20)"
evaluate "$OUT/cost" --degradations motion-blur --num-images 20 --batch-size 20 \
  --methods invfussion:posterior invfussion:mmse unconditional:dps unconditional:ddrm unconditional:ddnm \
            unconditional:pigdm unconditional:daps
python benchmarks/print_results.py "$OUT/cost.json"
