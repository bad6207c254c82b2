"""``invfussion serve`` under load: a burst of concurrent requests while a restoration runs gets
an HTTP answer for every request (nothing reset), and the server stays up."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter

import pytest

from invfussion import models
from invfussion.serve import RestorationServer, RestorationService
from invfussion.serve.service import MAX_QUEUED

CLIENTS = 100


def post_job(address: tuple[str, int], body: dict) -> tuple[int | str, dict]:
    """The HTTP status and JSON answer of one ``POST /api/jobs``, or the name of the error that
    stopped it and ``{}``."""
    connection = http.client.HTTPConnection(*address, timeout=30)
    try:
        connection.request("POST", "/api/jobs", json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    except OSError as error:  # ConnectionResetError, BrokenPipeError, timeouts
        return type(error).__name__, {}
    finally:
        connection.close()


@pytest.fixture
def gated_server():
    """A server whose restorations wait for ``release`` once they have ``started``."""
    service = RestorationService(models.load("mnist32-invfussion"), steps=2, max_samples=4)
    started, release = threading.Event(), threading.Event()
    restore = service._restore

    def gated(job):
        started.set()
        release.wait(timeout=60)
        return restore(job)

    service._restore = gated
    server = RestorationServer(("127.0.0.1", 0), service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, started, release
    release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_a_burst_while_a_job_runs_gets_an_answer_for_every_request(gated_server):
    server, started, release = gated_server
    address = server.server_address[:2]
    valid = {"image": {"digit": 3}, "degradation": "inpaint-patches", "num_samples": 2}
    status, first = post_job(address, valid)
    assert status == 202 and started.wait(timeout=30)
    running = server.service.job(first["id"])
    results: list[int | str | None] = [None] * CLIENTS
    barrier = threading.Barrier(CLIENTS)

    def client(i: int) -> None:
        body = valid if i % 2 else {**valid, "degradation": "no-such-family"}
        barrier.wait(timeout=30)
        results[i] = post_job(address, body)[0]

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    begin = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert time.monotonic() - begin < 60
    assert running.state == "running"  # the whole burst arrived while the first job ran
    counts = Counter(results)
    assert set(counts) <= {202, 400, 503}, counts
    assert counts[400] == CLIENTS // 2  # every bad spec is refused as such
    assert counts[202] == MAX_QUEUED - 1 and counts[503] == CLIENTS // 2 - (MAX_QUEUED - 1)
    release.set()  # the server still answers and the first job finishes
    deadline = time.monotonic() + 60
    while running.state != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.state == "done", running.error
    connection = http.client.HTTPConnection(*address, timeout=30)
    connection.request("GET", f"/api/jobs/{running.id}")
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["state"] == "done"
    connection.close()
