"""deepinv interoperability: deepinv physics as invfussion operators, invfussion models in deepinv.

- :func:`from_physics` / :class:`DeepinvOperator`: any deepinv ``LinearPhysics`` as an invfussion
  :class:`~invfussion.degradations.base.Operator` (``A`` from ``physics.A``, ``A⁺`` from
  ``physics.A_dagger``, ``Aᵀ`` from ``physics.A_adjoint``, ``σ_y`` from a ``GaussianNoise``
  model), so invfussion's samplers, zero-shot baselines and metrics run on deepinv's operators.
- :class:`InvFussionReconstructor`: an invfussion model as a deepinv ``Reconstructor``:
  ``model(y, physics)`` returns ``[0, 1]`` images, so it drops into deepinv pipelines and metrics.
- :class:`DeepinvDenoiser`: an invfussion network as a deepinv ``Denoiser``, so deepinv's own
  diffusion samplers (DPS, DDRM, DiffPIR, …) run on an invfussion prior.

Value ranges. deepinv images live in ``[0, 1]``, invfussion images in ``[-1, 1]``:
``x = 2·x₀₁ − 1``. A linear ``A`` commutes with the scaling but not with the offset:
``A x = 2·A x₀₁ − A 1``. Therefore:

- A :class:`DeepinvOperator` acts on invfussion's ``[-1, 1]`` images directly (``A = physics.A``:
  a linear map does not care which range its input came from). Its measurements are
  ``y = A x + σ_y ε`` *in that space*, with ``σ_y = 2σ`` for the physics' ``GaussianNoise(σ)``
  (σ is in ``[0, 1]`` units). Make them with ``op.measure(x)`` on ``[-1, 1]`` images, or convert a
  deepinv measurement ``y₀₁ = physics(x₀₁)`` with :meth:`DeepinvOperator.from_deepinv_measurement`
  (``y = 2·y₀₁ − A 1``, exact, noise included: ``2·σ ε`` is the doubled noise).
- :class:`InvFussionReconstructor` does that conversion, samples in ``[-1, 1]``, and returns
  ``(x̂ + 1)/2`` clipped to ``[0, 1]``.
- :class:`DeepinvDenoiser` calls the network on ``(2·x₀₁ − 1, 2·σ₀₁)`` and maps its estimate back
  with ``(x̂ + 1)/2``.

This module imports deepinv; the rest of invfussion never does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

try:
    import deepinv
    from deepinv.models import Denoiser as _DeepinvDenoiserBase
    from deepinv.models import Reconstructor as _DeepinvReconstructorBase
except ImportError as error:  # pragma: no cover - exercised only without deepinv
    raise ImportError(
        'invfussion.integrations.deepinv needs deepinv: pip install "invfussion[deepinv]".'
    ) from error

from .. import sampling
from ..degradations.base import Operator

SIGMA_FLOOR = 0.002
"""Smallest noise level (invfussion units) :class:`DeepinvDenoiser` passes to the network.

deepinv samplers may ask for ``σ = 0`` (DDRM's last step); the EDM-preconditioned network takes
``log σ``, and at ``σ = 0.002`` (EDM's ``σ_min``) it is the identity to within ``0.002·|F|``.
"""

POSTERIOR_STEPS = 32


def to_deepinv_image(x: Tensor) -> Tensor:
    """invfussion ``[-1, 1]`` images ``(B, C, H, W)`` → deepinv ``[0, 1]`` images ``(x + 1)/2``."""
    return (x + 1) / 2


def from_deepinv_image(x: Tensor) -> Tensor:
    """deepinv ``[0, 1]`` images ``(B, C, H, W)`` → invfussion ``[-1, 1]`` images ``2x − 1``."""
    return 2 * x - 1


def _physics_device(physics: nn.Module) -> torch.device:
    tensor = next(iter([*physics.buffers(), *physics.parameters()]), None)
    return torch.device("cpu") if tensor is None else tensor.device


def _physics_dtype(physics: nn.Module) -> torch.dtype:
    """The dtype of the physics' first real floating-point buffer or parameter (default float32)."""
    for tensor in [*physics.buffers(), *physics.parameters()]:
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def _noise_std(physics: deepinv.physics.LinearPhysics, batch_size: int) -> Tensor:
    """``σ_y: (B,)`` in invfussion units (twice the physics' ``[0, 1]`` σ); 0 when noiseless."""
    noise = physics.noise_model
    if isinstance(noise, deepinv.physics.ZeroNoise):
        return torch.zeros(batch_size)
    if not isinstance(noise, deepinv.physics.GaussianNoise):
        raise ValueError(  # noqa: TRY004 (the project's contract: bad input is a ValueError)
            f"the physics' noise model is {type(noise).__name__}, but invfussion models Gaussian "
            "measurement noise only; use deepinv.physics.GaussianNoise or ZeroNoise."
        )
    sigma = torch.as_tensor(noise.sigma).detach().to(torch.float32).reshape(-1).cpu()
    if sigma.numel() == 1:
        sigma = sigma.expand(batch_size)
    elif sigma.numel() != batch_size:
        raise ValueError(
            f"the physics' GaussianNoise has {sigma.numel()} noise levels for a batch of "
            f"{batch_size}; give one σ, or one per example."
        )
    return 2 * sigma


class DeepinvOperator(Operator):
    """A deepinv ``LinearPhysics`` as a batch of ``B`` invfussion operators on ``[-1, 1]`` images.

    ``A`` is ``physics.A``, ``A⁺`` is ``physics.A_dagger`` and ``Aᵀ`` is ``physics.A_adjoint`` (all
    linear, so they act on ``[-1, 1]`` images as they are), applied to each of the ``K`` images
    of a stack in turn; measurements are flattened to ``M = prod(measurement_shape)``. All run
    in the dtype of the physics' own buffers (deepinv's are float32), whatever the input's dtype,
    since many deepinv operators cannot mix dtypes; results come back in the input's. ``A⁺`` is
    exact for a ``DecomposablePhysics`` (inpainting, FFT blur, …; singular values ≤ 1e-5 are
    dropped by deepinv) and a least-squares solve to ``physics.tol`` otherwise. The noise-aware
    inverse ``A⁺_σ = Aᵀ(AAᵀ + λI)⁻¹`` (``op.pinv_noisy``, what the network and its FDL use for
    noisy measurements) is the default of :meth:`Operator._pinv_noisy`: conjugate gradients on
    ``AAᵀ + λI`` through ``physics.A`` and ``physics.A_adjoint``; ``A_dagger`` where ``σ_y = 0``.
    Build it with :func:`from_physics`; see the module docstring for the value-range convention.

    Attributes:
        physics: the wrapped physics.
        measurement_shape: the shape of one of deepinv's measurements, e.g. ``(C, H, W)``.
        ones_measurement: ``A 1: (B, M)``, the offset between the two value ranges.
    """

    def __init__(
        self,
        physics: deepinv.physics.LinearPhysics,
        image_shape: tuple[int, int, int],
        batch_size: int = 1,
    ):
        if not isinstance(physics, deepinv.physics.LinearPhysics):
            raise ValueError(  # noqa: TRY004 (the project's contract: bad input is a ValueError)
                f"{type(physics).__name__} is not a deepinv LinearPhysics, and invfussion solves "
                "linear inverse problems only; wrap a linear physics."
            )
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 3 or batch_size < 1:
            raise ValueError(
                f"need image_shape = (C, H, W) and batch_size ≥ 1, got {image_shape} and "
                f"{batch_size}; pass the shape of one image and the number of examples."
            )
        device, dtype = _physics_device(physics), _physics_dtype(physics)
        with torch.no_grad():
            try:
                a_ones = physics.A(torch.ones(batch_size, *image_shape, device=device, dtype=dtype))
            except (RuntimeError, ValueError) as error:
                raise ValueError(
                    f"{type(physics).__name__} does not accept a batch of {batch_size} images of "
                    f"shape {image_shape}; pass the image_shape it was built for."
                ) from error
            if (
                not isinstance(a_ones, Tensor)
                or a_ones.is_complex()
                or a_ones.shape[0] != batch_size
            ):
                raise ValueError(
                    f"{type(physics).__name__} does not map a batch of {batch_size} images to one "
                    "real tensor of measurements per image; wrap a physics with real, "
                    "single-tensor measurements and a matching batch size."
                )
            ramp = torch.linspace(-2, 2, a_ones.numel(), device=device, dtype=a_ones.dtype)
            probe = a_ones + ramp.reshape(a_ones.shape)  # deterministic: leaves torch's RNG alone
            if not torch.equal(physics.sensor(probe), probe):
                raise ValueError(
                    f"{type(physics).__name__} has a non-identity sensor model (quantisation, "
                    "saturation, …), which makes it non-linear; remove its sensor_model."
                )
        self.physics = physics
        self.physics_dtype = dtype
        self.measurement_shape = tuple(a_ones.shape[1:])
        self.ones_measurement = a_ones.reshape(batch_size, -1)
        super().__init__(
            image_shape, self.ones_measurement.shape[1], _noise_std(physics, batch_size).to(device)
        )

    def _apply(self, x: Tensor) -> Tensor:  # (B, K, C, H, W) -> (B, K, M)
        stack = x.to(self.physics_dtype)
        out = [self.physics.A(stack[:, k]).reshape(x.shape[0], -1) for k in range(x.shape[1])]
        return torch.stack(out, dim=1).to(x.dtype)

    def _pinv(self, y: Tensor) -> Tensor:  # (B, K, M) -> (B, K, C, H, W)
        return self._to_images_each(self.physics.A_dagger, y)

    def _adjoint(self, y: Tensor) -> Tensor:  # (B, K, M) -> (B, K, C, H, W)
        return self._to_images_each(self.physics.A_adjoint, y)

    def _to_images_each(self, method: Callable[[Tensor], Tensor], y: Tensor) -> Tensor:
        """``method`` (a physics map from measurements to images) on each of the ``K``
        measurements of ``y: (B, K, M)`` in the physics' dtype → ``(B, K, C, H, W)``."""
        b, stack = y.shape[0], y.to(self.physics_dtype)
        out = [
            method(stack[:, k].reshape(b, *self.measurement_shape)).reshape(b, *self.image_shape)
            for k in range(y.shape[1])
        ]
        return torch.stack(out, dim=1).to(y.dtype)

    def _to(self, device: torch.device) -> DeepinvOperator:
        moved = super()._to(device)
        moved.physics = copy.deepcopy(self.physics).to(device)
        return moved

    def from_deepinv_measurement(self, y: Tensor) -> Tensor:
        """deepinv's ``y₀₁ = physics(x₀₁): (B, *measurement_shape)`` → ours, ``2·y₀₁ − A 1: (B, M)``."""
        if y.dim() < 1 or y.shape[0] != self.batch_size or y[0].numel() != self.measurement_size:
            raise ValueError(
                f"expected deepinv measurements of shape ({self.batch_size}, "
                f"{', '.join(map(str, self.measurement_shape))}), got {tuple(y.shape)}; pass "
                "physics(x) for this operator's batch."
            )
        ones = self.ones_measurement.to(y.device, y.dtype)
        return 2 * y.reshape(self.batch_size, -1) - ones

    def to_deepinv_measurement(self, y: Tensor) -> Tensor:
        """Our ``y: (B, M)`` → deepinv's ``(y + A 1)/2: (B, *measurement_shape)``."""
        ones = self.ones_measurement.to(y.device, y.dtype)
        return ((y + ones) / 2).reshape(self.batch_size, *self.measurement_shape)


def from_physics(
    physics: deepinv.physics.LinearPhysics,
    image_shape: tuple[int, int, int],
    batch_size: int = 1,
) -> DeepinvOperator:
    """``B = batch_size`` invfussion operators on ``[-1, 1]`` images of ``image_shape = (C, H, W)``.

    Raises ``ValueError`` for a non-linear physics, non-Gaussian noise, or a shape the physics
    does not accept.
    """
    return DeepinvOperator(physics, image_shape, batch_size)


def _method_error(method: str, conditioning: str) -> str | None:
    zero_shot = set(sampling.zeroshot.METHODS)
    if method not in {"posterior", "mmse", *zero_shot}:
        return (
            f"unknown method {method!r}; use posterior or mmse (degradation-aware models) or "
            f"one of {', '.join(sorted(zero_shot))} (unconditional models)."
        )
    if method in zero_shot and conditioning != "unconditional":
        return f"{method} is a zero-shot sampler for unconditional models; use posterior or mmse."
    if method not in zero_shot and conditioning == "unconditional":
        return (
            f"an unconditional model ignores y, so {method} would not restore anything; use a "
            f"zero-shot method ({', '.join(sorted(zero_shot))})."
        )
    return None


class InvFussionReconstructor(_DeepinvReconstructorBase):
    """An invfussion model as a deepinv ``Reconstructor``: ``x̂₀₁ = model(y₀₁, physics)``.

    Args:
        net: an invfussion denoiser (``models.load`` / ``models.build``).
        method: ``"posterior"`` (one EDM sample) or ``"mmse"`` for InvFussion / Palette models;
            a zero-shot sampler (``"dps"``, ``"ddrm"``, ``"ddnm"``, ``"pigdm"``, ``"daps"``) for
            unconditional ones.
        steps: solver steps (``None``: 32 for posterior, the method's default for zero-shot).
        seed: example ``b`` of a call uses noise keyed by ``(seed, b)``.
        **options: further keyword arguments of the sampler (``solver``, ``churn``, ``zeta``, …).
    """

    def __init__(
        self,
        net: nn.Module,
        method: str = "posterior",
        steps: int | None = None,
        seed: int = 0,
        **options: object,
    ):
        super().__init__()
        problem = _method_error(method, net.conditioning)
        if problem:
            raise ValueError(problem)
        self.net = net
        self.method = method
        self.steps = steps
        self.seed = seed
        self.options = options

    @property
    def image_shape(self) -> tuple[int, int, int]:
        r = self.net.img_resolution
        return (self.net.img_channels, r, r)

    def forward(
        self,
        y: Tensor,
        physics: deepinv.physics.LinearPhysics,
        seed: int | None = None,
        indices: Sequence[int] | None = None,
        **kwargs: object,
    ) -> Tensor:
        """``y: (B, *measurement_shape)`` made by ``physics`` from ``[0, 1]`` images → ``(B, C, H, W)``.

        Args:
            seed: overrides the constructor's seed for this call.
            indices: global example indices for the per-example noise (default ``0..B-1``).
            **kwargs: ignored (deepinv passes extra arguments to reconstructors).
        Returns:
            ``[0, 1]`` images (the ``[-1, 1]`` estimate mapped by ``(x̂ + 1)/2`` and clipped).
        """
        op = from_physics(physics, self.image_shape, batch_size=y.shape[0])
        y_ours = op.from_deepinv_measurement(y.to(torch.float32))
        seed = self.seed if seed is None else seed
        if self.method == "mmse":
            x = sampling.mmse(self.net, op, y_ours, seed=seed, indices=indices)
        elif self.method == "posterior":
            x = sampling.posterior(
                self.net,
                op,
                y_ours,
                steps=self.steps or POSTERIOR_STEPS,
                seed=seed,
                indices=indices,
                **self.options,
            )
        else:
            steps = {} if self.steps is None else {"steps": self.steps}
            x = sampling.zeroshot.get(self.method)(
                self.net, op, y_ours, seed=seed, indices=indices, **steps, **self.options
            )
        return to_deepinv_image(x).clamp(0, 1)


class DeepinvDenoiser(_DeepinvDenoiserBase):
    """An invfussion network as a deepinv ``Denoiser`` on ``[0, 1]`` images.

    ``forward(x₀₁, σ₀₁) = (D(2·x₀₁ − 1; max(2·σ₀₁, SIGMA_FLOOR)) + 1)/2``: both the image and the
    noise level double on the way into invfussion's ``[-1, 1]`` range. A degradation-aware model
    is called with ``op=None`` (the zero operator), i.e. as its own unconditional prior.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, sigma: float | Tensor, **kwargs: object) -> Tensor:
        """``x: (B, C, H, W)`` noisy ``[0, 1]`` images, ``sigma``: float or ``(B,)`` → ``(B, C, H, W)``.

        Other keyword arguments (deepinv passes some along) are ignored, as by deepinv's own
        denoisers.
        """
        sigma = self._handle_sigma(
            sigma, batch_size=x.shape[0], device=x.device, dtype=torch.float32
        )
        sigma_ours = (2 * sigma).clamp_min(SIGMA_FLOOR)
        return to_deepinv_image(self.net(from_deepinv_image(x), sigma_ours))


__all__ = [
    "SIGMA_FLOOR",
    "DeepinvDenoiser",
    "DeepinvOperator",
    "InvFussionReconstructor",
    "from_deepinv_image",
    "from_physics",
    "to_deepinv_image",
]
