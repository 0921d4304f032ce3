"""The web page in a real browser: Debian's Chromium, driven by Playwright, against `lessonforge ui`
started as a user would (with the fake backends).

Make a lesson from the topic box, watch its progress, send an edit, see progress in the chat while the
video stays, then the new video and the changed thumbnail; click a scene to talk about it; undo. Every
request the page makes is recorded: none may leave the page's own host. Screenshots are kept in
test-artifacts/ui/ (or $LESSONFORGE_ARTIFACTS/ui/).
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

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


@pytest.fixture
def page_url(tmp_path):
    """`lessonforge ui` serving an empty folder of lessons; its URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    log = (tmp_path / "server.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "ui", str(tmp_path / "lessons"), "--port", str(port),
                             *FAKES], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while f"127.0.0.1:{port}" not in (tmp_path / "server.log").read_text():
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "lessonforge ui did not start in 120 s"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def srcs(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.getAttribute('src'))")


@pytest.mark.skipif(CHROMIUM is None, reason="no Debian Chromium (apt-get install chromium)")
def test_make_edit_and_undo_in_the_browser(page_url):
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    host = page_url.split("/")[2]
    requests: list[str] = []
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("request", lambda r: requests.append(r.url))
            page.set_default_timeout(WAIT_MS)
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
            page.wait_for_selector("#lf-status")
            working = page.locator("#lf-chat").inner_text()
            assert srcs(page, "#lf-video video") == [video_1]
            page.screenshot(path=ARTIFACTS / "3-editing.png")
            page.wait_for_function("!document.querySelector('#lf-status')")
            page.wait_for_function(f"document.querySelector('#lf-video video').getAttribute('src') !== {video_1!r}")
            page.screenshot(path=ARTIFACTS / "4-edited.png", full_page=True)
            assert "Working" in working or "edit:" in working
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
            checked = page.locator("#lf-versions input[type=radio]:checked")
            assert checked.count() == 1 and checked.get_attribute("value") in ("1", None)
            assert "Back to version 1" in page.locator("#lf-chat").inner_text()
            page.screenshot(path=ARTIFACTS / "5-undone.png", full_page=True)
        finally:
            browser.close()

    assert requests
    outside = [u for u in requests if not u.startswith(("data:", "blob:")) and u.split("/")[2] != host]
    assert outside == []
