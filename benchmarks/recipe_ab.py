"""The issue-27 recipe A/B table (BENCHMARKS.md "Recipe A/Bs at equal steps"): PSNR of each arm's
one call and posterior on the validation digits, and each arm's difference to the baseline.

Each arm is a 2,000-step run of the shipped recipe with one change (the commands are in
BENCHMARKS.md), evaluated, one thread per arm, by::

    invfussion evaluate --split validation --num-images 100 --models ARM=runs/ab27/ARM \
        --methods ARM:mmse ARM:posterior --degradations motion-blur inpaint-patches matrix \
        matrix:rows=16 matrix:rows=64 matrix:rows=128 motion-blur:noise=0.1 matrix:noise=0.1 \
        --out benchmarks/results/recipe-ab27/ARM-validation.json

This script only reads those files:

    python benchmarks/recipe_ab.py --base base --arms bias heads rich
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def psnr_by_cell(path: Path, arm: str) -> dict[tuple[str, str], float]:
    """``(method, degradation) → PSNR`` of an arm's results file (methods without the arm prefix)."""
    cells = json.loads(path.read_text())["cells"]
    return {(c["method"], c["degradation"]): c["psnr"] for c in cells.values() if c["model"] == arm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/recipe-ab27"))
    parser.add_argument("--base", default="base")
    parser.add_argument("--arms", nargs="+", default=["bias", "heads", "rich"])
    args = parser.parse_args()
    runs = {arm: psnr_by_cell(args.results / f"{arm}-validation.json", arm) for arm in [args.base, *args.arms]}
    keys = [k for k in runs[args.base] if all(k in r for r in runs.values())]
    degradations = list(dict.fromkeys(d for _, d in keys))
    for method in dict.fromkeys(m for m, _ in keys):
        print(f"\n{method}, PSNR (dB); arms as the difference to {args.base}\n")
        print("| arm | " + " | ".join(degradations) + " |")
        print("|---|" + "---:|" * len(degradations))
        print(f"| {args.base} | " + " | ".join(f"{runs[args.base][(method, d)]:.2f}" for d in degradations) + " |")
        for arm in args.arms:
            diffs = [runs[arm][(method, d)] - runs[args.base][(method, d)] for d in degradations]
            print(f"| {arm} | " + " | ".join(f"{v:+.2f}" for v in diffs) + " |")


if __name__ == "__main__":
    main()
