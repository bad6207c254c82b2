"""Are unconditional samples clearly digits? The shipped MNIST classifier's confidence on them.

For each model, N unconditional samples (EDM Heun, 32 steps; the zero operator for the
conditional models) and, for reference, the N first balanced test digits: the fraction the
classifier assigns a class with probability ≥ 0.9 ("clearly a digit"), the mean top
probability, and how evenly the samples spread over the ten classes (entropy of the predicted
class histogram, in bits; 3.32 = uniform).

    python benchmarks/sample_quality.py --num-samples 200
"""

from __future__ import annotations

import argparse

import torch

from invfussion import models, sampling
from invfussion.data import balanced_indices, load_mnist
from invfussion.metrics import MnistFeatures


def confidence_row(name: str, classifier: MnistFeatures, images: torch.Tensor, threshold: float) -> str:
    with torch.no_grad():
        probs = classifier.model(images.float()).softmax(-1)
    top, label = probs.max(-1)
    hist = torch.bincount(label, minlength=10).double() / len(label)
    entropy = float(-(hist[hist > 0] * hist[hist > 0].log2()).sum())
    return f"| {name} | {float((top >= threshold).double().mean()):.3f} | {float(top.mean()):.3f} | {entropy:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mnist32-unconditional", "mnist32-palette", "mnist32-invfussion"])
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    classifier = MnistFeatures()
    images, _ = load_mnist("test")
    print(f"N = {args.num_samples}, classifier test accuracy {classifier.test_accuracy}, torch {torch.__version__}\n")
    print(f"| samples | top probability ≥ {args.threshold} | mean top probability | class entropy (bits) |")
    print("|---|---|---|---|")
    print(confidence_row("test digits (reference)", classifier, images[balanced_indices(args.num_samples, "test")], args.threshold))
    for name in args.models:
        net = models.load(name)
        with torch.no_grad():
            x = sampling.unconditional(net, args.num_samples, (net.img_channels, net.img_resolution, net.img_resolution),
                                       seed=args.seed)
        print(confidence_row(name, classifier, x, args.threshold))


if __name__ == "__main__":
    main()
