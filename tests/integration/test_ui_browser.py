"""The web page in a real browser: Debian's Chromium, driven by Playwright, against `lessonforge ui`
started as a user would (with the fake backends).

Make a lesson from the topic box, watch its progress, send an edit, see progress in the chat while the
video stays, then the new video and the changed thumbnail; click a scene to talk about it; undo. Every
request the page makes is recorded: none may leave the page's own host. Screenshots are kept in
test-artifacts/ui/ (or $LESSONFORGE_ARTIFACTS/ui/).
"""

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gradio")
playwright = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("LESSONFORGE_ARTIFACTS", REPO / "test-artifacts")) / "ui"
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)
FAKES = ["--llm", "fake:", "--images", "fake:", "--speech", "fake:", "--critic", "fake:"]
WAIT_MS = 120_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(folder: Path, *args: str) -> Iterator[str]:
    """`lessonforge ui FOLDER ARGS` started as a user would; its URL while it runs."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    log_path = folder.parent / f"ui-{port}.log"
    with log_path.open("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lessonforge.agent.cli", "ui", str(folder), "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder.parent,
        )
        try:
            deadline = time.monotonic() + 120
            while f"127.0.0.1:{port}" not in log_path.read_text():
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "lessonforge ui did not start in 120 s"
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}/"
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def chromium(requests: list[str]) -> Iterator[Any]:
    """A page in Debian's Chromium that records the URL of every request it makes."""
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("request", lambda r: requests.append(r.url))
            page.set_default_timeout(WAIT_MS)
            yield page
        finally:
            browser.close()


def beyond(url: str, requests: list[str]) -> list[str]:
    host = url.split("/")[2]
    return [u for u in requests if not u.startswith(("data:", "blob:")) and u.split("/")[2] != host]


@pytest.fixture
def page_url(tmp_path):
    """`lessonforge ui` with the fakes, serving an empty folder of lessons."""
    with serving(tmp_path / "lessons", *FAKES) as url:
        yield url


def srcs(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.getAttribute('src'))")


@pytest.mark.skipif(CHROMIUM is None, reason="no Debian Chromium (apt-get install chromium)")
def test_make_edit_and_undo_in_the_browser(page_url):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    with chromium(requests) as page:
        page.goto(page_url)

        # an empty folder: the New lesson box is open; make a one-minute lesson
        topic = page.locator("#lf-topic").get_by_role("textbox")
        topic.fill("tides")
        page.get_by_label("Minutes").fill("1")
        page.locator("#lf-make").click()
        page.wait_for_selector("#lf-status")  # the bar: stage, share done, time left
        page.screenshot(path=ARTIFACTS / "1-making.png")
        page.wait_for_function("document.querySelectorAll('#lf-strip img').length === 4")
        page.wait_for_selector("#lf-video video[src]")
        page.wait_for_function("!document.querySelector('#lf-status')")
        page.screenshot(path=ARTIFACTS / "2-made.png", full_page=True)
        video_1 = srcs(page, "#lf-video video")[0]
        strip_1 = srcs(page, "#lf-strip img")
        assert page.locator("#lf-versions input[type=radio]").count() == 1
        assert "Made" in page.locator("#lf-chat").inner_text()
        files = re.sub(r"\s+", "", page.locator("#lf-files").inner_text())  # names may wrap
        assert all(name in files for name in ("lesson.mp4", "lesson.srt", "lesson.vtt")), files

        # click scene 2 in the strip: the message box names it
        page.locator("#lf-strip .thumbnail-item").nth(1).click()
        box = page.locator("#lf-message").get_by_role("textbox")
        playwright.expect(box).to_have_value(re.compile(r"^Scene 2 \(Part 2: .+\): $"), timeout=30_000)

        # an edit: progress streams into the chat while the current video stays
        box.fill('rename scene 2 to "Why the Moon pulls"')
        page.locator("#lf-send").click()
        status = page.wait_for_selector("#lf-status").inner_text()
        working = page.locator("#lf-chat").inner_text()
        assert srcs(page, "#lf-video video") == [video_1]
        assert "%" in status and "Working" in working
        page.screenshot(path=ARTIFACTS / "3-editing.png")
        page.wait_for_function("!document.querySelector('#lf-status')")
        page.wait_for_function(f"document.querySelector('#lf-video video').getAttribute('src') !== {video_1!r}")
        page.screenshot(path=ARTIFACTS / "4-edited.png", full_page=True)
        strip_2 = srcs(page, "#lf-strip img")
        assert [a != b for a, b in zip(strip_1, strip_2, strict=True)] == [False, True, False, False]
        assert "Renamed scene 2" in page.locator("#lf-chat").inner_text()
        assert page.locator("#lf-versions input[type=radio]").count() == 2
        assert "Why the Moon pulls" in page.locator("#lf-strip").inner_text()

        # undo: the first video and strip come back; the undone version stays in the list
        page.locator("#lf-undo").click()
        page.wait_for_function(f"document.querySelector('#lf-video video').getAttribute('src') === {video_1!r}")
        page.wait_for_function("!document.querySelector('#lf-status')")
        assert srcs(page, "#lf-strip img") == strip_1
        versions = page.locator("#lf-versions").inner_text()
        assert "1 (current): make 'tides'" in versions and '2: edit: rename scene 2 to "Why the Moon pulls"' in versions
        assert "Back to version 1" in page.locator("#lf-chat").inner_text()
        page.screenshot(path=ARTIFACTS / "5-undone.png", full_page=True)

    assert len(requests) > 20
    assert beyond(page_url, requests) == []


@pytest.mark.skipif(CHROMIUM is None, reason="no Debian Chromium (apt-get install chromium)")
def test_with_a_token_the_page_asks_for_it_first(tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    with serving(tmp_path / "lessons", "--token", "s3cret-token", *FAKES) as url, chromium(requests) as page:
        page.goto(url)
        password = page.locator("input[type=password]")
        password.wait_for()
        page.screenshot(path=ARTIFACTS / "0-token.png")
        assert page.locator("#lf-make").count() == 0  # nothing of the page before the token
        for attempt in ("wrong", "s3cret-token"):
            page.locator("input[type=text]").first.fill("me")
            password.fill(attempt)
            page.get_by_role("button", name=re.compile("log ?in", re.I)).click()
            if attempt == "wrong":
                page.get_by_text(re.compile("incorrect", re.I)).wait_for()
        page.locator("#lf-make").wait_for()
    assert beyond(url, requests) == []
