"""`prepare-data`: one channel count, high bit depth kept, a report, --strict, nothing half-written."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from invfussion import data
from invfussion.cli import main
from invfussion.data import prepare


def ramp16(size: int = 64) -> np.ndarray:
    """``(size, size)`` uint16 covering 0..65535 with distinct values, both ends included."""
    values = np.linspace(0, 65535, size * size).round().astype(np.uint16)
    return values.reshape(size, size)


def mixed_folder(root, size: int = 16):
    """One image of each common mode (and a text file, which is not an image)."""
    root.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (255, 0, 0)).save(root / "a_rgb.png")
    Image.new("RGBA", (size, size), (0, 255, 0, 51)).save(root / "b_rgba.png")
    palette = Image.new("P", (size, size))
    palette.putpalette([0, 0, 255])
    palette.save(root / "c_palette.bmp")
    Image.new("L", (size, size), 51).save(root / "d_grey.jpg", quality=100)
    Image.new("CMYK", (size, size), (0, 255, 255, 0)).save(root / "e_cmyk.tif")
    Image.fromarray(ramp16(size)).save(root / "f_grey16.png")
    (root / "notes.txt").write_text("not an image")


def test_a_16_bit_ramp_survives_prepare_data_and_loading(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(ramp16()).save(src / "ct.png")
    report = data.prepare_data(src, tmp_path / "d.zip", resolution=64, progress=False)
    assert report.written == 1 and report.channels == 1 and not report.converted
    with zipfile.ZipFile(tmp_path / "d.zip") as archive, archive.open("00000000.png") as member:
        assert Image.open(member).mode == "I;16"
    x, _ = data.open_dataset(tmp_path / "d.zip")[0]
    expected = torch.from_numpy(ramp16()).double() / 65535
    assert ((x.double()[0] + 1) / 2 - expected).abs().max() <= 1 / 65535
    assert torch.equal(((x.double()[0] + 1) / 2 * 65535).round(), expected * 65535)  # every level exact


def test_a_window_maps_12_bit_data_to_the_full_range(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ramp12 = (ramp16() // 16).astype(np.uint16)  # 0..4095 in a 16-bit file
    Image.fromarray(ramp12).save(src / "mri.png")
    data.prepare_data(src, tmp_path / "d.zip", resolution=64, value_range=(0, 4095), progress=False)
    x, _ = data.open_dataset(tmp_path / "d.zip")[0]
    assert torch.allclose((x[0].double() + 1) / 2, torch.from_numpy(ramp12 / 4095), atol=1 / 65535)


def test_a_mixed_folder_gives_one_channel_count_with_converted_values(tmp_path):
    mixed_folder(tmp_path / "src")
    report = data.prepare_data(tmp_path / "src", tmp_path / "d.zip", resolution=8, progress=False)
    assert report.channels == 3 and report.written == 6 and not report.skipped
    assert report.converted == {"alpha": 1, "palette": 1, "CMYK": 1, "grey→RGB": 2, "resized": 6}
    dataset = data.open_dataset(tmp_path / "d.zip")
    assert dataset.image_shape == (3, 8, 8)
    first = [((dataset[i][0][:, 4, 4] + 1) / 2).tolist() for i in range(len(dataset))]
    expected = [[1, 0, 0], [0, 0.2, 0], [0, 0, 1], [0.2] * 3, [1, 0, 0]]
    np.testing.assert_allclose(first[:5], expected, atol=1 / 255)
    assert len(set(np.round(first[5], 6))) == 1  # the 16-bit grey, stored grey and repeated to RGB
    with zipfile.ZipFile(tmp_path / "d.zip") as archive:
        assert json.loads(archive.read("dataset.json")) == {"labels": None, "channels": 3}
    forced = data.prepare_data(tmp_path / "src", tmp_path / "g.zip", resolution=8, channels=1, progress=False)
    assert forced.channels == 1 and forced.converted["colour→grey"] == 4
    assert data.open_dataset(tmp_path / "g.zip").image_shape == (1, 8, 8)


def test_a_grey_folder_stays_grey_and_the_folder_loader_follows_the_same_rules(tmp_path):
    src = tmp_path / "src"
    mixed_folder(src, size=8)
    folder = data.open_dataset(src)
    assert folder.channels == 3 and all(folder[i][0].shape == (3, 8, 8) for i in range(len(folder)))
    for path in src.iterdir():
        if path.name[0] in "abce":
            path.unlink()
    report = data.prepare_data(src, tmp_path / "d.zip", resolution=8, progress=False)
    assert report.channels == 1 and "every image is grey" in report.summary()


def test_bad_files_are_skipped_and_reported_and_strict_fails_on_them(tmp_path, capsys):
    src = tmp_path / "src"
    mixed_folder(src, size=8)
    (src / "empty.png").write_bytes(b"")
    (src / "garbage.jpg").write_bytes(b"this is not a jpeg")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(src / "truncated.png")
    whole = (src / "truncated.png").read_bytes()
    (src / "truncated.png").write_bytes(whole[: len(whole) // 2])
    dest = tmp_path / "d.zip"
    assert main(["prepare-data", str(src), str(dest), "--resolution", "8"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("wrote 6 images") and "with 3 channels (a_rgb.png has colour" in line
    assert "skipped: 1 corrupt or truncated, 1 empty, 1 not an image (empty.png, garbage.jpg, truncated.png; " in line
    assert f"all listed with reasons in {dest}.skipped.txt)" in line
    listed = (tmp_path / "d.zip.skipped.txt").read_text().splitlines()
    assert [entry.split(": ", 1)[0] for entry in listed] == [str(src / n) for n in ("empty.png", "garbage.jpg", "truncated.png")]
    assert "the file is empty" in listed[0]
    assert "converted: 1 CMYK, 1 alpha, 2 grey→RGB, 1 palette" in line
    assert len(data.open_dataset(dest)) == 6
    strict = subprocess.run(
        [sys.executable, "-m", "invfussion", "prepare-data", str(src), str(tmp_path / "s.zip"),
         "--resolution", "8", "--strict"],
        capture_output=True, text=True, timeout=120,
    )
    (message,) = strict.stderr.strip().splitlines()
    assert strict.returncode != 0 and "empty.png" in message and "drop --strict" in message
    assert not list(tmp_path.glob("s.zip*"))


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--range", "0-4095"], "MIN,MAX"), (["--channels", "2"], "1 (grey) or 3"), ([], "does not exist")],
)
def test_bad_options_are_one_line(tmp_path, args, words):
    src = tmp_path / "src" if words != "does not exist" else tmp_path / "missing"
    mixed_folder(tmp_path / "src", size=8)
    result = subprocess.run(
        [sys.executable, "-m", "invfussion", "prepare-data", str(src), str(tmp_path / "d.zip"),
         "--resolution", "8", *args],
        capture_output=True, text=True, timeout=120,
    )
    (message,) = result.stderr.strip().splitlines()
    assert result.returncode != 0 and words in message


def test_an_interrupted_run_leaves_nothing_half_written(tmp_path, monkeypatch):
    mixed_folder(tmp_path / "src", size=8)
    dest = tmp_path / "out" / "d.zip"
    dest.parent.mkdir()
    dest.write_bytes(b"the previous dataset")
    calls = []

    def interrupted(image):
        calls.append(image)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(image)

    real = prepare.encode_png
    monkeypatch.setattr(prepare, "encode_png", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.prepare_data(tmp_path / "src", dest, resolution=8, progress=False)
    assert [p.name for p in dest.parent.iterdir()] == ["d.zip"]
    assert dest.read_bytes() == b"the previous dataset"
