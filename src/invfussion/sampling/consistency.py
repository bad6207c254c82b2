"""Data consistency on top of InvFussion: a zero-shot sampler's measurement step driven by
InvFussion's conditional ``x̂₀`` (issue 27).

One pass through the Feature Degradation Layers conditions the estimate on ``y`` but does not
enforce ``A x̂ = y``; where the measurement is rich (a random matrix with 64–128 rows) the
posterior stays far from it. The zero-shot samplers enforce it step by step, each in its own way
(:mod:`.zeroshot`): a range-space replacement (DDNM), a pseudo-inverse-guided score (ΠGDM), a
gradient step on ``‖y − A x̂₀‖`` (DPS). Here they are handed InvFussion with the operator and the
measurement bound (:func:`bind_measurement`) in place of an unconditional network, so each of their
denoiser calls is one conditional InvFussion call and their consistency step corrects what the
network leaves. Nothing else changes: the same samplers, the same noise handling for ``σ_y > 0``.

Two ways to start (:func:`consistent_sample`):

- from noise at ``σ_max = 80`` with the sampler's own budget (``posterior+ddnm``,
  ``posterior+pigdm``, ``posterior+dps`` in ``restore`` and ``evaluate``);
- from InvFussion's one-call MMSE ``x̂``: ``x̂ + σ_start·ε``, then a short trajectory from
  ``σ_start`` (``mmse+ddnm``, ``mmse+pigdm``, ``mmse+dps``; one extra call). The defaults
  :data:`FROM_MMSE` were chosen on validation digits (BENCHMARKS.md, issue 27).

Names: "guidance" in this package is classifier-free guidance (:mod:`.guidance`); this is
*consistency* with the measurement. Both compose: pass ``sampling.guided(net, labels, cfg)`` as
``net``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from ..degradations.base import Operator
from .mmse import mmse

STEPS = ("ddnm", "pigdm", "dps")
"""The consistency steps, by the zero-shot method they come from."""
STARTS = ("posterior", "mmse")
"""Where a trajectory starts: noise at σ = 80 (``posterior``) or the one-call MMSE (``mmse``)."""
FROM_MMSE: dict[str, dict[str, int | float]] = {
    "ddnm": {"steps": 10, "sigma_max": 1.0},
    "pigdm": {"steps": 10, "sigma_max": 1.0},
    "dps": {"steps": 100, "sigma_max": 1.0},
}
"""Budget and starting noise level of each step when starting from the one-call MMSE, chosen on
validation digits (``benchmarks/consistency_sweep.py``): σ_start = 1 beat 2 and 5 for every step on
the 64- and 128-row matrix; ΠGDM and DDNM gain little beyond 10 steps, DPS gains up to 100."""
RICH_RATIO = 0.05
"""The default sampler turns to ``mmse+dps`` for a random matrix with at least this many rows per
pixel (M/D ≥ 0.05: 64 and 128 rows of 1,024 on MNIST; not 16), where it beat the posterior and
DPS on validation digits (BENCHMARKS.md, issue 27)."""


def default_sampler(spec: str, op: Operator) -> str:
    """The sampler ``restore`` and the web page use for posterior samples, by where each paid on
    validation digits (BENCHMARKS.md, issue 27):

    - ``"mmse+dps"`` for a random ``matrix`` whose every example has at least :data:`RICH_RATIO`
      rows per pixel;
    - ``"mmse+ddnm"`` for noiseless ``motion-blur`` (every example at σ_y = 0): +2.2 dB and a
      better C-FD than the posterior (13.5 against 20.7 on 100 digits) at a sixth of its time;
    - ``"posterior"`` everywhere else (in-painting, out-painting, 16-row matrices and noisy
      measurements, where the posterior's FD was the best by 20–40 %)."""
    family = spec.split(":")[0].strip()
    if family == "matrix":
        pixels = op.image_shape[0] * op.image_shape[1] * op.image_shape[2]
        if bool((op.measurement_mask().sum(1) >= RICH_RATIO * pixels).all()):
            return "mmse+dps"
    if family == "motion-blur" and bool((op.noise_std == 0).all()):
        return "mmse+ddnm"
    return "posterior"


WHERE_IT_PAYS = {"mmse+dps": f"a rich measurement (M/D >= {RICH_RATIO})", "mmse+ddnm": "noiseless motion blur"}
"""What :func:`default_sampler` saw when it chose a data-consistency sampler, for the notes that say so."""


def bind_measurement(net: Callable, op: Operator, y: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """``(x, σ) → net(x, σ, op, y)``: a conditional denoiser as the zero-shot samplers call an
    unconditional one. ``x: (B, C, H, W)``, ``σ: (B,)``, ``y: (B, M)``."""

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        return net(x, sigma, op, y)

    return denoise


def parse_method(method: str) -> tuple[str, str] | None:
    """``"posterior+dps"`` → ``("posterior", "dps")``; ``None`` for any other method name."""
    start, _, step = method.partition("+")
    return (start, step) if start in STARTS and step in STEPS else None


METHODS = tuple(f"{start}+{step}" for start in STARTS for step in STEPS)
"""Method names in ``restore`` and ``evaluate``."""


def options(start: str, step: str, steps: int | None = None, sigma_start: float | None = None) -> dict[str, int | float]:
    """The sampler options of a trajectory: the method's own budget from noise, or :data:`FROM_MMSE`;
    ``steps`` overrides the budget, ``sigma_start`` the starting noise level of an MMSE start."""
    chosen = dict(FROM_MMSE[step]) if start == "mmse" else {}
    if steps is not None:
        chosen["steps"] = steps
    if sigma_start is not None:
        if start != "mmse" or not sigma_start > 0:
            raise ValueError(f"sigma_start sets where an MMSE start begins; it needs start='mmse' and a value > 0, got {sigma_start}.")
        chosen["sigma_max"] = sigma_start
    return chosen


def nfe(start: str, step: str, steps: int | None = None) -> int:
    """Denoiser calls of one :func:`consistent_sample` (the MMSE start adds its one call)."""
    from . import zeroshot

    opts = options(start, step, steps)
    return zeroshot.nfe(step, **opts) + (start == "mmse")


def consistent_sample(
    net: Callable,
    op: Operator,
    y: Tensor,
    step: str,
    start: str = "posterior",
    steps: int | None = None,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    progress: bool = False,
    sigma_start: float | None = None,
) -> Tensor:
    """One sample ``(B, C, H, W)`` per measurement ``y: (B, M)``: the zero-shot sampler ``step`` on
    InvFussion ``net`` with ``op`` and ``y`` bound, started at ``start`` (module docstring).

    ``net`` is called as ``net(x, σ, op, y)`` (a conditional denoiser, possibly
    ``sampling.guided``); ``steps`` overrides the sampler's budget and ``sigma_start`` the noise
    level an MMSE start begins at. Sample ``i`` depends on ``(seed, indices[i])`` only.
    """
    from . import zeroshot

    if step not in STEPS or start not in STARTS:
        raise ValueError(f"unknown consistency {start}+{step}; choose one of {', '.join(METHODS)}.")
    opts = options(start, step, steps, sigma_start)
    init = None
    if start == "mmse":
        init = mmse(net, op, y, seed=seed, indices=indices)
    sampler = zeroshot.get(step)
    return sampler(bind_measurement(net, op, y), op, y, seed=seed, indices=indices, progress=progress,
                   init=init, **opts)


__all__ = ["FROM_MMSE", "METHODS", "RICH_RATIO", "STARTS", "STEPS", "WHERE_IT_PAYS", "bind_measurement",
           "consistent_sample", "default_sampler", "nfe", "parse_method"]

