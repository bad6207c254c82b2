"""Ready-to-use denoisers from shipped names, checkpoint files or run directories.

A *shipped model* is a pair of package files ``invfussion/assets/<name>.safetensors`` (the EMA
weights, possibly stored in float16) and ``<name>.json`` (``{"format", "id", "model": config,
"card": {...}, "source": {...}}``), written by :func:`export_model` from a training checkpoint.
"""

from __future__ import annotations

import importlib.resources
import json
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..storage import FORMAT as CHECKPOINT_FORMAT
from ..storage import read_metadata, resolve_checkpoint
from .precond import Denoiser

MODEL_FORMAT = "invfussion-model/1"
MODEL_FILE = "model.safetensors"
"""The weights file of a model directory (``import-checkpoint --out DIR`` writes ``DIR/model.*``)."""
SHIPPED = ("mnist32-invfussion", "mnist32-palette", "mnist32-unconditional", "mnist32-nppc", "mnist32-invfussion-class")


def _asset(name: str) -> Path:
    return Path(str(importlib.resources.files("invfussion") / "assets" / f"{name}.safetensors"))


def shipped_models() -> list[str]:
    """Names of the models packaged with this installation."""
    return [name for name in SHIPPED if _asset(name).is_file()]


def locate(name_or_path: str | Path) -> Path:
    """The ``.safetensors`` file behind a shipped name, a checkpoint/model file or a run directory."""
    text = str(name_or_path)
    if text in SHIPPED:
        weights = _asset(text)
        if not weights.is_file():
            available = ", ".join(shipped_models()) or "none"
            raise FileNotFoundError(f"shipped model {text!r} is not part of this installation (available: {available}); reinstall invfussion or pass a checkpoint path.")
        return weights
    if not Path(text).exists():
        raise FileNotFoundError(f"no model named {text!r}: pass one of {', '.join(SHIPPED)}, a checkpoint file or a run directory.")
    if (Path(text) / MODEL_FILE).is_file():  # a model directory (e.g. written by import-checkpoint)
        return Path(text) / MODEL_FILE
    return resolve_checkpoint(text)


def _read_state(weights: Path, header: dict[str, str], ema: bool) -> dict[str, torch.Tensor]:
    """The network's state dict (float32) from a training checkpoint or an exported model."""
    if header.get("format") == MODEL_FORMAT:
        if not ema:
            raise ValueError(f"{weights.name} holds only EMA weights; load it with ema=True or load a training checkpoint.")
        prefix = ""
    elif header.get("format") == CHECKPOINT_FORMAT:
        prefix = "ema." if ema else "net."
    else:
        raise ValueError(f"{weights} is not an invfussion model or checkpoint (format {header.get('format')!r}); pass a file written by invfussion.")
    state = {}
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            if key.startswith(prefix):
                t = f.get_tensor(key)
                state[key[len(prefix):]] = t.float() if t.is_floating_point() else t
    return state


def load(name_or_path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> Denoiser:
    """A denoiser in eval mode, in float32, on ``device``; its ``train_data`` attribute is the
    ``data`` of its training configuration (``None`` when its JSON does not record one),
    ``trained_noise`` the measurement noise it was trained on (``"0"``: noiseless), and
    ``trained_families`` its training degradation specs (``None``: the paper's mixture).

    Args:
        name_or_path: a shipped name (``mnist32-invfussion``, ``mnist32-palette``,
            ``mnist32-unconditional``, ``mnist32-nppc``), a ``.safetensors`` checkpoint or exported
            model with its sibling ``.json``, a model directory (``model.safetensors`` +
            ``model.json``, e.g. imported with ``invfussion import-checkpoint``), or a run directory
            (its latest checkpoint).
        ema: the EMA weights (default) or, for a training checkpoint, the raw trained weights.
    """
    from . import build

    weights = locate(name_or_path)
    header, record = read_metadata(weights)
    state = _read_state(weights, header, ema)
    config = record.get("model")
    if not isinstance(config, dict) or "preset" not in config:
        raise ValueError(f"{weights.with_suffix('.json')} has no model configuration; re-export the model from its checkpoint.")
    net = build(**config)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{weights} does not fit the architecture in its JSON ({str(exc).splitlines()[0]}); use the invfussion version that wrote it.") from None
    train = record.get("train") or (record.get("source") or {}).get("train") or {}
    net.train_data = train.get("data")  # the training dataset (e.g. "mnist"), for the lmmse prior
    net.trained_noise = str(train.get("measurement_noise", 0.0))  # σ_y it was trained on (NoiseLevels text)
    net.trained_families = train.get("degradations")  # its training specs (None: the paper's mixture)
    return net.to(device).eval().requires_grad_(False)


@torch.no_grad()
def initialize_from(net: Denoiser, source: str | Path) -> None:
    """Copy the weights of ``source`` (a shipped name, checkpoint or run directory; its EMA weights)
    into ``net``, e.g. to start an NPPC model from a trained diffusion or MMSE model.

    Every parameter must match in name and shape, except the output projection of a ``net`` with
    more NPPC directions than ``source``: its image channels are copied and its extra directions
    keep their initialisation, so ``net``'s denoised output equals ``source``'s at the start.
    """
    weights = locate(source)
    header, _ = read_metadata(weights)
    state = _read_state(weights, header, ema=True)
    own = net.state_dict()
    if set(state) != set(own):
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        raise ValueError(f"{source} has a different architecture (missing {missing[:3]}, unexpected {extra[:3]}); start from a model with the same preset and conditioning.")
    for name, tensor in state.items():
        target = own[name]
        if target.shape == tensor.shape:
            target.copy_(tensor)
        elif name == "backbone.patch_out.weight" and target.shape[1:] == tensor.shape[1:]:
            by_channel = net.backbone.output_weight_by_channel()
            by_channel[:, : net.img_channels].copy_(tensor.view(by_channel.shape[0], net.img_channels, -1))
        else:
            raise ValueError(f"{source}: {name} has shape {tuple(tensor.shape)}, the model needs {tuple(target.shape)}; start from a model with the same preset and widths.")


def model_card(name_or_path: str | Path) -> dict[str, Any]:
    """The model card of an exported model (``{}`` for a training checkpoint)."""
    _, record = read_metadata(locate(name_or_path))
    return dict(record.get("card") or {})


def export_model(checkpoint_or_run: str | Path, dest_stem: str | Path, card: dict[str, Any], dtype: torch.dtype = torch.float16) -> Path:
    """Write ``<dest_stem>.safetensors`` (EMA weights in ``dtype``) and ``<dest_stem>.json``.

    ``card`` is stored as the model card (e.g. the exact command, wall time, machine, metrics);
    the checkpoint's step, images seen and training configuration are stored under ``source``.
    Returns the ``.safetensors`` path.
    """
    weights = resolve_checkpoint(checkpoint_or_run)
    header, record = read_metadata(weights)
    if header.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{weights} is not a training checkpoint; export from RUN/checkpoints/ or a run directory.")
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in _read_state(weights, header, ema=True).items()}
    dest = Path(dest_stem)
    dest.parent.mkdir(parents=True, exist_ok=True)
    model_id = uuid.uuid4().hex
    out = dest.with_name(dest.name + ".safetensors")
    save_file(state, str(out), metadata={"format": MODEL_FORMAT, "id": model_id})
    source = {key: record.get(key) for key in ("step", "images_seen", "wall_time", "train")}
    meta = {"format": MODEL_FORMAT, "id": model_id, "model": record["model"], "card": card, "source": source}
    dest.with_name(dest.name + ".json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    return out
