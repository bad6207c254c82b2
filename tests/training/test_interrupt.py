"""A run killed (SIGKILL) or stopped (SIGTERM) mid-training and resumed ends bitwise equal to an
uninterrupted run."""

import dataclasses
import json
import signal
import subprocess
import sys
import time

import pytest
from tiny_runs import assert_same_tensors, checkpoint_tensors, tiny_config

from invfussion.training import latest_checkpoint, train

# Runs the loop in a child process, slowed down so the test can interrupt it between checkpoints.
RUNNER = """
import json, sys, time, torch
torch.set_num_threads(1)
from invfussion.training import TrainConfig, train
from invfussion.training.loop import Trainer
step = Trainer._train_step
def slow_step(self, batch):
    time.sleep(0.3)
    return step(self, batch)
Trainer._train_step = slow_step
train(TrainConfig(**json.loads(sys.argv[1])))
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, sig):
    cfg = tiny_config(tmp_path / "interrupted", steps=20, checkpoint_every=5)
    child = subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(dataclasses.asdict(cfg))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while (latest_checkpoint(cfg.out) or tmp_path / "step-0000000").stem < "step-0000010":
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert child.returncode == 0, err[-2000:]
        assert "continue with --resume" in err
    else:
        assert child.returncode == -signal.SIGKILL, err[-2000:]
    stopped_at = latest_checkpoint(cfg.out)
    assert "step-0000010" <= stopped_at.stem < "step-0000020", err[-2000:]

    resumed = train(dataclasses.replace(cfg, resume=True))
    whole = train(tiny_config(tmp_path / "whole", steps=20, checkpoint_every=5))
    assert_same_tensors(checkpoint_tensors(whole), checkpoint_tensors(resumed))
