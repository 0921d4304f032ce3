"""The exported lesson page in headless Chromium.

SCORM: the package is unzipped under a page that plays the LMS: it runs a real SCORM 1.2 runtime
from npm (scorm-again, installed by scripts/setup.sh into tests/js), sets the mastery score from the
package's imsmanifest.xml as an LMS does, and opens the lesson in a frame. It then answers the quiz
by clicking, once with a wrong answer and once right, closes the lesson, and posts what the runtime
recorded: the score, the status, every call the page made.

HTML: the standalone page in the same kind of frame, with no API anywhere; Chromium's net log names
the page that started each request, and the page may only ask for files of its own folder.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from agent import run
from agent.config import Settings
from agent.export import export
from agent.project import Project
from agent.state import make_request
from tests.integration.test_browser import open_page, serve
from tools import video
from tools.fakes import FakeCritic, FakeImages, FakeLLM, FakeSpeech

pytestmark = pytest.mark.slow

NODE_MODULES = Path(__file__).resolve().parents[1] / "js" / "node_modules"
RUNTIME = NODE_MODULES / "scorm-again" / "dist" / "scorm12.min.js"
PROBE = "http://probe.lessonforge.invalid/external"

# The LMS side: scorm-again's SCORM 1.2 API as window.API, the lesson in a frame, the quiz answered by clicks.
LMS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>LMS</title><script src="/js/scorm12.min.js"></script></head>
<body><iframe id="sco" width="1100" height="900"></iframe>
<script>
const FIRST = %(first)s, RIGHT = %(right)s;
const out = {calls: [], steps: []};
window.API = new Scorm12API({autocommit: false, logLevel: 5});
window.API.cmi.student_data.mastery_score = "%(mastery)s";
window.API.cmi.core.lesson_location = "12";  // the learner left off 12 s in, last time
window.API.on("LMSInitialize", () => out.calls.push(["LMSInitialize"]));
window.API.on("LMSSetValue.cmi.*", (el, v) => out.calls.push(["LMSSetValue", el, String(v)]));
window.API.on("LMSCommit", () => out.calls.push(["LMSCommit"]));
window.API.on("LMSFinish", () => out.calls.push(["LMSFinish"]));
const frame = document.getElementById("sco");
const doc = () => frame.contentDocument;
function send(why) {
  out.why = why;
  out.final = {status: window.API.cmi.core.lesson_status, score: window.API.cmi.core.score.raw,
               min: window.API.cmi.core.score.min, max: window.API.cmi.core.score.max};
  fetch("/result", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(out)});
}
function until(what, test, then) {
  const started = Date.now();
  (function poll() {
    let ok = false;
    try { ok = test(); } catch (e) { ok = false; }
    if (ok) return then();
    if (Date.now() - started > 40000) return send("timeout waiting for " + what);
    setTimeout(poll, 100);
  })();
}
function answer(choices) {
  choices.forEach((c, i) => doc().querySelector('input[name="q' + (i + 1) + '"][value="' + c + '"]').click());
  doc().getElementById("check").click();
  return {status: window.API.cmi.core.lesson_status, score: window.API.cmi.core.score.raw,
          text: doc().getElementById("quiz-result").textContent};
}
until("the lesson to start", () => out.calls.length && doc().getElementById("video").readyState >= 1 &&
      doc().getElementById("video").currentTime > 0 &&
      doc().getElementById("video").textTracks[0].cues.length > 0, () => {
  const v = doc().getElementById("video");
  out.video = {duration: v.duration, cues: v.textTracks[0].cues.length, at: v.currentTime};
  out.steps.push({status: window.API.cmi.core.lesson_status});
  out.steps.push(answer(FIRST));
  doc().getElementById("retry").click();
  out.steps.push(answer(RIGHT));
  frame.src = "about:blank";  // the learner leaves: the page finishes its session
  until("LMSFinish", () => out.calls.some((c) => c[0] === "LMSFinish"), () => send("done"));
});
frame.src = "/pkg/index.html";
</script></body></html>
"""

# The standalone page in a frame with no API anywhere: chapters, captions and the quiz work offline.
PAGE_CHECK = """<!doctype html>
<html><head><meta charset="utf-8"><title>viewer</title><link rel="icon" href="data:,"></head>
<body><iframe id="page" width="1100" height="900"></iframe>
<script>
const RIGHT = %(right)s;
const out = {};
const frame = document.getElementById("page");
const doc = () => frame.contentDocument;
function send(why) {
  out.why = why;
  fetch("/result", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(out)});
}
function until(what, test, then) {
  const started = Date.now();
  (function poll() {
    let ok = false;
    try { ok = test(); } catch (e) { ok = false; }
    if (ok) return then();
    if (Date.now() - started > 40000) return send("timeout waiting for " + what);
    setTimeout(poll, 100);
  })();
}
until("the page", () => doc().getElementById("video").readyState >= 1 &&
      doc().getElementById("video").textTracks[0].cues.length > 0, () => {
  const v = doc().getElementById("video");
  out.cues = v.textTracks[0].cues.length;
  out.chapters = doc().querySelectorAll("#chapters button").length;
  out.transcript = doc().querySelectorAll("#transcript section").length;
  out.lmsNote = !doc().getElementById("lms-note").hidden;
  v.addEventListener("seeked", () => {
    out.seekedTo = v.currentTime;
    RIGHT.forEach((c, i) => doc().querySelector('input[name="q' + (i + 1) + '"][value="' + c + '"]').click());
    doc().getElementById("check").click();
    out.result = doc().getElementById("quiz-result").textContent;
    out.feedback = Array.from(doc().querySelectorAll(".feedback.ok")).length;
    // a request that would leave the machine: the net log must show it
    fetch("%(probe)s", {mode: "no-cors"}).catch(() => {}).finally(() => setTimeout(() => send("done"), 300));
  }, {once: true});
  doc().querySelectorAll("#chapters button")[1].click();
});
frame.src = "/html/index.html";
</script></body></html>
"""


def page_requests(net_log: Path, origin: str) -> list[str]:
    """URLs of every request a page of ``origin`` started, from Chromium's net log (the browser's own
    background requests carry no page as their initiator)."""
    text = net_log.read_text("utf-8", errors="replace").rstrip().rstrip(",")
    try:
        log = json.loads(text)
    except ValueError:  # cut off when the browser was stopped: close the event list
        log = json.loads(text + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in log["events"]
            if e["type"] == start and e.get("params", {}).get("initiator") == origin]


@pytest.fixture(scope="module")
def lesson(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export-browser") / "lesson"
    fakes = {"llm": FakeLLM(), "images": FakeImages(), "speech": FakeSpeech(), "critic": FakeCritic()}
    asyncio.run(run.make(make_request(topic="the water cycle", minutes=0.5), Settings.load(fit_rounds=0), out, **fakes))
    export(out, ["scorm", "html"])
    return out


def _answers(folder: Path) -> list[int]:
    quiz = Project(folder).load().quiz
    assert quiz is not None and len(quiz.questions) >= 3
    return [q.answer for q in quiz.questions]


def test_scorm_package_reports_score_and_status_to_a_scorm12_runtime(lesson, tmp_path):
    if not RUNTIME.is_file():
        pytest.skip(f"the SCORM 1.2 runtime is not installed ({RUNTIME}); run: cd tests/js && npm ci")
    site = tmp_path / "site"
    with zipfile.ZipFile(lesson / "export" / "lesson-scorm12.zip") as zf:
        zf.extractall(site / "pkg")
    (site / "js").mkdir()
    shutil.copyfile(RUNTIME, site / "js" / "scorm12.min.js")
    ns = {"adlcp": "http://www.adlnet.org/xsd/adlcp_rootv1p2"}
    mastery = ET.parse(site / "pkg" / "imsmanifest.xml").getroot().find(".//adlcp:masteryscore", ns).text
    right = _answers(lesson)
    first = [right[0] % 3 + 1, *right[1:]]  # the first question answered wrong
    page = LMS_PAGE % {"first": json.dumps(first), "right": json.dumps(right), "mastery": mastery}
    gen = serve(site, page)
    url, results = next(gen)
    try:
        why = open_page(f"{url}/page.html", results, tmp_path)
    finally:
        gen.close()
    assert results, why
    r = results[0]
    assert r["why"] == "done", r
    n = len(right)
    assert abs(r["video"]["duration"] - video.probe(lesson / "lesson.mp4").duration) <= 0.1
    assert r["video"]["cues"] > 0  # captions load from the package
    assert abs(r["video"]["at"] - 12) < 0.5  # resumed where cmi.core.lesson_location says
    assert r["calls"][0] == ["LMSInitialize"]
    assert r["steps"][0]["status"] == "incomplete"  # set as soon as the lesson opens
    wrong_score = round(100 * (n - 1) / n)
    assert r["steps"][1]["score"] == str(wrong_score) and r["steps"][1]["status"] == "failed"
    assert f"{n - 1} of {n}" in r["steps"][1]["text"]
    assert r["steps"][2]["score"] == "100" and r["steps"][2]["status"] == "passed"
    assert r["final"] == {"status": "passed", "score": "100", "min": "0", "max": "100"}
    sets = {(c[1], c[2]) for c in r["calls"] if c[0] == "LMSSetValue"}
    results_set = [c[2] for c in r["calls"] if c[0] == "LMSSetValue" and c[1].endswith(".result")]
    assert results_set == ["wrong"] + ["correct"] * (n - 1) + ["correct"] * n  # one interaction per answer
    assert ("cmi.core.exit", "") in sets  # finished: no resume needed
    session = [v for k, v in sets if k == "cmi.core.session_time"]
    assert session and re.fullmatch(r"\d{2,4}:\d{2}:\d{2}(\.\d{1,2})?", session[0])
    assert r["calls"][-1] == ["LMSFinish"]


def test_html_page_works_offline_and_asks_for_nothing_outside_its_folder(lesson, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(lesson / "export" / "html", site / "html")
    right = _answers(lesson)
    gen = serve(site, PAGE_CHECK % {"right": json.dumps(right), "probe": PROBE})
    url, results = next(gen)
    net_log = tmp_path / "net-log.json"
    try:
        why = open_page(f"{url}/page.html", results, tmp_path,
                        flags=(f"--log-net-log={net_log}", "--net-log-capture-mode=Default"))
    finally:
        gen.close()
    assert results, why
    r = results[0]
    manifest = Project(lesson).load()
    assert r["why"] == "done", r
    assert r["cues"] > 0 and r["chapters"] == r["transcript"] == len(manifest.scenes)
    assert not r["lmsNote"]  # a standalone page does not look for an LMS
    assert abs(r["seekedTo"] - manifest.scenes[1].start) < 0.5  # a chapter button seeks to its scene
    assert f"{len(right)} of {len(right)}" in r["result"] and r["feedback"] == len(right)
    asked = page_requests(net_log, url)
    assert PROBE in asked, asked  # the check of the check: a request out of the machine is seen
    mine = [u for u in asked if u not in (PROBE, f"{url}/result")]  # the test page's own requests
    assert f"{url}/html/lesson.mp4" in mine, asked
    outside = [u for u in mine if not u.startswith(f"{url}/html/")]
    assert not outside, f"the page asked for something outside its folder: {outside}"
    assert all((site / u[len(url) + 1:].split("?")[0]).is_file() for u in mine), mine
