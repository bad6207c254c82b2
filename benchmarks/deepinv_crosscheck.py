"""invfussion's zero-shot DPS and DDRM against deepinv's, on the same prior, operators and inputs.

One unconditional network (``--model``, by default the shipped ``mnist32-unconditional``) serves
as the prior of both libraries: invfussion's samplers call it directly, deepinv's call it through
:class:`invfussion.integrations.deepinv.DeepinvDenoiser`. The operators are deepinv physics on
1×32×32 images — pixel in-painting (30% of the pixels kept, one fixed mask) noiseless and with
σ = 0.05 in deepinv's [0, 1] units (σ_y = 0.1 in ours), and a Gaussian blur (σ = 2 px, circular
FFT) — wrapped for invfussion with :func:`~invfussion.integrations.deepinv.from_physics`. Both
libraries get the same measurements of the same ``--num-images`` balanced digits of ``--split``
(``test`` by default, ``validation`` to choose settings on; made once by ``physics(x₀₁)``; ours
converted exactly by ``2·y₀₁ − A 1``) and the same number of denoiser calls per method (counted,
in the NFE column); every other setting is the library's default (DPS guidance ζ = 2 on
‖y − A x̂₀‖ in [-1, 1] for invfussion — 0.5 before commit 7271384 — weight 1 in [0, 1]
with the VP schedule for deepinv; DDRM η = 0.85, η_b = 1 for both, invfussion's from σ = 5 with
EDM spacing starting from the measurement — from σ = 80 before — and deepinv's from 1 ([0, 1]
units), evenly spaced).
PSNR is ``invfussion.metrics.psnr`` on the [-1, 1] images (the paper's 8-bit scale).

deepinv's DPS puts its guidance inside the score of its reverse SDE, so its step on
∇‖y − A x̂₀‖ is ``weight·(σ_t² − σ_{t+dt}²)/2`` in [-1, 1] units (σ of the VP schedule, 152 → 0),
where the paper's (and invfussion's) is a constant ζ per step: with weight 1 the guidance below
σ = 1 adds up to 0.5 over all steps, ours to 0.5 × 404 steps, and deepinv's DPS stays close to
an unguided prior sample. ``--deepinv-dps KEY=VALUE,…`` adds a row of deepinv's DPS with other
public settings (``weight``, ``guidance`` norm/annealed, ``solver`` ddpm/ancestral/ddim/euler,
``schedule`` vp/ve), e.g. ``--deepinv-dps weight=300`` (the best of weights 1–1000, norm and
annealed guidance, DDIM and VE variants on 10 validation digits, mean over the three columns);
``--methods`` keeps only some of the default rows.

    python benchmarks/deepinv_crosscheck.py                          # 20 digits, DPS 1000, DDRM 25
    python benchmarks/deepinv_crosscheck.py --num-images 2 --steps 4 # a quick check
    # a sweep on validation digits, extra rows only:
    python benchmarks/deepinv_crosscheck.py --split validation --num-images 10 --methods \
        --deepinv-dps weight=100 --deepinv-dps guidance=annealed,weight=10

Needs deepinv: ``pip install "invfussion[deepinv]"``.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable

import deepinv as dinv
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from invfussion import models, sampling
from invfussion.data import balanced_indices, load_mnist
from invfussion.integrations.deepinv import (
    DeepinvDenoiser,
    from_deepinv_image,
    from_physics,
    to_deepinv_image,
)
from invfussion.metrics import psnr

IMAGE_SHAPE = (1, 32, 32)
DEFAULT_STEPS = {"DPS": 1000, "DDRM": 25}


def physics_cases(seed: int) -> dict[str, dinv.physics.LinearPhysics]:
    """The deepinv operators, by table column."""
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(IMAGE_SHAPE, generator=g) < 0.3).float()
    blur = dinv.physics.functional.blur.gaussian_blur(sigma=(2.0, 2.0))
    return {
        "in-painting 30%": dinv.physics.Inpainting(img_size=IMAGE_SHAPE, mask=mask),
        "in-painting 30%, σ_y 0.1": dinv.physics.Inpainting(
            img_size=IMAGE_SHAPE, mask=mask, noise_model=dinv.physics.GaussianNoise(0.05)
        ),
        "blur σ 2": dinv.physics.BlurFFT(img_size=IMAGE_SHAPE, filter=blur),
    }


# A method maps (net, physics, y₀₁ (b, …), indices, steps, seed) to [-1, 1] images (b, 1, 32, 32).
Method = Callable[
    [torch.nn.Module, dinv.physics.LinearPhysics, Tensor, list[int], int, int], Tensor
]


def ours(name: str) -> Method:
    sampler = sampling.zeroshot.get(name.lower())

    def run(net, physics, y01, indices, steps, seed):
        op = from_physics(physics, IMAGE_SHAPE, batch_size=len(indices))
        return sampler(
            net, op, op.from_deepinv_measurement(y01), steps=steps, seed=seed, indices=indices
        )

    return run


def deepinv_dps_with(**options: object) -> Method:
    """deepinv's DPS with keyword ``options`` (weight, guidance, solver, schedule) on top of its
    defaults; the ancestral solvers (ddpm, ancestral, ddim) make ``num_steps − 1`` denoiser calls
    (none at the final t = 0); Euler, and the VE schedule (σ(0) = 0.001), make one more (a final
    denoising)."""

    def run(net, physics, y01, indices, steps, seed):
        torch.manual_seed(seed + indices[0])
        model = dinv.sampling.DPS(DeepinvDenoiser(net), num_steps=steps + 1, **options)
        return from_deepinv_image(model(y01, physics).float())

    return run


deepinv_dps = deepinv_dps_with()

DPS_OPTIONS = {"weight": float, "guidance": str, "solver": str, "schedule": str}


def parse_dps_options(text: str) -> dict[str, object]:
    """``"weight=100,guidance=annealed"`` → ``{"weight": 100.0, "guidance": "annealed"}``."""
    options: dict[str, object] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in DPS_OPTIONS or not value:
            raise argparse.ArgumentTypeError(
                f"{item!r}: give KEY=VALUE pairs, KEY one of {', '.join(DPS_OPTIONS)}"
            )
        options[key] = DPS_OPTIONS[key](value.strip())
    if not options:
        raise argparse.ArgumentTypeError("give at least one KEY=VALUE pair")
    return options


def dps_row_name(options: dict[str, object]) -> str:
    described = ", ".join(
        f"weight {v:g}" if k == "weight" else f"{k} {v}" for k, v in options.items()
    )
    return f"deepinv DPS ({described})"


def deepinv_ddrm(net, physics, y01, indices, steps, seed):
    torch.manual_seed(seed + indices[0])
    model = dinv.sampling.DDRM(DeepinvDenoiser(net), sigmas=np.linspace(1, 0, steps))
    return from_deepinv_image(model(y01, physics).float())


def pseudo_inverse(net, physics, y01, indices, steps, seed):
    op = from_physics(physics, IMAGE_SHAPE, batch_size=len(indices))
    return op.pinv(op.from_deepinv_measurement(y01))


METHODS: dict[str, tuple[str, Method]] = {  # the default rows; --methods picks by these names
    "A⁺y": ("", pseudo_inverse),
    "invfussion DPS": ("DPS", ours("DPS")),
    "deepinv DPS": ("DPS", deepinv_dps),
    "invfussion DDRM": ("DDRM", ours("DDRM")),
    "deepinv DDRM": ("DDRM", deepinv_ddrm),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=20, help="balanced digits of --split")
    parser.add_argument(
        "--split",
        default="test",
        choices=("validation", "test"),
        help="digits to measure (choose settings on validation; the table is on test)",
    )
    parser.add_argument(
        "--methods",
        nargs="*",
        default=list(METHODS),
        metavar="NAME",
        help=f"default rows to run (of {', '.join(repr(m) for m in METHODS)}; none: extras only)",
    )
    parser.add_argument(
        "--deepinv-dps",
        type=parse_dps_options,
        action="append",
        default=[],
        metavar="KEY=VALUE,…",
        help="an extra row of deepinv's DPS with these settings (weight=, guidance=norm|annealed, "
        "solver=ddpm|ancestral|ddim|euler, schedule=vp|ve); repeatable",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="steps of every method (default DPS 1000, DDRM 25)"
    )
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--model", default="mnist32-unconditional")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown --methods {unknown}; choose from {list(METHODS)}")
    methods = {name: METHODS[name] for name in METHODS if name in args.methods}
    for options in args.deepinv_dps:
        methods[dps_row_name(options)] = ("DPS", deepinv_dps_with(**options))

    net = sampling.NFECounter(models.load(args.model))  # counts the denoiser calls per batch
    images, _ = load_mnist(args.split)
    x = images[balanced_indices(args.num_images, args.split)]
    cases = physics_cases(args.seed)
    measurements = {}
    for column, physics in cases.items():
        torch.manual_seed(args.seed)
        measurements[column] = physics(to_deepinv_image(x))  # one y₀₁ per image, for every method

    results: dict[tuple[str, str], tuple[float, float, float]] = {}
    batches = [
        list(range(s, min(s + args.batch_size, args.num_images)))
        for s in range(0, args.num_images, args.batch_size)
    ]
    bar = tqdm(total=len(methods) * len(cases) * len(batches), desc="crosscheck")
    for method, (family, run) in methods.items():
        steps = args.steps or DEFAULT_STEPS.get(family, 0)
        for column, physics in cases.items():
            outputs, start = [], time.perf_counter()
            net.reset()
            for indices in batches:
                outputs.append(
                    run(net, physics, measurements[column][indices], indices, steps, args.seed)
                )
                bar.update()
            seconds = (time.perf_counter() - start) / args.num_images
            psnr_db = float(psnr(torch.cat(outputs), x).mean())
            results[method, column] = (psnr_db, seconds, net.nfe / len(batches))
    bar.close()

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"commit {commit or '?'}, model {args.model}, "
        f"{args.num_images} balanced {args.split} digits, "
        f"deepinv {dinv.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    head = ["method", *(f"{c} PSNR↑" for c in cases), "NFE (measured)", "s/image (median)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for method in methods:
        psnrs = [f"{results[method, c][0]:.2f}" for c in cases]
        nfe = max(results[method, c][2] for c in cases)
        seconds = float(np.median([results[method, c][1] for c in cases]))
        print("| " + " | ".join([method, *psnrs, f"{nfe:g}", f"{seconds:.3f}"]) + " |")


if __name__ == "__main__":
    main()
