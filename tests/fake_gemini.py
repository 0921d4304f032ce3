"""A real HTTP server that speaks enough of the Gemini API's video generation for google-genai.

Point the client at it with ``http_options=types.HttpOptions(base_url=server.url)`` (or
``GEMINI_BASE_URL``). Endpoints (under ``/v1beta``):

- ``POST /models/{model}:predictLongRunning`` starts an operation (the request body is recorded);
  ``start`` may be set to an HTTP status to refuse it (e.g. 400 for a blocked prompt).
- ``GET /models/{model}/operations/{id}`` answers ``done: false`` ``polls`` times, then done with
  one generated video (``files/{id}``), or with ``error`` when ``error`` is set, or with no video
  and a filter reason when ``filtered`` is set.
- ``GET /files/{id}:download?alt=media`` sends ``video`` (MP4 bytes).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    json: dict[str, Any] | None


class FakeGeminiServer:
    def __init__(self, *, video: bytes = b"", polls: int = 1, error: str | None = None, filtered: str | None = None,
                 start: int | None = None) -> None:
        self.video, self.polls, self.error, self.filtered, self.start_status = video, polls, error, filtered, start
        self.requests: list[Seen] = []
        self._ops: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def __enter__(self) -> FakeGeminiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._thread.join(timeout=5)
        self._httpd.server_close()

    def _start(self, model: str) -> tuple[int, dict[str, Any]]:
        if self.start_status is not None:
            return self.start_status, {"error": {"code": self.start_status, "message": "fake refusal",
                                                 "status": "INVALID_ARGUMENT"}}
        with self._lock:
            op = f"op{len(self._ops) + 1}"
            self._ops[op] = self.polls
        return 200, {"name": f"models/{model}/operations/{op}"}

    def _poll(self, model: str, op: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if op not in self._ops:
                return 404, {"error": {"code": 404, "message": f"no operation {op}", "status": "NOT_FOUND"}}
            self._ops[op] -= 1
            waiting = self._ops[op] >= 0
        name = f"models/{model}/operations/{op}"
        if waiting:
            return 200, {"name": name, "done": False}
        if self.error:
            return 200, {"name": name, "done": True, "error": {"code": 13, "message": self.error}}
        kind = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
        if self.filtered:
            return 200, {"name": name, "done": True, "response": {"@type": kind, "generateVideoResponse": {
                "raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [self.filtered]}}}
        return 200, {"name": name, "done": True, "response": {"@type": kind, "generateVideoResponse": {
            "generatedSamples": [{"video": {"uri": f"files/{op}vid"}}]}}}


def _handler(server: FakeGeminiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _record(self, body: dict[str, Any] | None) -> str:
            path = self.path.split("?", 1)[0]
            with server._lock:
                server.requests.append(Seen(self.command, path, {k.lower(): v for k, v in self.headers.items()}, body))
            return path.removeprefix("/v1beta/")

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self._record(json.loads(raw) if raw else None)
            if path.startswith("models/") and path.endswith(":predictLongRunning"):
                return self._json(*server._start(path.removeprefix("models/").removesuffix(":predictLongRunning")))
            self._json(404, {"error": {"code": 404, "message": f"unknown {path}", "status": "NOT_FOUND"}})

        def do_GET(self) -> None:
            path = self._record(None)
            parts = path.split("/")
            if len(parts) == 4 and parts[0] == "models" and parts[2] == "operations":
                return self._json(*server._poll(parts[1], parts[3]))
            if path.startswith("files/") and path.endswith(":download"):
                return self._send(200, server.video, "video/mp4")
            self._json(404, {"error": {"code": 404, "message": f"unknown {path}", "status": "NOT_FOUND"}})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, payload: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
