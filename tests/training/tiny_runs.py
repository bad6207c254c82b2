"""Helpers for the training tests: a tiny model and config that train in seconds.

(A module of its own, not conftest.py: test folders share one `conftest` module name.)
"""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from invfussion.training import TrainConfig

TINY_MODEL = dict(widths=[32, 64], depths=[1, 1], d_head=16, mapping_width=32, logvar_channels=16)


def tiny_config(out, **changes) -> TrainConfig:
    """A run on the embedded MNIST with a ~0.1M-parameter model, batch 8, fp32 on the CPU, eager
    (compiling takes longer than these runs)."""
    base = dict(
        steps=10, batch_size=8, out=str(out), overrides=dict(TINY_MODEL), lr=1e-3, warmup_steps=2,
        lr_ref_steps=20, checkpoint_every=5, sample_every=10_000, log_every=5, device="cpu",
        amp="none", tensorboard=False, seed=3, compile=False,
    )
    base.update(changes)
    return TrainConfig(**base)


def checkpoint_tensors(path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
