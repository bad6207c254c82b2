"""A user's own colour images end to end: prepare-data → train (ffhq64, shrunk) → restore → evaluate."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from invfussion.cli import main

# The ffhq64 architecture (patch 2, neighbourhood then global attention, InvFussion blocks) at two
# narrow levels: widths divisible by patch²·3 (12 at patch 2, 48 at patch 4) keep the FDL on.
SHRUNK_FFHQ64 = {"widths": [24, 48], "depths": [1, 1], "attention": ["neighborhood", "global"], "d_head": 8,
                 "mapping_width": 32, "logvar_channels": 16, "dropout": 0.0}


def colour_folder(root, count: int = 24):
    """``count`` 64×64 images in turn RGB, RGBA, palette, grey, CMYK and 16-bit grey."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 64, dtype=np.float32)
    for i in range(count):
        colour = rng.uniform(0.2, 1.0, 3)
        rgb = (255 * ramp[None, :, None] * colour).astype(np.uint8).repeat(64, axis=0)
        image = Image.fromarray(rgb)
        kind = i % 6
        if kind == 1:
            image = Image.fromarray(np.dstack([rgb, np.full((64, 64), 200, np.uint8)]))
        elif kind == 2:
            image = image.quantize(16)
        elif kind == 3:
            image = image.convert("L")
        elif kind == 4:
            image = image.convert("CMYK")
        elif kind == 5:
            image = Image.fromarray((65535 * ramp[None, :] * colour[0]).repeat(64, axis=0).astype(np.uint16))
        image.save(root / f"{i:02d}.{'tif' if kind == 4 else 'png'}")


def test_own_colour_images_end_to_end(tmp_path, capsys):
    colour_folder(tmp_path / "faces")
    zip_path, run = tmp_path / "faces.zip", tmp_path / "run"
    assert main(["prepare-data", str(tmp_path / "faces"), str(zip_path), "--resolution", "64"]) == 0
    report = capsys.readouterr().out.strip().splitlines()[-1]
    assert report.startswith("wrote 24 images") and "with 3 channels" in report and "skipped: none" in report

    assert main(["train", "--no-compile", "--preset", "ffhq64", "--data", str(zip_path), "--model-overrides", json.dumps(SHRUNK_FFHQ64),
                 "--degradations", "inpaint-box", "inpaint-patches:size=8", "--steps", "2", "--batch-size", "4",
                 "--checkpoint-every", "2", "--sample-every", "100", "--log-every", "1", "--device", "cpu",
                 "--amp", "none", "--num-workers", "0", "--out", str(run)]) == 0

    Image.new("RGBA", (64, 64), (250, 120, 30, 255)).save(tmp_path / "colour.png")
    out = tmp_path / "restored"
    assert main(["restore", "--model", str(run), "--input", str(tmp_path / "colour.png"), "--degradation",
                 "inpaint-box", "--method", "mmse", "posterior", "--num-samples", "1", "--steps", "2",
                 "--out", str(out)]) == 0
    assert "composited the transparent parts on black" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())["methods"]
    assert np.isfinite(metrics["mmse"]["psnr"]) and np.isfinite(metrics["posterior"]["psnr"])
    assert Image.open(out / "reference.png").mode == "RGB"
    reference = np.asarray(Image.open(out / "reference.png"))
    assert (np.abs(reference.astype(int) - (250, 120, 30)) <= 1).all()

    results = tmp_path / "results.json"
    assert main(["evaluate", "--models", f"colour={run}", "--methods", "colour:mmse", "--degradations", "inpaint-box",
                 "--data", str(zip_path), "--num-images", "4", "--batch-size", "4", "--out", str(results)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("FD skipped:") and "--fd-weights" in printed.splitlines()[0]
    (cell,) = json.loads(results.read_text())["cells"].values()
    assert np.isfinite(cell["psnr"]) and cell["fd"] is None and cell["images"] == 4
    assert main(["evaluate", "--models", f"colour={run}", "--methods", "colour:mmse", "--degradations", "inpaint-box",
                 "--data", str(zip_path), "--num-images", "4", "--fd-weights", str(tmp_path / "missing.pth"),
                 "--out", str(tmp_path / "fd.json")]) == 2
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert "missing.pth does not exist" in error
