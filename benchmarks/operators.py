"""Time of ``A`` + ``A⁺`` per degradation family, as the Feature Degradation Layer calls them.

For each family and image size: one operator batch of B examples, then ``op.A`` on a
``(B, K, C, H, W)`` float32 stack followed by ``op.pinv`` on the result, repeated; the table
gives the median and the fastest time per example (total / B) and the time to build the batch. Families are
timed round-robin so that a change in machine load hits all of them alike.

    python benchmarks/operators.py                   # B=64, K=8, 3×32×32 and 3×64×64, CPU
    python benchmarks/operators.py --backward        # forward + backward through A and A⁺
    python benchmarks/operators.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import torch

from invfussion import degradations as deg

SPECS = [*deg.FAMILIES, "paper-mixture"]


def build(spec: str, shape: tuple[int, int, int], batch: int, device: str) -> deg.Operator:
    if spec == "paper-mixture":
        return deg.PAPER_MIXTURE.sample(batch, shape, seed=0, device=device)
    return deg.from_spec(spec, shape, batch=batch, seed=0, device=device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--stack", type=int, default=8, help="K, images per example")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--backward", action="store_true", help="also time the backward pass")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"commit {commit or '?'}, torch {torch.__version__}, device {args.device}, "
        f"{torch.get_num_threads()} threads, B={args.batch}, K={args.stack}, "
        f"{'forward+backward' if args.backward else 'forward'}; {args.rounds} rounds"
    )
    print(f"{'family':<16}{'image':>10}{'M':>8}{'build s':>9}{'median ms/ex':>14}{'min ms/ex':>11}")
    for size in args.sizes:
        shape = (args.channels, size, size)
        ops, build_s = {}, {}
        for spec in SPECS:
            start = time.perf_counter()
            ops[spec] = build(spec, shape, args.batch, args.device)
            build_s[spec] = time.perf_counter() - start
        x = torch.randn(
            args.batch, args.stack, *shape, device=args.device, requires_grad=args.backward
        )
        times: dict[str, list[float]] = {spec: [] for spec in SPECS}
        for _ in range(args.rounds + 1):  # the first round warms up
            for spec, op in ops.items():
                sync(args.device)
                start = time.perf_counter()
                out = op.pinv(op.A(x))
                if args.backward:
                    out.square().sum().backward()
                sync(args.device)
                times[spec].append(time.perf_counter() - start)
        for spec, op in ops.items():
            median, best = (f(times[spec][1:]) / args.batch * 1e3 for f in (statistics.median, min))
            image = "×".join(map(str, shape))
            print(
                f"{spec:<16}{image:>10}{op.measurement_size:>8}{build_s[spec]:>9.2f}{median:>14.3f}{best:>11.3f}"
            )


if __name__ == "__main__":
    main()
