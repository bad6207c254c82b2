"""NPPC validation (BENCHMARKS.md "Posterior principal components"): how much of the actual
error the predicted directions capture, how well their predicted variances are calibrated, and
what they cost, against random directions and the PCA of InvFussion posterior samples.

For each degradation and each of N balanced test digits x, with a method's mean μ and orthonormal
directions u₁..u_K, the error e = x − μ and the captured fraction ‖P_K e‖² / ‖e‖² =
Σ_k ⟨e, u_k⟩² / ‖e‖² (averaged over the digits):

- NPPC: one call of the NPPC model (its mean and directions);
- random: K random orthonormal directions per digit, on the NPPC error;
- sample PCA: mean and top-K PCA of S InvFussion posterior samples per digit (S · 63 NFE).

Calibration: per direction k, the predicted variance σ_k² against the measured ⟨e, u_k⟩², both
averaged over the digits (ratio 1 = calibrated). Seconds per digit are measured in this run.

    python benchmarks/nppc.py --num-images 100 --samples 16
    python benchmarks/nppc.py --model runs/nppc --posterior-model runs/invfussion --split validation
    python benchmarks/nppc.py --num-images 500 --pca-images 100   # sample PCA on a balanced prefix

NPPC and random directions are cheap; sample PCA costs S · 63 network calls per digit, so
--pca-images M runs it on the first M of the N digits only (a balanced prefix).
"""

from __future__ import annotations

import argparse
import time

import torch

from invfussion import degradations as deg
from invfussion import models, sampling
from invfussion.data import balanced_indices, load_mnist
from invfussion.sampling.uncertainty import sample_pca


def coordinates(error: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """``⟨e, u_k⟩: (B, K)`` of ``error: (B, C, H, W)`` on orthonormal ``directions: (B, K, C, H, W)``."""
    return torch.einsum("bkd,bd->bk", directions.flatten(2).double(), error.flatten(1).double())


def captured_fraction(error: torch.Tensor, along: torch.Tensor) -> torch.Tensor:
    """``(B,)`` ‖P_K e‖²/‖e‖² from ``error: (B, C, H, W)`` and its ``coordinates`` ``(B, K)``."""
    return along.square().sum(1) / error.flatten(1).double().square().sum(1).clamp_min(1e-12)


def random_directions(batch: int, k: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = torch.Size(shape).numel()
    q, _ = torch.linalg.qr(torch.randn(batch, n, k, generator=g, dtype=torch.float64))
    return q.transpose(1, 2).reshape(batch, k, *shape).float()


def measured(images: torch.Tensor, idx: torch.Tensor, spec: str, seed: int):
    """The digits ``x: (B, C, H, W)`` at ``idx: (B,)``, their per-example operator and its measurement ``y``."""
    x = images[idx]
    op = deg.from_spec(spec, image_shape=tuple(x.shape[1:]), indices=idx.tolist(), seed=seed)
    return x, op, op.measure(x, seed=seed, indices=idx.tolist())


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist32-nppc")
    parser.add_argument("--posterior-model", default="mnist32-invfussion")
    parser.add_argument("--degradations", nargs="+", default=["inpaint-box", "inpaint-patches", "motion-blur"])
    parser.add_argument("--num-images", type=int, default=100)
    parser.add_argument("--samples", type=int, default=16, help="posterior samples per digit for sample PCA")
    parser.add_argument("--pca-images", type=int, default=None,
                        help="sample PCA on the first M of the digits only (default: all of them; 0: none)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="test", choices=("validation", "test"),
                        help="balanced digits of this split (decide on validation, report on test)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.pca_images is not None and args.pca_images < 0:
        parser.error(f"--pca-images must be at least 0 (got {args.pca_images}); leave it out to run sample PCA on all digits.")
    if args.threads:
        torch.set_num_threads(args.threads)

    pca_images = args.num_images if args.pca_images is None else min(args.pca_images, args.num_images)
    net = models.load(args.model)
    post_net = models.load(args.posterior_model) if pca_images else None
    k = net.pcs
    images, _ = load_mnist(args.split)
    all_indices = balanced_indices(args.num_images, args.split)
    print(f"{args.model} (K = {k}) vs {args.posterior_model} sample PCA ({args.samples} samples, first "
          f"{pca_images} digits), N = {args.num_images} {args.split} digits, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    head = "| degradation | NPPC | random | sample PCA | NPPC σ²/measured, k = 1..K | NPPC s/img | sample PCA s/img | time ratio |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for spec in args.degradations:
        sums = {"nppc": [], "random": [], "sample": [], "predicted": [], "measured": []}
        seconds = {"nppc": 0.0, "sample": 0.0}
        for start in range(0, args.num_images, args.batch_size):
            idx = all_indices[start:start + args.batch_size]
            x, op, y = measured(images, idx, spec, args.seed)
            (mean, directions, stds), t = timed(sampling.nppc, net, op, y, seed=args.seed, indices=idx.tolist())
            seconds["nppc"] += t
            error = x - mean
            along = coordinates(error, directions)
            random = random_directions(len(idx), k, tuple(x.shape[1:]), args.seed + start)
            sums["nppc"].append(captured_fraction(error, along))
            sums["random"].append(captured_fraction(error, coordinates(error, random)))
            sums["predicted"].append(stds.double().square())
            sums["measured"].append(along.square())
            pca_idx = idx[:max(0, pca_images - start)]
            if not len(pca_idx):
                continue
            if len(pca_idx) < len(idx):  # the batch the prefix ends in: its part of the digits only
                x, op, y = measured(images, pca_idx, spec, args.seed)
            with torch.no_grad():
                samples, t = timed(sampling.posterior, post_net, op, y, seed=args.seed, indices=pca_idx.tolist(),
                                   num_samples=args.samples)
                (s_mean, s_dirs, _), t2 = timed(sample_pca, samples, k)
            seconds["sample"] += t + t2
            sums["sample"].append(captured_fraction(x - s_mean, coordinates(x - s_mean, s_dirs)))
        frac = {name: f"{float(torch.cat(sums[name]).mean()):.3f}" if sums[name] else "–" for name in ("nppc", "random", "sample")}
        ratio = torch.cat(sums["predicted"]).mean(0) / torch.cat(sums["measured"]).mean(0)
        nppc_s = seconds["nppc"] / args.num_images
        sample_s, times = (f"{seconds['sample'] / pca_images:.2f}", f"{seconds['sample'] / pca_images / nppc_s:.0f}×") if pca_images else ("–", "–")
        print(f"| {spec} | {frac['nppc']} | {frac['random']} | {frac['sample']} | "
              f"{' / '.join(f'{r:.2f}' for r in ratio.tolist())} | {nppc_s:.4f} | {sample_s} | {times} |")


if __name__ == "__main__":
    main()
