import importlib
import json

import pytest
import torch
from tiny_runs import tiny_config

from invfussion.models.load import export_model, load, model_card
from invfussion.training import train
from invfussion.training.checkpoint import unprefixed

load_module = importlib.import_module("invfussion.models.load")  # the package re-exports the function `load`


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(tiny_config(out, steps=3, checkpoint_every=3))
    return out


def ema_and_raw(run_dir):
    from safetensors.torch import load_file

    tensors = load_file(str(run_dir / "checkpoints" / "step-0000003.safetensors"))
    return unprefixed("ema.", tensors), unprefixed("net.", tensors)


def test_load_run_directory_and_checkpoint_file(run_dir):
    ema, raw = ema_and_raw(run_dir)
    for source in (run_dir, run_dir / "checkpoints" / "step-0000003.safetensors", str(run_dir)):
        net = load(source)
        assert not net.training and not any(p.requires_grad for p in net.parameters())
        assert all(torch.equal(net.state_dict()[k], ema[k]) for k in ema)
    raw_net = load(run_dir, ema=False)
    assert all(torch.equal(raw_net.state_dict()[k], raw[k]) for k in raw)
    x = torch.randn(2, 1, 32, 32)
    assert net(x, torch.ones(2)).shape == x.shape  # ready to denoise


def test_exported_model_loads_by_shipped_name(run_dir, tmp_path, monkeypatch):
    card = {"command": "invfussion train ...", "steps": 3}
    stem = tmp_path / "assets" / "mnist32-invfussion"
    weights = export_model(run_dir, stem, card)
    monkeypatch.setattr(load_module, "_asset", lambda name: tmp_path / "assets" / f"{name}.safetensors")
    assert load_module.shipped_models() == ["mnist32-invfussion"]
    net = load("mnist32-invfussion")
    ema, _ = ema_and_raw(run_dir)
    for key, value in ema.items():  # float16 storage, float32 network
        assert net.state_dict()[key].dtype == torch.float32
        assert torch.allclose(net.state_dict()[key], value, atol=1e-3, rtol=1e-3)
    assert model_card("mnist32-invfussion") == card
    record = json.loads(weights.with_suffix(".json").read_text())
    assert record["source"]["step"] == 3 and record["model"]["conditioning"] == "invfussion"
    with pytest.raises(ValueError, match="only EMA weights"):
        load("mnist32-invfussion", ema=False)
    with pytest.raises(FileNotFoundError, match="not part of this installation"):
        load("mnist32-palette")


def test_unknown_or_broken_models_are_clear_errors(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no model named"):
        load("mnist64-nothing")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"garbage")
    broken.with_suffix(".json").write_text("{}")
    with pytest.raises(ValueError, match="corrupt"):
        load(broken)
