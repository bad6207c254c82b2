"""Comparing restoration methods on the embedded MNIST benchmark (the paper's Table 1 protocol).

A *cell* is one (method, degradation) pair: its PSNR (mean over images and samples), FD and
C-FD (first sample per image, features of the shipped MNIST classifier, against the clean digits
of the evaluated split), consistency ``‖y − A x̂‖²``, NFE and seconds per image. Finished cells are
written to the results JSON at once (atomically), so an interrupted evaluation resumes where it
stopped.

With ``consistent`` every method also gets a ``<method>+consistent`` cell and row: the same
outputs moved onto the measurement (``restoration.make_consistent``), at the same NFE.

A class-conditional model can be given each digit's own label (``class_labels="true"``) and a
guidance weight ``cfg``; the cell's key and row name then carry both (``…:posterior[class=true,
cfg=2] @ …``), so cells of different class settings never mix. On the MNIST digits every cell
also holds the shipped classifier's accuracy on the first samples against the digits' labels.

Every run records which requested cells it took from the file (``"reused"``), and with fewer than
50 images what an FD of so few means (``"fd_note"``).

On the user's own images (``data``: a folder or zip, its first ``num_images``, read for the first
model's shape as ``restore --input`` reads an image, each conversion noted) FD and C-FD use
Inception-v3 features from a local weights file (``fd_weights``); without one they are skipped and
the results say why (``"fd_skipped"``): the MNIST classifier's features mean nothing there.

Every cell also holds the mean SSIM (images of at least 11×11 pixels) and, with ``lpips_weights``
(a torchvision backbone file and the ``lpips`` heads file, see :class:`invfussion.metrics.LPIPS`),
the mean LPIPS of the first samples.

A *protocol* (``protocol=NAME``, one of :data:`PROTOCOLS`) fixes the task list of a published
comparison — its operators, their settings and ``σ_y`` — in place of ``degradations``: ``dps256``,
the DPS/DAPS 256² tasks, and ``small64``, the same tasks scaled to 64² for CPUs. Its definition is
written into the results file (``"protocol"``) so that others can rerun exactly those operators.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from . import degradations as deg
from .metrics import (
    LPIPS,
    SSIM_MIN_SIZE,
    FeatureExtractor,
    InceptionFeatures,
    MnistFeatures,
    consistency,
    frechet_distance,
    psnr,
    ssim,
)
from .metrics.inception import WEIGHTS_FILE
from .restoration import CONSISTENT, check_method, make_consistent, noise_note, run_method
from .sampling import check_guidance
from .sampling.guidance import check_cfg
from .storage import write_text_atomically

RESULTS_FORMAT = "invfussion-evaluation/1"


@dataclass(frozen=True)
class Protocol:
    """A published task list: ``tasks`` maps a table column to its operator spec."""

    name: str
    resolution: int
    tasks: dict[str, str]
    description: str


def _literature_tasks(blur: int, std: float, box: int, noise: float = 0.05) -> dict[str, str]:
    return {
        f"Gaussian blur {blur}/σ{std:g}": f"gaussian-blur:size={blur},std={std:g},boundary=reflect,noise={noise:g}",
        f"motion blur {blur}/0.5": f"motion-kernel-blur:size={blur},intensity=0.5,boundary=circular,noise={noise:g}",
        "SR ×4 bicubic": f"sr-bicubic:factor=4,noise={noise:g}",
        "in-painting random 70%": f"inpaint-random:missing=0.7,noise={noise:g}",
        f"in-painting box {box}²": f"inpaint-box:size={box},noise={noise:g}",
    }


PROTOCOLS = {
    p.name: p
    for p in (
        Protocol(
            "dps256", 256, _literature_tasks(61, 3.0, 128),
            "DPS (Chung et al. 2023) / DAPS (Zhang et al. 2025) 256² tasks, σ_y = 0.05 on [-1, 1]: "
            "Gaussian blur 61×61 std 3, motion blur 61×61 intensity 0.5 (our camera-shake kernels, "
            "not their motionblur package's), 4× bicubic SR, 70% random pixels missing, a 128×128 box "
            "at a random place; Gaussian blur with mirrored edges as theirs (exact A⁺), circular motion blur (its exact A⁺; "
            "with mirrored or zero-padded edges A⁺ is only approximated by conjugate gradients)",
        ),
        Protocol(
            "small64", 64, _literature_tasks(15, 0.75, 32),
            "dps256 scaled to 64² for CPUs: kernels 15×15 (Gaussian std 0.75), 4× bicubic SR, "
            "70% random pixels missing, a 32×32 box; σ_y = 0.05",
        ),
    )
}
"""The task lists ``evaluate --protocol NAME`` runs."""


@dataclass
class EvaluationSpec:
    """What to evaluate.

    Attributes:
        models: key → shipped name or checkpoint path, e.g. ``{"invfussion": "mnist32-invfussion"}``.
        methods: ``"key:method"`` entries, e.g. ``"invfussion:posterior"``, ``"unconditional:ddrm"``,
            ``"invfussion:lmmse"`` (the linear-MMSE floor under the model's training data; no network call).
        degradations: operator specs (``noise=σ_y`` for noisy columns).
        num_images: how many digits of ``split`` (balanced over classes, see :func:`invfussion.data.balanced_indices`).
        split: the embedded MNIST split: ``"test"`` for the final tables, ``"validation"`` for recipe choices.
        samples_per_image: posterior samples per digit (PSNR averages over them).
        steps: sampler steps (``None``: each method's default budget).
        solver: the posterior sampler's ODE solver (``heun``, ``euler`` or ``dpmpp2m``).
        data: a folder or zip of the user's images to evaluate on instead of the MNIST ``split``.
        fd_weights: Inception-v3 weights file for FD on ``data`` (see :class:`invfussion.metrics.InceptionFeatures`).
        class_labels: ``"true"``: condition every network call on each digit's own label (a
            class-conditional model); ``None``: no class.
        cfg: classifier-free guidance weight (needs ``class_labels``); ``None``: no guidance.
        consistent: also report every method's outputs moved onto the measurement
            (:func:`~invfussion.restoration.make_consistent`) as cells and rows ``<method>+consistent``.
        protocol: a name in :data:`PROTOCOLS`: its tasks replace ``degradations`` (which must be empty).
        lpips_weights: ``(backbone, heads)`` files for LPIPS (:meth:`invfussion.metrics.LPIPS.from_files`).
    """

    models: dict[str, str]
    methods: list[str]
    degradations: list[str]
    num_images: int = 500
    samples_per_image: int = 1
    seed: int = 0
    steps: int | None = None
    batch_size: int = 100
    device: str = "cpu"
    split: str = "test"
    data: str | None = None
    fd_weights: str | None = None
    compile: bool = False  # torch.compile the networks (models.compile_denoiser)
    class_labels: str | None = None
    cfg: float | None = None
    consistent: bool = False
    solver: str = "heun"
    protocol: str | None = None
    lpips_weights: tuple[str, str] | None = None

    def method_pairs(self) -> list[tuple[str, str]]:
        pairs = []
        for entry in self.methods:
            key, sep, method = entry.partition(":")
            if not sep or key not in self.models:
                raise ValueError(
                    f"method {entry!r} must read KEY:METHOD with KEY one of {', '.join(self.models)}; "
                    "e.g. invfussion:posterior."
                )
            pairs.append((key, method))
        return pairs


def method_name(model: str, method: str, class_labels: str | None = None, cfg: float | None = None) -> str:
    """A table row: ``model:method``, with its class setting in brackets when it has one."""
    settings = ([] if class_labels is None else [f"class={class_labels}"]) + ([] if cfg is None else [f"cfg={cfg:g}"])
    return f"{model}:{method}" + (f"[{','.join(settings)}]" if settings else "")


def cell_key(model: str, method: str, spec: str, class_labels: str | None = None, cfg: float | None = None) -> str:
    return f"{method_name(model, method, class_labels, cfg)} @ {spec}"


def _load_results(path: Path, spec: EvaluationSpec) -> dict:
    if not path.exists():
        return {}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); delete it or pass another --out.") from None
    if record.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{path} is not an invfussion evaluation file; pass another --out.")
    saved = {"split": "test", "solver": "heun", **record["spec"]}  # older files: test digits, Heun
    same = {k: saved.get(k) for k in ("num_images", "samples_per_image", "seed", "steps", "solver", "models", "split",
                                      "data")}
    want = {k: getattr(spec, k) for k in same}
    if same != want:
        raise ValueError(f"{path} was made with other settings ({same}); pass another --out to start afresh.")
    return record.get("cells", {})


def evaluate_cell(
    net: torch.nn.Module, method: str, spec_text: str, x: Tensor, spec: EvaluationSpec,
    features: FeatureExtractor | None, reference_features: Tensor | None, class_labels: Tensor | None = None,
    reference_labels: Tensor | None = None, perceptual: torch.nn.Module | None = None,
) -> dict[str, dict]:
    """Metrics of one method on one degradation over the clean images ``x: (N, C, H, W)``
    (FD and C-FD ``None`` without ``features``), conditioned on ``class_labels: (N,)`` with
    ``spec.cfg`` when given; ``class_accuracy``: the MNIST classifier's accuracy on the first
    samples against ``reference_labels: (N,)`` (``None`` without them or that classifier).

    Returns ``{method: row}``, and with ``spec.consistent`` also ``{method+consistent: row}`` of
    the same outputs after :func:`~invfussion.restoration.make_consistent` (its seconds include
    the method's)."""
    n = x.shape[0]
    probe = deg.from_spec(spec_text, image_shape=tuple(x.shape[1:]), batch=1, seed=spec.seed)
    noisy = bool((probe.noise_std > 0).any())
    check_method(method, net, probe)
    names = [method, method + CONSISTENT] if spec.consistent else [method]
    psnrs, ssims, lpipss, consist, firsts, projected = ({name: [] for name in names} for _ in range(6))
    structural = min(x.shape[-2:]) >= SSIM_MIN_SIZE
    seconds, nfe = dict.fromkeys(names, 0.0), 0
    for start in tqdm(range(0, n, spec.batch_size), desc=f"{method} @ {spec_text}", leave=False):
        idx = list(range(start, min(start + spec.batch_size, n)))
        op = deg.from_spec(spec_text, image_shape=tuple(x.shape[1:]), indices=idx, seed=spec.seed, device=spec.device)
        xb = x[idx].to(spec.device)
        y = op.measure(xb, seed=spec.seed, indices=idx)
        t0 = time.perf_counter()
        labels = None if class_labels is None else class_labels[idx].to(spec.device)
        out, nfe = run_method(method, net, op, y, spec.samples_per_image, spec.seed, idx, spec.steps, spec.solver,
                              class_labels=labels, cfg=spec.cfg)
        seconds[method] += time.perf_counter() - t0
        outputs = {method: out}
        if spec.consistent:
            outputs[names[1]] = make_consistent(op, out, y)
            seconds[names[1]] += time.perf_counter() - t0
        for name, out in outputs.items():
            psnrs[name].append(torch.stack([psnr(o, xb) for o in out.unbind(1)], 1).cpu())
            if structural:
                ssims[name].append(torch.stack([ssim(o, xb) for o in out.unbind(1)], 1).cpu())
            if perceptual is not None:
                lpipss[name].append(perceptual(out[:, 0], xb).double().cpu())
            consist[name].append(consistency(op, out[:, 0], y).cpu())
            firsts[name].append(out[:, 0].cpu())
            if not noisy:
                projected[name].append(op.project(out[:, 0], y).cpu())
    rows = {}
    for name in names:
        first = torch.cat(firsts[name])
        rows[name] = {
            "psnr": float(torch.cat(psnrs[name]).mean()),
            "ssim": float(torch.cat(ssims[name]).mean()) if structural else None,
            "lpips": float(torch.cat(lpipss[name]).mean()) if perceptual is not None else None,
            "fd": None if features is None else frechet_distance(features(first), reference_features),
            "c_fd": None if noisy or features is None
            else frechet_distance(features(torch.cat(projected[name])), reference_features),
            "consistency": float(torch.cat(consist[name]).mean()),
            "class_accuracy": None if reference_labels is None or not isinstance(features, MnistFeatures)
            else float((features.classify(first) == reference_labels.cpu()).double().mean()),
            "nfe": int(nfe),
            "seconds_per_image": seconds[name] / (n * spec.samples_per_image),
            "images": n,
        }
    return rows


def clean_images(spec: EvaluationSpec, image_shape: tuple[int, int, int] = (1, 32, 32)) -> tuple[Tensor, Tensor | None]:
    """``(N, C, H, W)`` in [-1, 1]: ``num_images`` balanced digits of the MNIST ``split`` and their
    labels ``(N,)``, or the first ``num_images`` images of ``spec.data`` (:func:`data_images`) and ``None``."""
    from .data import balanced_indices, load_mnist

    if spec.data is not None:
        return data_images(spec, image_shape)[0], None
    images, labels = load_mnist(spec.split)
    chosen = balanced_indices(spec.num_images, spec.split)
    return images[chosen], labels[chosen]


def data_images(spec: EvaluationSpec, image_shape: tuple[int, int, int]) -> tuple[Tensor, list[str]]:
    """The first ``num_images`` images of ``spec.data`` as ``(N, C, H, W)`` in [-1, 1] for a model of
    ``image_shape``, read as ``restore --input`` reads one (:func:`invfussion.data.images.read_image`),
    and one note per kind of conversion made, with how many images it changed."""
    from collections import Counter

    from .data import ImageError, open_dataset

    dataset = open_dataset(spec.data)
    if len(dataset) < spec.num_images:
        raise ValueError(
            f"{spec.data} holds {len(dataset)} images, fewer than --num-images {spec.num_images}; "
            f"pass --num-images {len(dataset)} or fewer."
        )
    images, notes = [], Counter()
    for i in range(spec.num_images):
        try:
            x, changes = dataset.read(i, image_shape)
        except ImageError as error:
            raise ValueError(f"{dataset.names[i]} in {spec.data}: {error}; fix or remove it.") from None
        images.append(x)
        notes.update(changes)
    return torch.stack(images), [f"{spec.data}: {note} ({n} of {spec.num_images} images)" for note, n in notes.items()]


SMALL_FD_SAMPLE = 50
"""Below this many images an FD says little beyond its own bias (see :func:`small_sample_note`)."""


def small_sample_note(num_images: int, dims: int) -> str | None:
    """What an FD from ``num_images`` images of ``dims`` features means, when they are few."""
    if num_images >= SMALL_FD_SAMPLE:
        return None
    return (f"FD and C-FD come from only {num_images} images: they fit a mean and a {dims}×{dims} feature covariance "
            f"to {num_images} points, so they are biased upward and noisy, comparable only with FDs of the same "
            f"{num_images} images; use --num-images {SMALL_FD_SAMPLE} or more (500 for tables).")


def fd_features(spec: EvaluationSpec) -> tuple[FeatureExtractor | None, str | None]:
    """The FD feature network, or ``None`` and why FD is skipped: Inception-v3 from
    ``spec.fd_weights`` when given, else the shipped MNIST classifier on the embedded digits."""
    if spec.fd_weights is not None:
        try:
            return InceptionFeatures(spec.fd_weights, device=spec.device), None
        except ImportError as error:
            raise RuntimeError(str(error)) from None
    if spec.data is None:
        return MnistFeatures(device=spec.device), None
    return None, (
        f"FD skipped: the MNIST classifier's features do not describe {spec.data}; pass --fd-weights "
        f"PATH (torch-fidelity's {WEIGHTS_FILE}, with `pip install torch-fidelity`) for Inception FD."
    )


def evaluate(spec: EvaluationSpec, out: str | Path) -> dict:
    """Evaluate every (method, degradation) cell of ``spec``; returns and writes the results JSON."""
    from .models import compile_denoiser, load
    from .training.loop import compile_note

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    protocol = resolve_protocol(spec)
    pairs = spec.method_pairs()
    for spec_text in spec.degradations:
        deg.parse_spec(spec_text)  # fail before any work on a bad spec
    if spec.class_labels not in (None, "true"):
        raise ValueError(f"class_labels must be 'true' or None, got {spec.class_labels!r}.")
    if spec.data == "mnist":
        raise ValueError("--data mnist: leave out --data to evaluate on the embedded digits (--split picks which).")
    if spec.class_labels is not None and spec.data is not None:
        raise ValueError("--class-labels true needs the embedded MNIST digits' labels; drop --data or --class-labels.")
    check_cfg(spec.class_labels is not None, spec.cfg)
    cells = _load_results(out, spec)
    record = {"format": RESULTS_FORMAT, "spec": asdict(spec), "cells": cells, "notes": []}
    if protocol is not None:
        record["protocol"] = asdict(protocol)
    perceptual = None if spec.lpips_weights is None else LPIPS.from_files(*spec.lpips_weights).to(spec.device)
    nets: dict[str, torch.nn.Module] = {}

    def net_of(key: str) -> torch.nn.Module:
        if key not in nets:
            nets[key] = load(spec.models[key], device=spec.device)
        return nets[key]

    if spec.data is not None:  # read at the first model's shape
        first = net_of(pairs[0][0])
        x, record["notes"] = data_images(spec, (first.img_channels, first.img_resolution, first.img_resolution))
        true_labels = None
    else:
        x, true_labels = clean_images(spec)
    if protocol is not None and tuple(x.shape[-2:]) != (protocol.resolution,) * 2:
        raise ValueError(
            f"protocol {protocol.name} is defined on {protocol.resolution}² images but the evaluation images are "
            f"{x.shape[-2]}×{x.shape[-1]} (model {pairs[0][0]}); pick the protocol of its resolution ({protocol_names()})."
        )
    labels = true_labels if spec.class_labels == "true" else None
    features, record["fd_skipped"] = fd_features(spec)
    reference_features = None if features is None else features(x.to(spec.device))
    record["fd_note"] = None if features is None else small_sample_note(spec.num_images, reference_features.shape[1])
    guidance = {"class_labels": spec.class_labels, "cfg": spec.cfg}
    variants = [""] + [CONSISTENT] * spec.consistent
    wanted = [(k, m, d) for d in spec.degradations for k, m in pairs]
    todo = [(k, m, d) for k, m, d in wanted if any(cell_key(k, m + v, d, **guidance) not in cells for v in variants)]
    record["reused"] = [cell_key(k, m + v, d, **guidance) for k, m, d in wanted if (k, m, d) not in todo
                        for v in variants]
    checked: set[str] = set()
    for key, method, spec_text in tqdm(todo, desc="cells"):
        if key not in checked:
            checked.add(key)
            net = net_of(key)
            if spec.compile:
                tqdm.write(f"note: {compile_note(torch.device(spec.device), skip='leave out --compile to skip it')}",
                           file=sys.stderr)
                compile_denoiser(net)
            shape = (net.img_channels, net.img_resolution, net.img_resolution)
            if tuple(x.shape[1:]) != shape:
                raise ValueError(
                    f"model {key} takes {shape} images but the evaluation images are {tuple(x.shape[1:])} "
                    f"(the first model's); evaluate models of different image shapes with separate --out files."
                )
            check_guidance(net, labels, spec.cfg)

        probe = deg.from_spec(spec_text, image_shape=tuple(x.shape[1:]), batch=1, seed=spec.seed)
        note = None if method == "lmmse" else noise_note(nets[key], probe)  # lmmse never calls the network
        if note and f"{key} @ {spec_text}: {note}" not in record["notes"]:
            record["notes"].append(f"{key} @ {spec_text}: {note}")
        rows = evaluate_cell(nets[key], method, spec_text, x, spec, features, reference_features, labels, true_labels,
                             perceptual)
        for name, row in rows.items():
            cells[cell_key(key, name, spec_text, **guidance)] = {
                "model": key, "method": name, "degradation": spec_text, **guidance, **row,
            }
        write_text_atomically(out, json.dumps(record, indent=2) + "\n")  # each finished cell at once
    write_text_atomically(out, json.dumps(record, indent=2) + "\n")  # also when none was left to do
    return record


def protocol_names() -> str:
    return ", ".join(f"{p.name} ({p.resolution}²)" for p in PROTOCOLS.values())


def resolve_protocol(spec: EvaluationSpec) -> Protocol | None:
    """The protocol of ``spec`` (its tasks become ``spec.degradations``), or ``None`` without one."""
    if spec.protocol is None:
        if not spec.degradations:
            raise ValueError("give --degradations SPEC ... or --protocol NAME (" + protocol_names() + ").")
        return None
    if spec.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {spec.protocol!r}; choose one of {protocol_names()}.")
    protocol = PROTOCOLS[spec.protocol]
    if spec.degradations and list(spec.degradations) != list(protocol.tasks.values()):
        raise ValueError(f"--protocol {spec.protocol} sets the degradations itself; leave out --degradations.")
    spec.degradations = list(protocol.tasks.values())
    return protocol


def markdown_table(record: dict) -> str:
    """The paper's table layout: one row per method; per degradation (the protocol's task names as
    headings, when there is one) PSNR, SSIM, LPIPS (when computed), FD and C-FD; NFE; s/image."""
    cells = record["cells"]
    degradations = list(dict.fromkeys(c["degradation"] for c in cells.values()))
    titles = {spec: task for task, spec in record.get("protocol", {}).get("tasks", {}).items()}

    def name(c: dict) -> str:
        return method_name(c["model"], c["method"], c.get("class_labels"), c.get("cfg"))

    methods = list(dict.fromkeys(name(c) for c in cells.values()))
    metrics = [("PSNR↑", "psnr"), ("SSIM↑", "ssim")]
    if any(c.get("lpips") is not None for c in cells.values()):
        metrics.append(("LPIPS↓", "lpips"))
    metrics += [("FD↓", "fd"), ("C-FD↓", "c_fd")]
    head = ["method"] + [f"{titles.get(d, d)} {m}" for d in degradations for m, _ in metrics] + ["NFE", "s/image"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(v: float | None, digits: int) -> str:
        return "–" if v is None else f"{v:.{digits}f}"

    for row_name in methods:
        row, nfe, secs = [row_name], None, []
        for d in degradations:
            c = next((c for c in cells.values() if name(c) == row_name and c["degradation"] == d), None)
            if c is None:
                row += [""] * len(metrics)
                continue
            row += [fmt(c.get(key), 3 if key in ("ssim", "lpips") else 2) for _, key in metrics]
            nfe = c["nfe"]
            secs.append(c["seconds_per_image"])
        row += [str(nfe), fmt(sorted(secs)[len(secs) // 2] if secs else None, 3)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
