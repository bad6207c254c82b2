"""``invfussion serve`` over HTTP: bad requests get one-sentence JSON errors with a 4xx status,
valid jobs complete with the images and metrics the page shows."""

from __future__ import annotations

import base64
import io
import json
import socket
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from invfussion import models, restoration
from invfussion.sampling import consistency
from invfussion.cli import build_parser
from invfussion.serve import RestorationService
from invfussion.serve.service import load_nppc


def call(server, path: str, body: dict | bytes | None = None) -> tuple[int, dict | bytes]:
    """``(status, JSON object or raw bytes)`` of one request to ``server``."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.url.rstrip("/") + path, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw, kind = response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers["Content-Type"]
    return status, json.loads(raw) if kind == "application/json" else raw


def png_file(size: tuple[int, int], mode: str = "L", value: int = 200) -> str:
    buffer = io.BytesIO()
    Image.new(mode, size, value if mode == "L" else (value, 0, 0)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def wait(server, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = call(server, f"/api/jobs/{job_id}")
        assert status == 200
        if job["state"] in ("done", "error"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def finish(job, timeout: float = 60.0) -> None:
    """Wait for a job submitted to a service directly; fail unless it is done."""
    deadline = time.monotonic() + timeout
    while job.state not in ("done", "error") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.state == "done", job.error


def png_pixels(server, url: str) -> np.ndarray:
    status, raw = call(server, url)
    assert status == 200
    return np.asarray(Image.open(io.BytesIO(raw)))


def test_page_and_info(server):
    status, page = call(server, "/")
    assert status == 200 and b"<title>InvFussion" in page
    status, info = call(server, "/api/info")
    assert status == 200
    assert (
        info["model"] == "mnist32-invfussion"
        and info["image_shape"] == [1, 32, 32]
        and info["steps"] == server.service.steps
    )
    assert info["num_digits"] == 500 and len(info["digits"]) == 20
    assert info["nppc"] is False and "--nppc-model" in info["nppc_note"]
    assert info["samplers"]["posterior"] == 2 * server.service.steps - 1
    assert info["samplers"]["mmse+pigdm"] == consistency.nfe("mmse", "pigdm")
    assert png_pixels(server, f"/api/digits/{info['digits'][1]}").shape == (32, 32)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": base64.b64encode(b"hello, not an image").decode()}, "not an image"),
        ({"data": "data:image/png;base64,%%%"}, "not base64"),
        ({"data": ""}, "empty"),
        ({}, "empty"),
    ],
)
def test_bad_upload_is_a_400_with_one_sentence(server, body, message):
    status, answer = call(server, "/api/uploads", body)
    assert status == 400 and message in answer["error"] and answer["error"].count(".") <= 2
    assert "Traceback" not in answer["error"]


def test_upload_of_another_size_and_colour_is_converted_with_notes(server):
    status, upload = call(
        server, "/api/uploads", {"data": png_file((64, 48), "RGB"), "invert": False}
    )
    assert status == 200
    notes = " ".join(upload["notes"])
    assert "grayscale" in notes and "64×48 image to 32×32" in notes and "centred square" in notes
    assert png_pixels(server, upload["url"]).shape == (32, 32)


def test_light_upload_suggests_invert_and_invert_negates(server):
    _, plain = call(server, "/api/uploads", {"data": png_file((32, 32), value=230)})
    _, inverted = call(
        server, "/api/uploads", {"data": png_file((32, 32), value=230), "invert": True}
    )
    assert plain["notes"] and "invert" in plain["notes"][0]
    assert inverted["notes"] == ["inverted the image."]
    assert (
        png_pixels(server, plain["url"]).astype(int) + png_pixels(server, inverted["url"]) == 255
    ).all()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"image": {"digit": 0}, "degradation": "blur"}, "unknown degradation family 'blur'"),
        ({"image": {"digit": 0}, "degradation": "motion-blur:stride=3"}, "stride=3 is not allowed"),
        ({"image": {"digit": 0}, "degradation": "motion-blur", "noise": -1}, "σ_y"),
        ({"image": {"digit": 0}, "degradation": "mask", "hidden": "1" * 1024}, "hides every pixel"),
        ({"image": {"digit": 0}, "degradation": "mask", "hidden": "01"}, "1024 characters"),
        ({"image": {"digit": 500}, "degradation": "outpaint-box"}, "test digit 500 does not exist"),
        ({"image": {"upload": "u999"}, "degradation": "outpaint-box"}, "no image was uploaded as 'u999'"),
        ({"degradation": "outpaint-box"}, "names no image"),
        ({"image": {"digit": 0}, "degradation": "outpaint-box", "num_samples": 5}, "from 2 to 4"),
        (
            {"image": {"digit": 0}, "degradation": "outpaint-box", "seed": "x"},
            "seed must be an integer",
        ),
        (
            {"image": {"digit": 0}, "degradation": "outpaint-box", "sampler": "dps"},
            "sampler must be one of auto, posterior, posterior+ddnm",
        ),
    ],
)
def test_bad_job_is_a_400_before_any_sampling(server, body, message):
    status, answer = call(server, "/api/jobs", body)
    assert status == 400 and message in answer["error"], answer


def test_malformed_requests(server):
    assert call(server, "/api/jobs", b"{not json")[0] == 400
    assert call(server, "/api/jobs", b"[1, 2]")[0] == 400
    assert call(server, "/api/nothing", {})[0] == 404
    assert call(server, "/api/jobs/j0")[0] == 404
    assert call(server, "/api/jobs/j0/files/..%2F..%2Fetc%2Fpasswd")[0] == 404
    assert call(server, "/api/uploads/u0")[0] == 404


def test_job_completes_with_every_image_and_counts_its_network_calls(server):
    status, job = call(
        server,
        "/api/jobs",
        {
            "image": {"digit": 7},
            "degradation": "motion-blur:stride=2",
            "noise": 0.3,
            "num_samples": 3,
            "seed": 1,
        },
    )
    assert status == 202 and job["state"] in ("queued", "running")
    job = wait(server, job["id"])
    assert job["state"] == "done" and job["progress"] == 1.0, job["error"]
    steps = server.service.steps
    assert job["nfe"] == job["total_nfe"] == 3 * (2 * steps - 1) + 1
    result = job["result"]
    assert result["degradation"] == "motion-blur:stride=2, σ_y = 0.3"
    assert "above the noise this model was trained on" in result["noise_note"]  # the shipped model: σ_y ≤ 0.2
    urls = [*result["images"].values(), *result["samples"]]
    directions = result["directions"]
    assert directions["source"] == "sample-pca" and "no NPPC model" in directions["note"]
    assert len(directions["items"]) == 2  # 3 samples span 2 directions
    urls += [d[side] for d in directions["items"] for side in ("minus", "plus")]
    for url in urls:
        assert png_pixels(server, url).shape == (32, 32), url
    assert set(result["metrics"]) == {"posterior", "mmse"}
    assert result["metrics"]["posterior"]["nfe"] == 2 * steps - 1


def test_consistent_job_shows_the_outputs_moved_onto_the_measurement(server):
    """``consistent: true``: the page's MMSE and samples are the projected ones (served under their
    ``+consistent`` names), and the metrics list both kinds; a non-boolean flag is a 400."""
    body = {"image": {"digit": 3}, "degradation": "inpaint-box", "num_samples": 2, "consistent": True}
    status, job = call(server, "/api/jobs", body)
    assert status == 202
    job = wait(server, job["id"])
    assert job["state"] == "done", job["error"]
    result = job["result"]
    assert result["consistent"] and "mmse+consistent" in result["images"]["mmse"]
    assert result["noise_note"] == ""
    assert set(result["metrics"]) == {"posterior", "mmse", "posterior+consistent", "mmse+consistent"}
    assert result["metrics"]["mmse+consistent"]["consistency"] < 1e-8
    for url in [*result["images"].values(), *result["samples"]]:
        assert png_pixels(server, url).shape == (32, 32), url
    status, error = call(server, "/api/jobs", {**body, "consistent": "yes"})
    assert status == 400 and "consistent must be true or false" in error["error"]


def test_a_named_sampler_replaces_the_rule_and_counts_its_calls(server):
    """``sampler: "mmse+pigdm"`` on a box (where the rule keeps the posterior): its samples are
    served, the metrics name it, and the calls are its own."""
    body = {"image": {"digit": 4}, "degradation": "inpaint-box", "num_samples": 2, "sampler": "mmse+pigdm"}
    status, job = call(server, "/api/jobs", body)
    assert status == 202
    job = wait(server, job["id"])
    assert job["state"] == "done", job["error"]
    per_sample = consistency.nfe("mmse", "pigdm")
    assert job["nfe"] == job["total_nfe"] == 2 * per_sample + 1
    result = job["result"]
    assert result["sampler"] == "mmse+pigdm" and "mmse+pigdm-000" in result["samples"][0]
    assert set(result["metrics"]) == {"mmse+pigdm", "mmse"}
    assert result["metrics"]["mmse+pigdm"]["nfe"] == per_sample


def test_painted_mask_keeps_the_unpainted_pixels(server):
    """A⁺y of a noiseless painted mask is the image on unpainted pixels and 0 (mid-grey) on painted
    ones, so the mask's row-major orientation is the page's."""
    hidden = np.zeros((32, 32), dtype=bool)
    hidden[:5, :] = True  # the top five rows
    hidden[:, 30:] = True  # and the two right columns
    body = {
        "image": {"digit": 42},
        "degradation": "mask",
        "num_samples": 2,
        "hidden": "".join("1" if h else "0" for h in hidden.flatten()),
    }
    status, job = call(server, "/api/jobs", body)
    assert status == 202
    job = wait(server, job["id"])
    assert job["state"] == "done", job["error"]
    pinv = png_pixels(server, job["result"]["images"]["pinv"])
    reference = png_pixels(server, job["result"]["images"]["reference"])
    assert (pinv[hidden] == 128).all() and (pinv[~hidden] == reference[~hidden]).all()
    assert job["result"]["degradation"] == f"painted mask ({hidden.sum()} pixels hidden)"


def test_job_on_an_upload(server):
    _, upload = call(server, "/api/uploads", {"data": png_file((28, 28), value=0)})
    status, job = call(
        server,
        "/api/jobs",
        {"image": {"upload": upload["id"]}, "degradation": "outpaint-box", "num_samples": 2},
    )
    assert status == 202 and wait(server, job["id"])["state"] == "done"


def test_nppc_directions_are_mean_plus_minus_two_sigma_u(monkeypatch):
    """With an NPPC model the page shows ``mean ± 2σ_k u_k`` from ``sampling.nppc``."""
    net = models.load("mnist32-invfussion")
    mean = torch.zeros(1, 1, 32, 32)
    directions = torch.zeros(1, 2, 1, 32, 32)
    directions[0, 0, 0, 3, 4] = directions[0, 1, 0, 10, 20] = 1.0
    stds = torch.tensor([[0.25, 0.1]])
    monkeypatch.setattr(restoration, "nppc", lambda nppc_net, op, y, seed: (mean, directions, stds))
    service = RestorationService(
        net, SimpleNamespace(pcs=2), nppc_note="fake-nppc", steps=1, max_samples=2
    )
    try:
        job = service.submit(
            {"image": {"digit": 0}, "degradation": "outpaint-box", "num_samples": 2}
        )
        finish(job)
        items = job.result["directions"]["items"]
        assert (
            job.result["directions"]["source"] == "nppc"
            and "fake-nppc" in job.result["directions"]["note"]
        )
        assert set(job.result["metrics"]) == {"posterior", "mmse", "nppc"}
        assert [d["std"] for d in items] == pytest.approx([0.25, 0.1])
        for k, (row, col) in enumerate([(3, 4), (10, 20)]):
            for side, sign in (("minus", -1), ("plus", 1)):
                name = items[k][side].rsplit("/", 1)[1]
                pixels = np.asarray(Image.open(service.job_png(job.id, name)))
                expected = np.full((32, 32), 128)
                expected[row, col] = round((sign * 2 * float(stds[0, k]) + 1) * 127.5)
                assert (pixels == expected).all(), (k, side)
    finally:
        service.close()


def test_unconditional_model_is_refused():
    with pytest.raises(ValueError, match="conditional"):
        RestorationService(models.load("mnist32-unconditional"))


def test_cli_parses_serve():
    args = build_parser().parse_args(["serve", "--port", "0", "--nppc-model", "", "--steps", "4"])
    assert (args.host, args.port, args.nppc_model, args.steps, args.model) == (
        "127.0.0.1",
        0,
        "",
        4,
        "mnist32-invfussion",
    )


def test_too_large_upload_is_refused(server):
    status, answer = call(server, "/api/uploads", {"data": png_file((5000, 4000))})
    assert status == 400 and "5000×4000, too large" in answer["error"]


def test_nppc_model_falls_back_with_a_reason():
    net = models.load("mnist32-invfussion")
    assert load_nppc(None, net, "cpu") == (None, "none was given (pass --nppc-model)")
    nppc_net, note = load_nppc("no-such-model", net, "cpu")
    assert nppc_net is None and note.startswith("no-such-model did not load: no model named")
    assert load_nppc("mnist32-palette", net, "cpu") == (
        None,
        "mnist32-palette has no principal-component head",
    )


def test_job_with_a_real_nppc_network():
    """An (untrained) network with a principal-component head goes through ``sampling.nppc``."""
    net = models.load("mnist32-invfussion")
    nppc_net = models.build("mnist32", "invfussion", pcs=2).eval()
    service = RestorationService(net, nppc_net, nppc_note="untrained", steps=1, max_samples=2)
    try:
        job = service.submit(
            {"image": {"digit": 5}, "degradation": "matrix:rows=50", "num_samples": 2}
        )
        finish(job)
        items = job.result["directions"]["items"]
        assert job.result["directions"]["source"] == "nppc" and len(items) == 2
        assert all(d["std"] > 0 for d in items)
        for d in items:
            assert service.job_png(job.id, d["plus"].rsplit("/", 1)[1]).is_file()
    finally:
        service.close()


def test_a_body_left_unread_closes_the_connection(server):
    """A chunked body (no Content-Length) is refused and not parsed as the next request."""
    host, port = server.server_address[:2]
    # The whole request in one write (a client still sending when the server answers and closes
    # would see a broken pipe, which is not what this checks); then read until the server closes.
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"2\r\n{}\r\n0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    assert b" 411 " in head.split(b"\r\n")[0] and b"connection: close" in head.lower()
    assert "Content-Length" in json.loads(body)["error"]


def test_an_expired_upload_is_told_apart_from_one_that_never_existed(server, monkeypatch):
    from invfussion.serve import service

    monkeypatch.setattr(service, "MAX_UPLOADS", 1)
    _, first = call(server, "/api/uploads", {"data": png_file((32, 32), value=0)})
    call(server, "/api/uploads", {"data": png_file((32, 32), value=0)})  # pushes the first out
    status, answer = call(server, "/api/jobs", {"image": {"upload": first["id"]}, "degradation": "outpaint-box"})
    assert status == 400 and "has expired on the server (it keeps the last 1)" in answer["error"]
    status, answer = call(server, "/api/jobs", {"image": {"upload": "nope"}, "degradation": "outpaint-box"})
    assert status == 400 and "no image was uploaded as 'nope'" in answer["error"]
