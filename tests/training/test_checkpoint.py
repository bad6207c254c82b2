import json

import pytest
import torch

from invfussion.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    optimizer_state_from_safe,
    optimizer_state_to_safe,
    resolve_checkpoint,
    save_checkpoint,
)


def tensors(value: float) -> dict[str, torch.Tensor]:
    return {"net.w": torch.full((2, 3), value), "ema.w": torch.full((2, 3), value / 2), "net.n": torch.tensor([7])}


def test_round_trip_latest_pointer_and_pruning(tmp_path):
    for step in (10, 20, 30, 40):
        path = save_checkpoint(tmp_path, step, tensors(step), {"images_seen": step * 8}, keep=2)
    assert path.name == "step-0000040.safetensors"
    assert latest_checkpoint(tmp_path) == path
    remaining = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert remaining == ["latest", "step-0000030.json", "step-0000030.safetensors", "step-0000040.json", "step-0000040.safetensors"]
    loaded, record, where = load_checkpoint(tmp_path)
    assert where == path and record["step"] == 40 and record["images_seen"] == 320
    assert all(torch.equal(loaded[k], v) for k, v in tensors(40).items())
    # a checkpoint file, its JSON and the checkpoints folder all resolve to the same file
    assert resolve_checkpoint(path.with_suffix(".json")) == path
    assert resolve_checkpoint(tmp_path / "checkpoints") == path
    assert latest_checkpoint(tmp_path / "elsewhere") is None


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        load_checkpoint(tmp_path)
    path = save_checkpoint(tmp_path, 1, tensors(1), {})
    path.with_suffix(".json").unlink()
    with pytest.raises(FileNotFoundError, match="no sibling"):
        load_checkpoint(path)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path, 1, tensors(1), {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path)
    path.write_bytes(b"\x00" * 64)  # garbage
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path)


def test_json_from_another_checkpoint_is_rejected(tmp_path):
    a = save_checkpoint(tmp_path / "a", 1, tensors(1), {})
    b = save_checkpoint(tmp_path / "b", 1, tensors(2), {})
    b.with_suffix(".json").write_text(a.with_suffix(".json").read_text())
    with pytest.raises(ValueError, match="does not belong"):
        load_checkpoint(b)
    b.with_suffix(".json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_checkpoint(b)


def test_dangling_latest_pointer(tmp_path):
    path = save_checkpoint(tmp_path, 5, tensors(1), {})
    path.unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        latest_checkpoint(tmp_path)


def test_optimizer_state_survives_safe_encoding():
    net = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.99), fused=True)
    net(torch.randn(5, 4)).square().sum().backward()
    opt.step()
    tensors_, rest = optimizer_state_to_safe(opt.state_dict())
    rest = json.loads(json.dumps(rest))  # what the checkpoint JSON stores
    fresh = torch.optim.Adam(torch.nn.Linear(4, 3).parameters(), lr=5.0, fused=True)
    fresh.load_state_dict(optimizer_state_from_safe(tensors_, rest))
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"] == 1e-3
    for param in a["state"]:
        for key, value in a["state"][param].items():
            assert torch.equal(value, b["state"][param][key])
