"""Training checkpoints in the format of :mod:`invfussion.storage`: one safetensors file of
tensors plus one JSON file of everything else.

Layout of a run directory::

    RUN/checkpoints/step-0001000.safetensors   net.*, ema.*, optim.<param>.<key> tensors
    RUN/checkpoints/step-0001000.json          config, model config, step, images seen, ...
    RUN/checkpoints/latest                     "step-0001000" (written last)

Every file is written to a temporary name, flushed to disk and renamed into place, and ``latest``
moves only once both files of a checkpoint are complete, so a crash at any moment leaves the
previous checkpoint readable. The pair is tied by a random id stored in both. Nothing is ever
unpickled.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..storage import (
    CHECKPOINT_DIR,
    CHECKPOINT_NAME,
    FORMAT,
    LATEST,
    checkpoint_stem,
    latest_checkpoint,
    read_metadata,
    replace_atomically,
    resolve_checkpoint,
    write_text_atomically,
)


def save_checkpoint(
    run_dir: str | Path, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any], keep: int | None = 3
) -> Path:
    """Write checkpoint ``step`` of ``run_dir`` atomically and return its ``.safetensors`` path.

    Args:
        tensors: name → tensor (any device; copied to CPU, contiguous, unshared).
        meta: JSON-serialisable dict; ``format``, ``id`` and ``step`` are added.
        keep: how many most recent checkpoints to keep (``None``: all).
    """
    directory = Path(run_dir) / CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    stem = checkpoint_stem(step)
    weights, config = directory / f"{stem}.safetensors", directory / f"{stem}.json"
    checkpoint_id = uuid.uuid4().hex
    cpu = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in tensors.items()}
    tmp = weights.with_name(weights.name + ".tmp")
    save_file(cpu, str(tmp), metadata={"format": FORMAT, "id": checkpoint_id, "step": str(int(step))})
    replace_atomically(tmp, weights)
    record = {"format": FORMAT, "id": checkpoint_id, "step": int(step), **meta}
    write_text_atomically(config, json.dumps(record, indent=2, sort_keys=True))
    write_text_atomically(directory / LATEST, stem + "\n")
    if keep is not None:
        prune_checkpoints(directory, keep)
    return weights


def prune_checkpoints(directory: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (never the one ``latest`` names)."""
    latest = (directory / LATEST).read_text(encoding="utf-8").strip()
    stems = sorted(p.stem for p in directory.glob("step-*.safetensors") if CHECKPOINT_NAME.match(p.stem))
    for stem in stems[: max(len(stems) - max(keep, 1), 0)]:
        if stem != latest:
            (directory / f"{stem}.safetensors").unlink(missing_ok=True)
            (directory / f"{stem}.json").unlink(missing_ok=True)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    """Read a training checkpoint: (tensors, JSON record, resolved ``.safetensors`` path)."""
    weights = resolve_checkpoint(path)
    header, record = read_metadata(weights)
    if header.get("format") != FORMAT or record.get("format") != FORMAT:
        raise ValueError(f"{weights} is not an invfussion training checkpoint (format {header.get('format')!r}); pass a file from RUN/{CHECKPOINT_DIR}/.")
    try:
        tensors = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{weights} could not be read ({exc}); it is truncated or corrupt, use another checkpoint.") from None
    return tensors, record, weights


# -- optimizer state in a safe form ------------------------------------------------------------
def optimizer_state_to_safe(state_dict: dict[str, Any], prefix: str = "optim.") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``optim.<param>.<key>``) and a JSON-safe rest."""
    tensors, scalars = {}, {}
    for param, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}{param}.{key}"] = value
            else:
                scalars.setdefault(str(param), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def optimizer_state_from_safe(tensors: dict[str, torch.Tensor], saved: dict[str, Any], prefix: str = "optim.") -> dict[str, Any]:
    """Inverse of :func:`optimizer_state_to_safe`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix):
            param, key = name[len(prefix):].split(".", 1)
            state.setdefault(int(param), {})[key] = value
    for param, entries in saved["scalars"].items():
        state.setdefault(int(param), {}).update(entries)
    return {"state": state, "param_groups": saved["param_groups"]}


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{k: v}`` → ``{prefix + k: v}``."""
    return {prefix + name: t for name, t in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries whose names start with ``prefix``, with the prefix removed."""
    return {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}
