"""Zero-shot posterior samplers on an unconditional denoiser, using only ``op.A`` and ``op.pinv``.

Every method has the signature ::

    fn(net, op, y, *, steps=..., seed=0, indices=None, sigma_max=..., sigma_min=...,
       progress=False, **method_opts) -> x̂: (B, C, H, W)

with ``net(x, sigma) -> x̂₀`` an EDM-preconditioned unconditional denoiser, ``op`` a batch of
``B`` operators and ``y: (B, M)`` its measurements (noisy ones use ``op.noise_std``). Sample ``i``
depends on ``(seed, indices[i])`` only. ``nfe(method, **opts)`` is the number of denoiser calls a
run makes with those options; ``NEEDS_GRAD`` names the methods that backpropagate through the
network at every call.

Class-conditional prior: the samplers take no class themselves; pass
``sampling.guided(net, class_labels, cfg)`` as ``net`` (every method calls ``net(x, σ)`` on the
whole batch of ``B``, so ``class_labels: (B,)`` lines up; with ``cfg`` each call is two network
calls, so the NFE doubles). ``restoration.run_method`` does this for every method.

Noisy measurements (``op.noise_std > 0``), each as its authors describe it (InvFussion paper
App. A.3 for the SVD-free forms); see each module:

- DDRM: its noisy update with an SVD-free isotropic range space at the image-space noise level
  ``σ_eff`` (:func:`.common.effective_noise_std`; exact for equal singular values);
- DDNM+: the range-space correction through the noise-aware inverse ``A⁺_σ`` (``op.pinv_noisy``),
  scaled down where its noise (``σ_eff`` through ``A⁺_σ``) would exceed the step's fresh noise,
  which is reduced to match;
- ΠGDM: the guidance ``Aᵀ(r²AAᵀ + σ_y²I)⁻¹(y − A x̂₀)``, exact through ``op.pinv_noisy``;
- DPS: unchanged (its gradient step on ``‖y − A x̂₀‖`` is the authors' Gaussian-noise algorithm);
- DAPS: the Gaussian likelihood ``‖A x₀ − y‖²/(2τ²)`` with ``τ = max(tau, σ_y)``.

On a Gaussian prior (tests/zeroshot) the sample mean of DDRM, ΠGDM and DAPS approaches the exact
noisy posterior mean; DPS and DDNM+ fit ``y`` nearly as if it were noiseless. At ``σ_y = 0``
every method is its noiseless form.

Defaults are the authors' budgets: DPS 1000 steps, DDRM 25 (η = 0.85, η_b = 1, from σ = 5), DDNM 100,
ΠGDM 100, DAPS 200 annealing levels × 5 ODE steps (+ 100 Langevin steps each) = 1000 NFE.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from . import daps as _daps
from . import ddnm as _ddnm
from . import ddrm as _ddrm
from . import dps as _dps
from . import pigdm as _pigdm
from .daps import daps
from .ddnm import ddnm
from .ddrm import ddrm
from .dps import dps
from .pigdm import pigdm

METHODS: dict[str, Callable[..., Tensor]] = {
    "dps": dps,
    "ddrm": ddrm,
    "ddnm": ddnm,
    "pigdm": pigdm,
    "daps": daps,
}

NEEDS_GRAD: frozenset[str] = frozenset({"dps", "pigdm"})

_NFE: dict[str, Callable[..., int]] = {
    "dps": _dps.nfe,
    "ddrm": _ddrm.nfe,
    "ddnm": _ddnm.nfe,
    "pigdm": _pigdm.nfe,
    "daps": _daps.nfe,
}


def get(method: str) -> Callable[..., Tensor]:
    """The sampler called ``method`` (one of :data:`METHODS`)."""
    if method not in METHODS:
        raise ValueError(f"unknown zero-shot method {method!r}; choose one of {sorted(METHODS)}.")
    return METHODS[method]


def nfe(method: str, **opts: object) -> int:
    """Denoiser calls of one run of ``method`` with the options ``opts`` (defaults if absent)."""
    get(method)
    return _NFE[method](**opts)


__all__ = ["METHODS", "NEEDS_GRAD", "daps", "ddnm", "ddrm", "dps", "get", "nfe", "pigdm"]
