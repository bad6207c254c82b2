"""The paper authors' released InvFussion weights (github.com/noamelata/InvFusion) in our format.

Their checkpoints are PyTorch pickles holding the EMA state dict of their ``Precond(HDiT)``
network under ``"ema"`` (their training-state files also hold ``net``, ``optimizer``, ``loss_fn``
and a ``dnnlib.util.EasyDict`` of counters). :func:`read_authors_file` opens one with
``torch.load(weights_only=True)``: tensors, numbers, strings and plain containers only, plus
their ``EasyDict`` allow-listed as a plain ``dict`` subclass; anything else is refused before
any of it is built, so no code from the file runs.

Their network is ours with options (:class:`~invfussion.models.presets.ModelConfig`); every
difference between their ``models/hdit.py``, ``training/precond.py``, ``training/encoders.py``,
``degradation.py`` and our defaults, and how an imported model reproduces it:

==============================  ==================================  ================================
what                            theirs                              here
==============================  ==================================  ================================
FDL mixing layer                ``Linear(K+1, K)`` with a bias      ``fdl_bias=True``
RoPE frequencies                ``n_heads·d_head/8`` log-spaced     ``rope_per_head=True``
                                over [π, 10π), dealt to the heads
augmentation label              9 entries, Fourier features then    ``augment_dim=9``,
                                linear (zero label ≠ no embedding)  ``augment_embedding="fourier"``
dropout                         0.05 in attention and FFN, none in  ``dropout=0.05``,
                                the mapping network                 ``mapping_dropout=0``
log-variance u(σ)               EDM2 MP-Fourier(128) + Linear with  ``logvar_head="mp-fourier"``
                                bias                                (training only)
network's inverse of y          exact ``A⁺`` at every σ_y (input    ``noise_aware_inverse=False``
                                ``A⁺y`` and FDL)
classes                         one-hot ``label_dim``; all-zero =   ``num_classes=label_dim``,
                                null class ``label_dim``            null = ``num_classes`` (same)
input encoding                  uint8/127.5 − 1, x̃ = c_in·x ⊕ A⁺y   the same (images in [-1, 1])
preconditioning                 EDM, σ_d = 0.5, c_noise = ln σ / 4  the same
attention per level             their ``self_attns``: global or     ``attention`` and per-level
                                NATTEN neighbourhood (kernel 5/7)   ``kernel_size``
neighbourhood borders           NATTEN: the window shifts inward    the same (dense mask / Flex)
joint keys in a neighbourhood   ``na2d`` on both key sets, one      one mask for both key groups,
                                softmax over the union              one softmax
FFHQ256 innermost level         no FDL (``joint`` false)            ``fdl_levels``
token-split ``fac``             shape ``(1,)``                      shape ``()`` (reshaped)
mixed precision                 fp16 autocast on CUDA               bf16 autocast on CUDA (opt.)
==============================  ==================================  ================================

Their measurement layouts are ours for patch in-painting and the random matrix (the same
families and distributions: ``inpaint-patches``, ``matrix``); their strided motion blur measures the
folded spectrum of a zero-padded convolution: ``motion-blur-folded-spectrum``.

``tools/authors_parity.py`` builds their network from their code and proves ours equal.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .presets import AUTHORS_ARCHITECTURE, build
from .precond import Denoiser

# Their models/hyperparams.py entries, with the resolution and classes their generate_images.py
# gives each. Their FFHQ64 and ImageNet64 entries are identical; ImageNet64 adds 1,000 classes
# (used with classifier-free guidance).
_AUTHORS_64 = {
    "patch_size": [2, 2], "depths": [2, 2, 8], "widths": [384, 768, 1536], "joint": [True, True, True],
    "self_attns": [{"type": "neighborhood", "d_head": 64, "kernel_size": 7},
                   {"type": "neighborhood", "d_head": 64, "kernel_size": 7},
                   {"type": "global", "d_head": 64}],
    "img_resolution": 64, "img_channels": 3, "label_dim": 0,
}
AUTHORS_CONFIGS: dict[str, dict[str, Any]] = {
    "ffhq64": _AUTHORS_64,
    "imagenet64": {**_AUTHORS_64, "label_dim": 1000},
    "ffhq256": {
        "patch_size": [4, 4], "depths": [2, 2, 4, 2], "widths": [192, 384, 768, 1536],
        "joint": [True, True, True, False],
        "self_attns": [{"type": "neighborhood", "d_head": 64, "kernel_size": 5},
                       {"type": "neighborhood", "d_head": 64, "kernel_size": 7},
                       {"type": "global", "d_head": 64},
                       {"type": "global", "d_head": 64}],
        "img_resolution": 256, "img_channels": 3, "label_dim": 0,
    },
}

# Their RandomDegradation draws one of these per batch, uniformly (matrix rows ~U{2..128}).
AUTHORS_FAMILIES = ("matrix:max_rows=128", "motion-blur-folded-spectrum", "inpaint-patches", "none")

_REQUIRED = ("patch_size", "depths", "widths", "joint", "self_attns", "img_resolution", "img_channels")
_OPTIONAL = ("label_dim", "mapping_width", "mapping_depth", "mapping_d_ff", "d_ffs", "dropout_rate")


class _EasyDict(dict):
    """Stand-in for their ``dnnlib.util.EasyDict`` (a ``dict`` with attribute access), so that their
    training-state files unpickle under ``weights_only=True``: it builds a plain ``dict`` (the only
    type the weights-only unpickler fills with items)."""

    def __new__(cls, *args, **kwargs):
        return dict()


_EasyDict.__module__, _EasyDict.__qualname__, _EasyDict.__name__ = "dnnlib.util", "EasyDict", "EasyDict"


def read_authors_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The network state dict in one of their checkpoint files: its ``"ema"`` entry, or the file
    itself when it is a bare state dict. Raises ``ValueError`` (one line) for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist; pass the authors' .pt file (their GitHub issue #2 links it).")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one has no directory
        raise ValueError(
            f"{path.name} is not a complete PyTorch checkpoint (not the zip archive torch.save writes; it may be "
            "truncated): download it again, or pass the authors' .pt file."
        )
    try:
        with torch.serialization.safe_globals([_EasyDict]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"(?:WeightsUnpickler error:\s*|unsupported )(GLOBAL [\w.]+|[^.\n]+)", str(exc))
        raise ValueError(
            f"{path.name} holds Python objects beyond tensors and plain containers "
            f"({found.group(1).strip()[:120] if found else 'refused by the weights-only reader'}); refused, since "
            "loading it could run code: pass an EMA checkpoint of the authors' HDiT."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise ValueError(
            f"{path.name} is not a complete PyTorch checkpoint ({str(exc).splitlines()[0][:120]}); "
            "download it again (the file may be truncated)."
        ) from None
    state = data.get("ema", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path.name} holds no state dict of tensors (neither an 'ema' entry nor a bare one); pass the authors' EMA checkpoint.")
    prefix = os.path.commonprefix(list(state))
    for wrapper in ("module.", "_orig_mod."):  # DDP / torch.compile wrappers
        if prefix.startswith(wrapper):
            state = {k[len(wrapper):]: v for k, v in state.items()}
    return state


def authors_config(config: str | Path | dict) -> tuple[str, dict[str, Any]]:
    """Their configuration (a name in :data:`AUTHORS_CONFIGS`, a JSON file or a dict in their layout)
    → ``(preset, overrides)`` for :func:`~invfussion.models.build`."""
    name = str(config).lower() if isinstance(config, (str, Path)) else None
    if name in AUTHORS_CONFIGS:
        spec, preset = AUTHORS_CONFIGS[name], name
    elif isinstance(config, dict):
        spec, preset = config, "ffhq64"
    else:
        path = Path(config)
        if not path.is_file():
            raise ValueError(f"--config {config!r} is neither {', '.join(AUTHORS_CONFIGS)} nor a JSON file; pass one of those.")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); write their hyperparams entry as JSON.") from None
        preset = "ffhq64"
    missing = [k for k in _REQUIRED if k not in spec]
    unknown = sorted(set(spec) - set(_REQUIRED) - set(_OPTIONAL))
    if missing or unknown:
        raise ValueError(
            f"their configuration needs {', '.join(_REQUIRED)} (optional: {', '.join(_OPTIONAL)}); "
            + (f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}") + "."
        )
    patch = list(spec["patch_size"])
    attns = list(spec["self_attns"])
    heads = {a.get("d_head", 64) for a in attns}
    kinds = [a.get("type") for a in attns]
    if len(set(patch)) != 1 or len(heads) != 1 or not set(kinds) <= {"global", "neighborhood"}:
        raise ValueError(
            "their configuration must have a square patch_size, one d_head for every level and "
            f"global or neighborhood attention (got patch {patch}, d_head {sorted(heads)}, types {kinds}); "
            "other variants are not supported."
        )
    dropout = spec.get("dropout_rate", AUTHORS_ARCHITECTURE["dropout"])
    if isinstance(dropout, list):
        if len(set(dropout)) != 1:
            raise ValueError("per-level dropout_rate values must be equal; they only matter for training.")
        dropout = dropout[0]
    width = spec.get("mapping_width", 256)
    kernels = [int(a.get("kernel_size", 7)) for a in attns]
    overrides = {
        **AUTHORS_ARCHITECTURE,
        "img_channels": int(spec["img_channels"]),
        "img_resolution": int(spec["img_resolution"]),
        "patch_size": int(patch[0]),
        "widths": [int(w) for w in spec["widths"]],
        "depths": [int(d) for d in spec["depths"]],
        "attention": kinds,
        "kernel_size": kernels[0] if len(set(kernels)) == 1 else kernels,
        "d_head": int(heads.pop()),
        "fdl_levels": None if all(spec["joint"]) else [bool(j) for j in spec["joint"]],
        "num_classes": int(spec.get("label_dim") or 0),
        "mapping_width": int(width),
        "mapping_depth": int(spec.get("mapping_depth", 2)),
        "mapping_d_ff": int(spec["mapping_d_ff"]) if spec.get("mapping_d_ff") else None,
        "d_ff": [int(d) for d in spec["d_ffs"]] if spec.get("d_ffs") else None,
        "dropout": float(dropout if dropout is not None else 0.0),
        "noise_aware_inverse": False,
    }
    return preset, overrides


# Their parameter names → ours. Level layers are matched by _LAYER_RULES after the level prefix.
_RULES = [
    (r"unet\.patch_in\.proj\.weight", "backbone.patch_in.weight"),
    (r"unet\.time_emb\.weight", "backbone.mapping.noise_features.weight"),
    (r"unet\.time_in_proj\.weight", "backbone.mapping.noise_proj.weight"),
    (r"unet\.aug_emb\.weight", "backbone.mapping.aug_features.weight"),
    (r"unet\.aug_in_proj\.weight", "backbone.mapping.aug_proj.weight"),
    (r"unet\.class_emb\.weight", "backbone.mapping.class_embed.weight"),
    (r"unet\.mapping\.(in|out)_norm\.scale", r"backbone.mapping.\1_norm.scale"),
    (r"unet\.mapping\.blocks\.(\d+)\.norm\.scale", r"backbone.mapping.blocks.\1.0.scale"),
    (r"unet\.mapping\.blocks\.(\d+)\.up_proj\.weight", r"backbone.mapping.blocks.\1.1.proj.weight"),
    (r"unet\.mapping\.blocks\.(\d+)\.down_proj\.weight", r"backbone.mapping.blocks.\1.3.weight"),
    (r"unet\.(merges|splits)\.(\d+)\.proj\.weight", r"backbone.\1.\2.proj.weight"),
    (r"unet\.splits\.(\d+)\.fac", r"backbone.splits.\1.fac"),
    (r"unet\.out_norm\.scale", "backbone.out_norm.scale"),
    (r"unet\.patch_out\.proj\.weight", "backbone.patch_out.weight"),
    (r"logvar_fourier\.(freqs|phases)", r"logvar_features.\1"),
    (r"logvar_linear\.(weight|bias)", r"logvar_linear.\1"),
]
_LEVEL = re.compile(r"unet\.(down_levels\.\d+|up_levels\.\d+|mid_level)\.(\d+)\.(.+)")
_LAYER_RULES = {
    "attn.self_attn.norm.linear.weight": "attention.norm.linear.weight",
    "attn.self_attn.jnorm.linear.weight": "attention.norm_joint.linear.weight",
    "attn.self_attn.qkv_proj.weight": "attention.qkv.weight",
    "attn.self_attn.jk_proj.weight": "attention.joint_k.weight",
    "attn.self_attn.jv_proj.weight": "attention.joint_v.weight",
    "attn.self_attn.scale": "attention.scale",
    "attn.self_attn.out_proj.weight": "attention.out.weight",
    "attn.ff.norm.linear.weight": "ff.norm.linear.weight",
    "attn.ff.up_proj.weight": "ff.up.proj.weight",
    "attn.ff.down_proj.weight": "ff.down.weight",
    "feature_degradation.deg_linear.weight": "attention.fdl.mix.weight",
    "feature_degradation.deg_linear.bias": "attention.fdl.mix.bias",
}
_ROPE = "attn.self_attn.pos_emb.freqs"  # a fixed buffer: checked against ours, not stored


def our_name(key: str) -> str | None:
    """Our parameter name for their ``key`` (``None`` for their RoPE buffers); ``KeyError`` if unknown."""
    level = _LEVEL.fullmatch(key)
    if level:
        where, index, rest = level.groups()
        if rest == _ROPE:
            return None
        if rest in _LAYER_RULES:
            return f"backbone.{where}.layers.{index}.{_LAYER_RULES[rest]}"
        raise KeyError(key)
    for pattern, target in _RULES:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, target, key)
    raise KeyError(key)


def _rope_level(net: Denoiser, key: str) -> int:
    where = _LEVEL.fullmatch(key).group(1)
    return len(net.backbone.down_levels) if where == "mid_level" else int(where.split(".")[1])


def key_map(theirs: dict[str, torch.Size], own: dict[str, torch.Size]) -> dict[str, str | None]:
    """Their tensor names and shapes → our names (``None`` for their RoPE buffers), one to one:
    raises ``ValueError`` naming the first keys left over, missing or of another shape."""
    mapping: dict[str, str | None] = {}
    unknown = []
    for key, shape in theirs.items():
        try:
            name = our_name(key)
        except KeyError:
            name = ""
        if name is not None and name not in own:
            unknown.append(key)
            continue
        if name is not None:
            target = own[name]
            fits = tuple(shape) == tuple(target) or (name.endswith(".fac") and math.prod(shape) == math.prod(target))
            if not fits:
                raise ValueError(f"{key} has shape {tuple(shape)} but the configuration needs {tuple(target)} "
                                 f"for {name}; pass the configuration the file was trained with (--config).")
        mapping[key] = name
    missing = sorted(set(own) - set(mapping.values()))
    if unknown or missing:
        raise ValueError(
            "the file does not fit the configuration: "
            + (f"{len(unknown)} of its tensors have no place (e.g. {', '.join(unknown[:3])})" if unknown else "")
            + ("; " if unknown and missing else "")
            + (f"{len(missing)} of ours are absent (e.g. {', '.join(missing[:3])})" if missing else "")
            + "; pass the configuration it was trained with (--config imagenet64|ffhq256|ffhq64|CONFIG.json)."
        )
    return mapping


def convert_state(theirs: dict[str, torch.Tensor], net: Denoiser) -> dict[str, torch.Tensor]:
    """Their state dict → ``net``'s (float32), every tensor placed once (:func:`key_map`); their
    RoPE buffers must equal the frequencies ``net`` computes."""
    own = net.state_dict()
    ours: dict[str, torch.Tensor] = {}
    for key, name in key_map({k: v.shape for k, v in theirs.items()}, {k: v.shape for k, v in own.items()}).items():
        tensor = theirs[key].detach().to(torch.float32)
        if name is None:
            level = _rope_level(net, key)
            expected = net.backbone.ropes[level].freqs
            if tensor.shape != expected.shape or not torch.allclose(tensor, expected, rtol=1e-5):
                raise ValueError(f"{key}: their RoPE frequencies {tuple(tensor.shape)} differ from the configuration's "
                                 f"(level {level}, {tuple(expected.shape)}); pass the configuration the file was trained with.")
            continue
        ours[name] = tensor.reshape(own[name].shape).clone()
    return ours


def load_authors(state: dict[str, torch.Tensor], config: str | Path | dict) -> Denoiser:
    """Our denoiser (eval mode, float32) holding their weights ``state`` for their ``config``."""
    preset, overrides = authors_config(config)
    net = build(preset, "invfussion", **overrides)
    net.load_state_dict(convert_state(state, net))
    return net.eval().requires_grad_(False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_checkpoint(file: str | Path, config: str | Path, out: str | Path) -> Path:
    """Convert their checkpoint ``file`` for ``config`` into ``out/model.safetensors`` + ``model.json``
    (our model format, with a model card); ``models.load(out)`` then loads it. Everything is checked
    before anything is written; ``out`` must not already hold a model. Returns the weights path."""
    from .load import MODEL_FILE, MODEL_FORMAT

    file, out = Path(file), Path(out)
    if (out / MODEL_FILE).exists() or (out / "model.json").exists():
        raise ValueError(f"{out} already holds a model; pass a new --out directory.")
    net = load_authors(read_authors_file(file), config)
    name = str(config).lower() if str(config).lower() in AUTHORS_CONFIGS else Path(config).name
    model_id = uuid.uuid4().hex
    card = {
        "name": f"authors-{name}" if name in AUTHORS_CONFIGS else f"authors ({name})",
        "weights": "by the paper's authors (github.com/noamelata/InvFusion), provided as-is",
        "source_file": file.name,
        "source_sha256": _sha256(file),
        "authors_config": authors_config(config)[1] | {"name": name},
        "training_families": list(AUTHORS_FAMILIES),
        "command": f"invfussion import-checkpoint {file.name} --config {config} --out {out}",
    }
    meta = {
        "format": MODEL_FORMAT, "id": model_id, "model": net.config, "card": card,
        "source": {"train": {"data": None, "degradations": list(AUTHORS_FAMILIES), "measurement_noise": "0"}},
    }
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=out))
    try:
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(staging / "model.safetensors"), metadata={"format": MODEL_FORMAT, "id": model_id})
        (staging / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(staging / "model.json", out / "model.json")
        os.replace(staging / "model.safetensors", out / "model.safetensors")
    except BaseException:  # neither file was there before: leave none behind
        for leftover in ("model.json", "model.safetensors"):
            (out / leftover).unlink(missing_ok=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out / "model.safetensors"
