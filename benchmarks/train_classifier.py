"""Train the MNIST feature classifier on the embedded training split and export it.

    python benchmarks/train_classifier.py            # ≈ a few minutes on 2 CPU threads

Trains :class:`invfussion.metrics.mnist_features.MnistClassifier` on the 4,000 training digits
(random ±2 px shifts; Adam with cosine decay), measures its accuracy on the 500 test digits,
prints it, and writes ``src/invfussion/assets/mnist-classifier.safetensors`` plus the JSON card
that records the accuracy and the settings. The test split is used for that one measurement only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from invfussion.data import load_mnist
from invfussion.metrics.mnist_features import ARCHITECTURE, FEATURE_DIM, MnistClassifier

DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "src" / "invfussion" / "assets" / "mnist-classifier"
)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image ``(N, 1, 32, 32)`` by up to ``max_shift`` px, filling with background."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


@torch.no_grad()
def accuracy(model: MnistClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    predicted = torch.cat([model(chunk).argmax(1) for chunk in images.split(500)])
    return float((predicted == labels).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output prefix (no suffix)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    train_x, train_y = load_mnist("train")
    test_x, test_y = load_mnist("test")
    model = MnistClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = -(-len(train_x) // args.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs * steps_per_epoch)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        total = 0.0
        for batch in order.split(args.batch_size):
            x = random_shift(train_x[batch], 2, generator)
            loss = F.cross_entropy(model(x), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(batch)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {total / len(train_x):.4f}, "
            f"train accuracy {accuracy(model, train_x, train_y):.4f}, {time.time() - start:.0f} s",
            flush=True,
        )
    test_accuracy = accuracy(model, test_x, test_y)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(args.out.with_suffix(".safetensors")),
    )
    card = {
        "architecture": ARCHITECTURE,
        "feature_dim": FEATURE_DIM,
        "input": "(N, 1, 32, 32) in [-1, 1]",
        "train_split": "embedded MNIST train (4,000 digits, 400 per class)",
        "test_accuracy": round(test_accuracy, 4),
        "test_split": "embedded MNIST test (500 digits, 50 per class)",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "train_seconds": round(time.time() - start, 1),
        "command": "python benchmarks/train_classifier.py",
    }
    args.out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(
        f"test accuracy {test_accuracy:.4f} on {len(test_x)} digits; "
        f"wrote {args.out}.safetensors/.json"
    )


if __name__ == "__main__":
    main()
