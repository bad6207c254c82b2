"""Training distributions over degradation families and measurement noise.

A ``Mixture`` draws a family per example (from the example's own random stream) and returns one
mixed operator batch; example ``i`` is exactly ``from_spec(spec_i, ..., seed, indices=[i])``,
with its measurement noise σ_y drawn from ``NoiseLevels`` where its spec sets none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .. import seeding
from .base import Operator
from .grouped import group_by
from .registry import check_image_shape, from_spec, resolve_indices, validate_spec

PAPER_SPECS = ("matrix", "motion-blur", "inpaint-patches", "none")


@dataclass(frozen=True)
class NoiseLevels:
    """A distribution of the measurement noise σ_y: a share ``zero`` of the examples noiseless,
    the rest uniform on ``[low, high]``. Text form ``[low:]high[,zero=p]``: ``0.1`` (always 0.1),
    ``0:0.2`` (uniform), ``0:0.2,zero=0.5`` (half noiseless, half uniform on (0, 0.2]).
    """

    low: float
    high: float
    zero: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.low <= self.high < float("inf")) or not 0 <= self.zero <= 1:
            raise ValueError(
                f"noise levels need 0 ≤ low ≤ high (finite) and a zero share in [0, 1], got {self}; "
                "pass e.g. 0.1, 0:0.2 or 0:0.2,zero=0.5."
            )

    @classmethod
    def parse(cls, text: str | float) -> NoiseLevels:
        """``NoiseLevels`` from its text form (see the class)."""
        body, _, option = str(text).partition(",")
        try:
            low, _, high = body.rpartition(":")
            zero = 0.0
            if option:
                key, _, value = option.partition("=")
                if key.strip() != "zero":
                    raise ValueError
                zero = float(value)
            return cls(float(low) if low else float(high), float(high), zero)
        except ValueError:
            raise ValueError(
                f"cannot read noise levels {text!r}; pass σ_y (0.1), a range (0:0.2) or a range with a "
                "noiseless share (0:0.2,zero=0.5), all ≥ 0."
            ) from None

    def __str__(self) -> str:
        body = f"{self.high:g}" if self.low == self.high else f"{self.low:g}:{self.high:g}"
        return body + (f",zero={self.zero:g}" if self.zero else "")

    @property
    def noisy(self) -> bool:
        """Whether any example gets σ_y > 0."""
        return self.high > 0 and self.zero < 1

    def draw(self, seed: int, indices: Sequence[int]) -> torch.Tensor:
        """``(B,)`` σ_y; entry ``b`` depends on ``(seed, indices[b])`` only."""
        noiseless = seeding.uniform(seed, indices, "noise-level/zero") < self.zero
        level = self.low + (self.high - self.low) * seeding.uniform(seed, indices, "noise-level")
        return torch.where(noiseless, 0.0, level)


class Mixture:
    """A weighted choice among specs, e.g. ``Mixture(["matrix", "motion-blur"], [0.3, 0.7])``.

    Args:
        specs: spec strings (family, keys and values are checked now; the fit to an image shape
            when sampling).
        weights: non-negative, not all zero, one per spec (normalised); uniform when ``None``.
        noise: σ_y of the examples whose spec sets no ``noise=`` (``None``: noiseless), drawn per
            example.
    """

    def __init__(self, specs: Sequence[str], weights: Sequence[float] | None = None,
                 noise: NoiseLevels | None = None):
        specs = [specs] if isinstance(specs, str) else list(specs)
        if not specs:
            raise ValueError(
                "a Mixture needs at least one spec, e.g. Mixture(['inpaint-patches', 'none'])."
            )
        for spec in specs:
            validate_spec(spec)
        weights = [1.0] * len(specs) if weights is None else [float(w) for w in weights]
        if len(weights) != len(specs) or any(not w >= 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(
                f"Mixture weights must be {len(specs)} non-negative numbers, not all zero; got {weights!r}."
            )
        self.specs = specs
        self.weights = [w / sum(weights) for w in weights]
        self.noise = noise

    @classmethod
    def paper(cls) -> Mixture:
        """The paper's training default: 25% matrix, 25% motion-blur, 25% inpaint-patches, 25% none."""
        return cls(list(PAPER_SPECS))

    def __repr__(self) -> str:
        parts = ", ".join(f"{s!r}: {w:.3g}" for s, w in zip(self.specs, self.weights))
        return f"Mixture({{{parts}}}" + (f", noise={self.noise}" if self.noise else "") + ")"

    def choose(self, seed: int, indices: Sequence[int]) -> list[str]:
        """The spec of each example: drawn from stream ``(seed, "mixture", i)`` only."""
        cumulative = torch.tensor(self.weights, dtype=torch.float64).cumsum(0)
        last = max(k for k, w in enumerate(self.weights) if w > 0)  # guards u ≥ rounded total
        chosen = []
        for i in indices:
            u = torch.rand(
                (), generator=seeding.example_generator(seed, i, "mixture"), dtype=torch.float64
            )
            chosen.append(self.specs[min(int(torch.searchsorted(cumulative, u, right=True)), last)])
        return chosen

    def sample(
        self,
        batch: int | None,
        image_shape: Sequence[int],
        seed: int,
        device: torch.device | str = "cpu",
        indices: Sequence[int] | None = None,
    ) -> Operator:
        """One operator batch, a family per example; ``indices`` (global) overrides ``batch``."""
        shape = check_image_shape(image_shape)
        ids = resolve_indices(batch, indices)
        chosen = self.choose(seed, ids)
        op = group_by(
            chosen,
            lambda spec, pos: from_spec(
                spec, shape, seed=seed, device=device, indices=[ids[p] for p in pos]
            ),
        )
        if self.noise is None:
            return op
        own = torch.tensor([validate_spec(spec)[1]["noise"] is not None for spec in chosen])
        return op.with_noise_std(torch.where(own, op.noise_std.cpu(), self.noise.draw(seed, ids)))


def paper_mixture() -> Mixture:
    """The paper's training distribution (see ``Mixture.paper``)."""
    return Mixture.paper()


PAPER_MIXTURE = Mixture.paper()
