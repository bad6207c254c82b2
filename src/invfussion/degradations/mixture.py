"""Training distributions over degradation families.

A ``Mixture`` draws a family per example (from the example's own random stream) and returns one
mixed operator batch; example ``i`` is exactly ``from_spec(spec_i, ..., seed, indices=[i])``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import seeding
from .base import Operator
from .grouped import group_by
from .registry import check_image_shape, from_spec, resolve_indices, validate_spec

PAPER_SPECS = ("matrix", "motion-blur", "inpaint-patches", "none")


class Mixture:
    """A weighted choice among specs, e.g. ``Mixture(["matrix", "motion-blur"], [0.3, 0.7])``.

    Args:
        specs: spec strings (family, keys and values are checked now; the fit to an image shape
            when sampling).
        weights: non-negative, not all zero, one per spec (normalised); uniform when ``None``.
    """

    def __init__(self, specs: Sequence[str], weights: Sequence[float] | None = None):
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

    @classmethod
    def paper(cls) -> Mixture:
        """The paper's training default: 25% matrix, 25% motion-blur, 25% inpaint-patches, 25% none."""
        return cls(list(PAPER_SPECS))

    def __repr__(self) -> str:
        parts = ", ".join(f"{s!r}: {w:.3g}" for s, w in zip(self.specs, self.weights))
        return f"Mixture({{{parts}}})"

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
        return group_by(
            chosen,
            lambda spec, pos: from_spec(
                spec, shape, seed=seed, device=device, indices=[ids[p] for p in pos]
            ),
        )


def paper_mixture() -> Mixture:
    """The paper's training distribution (see ``Mixture.paper``)."""
    return Mixture.paper()


PAPER_MIXTURE = Mixture.paper()
