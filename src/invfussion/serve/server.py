"""The HTTP side of ``invfussion serve``: routes, JSON in and out, PNG files.

Routes (JSON bodies; errors are ``{"error": "<one sentence>"}`` with a 4xx/5xx status):

- ``GET /``: the page (``index.html``); ``GET /api/info``: model, steps, digits, NPPC status,
  number of classes.
- ``GET /api/digits/<i>``: embedded test digit ``i`` as PNG.
- ``POST /api/uploads`` ``{"data": base64, "invert": bool}`` → ``{"id", "url", "notes"}``;
  ``GET /api/uploads/<id>``: the converted upload as PNG.
- ``POST /api/jobs`` (see :meth:`RestorationService.submit`) → 202 and the job's status;
  ``GET /api/jobs/<id>``: status and progress (poll); ``GET /api/jobs/<id>/files/<name>``: a PNG.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from .service import BusyError, RestorationService, load_service

MAX_BODY = 16 * 1024 * 1024
_NAME = r"[A-Za-z0-9_+-]+"  # '+': consistent outputs (mmse+consistent)
_GET_ROUTES = (
    (re.compile(r"/api/digits/(\d+)"), "_get_digit"),
    (re.compile(rf"/api/uploads/({_NAME})"), "_get_upload"),
    (re.compile(rf"/api/jobs/({_NAME})"), "_get_job"),
    (re.compile(rf"/api/jobs/({_NAME})/files/({_NAME})"), "_get_job_file"),
)


class RequestError(Exception):
    """A request the server refuses: ``status`` and one sentence for the page."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class RestorationHandler(BaseHTTPRequestHandler):
    """Answers one request; every failure becomes a JSON error, never a traceback page."""

    server: RestorationServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # the http.server naming
        self._answer(self._route_get)

    def do_POST(self) -> None:
        self._answer(self._route_post)

    def _answer(self, route) -> None:
        try:
            route(self.path.split("?", 1)[0])
        except RequestError as exc:
            self._send_json({"error": str(exc)}, exc.status)
        except BusyError as exc:
            self._send_json({"error": str(exc)}, HTTPStatus.SERVICE_UNAVAILABLE)
        except (ValueError, FileNotFoundError) as exc:
            self._send_json({"error": str(exc).strip().splitlines()[0]}, HTTPStatus.BAD_REQUEST)
        except Exception as exc:  # noqa: BLE001 (logged here; the page gets one line)
            traceback.print_exc(file=sys.stderr)
            self._send_json(
                {"error": f"internal error ({type(exc).__name__}); see the server's log."},
                HTTPStatus.INTERNAL_SERVER_ERROR,
            )

    def _route_get(self, path: str) -> None:
        service = self.server.service
        if path in ("/", "/index.html"):
            page = resources.files(__package__).joinpath("index.html").read_bytes()
            return self._send(page, "text/html; charset=utf-8")
        if path == "/api/info":
            return self._send_json(service.info())
        for pattern, method in _GET_ROUTES:
            match = pattern.fullmatch(path)
            if match:
                return getattr(self, method)(*match.groups())
        raise RequestError(HTTPStatus.NOT_FOUND, f"nothing at {path}; open / for the page.")

    def _route_post(self, path: str) -> None:
        service = self.server.service
        payload = self._read_json()  # read before routing, so every answer leaves no body unread
        if path == "/api/uploads":
            return self._send_json(service.add_upload(payload))
        if path == "/api/jobs":
            return self._send_json(service.submit(payload).status(), HTTPStatus.ACCEPTED)
        raise RequestError(
            HTTPStatus.NOT_FOUND, f"cannot POST to {path}; use /api/uploads or /api/jobs."
        )

    def _get_digit(self, index: str) -> None:
        self._send_png(self.server.service.digit_png(int(index)))

    def _get_upload(self, upload_id: str) -> None:
        self._send_png(self.server.service.upload_png(upload_id))

    def _get_job(self, job_id: str) -> None:
        job = self.server.service.job(job_id)
        if job is None:
            raise RequestError(
                HTTPStatus.NOT_FOUND, f"no job {job_id} on this server; start a new restoration."
            )
        self._send_json(job.status())

    def _get_job_file(self, job_id: str, name: str) -> None:
        self._send_png(self.server.service.job_png(job_id, name))

    def _read_json(self) -> dict[str, Any]:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY:
            self.close_connection = True  # an unread body must not be parsed as the next request
        if length is None or not length.isdigit():
            raise RequestError(
                HTTPStatus.LENGTH_REQUIRED, "the request has no Content-Length; send a JSON body."
            )
        if int(length) > MAX_BODY:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the request is larger than {MAX_BODY // 2**20} MB; upload a smaller image.",
            )
        try:
            payload = json.loads(self.rfile.read(int(length)))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestError(
                HTTPStatus.BAD_REQUEST, "the request body is not JSON; send a JSON object."
            ) from None
        if not isinstance(payload, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object.")
        return payload

    def _send_png(self, path: Path | None) -> None:
        if path is None:
            raise RequestError(
                HTTPStatus.NOT_FOUND,
                f"no image at {self.path}; it may have expired, restore again.",
            )
        self._send(path.read_bytes(), "image/png")

    def _send_json(self, payload: dict[str, Any], status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(payload).encode(), "application/json", status)

    def _send(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if isinstance(code, int) and code >= 400:  # polling would flood the log with 200s
            super().log_request(code, size)


class RestorationServer(ThreadingHTTPServer):
    """A threading HTTP server that owns a :class:`RestorationService` (closed with the server).

    Every connection gets its own thread, so a burst of requests is answered (202, 400, or 503
    when the job queue is full) while a restoration runs. The listen backlog holds a burst until
    the accept loop takes it: the standard library's 5 makes the kernel reset the connections of
    a burst beyond it.
    """

    daemon_threads = True
    request_queue_size = 1024  # the kernel caps it at net.core.somaxconn

    def __init__(self, address: tuple[str, int], service: RestorationService):
        self.service = service
        super().__init__(address, RestorationHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        self.service.close()


def make_server(
    host: str = "127.0.0.1",
    port: int = 8765,
    model: str = "mnist32-invfussion",
    nppc_model: str | None = "mnist32-nppc",
    device: str = "cpu",
    steps: int = 32,
    max_samples: int = 16,
) -> RestorationServer:
    """Load the models and bind the server (``port=0`` picks a free port; see ``.url``).

    Call ``serve_forever()`` to answer requests and ``server_close()`` to release everything.
    """
    service = load_service(model, nppc_model, device, steps=steps, max_samples=max_samples)
    try:
        return RestorationServer((host, port), service)
    except OSError as exc:
        service.close()
        raise OSError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port."
        ) from None


def serve(**options: Any) -> None:
    """Serve the page until Ctrl-C or SIGTERM, then delete its files; ``options`` are those of
    :func:`make_server`."""
    server = make_server(**options)
    signal.signal(signal.SIGTERM, _interrupt)
    if server.service.nppc_net is None:
        print(f"principal directions: sample PCA ({server.service.nppc_note})")
    print(f"invfussion serve: open {server.url} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
