"""The `invfussion` command end to end on a tiny checkpoint: outputs, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from invfussion.cli import main
from invfussion.training import TrainConfig, train

TINY_MODEL = {"widths": [32, 64], "depths": [1, 1], "d_head": 16, "mapping_width": 32, "logvar_channels": 16}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(TrainConfig(steps=2, batch_size=4, out=str(out), overrides=dict(TINY_MODEL), checkpoint_every=2, compile=False,
                      sample_every=10_000, log_every=1, device="cpu", amp="none", tensorboard=False,
                      num_workers=0))
    return out


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invfussion", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_help_lists_every_command():
    out = run_cli("--help").stdout
    for command in ("demo", "train", "restore", "sample", "evaluate", "prepare-data", "serve", "import-checkpoint"):
        assert command in out


def test_restore_writes_images_and_metrics(tiny_run, tmp_path):
    out = tmp_path / "restored"
    code = main(["restore", "--model", str(tiny_run), "--dataset-index", "3", "--degradation",
                 "inpaint-patches:size=4,keep=0.3", "--method", "posterior", "mmse", "--num-samples", "3",
                 "--steps", "2", "--uncertainty", "2", "--out", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())["methods"]
    assert set(metrics) == {"posterior", "mmse"}
    assert metrics["posterior"]["nfe"] == 3 and metrics["mmse"]["nfe"] == 1
    assert np.isfinite(metrics["posterior"]["psnr"])
    for name in ("reference", "pinv", "posterior-000", "posterior-002", "mmse", "grid", "posterior-std",
                 "posterior-pc1-plus"):
        assert (out / f"{name}.png").is_file(), name


def test_restore_and_evaluate_lmmse_and_posterior_mean(tiny_run, tmp_path):
    """lmmse is the closed form under the training digits' Gaussian (NFE 0, any model, here the
    tiny run trained on "mnist"); posterior-mean is one image costing n samples' NFE."""
    from invfussion import degradations as deg
    from invfussion import sampling
    from invfussion.data import load_mnist
    from invfussion.metrics import psnr

    out = tmp_path / "restored"
    assert main(["restore", "--model", str(tiny_run), "--dataset-index", "3", "--degradation", "matrix:rows=64",
                 "--method", "lmmse", "posterior-mean", "--num-samples", "3", "--steps", "2", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["methods"]
    assert metrics["lmmse"]["nfe"] == 0 and metrics["posterior-mean"]["nfe"] == 3 * 3
    assert (out / "lmmse.png").is_file() and (out / "posterior-mean.png").is_file()
    x = load_mnist("test")[0][3:4]
    op = deg.from_spec("matrix:rows=64", (1, 32, 32), batch=1, seed=0)
    prior = sampling.GaussianPrior.fit(load_mnist("train")[0])
    expected = sampling.lmmse(prior, op, op.measure(x, seed=0))
    assert metrics["lmmse"]["psnr"] == pytest.approx(float(psnr(expected, x)), abs=1e-4)

    results = tmp_path / "results.json"
    assert main(["evaluate", "--models", f"tiny={tiny_run}", "--degradations", "matrix", "--num-images", "10",
                 "--methods", "tiny:lmmse", "--out", str(results)]) == 0
    (cell,) = json.loads(results.read_text())["cells"].values()
    assert cell["nfe"] == 0 and cell["fd"] is not None and cell["c_fd"] is not None


def test_nppc_trains_from_a_diffusion_run_and_restores(tiny_run, tmp_path):
    from invfussion import degradations as deg
    from invfussion import models

    run = tmp_path / "nppc"
    code = main(["train", "--no-compile", "--objective", "nppc", "--pcs", "2", "--init-from", str(tiny_run), "--steps", "2",
                 "--batch-size", "4", "--degradations", "inpaint-box", "inpaint-patches", "--checkpoint-every", "2",
                 "--log-every", "1", "--device", "cpu", "--amp", "none", "--num-workers", "0",
                 "--model-overrides", json.dumps(TINY_MODEL), "--out", str(run)])
    assert code == 0
    net, source = models.build("mnist32", "invfussion", pcs=2, noise_conditioning=True, **TINY_MODEL), models.load(tiny_run)
    models.initialize_from(net, tiny_run)  # the run's starting point: the source's denoiser exactly
    op = deg.from_spec("inpaint-box", image_shape=(1, 32, 32), batch=2, seed=0)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x, torch.tensor([1.0, 3.0]), op=op, y=op.A(x)), source(x, torch.tensor([1.0, 3.0]), op=op, y=op.A(x)))
    out = tmp_path / "restored"
    assert main(["restore", "--model", str(run), "--dataset-index", "3", "--degradation", "inpaint-box",
                 "--method", "nppc", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["methods"]["nppc"]["nfe"] == 1
    for name in ("nppc", "nppc-pc0-minus", "nppc-pc1-plus"):
        assert (out / f"{name}.png").is_file(), name
    result = run_cli("restore", "--model", str(tiny_run), "--dataset-index", "3", "--degradation", "inpaint-box",
                     "--method", "nppc", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "principal-component head")


def test_nppc_training_errors_are_one_line(tiny_run, tmp_path):
    common = ("train", "--no-compile", "--steps", "1", "--batch-size", "2", "--device", "cpu", "--model-overrides", json.dumps(TINY_MODEL))
    result = run_cli(*common, "--objective", "nppc", "--out", str(tmp_path / "a"))
    assert_one_line_error(result, "--pcs K")
    result = run_cli(*common, "--conditioning", "palette", "--objective", "nppc", "--pcs", "2",
                     "--init-from", str(tiny_run), "--out", str(tmp_path / "b"))
    assert_one_line_error(result, "different architecture")


def test_missing_input_file(tiny_run, tmp_path):
    result = run_cli("restore", "--model", str(tiny_run), "--input", str(tmp_path / "nope.png"),
                     "--degradation", "matrix", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "does not exist")


def test_bad_spec(tiny_run, tmp_path):
    result = run_cli("restore", "--model", str(tiny_run), "--dataset-index", "0", "--degradation",
                     "motion-blur:stride=3", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "stride")
    result = run_cli("restore", "--model", str(tiny_run), "--dataset-index", "0", "--degradation",
                     "telepathy", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "telepathy")


def test_restore_input_takes_the_shared_image_path_with_a_note_per_conversion(tiny_run, tmp_path, capsys):
    """Colour → grey, another size → centre crop and resize, --range → a window: as prepare-data and
    the web page do; a NaN image is told what is wrong, not to pass a valid file."""
    path = tmp_path / "rgb.png"
    Image.fromarray(np.full((32, 32, 3), (255, 0, 0), dtype=np.uint8)).save(path)
    restore = ["restore", "--model", str(tiny_run), "--degradation", "matrix", "--method", "mmse", "--out", str(tmp_path / "o")]
    assert main([*restore, "--input", str(path)]) == 0
    assert "note: converted the colour image to grayscale" in capsys.readouterr().out
    assert np.asarray(Image.open(tmp_path / "o" / "reference.png")).max() == 76  # the luma of red
    Image.new("L", (30, 40), 255).save(path)
    assert main([*restore, "--input", str(path)]) == 0
    assert f"note: resized the 30×40 image to 32×32 after cropping its centred square ({path})" in capsys.readouterr().out
    assert np.asarray(Image.open(tmp_path / "o" / "reference.png")).min() == 255
    tiff = tmp_path / "ct.tif"
    Image.fromarray(np.full((32, 32), 2.0, dtype=np.float32)).save(tiff)
    assert_one_line_error(run_cli(*restore, "--input", str(tiff)), "beyond the [0, 1] of its type", "--range MIN,MAX")
    assert main([*restore, "--input", str(tiff), "--range", "0,4"]) == 0
    assert np.asarray(Image.open(tmp_path / "o" / "reference.png")).max() == 128  # 2 in [0, 4]
    Image.fromarray(np.full((32, 32), np.nan, dtype=np.float32)).save(tiff)
    result = run_cli(*restore, "--input", str(tiff))
    assert_one_line_error(result, "holds NaN or infinite values; replace them")
    assert "valid" not in result.stderr


def test_corrupt_image_and_checkpoint(tiny_run, tmp_path):
    bad_image = tmp_path / "bad.png"
    bad_image.write_bytes(b"not a png at all")
    result = run_cli("restore", "--model", str(tiny_run), "--input", str(bad_image), "--degradation", "matrix",
                     "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "cannot read")
    weights = sorted((tiny_run / "checkpoints").glob("*.safetensors"))[-1]
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(weights.read_bytes()[:100])
    corrupt.with_suffix(".json").write_text(weights.with_suffix(".json").read_text())
    result = run_cli("restore", "--model", str(corrupt), "--dataset-index", "0", "--degradation", "matrix",
                     "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "corrupt")


def test_uncertainty_needs_several_samples(tiny_run, tmp_path):
    result = run_cli("restore", "--model", str(tiny_run), "--dataset-index", "0", "--degradation", "matrix",
                     "--num-samples", "1", "--steps", "2", "--uncertainty", "1", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "at least 2 samples")


def test_unknown_model_name(tmp_path):
    result = run_cli("restore", "--model", "no-such-model", "--dataset-index", "0", "--degradation", "matrix",
                     "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "no-such-model")


def test_evaluate_resumes_from_cached_cells(tiny_run, tmp_path, capsys):
    out = tmp_path / "results.json"
    common = ["evaluate", "--models", f"tiny={tiny_run}", "--degradations", "matrix", "--num-images", "10",
              "--batch-size", "5", "--steps", "2", "--out", str(out)]
    assert main(common + ["--methods", "tiny:mmse"]) == 0
    first = json.loads(out.read_text())["cells"]
    (cell,) = first.values()
    assert cell["nfe"] == 1 and cell["images"] == 10 and cell["c_fd"] is not None
    err = capsys.readouterr().err
    assert "note: FD and C-FD come from only 10 images" in err and "came from" not in err
    # Adding a method computes only the new cell; the finished one is reused as it was, and said so.
    assert main(common + ["--methods", "tiny:mmse", "tiny:ddnm"]) == 0
    assert f"note: 1 cell(s) came from {out}, computed by an earlier run with these settings (tiny:mmse @ matrix)" in (
        capsys.readouterr().err)
    second = json.loads(out.read_text())["cells"]
    assert len(second) == 2 and all(second[k] == v for k, v in first.items())
    assert next(c for c in second.values() if c["method"] == "ddnm")["nfe"] == 2
    # Other settings on the same file are refused with one line.
    result = run_cli(*common[:-4], "--steps", "3", "--out", str(out), "--methods", "tiny:mmse")
    assert_one_line_error(result, "other settings")


def test_evaluate_on_validation_digits_keeps_its_own_cells(tiny_run, tmp_path, capsys):
    common = ["evaluate", "--models", f"tiny={tiny_run}", "--degradations", "matrix", "--num-images", "10",
              "--methods", "tiny:mmse", "--out"]
    assert main(common + [str(tmp_path / "test.json")]) == 0
    assert main(common + [str(tmp_path / "validation.json"), "--split", "validation"]) == 0
    test = json.loads((tmp_path / "test.json").read_text())
    validation = json.loads((tmp_path / "validation.json").read_text())
    assert test["spec"]["split"] == "test" and validation["spec"]["split"] == "validation"
    (on_test,), (on_validation,) = test["cells"].values(), validation["cells"].values()
    assert on_test["psnr"] != on_validation["psnr"]  # other digits
    # Cells of one split are never reused for the other; a file written before splits existed is test.
    assert main(common + [str(tmp_path / "test.json"), "--split", "validation"]) == 2
    assert "other settings" in capsys.readouterr().err
    del test["spec"]["split"]
    (tmp_path / "test.json").write_text(json.dumps(test))
    assert main(common + [str(tmp_path / "test.json")]) == 0
    assert json.loads((tmp_path / "test.json").read_text())["cells"] == test["cells"]


def test_demo_on_the_shipped_model(tmp_path):
    """The README's main job, on two digits: it loads the shipped model offline and writes the grid."""
    result = run_cli("demo", "--num-images", "2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    image = Image.open(tmp_path / "demo.png")
    assert image.size[1] > 4 * 2 * 32  # four degradations × two digits
    for family in ("motion-blur", "inpaint-patches", "matrix", "outpaint-box"):
        assert f"| {family} |" in result.stdout


def test_consistent_flag_writes_the_projected_rows_beside_the_plain_ones(tiny_run, tmp_path, capsys):
    out = tmp_path / "restored"
    assert main(["restore", "--model", str(tiny_run), "--dataset-index", "3", "--degradation", "inpaint-box",
                 "--method", "mmse", "--consistent", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["methods"]
    assert set(metrics) == {"mmse", "mmse+consistent"} and metrics["mmse+consistent"]["nfe"] == 1
    assert metrics["mmse+consistent"]["consistency"] < 1e-8 and (out / "mmse+consistent.png").is_file()
    assert metrics["mmse+consistent"]["psnr"] >= metrics["mmse"]["psnr"]  # a projection containing the truth

    results = tmp_path / "results.json"
    common = ["evaluate", "--models", f"tiny={tiny_run}", "--degradations", "matrix", "--num-images", "10",
              "--batch-size", "5", "--methods", "tiny:mmse", "--out", str(results)]
    assert main(common) == 0
    (plain,) = json.loads(results.read_text())["cells"].values()
    capsys.readouterr()
    assert main([*common, "--consistent"]) == 0  # the plain cell keeps its key; the new row is added
    cells = json.loads(results.read_text())["cells"]
    assert set(cells) == {"tiny:mmse @ matrix", "tiny:mmse+consistent @ matrix"}
    assert {k: v for k, v in cells["tiny:mmse @ matrix"].items() if k != "seconds_per_image"} == {
        k: v for k, v in plain.items() if k != "seconds_per_image"
    }
    consistent = cells["tiny:mmse+consistent @ matrix"]
    assert consistent["method"] == "mmse+consistent" and consistent["nfe"] == plain["nfe"]
    assert consistent["consistency"] < 1e-8 < plain["consistency"] and consistent["psnr"] >= plain["psnr"]
    table = capsys.readouterr().out
    assert "| tiny:mmse |" in table and "| tiny:mmse+consistent |" in table


def test_noise_outside_the_trained_range_is_one_note_and_still_answers(tmp_path, capsys):
    from invfussion import degradations as deg
    from invfussion import models
    from invfussion.restoration import noise_note

    net = models.load("mnist32-invfussion")  # trained on the default noisy mixture
    assert net.trained_noise == "0:0.2,zero=0.5"
    op = deg.from_spec("matrix:noise=0.1", (1, 32, 32), batch=1)
    assert noise_note(net, op) is None and noise_note(net, deg.from_spec("matrix", (1, 32, 32), batch=1)) is None
    assert "above the noise this model was trained on" in noise_note(net, op.with_noise_std(torch.full((1,), 0.3)))
    net.trained_noise = "0"
    assert "trained on noiseless measurements" in noise_note(net, op)
    assert main(["restore", "--model", "mnist32-invfussion", "--dataset-index", "3", "--degradation",
                 "inpaint-box:noise=0.3", "--method", "mmse", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.count("above the noise this model was trained on") == 1
    assert main(["restore", "--model", "mnist32-invfussion", "--dataset-index", "3", "--degradation",
                 "inpaint-box:noise=-1", "--method", "mmse", "--out", str(tmp_path)]) != 0
    assert "noise" in capsys.readouterr().err.splitlines()[-1]
    # evaluate notes it per model and degradation, but not for lmmse, which never calls the network
    out = tmp_path / "eval.json"
    common = ["evaluate", "--models", "m=mnist32-invfussion", "--degradations", "inpaint-box:noise=0.3",
              "--num-images", "2", "--split", "validation", "--out", str(out), "--methods", "m:lmmse"]
    assert main(common) == 0 and json.loads(out.read_text())["notes"] == []
    assert main([*common, "m:mmse"]) == 0
    assert [n.split(": ", 1) for n in json.loads(out.read_text())["notes"]] == [
        ["m @ inpaint-box:noise=0.3", noise_note(models.load("mnist32-invfussion"), deg.from_spec("inpaint-box:noise=0.3", (1, 32, 32), batch=1))]]


def test_bad_training_recipe_values_are_one_line(tmp_path):
    """``--noise`` that is not a noise-levels text and ``--mmse-share`` outside [0, 1]."""
    common = ("train", "--steps", "1", "--out", str(tmp_path / "run"))
    assert_one_line_error(run_cli(*common, "--noise", "loud"), "cannot read noise levels 'loud'")
    assert_one_line_error(run_cli(*common, "--noise", "0.2:0.1"), "noise levels")
    assert_one_line_error(run_cli(*common, "--mmse-share", "1.5"), "mmse_share must lie in [0, 1]")
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_evaluate_takes_the_posterior_solver_and_keeps_it_in_the_results_identity(tmp_path):
    from invfussion.cli import build_parser
    from invfussion.sampling.solvers import SOLVERS

    out = tmp_path / "nfe.json"
    common = ["evaluate", "--models", "m=mnist32-invfussion", "--methods", "m:posterior", "--degradations", "matrix",
              "--num-images", "2", "--split", "validation", "--steps", "3", "--out", str(out)]
    assert main([*common, "--solver", "dpmpp2m"]) == 0
    record = json.loads(out.read_text())
    assert record["spec"]["solver"] == "dpmpp2m" and record["cells"]["m:posterior @ matrix"]["nfe"] == 3
    assert_one_line_error(run_cli(*common, "--solver", "heun"), "made with other settings")
    evaluate = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    assert set(next(a for a in evaluate._actions if a.dest == "solver").choices) == set(SOLVERS)


def test_train_command_reproduces_a_runs_config(tiny_run):
    """A run's config.json → `invfussion train` arguments → the same TrainConfig (resume aside)."""
    import dataclasses

    from invfussion.cli import build_parser, train_command, train_config

    recorded = json.loads((tiny_run / "config.json").read_text())["train"]
    recorded |= {"conditioning": "palette", "degradations": ["matrix", "motion-blur:stride=2"], "xflip": True,
                 "measurement_noise": "0.1", "lr": 4e-4, "num_workers": 0, "resume": True}
    command = train_command(recorded)
    assert "--resume" not in command and command[command.index("--noise") + 1] == "0.1"
    rebuilt = train_config(build_parser().parse_args(["train", *command]))
    assert dataclasses.replace(rebuilt, resume=True, tensorboard=False) == TrainConfig(**recorded)
    with pytest.raises(ValueError, match="p_std=2.0 has no invfussion train flag"):
        train_command({**recorded, "p_std": 2.0})


def test_evaluate_data_is_read_like_restore_input_with_notes(tiny_run, tmp_path, capsys):
    """Colour images of another size are converted and resized for the model, each kind noted once."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 30, 3), (0, 40 * i, 200), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "r.json"
    assert main(["evaluate", "--models", f"tiny={tiny_run}", "--methods", "tiny:mmse", "--degradations", "matrix",
                 "--data", str(folder), "--num-images", "3", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"note: {folder}: converted the colour image to grayscale (3 of 3 images)" in err
    assert f"note: {folder}: resized the 30×40 image to 32×32 after cropping its centred square (3 of 3 images)" in err
    assert json.loads(out.read_text())["cells"]["tiny:mmse @ matrix"]["images"] == 3


def test_restore_defaults_to_data_consistency_on_a_rich_matrix(tiny_run, tmp_path):
    out = tmp_path / "rich"
    result = run_cli("restore", "--model", str(tiny_run), "--dataset-index", "3", "--degradation", "matrix:rows=128",
                     "--num-samples", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "sampling with mmse+dps" in result.stderr
    methods = json.loads((out / "metrics.json").read_text())["methods"]
    assert set(methods) >= {"mmse+dps", "mmse"} and methods["mmse+dps"]["nfe"] == 101


def test_restore_without_method_samples_with_the_default_sampler_and_says_why(tiny_run, tmp_path, capsys):
    """Noiseless motion blur: ``mmse+ddnm`` and ``mmse`` are written, and one note names the rule."""
    out = tmp_path / "blur"
    assert main(["restore", "--model", str(tiny_run), "--dataset-index", "3", "--degradation", "motion-blur",
                 "--num-samples", "2", "--out", str(out)]) == 0
    assert set(json.loads((out / "metrics.json").read_text())["methods"]) == {"mmse+ddnm", "mmse"}
    notes = [line for line in capsys.readouterr().err.splitlines() if "data consistency pays" in line]
    assert notes == ["note: sampling with mmse+ddnm: noiseless motion blur, where data consistency pays "
                     "(BENCHMARKS.md, issue 27); --method posterior for the plain sampler"]
