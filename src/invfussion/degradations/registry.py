"""The family registry and ``from_spec``.

A *family* is a class with

- ``params``: a tuple of ``Param`` (the keys its spec accepts, besides ``noise``), and
- ``build(values, image_shape, generators) -> Operator`` (a classmethod, building on the CPU): ``values`` maps
  every declared parameter name to its value, or to ``None`` where the spec left it out (draw it
  per example from the family's training distribution); ``generators[b]`` is the private CPU
  random stream of example ``b`` (seeded by ``(seed, family, global index)`` only); it raises
  ``ValueError`` for parameters that do not fit ``image_shape``.

``from_spec`` parses the spec, validates the values, calls ``build``, sets ``noise_std`` and moves
the batch to the requested device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from .. import seeding
from .base import Operator
from .spec import NOISE, Param, parse_spec


class Family(Protocol):
    params: tuple[Param, ...]

    @classmethod
    def build(
        cls,
        values: dict[str, int | float | str | None],
        image_shape: tuple[int, int, int],
        generators: list[torch.Generator],
    ) -> Operator: ...


_REGISTRY: dict[str, type] = {}
FAMILIES: list[str] = []
"""Names of the registered families (kept in sync by ``register``)."""


def register(name: str, cls: type, replace: bool = False) -> None:
    """Make family ``cls`` available to specs (and the CLI) as ``name``.

    ``cls`` needs a ``build`` classmethod and a ``params`` tuple of ``Param`` (see module doc).
    Registering a taken name raises ``ValueError`` unless ``replace=True``.
    """
    if (
        not isinstance(name, str)
        or not name
        or any(ch in name for ch in ":,= ")
        or name != name.strip()
    ):
        raise ValueError(
            f"family name {name!r} must be a non-empty string without ':', ',', '=' or spaces."
        )
    # A family without build() is bad input: ValueError, as for every bad input in the project.
    if not callable(getattr(cls, "build", None)):
        raise ValueError(  # noqa: TRY004
            f"family {name!r}: {cls!r} has no build(values, image_shape, generators) classmethod."
        )
    params = getattr(cls, "params", ())
    if not all(isinstance(p, Param) for p in params) or any(p.name == "noise" for p in params):
        raise ValueError(
            f"family {name!r}: params must be a tuple of Param and must not declare 'noise' (every family has it)."
        )
    if name in _REGISTRY and not replace:
        raise ValueError(
            f"family {name!r} is already registered; pick another name or pass replace=True."
        )
    if name not in _REGISTRY:
        FAMILIES.append(name)
    _REGISTRY[name] = cls


def check_image_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(
            f"image_shape must be three positive integers (C, H, W), got {image_shape!r}."
        )
    return shape  # type: ignore[return-value]


def resolve_indices(batch: int | None, indices: Sequence[int] | None) -> list[int]:
    """Global example indices: ``indices`` if given, else ``0..batch-1`` (``batch`` defaults to 1)."""
    if indices is not None:
        out = seeding.as_indices(indices)
        if not out or min(out) < 0:
            raise ValueError(
                f"indices must be a non-empty sequence of non-negative integers, got {indices!r}."
            )
        return out
    batch = 1 if batch is None else batch
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}.")
    return list(range(batch))


def validate_spec(spec: str) -> tuple[str, dict[str, int | float | str | None]]:
    """``(family, values)``: every declared parameter (and ``noise``) parsed, ``None`` if left out.

    Raises ``ValueError`` for an unknown family or key, or a value out of its allowed range.
    """
    family, raw = parse_spec(spec)
    if family not in _REGISTRY:
        raise ValueError(
            f"unknown degradation family {family!r}; choose one of {', '.join(FAMILIES)}."
        )
    declared = {p.name: p for p in (*_REGISTRY[family].params, NOISE)}
    unknown = sorted(set(raw) - set(declared))
    if unknown:
        raise ValueError(
            f"{family}: unknown parameter {unknown[0]!r}; allowed: {', '.join(declared)}."
        )
    return family, {
        name: (p.parse(family, raw[name]) if name in raw else None) for name, p in declared.items()
    }


def from_spec(
    spec: str,
    image_shape: Sequence[int] = (1, 32, 32),
    batch: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    indices: Sequence[int] | None = None,
) -> Operator:
    """A batch of operators of one family, parsed from ``spec`` (``family[:key=value,...]``).

    Example ``b`` is built from the random stream ``(seed, family, indices[b])`` alone, so it does
    not depend on the batch size, the device or the number of processes; ``indices`` (global
    example indices) overrides ``batch`` (examples ``0..batch-1``). Parameters the spec leaves out
    are drawn per example from the family's training distribution.
    """
    family, values = validate_spec(spec)
    noise = float(values.pop("noise") or 0.0)
    shape = check_image_shape(image_shape)
    ids = resolve_indices(batch, indices)
    generators = [seeding.example_generator(seed, i, f"operator/{family}") for i in ids]
    op = _REGISTRY[family].build(values, shape, generators)
    if not isinstance(op, Operator) or op.batch_size != len(ids) or op.image_shape != shape:
        raise ValueError(
            f"family {family!r} built {op!r}, not an Operator batch of {len(ids)} on images {shape}; fix its build()."
        )
    op.noise_std = torch.full((len(ids),), noise, dtype=torch.float32, device=op.device)
    return op.to(device)
