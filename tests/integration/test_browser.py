"""The lesson plays in a real browser: headless Chromium loads lesson.mp4 in a <video> element.

The page reports back to the test's own HTTP server (a POST), so nothing depends on when Chromium
decides a page is "loaded": the video's duration and size after ``loadedmetadata``, that it plays
(time advances, video and audio bytes are decoded), that a seek near the end completes, that the
WebVTT subtitles parse, and any media error. Skipped where no Chromium is installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.fakes import FakeLLM
from lessonforge.agent.state import make_request
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech
from lessonforge.tools.media import video

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
]
WAIT_S = 90

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>lesson</title></head>
<body>
<video id="v" src="lesson.mp4" muted playsinline preload="auto" crossorigin="anonymous">
  <track id="t" kind="subtitles" srclang="en" src="lesson.vtt" default>
</video>
<script>
const v = document.getElementById("v");
const t = document.getElementById("t");
const out = {canPlayType: v.canPlayType('video/mp4; codecs="avc1.640028, mp4a.40.2"')};
let sent = false;
function send(why) {
  if (sent) return;
  sent = true;
  out.why = why;
  out.readyState = v.readyState;
  out.networkState = v.networkState;
  out.videoBytes = v.webkitVideoDecodedByteCount;
  out.audioBytes = v.webkitAudioDecodedByteCount;
  out.cues = t.track && t.track.cues ? t.track.cues.length : null;
  fetch("/result", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(out)});
}
t.addEventListener("error", () => { out.trackError = true; });
v.addEventListener("error", () => {
  out.error = v.error ? {code: v.error.code, message: v.error.message} : {code: -1, message: "unknown"};
  send("error");
});
v.addEventListener("loadedmetadata", () => {
  out.duration = v.duration;
  out.width = v.videoWidth;
  out.height = v.videoHeight;
});
v.addEventListener("loadeddata", () => {
  v.play().catch((e) => { out.playError = String(e); send("play failed"); });
});
v.addEventListener("timeupdate", () => {
  if (out.played === undefined && v.currentTime > 0.5) {
    out.played = v.currentTime;
    v.pause();
    v.currentTime = Math.max(0, v.duration - 0.5);
  }
});
v.addEventListener("seeked", () => { out.seekedTo = v.currentTime; setTimeout(() => send("seeked"), 300); });
setTimeout(() => send("timeout"), %(timeout_ms)d);
</script>
</body></html>
"""


def chromium() -> str | None:
    for name in BROWSERS:
        exe = shutil.which(name)
        if exe:
            return exe
    return None


class _Handler(SimpleHTTPRequestHandler):
    """Static files with single byte-range support (browsers seek media with Range requests)."""

    results: ClassVar[list[dict]] = []
    page: ClassVar[bytes] = b""
    requests: ClassVar[list[str]] = []
    TYPES: ClassVar[dict[str, str]] = {
        ".mp4": "video/mp4", ".vtt": "text/vtt; charset=utf-8", ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8", ".png": "image/png", ".xml": "application/xml",
    }

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).results.append(json.loads(body or b"{}"))
        self.send_response(HTTPStatus.NO_CONTENT)
        self.end_headers()

    def do_GET(self):
        type(self).requests.append(self.path)
        if self.path.split("?")[0] == "/page.html":
            self._send(self.page, "text/html; charset=utf-8")
            return
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        data = path.read_bytes()
        kind = self.TYPES.get(path.suffix, "application/octet-stream")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            else:
                start, end = max(0, len(data) - int(m.group(2))), len(data) - 1
            if start > end:
                self.send_error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                return
            self._send(data[start:end + 1], kind, status=HTTPStatus.PARTIAL_CONTENT,
                       extra={"Content-Range": f"bytes {start}-{end}/{len(data)}"})
        else:
            self._send(data, kind)

    def _send(self, data: bytes, kind: str, status=HTTPStatus.OK, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Access-Control-Allow-Origin", "*")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the browser cancelled a range it no longer needs
            pass


def serve(folder: Path, page: str, requests: list[str] | None = None) -> Iterator[tuple[str, list[dict]]]:
    """Serve ``folder`` with ``page`` at /page.html; what the page POSTs lands in the yielded list, and the
    path of every GET in ``requests`` when one is given."""
    handler = type("Handler", (_Handler,), {"results": [], "page": page.encode(),
                                             "requests": requests if requests is not None else []})

    def factory(*args, **kw):
        return handler(*args, directory=str(folder), **kw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), factory)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.results
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def lesson(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "lesson"
    request = make_request(topic="the water cycle", minutes=0.5)
    fakes = {"llm": FakeLLM(), "images": FakeImages(), "speech": FakeSpeech(), "critic": FakeCritic()}
    asyncio.run(run.make(request, Settings.load(fit_rounds=0), out, **fakes))
    return out


def open_page(url: str, results: list[dict], tmp_path: Path, *, flags: tuple[str, ...] = (), wait_s: float = WAIT_S,
              count: int = 1) -> str:
    """Open ``url`` in headless Chromium until the page has posted ``count`` results (or ``wait_s`` passed);
    returns the tail of Chromium's log. Skips the test where no Chromium is installed."""
    exe = chromium()
    if exe is None:
        pytest.skip("no Chromium browser installed (looked for chromium, chromium-browser on PATH); "
                    "install Debian's: apt-get install -y chromium")
    log = tmp_path / "chromium.log"
    proc = None
    try:
        with open(log, "wb") as errors:
            proc = subprocess.Popen(
                [exe, *FLAGS, *flags, f"--user-data-dir={tmp_path / 'profile'}", url],
                stdin=subprocess.DEVNULL, stdout=errors, stderr=errors, start_new_session=True,
            )
            deadline = time.monotonic() + wait_s
            while len(results) < count and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the browser and its helpers: the group we started
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    return f"Chromium reported nothing within {wait_s} s (exit {proc.returncode}); its log:\n{tail}"


def test_the_lesson_plays_in_headless_chromium(lesson, tmp_path):
    mp4 = lesson / "lesson.mp4"
    info = video.probe(mp4)
    page = PAGE % {"timeout_ms": (WAIT_S - 15) * 1000}
    gen = serve(lesson, page)
    url, results = next(gen)
    try:
        why = open_page(f"{url}/page.html", results, tmp_path)
    finally:
        gen.close()
    assert results, why
    r = results[0]
    assert "error" not in r, f"media error in Chromium: {r['error']} (canPlayType={r['canPlayType']!r})"
    assert r["canPlayType"] in ("probably", "maybe"), "this Chromium cannot play H.264/AAC MP4"
    assert r["why"] == "seeked", r
    assert abs(r["duration"] - info.duration) <= 0.1, (r["duration"], info.duration)
    assert (r["width"], r["height"]) == (info.width, info.height)
    assert r["played"] > 0.5 and r["seekedTo"] >= info.duration - 0.6
    assert r["videoBytes"] > 0 and r["audioBytes"] > 0  # both tracks were decoded
    assert r["cues"] and r["cues"] > 0 and not r.get("trackError")  # the WebVTT subtitles parse
