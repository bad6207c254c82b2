"""`evaluate --protocol small64` on a folder of random 64×64 images with a tiny untrained-ish model:
the protocol's five tasks, SSIM beside PSNR, the settings in the results file, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from invfussion.cli import main
from invfussion.evaluation import PROTOCOLS

SHRUNK_FFHQ64 = {"widths": [24, 48], "depths": [1, 1], "attention": ["neighborhood", "global"], "d_head": 8,
                 "mapping_width": 32, "logvar_channels": 16, "dropout": 0.0}


@pytest.fixture(scope="module")
def tiny64(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images / f"{i}.png")
    run = root / "run"
    assert main(["train", "--no-compile", "--preset", "ffhq64", "--data", str(images), "--model-overrides",
                 json.dumps(SHRUNK_FFHQ64), "--degradations", "gaussian-blur", "inpaint-random", "--steps", "1",
                 "--batch-size", "2", "--checkpoint-every", "1", "--sample-every", "100", "--log-every", "1",
                 "--device", "cpu", "--amp", "none", "--num-workers", "0", "--out", str(run)]) == 0
    return images, run


def test_small64_protocol_tabulates_its_tasks_and_records_them(tiny64, tmp_path, capsys):
    images, run = tiny64
    out = tmp_path / "results.json"
    assert main(["evaluate", "--models", f"tiny={run}", "--methods", "tiny:mmse", "--protocol", "small64",
                 "--data", str(images), "--num-images", "2", "--batch-size", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    record = json.loads(out.read_text())
    protocol = PROTOCOLS["small64"]
    assert record["protocol"]["name"] == "small64" and record["protocol"]["tasks"] == protocol.tasks
    assert record["spec"]["degradations"] == list(protocol.tasks.values())
    assert all("noise=0.05" in spec for spec in protocol.tasks.values())
    cells = record["cells"]
    assert len(cells) == 5
    for cell in cells.values():
        assert -1 <= cell["ssim"] <= 1 and np.isfinite(cell["psnr"]) and cell["lpips"] is None
    header = next(line for line in printed.splitlines() if line.startswith("| method"))
    for task in protocol.tasks:
        assert f"{task} PSNR↑" in header and f"{task} SSIM↑" in header
    assert "LPIPS" not in header  # no --lpips-weights


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invfussion", *args], capture_output=True, text=True)


def test_protocol_errors_are_one_line(tiny64, tmp_path):
    images, run = tiny64
    common = ["evaluate", "--models", f"tiny={run}", "--methods", "tiny:mmse", "--data", str(images),
              "--num-images", "2", "--out", str(tmp_path / "r.json")]
    for extra, words in [
        (["--protocol", "dps256"], "protocol dps256 is defined on 256² images but the evaluation images are 64×64 (model tiny)"),
        ([], "give --degradations SPEC ... or --protocol NAME"),
        (["--protocol", "small64", "--degradations", "sr"], "sets the degradations itself"),
    ]:
        result = run_cli(*common, *extra)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], result.stderr
