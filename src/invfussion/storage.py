"""Files that must survive a crash, and the checkpoint format that training checkpoints and
shipped models share: one safetensors file of tensors plus one JSON file of everything else,
tied by a random id stored in both. Nothing is ever unpickled.

Every file is written to a temporary name, flushed to disk and renamed into place, so a crash at
any moment leaves the previous file or the new one, never a part. A run directory's
``checkpoints/latest`` names its newest complete checkpoint.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

FORMAT = "invfussion-checkpoint/1"
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
CHECKPOINT_NAME = re.compile(r"^step-(\d{7,})$")


def checkpoint_stem(step: int) -> str:
    """``step-0001234`` for step 1234."""
    return f"step-{int(step):07d}"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # directories cannot be opened on some platforms; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(tmp: Path, dest: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)


def write_text_atomically(dest: Path, text: str) -> None:
    """Write ``text`` to ``dest`` so that a crash leaves the old file or the new one, never a part."""
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    replace_atomically(tmp, dest)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The ``.safetensors`` file that ``run_dir``'s ``latest`` pointer names, or ``None`` if it has none."""
    pointer = Path(run_dir) / CHECKPOINT_DIR / LATEST
    if not pointer.is_file():
        return None
    stem = pointer.read_text(encoding="utf-8").strip()
    if not CHECKPOINT_NAME.match(stem):
        raise ValueError(f"{pointer} does not name a checkpoint ({stem!r}); delete it to fall back to a fresh run.")
    weights = pointer.parent / f"{stem}.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{pointer} names {weights.name}, which is missing; restore it or point {pointer} to an existing checkpoint.")
    return weights


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory, its ``checkpoints/`` folder, a ``.safetensors`` or a ``.json`` file → the ``.safetensors`` file."""
    path = Path(path)
    if path.is_dir():
        run_dir = path.parent if (path / LATEST).exists() else path  # RUN/checkpoints/ also works
        found = latest_checkpoint(run_dir)
        if found is None:
            raise FileNotFoundError(f"{path} holds no checkpoint (no {CHECKPOINT_DIR}/{LATEST}); train into it first or pass a checkpoint file.")
        return found
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; pass a run directory or a .safetensors file written by invfussion.")
    if path.suffix != ".safetensors":
        raise ValueError(f"{path} is not a .safetensors checkpoint; pass a run directory or a .safetensors file.")
    return path


def read_metadata(weights: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Validated (safetensors header metadata, JSON record) of a checkpoint or exported model."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{weights} is not a readable safetensors file ({exc}); it is truncated or corrupt, use another checkpoint.") from None
    sidecar = weights.with_suffix(".json")
    if not sidecar.is_file():
        raise FileNotFoundError(f"{weights} has no sibling {sidecar.name}; copy the JSON file next to it.")
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{sidecar} is not valid JSON ({exc}); restore it from the run directory.") from None
    if not isinstance(record, dict) or record.get("id") != header.get("id"):
        raise ValueError(f"{sidecar} does not belong to {weights.name} (their ids differ); keep each .json with its own .safetensors.")
    return header, record
