"""Print the tables of saved `invfussion evaluate` results (Table 1 layout), without recomputing.

    python benchmarks/print_results.py benchmarks/results/previous-75min/table1.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from invfussion.evaluation import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    for path in parser.parse_args().results:
        record = json.loads(path.read_text())
        print(f"## {path} (N = {record['spec']['num_images']}, models {record['spec']['models']})\n")
        print(markdown_table(record) + "\n")


if __name__ == "__main__":
    main()
