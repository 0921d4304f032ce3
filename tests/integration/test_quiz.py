"""Learner questions in a real lesson: written by make (through an OpenAI-compatible server too),
kept in lesson.json, changed in chat like any scene, following their scenes, undone like any edit."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from lessonforge.agent import edit, run
from lessonforge.agent.cli import app
from lessonforge.agent.config import Settings
from lessonforge.agent.fakes import FakeLLM
from lessonforge.agent.project import Project
from lessonforge.agent.state import make_request
from lessonforge.tools.cache import file_hash
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech

pytestmark = pytest.mark.slow

runner = CliRunner()
FAKES = ["--llm", "fake:", "--images", "fake:", "--speech", "fake:", "--critic", "fake:"]


def _cli(*args):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _files(folder):
    return {p.relative_to(folder).as_posix(): file_hash(p) for p in (folder / "scenes").rglob("*") if p.is_file()}


@pytest.fixture
def lesson(tmp_path):
    folder = tmp_path / "tides"
    code, out = _cli("make", "tides", "--minutes", "1.5", "--out", str(folder), "--quiet", *FAKES)
    assert code == 0, out
    return folder


def test_make_writes_3_to_5_questions_on_scenes_of_the_lesson(lesson):
    data = json.loads((lesson / "lesson.json").read_text())
    questions = data["quiz"]["questions"]
    assert 3 <= len(questions) <= 5
    for q in questions:
        assert q["stem"] and q["explanation"] and 3 <= len(q["options"]) <= 5
        assert 1 <= q["answer"] <= len(q["options"])
        assert 1 <= q["scene"] <= len(data["scenes"])


def test_make_question_2_harder_changes_only_question_2_and_undo_restores_it(lesson):
    before, quiz = _files(lesson), Project(lesson).load().quiz
    code, out = _cli("edit", str(lesson), "make question 2 harder", *FAKES, "--quiet")
    assert code == 0, out
    assert "question 2" in out
    new = Project(lesson).load().quiz
    assert new.questions[1].stem != quiz.questions[1].stem and len(new.questions[1].options) > len(
        quiz.questions[1].options
    )
    assert [new.questions[k] for k in (0, 2)] == [quiz.questions[k] for k in (0, 2)]
    assert _files(lesson) == before  # no scene was produced again
    code, out = _cli("undo", str(lesson), "--quiet")
    assert code == 0, out
    assert Project(lesson).load().quiz == quiz


def test_a_question_that_does_not_exist_gets_a_plain_answer(lesson):
    code, out = _cli("edit", str(lesson), "make question 9 harder", *FAKES, "--quiet")
    assert code == 2 and "there is no question 9" in out  # refused: a script sees it failed
    assert Project(lesson).current_version() == 1  # nothing was produced


def test_deleting_a_scene_drops_its_question_and_renumbers_the_rest(lesson):
    quiz = Project(lesson).load().quiz
    assert quiz.questions[0].scene == 1
    code, out = _cli("edit", str(lesson), "delete scene 1", *FAKES, "--quiet")
    assert code == 0, out
    new = Project(lesson).load().quiz
    assert [(q.stem, q.scene) for q in new.questions] == [(q.stem, q.scene - 1) for q in quiz.questions[1:]]
    assert "dropped question 1" in out


def test_a_new_language_writes_the_questions_again(tmp_path):
    fakes = dict(images=FakeImages(), speech=FakeSpeech(), critic=FakeCritic())
    out = tmp_path / "l"
    asyncio.run(run.make(make_request(topic="tides", minutes=0.5), Settings.load(fit_rounds=0), out, llm=FakeLLM(),
                         **fakes))
    llm = FakeLLM()
    from lessonforge.agent.schemas import EditPlan, LessonChange

    plan = EditPlan(
        action="edit",
        reply="In French.",
        scene_edits=[],
        inserts=[],
        deletes=[],
        order=None,
        lesson=LessonChange(voice=None, language="fr", audience=None, minutes=None, theme=None, aspect=None),
    )
    llm.script = [plan]
    result = asyncio.run(edit.edit(out, "in French please", llm=llm, **fakes))
    assert "questions written again" in result.changed
    asked = [schema.__name__ for _, schema in llm.calls]
    assert asked[-1] == "Quiz" and "fr" in llm.calls[-1][0][0].content  # asked for in the new language


def test_questions_come_through_an_openai_compatible_server(tmp_path, lesson_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", lesson_server.url)
    settings = Settings.load(llm="openai:gpt-4.1-mini", images="none", speech="fake:", critic="none", fit_rounds=0)
    manifest = asyncio.run(run.make(make_request(topic="tides", minutes=0.5), settings, tmp_path / "t"))
    assert manifest.quiz is not None and 3 <= len(manifest.quiz.questions) <= 5
    quiz_request = next(r.json for r in lesson_server.chat_requests
                        if r.json["response_format"]["json_schema"]["name"] == "Quiz")
    scene = quiz_request["response_format"]["json_schema"]["schema"]["$defs"]["Question"]["properties"]["scene"]
    assert scene["maximum"] == len(manifest.scenes)  # the lesson's scene range is in the strict schema


class NoQuestions(FakeLLM):
    """An LLM whose questions cannot be asked (each answer points past its options), as a very small
    model's may not."""

    def _next(self, messages, schema):
        reply = super()._next(messages, schema)
        if schema.__name__ == "Quiz":
            data = reply.model_dump()
            for q in data["questions"]:
                q["options"], q["answer"] = q["options"][:3], 5
            return data
        return reply


def test_a_quiz_that_cannot_be_written_leaves_the_lesson_made_and_says_so(tmp_path):
    fakes = dict(images=FakeImages(), speech=FakeSpeech(), critic=FakeCritic())
    out = tmp_path / "l"
    manifest = asyncio.run(run.make(make_request(topic="tides", minutes=0.5), Settings.load(fit_rounds=0), out,
                                    llm=NoQuestions(), **fakes))
    assert manifest.status == "done" and manifest.quiz is None and (out / "lesson.mp4").is_file()
    assert any("no learner questions" in w and "answer 5 is not one of its 3 options" in w for w in manifest.warnings)
    result = asyncio.run(edit.edit(out, "write the questions", llm=FakeLLM(), **fakes))
    assert result.changed == ["questions written"]
    assert 3 <= len(Project(out).load().quiz.questions) <= 5
