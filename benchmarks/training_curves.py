"""Training curves (issue 16): validation PSNR against training step for the three models of one recipe.

For every step k that is a multiple of --every and has a checkpoint, evaluates on balanced
*validation* digits (never the test split):
InvFussion one-call MMSE (RUNS/mnist32-invfussion), Palette one-call MMSE (RUNS/mnist32-palette)
and ΠGDM on the unconditional model (RUNS/mnist32-unconditional), on motion blur and the random
matrix, noiseless and σ_y = 0.1; plus the linear-MMSE floor as a step-independent reference line
(it never calls a network: its Gaussian prior is fitted to the training digits named by the
shipped mnist32-invfussion, the same MNIST train split the runs train on). A run or checkpoint
that does not exist is skipped with a one-line note.

Each step's cells go to OUT/step-<k>.n<N>.json (the reference to OUT/lmmse.n<N>.json) through
`invfussion.evaluation.evaluate`, which writes every finished cell at once: an interrupted run
resumes, a rerun recomputes nothing, and a model whose checkpoint appears later is added to the
step's file. The checkpoint paths (relative to the working directory) are part of each file's
settings: rerun from the same directory. Then prints a markdown table (one row per step, one PSNR
column per method and degradation, the lmmse row), the change of every line over its last
interval, and writes one PNG.

    python benchmarks/training_curves.py                                   # N = 100, every 2000 steps
    python benchmarks/training_curves.py --steps 2000 4000 --num-images 20 \
        --out /tmp/curves --plot /tmp/curves.png
    python benchmarks/training_curves.py --print-only                      # table and plot from cached results
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

RUNS = {"invfussion": "mnist32-invfussion", "palette": "mnist32-palette",
        "unconditional": "mnist32-unconditional"}  # model key → run folder under --runs
METHODS = {"invfussion": "mmse", "palette": "mmse", "unconditional": "pigdm"}  # model key → method
LABELS = {"invfussion:mmse": "InvFussion MMSE", "palette:mmse": "Palette MMSE",
          "unconditional:pigdm": "ΠGDM (unconditional)"}  # line → legend; also the order of lines
DEGRADATIONS = ("motion-blur", "matrix", "motion-blur:noise=0.1", "matrix:noise=0.1")
REFERENCE = ("lmmse", "mnist32-invfussion")  # key, and the shipped model whose training data fit the prior
STILL_MOVING_DB = 0.1
STEP_FILE = re.compile(r"step-(\d{7})\.safetensors")


class Curves(NamedTuple):
    """PSNR (dB) per line ``"key:method"`` → degradation → step, and the lmmse reference per degradation."""

    psnr: dict[str, dict[str, dict[int, float]]]
    reference: dict[str, float]


def label(key: str) -> str:
    return LABELS[f"{key}:{METHODS[key]}"]


def checkpoint(runs: Path, key: str, step: int) -> Path:
    return runs / RUNS[key] / "checkpoints" / f"step-{step:07d}.safetensors"


def checkpoint_steps(runs: Path) -> set[int]:
    """Every step that any of the three runs has a checkpoint of."""
    return {int(m[1]) for key in RUNS for path in (runs / RUNS[key] / "checkpoints").glob("step-*.safetensors")
            if (m := STEP_FILE.fullmatch(path.name))}


def results_path(out: Path, name: str, num_images: int) -> Path:
    return out / f"{name}.n{num_images}.json"


def step_name(step: int) -> str:
    return f"step-{step:07d}"


def evaluate_step(runs: Path, step: int, args: argparse.Namespace) -> dict | None:
    """Evaluate (or resume) one step's cells for the models whose checkpoint exists; ``None`` if none does."""
    from invfussion.evaluation import EvaluationSpec, evaluate

    present = [key for key in RUNS if checkpoint(runs, key, step).is_file()]
    for key in RUNS:
        if key not in present and (runs / RUNS[key]).is_dir():  # a missing run is noted once, in main
            print(f"note: no {checkpoint(runs, key, step)}; {label(key)} skipped at step {step}")
    if not present:
        return None
    # Every model is named (present or not) so the file's settings stay the same when a run appears later;
    # evaluate loads only the models of the cells it still has to compute.
    spec = EvaluationSpec(models={key: str(checkpoint(runs, key, step)) for key in RUNS},
                          methods=[f"{key}:{METHODS[key]}" for key in present], degradations=list(DEGRADATIONS),
                          num_images=args.num_images, split="validation", device=args.device)
    return evaluate(spec, results_path(args.out, step_name(step), args.num_images))


def evaluate_reference(args: argparse.Namespace) -> dict:
    from invfussion.evaluation import EvaluationSpec, evaluate

    key, model = REFERENCE
    spec = EvaluationSpec(models={key: model}, methods=[f"{key}:lmmse"], degradations=list(DEGRADATIONS),
                          num_images=args.num_images, split="validation", device=args.device)
    return evaluate(spec, results_path(args.out, "lmmse", args.num_images))


def cached_steps(out: Path, num_images: int) -> set[int]:
    pattern = re.compile(rf"step-(\d{{7}})\.n{num_images}\.json")
    return {int(m[1]) for path in out.glob(f"step-*.n{num_images}.json") if (m := pattern.fullmatch(path.name))}


def read_record(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def collect(records: dict[int, dict], reference: dict | None) -> Curves:
    """The PSNR of every cell of the step records, by line, degradation and step."""
    psnr: dict[str, dict[str, dict[int, float]]] = {}
    for step, record in sorted(records.items()):
        for cell in record["cells"].values():
            line = f"{cell['model']}:{cell['method']}"
            psnr.setdefault(line, {}).setdefault(cell["degradation"], {})[step] = cell["psnr"]
    ref = {c["degradation"]: c["psnr"] for c in (reference or {"cells": {}})["cells"].values()}
    return Curves(psnr, ref)


def lines_in_order(curves: Curves) -> list[str]:
    return [line for line in LABELS if line in curves.psnr]


def markdown_table(curves: Curves, steps: Sequence[int]) -> str:
    """One row per step and the lmmse row; one PSNR column per (degradation, line)."""
    columns = [(d, line) for d in DEGRADATIONS for line in lines_in_order(curves)]
    head = ["step"] + [f"{LABELS[line]} @ {d}" for d, line in columns]

    def fmt(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}"

    body = [[str(step)] + [fmt(curves.psnr[line].get(d, {}).get(step)) for d, line in columns]
            for step in steps]
    if curves.reference:
        body.append(["lmmse (reference)"] + [fmt(curves.reference.get(d)) for d, _ in columns])
    return "\n".join(["| " + " | ".join(row) + " |" for row in [head, ["---:"] * len(head), *body]])


def last_changes(curves: Curves) -> list[str]:
    """Per (line, degradation): the PSNR change over its last interval and whether it is still moving."""
    out = []
    for line in lines_in_order(curves):
        for d in DEGRADATIONS:
            points = sorted(curves.psnr[line].get(d, {}).items())
            name = f"{LABELS[line]} @ {d}"
            if len(points) < 2:
                out.append(f"- {name}: {len(points)} point(s), no interval yet")
                continue
            (s0, p0), (s1, p1) = points[-2:]
            verdict = "still moving" if p1 - p0 > STILL_MOVING_DB else "flat or falling"
            gap = curves.reference.get(d)
            floor = "" if gap is None else f" ({p1 - gap:+.2f} dB vs lmmse)"
            change = f"{p1 - p0:+.2f} dB from step {s0} to {s1} ({p0:.2f} → {p1:.2f})"
            out.append(f"- {name}: {change}: {verdict}{floor}")
    return out


def plot(curves: Curves, num_images: int, path: Path) -> Path:
    """One panel per degradation: PSNR against step per line, the lmmse floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 8), sharex=True, constrained_layout=True)
    colors = dict(zip(LABELS, ("tab:blue", "tab:orange", "tab:green")))  # one colour per line in every panel
    for ax, d in zip(axes.flat, DEGRADATIONS):
        for line in lines_in_order(curves):
            points = sorted(curves.psnr[line].get(d, {}).items())
            if points:
                ax.plot(*zip(*points), marker="o", color=colors[line], label=LABELS[line])
        if d in curves.reference:
            ax.axhline(curves.reference[d], color="gray", linestyle="--", label="LMMSE (linear floor)")
        ax.set_title(d)
        ax.set_ylabel("PSNR (dB) ↑")
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    legend = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=len(legend))
    fig.suptitle(f"PSNR against training step — MNIST validation digits, N = {num_images} (balanced)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def wanted_steps(available: Iterable[int], explicit: Sequence[int] | None, every: int) -> list[int]:
    """The explicit --steps found in ``available``, else every multiple of ``every`` in it."""
    available = set(available)
    if explicit:
        for step in sorted(set(explicit) - available):
            print(f"note: no checkpoint (or cached result) at step {step}; skipped")
        return sorted(set(explicit) & available)
    return sorted(s for s in available if s % every == 0)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--runs", type=Path, default=Path("runs/gen2"),
                        help="folder of mnist32-{invfussion,palette,unconditional}/checkpoints (default: runs/gen2)")
    parser.add_argument("--every", type=int, default=2000,
                        help="evaluate the steps that are multiples of this (default: 2000)")
    parser.add_argument("--steps", type=int, nargs="+", default=None,
                        help="evaluate exactly these steps instead")
    parser.add_argument("--num-images", type=int, default=100, help="balanced validation digits (default: 100)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/curves"),
                        help="results folder, one JSON per step (default: benchmarks/results/curves)")
    parser.add_argument("--plot", type=Path, default=Path("docs/training_curves.png"),
                        help="PNG to write (default: docs/training_curves.png)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--print-only", action="store_true",
                        help="evaluate nothing: table and plot from the cached results in --out")
    args = parser.parse_args(argv)
    if args.every < 1 or args.num_images < 1 or args.threads < 1:
        parser.error("--every, --num-images and --threads must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.print_only:
        steps = wanted_steps(cached_steps(args.out, args.num_images), args.steps, args.every)
        if not steps:
            print(f"error: no cached N = {args.num_images} results in {args.out}; run without --print-only first "
                  "(or pass the --out and --num-images they were made with).", file=sys.stderr)
            return 2
        records = {s: read_record(results_path(args.out, step_name(s), args.num_images)) for s in steps}
        reference = read_record(results_path(args.out, "lmmse", args.num_images))
    else:
        if not args.runs.is_dir():
            print(f"error: no runs folder {args.runs}; pass --runs DIR holding mnist32-invfussion/, mnist32-palette/ "
                  "(and mnist32-unconditional/) from benchmarks/train_mnist_models.py.", file=sys.stderr)
            return 2
        args.runs = Path(os.path.relpath(args.runs))  # one spelling of the paths the cached settings hold
        for key in RUNS:
            if not (args.runs / RUNS[key]).is_dir():
                print(f"note: no run {args.runs / RUNS[key]}; {label(key)} skipped")
        steps = wanted_steps(checkpoint_steps(args.runs), args.steps, args.every)
        if not steps:
            print(f"error: no checkpoint in {args.runs} at a multiple of --every {args.every}; lower --every or "
                  "wait for the runs to get there.", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(args.threads)
        try:
            reference = evaluate_reference(args)
            records = {s: r for s in steps if (r := evaluate_step(args.runs, s, args)) is not None}
        except (ValueError, RuntimeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    records = {s: r for s, r in records.items() if r is not None}
    # evaluate's notes, e.g. σ_y above a model's training noise (not lmmse's: it never calls a network)
    for note in dict.fromkeys(n for r in records.values() for n in r.get("notes", [])):
        print(f"note: {note}")
    curves = collect(records, reference)
    print(f"\n## PSNR (dB) against training step — N = {args.num_images} balanced validation digits\n")
    print(markdown_table(curves, steps))
    print(f"\nLast interval (still moving: gain > {STILL_MOVING_DB} dB):")
    print("\n".join(last_changes(curves)))
    print(f"\nwrote {plot(curves, args.num_images, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
