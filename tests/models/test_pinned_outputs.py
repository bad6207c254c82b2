"""The denoiser's outputs on fixed weights, inputs and operators, pinned against values saved from
the code before the training-step optimisations (family-ordered batches, per-batch operator
caches): a speed-up must not change what the network computes.

Regenerate deliberately with ``python tests/models/test_pinned_outputs.py`` (only when the
model's mathematics is meant to change, and say so in the commit).
"""

import zlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from invfussion import degradations as deg
from invfussion import models

PINNED = Path(__file__).parent / "data" / "pinned_denoiser.safetensors"
SPECS = ["matrix", "motion-blur", "inpaint-patches", "none", "sr:factor=2", "inpaint-box", "outpaint-box",
         "matrix:noise=0.1"]
# A second batch whose seed draws several random matrices and motion blurs (the first draws no matrix).
SECOND_SPECS, SECOND_SEED = SPECS[:-1], 9
BATCH = 16


def named_weights(net: torch.nn.Module) -> torch.nn.Module:
    """Overwrite every parameter from a generator seeded by its name (no zero-init left), so the
    weights do not depend on the order in which modules are built."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            if p.dim() >= 2:
                p.copy_(noise / p.shape[-1] ** 0.5)
            else:
                p.add_(0.1 * noise)
    return net


def problem(specs: list[str], seed: int):
    """Fixed noisy inputs, σ, operators (in the order drawn: not part order) and measurements."""
    shape = (1, 32, 32)
    gen = torch.Generator().manual_seed(seed - 5)  # the first batch keeps generator seed 0
    x = torch.rand(BATCH, *shape, generator=gen, dtype=torch.float32) * 2 - 1
    sigma = torch.exp(torch.randn(BATCH, generator=gen, dtype=torch.float32) * 1.5 - 0.5)
    x_noisy = x + sigma[:, None, None, None] * torch.randn(x.shape, generator=gen, dtype=torch.float32)
    op = deg.Mixture(specs).sample(BATCH, shape, seed=seed)
    return x_noisy, sigma, op, op.measure(x, seed=seed)


def outputs() -> dict[str, torch.Tensor]:
    """Pinned outputs: InvFussion and Palette on two mixed batches (every family, in any order) and
    InvFussion with the zero operator (float32, as the network runs)."""
    result = {}
    for conditioning in ("invfussion", "palette"):
        net = named_weights(models.build("mnist32", conditioning)).eval()
        with torch.no_grad():
            x_noisy, sigma, op, y = problem(SPECS, 5)
            out, logvar = net(x_noisy, sigma, op, y, return_logvar=True)
            result[conditioning] = out
            result[f"{conditioning}-logvar"] = logvar
            if conditioning == "invfussion":
                result["invfussion-zero-operator"] = net(x_noisy, sigma)
            result[f"{conditioning}-second-batch"] = net(*problem(SECOND_SPECS, SECOND_SEED))
    return result


def test_denoiser_outputs_match_the_pinned_values():
    expected = load_file(PINNED)
    got = outputs()
    assert set(got) == set(expected)
    # Float32 rounding differs with the order of sums; A⁺ of strided blur keeps singular values
    # down to 1e-4 of the largest, so it can lift such differences to ~1e-4. A real change is O(1).
    for key, value in got.items():
        torch.testing.assert_close(value, expected[key], rtol=1e-4, atol=3e-4, msg=key)


if __name__ == "__main__":
    PINNED.parent.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in outputs().items()}, PINNED)
    print(f"wrote {PINNED}")
