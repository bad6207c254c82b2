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

The same table at 10,000 steps ("Third-generation InvFussion" in BENCHMARKS.md): ``gen2`` is the
second-generation shipped model, ``gen3`` the retrain with the adopted changes, each evaluated by
the command above (``--models gen2=mnist32-invfussion`` at commit 4c7c023, ``--models
gen3=runs/gen3/mnist32-invfussion``; two more degradations, ``outpaint-box`` and
``inpaint-patches:noise=0.1``)::

    python benchmarks/recipe_ab.py --base gen2 --arms gen3 [--metric fd|c_fd]

A larger ``none`` share at 2,000 steps ("Unconditional generation across seeds"), against step 2,000
of the retrain (``both``)::

    python benchmarks/recipe_ab.py --base both --arms none3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METRICS = {"psnr": "PSNR (dB)", "fd": "FD", "c_fd": "C-FD"}  # the results files' keys, as the table names them


def metric_by_cell(path: Path, arm: str, metric: str) -> dict[tuple[str, str], float]:
    """``(method, degradation) → metric`` of an arm's results file (methods without the arm prefix;
    cells without the metric, e.g. C-FD of noisy measurements, left out)."""
    cells = json.loads(path.read_text())["cells"]
    return {(c["method"], c["degradation"]): c[metric] for c in cells.values()
            if c["model"] == arm and c[metric] is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/recipe-ab27"))
    parser.add_argument("--base", default="base")
    parser.add_argument("--arms", nargs="+", default=["bias", "heads", "rich"])
    parser.add_argument("--metric", choices=METRICS, default="psnr")
    args = parser.parse_args()
    runs = {arm: metric_by_cell(args.results / f"{arm}-validation.json", arm, args.metric)
            for arm in [args.base, *args.arms]}
    keys = [k for k in runs[args.base] if all(k in r for r in runs.values())]
    degradations = list(dict.fromkeys(d for _, d in keys))
    for method in dict.fromkeys(m for m, _ in keys):
        print(f"\n{method}, {METRICS[args.metric]}; arms as the difference to {args.base}\n")
        print("| arm | " + " | ".join(degradations) + " |")
        print("|---|" + "---:|" * len(degradations))
        print(f"| {args.base} | " + " | ".join(f"{runs[args.base][(method, d)]:.2f}" for d in degradations) + " |")
        for arm in args.arms:
            diffs = [runs[arm][(method, d)] - runs[args.base][(method, d)] for d in degradations]
            print(f"| {arm} | " + " | ".join(f"{v:+.2f}" for v in diffs) + " |")


if __name__ == "__main__":
    main()
