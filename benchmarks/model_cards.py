"""Add the measured test metrics to the shipped models' cards and write assets/MODEL_CARDS.md.

Reads the results JSON files written by `benchmarks/mnist_benchmark.sh` (``invfussion
evaluate``), stores each model's cells under ``card["test_metrics"]`` in its asset JSON, and
renders every card as Markdown. A results file's model is a card's model when it names it
(``mnist32-invfussion``) or names the run its card was exported from (the ``--out`` of the card's
training command, e.g. ``runs/gen2/mnist32-invfussion``).

    python benchmarks/model_cards.py benchmarks/results/table1/*.json benchmarks/results/{table7-mean-of-8,unconditional,cost}.json

(The NFE files are left out: their rows differ only in the solver, which a card row does not name.)
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import shlex
from pathlib import Path

ASSETS = Path(str(importlib.resources.files("invfussion") / "assets"))


def run_dir(command: str) -> str | None:
    """The ``--out`` of a card's training command, or None."""
    words = shlex.split(command)
    return words[words.index("--out") + 1] if "--out" in words[:-1] else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", type=Path, help="evaluate results files (none: the cards alone)")
    args = parser.parse_args()
    metrics: dict[str, list[dict]] = {}
    for path in args.results:
        record = json.loads(path.read_text())
        models = record["spec"]["models"]
        for cell in record["cells"].values():
            entry = {k: cell[k] for k in ("method", "degradation", "psnr", "fd", "c_fd", "consistency", "nfe",
                                          "seconds_per_image", "images")}
            metrics.setdefault(models[cell["model"]], []).append(entry)
    lines = ["# Shipped models", "", "Written by `benchmarks/model_cards.py` from each model's JSON card.", ""]
    for card_path in sorted(ASSETS.glob("mnist32-*.json")):
        record = json.loads(card_path.read_text())
        name = card_path.stem
        card = record["card"]
        measured = metrics.get(name, []) + metrics.get(run_dir(card["command"]), [])
        if measured:
            card["test_metrics"] = measured
            card_path.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
        lines += [f"## {name}", "", f"- command: `{card['command']}`",
                  f"- steps: {card['steps']} (batch {card['batch_size']}), wall time {card['wall_time_s']} s",
                  f"- machine: {card['machine']}; commit {card['commit']}", f"- data: {card['data']}", ""]
        if card.get("test_metrics"):
            lines += ["| method | degradation | PSNR | FD | C-FD | NFE | s/image | images |", "|---|---|---|---|---|---|---|---|"]
            for m in card["test_metrics"]:
                c_fd = "–" if m["c_fd"] is None else f"{m['c_fd']:.2f}"
                lines.append(f"| {m['method']} | {m['degradation']} | {m['psnr']:.2f} | {m['fd']:.2f} | {c_fd} | "
                             f"{m['nfe']} | {m['seconds_per_image']:.3f} | {m['images']} |")
            lines.append("")
    (ASSETS / "MODEL_CARDS.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print((ASSETS / "MODEL_CARDS.md").read_text())


if __name__ == "__main__":
    main()
