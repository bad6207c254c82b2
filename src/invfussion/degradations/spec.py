"""Spec strings and typed family parameters.

A spec names one family and optional parameters: ``family[:key=value,...]``, e.g.
``inpaint-patches:size=4,keep=0.1`` or ``motion-blur:stride=4,intensity=0.5,noise=0.1``.
Each family declares its parameters as ``Param`` objects; ``Param.parse`` turns the text of a
value into a number (or keeps it as text for ``kind=str``: a word from ``choices`` such as
``boundary=same``, or free text such as a file path ``file=kernels/k1.npy``) and rejects
out-of-range values with a one-sentence ``ValueError``. Text values cannot contain ``,`` (the
item separator); everything after the first ``=`` of an item is its value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"family:k=v,k2=v2"`` → ``("family", {"k": "v", "k2": "v2"})`` (values stay text).

    Raises ``ValueError`` on an empty family, a malformed ``key=value`` item or a repeated key.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"degradation spec must be a non-empty string like 'sr:factor=2', got {spec!r}."
        )
    family, _, rest = spec.strip().partition(":")
    family = family.strip()
    if not family:
        raise ValueError(
            f"degradation spec {spec!r} has no family name; write it as 'family[:key=value,...]'."
        )
    params: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or not key or not value:
            raise ValueError(
                f"degradation spec {spec!r}: item {item!r} is not of the form key=value; "
                "write parameters as 'family:key=value,key=value'."
            )
        if key in params:
            raise ValueError(
                f"degradation spec {spec!r} sets {key!r} twice; give each parameter once."
            )
        params[key] = value
    return family, params


@dataclass(frozen=True)
class Param:
    """One family parameter: a number, or text (``kind=str``).

    Attributes:
        name: the key in a spec.
        kind: ``int``, ``float`` or ``str``.
        low, high: inclusive bounds (``None``: unbounded); ``low_open`` makes ``low`` exclusive.
        choices: the allowed values, if the parameter is discrete (numbers, or words for ``str``;
            a ``str`` parameter without choices takes any text, e.g. a path).
        doc: what it means and how it is drawn when a spec leaves it out.
    """

    name: str
    kind: type
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[int | str, ...] | None = None

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.kind is str:
            return "a text without ','"
        what = "an integer" if self.kind is int else "a number"
        lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        hi = "" if self.high is None else f"<= {self.high:g}"
        return f"{what} " + " and ".join(filter(None, (lo, hi))) if (lo or hi) else what

    def parse(self, family: str, text: str) -> int | float | str:
        """The value of ``text`` as ``kind``; ``ValueError`` naming the allowed values otherwise."""
        if self.kind is str:
            if self.choices is not None and text not in self.choices:
                raise ValueError(
                    f"{family}: {self.name}={text} is not allowed; {self.name} must be {self.allowed()}."
                )
            return text
        try:
            value = float(text)
            ok = math.isfinite(value) and (self.kind is float or value == int(value))
        except ValueError:
            ok = False
        if ok:
            value = self.kind(value)
            ok = (
                (self.choices is None or value in self.choices)
                and (
                    self.low is None
                    or value > self.low
                    or (value == self.low and not self.low_open)
                )
                and (self.high is None or value <= self.high)
            )
        if not ok:
            raise ValueError(
                f"{family}: {self.name}={text} is not allowed; {self.name} must be {self.allowed()}."
            )
        return value


NOISE = Param("noise", float, "measurement noise σ_y (y = A x + σ_y ε); 0 when left out", low=0.0)
