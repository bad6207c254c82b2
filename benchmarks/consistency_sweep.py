"""Choosing InvFussion's data-consistency recipes on validation digits (issue 27).

Prints BENCHMARKS.md "InvFussion with data consistency (issue 27): the sweep on validation
digits": PSNR (dB, mean over digits), NFE and seconds per image of every start × consistency step ×
budget, per family, beside InvFussion's one call and posterior and the zero-shot DPS and ΠGDM on
the unconditional model. Cells are cached in ``--out`` (a rerun only computes missing ones).

    python benchmarks/consistency_sweep.py --num-images 20 --out benchmarks/results/consistency-sweep.json

Decisions are taken on these validation digits only; the test digits produce the final table
(``invfussion evaluate ... --split test``, see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from invfussion import degradations as deg
from invfussion import models
from invfussion.data import load_mnist
from invfussion.metrics import psnr
from invfussion.restoration import run_method
from invfussion.sampling import consistency

FAMILIES = ["matrix:rows=128", "matrix:rows=64", "matrix:rows=16", "matrix", "motion-blur", "inpaint-patches",
            "outpaint-box"]
SIGMA_STARTS = (1.0, 2.0, 5.0)
BUDGETS = {"ddnm": (10, 25), "pigdm": (10, 25), "dps": (50, 100)}
RICH = ("matrix:rows=64", "matrix:rows=128")
"""Where DPS wins today (issue 27): only there the 1000-call trajectories and the zero-shot baselines run."""


def cells(spec: str, baselines: bool) -> list[tuple[str, str, dict]]:
    """``(model, method, options)`` of the sweep on family ``spec``."""
    out = [("invfussion", "mmse", {}), ("invfussion", "posterior", {})]
    out += [("invfussion", f"posterior+{step}", {}) for step in consistency.STEPS if step != "dps" or spec in RICH]
    for step, budgets in BUDGETS.items():
        for sigma in SIGMA_STARTS if step != "dps" else SIGMA_STARTS[:2]:
            out += [("invfussion", f"mmse+{step}", {"steps": b, "sigma_max": sigma}) for b in budgets]
    if spec in RICH:  # a longer DPS trajectory, still ≤ ¼ of DPS's 1000 calls
        out.append(("invfussion", "mmse+dps", {"steps": 200, "sigma_max": SIGMA_STARTS[0]}))
    if baselines and spec in RICH:
        out += [("unconditional", "dps", {}), ("unconditional", "pigdm", {})]
    return out


def key(model: str, method: str, opts: dict, spec: str) -> str:
    return f"{model}:{method}{json.dumps(opts, sort_keys=True) if opts else ''}@{spec}"


def run(net, method: str, opts: dict, op, y) -> tuple[torch.Tensor, int]:
    if not opts:
        out, nfe = run_method(method, net, op, y, 1, 0, None, None, "heun", False, None, None)
        return out[:, 0], nfe
    start, step = consistency.parse_method(method)
    x = consistency.consistent_sample(net, op, y, step, start, steps=opts["steps"], sigma_start=opts["sigma_max"])
    return x, consistency.nfe(start, step, opts["steps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=20)
    parser.add_argument("--families", nargs="+", default=FAMILIES)
    parser.add_argument("--no-baselines", action="store_true", help="skip DPS/ΠGDM on the unconditional model")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/consistency-sweep.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    nets = {"invfussion": models.load("mnist32-invfussion"), "unconditional": models.load("mnist32-unconditional")}
    images, _ = load_mnist("validation")
    x = images[torch.linspace(0, len(images) - 1, args.num_images).long()]  # every digit class
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for spec in args.families:
        op = deg.from_spec(spec, image_shape=tuple(x.shape[1:]), batch=len(x), seed=0)
        y = op.measure(x, seed=0)
        for model, method, opts in cells(spec, not args.no_baselines):
            k = key(model, method, opts, spec)
            if k in results:
                continue
            start = time.perf_counter()
            with torch.no_grad():
                out, nfe = run(nets[model], method, opts, op, y)
            seconds = (time.perf_counter() - start) / len(x)
            results[k] = {"psnr": float(psnr(out, x).mean()), "nfe": nfe, "seconds": seconds,
                          "residual": float((op.A(out) - y).norm(dim=1).mean())}
            print(f"{k}: {results[k]['psnr']:.2f} dB, {nfe} NFE, {seconds:.3f} s/image", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print_table(results, args.families)


def print_table(results: dict, families: list[str]) -> None:
    rows = {}
    for k, v in results.items():
        method, spec = k.rsplit("@", 1)
        rows.setdefault(method, {})[spec] = v
    print("\n| method | NFE | " + " | ".join(families) + " | s/image (matrix:rows=128) |")
    print("|---|---|" + "---|" * len(families) + "---|")
    for method, by_spec in rows.items():
        nfe = next(iter(by_spec.values()))["nfe"]
        cols = [f"{by_spec[s]['psnr']:.2f}" if s in by_spec else "–" for s in families]
        sec = by_spec.get("matrix:rows=128", {}).get("seconds")
        tail = f"{sec:.3f}" if sec is not None else "–"
        print(f"| {method} | {nfe} | " + " | ".join(cols) + f" | {tail} |")


if __name__ == "__main__":
    main()
