"""Eval runs end to end with the shipped fakes: reports, a failing topic, resuming, compare, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lessonforge.agent.config import Settings
from lessonforge.agent.fakes import FakeLLM, default_answer
from lessonforge.evals import judge as J
from lessonforge.evals import report as reporting
from lessonforge.evals.cli import app as eval_app
from lessonforge.evals.runner import run_eval
from lessonforge.tools.base import LLMError, Message
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings(fit_rounds=0)


def judge_with(score: int = 4, correct: tuple[bool, ...] = (True, False)) -> FakeLLM:
    """A judge scripted to give every lesson the same rubric score and quiz grades."""

    def answer(messages: list[Message], schema: type) -> dict:
        if schema is J.Rubric:
            c = {"score": score, "reason": f"scored {score}"}
            return {"accuracy": c, "clarity": c, "logical_flow": c, "engagement": c}
        if schema is J.QuizQuestions:
            return {
                "questions": [
                    {"question": f"Question {k}?", "answer": f"answer {k}"} for k in range(1, len(correct) + 1)
                ]
            }
        if schema is J.QuizAnswers:
            return {"answers": [{"number": k, "answer": f"answer {k}"} for k in range(1, len(correct) + 1)]}
        if schema is J.QuizGrades:
            return {"grades": [{"number": k, "correct": ok, "reason": "r"} for k, ok in enumerate(correct, 1)]}
        raise AssertionError(f"the judge was asked for {schema.__name__}")

    return FakeLLM(script=[answer] * 1000)


def fakes(llm: FakeLLM | None = None) -> dict:
    return {"llm": llm or FakeLLM(), "images": FakeImages(), "speech": FakeSpeech(), "critic": FakeCritic()}


def topic_set(tmp_path: Path, *names: str) -> Path:
    path = tmp_path / "topics.yaml"
    entries = "".join(
        f"  - {{topic: {n}, minutes: 0.5, audience: primary school, language: en, key_concepts: [{n}, water, sun]}}\n"
        for n in names
    )
    path.write_text("name: mini\ntopics:\n" + entries, "utf-8")
    return path


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[str] = []
        self.images: list[str] = []
        self.rows = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append(a.get("class", ""))
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "tr":
            self.rows += 1


def test_smoke_eval_writes_both_reports(tmp_path):
    out = tmp_path / "run"
    events: list[dict] = []
    report = asyncio.run(run_eval(ROOT / "evals" / "datasets" / "smoke.yaml", out, jobs=2, settings=SETTINGS,
                                  judge_llm=judge_with(4, (True, False)), on_event=events.append, **fakes()))
    assert [r.status for r in report.lessons] == ["done"] * 3, [r.error for r in report.lessons]

    data = json.loads((out / "report.json").read_text("utf-8"))
    assert data["summary"]["done"] == 3 and data["summary"]["failed"] == 0
    assert len(list((out / "results").glob("*.json"))) == 3
    for lesson in report.lessons:
        lm = lesson.metrics
        assert lm is not None and lm.errors == []
        assert lm.delivery.duration_s is not None and lm.delivery.av_gap_s is not None and lm.delivery.av_gap_s <= 0.2
        assert lm.delivery.subtitles_valid and lm.delivery.subtitle_cues > 0
        assert lm.delivery.wpm == pytest.approx(150, rel=0.05)  # FakeSpeech speaks 150 words a minute
        assert lm.visuals.illustrated == lm.visuals.scenes > 0 and lm.visuals.clip_mean is not None
        assert lm.content.rubric_mean == 4.0 and lm.content.quiz_score == 0.5
        assert set(lm.cost.stage_seconds) >= {"narrate", "compose", "assemble"}
        assert (out / lesson.lesson_dir / "lesson.mp4").is_file()
    # the French lesson is graded with the French reading-ease formula
    assert report.lessons[1].metrics.delivery.readability_formula == "flesch-fr"
    started = {e["topic"] for e in events if e.get("stage") == "eval" and e.get("status") == "start"}
    assert started == {r.slug for r in report.lessons}
    assert any(e.get("stage") == "assemble" and e.get("topic") for e in events)  # lesson events, tagged

    page = (out / "report.html").read_text("utf-8")
    parsed = _Html()
    parsed.feed(page)
    assert "summary" in parsed.tables and "lessons" in parsed.tables
    pngs = [s for s in parsed.images if s.startswith("data:image/png;base64,")]
    jpegs = [s for s in parsed.images if s.startswith("data:image/jpeg;base64,")]
    assert len(pngs) >= 3  # plots
    assert len(jpegs) == sum(len(r.slides) for r in report.lessons) > 0  # every slide as a thumbnail
    assert len(parsed.images) == len(pngs) + len(jpegs)  # nothing is linked from outside
    assert not re.search(r"""(?:src|href)=['"]?(?:https?:|file:|/)""", page)


def test_failed_topic_is_recorded_and_a_rerun_finishes_only_what_is_left(tmp_path):
    dataset = topic_set(tmp_path, "tides", "volcanoes", "rivers")

    def broken_for_volcanoes(messages: list[Message], schema: type):
        if any("volcanoes" in msg.content for msg in messages):
            return '{"title": "no"}'  # never valid: the fake LLM gives up after its repairs
        return default_answer(messages, schema)

    out = tmp_path / "run"
    first = asyncio.run(run_eval(dataset, out, jobs=2, settings=SETTINGS, judge=False,
                                 **fakes(FakeLLM(script=[broken_for_volcanoes] * 1000))))
    status = {r.slug: r.status for r in first.lessons}
    assert status == {"01-tides": "done", "02-volcanoes": "failed", "03-rivers": "done"}
    failed = first.lessons[1]
    assert failed.error_type == "LLMError" and "Outline" in failed.error
    assert first.summary.failed == 1 and first.summary.done == 2
    saved = json.loads((out / "results" / "02-volcanoes.json").read_text("utf-8"))
    assert saved["status"] == "failed" and saved["error"] == failed.error

    llm = FakeLLM()
    events: list[dict] = []
    second = asyncio.run(run_eval(dataset, out, jobs=2, settings=SETTINGS, judge=False, on_event=events.append,
                                  **fakes(llm)))
    assert [r.status for r in second.lessons] == ["done"] * 3
    assert second.resumed == ["01-tides", "03-rivers"]
    skipped = [e["topic"] for e in events if e.get("status") == "skipped"]
    assert skipped == ["01-tides", "03-rivers"]
    prompts = [" ".join(msg.content for msg in convo) for convo, _ in llm.calls]
    assert prompts and all("volcanoes" in p for p in prompts)  # only the failed topic was made again
    assert json.loads((out / "report.json").read_text("utf-8"))["summary"]["done"] == 3


KILL_SCRIPT = """
import asyncio, sys
from lessonforge.agent.config import Settings
from lessonforge.evals.runner import run_eval
from lessonforge.agent.fakes import FakeLLM
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech
asyncio.run(run_eval(sys.argv[1], sys.argv[2], jobs=1, settings=Settings(fit_rounds=0), judge=False,
                     llm=FakeLLM(), images=FakeImages(), speech=FakeSpeech(), critic=FakeCritic()))
"""


def test_killed_run_resumes(tmp_path):
    dataset = topic_set(tmp_path, "tides", "volcanoes", "rivers")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(dataset), str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not list((out / "results").glob("*.json")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the first topic never finished"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    finished = sorted(p.stem for p in (out / "results").glob("*.json"))
    assert finished and len(finished) < 3 and not (out / "report.json").exists()

    report = asyncio.run(run_eval(dataset, out, jobs=2, settings=SETTINGS, judge=False, **fakes()))
    assert [r.status for r in report.lessons] == ["done"] * 3
    assert report.resumed == finished
    assert not list(out.rglob(".*.tmp*"))  # what the killed run was writing was swept


def test_compare_flags_regressions(tmp_path):
    dataset = topic_set(tmp_path, "tides")
    a = asyncio.run(run_eval(dataset, tmp_path / "a", jobs=1, settings=SETTINGS,
                             judge_llm=judge_with(4, (True, True)), **fakes()))
    b = asyncio.run(run_eval(dataset, tmp_path / "b", jobs=1, settings=SETTINGS,
                             judge_llm=judge_with(2, (True, False)), **fakes()))
    cmp = reporting.compare(tmp_path / "a", tmp_path / "b")
    flagged = {d.key for d in cmp.metrics if d.regression}
    assert {"content.rubric_mean", "content.quiz_score"} <= flagged
    assert not any(d.improvement for d in cmp.metrics if d.key.startswith("content."))
    quiz = next(d for d in cmp.metrics if d.key == "content.quiz_score")
    assert (quiz.a, quiz.b, quiz.delta) == (1.0, 0.5, -0.5)
    assert cmp.paired == 1 and cmp.lessons[0].regressions and cmp.has_regressions
    assert any("quiz" in line for line in cmp.regressions)
    # the other way round it is an improvement, and a run against itself changes nothing
    back = reporting.compare(b, a)
    assert not any(d.regression for d in back.metrics if d.key.startswith("content."))
    assert any(d.improvement for d in back.metrics if d.key == "content.quiz_score")
    assert reporting.compare(tmp_path / "a", tmp_path / "a").regressions == []


def _cli() -> typer.Typer:
    main = typer.Typer()

    @main.command()
    def make() -> None:  # the real app has more commands; eval is one of them
        pass

    main.add_typer(eval_app, name="eval")
    return main


FAKE_FLAGS = ["--llm", "fake:", "--images", "fake:", "--speech", "fake:", "--critic", "fake:"]


def test_cli_runs_by_default_and_compares(tmp_path):
    cli, runner = _cli(), CliRunner()
    dataset = topic_set(tmp_path, "tides")
    res = runner.invoke(cli, ["eval", str(dataset), "--out", str(tmp_path / "a"), "--jobs", "1", "--no-judge",
                              *FAKE_FLAGS], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "1/1 lessons done" in _flat(res.output) and (tmp_path / "a" / "report.html").is_file()
    res = runner.invoke(cli, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "a"), "--fail-on-regression"])
    assert res.exit_code == 0 and "no regressions" in res.output

    # a worse run B, built from A's report: the quiz score halves
    data = json.loads((tmp_path / "a" / "report.json").read_text("utf-8"))
    data["lessons"][0]["metrics"]["content"]["quiz_score"] = 0.4
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "report.json").write_text(json.dumps(data), "utf-8")
    data["lessons"][0]["metrics"]["content"]["quiz_score"] = 0.8
    (tmp_path / "a" / "report.json").write_text(json.dumps(data), "utf-8")
    res = runner.invoke(cli, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-on-regression"])
    assert res.exit_code == 1 and "regressed" in res.output and "quiz answered from the lesson" in _flat(res.output)

    res = runner.invoke(cli, ["eval", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "missing.yaml' not found" in _flat(res.output)
    res = runner.invoke(cli, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "no eval report at" in _flat(res.output)


def _flat(text: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(text.split()).replace("/ ", "/")


def test_settings_that_cannot_work_stop_the_run_before_any_lesson(tmp_path):
    from lessonforge.tools.base import ConfigError

    dataset = topic_set(tmp_path, "tides")
    settings = Settings(images="none", critic="none", speech="fake:")  # the default LLM, with no key or server
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        asyncio.run(run_eval(dataset, tmp_path / "run", settings=settings))
    assert not (tmp_path / "run" / "lessons").exists()


def test_the_fake_llm_judges_offline(tmp_path):
    dataset = topic_set(tmp_path, "tides")
    # no judge given: the lesson LLM judges; the fake answers the judge's schemas by rule (lessonforge.evals.fakejudge)
    report = asyncio.run(run_eval(dataset, tmp_path / "run", settings=SETTINGS, **fakes()))
    [lesson] = report.lessons
    content = lesson.metrics.content
    assert lesson.status == "done" and not lesson.metrics.errors
    assert content.rubric is not None and content.quiz is not None and 0 <= content.quiz_score <= 1


def test_a_judge_that_fails_leaves_the_lesson_done_with_the_reason(tmp_path):
    dataset = topic_set(tmp_path, "tides")

    def refuse(messages: list[Message], schema: type) -> dict:
        raise LLMError(f"the judge gave no valid {schema.__name__}")

    report = asyncio.run(run_eval(dataset, tmp_path / "run", settings=SETTINGS,
                                  judge_llm=FakeLLM(script=[refuse] * 10), **fakes()))
    [lesson] = report.lessons
    assert lesson.status == "done" and lesson.metrics.content.concept_coverage is not None
    assert lesson.metrics.content.rubric is None and lesson.metrics.content.quiz is None
    assert any("judge rubric failed" in e and "Rubric" in e for e in lesson.metrics.errors)
    assert any("quiz check failed" in e for e in lesson.metrics.errors)


def test_the_critic_is_built_with_the_floor_and_margin_the_report_records(tmp_path):
    dataset = topic_set(tmp_path, "tides")
    strict = Settings(fit_rounds=0, critic="fake:", critic_floor=5.0, max_attempts=1)  # no picture can pass
    report = asyncio.run(run_eval(dataset, tmp_path / "run", jobs=1, settings=strict, judge=False,
                                  llm=FakeLLM(), images=FakeImages(), speech=FakeSpeech()))
    [lesson] = report.lessons
    assert lesson.status == "done" and lesson.metrics.visuals.below_bar_share == 1.0
    manifest = json.loads((tmp_path / "run" / "lessons" / lesson.slug / "lesson.json").read_text("utf-8"))
    assert {s["critic"] for s in manifest["scenes"]} == {"below_bar"}


def test_a_topic_set_of_prompts_is_read_and_the_report_shows_each_reading(tmp_path):
    from lessonforge.agent.project import Project

    path = tmp_path / "prompts.yaml"
    path.write_text("topics:\n  - prompt: a square 30-second lesson on rainbows for kids, with everyday examples\n"
                    "    key_concepts: [light, water, colours]\n", "utf-8")
    out = tmp_path / "run"
    report = asyncio.run(run_eval(path, out, jobs=1, settings=SETTINGS, judge_llm=judge_with(), **fakes()))
    (lesson,) = report.lessons
    assert lesson.status == "done", lesson.error
    manifest = Project(out / lesson.lesson_dir).load()
    assert manifest.request.aspect == "1:1" and manifest.request.minutes == 0.5
    assert manifest.understood.prompt.startswith("a square 30-second lesson on rainbows")
    page = " ".join((out / "report.html").read_text("utf-8").split())
    assert "understood: rainbows · 0.5 min · kids · en · 1:1 · notes: with everyday examples" in page
