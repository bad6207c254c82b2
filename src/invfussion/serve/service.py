"""The state behind the web page: the loaded models, uploaded images and restoration jobs.

Jobs run one at a time on a worker thread (the model is the bottleneck; parallel jobs would only
slow each other down). A job restores one image with the library (:func:`restoration.restore`,
:func:`restoration.write_restoration`), counts denoiser calls for its progress bar, and keeps
its PNGs in a private folder until it is among the oldest beyond ``MAX_JOBS``.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import sampling
from ..sampling import consistency
from ..data import balanced_indices, load_mnist
from ..degradations import Operator
from ..models import load
from ..restoration import CONSISTENT, noise_note, restore, summarize, write_restoration
from ..sampling.guidance import calls_per_evaluation, check_guidance
from ..training.grid import save_image_grid
from . import inputs

MAX_JOBS = 32
MAX_UPLOADS = 64
MAX_QUEUED = 8
DIGIT_STRIP = 20
MAX_DIRECTIONS = 3


class BusyError(RuntimeError):
    """Too many jobs are waiting (HTTP 503)."""


@dataclass
class Job:
    """One restoration: its inputs, progress and, once done, the files it wrote."""

    id: str
    folder: Path
    image: Tensor  # (1, C, H, W)
    op: Operator
    degradation: str
    num_samples: int
    seed: int
    nfe_per_sample: int
    class_labels: Tensor | None = None  # (1,) the class to condition on
    cfg: float | None = None
    consistent: bool = False  # show the outputs moved onto the measurement (restoration.make_consistent)
    sampler: str = "posterior"  # the request's, or for "auto" sampling.consistency.default_sampler's choice
    state: str = "queued"  # queued → running → done | error
    phase: str = "queued"
    counter: sampling.NFECounter | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    files: set[str] = field(default_factory=set)

    @property
    def total_nfe(self) -> int:
        """Denoiser calls of the whole job: the posterior samples, then the MMSE's."""
        return self.num_samples * self.nfe_per_sample + calls_per_evaluation(self.cfg)

    @property
    def guidance(self) -> str:
        """The class setting in words (empty without a class)."""
        if self.class_labels is None:
            return ""
        return f"class {int(self.class_labels[0])}" + ("" if self.cfg is None else f", guidance w = {self.cfg:g}")

    def status(self) -> dict[str, Any]:
        """What the page polls: state, progress in [0, 1], the phase, and the result when done."""
        nfe = self.counter.nfe if self.counter is not None else 0
        phase = self.phase
        if self.state == "running" and nfe < self.num_samples * self.nfe_per_sample:
            phase = f"posterior sample {nfe // self.nfe_per_sample + 1} of {self.num_samples}"
        return {
            "id": self.id,
            "state": self.state,
            "phase": phase,
            "progress": 1.0 if self.state == "done" else min(nfe / self.total_nfe, 1.0),
            "nfe": nfe,
            "total_nfe": self.total_nfe,
            "error": self.error,
            "result": self.result,
        }


class RestorationService:
    """Restores images for the web page with one conditional model (and an optional NPPC model).

    Args:
        net: a conditional (InvFussion or Palette) denoiser, e.g. from :func:`models.load`.
        nppc_net: a model for :func:`sampling.nppc`, or ``None`` to use sample PCA.
        nppc_note: the NPPC model's name, or why there is none (shown on the page).
        steps: Heun steps per posterior sample (``2·steps − 1`` denoiser calls).
        max_samples: the most posterior samples one job may ask for.
        device: where the models run.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        nppc_net: torch.nn.Module | None = None,
        nppc_note: str = "",
        steps: int = 32,
        max_samples: int = 16,
        device: torch.device | str = "cpu",
        model_name: str = "",
    ):
        if getattr(net, "conditioning", None) == "unconditional":
            raise ValueError(
                "serve needs a conditional (invfussion or palette) model; pass --model mnist32-invfussion."
            )
        if steps < 1 or max_samples < 2:
            raise ValueError(
                f"serve needs steps >= 1 and max_samples >= 2, got {steps} and {max_samples}."
            )
        self.net, self.nppc_net, self.nppc_note = net, nppc_net, nppc_note
        self.steps, self.max_samples = steps, max_samples
        self.device, self.model_name = device, model_name
        self.image_shape = (net.img_channels, net.img_resolution, net.img_resolution)
        self.digits, self.digits_note = self._embedded_digits()
        self.folder = Path(tempfile.mkdtemp(prefix="invfussion-serve-"))
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._uploads: OrderedDict[str, Tensor] = OrderedDict()
        self._expired: set[str] = set()  # uploads dropped to keep MAX_UPLOADS
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="invfussion-serve")

    def _embedded_digits(self) -> tuple[Tensor | None, str]:
        if self.image_shape != (1, 32, 32):
            return (
                None,
                f"the embedded MNIST digits do not fit this model's {self.image_shape} images; upload one.",
            )
        try:
            return load_mnist("test")[0], ""
        except FileNotFoundError as exc:
            return None, str(exc)

    def info(self) -> dict[str, Any]:
        """The page's settings: model, image shape, steps, sample limit, digits, NPPC status,
        the model's number of classes (0: not class-conditional, no class picker), its training
        degradation specs (the page offers those its list lacks, e.g. an imported model's) and the
        samplers a request may name with their network calls per sample."""
        digits = [] if self.digits is None else balanced_indices(DIGIT_STRIP, "test").tolist()
        return {
            "model": self.model_name,
            "image_shape": list(self.image_shape),
            "steps": self.steps,
            "max_samples": self.max_samples,
            "digits": digits,
            "num_digits": 0 if self.digits is None else len(self.digits),
            "digits_note": self.digits_note,
            "nppc": self.nppc_net is not None,
            "nppc_note": self.nppc_note,
            "num_classes": int(getattr(self.net, "num_classes", 0) or 0),
            "families": list(getattr(self.net, "trained_families", None) or []),
            "samplers": {name: self._sampler_nfe(name) for name in ("posterior", *consistency.METHODS)},
        }

    def digit_png(self, index: int) -> Path:
        """A PNG of embedded test digit ``index`` (written once, then reused)."""
        x = self._digit(index)
        path = self.folder / "digits" / f"{index}.png"
        with self._lock:  # one writer: no request reads a half-written file
            if not path.is_file():
                save_image_grid([x], path, pad=0)
        return path

    def _digit(self, index: Any) -> Tensor:
        if self.digits is None:
            raise ValueError(self.digits_note)
        if (
            isinstance(index, bool)
            or not isinstance(index, int)
            or not 0 <= index < len(self.digits)
        ):
            raise ValueError(
                f"test digit {index!r} does not exist; pick one from 0 to {len(self.digits) - 1}."
            )
        return self.digits[index : index + 1]

    def add_upload(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Decode ``payload["data"]`` (base64 image file); returns its id, preview URL and notes."""
        x, notes = inputs.decode_upload(
            payload.get("data"), self.image_shape, bool(payload.get("invert"))
        )
        with self._lock:
            upload_id = f"u{next(self._ids)}"
            self._uploads[upload_id] = x
            while len(self._uploads) > MAX_UPLOADS:
                self._expired.add(self._uploads.popitem(last=False)[0])
        save_image_grid([x], self.folder / "uploads" / f"{upload_id}.png", pad=0)
        return {"id": upload_id, "url": f"/api/uploads/{upload_id}", "notes": notes}

    def upload_png(self, upload_id: str) -> Path | None:
        path = self.folder / "uploads" / f"{upload_id}.png"
        return path if upload_id in self._uploads and path.is_file() else None

    def _image(self, source: Any) -> Tensor:
        if isinstance(source, dict) and "digit" in source:
            return self._digit(source["digit"])
        if isinstance(source, dict) and "upload" in source:
            with self._lock:
                x, expired = self._uploads.get(source["upload"]), source["upload"] in self._expired
            if x is None and expired:
                raise ValueError(f"the uploaded image has expired on the server (it keeps the last {MAX_UPLOADS}); "
                                 "upload it again.")
            if x is None:
                raise ValueError(f"no image was uploaded as {source['upload']!r}; upload the image, then send "
                                 'the "id" the upload answered.')
            return x
        raise ValueError('the request names no image; send {"digit": index} or {"upload": id}.')

    def submit(self, payload: dict[str, Any]) -> Job:
        """Check a job request (``ValueError`` if bad) and queue it.

        ``payload``: ``image`` ({"digit": i} or {"upload": id}), ``degradation`` (a spec string or
        ``"mask"`` with ``hidden``, see :func:`inputs.mask_operator`), ``noise`` (σ_y),
        ``num_samples`` (2..max_samples), ``seed``, ``consistent`` (bool: show the outputs moved onto
        the measurement, :func:`restoration.make_consistent`; the metrics list both), ``sampler``
        (:func:`inputs.sampler_choice`: ``"auto"``, ``"posterior"`` or e.g. ``"mmse+dps"``), and for a
        class-conditional model ``class_label`` and ``cfg`` (see :func:`inputs.class_request`).
        """
        x = self._image(payload.get("image")).to(self.device)
        class_labels, cfg = inputs.class_request(payload, self.device)
        check_guidance(self.net, class_labels, cfg)
        noise = inputs.noise_level(payload.get("noise", 0))
        num_samples = inputs.bounded_int(payload, "num_samples", 4, 2, self.max_samples)
        seed = inputs.bounded_int(payload, "seed", 0, 0, 2**31 - 1)
        consistent = inputs.flag(payload, "consistent")
        sampler = inputs.sampler_choice(payload)
        spec = degradation = payload.get("degradation")
        if degradation == inputs.MASK:
            op = inputs.mask_operator(payload.get("hidden"), self.image_shape, noise, self.device)
            hidden = payload["hidden"].count("1")
            degradation = f"painted mask ({hidden} pixels hidden)" + (
                f", σ_y = {noise:g}" if noise else ""
            )
        else:
            op = inputs.spec_operator(degradation, self.image_shape, noise, seed, self.device)
            degradation = degradation.strip() + (f", σ_y = {noise:g}" if noise else "")
        if sampler == inputs.AUTO:  # a painted mask is no family of the rule: the posterior
            sampler = consistency.default_sampler(spec, op)
        with self._lock:
            if sum(job.state in ("queued", "running") for job in self._jobs.values()) >= MAX_QUEUED:
                raise BusyError(
                    f"{MAX_QUEUED} restorations are already waiting; try again in a minute."
                )
            job_id = f"j{next(self._ids)}"
            job = Job(
                job_id,
                self.folder / job_id,
                x,
                op,
                degradation,
                num_samples,
                seed,
                nfe_per_sample=self._sampler_nfe(sampler) * calls_per_evaluation(cfg),
                class_labels=class_labels,
                cfg=cfg,
                consistent=consistent,
                sampler=sampler,
            )
            self._jobs[job_id] = job
            self._forget_old_jobs()
        self._worker.submit(self._run, job)
        return job

    def _forget_old_jobs(self) -> None:
        finished = [job for job in self._jobs.values() if job.state in ("done", "error")]
        for job in finished[: max(len(self._jobs) - MAX_JOBS, 0)]:
            del self._jobs[job.id]
            shutil.rmtree(job.folder, ignore_errors=True)

    def job(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def job_png(self, job_id: str, name: str) -> Path | None:
        """The file ``name``.png that job ``job_id`` wrote, if any."""
        job = self.job(job_id)
        return job.folder / f"{name}.png" if job is not None and name in job.files else None

    def _run(self, job: Job) -> None:
        try:
            job.state, job.phase = "running", "MMSE estimate and sample PCA"
            job.result = self._restore(job)
            job.state, job.phase = "done", "done"
        except Exception as exc:  # noqa: BLE001 (a failed job is reported on the page)
            job.state, job.phase = "error", "failed"
            job.error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    def _sampler_nfe(self, sampler: str) -> int:
        """Network evaluations of one sample of ``sampler`` (Heun ``steps`` for ``posterior``)."""
        if sampler == "posterior":
            return 2 * self.steps - 1
        return consistency.nfe(*consistency.parse_method(sampler))

    def _restore(self, job: Job) -> dict[str, Any]:
        job.counter = counter = sampling.NFECounter(self.net)
        y = job.op.measure(job.image, seed=job.seed)
        k = min(MAX_DIRECTIONS, job.num_samples - 1)
        result = restore(
            counter,
            job.op,
            y,
            [job.sampler, "mmse"],
            num_samples=job.num_samples,
            seed=job.seed,
            steps=self.steps if job.sampler == "posterior" else None,
            reference=job.image,
            uncertainty=k,
            class_labels=job.class_labels,
            cfg=job.cfg,
            consistent=job.consistent,
        )
        source = job.sampler
        note = (
            f"sample PCA of the {job.num_samples} posterior samples (at most {job.num_samples - 1} "
            f"components; no NPPC model: {self.nppc_note})"
        )
        if self.nppc_net is not None:
            job.phase = "principal directions (NPPC)"
            extra = restore(self.nppc_net, job.op, y, ["nppc"], seed=job.seed, reference=job.image,
                            consistent=job.consistent)
            for part in ("outputs", "nfe", "seconds", "components"):
                getattr(result, part).update(getattr(extra, part))
            source, note = (
                "nppc",
                f"NPPC: the posterior principal components {self.nppc_note} predicts in one call.",
            )
        job.phase = "writing images"
        summary = {
            "model": self.model_name,
            "degradation": job.degradation,
            "seed": job.seed,
            "methods": summarize(result, job.op, y),
        }
        written = write_restoration(result, job.folder, summary)
        job.files = {path.stem for path in written if path.suffix == ".png"}
        suffix = CONSISTENT if job.consistent else ""  # the page shows the consistent outputs
        samples = result.outputs[job.sampler + suffix]  # (1, S, C, H, W)
        pca = job.sampler + suffix if source == job.sampler else source  # NPPC: as predicted
        url = f"/api/jobs/{job.id}/files/"
        return {
            "degradation": job.degradation,
            "guidance": job.guidance,
            "consistent": job.consistent,
            "noise_note": noise_note(self.net, job.op) or "",
            "images": {
                "reference": url + "reference",
                "pinv": url + "pinv",
                "mmse": url + "mmse" + suffix,
                "posterior-std": url + f"{job.sampler}{suffix}-std",
            },
            "sampler": job.sampler,
            "samples": [url + f"{job.sampler}{suffix}-{s:03d}" for s in range(job.num_samples)],
            "std_max": float(samples[0].std(dim=0).amax()),
            "directions": {
                "source": "sample-pca" if source == job.sampler else source,
                "note": note,
                "items": [
                    {
                        "minus": url + f"{pca}-pc{i}-minus",
                        "plus": url + f"{pca}-pc{i}-plus",
                        "std": float(std),
                    }
                    for i, std in enumerate(result.components[pca][2][0].tolist())
                ],
            },
            "metrics": summary["methods"],
        }

    def close(self) -> None:
        """Stop the worker (after the running job) and delete every file the service wrote."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def load_nppc(
    name: str | None, net: torch.nn.Module, device: str
) -> tuple[torch.nn.Module | None, str]:
    """The NPPC model ``name`` for images like ``net``'s, and its name; or ``None`` and why not."""
    if not name:
        return None, "none was given (pass --nppc-model)"
    try:
        nppc_net = load(name, device=device)
    except (FileNotFoundError, ValueError) as exc:
        return None, f"{name} did not load: {str(exc).split(';')[0]}"
    if not getattr(nppc_net, "pcs", 0):
        return None, f"{name} has no principal-component head"
    shape = (nppc_net.img_channels, nppc_net.img_resolution)
    if shape != (net.img_channels, net.img_resolution):
        return None, f"{name} restores other images than the main model"
    return nppc_net, name


def load_service(
    model: str, nppc_model: str | None, device: str, steps: int = 32, max_samples: int = 16
) -> RestorationService:
    """A :class:`RestorationService` with ``model`` and, if it loads and has a principal-component
    head, ``nppc_model``; otherwise the page falls back to sample PCA and says why."""
    net = load(model, device=device)
    nppc_net, note = load_nppc(nppc_model, net, device)
    return RestorationService(
        net, nppc_net, note, steps=steps, max_samples=max_samples, device=device, model_name=model
    )
