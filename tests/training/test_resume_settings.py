"""`invfussion train --out RUN --resume` takes the run's own settings from RUN/config.json: alone it
continues exactly; options that may change are applied with a note, the others refused at once."""

import json
import signal

import pytest
from tiny_runs import TINY_MODEL, assert_same_tensors, checkpoint_tensors

from invfussion.cli import main
from invfussion.training import latest_checkpoint
from invfussion.training.loop import Trainer

TINY_FLAGS = ["--batch-size", "8", "--model-overrides", json.dumps(TINY_MODEL), "--lr", "1e-3", "--warmup-steps", "2",
              "--lr-ref-steps", "20", "--checkpoint-every", "5", "--sample-every", "10000", "--log-every", "5",
              "--device", "cpu", "--amp", "none", "--seed", "3", "--no-compile"]


def stopped_run(out, monkeypatch, steps: int, stop_at: int) -> None:
    """Train ``--steps steps`` into ``out`` and stop at step ``stop_at`` as SIGTERM would."""
    take_step = Trainer._train_step

    def step_then_stop(self, batch):
        result = take_step(self, batch)
        if self.step == stop_at:
            signal.raise_signal(signal.SIGTERM)
        return result

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_train_step", step_then_stop)
        assert main(["train", *TINY_FLAGS, "--steps", str(steps), "--out", str(out)]) == 0
    assert latest_checkpoint(out).stem == f"step-{stop_at:07d}"


def test_resume_alone_continues_bitwise_to_the_runs_own_total(tmp_path, monkeypatch, capsys):
    stopped_run(tmp_path / "split", monkeypatch, steps=15, stop_at=10)
    assert main(["train", "--out", str(tmp_path / "split"), "--resume"]) == 0
    resumed = latest_checkpoint(tmp_path / "split")
    assert resumed.stem == "step-0000015"  # the run's 15 steps, not the default 20,000
    assert main(["train", *TINY_FLAGS, "--steps", "15", "--out", str(tmp_path / "whole")]) == 0
    assert_same_tensors(checkpoint_tensors(latest_checkpoint(tmp_path / "whole")), checkpoint_tensors(resumed))
    assert "note:" not in capsys.readouterr().err  # nothing changed, nothing to note


def test_resume_applies_the_changes_it_may_take_and_notes_each(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    stopped_run(run, monkeypatch, steps=15, stop_at=5)
    assert main(["train", "--out", str(run), "--resume", "--steps", "12", "--checkpoint-every", "4",
                 "--log-every", "5"]) == 0
    err = capsys.readouterr().err
    assert "note: --steps 12 (the run had 15)" in err and "note: --checkpoint-every 4 (the run had 5)" in err
    assert "--log-every" not in err  # the run's own value: no change
    assert latest_checkpoint(run).stem == "step-0000012"
    saved = json.loads((run / "config.json").read_text())["train"]
    assert saved["steps"] == 12 and saved["checkpoint_every"] == 4 and saved["seed"] == 3


def test_changes_to_the_training_are_refused_in_one_line_listing_them_all(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    stopped_run(run, monkeypatch, steps=15, stop_at=5)
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--batch-size", "4", "--lr", "2e-3", "--seed", "3"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "batch_size=8, not 4" in line and "lr=0.001, not 0.002" in line and "seed" not in line
    assert "`--resume` alone keeps the run's own settings" in line


def test_steps_below_the_checkpoint_are_a_clear_error(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    stopped_run(run, monkeypatch, steps=15, stop_at=10)
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--steps", "6"]) == 2
    note, line = capsys.readouterr().err.strip().splitlines()
    assert note == "note: --steps 6 (the run had 15)"
    assert "is at step 10, past --steps 6; pass --steps 10 or more" in line


def test_a_run_that_fails_before_its_first_step_leaves_no_settings_behind(tmp_path, capsys):
    """A colour dataset for a grey preset is refused before training, naming channels and both
    fixes, and --resume then starts afresh instead of tripping on the failed run's settings."""
    import numpy as np
    from PIL import Image

    images = tmp_path / "colour"
    images.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32, 3), (200, 10 * i, 0), dtype=np.uint8)).save(images / f"{i}.png")
    run = tmp_path / "run"
    assert main(["train", *TINY_FLAGS, "--steps", "2", "--data", str(images), "--out", str(run)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "holds RGB (3-channel) images but the mnist32 model takes grey (1-channel) ones" in line
    assert "--channels 1`" in line and '{"img_channels": 3}' in line
    assert not (run / "config.json").exists() and latest_checkpoint(run) is None


@pytest.mark.parametrize("option", ["--xflip", "--compile"])
def test_options_left_out_are_not_given(option):
    """Flags parse to ``None`` when absent, so only typed ones count as changes on resume."""
    from invfussion.cli import build_parser, given_train_settings

    given = given_train_settings(build_parser().parse_args(["train", "--out", "r", option]))
    assert given == {"out": "r", "resume": False, option[2:]: True}


def test_a_truncated_latest_checkpoint_points_to_the_earlier_ones(tmp_path):
    from tiny_runs import tiny_config

    from invfussion.training import train

    cfg = tiny_config(tmp_path, steps=10, checkpoint_every=5)
    train(cfg)
    latest = latest_checkpoint(tmp_path)
    latest.write_bytes(latest.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated or corrupt; the earlier checkpoints are step-0000005: point") as error:
        train(cfg.__class__(**{**vars(cfg), "resume": True}))
    pointer = tmp_path / "checkpoints" / "latest"
    assert f"`echo step-0000005 > {pointer}`" in str(error.value)
    pointer.write_text("step-0000005\n")  # the fix it names
    assert train(cfg.__class__(**{**vars(cfg), "resume": True})).stem == "step-0000010"


def test_resume_into_an_empty_folder_starts_a_new_run_and_says_so(tmp_path, capsys):
    run = tmp_path / "new"
    assert main(["train", *TINY_FLAGS, "--steps", "2", "--out", str(run), "--resume"]) == 0
    assert f"note: {run} holds no run yet; starting a new one from the flags given" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 2


def test_a_run_made_before_a_setting_existed_resumes_with_what_it_was_trained_with(tmp_path):
    """Runs written before ``nppc_variance_fit`` existed trained the absolute NPPC fit; the default
    is now the relative one, so their ``config.json`` (without the field) must resume as absolute."""
    from invfussion.training.loop import resume_config

    (tmp_path / "config.json").write_text(json.dumps({"train": {"objective": "nppc", "pcs": 2}}))
    cfg, _ = resume_config(tmp_path, {})
    assert cfg.nppc_variance_fit == "absolute" and cfg.objective == "nppc"
    cfg, _ = resume_config(tmp_path, {"steps": 50})  # a change it may take; the fit stays
    assert cfg.nppc_variance_fit == "absolute" and cfg.steps == 50
