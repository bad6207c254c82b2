"""A running ``invfussion serve`` server for the web tests: the shipped model, 2 Heun steps."""

from __future__ import annotations

import threading

import pytest

from invfussion.serve import make_server


@pytest.fixture(scope="session")
def server():
    """The server on a free loopback port, answering in a background thread."""
    srv = make_server(
        "127.0.0.1", 0, model="mnist32-invfussion", nppc_model=None, steps=2, max_samples=4
    )
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)
