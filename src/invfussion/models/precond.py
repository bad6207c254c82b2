"""EDM preconditioning around the backbone (NOTES §2), with the learned log-variance head.

    D(x_σ; σ, A, y, c) = c_skip(σ)·x_σ + c_out(σ)·F(c_in(σ)·x_σ ⊕ A⁺y; c_noise(σ), c, A, y)

with σ_d = 0.5, c_skip = σ_d²/(σ²+σ_d²), c_out = σσ_d/√(σ²+σ_d²), c_in = 1/√(σ²+σ_d²),
c_noise = ln(σ)/4. The log-variance u(σ) (a linear map of Fourier features of c_noise) weights the
EDM2 loss: ``[cos, sin]`` features of fixed random frequencies and a bias-free map (``logvar_head
= "fourier"``), or EDM2's magnitude-preserving features ``√2·cos(f·c + φ)`` with random
frequencies and phases and a map with a bias (``"mp-fourier"``, the authors' networks).

``A⁺y`` at the input and the Feature Degradation Layers read the measurement through the
noise-aware inverse ``A⁺_σ`` (``noise_aware_inverse``, our default) or through the exact ``A⁺``
whatever ``σ_y`` is (the authors' networks, trained so).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .hdit import Degradation, FourierFeatures, HDiT, zero_init

CONDITIONINGS = ("invfussion", "palette", "unconditional")
LOGVAR_HEADS = ("fourier", "mp-fourier")


class MPFourierFeatures(nn.Module):
    """``x: (B, 1)`` → ``(B, n)``: ``√2·cos(2π(f x + φ))`` with fixed ``f ~ N(0, 1)``, ``φ ~ U(0, 1)``
    stored as ``freqs = 2πf`` and ``phases = 2πφ`` (EDM2's magnitude-preserving Fourier features)."""

    def __init__(self, n: int, seed: int = 1):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", 2 * math.pi * torch.randn(n, generator=gen))
        self.register_buffer("phases", 2 * math.pi * torch.rand(n, generator=gen))

    def forward(self, x: Tensor) -> Tensor:
        return (x.float() * self.freqs + self.phases).cos() * math.sqrt(2)


class Denoiser(nn.Module):
    """An EDM-preconditioned denoiser; build it with :func:`invfussion.models.build`.

    Attributes:
        config: JSON-serialisable dict; ``models.build(**net.config)`` rebuilds the architecture.
        conditioning: ``"invfussion"`` (A⁺y at the input and FDL/joint attention), ``"palette"``
            (A⁺y at the input only) or ``"unconditional"`` (image only; ``op`` and ``y`` ignored).
        img_channels, img_resolution, num_classes (0 if none), pcs (extra NPPC directions).
    """

    def __init__(
        self,
        backbone: HDiT,
        conditioning: str,
        img_channels: int,
        img_resolution: int,
        num_classes: int,
        pcs: int,
        sigma_data: float,
        logvar_channels: int,
        config: dict,
        logvar_head: str = "fourier",
        noise_aware_inverse: bool = True,
    ):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(
                f"unknown conditioning {conditioning!r}; choose one of {', '.join(CONDITIONINGS)}."
            )
        self.backbone = backbone
        self.conditioning = conditioning
        self.img_channels = img_channels
        self.img_resolution = img_resolution
        self.num_classes = num_classes
        self.pcs = pcs
        self.sigma_data = sigma_data
        self.config = config
        if logvar_head not in LOGVAR_HEADS:
            raise ValueError(f"unknown logvar_head {logvar_head!r}; choose one of {', '.join(LOGVAR_HEADS)}.")
        self.noise_aware_inverse = noise_aware_inverse
        mp = logvar_head == "mp-fourier"
        self.logvar_features = MPFourierFeatures(logvar_channels) if mp else FourierFeatures(1, logvar_channels, seed=1)
        self.logvar_linear = zero_init(nn.Linear(logvar_channels, 1, bias=mp))

    def _check(
        self,
        x: Tensor,
        op,
        y: Tensor | None,
        class_labels: Tensor | None,
        aug_labels: Tensor | None,
    ) -> None:
        c, r = self.img_channels, self.img_resolution
        if x.dim() != 4 or x.shape[1:] != (c, r, r):
            raise ValueError(
                f"expected images of shape (B, {c}, {r}, {r}), got {tuple(x.shape)}; resize or pick another model."
            )
        if self.conditioning != "unconditional" and (op is None) != (y is None):
            raise ValueError(
                "pass op and y together (y = op.measure(x)), or neither for the zero operator."
            )
        aug_dim = self.backbone.mapping.augment_dim
        if aug_labels is not None and tuple(aug_labels.shape) != (x.shape[0], aug_dim):
            raise ValueError(
                f"aug_labels must have shape (B, {aug_dim}), got {tuple(aug_labels.shape)}; "
                "pass the augmentation pipeline's labels or None."
            )
        if class_labels is not None:
            if not self.num_classes:
                raise ValueError("this model has no classes; call it without class_labels.")
            if class_labels.dtype.is_floating_point or bool(
                ((class_labels < 0) | (class_labels > self.num_classes)).any()
            ):
                raise ValueError(
                    f"class_labels must be integers in [0, {self.num_classes}] ({self.num_classes} = no class); "
                    "map your labels to that range."
                )

    def forward(
        self,
        x_noisy: Tensor,
        sigma: Tensor | float,
        op=None,
        y: Tensor | None = None,
        class_labels: Tensor | None = None,
        aug_labels: Tensor | None = None,
        return_logvar: bool = False,
        return_pcs: bool = False,
    ):
        """Denoise ``x_noisy: (B, C, H, W)`` at noise level ``sigma`` (scalar or ``(B,)``).

        Args:
            op: operator batch of ``B`` (``None``: the zero operator). y: ``(B, M)`` measurements.
            class_labels: ``(B,)`` int in ``[0, num_classes]``; ``num_classes`` (or ``None``) is the
                null class used for classifier-free guidance.
            aug_labels: ``(B, augment_dim)`` augmentation labels (``None``: no augmentation).
            return_logvar: also return the learned log-variance ``u(σ): (B,)``.
            return_pcs: also return the raw NPPC directions ``w: (B, pcs, C, H, W)`` (the extra output
                channels of ``F``, without preconditioning); needs a model built with ``pcs > 0``.
        Returns:
            ``x̂₀: (B, C, H, W)`` in ``x_noisy``'s dtype, followed by ``w`` and/or ``logvar`` if asked.
        """
        self._check(x_noisy, op, y, class_labels, aug_labels)
        if return_pcs and not self.pcs:
            raise ValueError("this model has no principal-component head; build it with pcs > 0.")
        x = x_noisy.to(torch.float32)
        b, c = x.shape[:2]
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1).expand(b)
        sd2 = self.sigma_data**2
        c_skip = (sd2 / (sigma**2 + sd2))[:, None, None, None]
        c_out = (sigma * self.sigma_data / (sigma**2 + sd2).sqrt())[:, None, None, None]
        c_in = (1 / (sigma**2 + sd2).sqrt())[:, None, None, None]
        c_noise = sigma.log() / 4

        net_in = c_in * x
        degradation = None
        if self.conditioning != "unconditional":
            seen = op  # the operator as the network reads y: A⁺_σ, or the exact A⁺ for every σ_y
            if op is not None and not self.noise_aware_inverse:
                seen = op.with_noise_std(torch.zeros_like(op.noise_std))
            a_pinv_y = torch.zeros_like(x) if op is None else seen.pinv_noisy(y.to(torch.float32))
            net_in = torch.cat([net_in, a_pinv_y], dim=1)
            if self.conditioning == "invfussion" and op is not None:
                degradation = Degradation(seen, y.to(torch.float32))
        measurement_noise = None if op is None else op.noise_std.to(x.device)
        out = self.backbone(net_in, c_noise, class_labels, aug_labels, degradation, measurement_noise).to(
            torch.float32
        )
        denoised = (c_skip * x + c_out * out[:, :c]).to(x_noisy.dtype)

        extras = []
        if return_pcs:
            extras.append(out[:, c:].reshape(b, self.pcs, c, *x.shape[2:]).to(x_noisy.dtype))
        if return_logvar:
            extras.append(
                self.logvar_linear(self.logvar_features(c_noise[:, None])).reshape(b).float()
            )
        return (denoised, *extras) if extras else denoised
