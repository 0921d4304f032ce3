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

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.export import export
from lessonforge.agent.fakes import FakeLLM
from lessonforge.agent.project import Project
from lessonforge.agent.state import make_request
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech
from lessonforge.tools.media import video
from tests.integration.test_browser import open_page, serve

pytestmark = pytest.mark.slow

NODE_MODULES = Path(__file__).resolve().parents[1] / "js" / "node_modules"
RUNTIME = NODE_MODULES / "scorm-again" / "dist" / "scorm12.min.js"
PROBE = "http://probe.lessonforge.invalid/external"

# Shared by the test pages: the lesson in a frame, polling for a state, posting what was seen.
HARNESS = """<!doctype html>
<html><head><meta charset="utf-8"><title>%(title)s</title><link rel="icon" href="data:,">%(head)s</head>
<body><iframe id="frame" width="1100" height="900"></iframe>
<script>
const out = {calls: [], steps: []};
const frame = document.getElementById("frame");
const doc = () => frame.contentDocument;
const video = () => doc().getElementById("video");
function send(why) {
  out.why = why;
  if (window.API) out.final = {status: API.cmi.core.lesson_status, score: API.cmi.core.score.raw,
                               min: API.cmi.core.score.min, max: API.cmi.core.score.max};
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
  return {status: window.API ? API.cmi.core.lesson_status : null, score: window.API ? API.cmi.core.score.raw : null,
          text: doc().getElementById("quiz-result").textContent};
}
const ready = () => video().readyState >= 1 && video().textTracks[0].cues.length > 0;
%(script)s
frame.src = "%(src)s";
</script></body></html>
"""

# The LMS side: scorm-again's SCORM 1.2 API as window.API, with the mastery score from the manifest.
LMS = """
window.API = new Scorm12API({autocommit: false, logLevel: 5});
if ("%(mastery)s") API.cmi.student_data.mastery_score = "%(mastery)s";  // from imsmanifest.xml
if ("%(location)s") API.cmi.core.lesson_location = "%(location)s";  // where the learner left off last time
API.on("LMSInitialize", () => out.calls.push(["LMSInitialize"]));
API.on("LMSSetValue.cmi.*", (el, v) => out.calls.push(["LMSSetValue", el, String(v)]));
API.on("LMSCommit", () => out.calls.push(["LMSCommit"]));
API.on("LMSFinish", () => out.calls.push(["LMSFinish"]));
function leave() {  // the learner leaves: the page finishes its session
  frame.src = "about:blank";
  until("LMSFinish", () => out.calls.some((c) => c[0] === "LMSFinish"), () => send("done"));
}
"""

# The quiz answered by clicks: first with one wrong answer, then (after "Try again") all right.
QUIZ_RUN = LMS + """
const FIRST = %(first)s, RIGHT = %(right)s;
until("the lesson to resume", () => out.calls.length && ready() && video().currentTime > 0, () => {
  out.video = {duration: video().duration, cues: video().textTracks[0].cues.length, at: video().currentTime};
  out.steps.push({status: API.cmi.core.lesson_status});
  out.steps.push(answer(FIRST));
  doc().getElementById("retry").click();
  out.steps.push(answer(RIGHT));
  leave();
});
"""

# A lesson without questions, watched to its end.
WATCH_RUN = LMS + """
until("the lesson to start", () => out.calls.length && ready(), () => {
  out.steps.push({status: API.cmi.core.lesson_status, quiz: !doc().getElementById("quiz").hidden});
  video().currentTime = video().duration - 0.4;
  video().play();
  until("the end", () => video().ended && API.cmi.core.lesson_status === "completed", leave);
});
"""

# The standalone page with no API anywhere: chapters, captions and the quiz work offline.
PAGE_RUN = """
const RIGHT = %(right)s;
until("the page", ready, () => {
  out.cues = video().textTracks[0].cues.length;
  out.chapters = doc().querySelectorAll("#chapters button").length;
  out.transcript = doc().querySelectorAll("#transcript section").length;
  out.lmsNote = !doc().getElementById("lms-note").hidden;
  video().addEventListener("seeked", () => {
    out.seekedTo = video().currentTime;
    out.result = answer(RIGHT).text;
    out.feedback = doc().querySelectorAll(".feedback.ok").length;
    // a request that would leave the machine: the net log must show it
    fetch("%(probe)s", {mode: "no-cors"}).catch(() => {}).finally(() => setTimeout(() => send("done"), 300));
  }, {once: true});
  doc().querySelectorAll("#chapters button")[1].click();
});
"""


def harness(script: str, src: str, lms: bool) -> str:
    head = '<script src="/js/scorm12.min.js"></script>' if lms else ""
    return HARNESS % {"title": "LMS" if lms else "viewer", "head": head, "script": script, "src": src}


def unpack(package: Path, site: Path) -> str:
    """The package where an LMS would serve it, beside the runtime; returns its mastery score."""
    if not RUNTIME.is_file():
        pytest.skip(f"the SCORM 1.2 runtime is not installed ({RUNTIME}); run: cd tests/js && npm ci")
    with zipfile.ZipFile(package) as zf:
        zf.extractall(site / "pkg")
    (site / "js").mkdir()
    shutil.copyfile(RUNTIME, site / "js" / "scorm12.min.js")
    ns = {"adlcp": "http://www.adlnet.org/xsd/adlcp_rootv1p2"}
    found = ET.parse(site / "pkg" / "imsmanifest.xml").getroot().find(".//adlcp:masteryscore", ns)
    return found.text if found is not None else ""


def visit(site: Path, page: str, tmp_path: Path, flags: tuple[str, ...] = ()) -> tuple[dict, str]:
    gen = serve(site, page)
    url, results = next(gen)
    try:
        why = open_page(f"{url}/page.html", results, tmp_path, flags=flags)
    finally:
        gen.close()
    assert results, why
    return results[0], url


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
    site = tmp_path / "site"
    mastery = unpack(lesson / "export" / "lesson-scorm12.zip", site)
    right = _answers(lesson)
    first = [right[0] % 3 + 1, *right[1:]]  # the first question answered wrong
    script = QUIZ_RUN % {"first": json.dumps(first), "right": json.dumps(right), "mastery": mastery, "location": 12}
    r, _ = visit(site, harness(script, "/pkg/index.html", lms=True), tmp_path)
    n = len(right)
    assert abs(r["video"]["duration"] - video.probe(lesson / "lesson.mp4").duration) <= 0.1
    assert r["video"]["cues"] > 0  # captions load from the package
    assert abs(r["video"]["at"] - 12) < 0.5  # resumed where cmi.core.lesson_location said
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
    net_log = tmp_path / "net-log.json"
    page = harness(PAGE_RUN % {"right": json.dumps(right), "probe": PROBE}, "/html/index.html", lms=False)
    r, url = visit(site, page, tmp_path, flags=(f"--log-net-log={net_log}", "--net-log-capture-mode=Default"))
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


def test_a_lesson_without_questions_is_completed_when_watched_to_the_end(tmp_path):
    from tests.integration.test_visuals import SCRIPT  # made from a script with no LLM: no questions

    out = tmp_path / "w"
    asyncio.run(run.make(make_request(topic="water cycle", minutes=0.5), Settings.load(fit_rounds=0), out,
                         script=SCRIPT, images=FakeImages(), speech=FakeSpeech(), critic=FakeCritic()))
    export(out, ["scorm"])
    site = tmp_path / "site"
    assert unpack(out / "export" / "lesson-scorm12.zip", site) == ""  # no mastery score without questions
    r, _ = visit(site, harness(WATCH_RUN % {"mastery": "", "location": ""}, "/pkg/index.html", lms=True), tmp_path)
    assert r["why"] == "done", r
    assert r["steps"][0] == {"status": "incomplete", "quiz": False}
    assert r["final"]["status"] == "completed" and r["final"]["score"] == ""
    assert ("LMSSetValue", "cmi.core.exit", "") in {tuple(c) for c in r["calls"]}
