"""`invfussion import-checkpoint` on files in the authors' layout (the parity fixture), then the
imported model through `models.load`, `restore` and `evaluate`; and every bad input as one line,
a non-zero exit and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from invfussion import models
from invfussion.cli import main
from invfussion.models.authors import load_authors, read_authors_file
from invfussion.models.load import model_card

AUTHORS = Path(__file__).resolve().parents[1] / "models" / "data" / "authors"
CONFIGS = json.loads((AUTHORS / "cases.json").read_text(encoding="utf-8"))["models"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invfussion", *args], capture_output=True, text=True, timeout=300)


def config_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(CONFIGS[name]["config"]), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("import")
    out = tmp / "tiny-imagenet"
    assert main(["import-checkpoint", str(AUTHORS / "tiny-imagenet.pt"), "--config",
                 str(config_file(tmp, "tiny-imagenet")), "--out", str(out)]) == 0
    return out


def test_import_writes_a_loadable_model_with_a_card(imported):
    net = models.load(imported)
    reference = load_authors(read_authors_file(AUTHORS / "tiny-imagenet.pt"), CONFIGS["tiny-imagenet"]["config"])
    ours, theirs = net.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    card = model_card(imported)
    digest = __import__("hashlib").sha256((AUTHORS / "tiny-imagenet.pt").read_bytes()).hexdigest()
    assert card["source_sha256"] == digest and card["source_file"] == "tiny-imagenet.pt"
    assert "provided as-is" in card["weights"]
    assert "motion-blur-folded-spectrum" in card["training_families"]
    assert net.trained_families == card["training_families"] and net.num_classes == 10
    assert not net.noise_aware_inverse


def test_restore_and_evaluate_run_on_the_imported_model(imported, tmp_path):
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "restored"
    assert main(["restore", "--model", str(imported), "--input", str(photo), "--degradation",
                 "motion-blur-folded-spectrum:stride=2", "--method", "mmse", "posterior", "--steps", "2",
                 "--class-label", "3", "--cfg", "2", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"mmse", "posterior"} <= set(metrics["methods"])
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    results = tmp_path / "results.json"
    assert main(["evaluate", "--models", f"authors={imported}", "--methods", "authors:mmse", "--data", str(folder),
                 "--degradations", "inpaint-patches", "matrix:max_rows=128", "--num-images", "4",
                 "--out", str(results)]) == 0
    cells = json.loads(results.read_text())["cells"]
    assert len(cells) == 2 and all(c["psnr"] is not None for c in cells.values())


def test_out_of_family_restore_is_noted(imported, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(photo)
    result = run_cli("restore", "--model", str(imported), "--input", str(photo), "--degradation", "outpaint-box",
                     "--method", "mmse", "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert "outside this model's training family" in result.stderr


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    config = str(config_file(tmp_path, "tiny-imagenet"))
    other = str(config_file(tmp_path, "tiny-ffhq256"))
    truncated = tmp_path / "truncated.pt"
    data = (AUTHORS / "tiny-imagenet.pt").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    not_theirs = tmp_path / "notes.pt"
    not_theirs.write_text("not a checkpoint", encoding="utf-8")
    no_state = tmp_path / "no-state.pt"
    torch.save({"ema": {"step": 3}}, no_state)
    evil = tmp_path / "evil.pt"
    payload = RunsCode()
    payload.marker = tmp_path / "ran"
    torch.save({"ema": payload}, evil)
    return {
        "truncated": ([str(truncated), "--config", config], "truncated"),
        "not theirs": ([str(not_theirs), "--config", config], "not a complete PyTorch checkpoint"),
        "no state dict": ([str(no_state), "--config", config], "no state dict"),
        "wrong config": ([str(AUTHORS / "tiny-imagenet.pt"), "--config", other], "does not fit"),
        "unknown config": ([str(AUTHORS / "tiny-imagenet.pt"), "--config", "imagenet128"], "neither"),
        "full config, tiny file": ([str(AUTHORS / "tiny-imagenet.pt"), "--config", "imagenet64"], "--config"),
        "runs code": ([str(evil), "--config", config], "could run code"),
        "missing file": ([str(tmp_path / "absent.pt"), "--config", config], "does not exist"),
    }


def test_bad_inputs_are_one_line_and_write_nothing(tmp_path):
    for case, (args, words) in bad_inputs(tmp_path).items():
        out = tmp_path / f"out-{case.replace(' ', '-')}"
        result = run_cli("import-checkpoint", *args, "--out", str(out))
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in result.stderr, (case, result.stderr)
        assert words in lines[0], (case, lines[0])
        assert not out.exists(), case
    assert not (tmp_path / "ran").exists()  # the pickle's payload never ran


def test_an_existing_model_is_not_overwritten(imported):
    before = (imported / "model.json").read_text()
    result = run_cli("import-checkpoint", str(AUTHORS / "tiny-ffhq256.pt"), "--config", "ffhq256", "--out", str(imported))
    assert result.returncode != 0 and "already holds a model" in result.stderr
    assert (imported / "model.json").read_text() == before


def test_the_web_service_offers_the_imported_models_families(imported):
    """`serve` on an imported model: the page is told its training families, and a job on their
    folded-spectrum blur runs with the class and guidance (an uploaded 16×16 colour image)."""
    import base64
    import io
    import time

    from invfussion.serve.service import RestorationService

    service = RestorationService(models.load(imported), steps=1, max_samples=2)
    try:
        assert "motion-blur-folded-spectrum" in service.info()["families"]
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buffer, "PNG")
        upload = service.add_upload({"data": base64.b64encode(buffer.getvalue()).decode()})
        job = service.submit({"image": {"upload": upload["id"]}, "degradation": "motion-blur-folded-spectrum:stride=2",
                              "num_samples": 2, "class_label": 3, "cfg": 2})
        deadline = time.monotonic() + 120
        while job.state not in ("done", "error") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.state == "done", job.error
        assert job.result["sampler"] == "posterior" and len(job.result["samples"]) == 2
    finally:
        service.close()
