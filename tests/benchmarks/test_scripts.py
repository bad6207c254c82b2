"""Bad input to the benchmark scripts gets one error line before any model is loaded."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_nppc_rejects_a_negative_pca_prefix():
    run = subprocess.run([sys.executable, "benchmarks/nppc.py", "--pca-images", "-1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "--pca-images must be at least 0" in run.stderr.strip().splitlines()[-1]


def test_nppc_without_sample_pca_prints_dashes_in_its_columns():
    run = subprocess.run([sys.executable, "benchmarks/nppc.py", "--pca-images", "0", "--num-images", "10",
                          "--batch-size", "10", "--degradations", "inpaint-box"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    row = run.stdout.strip().splitlines()[-1].split(" | ")
    assert row[0] == "| inpaint-box" and row[3] == "–" and row[-1] == "– |"
    assert 0 < float(row[1]) < 1 and len(row[4].split(" / ")) == 5


def test_model_cards_find_the_run_a_card_was_exported_from():
    spec = importlib.util.spec_from_file_location("model_cards", ROOT / "benchmarks" / "model_cards.py")
    cards = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cards)
    assert cards.run_dir("invfussion train --steps 10 --out runs/gen2/mnist32-palette --lr 4e-4") == "runs/gen2/mnist32-palette"
    assert cards.run_dir("invfussion train --model-overrides '{\"num_classes\": 10}' --out 'runs/a b'") == "runs/a b"
    assert cards.run_dir("invfussion train --steps 10") is None
    assert cards.run_dir("invfussion train --out") is None
