"""Bad input to the benchmark scripts gets one error line before any model is loaded."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_nppc_rejects_an_empty_pca_prefix():
    run = subprocess.run([sys.executable, "benchmarks/nppc.py", "--pca-images", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "--pca-images must be at least 1" in run.stderr.strip().splitlines()[-1]
