"""CUDA-path checks, run on a GPU machine: prints one line per check.

- FlexAttention vs the dense masked path for neighborhood attention (forward, gradients);
- every operator family on CUDA: Moore–Penrose identity A A⁺ A x ≈ A x, bf16 autocast = fp32;
- mnist32 (all conditionings) and ffhq64 forward in fp32 vs bf16 autocast;
- median training-step time (fwd + bwd + Adam, bf16 autocast) of the mnist32 variants at
  batch 256 and of ffhq64 at batch 8.

    python benchmarks/gpu_check.py
"""

from __future__ import annotations

import statistics
import time

import torch

from invfussion import degradations as deg
from invfussion import models
from invfussion.models.attention import compare_attention_backends


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # CPU only to dry-run this script


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


def step_time(net: torch.nn.Module, batch: int, spec_mixture: deg.Mixture | None, repeats: int = 10) -> float:
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    shape = (net.img_channels, net.img_resolution, net.img_resolution)
    x = torch.randn(batch, *shape, device=DEVICE)
    op = spec_mixture.sample(batch, shape, seed=0, device=DEVICE) if spec_mixture else None
    y = op.measure(x) if op is not None else None
    sigma = torch.rand(batch, device=DEVICE) * 5 + 0.01
    times = []
    for i in range(repeats + 3):
        sync()
        t0 = time.perf_counter()
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            loss = (net(x + sigma[:, None, None, None] * torch.randn_like(x), sigma, op, y) - x).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (dry run)"
    print(f"device: {name} torch {torch.__version__}", flush=True)
    if DEVICE == "cuda":
        print(f"flex vs dense neighborhood attention: {compare_attention_backends(DEVICE)}", flush=True)
    for shape in ((1, 32, 32), (3, 64, 64)):
        x = torch.randn(16, *shape, device=DEVICE)
        for family in deg.FAMILIES:
            op = deg.from_spec(family, image_shape=shape, batch=16, seed=1, device=DEVICE)
            ax = op.A(x)
            with torch.autocast(DEVICE, dtype=torch.bfloat16):
                ax_bf16 = op.A(x)
            print(f"op {family:16s} {shape}: |AA⁺Ax−Ax|/|Ax| = {rel(op.A(op.pinv(ax)), ax):.2e}, "
                  f"bf16-autocast vs fp32 = {rel(ax_bf16, ax):.2e}")
    mixture = deg.PAPER_MIXTURE
    for preset, cond, overrides in (("mnist32", "invfussion", {}), ("mnist32", "palette", {}),
                                    ("mnist32", "unconditional", {}), ("ffhq64", "invfussion", {})):
        torch.manual_seed(0)
        net = models.build(preset, cond, **overrides).to(DEVICE)
        for p in net.parameters():  # zero-initialised outputs would make the check trivial
            if p.dim() >= 2 and p.abs().max() == 0:
                torch.nn.init.normal_(p, std=0.02)
        shape = (net.img_channels, net.img_resolution, net.img_resolution)
        batch = (256 if preset == "mnist32" else 8) if DEVICE == "cuda" else 2
        x = torch.randn(4, *shape, device=DEVICE)
        op = mixture.sample(4, shape, seed=3, device=DEVICE) if cond != "unconditional" else None
        y = op.measure(x) if op is not None else None
        sigma = torch.full((4,), 1.0, device=DEVICE)
        with torch.no_grad():
            ref = net(x, sigma, op, y)
            with torch.autocast(DEVICE, dtype=torch.bfloat16):
                low = net(x, sigma, op, y)
        n_params = sum(p.numel() for p in net.parameters())
        t = step_time(net, batch, mixture if cond != "unconditional" else None)
        print(f"{preset}-{cond}: {n_params / 1e6:.1f}M params, bf16 vs fp32 rel diff {rel(low, ref):.2e}, "
              f"train step (batch {batch}) {t * 1e3:.1f} ms = {batch / t:.0f} img/s")
        del net
        if DEVICE == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
