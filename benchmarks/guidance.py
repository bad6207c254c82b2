"""Classifier-free guidance on inverse problems, and a wrong class on purpose (issue 17, items 2, 4).

Guidance: posterior samples of a class-conditional InvFussion model on N balanced digits of a
split, without a class and with each digit's true class at the weights w (w = 1 is the class
alone, one network call per evaluation; otherwise D_null + w (D_class − D_null), two calls), on
motion blur, patch in-painting and a random matrix: PSNR, FD and C-FD (the shipped MNIST
classifier's features, against the split's clean digits, as `invfussion evaluate`) and the
classifier's accuracy on the restorations against the true class. With --unconditional-model (a
class-conditional unconditional model) the same rows for the zero-shot samplers of --zeroshot.

Wrong class: the same restorations given the class (label + --wrong-offset) mod 10 at each w:
consistency ‖y − A x̂‖², PSNR, and the share the classifier reads as the wrong class — how far
guidance pulls a restoration away from its measurement.

Choose on validation digits (the default), print the final tables on the test digits:

    python benchmarks/guidance.py --model RUN_OR_CHECKPOINT --num-images 100
    python benchmarks/guidance.py --model M --unconditional-model U --split test --num-images 500

--zeroshot-weights gives the zero-shot rows their own weights, --no-wrong-class leaves the study out
(each guided row costs as much again as the unguided one, twice when w ≠ 1).
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from model import commit, machine

from invfussion import models
from invfussion.evaluation import EvaluationSpec, clean_images, evaluate_cell
from invfussion.metrics import MnistFeatures
from invfussion.sampling import zeroshot

DEGRADATIONS = ["motion-blur", "inpaint-patches", "matrix"]
Row = dict[str, float | None]


def fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def table(title: str, rows: dict[str, dict[str, Row]], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table: one line per row name, per degradation the ``columns`` (header, key,
    format) of its cell, then the row's NFE per image."""
    degradations = list(next(iter(rows.values())))
    head = ["", *(f"{d} {h}" for d in degradations for h, _, _ in columns), "NFE"]
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, cells in rows.items():
        values = [fmt(cells[d][key], form) for d in degradations for _, key, form in columns]
        lines.append("| " + " | ".join([name, *values, str(cells[degradations[0]]["nfe"])]) + " |")
    return "\n".join(lines)


def load_with_classes(name: str, device: str) -> torch.nn.Module:
    net = models.load(name, device=device)
    if not net.num_classes:
        raise SystemExit(
            f"{name} is not class-conditional; train one with --model-overrides '{{\"num_classes\": 10}}'."
        )
    return net


def measure(net: torch.nn.Module, method: str, x: torch.Tensor, spec: EvaluationSpec, features: MnistFeatures,
            reference_features: torch.Tensor, class_labels: torch.Tensor | None, scored: torch.Tensor,
            w: float | None) -> dict[str, Row]:
    """Per degradation of ``spec``, the :func:`evaluate_cell` row of ``method`` on the digits
    ``x: (N, 1, 32, 32)`` given ``class_labels: (N,)`` (or none) at guidance weight ``w``, with the
    classifier's accuracy against ``scored: (N,)``."""
    # w = 1 is the class alone: the same samples as cfg = 1 (tests/sampling/test_guidance.py) at half the calls
    setting = dataclasses.replace(spec, cfg=None if w in (None, 1.0) else w)
    return {d: evaluate_cell(net, method, d, x, setting, features, reference_features, class_labels, scored)[method]
            for d in spec.degradations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="class-conditional InvFussion (name, checkpoint or run)")
    parser.add_argument("--unconditional-model", default=None,
                        help="class-conditional unconditional model for the zero-shot rows (optional)")
    parser.add_argument("--zeroshot", nargs="+", default=["ddrm", "ddnm"], choices=list(zeroshot.METHODS))
    parser.add_argument("--weights", nargs="+", type=float, default=[1.0, 1.5, 2.0, 3.0], help="guidance weights w")
    parser.add_argument("--zeroshot-weights", nargs="+", type=float, default=None,
                        help="guidance weights of the zero-shot rows (default: --weights)")
    parser.add_argument("--wrong-class", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the wrong-class study (--no-wrong-class: the guidance tables only)")
    parser.add_argument("--degradations", nargs="+", default=DEGRADATIONS, metavar="SPEC")
    parser.add_argument("--split", default="validation", choices=("validation", "test"))
    parser.add_argument("--num-images", type=int, default=100)
    parser.add_argument("--wrong-offset", type=int, default=5, help="the wrong class is (label + offset) mod 10")
    parser.add_argument("--steps", type=int, default=32, help="Heun steps of posterior sampling")
    parser.add_argument("--zeroshot-steps", type=int, default=None, help="default: each method's own budget")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.wrong_offset % 10 == 0:
        raise SystemExit("--wrong-offset must not be a multiple of 10: the wrong class would be the true one.")

    base = EvaluationSpec(models={}, methods=[], degradations=args.degradations, num_images=args.num_images,
                          seed=args.seed, steps=args.steps, batch_size=args.batch_size, device=args.device,
                          split=args.split)
    x, labels = clean_images(base)
    wrong = (labels + args.wrong_offset) % 10
    features = MnistFeatures(device=args.device)
    reference_features = features(x.to(args.device))
    runs = [("invfussion", "posterior", load_with_classes(args.model, args.device), args.steps, args.weights)]
    if args.unconditional_model is not None:
        unconditional = load_with_classes(args.unconditional_model, args.device)
        zeroshot_weights = args.zeroshot_weights or args.weights
        runs += [("unconditional", method, unconditional, args.zeroshot_steps, zeroshot_weights)
                 for method in args.zeroshot]

    print(f"commit {commit()}, {machine(torch.device(args.device))}, torch {torch.__version__}")
    print(f"model {args.model}" + (f", unconditional {args.unconditional_model}" if args.unconditional_model else "")
          + f"; {args.num_images} balanced {args.split} digits, seed {args.seed}, one sample per digit\n")
    for key, method, net, steps, weights in runs:
        spec = dataclasses.replace(base, steps=steps)
        common = (net, method, x, spec, features, reference_features)
        plain = measure(*common, None, labels, None)
        guided = {f"true class, w = {w:g}": measure(*common, labels, labels, w) for w in weights}
        print(table(f"{key}:{method} — guidance towards the true class (accuracy: classifier vs the true class)",
                    {"no class": plain, **guided},
                    [("PSNR↑", "psnr", ".2f"), ("FD↓", "fd", ".2f"), ("C-FD↓", "c_fd", ".2f"),
                     ("acc↑", "class_accuracy", ".3f")]) + "\n")
        if not args.wrong_class:
            continue
        misled = {f"wrong class, w = {w:g}": measure(*common, wrong, wrong, w) for w in weights}
        reference = {d: {**plain[d], "class_accuracy": None} for d in args.degradations}
        print(table(f"{key}:{method} — a wrong class, (label + {args.wrong_offset}) mod 10 "
                    "(wrong: share the classifier reads as the wrong class)",
                    {"no class": reference, **misled},
                    [("‖y−Ax̂‖²↓", "consistency", ".2e"), ("PSNR↑", "psnr", ".2f"),
                     ("wrong", "class_accuracy", ".3f")]) + "\n")


if __name__ == "__main__":
    main()
