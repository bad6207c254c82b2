"""Restoring images with a trained model: one entry point for every method, the files a
restoration writes, and the one-command demo on the embedded digits.

Methods:
- ``posterior``: EDM posterior samples from a conditional (InvFussion / Palette) model;
- ``posterior-mean``: the mean of ``num_samples`` such samples (one output, ``num_samples``
  times a sample's NFE);
- ``mmse``: the one-call MMSE estimate (NOTES §5) from a conditional model;
- ``lmmse``: the linear-MMSE floor (NOTES §4) under a Gaussian prior fitted to the model's
  training data; it never calls the network (NFE 0), so it works with any loaded model;
- ``nppc``: the MMSE estimate and the posterior principal components from one call of a model
  trained with ``--objective nppc`` (e.g. ``mnist32-nppc``);
- ``dps``, ``ddrm``, ``ddnm``, ``pigdm``, ``daps``: zero-shot samplers driving the model's
  unconditional mode (``op=None``), the way the paper runs them on an unconditional model;
- ``posterior+ddnm``, ``posterior+pigdm``, ``posterior+dps``: those samplers' consistency steps
  driven by the conditional model itself (InvFussion with ``op`` and ``y`` bound), from noise;
  ``mmse+ddnm``, ``mmse+pigdm``, ``mmse+dps``: the same from the one-call MMSE, a short trajectory
  (:mod:`invfussion.sampling.consistency`).

Consistent outputs (``consistent=True``, any method): each output ``x̂`` is moved onto the
measurement, ``x̂ + A⁺_σ(y − A x̂)`` (:func:`make_consistent`): for noiseless examples the exact
orthogonal projection onto ``{x : A x = y}`` (``op.project``), which never moves an estimate away
from the truth (the truth lies in that set); for noisy ones its noise-aware form with the
regularised inverse ``op.pinv_noisy``. :func:`restore` then reports them beside the plain outputs
as ``<method>+consistent``.

A class-conditional model takes a class per image and a guidance weight ``cfg`` for every method
that calls the network (:func:`sampling.guided`: ``D_null.lerp(D_c, w)``, two calls per
evaluation, so the NFE doubles); ``lmmse`` has no class and ignores them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from . import seeding
from .data.images import FORMATS, ImageError, read_image
from .degradations import NoiseLevels, Operator, ZeroOperator
from .metrics import consistency as measurement_consistency
from .metrics import psnr
from .sampling import check_guidance, consistency, guided, lmmse, mmse, nppc, posterior, posterior_mean, zeroshot
from .sampling.guidance import calls_per_evaluation
from .sampling.lmmse import training_prior
from .sampling.uncertainty import principal_shift, sample_pca
from .training.grid import save_image_grid

CONDITIONAL_METHODS = ("posterior", "posterior-mean", "mmse", "nppc", *consistency.METHODS)
ONE_CALL_METHODS = ("mmse", "nppc", "posterior-mean", "lmmse")  # one output per image, no samples to take a PCA of
METHODS = (*CONDITIONAL_METHODS, "lmmse", *zeroshot.METHODS)
CONSISTENT = "+consistent"
"""Suffix of a method's consistent outputs in results and tables (``mmse+consistent``)."""


@dataclass
class Restoration:
    """What restoring a batch of ``B`` measurements produced.

    Attributes:
        pinv: ``(B, C, H, W)`` the pseudo-inverse ``A⁺y``.
        outputs: per method, ``(B, S, C, H, W)`` (``S`` samples; 1 for ``mmse``).
        nfe: per method, denoiser calls per output image.
        seconds: per method, wall-clock seconds per output image.
        reference: ``(B, C, H, W)`` clean images when known.
        components: per method, principal components of its posterior: ``(mean (B, C, H, W),
            orthonormal directions (B, K, C, H, W), stds (B, K))`` — predicted by ``nppc``, or the
            sample PCA of a sampling method's outputs when asked for.
    """

    pinv: Tensor
    outputs: dict[str, Tensor] = field(default_factory=dict)
    nfe: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    reference: Tensor | None = None
    components: dict[str, tuple[Tensor, Tensor, Tensor]] = field(default_factory=dict)


def noise_note(net: torch.nn.Module, op: Operator) -> str | None:
    """One line when ``op``'s measurement noise lies outside what the conditional model ``net`` was
    trained on (``None`` otherwise, for unconditional models, and for models with no record)."""
    trained = getattr(net, "trained_noise", None)
    sigma = float(op.noise_std.max()) if op.batch_size else 0.0
    if trained is None or sigma == 0 or getattr(net, "conditioning", None) == "unconditional":
        return None
    levels = NoiseLevels.parse(trained)
    if not levels.noisy:
        return (f"this model was trained on noiseless measurements; at σ_y = {sigma:g} expect a degraded "
                "answer (a model trained with --noise, e.g. 0:0.2,zero=0.5, covers noisy ones).")
    if sigma > levels.high * (1 + 1e-6):
        return f"σ_y = {sigma:g} is above the noise this model was trained on ({levels}); the answer may be poor."
    return None


def family_note(net: torch.nn.Module, op_spec: str) -> str | None:
    """One line when the family of ``op_spec`` is not among the conditional model's recorded
    training specs (``None`` otherwise, and for models that record none)."""
    families = getattr(net, "trained_families", None)
    if not families or getattr(net, "conditioning", None) == "unconditional":
        return None
    names = {spec.split(":")[0].strip() for spec in families}
    name = op_spec.split(":")[0].strip()
    if name in names:
        return None
    return (f"{name} is outside this model's training family ({', '.join(sorted(names))}); "
            "expect a degraded answer, or pick one of those.")


def check_method(method: str, net: torch.nn.Module, op: Operator) -> None:
    """Raise ``ValueError`` if ``method`` is unknown, or needs a conditional model and ``net`` is an
    unconditional one asked to restore a non-zero operator (the zero operator is plain sampling)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    unconditional = getattr(net, "conditioning", None) == "unconditional"
    if method in CONDITIONAL_METHODS and unconditional and not isinstance(op, ZeroOperator):
        raise ValueError(
            f"method {method!r} needs a conditional (invfussion or palette) model; use a zero-shot "
            f"method ({', '.join(zeroshot.METHODS)}) with an unconditional model."
        )
    if method == "nppc" and not getattr(net, "pcs", 0):
        raise ValueError("method 'nppc' needs a model with a principal-component head; pass --model mnist32-nppc or a model trained with --objective nppc.")
    if method == "lmmse" and not getattr(net, "train_data", None):
        raise ValueError("method 'lmmse' fits its prior to the model's training data, which this model does not name; load a checkpoint or exported model with models.load.")


@torch.no_grad()  # DPS and ΠGDM switch gradients on around their own network calls
def run_method(
    method: str,
    net: torch.nn.Module,
    op: Operator,
    y: Tensor,
    num_samples: int = 1,
    seed: int = 0,
    indices: list[int] | None = None,
    steps: int | None = None,
    solver: str = "heun",
    progress: bool = False,
    class_labels: Tensor | None = None,
    cfg: float | None = None,
    consistent: bool = False,
) -> tuple[Tensor, int]:
    """Run one method on measurements ``y: (B, M)`` of ``op``.

    ``class_labels: (B,)`` in ``[0, net.num_classes)`` and ``cfg`` (needs a class) condition a
    class-conditional model (module docstring). Returns ``(B, S, C, H, W)`` outputs
    (``S = num_samples``, 1 for the ``ONE_CALL_METHODS``) and the NFE per output image. Output
    ``(b, s)`` depends on ``(seed, indices[b], s)`` only. ``consistent``: the outputs after
    :func:`make_consistent` (same NFE).
    """
    if consistent:
        out, nfe = run_method(method, net, op, y, num_samples, seed, indices, steps, solver, progress,
                              class_labels, cfg)
        return make_consistent(op, out, y), nfe
    check_method(method, net, op)
    check_guidance(net, class_labels, cfg)
    net, calls = guided(net, class_labels, cfg), calls_per_evaluation(cfg)
    if method == "mmse":
        return mmse(net, op, y, seed=seed, indices=indices)[:, None], calls
    if method == "nppc":
        return nppc(net, op, y, seed=seed, indices=indices)[0][:, None], calls
    if method == "lmmse":
        return lmmse(training_prior(net.train_data, op.image_shape), op, y)[:, None], 0
    if method in ("posterior", "posterior-mean"):
        steps = steps or 32
        nfe = (2 * steps - 1 if solver == "heun" else steps) * calls
        options = {"steps": steps, "solver": solver, "seed": seed, "indices": indices, "progress": progress}
        if method == "posterior-mean":
            return posterior_mean(net, op, y, num_samples, **options)[:, None], num_samples * nfe
        return posterior(net, op, y, num_samples=num_samples, **options), nfe
    if consistency.parse_method(method):
        start, step = consistency.parse_method(method)
        outs = [
            consistency.consistent_sample(net, op, y, step, start, steps, seed=seeding.example_seed(seed, s, f"replicate/{method}"),
                                          indices=indices, progress=progress)
            for s in range(num_samples)
        ]
        return torch.stack(outs, dim=1), consistency.nfe(start, step, steps) * calls
    options = {} if steps is None else {"steps": steps}
    sampler = zeroshot.get(method)
    outs = [
        sampler(net, op, y, seed=seeding.example_seed(seed, s, f"replicate/{method}"), indices=indices,
                progress=progress, **options)
        for s in range(num_samples)
    ]
    return torch.stack(outs, dim=1), zeroshot.nfe(method, **options) * calls


def make_consistent(op: Operator, x: Tensor, y: Tensor) -> Tensor:
    """``x̂ + A⁺_σ(y − A x̂)`` for every output of ``x: (B, S, C, H, W)`` and ``y: (B, M)``: the
    exact projection ``op.project`` onto ``{x : A x = y}`` where ``σ_y = 0``, its noise-aware form
    (``op.pinv_noisy``) where ``σ_y > 0``."""
    return x + op.pinv_noisy(y[:, None] - op.A(x))


def restore(
    net: torch.nn.Module,
    op: Operator,
    y: Tensor,
    methods: list[str],
    num_samples: int = 2,
    seed: int = 0,
    steps: int | None = None,
    solver: str = "heun",
    reference: Tensor | None = None,
    progress: bool = False,
    uncertainty: int = 0,
    class_labels: Tensor | None = None,
    cfg: float | None = None,
    consistent: bool = False,
) -> Restoration:
    """Restore ``y: (B, M)`` with each of ``methods``; see :func:`run_method` (also for
    ``class_labels: (B,)`` and ``cfg``).

    ``nppc`` also yields its principal components; ``uncertainty = K > 0`` adds the top-``K``
    sample-PCA components of every sampling method (needs ``num_samples ≥ 2``). ``consistent``
    adds each method's outputs after :func:`make_consistent` as ``<method>+consistent`` (same
    NFE; sample PCA too where asked).
    """
    for method in methods:
        check_method(method, net, op)
    check_guidance(net, class_labels, cfg)
    sampling_methods = [m for m in methods if m not in ONE_CALL_METHODS]
    if uncertainty and sampling_methods and num_samples < 2:
        raise ValueError("uncertainty maps need at least 2 samples per image; pass --num-samples 2 or more.")
    result = Restoration(pinv=op.pinv(y), reference=reference)
    for method in methods:
        start = time.perf_counter()
        if method == "nppc":  # run_method's output plus the components
            result.components[method] = nppc(guided(net, class_labels, cfg), op, y, seed=seed)
            out, nfe = result.components[method][0][:, None], calls_per_evaluation(cfg)
        else:
            out, nfe = run_method(method, net, op, y, num_samples, seed, None, steps, solver, progress,
                                  class_labels, cfg)
        result.seconds[method] = (time.perf_counter() - start) / (out.shape[0] * out.shape[1])
        result.outputs[method], result.nfe[method] = out, nfe
        names = [method]
        if consistent:
            names.append(method + CONSISTENT)
            result.outputs[names[1]], result.nfe[names[1]] = make_consistent(op, out, y), nfe
            result.seconds[names[1]] = (time.perf_counter() - start) / (out.shape[0] * out.shape[1])
        if uncertainty and method in sampling_methods:
            for name in names:
                result.components[name] = sample_pca(result.outputs[name], uncertainty)
    return result


def summarize(result: Restoration, op: Operator, y: Tensor) -> dict[str, dict[str, float]]:
    """Per method: mean PSNR of the outputs and of their average and mean SSIM of the outputs
    (when the reference is known; SSIM on images of at least 11×11 pixels), mean consistency
    ``‖y − A x̂‖²``, NFE and seconds per image."""
    from .metrics import SSIM_MIN_SIZE, ssim

    table: dict[str, dict[str, float]] = {}
    for method, out in result.outputs.items():
        row = {
            "consistency": float(torch.stack([measurement_consistency(op, o, y) for o in out.unbind(1)]).mean()),
            "nfe": result.nfe[method],
            "seconds_per_image": result.seconds[method],
        }
        if result.reference is not None:
            row["psnr"] = float(torch.stack([psnr(o, result.reference) for o in out.unbind(1)]).mean())
            row["psnr_of_mean"] = float(psnr(out.mean(1), result.reference).mean())
            if min(result.reference.shape[-2:]) >= SSIM_MIN_SIZE:
                row["ssim"] = float(torch.stack([ssim(o, result.reference) for o in out.unbind(1)]).mean())
        table[method] = row
    return table


def write_restoration(result: Restoration, out_dir: str | Path, summary: dict | None = None) -> list[Path]:
    """Write PNGs (``reference``, ``pinv``, ``<method>-<s>``, a ``grid`` with each column's name
    above it) and ``metrics.json`` for the first example of ``result``. For each method with
    principal components: ``<method>-pc<k>-minus`` / ``-plus`` (the mean ∓ 2σ_k u_k) and, for
    sampling methods, the per-pixel std map ``<method>-std`` (scaled to its maximum)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    columns, labels = ([], []) if result.reference is None else ([result.reference[:1]], ["reference"])
    images = {"reference": result.reference, "pinv": result.pinv}
    columns.append(result.pinv[:1])
    labels.append("A+y (pinv)")
    for method, out in result.outputs.items():
        for s in range(out.shape[1]):
            images[f"{method}-{s:03d}" if out.shape[1] > 1 else method] = out[:, s]
            columns.append(out[:1, s])
            labels.append(f"{method} {s}" if out.shape[1] > 1 else method)
        if method in result.components:
            mean, directions, stds = (t[:1] for t in result.components[method])
            if out.shape[1] > 1:
                std_map = out[:1].std(dim=1)
                images[f"{method}-std"] = std_map / std_map.amax().clamp_min(1e-8) * 2 - 1
            for k in range(directions.shape[1]):
                images[f"{method}-pc{k}-minus"], images[f"{method}-pc{k}-plus"] = principal_shift(mean, directions, stds, k)
    for name, image in images.items():
        if image is not None:
            written.append(save_image_grid([image[:1]], out_dir / f"{name}.png", pad=0))
    written.append(save_image_grid(columns, out_dir / "grid.png", labels=labels))
    if summary is not None:
        path = out_dir / "metrics.json"
        path.write_text(json.dumps(summary, indent=2) + "\n")
        written.append(path)
    return written


def load_image(
    path: str | Path, image_shape: tuple[int, int, int], value_range: tuple[float, float] | None = None
) -> tuple[Tensor, list[str]]:
    """An image file as ``(1, C, H, W)`` in [-1, 1] for a model of ``(C, H, W)``, and a note for
    each conversion made (:func:`invfussion.data.images.read_image`: channels converted, other
    sizes centre-cropped and resized, ``value_range`` windowing high-bit-depth values)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input image {path} does not exist; pass an existing {FORMATS} file.")
    try:
        x, notes = read_image(path.read_bytes(), image_shape, value_range)
    except ImageError as exc:
        if exc.reason in ("values out of range", "not finite", "unsupported"):
            raise ValueError(f"{path}: {exc}.") from None
        raise ValueError(f"cannot read {path} as an image: {exc}; pass a valid {FORMATS} file.") from None
    return x[None], notes


DEMO_DEGRADATIONS = ("motion-blur", "inpaint-patches", "matrix", "outpaint-box")


def demo(
    out_dir: str | Path,
    model: str = "mnist32-invfussion",
    num_images: int = 8,
    seed: int = 0,
    degradations: tuple[str, ...] = DEMO_DEGRADATIONS,
    progress: bool = True,
) -> tuple[Path, str]:
    """Restore ``num_images`` embedded test digits under each degradation with a shipped model.

    Writes one PNG grid (per row: clean | A⁺y | 2 posterior samples | MMSE, the degradations
    one below the other) and returns its path and a Markdown PSNR table.
    """
    from . import degradations as deg
    from .data import balanced_indices, load_mnist
    from .models import load

    net = load(model)
    images, _ = load_mnist("test")
    x = images[balanced_indices(num_images, "test")]
    rows, table = [], ["| degradation | A⁺y | posterior (per sample, 2) | MMSE |", "|---|---|---|---|"]
    for family in tqdm(degradations, desc="demo", disable=not progress):
        op = deg.from_spec(family, image_shape=tuple(x.shape[1:]), batch=num_images, seed=seed)
        y = op.measure(x, seed=seed)
        result = restore(net, op, y, ["posterior", "mmse"], num_samples=2, seed=seed, reference=x)
        summary = summarize(result, op, y)
        table.append(
            f"| {family} | {float(psnr(result.pinv, x).mean()):.2f} | {summary['posterior']['psnr']:.2f} | "
            f"{summary['mmse']['psnr']:.2f} |"
        )
        post = result.outputs["posterior"]
        rows.append([x, result.pinv, post[:, 0], post[:, 1], result.outputs["mmse"][:, 0]])
    columns = [torch.cat([r[k] for r in rows]) for k in range(5)]
    grid = save_image_grid(columns, Path(out_dir) / "demo.png")
    return grid, "\n".join(["PSNR (dB) on the embedded test digits, " + model, "", *table])
