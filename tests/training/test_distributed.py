"""``torchrun --nproc_per_node=2`` (gloo on the CPU) trains the same model as one process with the
same global batch, and only rank 0 writes."""

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from tiny_runs import checkpoint_tensors, tiny_config

from invfussion.training import train

RUNNER = """
import json, sys, torch
torch.set_num_threads(1)
from invfussion.training import TrainConfig, train
train(TrainConfig(**json.loads(sys.argv[1])))
"""


@pytest.mark.slow
def test_two_process_gloo_run_equals_single_process(tmp_path):
    cfg = tiny_config(tmp_path / "ddp", steps=6, checkpoint_every=3, log_every=3, num_workers=1)
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              str(script), json.dumps(dataclasses.asdict(cfg))]
    result = subprocess.run(launch, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    single = train(dataclasses.replace(cfg, out=str(tmp_path / "single"), num_workers=0))
    ddp, ref = checkpoint_tensors(tmp_path / "ddp" / "checkpoints" / "step-0000006.safetensors"), checkpoint_tensors(single)
    assert ddp.keys() == ref.keys()
    # Equal up to the order of the float reduction of gradients: Adam's normalisation turns ~1e-7
    # gradient differences into weight differences of a few 1e-6 (one step moves up to lr = 1e-3).
    for key in ref:
        assert torch.allclose(ddp[key], ref[key], rtol=1e-3, atol=2e-5), key
    lines = (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [3, 6]  # rank 0 alone logs
    a = [json.loads(line)["loss"] for line in lines]
    b = [json.loads(line)["loss"] for line in (tmp_path / "single" / "log.jsonl").read_text().splitlines()]
    assert a == pytest.approx(b, rel=1e-4)
