"""End to end in headless Chromium: the page loads, a bad upload shows a message, one restoration
of a painted mask shows its images.

Needs Debian's ``chromium`` (``apt-get install chromium``) and Playwright (``pip install
playwright``; its own browser download is not used). Skipped when either is missing.

Run as a script to make the README's screenshot with a full server (32 Heun steps):
``python tests/web/test_serve_browser.py docs/serve.png``.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("INVFUSSION_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
"""Debian's Chromium; INVFUSSION_CHROMIUM names another Chromium or Chrome binary."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RESULT_IMAGES_LOADED = """() => {
    const images = [...document.querySelectorAll('#results-body img')];
    return images.length >= 8 && images.every((img) => img.complete && img.naturalWidth === 32);
}"""


def restore_in_browser(
    url: str, screenshot: str | Path | None = None, timeout_ms: int = 60_000
) -> dict:
    """Drive the page at ``url`` like a person: try a bad upload, pick a digit, paint a stroke on
    the mask, press Restore and wait for every result image. Returns what the page showed."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1180, "height": 860})
            page.goto(url)
            page.wait_for_selector("#digit-strip img", timeout=timeout_ms)
            page.click("#tab-upload")
            page.set_input_files(
                "#upload",
                files=[
                    {
                        "name": "notes.txt",
                        "mimeType": "text/plain",
                        "buffer": b"this is not an image",
                    }
                ],
            )
            page.wait_for_function("() => document.getElementById('error').textContent.length > 0")
            upload_error = page.text_content("#error")
            page.click("#tab-digits")
            page.click("#digit-strip img >> nth=7")  # a 7
            box = page.locator("#mask-canvas").bounding_box()
            page.mouse.move(box["x"] + 60, box["y"] + 40)
            page.mouse.down()
            page.mouse.move(box["x"] + 200, box["y"] + 90, steps=8)
            page.mouse.up()
            page.click("#restore")
            page.wait_for_function(RESULT_IMAGES_LOADED, timeout=timeout_ms)
            page.wait_for_function("() => !document.getElementById('restore').disabled")
            shown = {
                "upload_error": upload_error,
                "error": page.text_content("#error"),
                "title": page.text_content("#result-title"),
                "phase": page.text_content("#phase"),
                "samples": page.locator("#samples img").count(),
                "directions": page.locator("#directions figure").count(),
                "directions_note": page.text_content("#directions-note"),
                "metrics_rows": page.locator("#metrics tr").count(),
            }
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
            return shown
        finally:
            browser.close()


def test_page_restores_a_painted_mask_in_chromium(request, tmp_path):
    if not Path(CHROMIUM).is_file():
        pytest.skip(
            f"no Chromium at {CHROMIUM} (apt-get install chromium, or set INVFUSSION_CHROMIUM)"
        )
    pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
    )
    server = request.getfixturevalue("server")  # started only when the browser is there
    shown = restore_in_browser(server.url, tmp_path / "page.png")
    assert "not an image" in shown["upload_error"]
    assert shown["error"] == ""
    assert shown["title"].startswith("painted mask (") and "pixels hidden" in shown["title"]
    assert shown["phase"].startswith("done")
    assert shown["samples"] == 4 and shown["directions"] == 3 and shown["metrics_rows"] == 3
    assert "sample PCA" in shown["directions_note"]
    assert (tmp_path / "page.png").stat().st_size > 10_000


if __name__ == "__main__":
    from invfussion.serve import make_server

    srv = make_server("127.0.0.1", 0, steps=32)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        print(
            restore_in_browser(
                srv.url, sys.argv[1] if len(sys.argv) > 1 else "serve.png", timeout_ms=300_000
            )
        )
    finally:
        srv.shutdown()
        srv.server_close()
