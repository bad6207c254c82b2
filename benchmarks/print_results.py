"""Print the tables of saved `invfussion evaluate` results (Table 1 layout), without recomputing.

    python benchmarks/print_results.py benchmarks/results/previous-75min/table1.json
    python benchmarks/print_results.py --merge benchmarks/results/table1/*.json
    python benchmarks/print_results.py --merge A.json B.json --rows invfussion:mmse mmse:mmse
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from invfussion.evaluation import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--merge", action="store_true", help="one table of every file's cells (same models, other degradations)")
    parser.add_argument("--rows", nargs="+", metavar="KEY:METHOD", help="only these rows (default: all)")
    args = parser.parse_args()
    records = [(str(path), json.loads(path.read_text())) for path in args.results]
    if args.rows:
        for _, record in records:
            record["cells"] = {k: c for k, c in record["cells"].items() if f"{c['model']}:{c['method']}" in args.rows}
    if args.merge:
        merged = {"spec": records[0][1]["spec"], "cells": {k: c for _, r in records for k, c in r["cells"].items()}}
        records = [(" + ".join(name for name, _ in records), merged)]
    for name, record in records:
        print(f"## {name} (N = {record['spec']['num_images']}, models {record['spec']['models']})\n")
        print(markdown_table(record) + "\n")


if __name__ == "__main__":
    main()
