"""`restore --class-label --cfg` and `evaluate --class-labels --cfg` on a tiny class-conditional
checkpoint: guided NFE, cells kept apart per class setting, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from invfussion.cli import main

TINY_CLASS_MODEL = {"widths": [32, 64], "depths": [1, 1], "d_head": 16, "mapping_width": 32, "num_classes": 10}


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    """A 2-step run of a tiny InvFussion with the ten digits as classes, trained from the command
    line: `invfussion train --model-overrides '{"num_classes": 10, ...}'`."""
    out = tmp_path_factory.mktemp("class-run")
    assert main(["train", "--no-compile", "--steps", "2", "--batch-size", "4", "--out", str(out), "--checkpoint-every", "2",
                 "--sample-every", "10000", "--device", "cpu", "--amp", "none", "--num-workers", "0",
                 "--model-overrides", json.dumps(TINY_CLASS_MODEL)]) == 0
    return out


def test_restore_with_a_class_and_guidance_counts_both_calls(class_run, tmp_path):
    out = tmp_path / "restored"
    assert main(["restore", "--model", str(class_run), "--dataset-index", "3", "--degradation", "matrix:rows=64",
                 "--method", "posterior", "mmse", "ddnm", "--num-samples", "1", "--steps", "2",
                 "--class-label", "3", "--cfg", "2", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["methods"]
    assert {m: metrics[m]["nfe"] for m in metrics} == {"posterior": 2 * 3, "mmse": 2, "ddnm": 2 * 2}


def test_evaluate_keeps_cells_of_each_class_setting_apart(class_run, tmp_path, capsys):
    out = tmp_path / "results.json"
    common = ["evaluate", "--models", f"tiny={class_run}", "--methods", "tiny:mmse", "--degradations", "matrix",
              "--num-images", "10", "--split", "validation", "--out", str(out)]
    assert main(common) == 0
    assert main(common + ["--class-labels", "true"]) == 0
    assert main(common + ["--class-labels", "true", "--cfg", "2"]) == 0
    cells = json.loads(out.read_text())["cells"]
    keys = ["tiny:mmse @ matrix", "tiny:mmse[class=true] @ matrix", "tiny:mmse[class=true,cfg=2] @ matrix"]
    assert set(cells) == set(keys)
    plain, labelled, guided = (cells[k] for k in keys)
    assert all(0 <= c["class_accuracy"] <= 1 for c in (plain, labelled, guided))
    assert (plain["nfe"], labelled["nfe"], guided["nfe"]) == (1, 1, 2)
    table = capsys.readouterr().out
    assert "| tiny:mmse[class=true,cfg=2] |" in table and "| tiny:mmse |" in table


@pytest.mark.parametrize(("args", "message"), [
    (["restore", "--class-label", "10"], "class label 10 is not one of this model's classes"),
    (["restore", "--class-label", "-1"], "class label -1"),
    (["restore", "--cfg", "2"], "needs a class label"),
    (["restore", "--class-label", "1", "--cfg", "-1"], "finite number ≥ 0, got -1.0"),
    (["restore", "--class-label", "1", "--cfg", "nan"], "finite number ≥ 0, got nan"),
    (["sample", "--class-label", "12"], "class label 12"),
    (["evaluate", "--cfg", "2"], "needs a class label"),
])
def test_bad_class_requests_are_one_line(class_run, tmp_path, capsys, args, message):
    command, extra = args[0], args[1:]
    common = {
        "restore": ["--dataset-index", "0", "--degradation", "matrix", "--steps", "1"],
        "sample": ["--num-samples", "1", "--steps", "1"],
        "evaluate": ["--models", f"tiny={class_run}", "--methods", "tiny:mmse", "--degradations", "matrix",
                     "--num-images", "10"],
    }[command]
    model = [] if command == "evaluate" else ["--model", str(class_run)]
    assert main([command, *model, *common, *extra, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_class_for_a_model_without_classes_is_one_line_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "invfussion", "restore", "--model", "mnist32-invfussion", "--dataset-index", "0",
         "--degradation", "matrix", "--class-label", "3", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "not class-conditional" in lines[0], result.stderr
