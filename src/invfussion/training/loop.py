"""The training loop: ``train(TrainConfig(...))`` → path of the final checkpoint.

One step: this rank's slice of the global batch (see :mod:`.batches`) → objective (per-example
loss, averaged) → backward → non-finite gradient guard → Adam with warm-up and inverse-square-root
decay → EMA. Rank 0 logs (progress bar, ``RUN/log.jsonl``, TensorBoard when installed), writes a
preview grid every ``sample_every`` steps and a checkpoint every ``checkpoint_every`` steps, at the
end, and on SIGTERM/SIGINT; every ``val_every`` steps it validates the EMA network on held-out images
(:mod:`.validation`).

Exact resume: every random number of a step is drawn from per-example streams of (seed, global
example index), and torch's global generators (used only by dropout) are re-seeded from
(seed, step, rank) before each step, so a checkpoint needs no generator state: a run resumed from
step k reproduces the uninterrupted run bitwise on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import seeding
from ..sampling.uncertainty import principal_shift
from ..storage import LATEST
from . import distributed
from .batches import StepBatches
from .checkpoint import (
    checkpoint_stem,
    latest_checkpoint,
    load_checkpoint,
    optimizer_state_from_safe,
    optimizer_state_to_safe,
    prefixed,
    save_checkpoint,
    unprefixed,
)
from .ema import EMA
from .grid import save_image_grid
from .losses import OBJECTIVES, TrainingBatch, make_objective
from .validation import build_validator, headline

AMP_MODES = ("auto", "bf16", "fp16", "none")

# What runs written before a setting existed were trained with (not today's default).
HISTORIC_DEFAULTS = {"mmse_share": 0.0, "measurement_noise": "0", "nppc_variance_fit": "absolute"}

# Settings that may change when a run is resumed; every other field must match the checkpoint.
RESUMABLE_CHANGES = frozenset(
    {"steps", "out", "resume", "checkpoint_every", "keep_checkpoints", "sample_every", "sample_steps",
     "log_every", "num_workers", "device", "tensorboard", "init_from", "compile", "val_every", "val_data"}
)


@dataclass
class TrainConfig:
    """Everything that defines a training run (field names match the ``invfussion train`` flags).

    Schedule: ``lr(t) = lr · min((t+1)/warmup_steps, 1) / √max(t/lr_ref_steps, 1)``.
    EMA: half-life ``ema_half_life_images`` images, capped at ``ema_rampup · images seen``.
    """

    preset: str = "mnist32"
    conditioning: str = "invfussion"
    steps: int = 20_000
    batch_size: int = 64
    out: str = "runs/mnist32-invfussion"
    resume: bool = False
    seed: int = 0
    # data
    data: str = "mnist"
    resolution: int | None = None
    aug_p: float = 0.0
    xflip: bool = False
    label_dropout: float = 0.1
    # degradations (None: the paper's mixture); measurement_noise: σ_y of specs that set none, as
    # NoiseLevels text ("0.1", "0:0.2", "0:0.2,zero=0.5"), drawn per example
    degradations: list[str] | None = None
    degradation_weights: list[float] | None = None
    measurement_noise: str = "0:0.2,zero=0.5"
    # objective
    objective: str = "diffusion"
    p_mean: float = -0.8
    p_std: float = 1.6
    mmse_sigma: float = 100.0
    mmse_share: float = 0.25  # diffusion objective: share of conditional examples trained at the MMSE end
    pcs: int = 0  # NPPC directions the model outputs (objective nppc)
    nppc_ramp_steps: int = 500
    nppc_variance_fit: str = "relative"  # NPPCLoss: "relative" (won the A/B, BENCHMARKS.md) or "absolute" (the NPPC authors')
    init_from: str | None = None  # a model/checkpoint/run whose weights start a new run
    # optimisation
    lr: float = 2e-4
    warmup_steps: int = 500
    lr_ref_steps: int = 5_000
    ema_half_life_images: float = 500_000
    ema_rampup: float | None = 0.05
    amp: str = "auto"
    # bookkeeping
    checkpoint_every: int = 1_000
    keep_checkpoints: int = 3
    sample_every: int = 1_000
    val_every: int = 0  # validate the EMA network every this many steps (0: never)
    val_data: str | None = None  # held-out images to validate on (default: the MNIST validation split)
    sample_steps: int = 16
    log_every: int = 50
    device: str = "auto"
    num_workers: int | None = None  # None: CPU cores − 2 (≤ 16) on CUDA, 0 on the CPU
    tensorboard: bool = True
    # torch.compile the network's operator-free parts (models.compile_denoiser); None: where it was
    # measured to pay — the CPU (training-loop steps ~22% faster after a compile of seconds to a few
    # minutes, BENCHMARKS.md) — and eager elsewhere (CUDA not measured yet)
    compile: bool | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        from ..models import CONDITIONINGS

        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"unknown conditioning {self.conditioning!r}; pass one of {', '.join(CONDITIONINGS)}.")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; pass one of {', '.join(sorted(OBJECTIVES))}.")
        if self.amp not in AMP_MODES:
            raise ValueError(f"unknown amp mode {self.amp!r}; pass one of {', '.join(AMP_MODES)}.")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be ≥ 0, got {self.num_workers}; pass 0 to prepare batches in the main process.")
        for name in ("steps", "batch_size", "checkpoint_every", "sample_every", "log_every", "warmup_steps", "lr_ref_steps", "keep_checkpoints"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}; pass a value ≥ 1.")
        if self.val_every < 0:
            raise ValueError(f"val_every must be ≥ 0, got {self.val_every}; pass 0 to turn validation off.")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}; pass e.g. 2e-4.")
        from ..degradations import NoiseLevels

        NoiseLevels.parse(self.measurement_noise)  # raises a one-line ValueError
        if not 0.0 <= self.mmse_share <= 1.0:
            raise ValueError(f"mmse_share must lie in [0, 1], got {self.mmse_share}; pass e.g. 0.25.")
        if not 0.0 <= self.label_dropout <= 1.0:
            raise ValueError(f"label_dropout must lie in [0, 1], got {self.label_dropout}.")
        if self.degradation_weights is not None and (self.degradations is None or len(self.degradation_weights) != len(self.degradations)):
            raise ValueError("degradation_weights needs one weight per entry of degradations; pass both lists with equal length.")
        if self.objective == "nppc" and (self.pcs < 1 or self.conditioning == "unconditional"):
            raise ValueError("the nppc objective needs --pcs K ≥ 1 and an invfussion or palette model.")
        if self.pcs < 0 or self.nppc_ramp_steps < 0:
            raise ValueError("pcs and nppc_ramp_steps must be ≥ 0.")
        if self.conditioning == "unconditional" and self.degradations:
            raise ValueError("an unconditional model trains without degradations; drop --degradations or pick invfussion/palette.")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The learning rate of 0-based step ``step``: linear warm-up, then ``1/√(t/t_ref)`` decay."""
    warmup = min((step + 1) / cfg.warmup_steps, 1.0)
    return cfg.lr * warmup / math.sqrt(max(step / cfg.lr_ref_steps, 1.0))


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16/fp16 for mixed precision, ``None`` for fp32 (``auto``: bf16 on CUDA, fp32 on CPU)."""
    mode = cfg.amp if cfg.amp != "auto" else ("bf16" if device.type == "cuda" else "none")
    if mode == "fp16" and device.type != "cuda":
        raise ValueError("fp16 mixed precision needs CUDA; pass --amp none (or bf16) on the CPU.")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[mode]


def loader_workers(cfg: TrainConfig, device: torch.device) -> int:
    """Processes preparing batches: operators are built on the CPU, so a GPU run needs several."""
    if cfg.num_workers is not None:
        return cfg.num_workers
    return max(1, min(16, (os.cpu_count() or 2) - 2)) if device.type == "cuda" else 0


def flag_name(name: str) -> str:
    """The ``invfussion train`` flag of a :class:`TrainConfig` field, e.g. ``--batch-size``."""
    return "--" + {"measurement_noise": "noise", "overrides": "model-overrides"}.get(name, name).replace("_", "-")


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` as stored (tuples → lists), with the noise levels in one spelling and the
    settings older runs did not store filled in with what they were trained with."""
    from ..degradations import NoiseLevels

    defaults = {**json.loads(json.dumps(TrainConfig().to_json())), **HISTORIC_DEFAULTS}
    settings = {**defaults, **json.loads(json.dumps(settings))}
    settings["measurement_noise"] = str(NoiseLevels.parse(settings["measurement_noise"]))  # 0.0 (older runs) ≡ "0"
    return settings


def check_resumable(saved: dict[str, Any], cfg: TrainConfig, where: Path) -> None:
    """Raise one ``ValueError`` listing every setting of ``cfg`` that a resumed run must keep but
    that differs from ``saved`` (the run's stored ``"train"`` settings)."""
    was, now = _comparable(saved), _comparable(cfg.to_json())
    conflicts = [f"{name}={was[name]!r}, not {now[name]!r}" for name in sorted(was.keys() | now.keys())
                 if name not in RESUMABLE_CHANGES and was.get(name) != now.get(name)]
    if conflicts:
        raise ValueError(
            f"{where} was trained with {'; '.join(conflicts)}; drop those flags (`--resume` alone keeps the "
            "run's own settings) or train into a new --out."
        )


def resume_config(out: str | Path, given: dict[str, Any]) -> tuple[TrainConfig, list[str]]:
    """The settings to resume the run in ``out`` with: its own (``out/config.json``) with the
    settings in ``given`` (the ones the user set) applied, and one note per change.

    Settings in :data:`RESUMABLE_CHANGES` may change (e.g. more ``steps``, another cadence or
    device); a change to any other raises one ``ValueError`` listing them all. Without a
    ``config.json`` (a run that never finished a step, or one copied without it) ``given`` alone
    is the run's settings, checked against its checkpoint if it has one.
    """
    path = Path(out) / "config.json"
    if not path.is_file():
        cfg = TrainConfig(**{**given, "out": str(out), "resume": True})
        return cfg, [] if latest_checkpoint(out) else [f"{out} holds no run yet; starting a new one from the flags given"]
    try:
        saved = _comparable(json.loads(path.read_text())["train"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a run's config.json ({exc}); restore it or train into a new --out.") from None
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{**{k: v for k, v in saved.items() if k in fields}, **given, "out": str(out), "resume": True})
    check_resumable(saved, cfg, path)
    now = _comparable(cfg.to_json())
    notes = [f"{flag_name(name)} {now[name]} (the run had {saved[name]})" for name in sorted(given)
             if name not in ("out", "resume") and now[name] != saved.get(name)]
    return cfg, notes


def compile_note(device: torch.device, skip: str = "--no-compile skips it") -> str:
    """The line to show before a torch.compile (:func:`invfussion.models.compile_denoiser`): the
    first step waits for it (about 90 s for mnist32 on a 2-core CPU with a cold cache, issue 28)."""
    where = "this CPU" if device.type == "cpu" else f"this {device.type.upper()} device"
    return (f"compiling the model for {where}, about 90 s the first time (mnist32 on 2 cores; larger models take "
            f"longer); cached afterwards; {skip}")


def check_data_fits(image_shape: tuple[int, ...], net: torch.nn.Module, cfg: TrainConfig) -> None:
    """Raise one ``ValueError`` naming the mismatch and both fixes when the dataset's images
    ``(C, H, W)`` do not have the channels or size the model built from ``cfg`` takes."""
    channels, side = net.img_channels, net.img_resolution
    colour = {1: "grey (1-channel)", 3: "RGB (3-channel)"}
    if image_shape[0] != channels:
        raise ValueError(
            f"{cfg.data} holds {colour.get(image_shape[0], f'{image_shape[0]}-channel')} images but the {cfg.preset} model "
            f"takes {colour.get(channels, f'{channels}-channel')} ones; make a {channels}-channel dataset with "
            f"`invfussion prepare-data SRC DEST.zip --resolution {side} --channels {channels}`, or train a "
            f"{image_shape[0]}-channel model with --model-overrides '{{\"img_channels\": {image_shape[0]}}}'."
        )
    if tuple(image_shape[1:]) != (side, side):
        raise ValueError(
            f"{cfg.data} holds {image_shape[2]}×{image_shape[1]} images but the {cfg.preset} model takes {side}×{side}; "
            f"resize them with `invfussion prepare-data SRC DEST.zip --resolution {side}`, or train at their size with "
            f"--model-overrides '{{\"img_resolution\": {image_shape[1]}}}'."
        )


class StopRequest:
    """Turns SIGTERM/SIGINT into a flag the loop polls, so it can checkpoint and exit cleanly."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class RunLog:
    """Rank 0's metrics: ``RUN/log.jsonl`` always, TensorBoard scalars when it is installed."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool):
        self.enabled = enabled
        self.path = run_dir / "log.jsonl"
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                SummaryWriter = None
            if SummaryWriter is not None:
                self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **scalars}) + "\n")
        if self.writer is not None:
            for name, value in scalars.items():
                self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Window:
    """Mean loss and throughput between two log lines, summed on the device (one sync per read)."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), device=device)
        self.steps = 0
        self.clock = time.perf_counter()
        self.seconds = 0.0

    def add(self, loss: torch.Tensor) -> None:
        self.loss += loss
        self.steps += 1

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the time spent inside (a checkpoint, a preview) out of the throughput."""
        self.seconds += time.perf_counter() - self.clock
        try:
            yield
        finally:
            self.clock = time.perf_counter()

    def read(self, batch_size: int, ctx: distributed.Context) -> tuple[float, float]:
        """(mean loss over the window and the ranks, images per second), then start a new window."""
        mean_loss = float(distributed.mean_over_ranks(self.loss, ctx)) / max(self.steps, 1)
        seconds = self.seconds + time.perf_counter() - self.clock
        img_s = self.steps * batch_size / max(seconds, 1e-9)
        self.loss.zero_()
        self.steps, self.seconds, self.clock = 0, 0.0, time.perf_counter()
        return mean_loss, img_s


def build_mixture(cfg: TrainConfig):
    """The training distribution over operators (``None`` for an unconditional model)."""
    from .. import degradations as deg

    if cfg.conditioning == "unconditional":
        return None
    specs = list(cfg.degradations) if cfg.degradations is not None else list(deg.Mixture.paper().specs)
    noise = deg.NoiseLevels.parse(cfg.measurement_noise)
    return deg.Mixture(specs, weights=cfg.degradation_weights, noise=noise if noise.noisy else None)


def _grad_norm(net: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False) if grads else torch.zeros(())


class Trainer:
    """One training run; :func:`train` is the entry point."""

    def __init__(self, cfg: TrainConfig, ctx: distributed.Context):
        from .. import data, models

        cfg.validate()
        self.cfg, self.ctx, self.device = cfg, ctx, ctx.device
        self.run_dir = Path(cfg.out)
        self.dataset = data.open_dataset(cfg.data, cfg.resolution)
        if len(self.dataset) == 0:
            raise ValueError(f"dataset {cfg.data} has no images; point --data at a folder or zip with images.")
        self.image_shape = tuple(self.dataset[0][0].shape)
        torch.manual_seed(seeding.example_seed(cfg.seed, 0, "init"))
        self.mixture = build_mixture(cfg)
        # A model trained on several noise levels is told each example's σ_y.
        noise_aware = self.mixture is not None and self.mixture.noise is not None
        overrides = {**({"noise_conditioning": True} if noise_aware else {}), **cfg.overrides,
                     **({"pcs": cfg.pcs} if cfg.pcs else {})}
        self.net = models.build(cfg.preset, cfg.conditioning, **overrides).to(self.device)
        check_data_fits(self.image_shape, self.net, cfg)
        if cfg.init_from is not None and latest_checkpoint(self.run_dir) is None:
            models.initialize_from(self.net, cfg.init_from)
        self.num_classes = int(getattr(self.net, "num_classes", 0) or 0)
        dataset_classes = int(getattr(self.dataset, "num_classes", 0) or 0)
        if dataset_classes > self.num_classes and self.num_classes:
            raise ValueError(f"the dataset has {dataset_classes} classes but the model only {self.num_classes}; pass overrides num_classes={dataset_classes}.")
        self.ema = EMA(self.net, cfg.ema_half_life_images, cfg.ema_rampup)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=(0.9, 0.99), eps=1e-8, fused=True)
        self.amp_dtype = autocast_dtype(cfg, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.objective = make_objective(cfg.objective, cfg.p_mean, cfg.p_std, float(self.net.sigma_data), cfg.mmse_sigma,
                                        cfg.nppc_ramp_steps, cfg.mmse_share, cfg.nppc_variance_fit)
        self.step = 0
        self.images_seen = 0
        self.skipped = torch.zeros((), device=self.device)  # non-finite steps, counted on device
        self.wall_time_before = 0.0  # seconds spent by earlier sessions of a resumed run
        self.started = time.perf_counter()
        self.last_checkpoint: Path | None = None
        self._resume_if_asked()
        augment = data.Augment(cfg.aug_p, cfg.xflip) if (cfg.aug_p > 0 or cfg.xflip) else None
        augment_dim = getattr(getattr(self.net.backbone, "mapping", None), "augment_dim", None)
        if augment is not None and augment_dim != augment.label_dim:
            raise ValueError(
                f"augmentation labels have {augment.label_dim} entries but the model takes {augment_dim}; "
                f"pass overrides augment_dim={augment.label_dim} or turn augmentation off."
            )
        self.batches = StepBatches(
            self.dataset, seed=cfg.seed, global_batch=cfg.batch_size, positions=distributed.shard(cfg.batch_size, ctx),
            mixture=self.mixture, num_classes=self.num_classes, label_dropout=cfg.label_dropout, augment=augment,
        )
        if cfg.compile or (cfg.compile is None and self.device.type == "cpu"):  # after the EMA copy (eager)
            if ctx.is_main:
                print(f"note: {compile_note(self.device)}", file=sys.stderr)
            models.compile_denoiser(self.net)
        self.model = distributed.wrap(self.net, ctx)
        self.validator = build_validator(
            cfg.data, cfg.val_data, self.image_shape, self.num_classes, self.mixture, cfg.objective,
            float(self.net.sigma_data), cfg.mmse_sigma, self.device,
        ) if cfg.val_every and ctx.is_main else None

    # -- checkpoints ---------------------------------------------------------------------------
    def _resume_if_asked(self) -> None:
        found = latest_checkpoint(self.run_dir)
        if found is None:
            return
        if not self.cfg.resume:
            raise ValueError(f"{self.run_dir} already holds checkpoints; pass --resume to continue it or a new --out.")
        try:
            tensors, record, path = load_checkpoint(found, device=self.device)
        except ValueError as exc:
            earlier = sorted((p.stem for p in found.parent.glob("step-*.safetensors") if p != found), reverse=True)
            fix = (f"the earlier checkpoints are {', '.join(earlier)}: point {found.parent / LATEST} at one "
                   f"(`echo {earlier[0]} > {found.parent / LATEST}`) and resume again" if earlier
                   else "no earlier checkpoint is left, so train into a new --out")
            raise ValueError(f"{str(exc).removesuffix(', use another checkpoint.').rstrip('.')}; {fix}.") from None
        check_resumable(record.get("train", {}), self.cfg, path)
        try:
            self.net.load_state_dict(unprefixed("net.", tensors))
            self.ema.net.load_state_dict(unprefixed("ema.", tensors))
        except RuntimeError as exc:
            raise ValueError(f"{path} does not fit the model built from its settings ({str(exc).splitlines()[0]}); resume with the code version that wrote it.") from None
        self.optimizer.load_state_dict(optimizer_state_from_safe(tensors, record["optimizer"]))
        if self.scaler is not None and record.get("grad_scaler"):
            self.scaler.load_state_dict(record["grad_scaler"])
        self.step, self.images_seen = int(record["step"]), int(record["images_seen"])
        if self.cfg.steps < self.step:
            raise ValueError(f"{path} is at step {self.step}, past --steps {self.cfg.steps}; pass --steps "
                             f"{self.step} or more, or leave --steps out to train to the run's own total.")
        self.skipped.fill_(int(record.get("skipped_steps", 0)))
        self.wall_time_before = float(record.get("wall_time", 0.0))
        self.last_checkpoint = path

    @property
    def wall_time(self) -> float:
        """Seconds of training so far, over every session of the run."""
        return self.wall_time_before + time.perf_counter() - self.started

    def save(self) -> Path:
        """Write a checkpoint of the current step (rank 0 writes; all ranks return its path)."""
        path = self.run_dir / "checkpoints" / f"{checkpoint_stem(self.step)}.safetensors"
        if self.ctx.is_main:
            optim_tensors, optim_json = optimizer_state_to_safe(self.optimizer.state_dict())
            tensors = {**prefixed("net.", self.net.state_dict()), **prefixed("ema.", self.ema.net.state_dict()), **optim_tensors}
            meta = {
                "train": self.cfg.to_json(), "model": self.net.config, "images_seen": self.images_seen,
                "skipped_steps": int(self.skipped.item()), "wall_time": self.wall_time, "optimizer": optim_json,
                "grad_scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "world_size": self.ctx.world_size, "torch": torch.__version__,
            }
            path = save_checkpoint(self.run_dir, self.step, tensors, meta, keep=self.cfg.keep_checkpoints)
        distributed.barrier(self.ctx)
        self.last_checkpoint = path
        return path

    # -- one step ------------------------------------------------------------------------------
    def _train_step(self, batch: TrainingBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the weights on one batch; returns (mean loss, grad norm) as device tensors."""
        torch.manual_seed(seeding.example_seed(self.cfg.seed, self.step, f"global-rng/{self.ctx.rank}"))
        lr = learning_rate(self.cfg, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext()
        )
        with autocast:
            loss = self.objective(self.model, batch).mean()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            grad_norm = _grad_norm(self.net)
            self.scaler.step(self.optimizer)  # skips the update itself when gradients are not finite
            self.scaler.update()
        else:
            loss.backward()
            grad_norm = _grad_norm(self.net)
            # Fused Adam skips the whole update on device when found_inf is 1 (no host sync).
            self.optimizer.found_inf = (~torch.isfinite(grad_norm)).float().to(self.device)
            self.optimizer.step()
            del self.optimizer.found_inf
        self.skipped += (~torch.isfinite(grad_norm)).float()
        self.images_seen += self.cfg.batch_size
        self.ema.update(self.net, self.cfg.batch_size, self.images_seen)
        self.step += 1
        return loss.detach(), grad_norm.detach()

    # -- previews ------------------------------------------------------------------------------
    @torch.no_grad()
    def preview(self, rows: int = 8) -> Path:
        """Write ``RUN/samples/step-XXXXXXX.png`` from the EMA network: per row clean | A⁺y | 2
        posterior samples (4 samples per row for an unconditional model; the MMSE estimate for the
        mmse objective, and the mean ± 2σ₁u₁ for nppc)."""
        from .. import sampling

        net = self.ema.net
        picks = sorted({i * len(self.dataset) // rows for i in range(rows)})  # spread over the dataset
        items = [self.dataset[i] for i in picks]
        images = torch.stack([image for image, _ in items]).to(self.device)
        labels = None
        if self.num_classes:
            labels = torch.tensor([label if 0 <= label < self.num_classes else self.num_classes for _, label in items], device=self.device)
        seed = seeding.example_seed(self.cfg.seed, 0, "preview")
        steps = self.cfg.sample_steps
        if self.mixture is None:
            columns = [sampling.unconditional(net, images.shape[0], self.image_shape, steps=steps, class_labels=labels, seed=s)
                       for s in range(4)]
        else:
            op = self.mixture.sample(images.shape[0], self.image_shape, seed=seed, device=self.device)
            y = op.measure(images, seed=seed)
            if self.cfg.objective == "nppc":
                mean, directions, stds = sampling.nppc(net, op, y, self.cfg.mmse_sigma, seed=seed, class_labels=labels)
                minus, plus = principal_shift(mean, directions, stds, 0)
                outputs = [minus, mean, plus]
            elif self.cfg.objective == "mmse":
                outputs = [sampling.mmse(net, op, y, self.cfg.mmse_sigma, seed=seed, class_labels=labels)]
            else:
                outputs = [sampling.posterior(net, op, y, steps=steps, class_labels=labels, seed=s) for s in (0, 1)]
            columns = [images, op.pinv(y), *outputs]
        return save_image_grid(columns, self.run_dir / "samples" / f"{checkpoint_stem(self.step)}.png")

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> Path:
        cfg, ctx = self.cfg, self.ctx
        if self.step >= cfg.steps:
            return self.last_checkpoint or self.save()
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        workers = loader_workers(cfg, self.device)
        loader = torch.utils.data.DataLoader(
            self.batches, sampler=range(self.step, cfg.steps), batch_size=None, num_workers=workers,
            pin_memory=False, generator=torch.Generator().manual_seed(cfg.seed),
            prefetch_factor=2 if workers else None, persistent_workers=False,
        )
        log = RunLog(self.run_dir, ctx.is_main, cfg.tensorboard)
        progress = tqdm(total=cfg.steps, initial=self.step, disable=not ctx.is_main, unit="step", dynamic_ncols=True)
        window = Window(self.device)
        val_postfix: dict[str, str] = {}
        saved_at, first_step = -1, self.step
        self.started = time.perf_counter()
        self.model.train()
        try:
            with StopRequest() as stop:
                for batch in loader:
                    loss, grad_norm = self._train_step(batch.to(self.device, non_blocking=True))
                    window.add(loss)
                    progress.update(1)
                    if self.step == first_step + 1:  # the settings are kept once a step has trained
                        if ctx.is_main:
                            (self.run_dir / "config.json").write_text(
                                json.dumps({"train": cfg.to_json(), "model": self.net.config}, indent=2))
                        restart_clock(progress)
                    at_end = self.step == cfg.steps
                    if self.validator is not None and self.step % cfg.val_every == 0:
                        with window.paused():
                            figures = self.validator(self.ema.net)
                        log.write(self.step, figures)
                        val_postfix = headline(figures)
                    if self.step % cfg.log_every == 0 or at_end:
                        mean_loss, img_s = window.read(cfg.batch_size, ctx)
                        skipped = int(self.skipped.item())
                        progress.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{img_s:.0f}", skipped=skipped, **val_postfix)
                        log.write(self.step, {"loss": mean_loss, "grad_norm": float(grad_norm), "lr": learning_rate(cfg, self.step - 1),
                                              "img_per_s": img_s, "skipped_steps": skipped, "images_seen": self.images_seen})
                        stopping = distributed.any_rank(stop.requested, ctx)
                    else:  # under DDP the ranks agree on stopping at log steps only (a collective)
                        stopping = stop.requested and not ctx.distributed
                    if self.step % cfg.checkpoint_every == 0 or at_end or stopping:
                        with window.paused():
                            self.save()
                        saved_at = self.step
                    if ctx.is_main and self.step % cfg.sample_every == 0:
                        with window.paused():
                            self.preview()
                    if stopping:
                        progress.write(f"stopped at step {self.step}; continue with --resume --out {self.run_dir}", file=sys.stderr)
                        break
        finally:
            progress.close()
            log.close()
        if saved_at != self.step:
            self.save()
        return self.last_checkpoint


def restart_clock(progress: tqdm) -> None:
    """Time ``progress``'s rate and ETA from now on, keeping its count: a session's first step
    (a torch.compile, data workers starting) says nothing about the steps after it."""
    done = progress.n
    progress.reset()
    progress.initial = progress.n = progress.last_print_n = done
    progress.refresh()


def train(cfg: TrainConfig) -> Path:
    """Train as ``cfg`` says (one process, or one rank under ``torchrun``); returns the final checkpoint."""
    ctx = distributed.init(cfg.device)
    try:
        return Trainer(cfg, ctx).run()
    finally:
        distributed.shutdown(ctx)
