"""Refinement through the real CLI: edit, chat (scripted input), history, undo, --review."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lessonforge.agent.cli import app
from lessonforge.agent.project import Project
from lessonforge.tools.cache import file_hash

pytestmark = pytest.mark.slow

runner = CliRunner()
FAKES = ["--llm", "fake:", "--images", "fake:", "--speech", "fake:", "--critic", "fake:"]


def _cli(*args, input=None):
    result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def lesson(tmp_path):
    folder = tmp_path / "tides"
    code, out = _cli("make", "tides", "--minutes", "1", "--out", str(folder), "--quiet", *FAKES)
    assert code == 0, out
    return folder


def _scene_files(folder):
    return {p.relative_to(folder).as_posix(): file_hash(p)
            for p in (folder / "scenes").rglob("*") if p.is_file()}


def test_edit_one_scene_leaves_the_others_byte_identical(lesson):
    before = _scene_files(lesson)
    code, out = _cli("edit", str(lesson), "make scene 2 simpler")
    assert code == 0, out
    assert "Made scene 2 simpler" in out and "lesson.mp4" in out
    after = _scene_files(lesson)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed and all(k.startswith("scenes/02-") for k in changed)
    assert {"scenes/02-part-2-the-sunlight/narration.wav", "scenes/02-part-2-the-sunlight/slide.png"} - set(
        after
    ) == set()
    assert "scenes/02-part-2-the-sunlight/narration.wav" in changed
    m = Project(lesson).load()
    assert len(m.scenes[1].narration.split()) < len(m.scenes[0].narration.split())
    code, out = _cli("history", str(lesson))
    assert "* 2: edit: make scene 2 simpler" in out and "  1: make 'tides'" in out


def test_a_scene_that_does_not_exist_gets_a_plain_answer(lesson):
    code, out = _cli("edit", str(lesson), "make scene 14 simpler")
    assert code == 2 and "no scene 14" in out and "4 scenes" in out  # refused: a script sees it failed
    assert Project(lesson).current_version() == 1  # nothing was produced


def test_an_ambiguous_request_gets_a_question(lesson):
    code, out = _cli("edit", str(lesson), "change it a bit")
    assert code == 0 and "?" in out
    assert Project(lesson).current_version() == 1


def test_lesson_wide_voice_change_respeaks_but_keeps_slides(lesson):
    slides = {k: v for k, v in _scene_files(lesson).items() if k.endswith("slide.png")}
    code, out = _cli("edit", str(lesson), "use a British voice")
    assert code == 0, out
    m = Project(lesson).load()
    assert m.request.voice == "en-GB" and all(s.speech.voice == "en-GB" for s in m.scenes)
    assert {k: v for k, v in _scene_files(lesson).items() if k.endswith("slide.png")} == slides


def test_chat_loop_persists_and_undoes(lesson):
    code, out = _cli("chat", str(lesson), input="make scene 3 simpler\n/history\n/undo\n/quit\n")
    assert code == 0, out
    assert "Made scene 3 simpler" in out
    assert "* 2: edit: make scene 3 simpler" in out
    assert "Back to version 1" in out
    assert Project(lesson).current_version() == 1
    m = Project(lesson).load()
    first = Project(lesson).version_manifest(1)
    assert [s.narration for s in m.scenes] == [s.narration for s in first.scenes]
    # quit and come back: the conversation is still there
    code, out = _cli("chat", str(lesson), input="/quit\n")
    assert code == 0 and "3 earlier turn(s)" in out and "Back to version 1" in out
    code, out = _cli("undo", str(lesson))
    assert code == 2 and "nothing to undo" in out


def test_review_pauses_after_the_outline(tmp_path):
    folder = tmp_path / "r"
    code, out = _cli("make", "volcanoes", "--minutes", "0.5", "--out", str(folder), "--review", *FAKES,
                     input="more about magma\ny\n")
    assert code == 0, out
    assert out.count("Outline:") == 2  # shown, notes given, shown again, approved
    m = json.loads((folder / "lesson.json").read_text())
    assert m["status"] == "done"


def test_review_notes_reach_the_new_plan(tmp_path):
    import asyncio

    from lessonforge.agent import run
    from lessonforge.agent.config import Settings
    from lessonforge.agent.fakes import FakeLLM
    from lessonforge.agent.schemas import Outline
    from lessonforge.agent.state import make_request
    from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech

    shown = []

    def review(outline):
        shown.append(outline)
        return {"approve": False, "feedback": "start with a real eruption"} if len(shown) == 1 else {"approve": True}

    llm = FakeLLM()
    asyncio.run(run.make(make_request(topic="volcanoes", minutes=0.5), Settings.load(fit_rounds=0), tmp_path / "v",
                         llm=llm, images=FakeImages(), speech=FakeSpeech(), critic=FakeCritic(), on_review=review))
    plans = [c for c in llm.calls if c[1] is Outline]
    assert len(plans) == 2 and len(shown) == 2
    assert "start with a real eruption" in plans[1][0][-1].content
    assert "start with a real eruption" not in plans[0][0][-1].content
