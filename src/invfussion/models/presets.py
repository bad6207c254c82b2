"""Architecture presets and :func:`build`.

``mnist32`` is sized to train on two CPU cores; ``ffhq64``, ``imagenet64`` and ``ffhq256`` are the
authors' entries of their ``models/hyperparams.py`` (widths, depths, per-level attention and
neighbourhood kernel sizes) with every architecture choice of their HDiT (FDL mixing bias,
per-head RoPE frequencies, Fourier-embedded 9-entry augmentation label, EDM2 log-variance head, no
mapping dropout), so the paper can be reproduced on GPUs and the authors' released weights load
into them (:mod:`invfussion.models.authors`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from torch import nn

from .attention import ATTENTION_KINDS, AttentionPattern
from .hdit import FeedForwardBlock, HDiT, MappingNetwork, SelfAttentionBlock, TransformerLayer
from .invfussion import JointAttentionBlock, fdl_supported
from .precond import CONDITIONINGS, Denoiser

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """Every architecture choice. Per-level lists run from the outermost level to the middle one.

    Attributes:
        img_channels, img_resolution: data shape ``(C, R, R)``.
        num_classes: class-conditional with this many classes (+ a null class for CFG); 0 = none.
        augment_dim: length of the augmentation label fed to the mapping network (0 = none).
        patch_size: pixels per token side at the outermost level (doubles at every level).
        widths, depths: token width and number of transformer layers per level (the down and the
            up stack of a level each have ``depth`` layers; the middle level has ``depth``).
        d_ff: feed-forward width per level (``None``: 3 × width).
        attention: per level, ``global``, ``neighborhood`` or ``shifted-window``.
        kernel_size: neighborhood size, one for every level or one per level;
            window_size: shifted-window size (odd layers shifted by half).
        d_head: attention head width (multiple of 8). dropout: in attention and FFN (and the
            mapping network unless ``mapping_dropout`` is given).
        mapping_width, mapping_depth, mapping_d_ff: mapping network (``None``: 3 × width).
        fdl_levels: per level, whether InvFussion blocks are used (``None``: every level); a level whose
            width is not divisible by ``P²·C`` falls back to plain attention with a warning.
        noise_conditioning: the mapping network also embeds each example's measurement noise σ_y
            (``op.noise_std``), so one model serves every noise level; ``train`` turns it on for
            conditional models trained on noisy measurements.
        pcs: extra output directions for NPPC (0 = none).
        sigma_data: EDM data standard deviation. logvar_channels: Fourier features of u(σ).
        fdl_bias: the FDL's mixing layer has a bias (the authors' networks).
        rope_per_head: each head has its own RoPE frequencies (the authors' networks).
        augment_embedding: ``linear`` or ``fourier`` (the authors': Fourier features, then linear).
        logvar_head: ``fourier`` or ``mp-fourier`` (the authors': EDM2's, with a bias).
        mapping_dropout: dropout in the mapping network (``None``: ``dropout``).
        noise_aware_inverse: the network reads ``y`` through ``A⁺_σ`` (``False``: the exact ``A⁺``
            at every σ_y, as the authors' networks were trained).
    """

    img_channels: int
    img_resolution: int
    patch_size: int
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    attention: tuple[str, ...]
    num_classes: int = 0
    augment_dim: int = 7  # = invfussion.data.Augment.label_dim
    noise_conditioning: bool = False  # the measurement noise σ_y enters the conditioning
    d_ff: tuple[int, ...] | None = None
    kernel_size: int | tuple[int, ...] = 7
    window_size: int = 8
    d_head: int = 64
    dropout: float = 0.0
    mapping_width: int = 256
    mapping_depth: int = 2
    mapping_d_ff: int | None = None
    fdl_levels: tuple[bool, ...] | None = None
    pcs: int = 0
    sigma_data: float = 0.5
    logvar_channels: int = 128
    fdl_bias: bool = False
    rope_per_head: bool = False
    augment_embedding: str = "linear"
    logvar_head: str = "fourier"
    mapping_dropout: float | None = None
    noise_aware_inverse: bool = True

    def kernel_sizes(self) -> tuple[int, ...]:
        """The neighbourhood kernel size of every level."""
        if isinstance(self.kernel_size, int):
            return (self.kernel_size,) * len(self.widths)
        return tuple(self.kernel_size)


# The architecture of the authors' HDiT (their models/hdit.py), on top of their hyperparams entries.
AUTHORS_ARCHITECTURE = dict(
    fdl_bias=True,
    rope_per_head=True,
    augment_dim=9,
    augment_embedding="fourier",
    logvar_head="mp-fourier",
    dropout=0.05,
    mapping_dropout=0.0,
)

# Authors' FFHQ64 / ImageNet64: 375M parameters (305M as Palette), as the authors report.
_FFHQ64 = ModelConfig(
    img_channels=3,
    img_resolution=64,
    patch_size=2,
    widths=(384, 768, 1536),
    depths=(2, 2, 8),
    attention=("neighborhood", "neighborhood", "global"),
    **AUTHORS_ARCHITECTURE,
)

PRESETS: dict[str, ModelConfig] = {
    # 4.0M parameters (InvFussion; 3.25M Palette): 64 tokens × 128 around 16 tokens × 256.
    "mnist32": ModelConfig(
        img_channels=1,
        img_resolution=32,
        patch_size=4,
        widths=(128, 256),
        depths=(2, 2),
        attention=("global", "global"),
        mapping_width=128,
        mapping_depth=1,
    ),
    "ffhq64": _FFHQ64,
    # ImageNet64: the FFHQ64 network with 1000 classes (+ the null class for guidance).
    "imagenet64": dataclasses.replace(_FFHQ64, num_classes=1000),
    # Authors' FFHQ256: 170M parameters; neighbourhoods of 5 and 7, then two global levels; the
    # innermost level (width 1536 < 32²·3) has no FDL.
    "ffhq256": ModelConfig(
        img_channels=3,
        img_resolution=256,
        patch_size=4,
        widths=(192, 384, 768, 1536),
        depths=(2, 2, 4, 2),
        attention=("neighborhood", "neighborhood", "global", "global"),
        kernel_size=(5, 7, 7, 7),
        fdl_levels=(True, True, True, False),
        **AUTHORS_ARCHITECTURE,
    ),
}

_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
_LIST_FIELDS = ("widths", "depths", "attention", "d_ff", "fdl_levels", "kernel_size")


def _resolve(preset: str, overrides: dict) -> ModelConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown model option(s) {', '.join(unknown)}; allowed: {', '.join(_FIELDS)}."
        )
    values = {
        k: (tuple(v) if k in _LIST_FIELDS and isinstance(v, (list, tuple)) else v) for k, v in overrides.items()
    }
    cfg = dataclasses.replace(PRESETS[preset], **values)
    _validate(cfg)
    return cfg


def _validate(cfg: ModelConfig) -> None:
    n = len(cfg.widths)
    for name in ("depths", "attention", "d_ff", "fdl_levels", "kernel_size"):
        value = getattr(cfg, name)
        if isinstance(value, tuple) and len(value) != n:
            raise ValueError(
                f"{name} has {len(value)} entries but widths has {n}; give one per level."
            )
    bad = [a for a in cfg.attention if a not in ATTENTION_KINDS]
    if bad:
        raise ValueError(
            f"unknown attention kind {bad[0]!r}; choose one of {', '.join(ATTENTION_KINDS)}."
        )
    stride = cfg.patch_size * 2 ** (n - 1)
    if cfg.img_resolution % stride:
        raise ValueError(
            f"img_resolution {cfg.img_resolution} must be divisible by patch_size·2^(levels−1) = {stride}; "
            "change the patch size or the number of levels."
        )
    for w in cfg.widths:
        if w % cfg.d_head:
            raise ValueError(
                f"width {w} is not a multiple of d_head {cfg.d_head}; change one of them."
            )
    if cfg.d_head % 8:
        raise ValueError(
            f"d_head {cfg.d_head} must be a multiple of 8 (axial RoPE); pick e.g. 32 or 64."
        )
    if min(cfg.depths) < 1 or cfg.num_classes < 0 or cfg.pcs < 0 or cfg.augment_dim < 0:
        raise ValueError(
            "depths must be ≥ 1 and num_classes, pcs, augment_dim ≥ 0; fix the overrides."
        )


def _layer_factory(cfg: ModelConfig, conditioning: str):
    cond_width = cfg.mapping_width
    wanted = cfg.fdl_levels or (True,) * len(cfg.widths)
    joint = []
    for level, width in enumerate(cfg.widths):
        patch = cfg.patch_size * 2**level
        use = conditioning == "invfussion" and wanted[level]
        if use and not fdl_supported(width, patch, cfg.img_channels):
            log.warning(
                "level %d (width %d) is not divisible by patch²·channels = %d: it uses plain attention "
                "instead of InvFussion blocks.",
                level,
                width,
                patch * patch * cfg.img_channels,
            )
            use = False
        joint.append(use)

    def make(
        level: int, width: int, d_ff: int, pattern: AttentionPattern, index: int
    ) -> TransformerLayer:
        if pattern.kind == "shifted-window" and index % 2:
            pattern = dataclasses.replace(pattern, shift=pattern.window_size // 2)
        if joint[level]:
            patch = cfg.patch_size * 2**level
            attn = JointAttentionBlock(
                width, cfg.d_head, cond_width, pattern, cfg.dropout, patch, cfg.img_channels, cfg.fdl_bias
            )
        else:
            attn = SelfAttentionBlock(width, cfg.d_head, cond_width, pattern, cfg.dropout)
        return TransformerLayer(attn, FeedForwardBlock(width, d_ff, cond_width, cfg.dropout))

    return make


def build(preset: str, conditioning: str = "invfussion", **overrides) -> Denoiser:
    """A freshly initialised denoiser.

    Args:
        preset: one of :data:`PRESETS` (``mnist32``, ``ffhq64``, ``imagenet64``, ``ffhq256``).
        conditioning: ``invfussion``, ``palette`` or ``unconditional``.
        **overrides: any :class:`ModelConfig` field (e.g. ``widths=[64, 128]``, ``pcs=4``).
    """
    if conditioning not in CONDITIONINGS:
        raise ValueError(
            f"unknown conditioning {conditioning!r}; choose one of {', '.join(CONDITIONINGS)}."
        )
    cfg = _resolve(preset, overrides)
    c = cfg.img_channels
    in_channels = c if conditioning == "unconditional" else 2 * c
    mapping = MappingNetwork(
        cfg.mapping_width,
        cfg.mapping_depth,
        cfg.mapping_d_ff or 3 * cfg.mapping_width,
        cfg.num_classes,
        cfg.augment_dim,
        cfg.dropout if cfg.mapping_dropout is None else cfg.mapping_dropout,
        cfg.noise_conditioning,
        cfg.augment_embedding,
    )
    backbone = HDiT(
        in_channels=in_channels,
        out_channels=c * (1 + cfg.pcs),
        patch_size=cfg.patch_size,
        widths=list(cfg.widths),
        depths=list(cfg.depths),
        d_ffs=list(cfg.d_ff or [3 * w for w in cfg.widths]),
        d_head=cfg.d_head,
        patterns=[
            AttentionPattern(a, k, cfg.window_size) for a, k in zip(cfg.attention, cfg.kernel_sizes())
        ],
        mapping=mapping,
        layer_factory=_layer_factory(cfg, conditioning),
        rope_per_head=cfg.rope_per_head,
    )
    if cfg.pcs:
        # The output projection starts at zero (the image channels), but NPPC directions need a
        # non-zero start: Gram–Schmidt of zero vectors has no direction to follow.
        nn.init.normal_(backbone.output_weight_by_channel()[:, c:], std=0.1 / cfg.widths[0] ** 0.5)
    # Every resolved field, so that a saved model rebuilds even if the preset's defaults change.
    config = {"preset": preset, "conditioning": conditioning}
    config.update(
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}
    )
    return Denoiser(
        backbone,
        conditioning,
        c,
        cfg.img_resolution,
        cfg.num_classes,
        cfg.pcs,
        cfg.sigma_data,
        cfg.logvar_channels,
        config,
        cfg.logvar_head,
        cfg.noise_aware_inverse,
    )
