"""The ``invfussion`` command. Thin: it parses arguments and calls the library."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .training import TrainConfig


def _demo(args: argparse.Namespace) -> int:
    from .restoration import demo

    grid, table = demo(args.out, model=args.model, num_images=args.num_images, seed=args.seed)
    print(table)
    print(f"\nwrote {grid}")
    return 0


_TRAIN_OPTIONS_OF = {"measurement_noise": "noise", "overrides": "model_overrides"}  # TrainConfig field → option, where they differ


def given_train_settings(args: argparse.Namespace) -> dict:
    """The :class:`TrainConfig` fields set on an ``invfussion train`` command line (options left out
    parse as ``None``, so the config's own defaults, or a resumed run's settings, apply)."""
    from .training import TrainConfig

    fields = {field: _TRAIN_OPTIONS_OF.get(field, field) for field in TrainConfig.__dataclass_fields__}
    given = {field: getattr(args, option) for field, option in fields.items()
             if getattr(args, option, None) is not None}
    if "overrides" in given:
        try:
            given["overrides"] = json.loads(given["overrides"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"--model-overrides is not JSON ({exc}); pass e.g. '{{\"depths\": [1, 1]}}'.") from None
    return given


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed ``invfussion train`` arguments (defaults for the rest)."""
    from .training import TrainConfig

    return TrainConfig(**given_train_settings(args))


def train_command(config: dict) -> list[str]:
    """The ``invfussion train`` arguments that reproduce a run's ``config.json`` ``"train"`` section.

    Every setting that differs from its default becomes a flag (``resume`` and ``tensorboard`` are
    left out: how a run was kept, not what it trains). The inverse of :func:`train_config`.
    """
    from .training import TrainConfig
    from .training.loop import flag_name

    options = vars(build_parser().parse_args(["train", "--out", "."]))
    reference = TrainConfig()
    command: list[str] = []
    for name, value in config.items():
        if name in ("resume", "tensorboard") or value == getattr(reference, name):
            continue
        if _TRAIN_OPTIONS_OF.get(name, name) not in options:
            raise ValueError(f"the training setting {name}={value!r} has no invfussion train flag; "
                             "train with its default to reproduce the run from the command line.")
        option = flag_name(name)
        if isinstance(value, bool):
            command.append(option if value else "--no-" + option[2:])
        elif isinstance(value, list):
            command += [option, *map(str, value)]
        else:
            command += [option, json.dumps(value) if isinstance(value, dict) else str(value)]
    return command


def _train(args: argparse.Namespace) -> int:
    from .training import train
    from .training.loop import resume_config

    if args.resume:
        config, notes = resume_config(args.out, given_train_settings(args))
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    else:
        config = train_config(args)
    print(f"final checkpoint: {train(config)}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from . import degradations as deg
    from .data import load_mnist
    from .models import compile_denoiser, load
    from .restoration import family_note, noise_note, restore, summarize, write_restoration
    from .sampling.consistency import WHERE_IT_PAYS, default_sampler

    net = load(args.model, device=args.device)
    if args.compile:
        from .training.loop import compile_note

        print(f"note: {compile_note(next(net.parameters()).device, skip='leave out --compile to skip it')}",
              file=sys.stderr)
        compile_denoiser(net)
    shape = (net.img_channels, net.img_resolution, net.img_resolution)
    if args.input is not None:
        from .data.images import parse_value_range
        from .restoration import load_image

        x, notes = load_image(args.input, shape, parse_value_range(args.range) if args.range is not None else None)
        for note in notes:
            print(f"note: {note} ({args.input})")
    else:
        images, _ = load_mnist(args.split)
        if not 0 <= args.dataset_index < len(images):
            raise ValueError(f"--dataset-index must lie in [0, {len(images) - 1}] for the {args.split} split.")
        x = images[args.dataset_index : args.dataset_index + 1]
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"the embedded MNIST digits are {tuple(x.shape[1:])} but the model expects {shape}.")
    x = x.to(args.device)
    labels = _class_labels(net, args, batch=1)
    op = deg.from_spec(args.degradation, image_shape=shape, batch=1, seed=args.seed, device=args.device)
    for note in (noise_note(net, op), family_note(net, args.degradation)):
        if note:
            print(f"note: {note}", file=sys.stderr)
    y = op.measure(x, seed=args.seed)
    methods = args.method
    if methods is None:
        sampler = default_sampler(args.degradation, op)
        methods = [sampler, "mmse"]
        if sampler != "posterior":
            print(f"note: sampling with {sampler}: {WHERE_IT_PAYS[sampler]}, where data consistency pays "
                  "(BENCHMARKS.md, issue 27); --method posterior for the plain sampler", file=sys.stderr)
    result = restore(net, op, y, methods, num_samples=args.num_samples, seed=args.seed,
                     steps=args.steps, solver=args.solver, reference=x, progress=True, uncertainty=args.uncertainty,
                     class_labels=labels, cfg=args.cfg, consistent=args.consistent)
    summary = {"model": args.model, "degradation": args.degradation, "seed": args.seed,
               "methods": summarize(result, op, y)}
    written = write_restoration(result, args.out, summary)
    print(json.dumps(summary["methods"], indent=2))
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def _class_labels(net: torch.nn.Module, args: argparse.Namespace, batch: int) -> torch.Tensor | None:
    """``--class-label`` as ``(batch,)`` labels (``None`` without one), checked with ``--cfg``
    against the model (one-line ``ValueError``)."""
    import torch

    from .sampling import check_guidance

    labels = None
    if args.class_label is not None:
        labels = torch.full((batch,), args.class_label, dtype=torch.long, device=args.device)
    check_guidance(net, labels, args.cfg)
    return labels


def _sample(args: argparse.Namespace) -> int:
    import torch

    from .models import load
    from .sampling import unconditional
    from .training import save_image_grid

    net = load(args.model, device=args.device)
    labels = _class_labels(net, args, batch=args.num_samples)
    with torch.no_grad():
        x = unconditional(net, args.num_samples, (net.img_channels, net.img_resolution, net.img_resolution),
                          steps=args.steps, solver=args.solver, seed=args.seed, cfg=args.cfg,
                          class_labels=labels, progress=True)
    path = save_image_grid([x], Path(args.out) / "samples.png")
    print(f"wrote {path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation import EvaluationSpec, evaluate, markdown_table

    spec = EvaluationSpec(models=dict(m.split("=", 1) if "=" in m else (m, m) for m in args.models),
                          methods=args.methods, degradations=args.degradations, num_images=args.num_images,
                          samples_per_image=args.samples_per_image, seed=args.seed, steps=args.steps,
                          batch_size=args.batch_size, device=args.device, split=args.split,
                          data=args.data, fd_weights=args.fd_weights, compile=args.compile,
                          class_labels=None if args.class_labels == "none" else args.class_labels, cfg=args.cfg,
                          consistent=args.consistent, solver=args.solver, protocol=args.protocol,
                          lpips_weights=args.lpips_weights)
    results = evaluate(spec, args.out)
    if results["fd_skipped"]:
        print(results["fd_skipped"])
    for note in [*results["notes"], results["fd_note"]]:
        if note:
            print(f"note: {note}", file=sys.stderr)
    if results["reused"]:
        print(f"note: {len(results['reused'])} cell(s) came from {args.out}, computed by an earlier run with these "
              f"settings ({', '.join(results['reused'])}); pass another --out to compute them again.", file=sys.stderr)
    print(markdown_table(results))
    print(f"\nresults in {args.out}")
    return 0


def _prepare_data(args: argparse.Namespace) -> int:
    from .data import prepare_data
    from .data.images import parse_value_range

    value_range = parse_value_range(args.range) if args.range is not None else None
    report = prepare_data(args.src, args.dest, args.resolution, channels=args.channels,
                          value_range=value_range, strict=args.strict)
    print(report.summary())
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .serve import serve

    serve(host=args.host, port=args.port, model=args.model, nppc_model=args.nppc_model or None,
          device=args.device, steps=args.steps)
    return 0


def _import_checkpoint(args: argparse.Namespace) -> int:
    from .models.authors import import_checkpoint

    weights = import_checkpoint(args.file, args.config, args.out)
    print(f"imported {args.file} ({args.config}) -> {weights.parent}; use it as --model {weights.parent}")
    return 0


def _add_compile(p: argparse.ArgumentParser, training: bool = False) -> None:
    if training:
        p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="torch.compile the network's operator-free parts (default: on the CPU, where training "
                            "steps were measured ~22%% faster; eager on CUDA until measured; BENCHMARKS.md)")
    else:
        p.add_argument("--compile", action="store_true",
                       help="torch.compile the network's operator-free parts; pays on long evaluations only")


def _add_range(p: argparse.ArgumentParser) -> None:
    p.add_argument("--range", default=None, metavar="MIN,MAX",
                   help="value window of 16-bit or float images, e.g. 0,4095 for 12-bit data (default: each "
                        "type's full range: 0–65535, 0–1 for float)")


def _add_seed_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the operators, noise and samples; image i depends on (seed, i) only (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")


def _add_consistent(p: argparse.ArgumentParser) -> None:
    p.add_argument("--consistent", action="store_true",
                   help="also report each method's outputs moved onto the measurement as <method>+consistent: "
                        "x + A⁺(y − Ax) (the exact projection) when noiseless, x + A⁺_σ(y − Ax) when noisy")


def _add_solver(p: argparse.ArgumentParser) -> None:
    p.add_argument("--solver", default="heun", choices=("heun", "euler", "dpmpp2m"),
                   help="the posterior sampler's ODE solver (heun: 2·steps − 1 network calls, the others: steps)")


def _add_guidance(p: argparse.ArgumentParser) -> None:
    p.add_argument("--class-label", type=int, default=None, metavar="N",
                   help="the class to condition on (a class-conditional model; 0 ≤ N < its classes)")
    p.add_argument("--cfg", type=float, default=None, metavar="W",
                   help="classifier-free guidance weight w ≥ 0 with --class-label: D_null + w (D_class − D_null)")


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose ``epilog`` may be a function, called only when the help is shown
    (so listing the registered families, which imports torch, costs nothing otherwise)."""

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()


def _restore_epilog() -> str:
    import textwrap

    from .degradations import FAMILIES
    from .models.load import SHIPPED

    def listing(title: str, names: str) -> str:
        return textwrap.fill(f"{title} {names}", width=100, subsequent_indent="  ", break_on_hyphens=False)

    return "\n".join([
        listing("degradation families (--degradation family[:key=value,...]; each takes noise=σ_y):", ", ".join(FAMILIES)),
        listing("shipped models (--model; or a checkpoint file or run directory):", ", ".join(SHIPPED)),
        "  (their cards: src/invfussion/assets/MODEL_CARDS.md)",
    ])


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="invfussion",
        description="Solve linear inverse problems in imaging with one degradation-aware diffusion model.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="`invfussion COMMAND --help` shows its options")

    p = sub.add_parser("demo", help="restore embedded MNIST digits with the shipped model")
    p.add_argument("--out", default="demo", help="output folder (default: demo)")
    p.add_argument("--model", default="mnist32-invfussion",
                   help="shipped name, checkpoint file or run directory (default: mnist32-invfussion)")
    p.add_argument("--num-images", type=int, default=8, help="embedded test digits to restore (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the operators, noise and samples (default: 0)")
    p.set_defaults(run=_demo)

    p = sub.add_parser("train", help="train an InvFussion, Palette or unconditional model",
                       description="Train a model into --out. Options left out take their defaults, or with --resume "
                                   "the run's own settings from --out/config.json.")
    p.add_argument("--preset", help="model size: mnist32 (default), ffhq64, imagenet64 or ffhq256")
    p.add_argument("--conditioning", help="invfussion (default), palette or unconditional")
    p.add_argument("--steps", type=int, help="total training steps, counting those already done (default: 20000)")
    p.add_argument("--batch-size", type=int, help="global batch, independent of the process count (default: 64)")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="write a checkpoint every N steps (default: 1000)")
    p.add_argument("--keep-checkpoints", type=int, metavar="N", help="how many recent checkpoints to keep (default: 3)")
    p.add_argument("--sample-every", type=int, metavar="N",
                   help="write a preview grid to RUN/samples/ every N steps (default: 1000)")
    p.add_argument("--val-every", type=int, metavar="N",
                   help="validate the EMA model every N steps on held-out images (default 0: never); figures go to log.jsonl")
    p.add_argument("--val-data", metavar="PATH",
                   help="held-out images for --val-every (default: the embedded MNIST validation split with --data mnist)")
    p.add_argument("--log-every", type=int, metavar="N",
                   help="log the loss to the progress bar and log.jsonl every N steps (default: 50)")
    p.add_argument("--seed", type=int, help="seed of every random draw of the run (default: 0)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest checkpoint with its own settings; options given "
                        "change those that may change (--steps, cadences, --device, --num-workers, --compile)")
    p.add_argument("--data", help="'mnist' (embedded, the default), an image folder or a dataset zip")
    p.add_argument("--resolution", type=int, help="image side in pixels (default: the first image's)")
    p.add_argument("--degradations", nargs="+", metavar="SPEC",
                   help="training degradation specs (default: the paper's mixture)")
    p.add_argument("--degradation-weights", nargs="+", type=float, metavar="W",
                   help="one sampling weight per --degradations spec (default: equal)")
    p.add_argument("--noise", metavar="LEVELS",
                   help="σ_y of specs that set none, drawn per example (default 0:0.2,zero=0.5: half noiseless, "
                        "half uniform on (0, 0.2]); 0 trains noiseless; any noisy range makes the model noise-aware")
    p.add_argument("--objective", help="diffusion (default), mmse or nppc")
    p.add_argument("--mmse-share", type=float,
                   help="share of conditional examples trained at the one-call MMSE end (pure noise at σ = 100; "
                        "default 0.25, which won the A/B in BENCHMARKS.md; 0 is the plain EDM2 recipe)")
    p.add_argument("--pcs", type=int, help="posterior principal components the model outputs (nppc; default: 0)")
    p.add_argument("--nppc-ramp-steps", type=int, help="steps over which the NPPC terms ramp in (default: 500)")
    p.add_argument("--nppc-variance-fit", choices=("absolute", "relative"),
                   help="how NPPC fits each predicted variance: relative to the prediction (the default; small-error "
                        "examples count as much as large ones) or absolute (the NPPC authors')")
    p.add_argument("--init-from", metavar="MODEL",
                   help="start from this model's weights (shipped name, checkpoint or run), e.g. for nppc")
    p.add_argument("--lr", type=float, help="peak Adam learning rate (default: 2e-4)")
    p.add_argument("--warmup-steps", type=int, help="steps of linear learning-rate warm-up (default: 500)")
    p.add_argument("--lr-ref-steps", type=int,
                   help="the learning rate decays as 1/√(step/N) after N steps (default: 5000)")
    p.add_argument("--ema-half-life-images", type=float, help="EMA half-life in images (default: 500000)")
    p.add_argument("--aug-p", type=float, help="probability of each non-leaking augmentation (default: 0)")
    p.add_argument("--xflip", action="store_true", default=None, help="also train on mirrored images")
    p.add_argument("--label-dropout", type=float,
                   help="share of class labels dropped to train classifier-free guidance (default: 0.1)")
    p.add_argument("--amp", help="mixed precision: auto, bf16, fp16 or none (default auto: bf16 on CUDA, none on the CPU)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default auto: CUDA when available)")
    p.add_argument("--num-workers", type=int, help="data-loading processes (default: auto)")
    p.add_argument("--model-overrides", metavar="JSON",
                   help='architecture changes to the preset, e.g. \'{"depths": [1, 1]}\'')
    _add_compile(p, training=True)
    p.set_defaults(run=_train)

    p = sub.add_parser("restore", help="restore an image from a degraded measurement", epilog=_restore_epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mnist32-invfussion", help="shipped name, checkpoint file or run directory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", metavar="IMAGE",
                     help="clean image to degrade (the reference for PSNR); converted to the model's channels and "
                          "centre-cropped and resized to its size, each change noted")
    src.add_argument("--dataset-index", type=int, help="index of an embedded MNIST digit")
    p.add_argument("--split", default="test", help="embedded MNIST split for --dataset-index: train, validation or test")
    p.add_argument("--degradation", required=True, metavar="SPEC", help="e.g. motion-blur:stride=4")
    p.add_argument("--method", nargs="+", default=None,
                   help="posterior, posterior-mean (the mean of --num-samples samples), mmse, nppc (a model "
                        "trained with --objective nppc), lmmse (the linear-MMSE floor, any model), a "
                        "zero-shot method (dps, ddrm, ddnm, pigdm, daps), or InvFussion with data consistency "
                        "(posterior+ddnm, posterior+pigdm, posterior+dps, mmse+ddnm, mmse+pigdm, mmse+dps); "
                        "default: mmse and the default sampler (posterior; mmse+dps on a random matrix with "
                        "M/D >= 0.05, mmse+ddnm on noiseless motion-blur)")
    p.add_argument("--num-samples", type=int, default=2, help="posterior samples to draw (default: 2)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: each method's own)")
    _add_solver(p)
    p.add_argument("--uncertainty", type=int, default=0, metavar="K",
                   help="also write the per-pixel std map and the top-K sample-PCA directions")
    _add_consistent(p)
    _add_guidance(p)
    _add_seed_device(p)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the PNGs (reference, A⁺y, outputs, grid.png) and metrics.json")
    _add_range(p)
    _add_compile(p)
    p.set_defaults(run=_restore)

    p = sub.add_parser("sample", help="draw unconditional or class-conditional samples")
    p.add_argument("--model", default="mnist32-unconditional",
                   help="shipped name, checkpoint file or run directory (default: mnist32-unconditional)")
    p.add_argument("--num-samples", type=int, default=16, help="samples to draw (default: 16)")
    _add_guidance(p)
    p.add_argument("--steps", type=int, default=32, help="sampler steps (default: 32)")
    _add_solver(p)
    _add_seed_device(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for samples.png")
    p.set_defaults(run=_sample)

    p = sub.add_parser("evaluate", help="compare methods on a benchmark (PSNR, FD, C-FD, NFE)")
    p.add_argument("--models", nargs="+", required=True, metavar="[KEY=]MODEL",
                   help="e.g. invfussion=mnist32-invfussion palette=mnist32-palette unconditional=mnist32-unconditional")
    p.add_argument("--methods", nargs="+", required=True,
                   help="KEY:METHOD, e.g. invfussion:posterior invfussion:mmse invfussion:lmmse unconditional:ddrm")
    p.add_argument("--degradations", nargs="+", default=[], metavar="SPEC",
                   help="operator specs, one table column each, e.g. motion-blur inpaint-patches matrix:noise=0.1")
    p.add_argument("--protocol", default=None, choices=("dps256", "small64"),
                   help="a published task list instead of --degradations: dps256 (DPS/DAPS 256²) or small64 (64²)")
    p.add_argument("--lpips-weights", nargs=2, default=None, metavar=("BACKBONE", "HEADS"),
                   help="LPIPS from local files: torchvision's alexnet/vgg16 .pth and lpips' v0.1 alex/vgg.pth")
    p.add_argument("--num-images", type=int, default=500,
                   help="images to evaluate on (default: 500; FD needs about 50 or more to mean much)")
    p.add_argument("--split", default="test", choices=("test", "validation"),
                   help="embedded MNIST digits to evaluate on: validation for recipe choices, test for the final tables")
    p.add_argument("--data", default=None, help="evaluate on your own images instead: a folder or dataset zip")
    p.add_argument("--fd-weights", default=None, metavar="PATH",
                   help="Inception-v3 weights file for FD on --data (torch-fidelity's; nothing is downloaded)")
    p.add_argument("--samples-per-image", type=int, default=1,
                   help="posterior samples per image; PSNR averages over them (default: 1)")
    p.add_argument("--class-labels", default="none", choices=("true", "none"),
                   help="true: condition a class-conditional model on each digit's own label (default: none)")
    p.add_argument("--cfg", type=float, default=None, metavar="W",
                   help="classifier-free guidance weight w ≥ 0 (needs --class-labels true)")
    _add_consistent(p)
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: each method's own)")
    _add_solver(p)
    p.add_argument("--batch-size", type=int, default=100, help="images per network call (default: 100)")
    _add_seed_device(p)
    p.add_argument("--out", required=True, help="results JSON (finished cells are reused on rerun)")
    _add_compile(p)
    p.set_defaults(run=_evaluate)

    p = sub.add_parser("prepare-data", help="turn a folder of images into a dataset zip")
    p.add_argument("src", help="folder of PNG, JPEG, TIFF, BMP or WebP images (one subfolder per class gives labels)")
    p.add_argument("dest", help="the dataset zip to write; skipped files are listed in DEST.skipped.txt")
    p.add_argument("--resolution", type=int, required=True,
                   help="output side in pixels; images are centre-cropped to a square and resized")
    p.add_argument("--channels", type=int, default=None,
                   help="1 (grey) or 3 (RGB); default: 3 if any image has colour, else 1")
    _add_range(p)
    p.add_argument("--strict", action="store_true", help="fail on any image that would be skipped")
    p.set_defaults(run=_prepare_data)

    p = sub.add_parser("serve", help="a web page to restore images in the browser")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765)")
    p.add_argument("--model", default="mnist32-invfussion", help="shipped name, checkpoint file or run directory")
    p.add_argument("--nppc-model", default="mnist32-nppc", help="model for the principal directions ('' for sample PCA)")
    p.add_argument("--steps", type=int, default=32, help="Heun steps per posterior sample (default: 32)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.set_defaults(run=_serve)

    p = sub.add_parser("import-checkpoint", help="the paper authors' released weights (.pt) -> our model format")
    p.add_argument("file", help="their checkpoint file (the EMA state under 'ema', or a bare state dict)")
    p.add_argument("--config", required=True, metavar="NAME|CONFIG.json",
                   help="their models/hyperparams.py entry: imagenet64, ffhq256 or ffhq64; or a JSON file in "
                        "their layout (patch_size, depths, widths, joint, self_attns, img_resolution, "
                        "img_channels, label_dim) for a model trained with their code")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="new directory for model.safetensors + model.json (then --model DIR anywhere)")
    p.set_defaults(run=_import_checkpoint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError, KeyError, OSError) as exc:
        if args.debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"invfussion {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
