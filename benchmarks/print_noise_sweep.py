"""Print one-call PSNR against the measurement noise σ_y from `invfussion evaluate` results whose
degradations read ``FAMILY,noise=σ`` (benchmarks/noise_levels.sh): one table per family, methods
as rows, σ_y as columns.

    python benchmarks/print_noise_sweep.py benchmarks/results/noise-levels/sweep-*.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    args = parser.parse_args()
    table: dict[str, dict[str, dict[float, float]]] = {}  # family → method → σ → PSNR
    for path in args.results:
        record = json.loads(path.read_text())
        for cell in record["cells"].values():
            family, _, noise = cell["degradation"].rpartition(",noise=")
            method = f"{cell['model']}:{cell['method']}"
            table.setdefault(family, {}).setdefault(method, {})[float(noise)] = cell["psnr"]
    n = json.loads(args.results[0].read_text())["spec"]["num_images"]
    for family, rows in table.items():
        sigmas = sorted({s for row in rows.values() for s in row})
        print(f"\n{family} — PSNR (dB) against σ_y, N = {n}\n")
        print("| method | " + " | ".join(f"σ_y = {s:g}" for s in sigmas) + " |")
        print("|---|" + "---:|" * len(sigmas))
        for method, row in rows.items():
            print(f"| {method} | " + " | ".join(f"{row[s]:.2f}" if s in row else "" for s in sigmas) + " |")


if __name__ == "__main__":
    main()
