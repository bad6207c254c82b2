"""Parameters and training-step time of the denoiser variants, quoted in BENCHMARKS.md.

One training step = forward at a random σ (EDM2 log-normal) on a mixed batch of the paper's
degradations (25% matrix / motion blur / patch in-painting / none), the EDM2 loss with the learned
log-variance, backward and an Adam update. The batch is in part order (each family one contiguous
slice), as the training loader feeds it; one InvFussion row keeps the drawn (mixed) order for
comparison. Operators are drawn once per variant (drawing them is the data pipeline's cost, not
the network's). The variants are timed interleaved, round-robin, so a change in machine load hits
all of them alike; the table gives the median of each.

``--train-steps N`` adds the end-to-end figure: ``invfussion train`` for InvFussion and Palette,
alternating, ``--train-rounds`` runs each of N steps; images/s is the median of the logged
windows after the first (warm-up) window.

    python benchmarks/model.py                       # CPU: mnist32 × 3 at batch 64, ffhq64 × 2 at batch 4
    python benchmarks/model.py --device cuda --amp bf16 --rounds 20
    python benchmarks/model.py --threads 1 --clock process   # on a shared, loaded CPU machine
    python benchmarks/model.py --skip-ffhq64 --train-steps 30 --train-rounds 3
    python benchmarks/model.py --skip-ffhq64 --compile     # torch.compile (models.compile_denoiser)
    python benchmarks/model.py --skip-ffhq64 --compile --fdl-profile --threads 1 --clock process

``--fdl-profile`` adds where InvFussion's extra time goes: a variant whose Feature Degradation
Layers are the identity (the joint attention's work stays), and the FDL's forward + backward per
level and per degradation family of the batch.

``--clock process`` times CPU seconds used by this process (with one thread: the wall time the
step would take on an idle core), which other processes' load does not inflate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from invfussion import degradations as deg
from invfussion import models

VARIANTS = [  # preset, conditioning, batch, batch in part order, FDL = identity
    ("mnist32", "invfussion", 64, True, False),
    ("mnist32", "invfussion", 64, False, False),
    ("mnist32", "palette", 64, True, False),
    ("mnist32", "unconditional", 64, True, False),
    ("ffhq64", "invfussion", 4, True, False),
    ("ffhq64", "palette", 4, True, False),
]
WITHOUT_FDL = ("mnist32", "invfussion", 64, True, True)  # --fdl-profile


@contextlib.contextmanager
def fdl_identity(enabled: bool):
    """Every Feature Degradation Layer returns its input (the joint attention still runs on it)."""
    from invfussion.models.invfussion import FeatureDegradationLayer

    original = FeatureDegradationLayer.forward
    if enabled:
        FeatureDegradationLayer.forward = lambda self, z, op, y: z * 1.0
    try:
        yield
    finally:
        FeatureDegradationLayer.forward = original


class Variant:
    def __init__(
        self,
        preset: str,
        conditioning: str,
        batch: int,
        part_order: bool,
        fdl_off: bool,
        device: torch.device,
        amp: str | None,
        clock,
        compile_: bool,
    ):
        self.name = f"{preset} {conditioning}" + ("" if part_order else " (mixed order)") + (
            " (FDL = identity)" if fdl_off else "")
        self.fdl_off = fdl_off
        self.batch = batch
        self.device = device
        self.amp = amp
        self.clock = clock
        torch.manual_seed(0)
        self.net = models.build(preset, conditioning).to(device)
        self.params = sum(p.numel() for p in self.net.parameters())
        if compile_:
            models.compile_denoiser(self.net)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4, betas=(0.9, 0.99))
        shape = (self.net.img_channels, self.net.img_resolution, self.net.img_resolution)
        gen = torch.Generator().manual_seed(0)
        self.x = (torch.rand(batch, *shape, generator=gen) * 2 - 1).to(device)
        self.op = deg.Mixture.paper().sample(batch, shape, seed=0, device=device)
        if part_order:
            self.op = deg.in_part_order(self.op)[0]
        self.y = self.op.measure(self.x, seed=0)
        self.times: list[float] = []
        self.first = 0.0  # the first step (with --compile: compiling)
        self.gflop = 0.0  # matmul and attention work of one step (torch's FLOP counter)

    def count_flops(self) -> None:
        with FlopCounterMode(display=False) as counter:
            self.step()
        self.gflop = counter.get_total_flops() / 1e9

    def step(self) -> float:
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        start = self.clock()
        sigma = (torch.randn(self.batch, device=self.device) * 1.6 - 0.8).exp()
        noisy = self.x + sigma[:, None, None, None] * torch.randn_like(self.x)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp or "", torch.float32)
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.amp is not None), fdl_identity(self.fdl_off):
            denoised, logvar = self.net(noisy, sigma, self.op, self.y, return_logvar=True)
        weight = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
        loss = (
            weight / logvar.exp() * (denoised - self.x).square().mean((1, 2, 3)) + logvar
        ).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        sync()
        return self.clock() - start


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with open("/proc/cpuinfo") as cpuinfo:
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
            platform.processor(),
        )
    return f"{model}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--amp", choices=["bf16", "fp16"], default=None, help="autocast dtype (default: float32)"
    )
    parser.add_argument(
        "--rounds", type=int, default=7, help="timed rounds (after one warm-up round)"
    )
    parser.add_argument("--skip-ffhq64", action="store_true", help="only the mnist32 variants")
    parser.add_argument("--compile", action="store_true", help="torch.compile every network first")
    parser.add_argument("--train-steps", type=int, default=0, help="also time `invfussion train` end to end")
    parser.add_argument("--train-rounds", type=int, default=3)
    parser.add_argument("--train-flags", default="", help="extra `invfussion train` flags, e.g. '--no-compile'")
    parser.add_argument("--trainer-steps", type=int, default=0,
                        help="also time the training loop's own steps (loader item + step + EMA, default recipe), "
                             "eager and compiled, with this script's clock")
    parser.add_argument("--fdl-profile", action="store_true",
                        help="also InvFussion with identity FDLs, and the FDL's time per level and family")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "process"],
        default="wall",
        help="wall time, or CPU time of this process (robust to other load with --threads 1)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    chosen = [v for v in VARIANTS if not (args.skip_ffhq64 and v[0] == "ffhq64")]
    if args.compile:  # compiling takes minutes per network on a CPU: the pair that matters only
        chosen = [v for v in chosen if v[3] and v[1] != "unconditional"]
    if args.fdl_profile:
        chosen.insert(1, WITHOUT_FDL)
    variants = [Variant(p, c, b, o, f, device, args.amp, clock, args.compile) for p, c, b, o, f in chosen]
    for v in variants:
        if not args.compile:
            v.count_flops()
    load_before = os.getloadavg()[0]
    for round_ in range(args.rounds + 2):
        for v in variants:
            elapsed = v.step()
            if round_ == 0:
                v.first = elapsed
            elif round_ > 1:  # rounds 0 and 1 warm up (and compile)
                v.times.append(elapsed)
    load_after = os.getloadavg()[0]

    print(
        f"machine: {machine(device)}; torch {torch.__version__}; commit {commit()}; "
        f"amp {args.amp or 'fp32'}; {args.clock} clock; {args.rounds} interleaved rounds; "
        f"{'compiled (models.compile_denoiser)' if args.compile else 'eager'}; "
        f"load average {load_before:.1f} → {load_after:.1f}\n"
    )
    print("| model | batch | parameters | GFLOP/step | first step (s) | median step (ms) | images/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    medians = {}
    for v in variants:
        med = statistics.median(v.times)
        medians[v.name] = med
        print(
            f"| {v.name} | {v.batch} | {v.params / 1e6:.2f}M | {v.gflop:.1f} | {v.first:.1f} | {med * 1e3:.0f} | "
            f"{v.batch / med:.3g} |"
        )
    print()
    for preset in ("mnist32", "ffhq64"):
        if f"{preset} invfussion" in medians:
            ratio = medians[f"{preset} invfussion"] / medians[f"{preset} palette"]
            flops = {v.name: v.gflop for v in variants}
            if flops[f"{preset} palette"]:
                print(f"{preset} InvFussion / Palette matmul + attention work (FLOP counter, fwd + bwd): "
                      f"{flops[f'{preset} invfussion'] / flops[f'{preset} palette']:.2f}×")
            print(
                f"{preset} InvFussion / Palette step time: {ratio:.2f}×"
                + (" (target ≤ 1.30×)" if preset == "mnist32" else "")
            )
        if preset == "mnist32" and f"{preset} invfussion" in medians:
            loader = loader_seconds(clock)
            print(f"drawing one batch of 64 (paper mixture, part order, on the CPU): {loader * 1e3:.0f} ms median, "
                  f"{loader / medians[f'{preset} invfussion']:.0%} of the InvFussion step")
    if args.fdl_profile:
        without = next(v.name for v in variants if v.fdl_off)
        ratio = medians[without] / medians["mnist32 palette"]
        fdl = (medians["mnist32 invfussion"] - medians[without]) / medians["mnist32 palette"]
        print(f"mnist32 InvFussion with identity FDLs / Palette: {ratio:.2f}×; the FDLs add {fdl:.2f}× of Palette's step")
        fdl_parts(clock, args.rounds)
    if args.trainer_steps:
        trainer_steps(args.trainer_steps, args.device, clock)
    if args.train_steps:
        train_throughput(args.train_steps, args.train_rounds, args.device, args.threads, args.train_flags.split())


def fdl_parts(clock, rounds: int) -> None:
    """Forward + backward of one mnist32 FDL (level 0: 8×8 tokens of 128, level 1: 4×4 of 256) on
    the paper-mixture batch of 64 in part order, whole and per part (degradation family)."""
    from invfussion.models.invfussion import FeatureDegradationLayer

    shape = (1, 32, 32)
    op = deg.in_part_order(deg.Mixture.paper().sample(64, shape, seed=0))[0]
    y = op.measure(torch.rand(64, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1, seed=0)
    parts, start = [], 0
    for part in op.parts:
        parts.append((part, slice(start, start + part.batch_size)))
        start += part.batch_size

    def seconds(fdl, tokens, part, measured) -> float:
        times = []
        for _ in range(rounds + 1):
            z = tokens.clone().requires_grad_()
            begin = clock()
            fdl(z, part, measured).square().sum().backward()
            times.append(clock() - begin)
        return statistics.median(times[1:])

    print("\nOne FDL, forward + backward (ms, median), on the batch of 64 and per part:\n")
    names = [f"{type(p).__name__} ({p.batch_size})" for p, _ in parts]
    print("| level | whole batch | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(parts))
    for level, (tokens, width, patch) in enumerate([(8, 128, 4), (4, 256, 8)]):
        torch.manual_seed(0)
        fdl = FeatureDegradationLayer(width, patch, 1)
        z = torch.randn(64, tokens, tokens, width)
        cells = [seconds(fdl, z, op, y)] + [seconds(fdl, z[s], p, y[s, : p.measurement_size]) for p, s in parts]
        print(f"| {level} ({tokens}×{tokens} tokens of {width}) | " + " | ".join(f"{c * 1e3:.1f}" for c in cells) + " |")


def loader_seconds(clock, steps: int = 20) -> float:
    """Median time of the training loader's item (images, noise, operators, measurements) for
    ``mnist32`` at batch 64 with the paper's mixture."""
    from invfussion.data import open_dataset
    from invfussion.training.batches import StepBatches

    batches = StepBatches(open_dataset("mnist"), seed=0, global_batch=64, positions=slice(None),
                          mixture=deg.Mixture.paper())
    batches[0]
    times = []
    for step in range(1, steps + 1):
        start = clock()
        batches[step]
        times.append(clock() - start)
    return statistics.median(times)


def trainer_steps(steps: int, device: str, clock) -> None:
    """Median time of the training loop's step on its own batches — ``StepBatches[t]`` (images,
    operators, measurements) + ``Trainer._train_step`` (forward, backward, Adam, EMA) — for mnist32
    InvFussion and Palette at batch 64 with the default recipe, eager and compiled, after warm-up."""
    from invfussion.training import TrainConfig, distributed
    from invfussion.training.loop import Trainer

    print(f"\nTraining-loop step (default recipe, batch 64, median of steps 4–{steps - 1}; first step = compile):\n")
    print("| model | compile | first step (s) | median step (ms) | images/s |")
    print("|---|---|---:|---:|---:|")
    medians = {}
    with tempfile.TemporaryDirectory() as tmp:
        for compiled in (False, True):
            for conditioning in ("invfussion", "palette"):
                cfg = TrainConfig(conditioning=conditioning, batch_size=64, steps=steps, compile=compiled, device=device,
                                  tensorboard=False, out=str(Path(tmp) / f"{conditioning}-{compiled}"))
                trainer = Trainer(cfg, distributed.init(device))
                times = []
                for step in range(steps):
                    start = clock()
                    trainer._train_step(trainer.batches[step].to(trainer.device))
                    times.append(clock() - start)
                med = statistics.median(times[4:])
                medians[conditioning, compiled] = med
                print(f"| {conditioning} | {'yes' if compiled else 'no'} | {times[0]:.1f} | {med * 1e3:.0f} | {64 / med:.0f} |")
    for compiled in (False, True):
        ratio = medians["invfussion", compiled] / medians["palette", compiled]
        print(f"InvFussion / Palette, {'compiled' if compiled else 'eager'}: {ratio:.2f}×")


def train_throughput(steps: int, rounds: int, device: str, threads: int | None, flags: list[str]) -> None:
    """End-to-end images/s of ``invfussion train --preset mnist32 --batch-size 64``, InvFussion and
    Palette alternating, one fresh run each round; median of the logged windows after the first."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    rates: dict[str, list[float]] = {"invfussion": [], "palette": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            for conditioning, found in rates.items():
                out = Path(tmp) / f"{conditioning}-{round_}"
                subprocess.run(
                    ["invfussion", "train", "--preset", "mnist32", "--conditioning", conditioning,
                     "--batch-size", "64", "--steps", str(steps), "--log-every", "5", "--sample-every", "100000",
                     "--checkpoint-every", "100000", "--device", device, "--out", str(out), *flags],
                    check=True, env=env, capture_output=True,
                )
                windows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
                found.extend(w["img_per_s"] for w in windows if "img_per_s" in w and w["step"] > 5)
    print(f"\n`invfussion train --preset mnist32 --batch-size 64 {' '.join(flags)}` end to end ({rounds} alternating runs of "
          f"{steps} steps each, median of 5-step windows after the first):\n")
    print("| model | images/s | windows |")
    print("|---|---:|---:|")
    for conditioning, found in rates.items():
        print(f"| {conditioning} | {statistics.median(found):.0f} | {len(found)} |")
    ratio = statistics.median(rates["palette"]) / statistics.median(rates["invfussion"])
    print(f"\nInvFussion / Palette time per image end to end: {ratio:.2f}× (target ≤ 1.30×; InvFussion target ≥ 140 img/s)")


if __name__ == "__main__":
    main()
