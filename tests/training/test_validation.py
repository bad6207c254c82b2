"""Validation during training: fixed figures of the EMA network that leave the training untouched."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_runs import TINY_MODEL, assert_same_tensors, checkpoint_tensors, tiny_config

from invfussion import data, models
from invfussion import degradations as deg
from invfussion.cli import build_parser, train_config
from invfussion.training import train
from invfussion.training.validation import LOSS_SIGMAS, MMSE_IMAGES, Validator, build_validator, headline

LOSS_KEYS = {f"val/loss@sigma={s:g}" for s in LOSS_SIGMAS} | {"val/loss"}


def logged(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def family_keys(kind: str, specs) -> set[str]:
    return {f"val/{kind}/{spec}" for spec in specs} | {f"val/{kind}"}


def test_validation_changes_no_weight_and_logs_its_figures(tmp_path):
    plain = train(tiny_config(tmp_path / "plain", steps=4, checkpoint_every=4))
    validated = train(tiny_config(tmp_path / "validated", steps=4, checkpoint_every=4, val_every=2))
    assert_same_tensors(checkpoint_tensors(plain), checkpoint_tensors(validated))
    assert not any("val/loss" in r for r in logged(tmp_path / "plain"))
    records = [r for r in logged(tmp_path / "validated") if "val/seconds" in r]
    assert [r["step"] for r in records] == [2, 4]
    specs = deg.Mixture.paper().specs
    expected = {"step", "val/seconds"} | LOSS_KEYS | family_keys("mmse_psnr", specs)
    expected |= family_keys("posterior_psnr", specs)
    for record in records:
        assert set(record) == expected and all(math.isfinite(v) for v in record.values())
    assert records[0]["val/loss"] != records[1]["val/loss"]  # the EMA network moved
    # Validation may be turned on when a run is resumed, and still changes nothing.
    as_tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in TINY_MODEL.items()}
    train(tiny_config(tmp_path / "split", steps=2, checkpoint_every=2))
    resumed = train(tiny_config(tmp_path / "split", steps=4, checkpoint_every=2, resume=True, val_every=2,
                                overrides=as_tuples))
    assert_same_tensors(checkpoint_tensors(plain), checkpoint_tensors(resumed))
    assert [r["step"] for r in logged(tmp_path / "split") if "val/seconds" in r] == [4]


@pytest.mark.parametrize("mixture,objective,kinds", [
    (deg.Mixture(["matrix", "inpaint-patches"]), "diffusion", ("loss", "mmse_psnr", "posterior_psnr")),
    (deg.Mixture(["motion-blur"]), "mmse", ("mmse_psnr",)),
    (None, "diffusion", ("loss",)),
])
def test_figures_are_fixed_and_leave_the_global_generator_alone(mixture, objective, kinds):
    torch.manual_seed(1)
    conditioning = "unconditional" if mixture is None else "invfussion"
    net = models.build("mnist32", conditioning, **TINY_MODEL).eval()
    state = torch.get_rng_state()
    validator = build_validator("mnist", None, (1, 32, 32), 0, mixture, objective, 0.5, 100.0, torch.device("cpu"))
    first, second = validator(net), validator(net)
    assert torch.equal(state, torch.get_rng_state())
    assert validator.images.shape == (MMSE_IMAGES, 1, 32, 32)
    first.pop("val/seconds"), second.pop("val/seconds")
    assert first == second
    specs = [] if mixture is None else mixture.specs
    expected = (LOSS_KEYS if "loss" in kinds else set()) | set().union(
        *(family_keys(kind, specs) for kind in kinds if kind != "loss"))
    assert set(first) == expected
    assert headline(first) == ({"val_psnr": f"{first['val/mmse_psnr']:.2f}"} if mixture else
                               {"val_loss": f"{first['val/loss']:.4f}"})


def test_subsets_see_the_same_operators_and_noise():
    """A (family, image) pair is the same whatever else is validated: the posterior's few images
    are measured exactly as in the full MMSE set."""
    images = data.load_mnist("validation")[0][:12]
    validator = Validator(images, None, deg.Mixture(["matrix:noise=0.1", "motion-blur"]), "diffusion", 0.5, 100.0)
    big, small = validator.mmse_cases, validator.posterior_cases
    ((op_big, y_big, rows_big),), ((op_small, y_small, rows_small),) = big.chunks, small.chunks
    assert rows_big == list(range(12)) * 2 and len(rows_small) == 20 and small.per_family == 10
    for b_small, row in enumerate(rows_small):
        b_big = b_small // 10 * 12 + row  # the same family, the same image
        assert torch.equal(y_small[b_small], y_big[b_big])
        assert torch.allclose(op_small.pinv(y_small)[b_small], op_big.pinv(y_big)[b_big])
    assert not torch.equal(y_big[0], y_big[1])  # images (and their operators) differ


def _write_pngs(folder, count: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), "L").save(folder / f"{i}.png")


def test_own_data_validates_on_val_data_only(tmp_path, capsys):
    _write_pngs(tmp_path / "train", 8)
    _write_pngs(tmp_path / "held", 3)
    common = dict(data=str(tmp_path / "train"), steps=2, checkpoint_every=2, val_every=2, conditioning="unconditional")
    train(tiny_config(tmp_path / "a", **common))
    err = capsys.readouterr().err
    assert err.count("validation skipped") == 1 and "--val-data PATH" in err
    assert not any("val/seconds" in r for r in logged(tmp_path / "a"))
    train(tiny_config(tmp_path / "b", val_data=str(tmp_path / "held"), **common))
    (record,) = [r for r in logged(tmp_path / "b") if "val/seconds" in r]
    assert set(record) == {"step", "val/seconds"} | LOSS_KEYS and record["step"] == 2
    with pytest.raises(ValueError, match="val_every must be ≥ 0"):
        tiny_config(tmp_path, val_every=-1).validate()


def test_cli_passes_the_validation_options():
    args = build_parser().parse_args(["train", "--out", "run", "--val-every", "500", "--val-data", "held"])
    assert args.val_every == 500 and args.val_data == "held"
    assert train_config(build_parser().parse_args(["train", "--out", "run"])).val_every == 0  # left out: the default
