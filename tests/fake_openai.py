"""A real HTTP server that speaks enough of the OpenAI API for the real ``openai`` client.

Tests script what the "model" answers and then assert on what was sent::

    with FakeOpenAIServer() as server:
        server.script('{"title": "Photosynthesis"}', Error(429, headers={"Retry-After": "0"}), "...")
        llm = OpenAILLM("gpt-4.1-mini", base_url=server.url)
        ...
        assert server.requests[0].json["response_format"]["type"] == "json_schema"

Endpoints (with or without the ``/v1`` prefix):

- ``POST /v1/chat/completions`` (non-streaming): answered from the script queue, one item per request,
  then by ``default``; with neither, a 500 whose body says so (and ``x-should-retry: false`` so the
  client does not retry it).
- ``GET /v1/models``: the ``models`` attribute, a list of model ids or an :class:`Error`.
- ``POST /v1/audio/speech``: the ``speech`` attribute, the audio bytes to send (``bytes``), an
  :class:`Error`, a :class:`Hang` or a callable ``(request_json) -> bytes | Error | Hang``; unset, a
  500 (not retried) saying so.
- ``POST /v1/images/generations``: the ``images`` attribute, picture bytes (PNG) sent back as
  ``b64_json`` with a ``usage`` of :data:`IMAGE_USAGE`, an :class:`Error`, or a callable
  ``(request_json) -> bytes | dict | Error``; unset, a 500 (not retried).
- The Videos API: ``POST /v1/videos`` (a multipart form, recorded as a dict) starts a job;
  ``GET /v1/videos/{id}`` answers ``in_progress`` ``video_polls`` times, then ``completed`` (or
  ``failed`` when ``video_error`` is set); ``GET /v1/videos/{id}/content`` sends the ``videos``
  attribute (MP4 bytes). ``videos`` may also be an :class:`Error` (for the create call) or a
  callable ``(form) -> bytes | Error``.

A script item is a ``str`` (the assistant message content), a ``dict`` (a full response body, e.g.
from :func:`completion`), a callable ``(request_json) -> str | dict | Error | Hang``, an
:class:`Error` or a :class:`Hang`. With ``api_key`` set, requests without ``Authorization: Bearer
<api_key>`` get OpenAI's 401, whose message echoes the key that was sent (as some servers do).
"""

from __future__ import annotations

import base64
import email.parser
import itertools
import json
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Error:
    """Answer with HTTP ``status``; ``body`` is a dict (sent as JSON) or a str (sent as is)."""

    status: int
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        body = self.body
        if body is None:
            body = {"error": {"message": f"fake error {self.status}", "type": _error_type(self.status),
                              "param": None, "code": None}}
        return body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode("utf-8")


@dataclass(frozen=True)
class Hang:
    """Answer nothing for ``seconds`` (the client should time out first), then close the connection."""

    seconds: float


Reply = str | dict[str, Any] | Error | Hang
Item = Reply | Callable[[dict[str, Any]], Reply]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # keys lower-cased
    json: dict[str, Any] | None


def _error_type(status: int) -> str:
    if status == 401:
        return "invalid_request_error"
    if status == 429:
        return "rate_limit_exceeded"
    return "server_error" if status >= 500 else "invalid_request_error"


def _tokens(text: str) -> int:
    """A rough token count (about four characters a token), at least 1 for non-empty text."""
    return max(1, len(text) // 4) if text else 0


_ids = itertools.count(1)


def completion(
    content: str | None,
    *,
    model: str = "gpt-4.1-mini",
    finish_reason: str = "stop",
    refusal: str | None = None,
    prompt_tokens: int = 10,
    completion_tokens: int | None = None,
) -> dict[str, Any]:
    """A chat completion response body as OpenAI sends it."""
    if completion_tokens is None:
        completion_tokens = _tokens(content or refusal or "")
    return {
        "id": f"chatcmpl-fake{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal, "annotations": []},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
    }


def _prompt_tokens(request: dict[str, Any]) -> int:
    messages = request.get("messages") or []
    return sum(_tokens(str(m.get("content") or "")) + 4 for m in messages if isinstance(m, dict)) or 1


class FakeOpenAIServer:
    """OpenAI-compatible HTTP server on 127.0.0.1 (a free port) in a background thread."""

    def __init__(
        self,
        *,
        default: Callable[[dict[str, Any]], Reply] | None = None,
        models: list[str] | Error | None = None,
        api_key: str | None = None,
        speech: bytes | Error | Hang | Callable[[dict[str, Any]], bytes | Error | Hang] | None = None,
        images: bytes | Error | Callable[[dict[str, Any]], bytes | dict[str, Any] | Error] | None = None,
        videos: bytes | Error | Callable[[dict[str, Any]], bytes | Error] | None = None,
        video_polls: int = 1,
        video_error: str | None = None,
    ) -> None:
        self.default = default
        self.speech = speech
        self.images = images
        self.videos = videos
        self.video_polls = video_polls
        self.video_error = video_error
        self.jobs: dict[str, dict[str, Any]] = {}
        self.models: list[str] | Error = models if models is not None else ["gpt-4.1-mini", "gpt-4.1"]
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.responses: list[dict[str, Any]] = []  # every chat completion body sent, in order
        self._queue: deque[Item] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()  # wakes every Hang
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- scripting

    def script(self, *items: Item) -> FakeOpenAIServer:
        """Queue answers for the next chat completion requests, one item per request."""
        with self._lock:
            self._queue.extend(items)
        return self

    @property
    def pending(self) -> int:
        """Scripted answers not used yet."""
        with self._lock:
            return len(self._queue)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def speech_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/audio/speech")]

    @property
    def image_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/images/generations")]

    @property
    def video_requests(self) -> list[RecordedRequest]:
        """Every Videos API request (create, retrieve, download)."""
        return [r for r in self.requests if "/videos" in r.path]

    # ----------------------------------------------------------------- answering (server thread)

    def _image_reply(self, request: dict[str, Any]) -> dict[str, Any] | Error:
        item = self.images
        if item is None:
            return _unset("images", "no picture set; assign server.images = <PNG bytes or callable>")
        reply = item(request) if callable(item) else item
        if isinstance(reply, bytes):
            return {"created": 1700000000, "data": [{"b64_json": base64.b64encode(reply).decode("ascii")}],
                    "usage": dict(IMAGE_USAGE)}
        return reply

    def _video_create(self, form: dict[str, Any]) -> dict[str, Any] | Error:
        item = self.videos
        if item is None:
            return _unset("videos", "no video set; assign server.videos = <MP4 bytes or callable>")
        reply = item(form) if callable(item) else item
        if isinstance(reply, Error):
            return reply
        with self._lock:
            job_id = f"video_fake{len(self.jobs) + 1}"
            self.jobs[job_id] = {"content": reply, "polls": self.video_polls, "form": form}
        return self._video_body(job_id, "queued")

    def _video_body(self, job_id: str, status: str) -> dict[str, Any]:
        form = self.jobs[job_id]["form"]
        body: dict[str, Any] = {
            "id": job_id, "object": "video", "model": form.get("model", "sora-2"), "status": status,
            "progress": 100 if status == "completed" else 0, "created_at": 1700000000,
            "seconds": form.get("seconds", "4"), "size": form.get("size", "1280x720")}
        if status == "failed":
            body["error"] = {"code": "generation_failed", "message": self.video_error}
        return body

    def _video_retrieve(self, job_id: str) -> dict[str, Any] | Error:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return _not_found(f"/v1/videos/{job_id}")
            job["polls"] -= 1
            waiting = job["polls"] >= 0
        if waiting:
            return self._video_body(job_id, "in_progress")
        return self._video_body(job_id, "failed" if self.video_error else "completed")

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_chat_reply(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            item = self._queue.popleft() if self._queue else None
            number = len(self.chat_requests)
        if item is None:
            if self.default is None:
                return Error(
                    500,
                    body={"error": {
                        "message": f"FakeOpenAIServer: no scripted response left for chat request #{number}; "
                                   "queue more with server.script(...) or pass default=...",
                        "type": "fake_server_error", "param": None, "code": "script_exhausted"}},
                    headers={"x-should-retry": "false"},
                )
            item = self.default
        return item(request) if callable(item) else item

    def _speech_reply(self, request: dict[str, Any]) -> bytes | Error | Hang:
        item = self.speech
        if item is None:
            return Error(500, body={"error": {
                "message": "FakeOpenAIServer: no speech audio set; assign server.speech = <bytes or callable>",
                "type": "fake_server_error", "param": None, "code": "no_speech"}}, headers={"x-should-retry": "false"})
        return item(request) if callable(item) else item

    def _chat_body(self, reply: str | dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        if isinstance(reply, dict):
            body = reply
        else:
            body = completion(reply, model=str(request.get("model", "gpt-4.1-mini")),
                              prompt_tokens=_prompt_tokens(request))
        with self._lock:
            self.responses.append(body)
        return body

    def _auth_error(self, headers: dict[str, str]) -> Error | None:
        if self.api_key is None:
            return None
        sent = headers.get("authorization", "")
        if sent == f"Bearer {self.api_key}":
            return None
        given = sent.removeprefix("Bearer ").strip()
        return Error(401, body={"error": {
            "message": f"Incorrect API key provided: {given}. You can find your API key at "
                       "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})


def _handler_for(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            server._record(RecordedRequest("GET", self.path, headers, None))
            denied = server._auth_error(headers)
            if denied is not None:
                return self._send_error(denied)
            route = self._route()
            if route.startswith("/videos/"):
                return self._answer_video_get(route.removeprefix("/videos/"))
            if route != "/models":
                return self._send_error(_not_found(self.path))
            models = server.models
            if isinstance(models, Error):
                return self._send_error(models)
            self._send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in models]})

        def do_POST(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = (
                    _form(headers.get("content-type", ""), raw)
                    if headers.get("content-type", "").startswith("multipart/")
                    else json.loads(raw)
                    if raw
                    else None
                )
            except ValueError:
                body = None
            server._record(RecordedRequest("POST", self.path, headers, body))
            denied = server._auth_error(headers)
            if denied is not None:
                return self._send_error(denied)
            route = self._route()
            if route not in ("/chat/completions", "/audio/speech", "/images/generations", "/videos"):
                return self._send_error(_not_found(self.path))
            if not isinstance(body, dict):
                return self._send_error(Error(400, body={"error": {
                    "message": "request body is not a JSON object", "type": "invalid_request_error"}}))
            if route == "/audio/speech":
                return self._answer_speech(body)
            if route in ("/images/generations", "/videos"):
                answer = server._image_reply(body) if route == "/images/generations" else server._video_create(body)
                return self._send_error(answer) if isinstance(answer, Error) else self._send_json(200, answer)
            if body.get("stream"):
                return self._send_error(Error(400, body={"error": {
                    "message": "FakeOpenAIServer does not stream", "type": "invalid_request_error"}}))
            reply = server._next_chat_reply(body)
            if not self._hang_or_error(reply):
                self._send_json(200, server._chat_body(reply, body))

        def _hang_or_error(self, reply: Any) -> bool:
            """Answer a scripted Hang (nothing, then close) or Error; False for a reply to send."""
            if isinstance(reply, Hang):
                server._stop.wait(reply.seconds)
                self.close_connection = True
                return True
            if isinstance(reply, Error):
                self._send_error(reply)
                return True
            return False

        def _answer_speech(self, body: dict[str, Any]) -> None:
            reply = server._speech_reply(body)
            if self._hang_or_error(reply):
                return None
            kind = {"wav": "audio/wav", "pcm": "audio/pcm", "mp3": "audio/mpeg"}.get(
                str(body.get("response_format", "mp3")), "application/octet-stream")
            self._send(200, bytes(reply), {}, content_type=kind)

        def _answer_video_get(self, rest: str) -> None:
            job_id, _, tail = rest.partition("/")
            if tail == "content":
                job = server.jobs.get(job_id)
                if job is None:
                    return self._send_error(_not_found(self.path))
                return self._send(200, job["content"], {}, content_type="video/mp4")
            answer = server._video_retrieve(job_id)
            return self._send_error(answer) if isinstance(answer, Error) else self._send_json(200, answer)

        def _route(self) -> str:
            path = self.path.split("?", 1)[0].rstrip("/")
            return path.removeprefix("/v1")

        def _send_error(self, error: Error) -> None:
            self._send(error.status, error.payload(), error.headers)

        def _send_json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode("utf-8"), {})

        def _send(self, status: int, payload: bytes, headers: dict[str, str], *,
                  content_type: str = "application/json") -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("x-request-id", f"req_fake{next(_ids)}")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (timeout); nothing to answer

    return Handler


IMAGE_USAGE = {"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210,
               "input_tokens_details": {"text_tokens": 50, "image_tokens": 0}}


def _unset(what: str, message: str) -> Error:
    return Error(500, body={"error": {"message": f"FakeOpenAIServer: {message}", "type": "fake_server_error",
                                      "param": None, "code": f"no_{what}"}}, headers={"x-should-retry": "false"})


def _form(content_type: str, raw: bytes) -> dict[str, Any]:
    """The fields of a multipart/form-data body (text values as str, files as bytes)."""
    message = email.parser.BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, Any] = {}
    for part in message.get_payload() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        fields[str(name)] = data if part.get_filename() else data.decode("utf-8")
    return fields


def _not_found(path: str) -> Error:
    return Error(404, body={"error": {"message": f"Unknown request URL: {path}", "type": "invalid_request_error",
                                      "param": None, "code": "unknown_url"}})


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A started :class:`FakeOpenAIServer`, closed after the test."""
    with FakeOpenAIServer() as server:
        yield server


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def full_text(err: BaseException) -> str:
    """Everything a user could see of an error: its message and the whole printed traceback."""
    return str(err) + "".join(traceback.format_exception(err))
