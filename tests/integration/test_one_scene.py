"""One scene's problem never sinks a lesson: a malformed visual is asked for again, alone, with its
neighbours as context; if it is still wrong the scene degrades to text, with a warning in lesson.json."""

from __future__ import annotations

import asyncio
import json

import pytest

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.fakes import FakeLLM, default_answer
from lessonforge.agent.schemas import SceneReplacement, Script
from lessonforge.agent.state import make_request
from lessonforge.tools.base import Message
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech

pytestmark = pytest.mark.slow

BROKEN_CYCLE = {"kind": "cycle", "stages": ["only", "two"], "caption": ""}  # a cycle needs three


def _make(tmp_path, answer):
    llm = FakeLLM(script=[answer] * 200)
    manifest = asyncio.run(run.make(make_request(topic="tides", minutes=0.75), Settings.load(fit_rounds=0),
                                    tmp_path / "t", llm=llm, images=FakeImages(), speech=FakeSpeech(),
                                    critic=FakeCritic()))
    return manifest, json.loads((tmp_path / "t" / "lesson.json").read_text("utf-8"))


def _answering(broken: dict | None, *, drop_narration: bool = False, replacement_broken: bool = False):
    asked: list[str] = []

    def answer(messages: list[Message], schema: type):
        good = default_answer(messages, schema)
        if issubclass(schema, Script):
            data = good.model_dump(mode="json")
            if broken is not None:
                data["scenes"][1]["visual"] = broken
            if drop_narration:
                del data["scenes"][1]["narration"]
            return data
        if schema is SceneReplacement:
            asked.append("\n".join(m.content for m in messages if m.role == "user"))
            if replacement_broken:
                data = good.model_dump(mode="json")
                data["scene"]["visual"] = BROKEN_CYCLE
                return data
        return good

    return answer, asked


def test_a_malformed_visual_is_asked_for_again_alone_and_replaced(tmp_path):
    answer, asked = _answering(BROKEN_CYCLE)
    manifest, saved = _make(tmp_path, answer)
    assert manifest.status == "done" and len(asked) == 1  # one request, for that scene alone
    assert "Scene 2 of the lesson" in asked[0] and "stages" in asked[0]  # the problem, named
    assert "The scene before it: Part 1" in asked[0]  # with its neighbours as context
    second = saved["scenes"][1]
    assert second["degraded"] == "" and second["visual"]["kind"] == "picture"
    assert not any("visual left out" in w for w in saved["warnings"])


def test_a_visual_still_malformed_degrades_that_scene_only(tmp_path):
    answer, asked = _answering(BROKEN_CYCLE, replacement_broken=True)
    manifest, saved = _make(tmp_path, answer)
    assert manifest.status == "done" and len(asked) == 1
    second = saved["scenes"][1]
    assert second["visual"] == {"kind": "text"} and "stages" in second["degraded"]
    assert [w for w in saved["warnings"] if "visual left out" in w][0].startswith("scene 2:")
    assert all(s["degraded"] == "" for k, s in enumerate(saved["scenes"]) if k != 1)


def test_an_unreadable_scene_is_written_again_in_its_place(tmp_path):
    answer, asked = _answering(None, drop_narration=True)
    manifest, saved = _make(tmp_path, answer)
    assert manifest.status == "done" and len(asked) == 1 and "could not be used" in asked[0]
    assert len(saved["scenes"]) == 3 and saved["scenes"][1]["narration"]


def test_an_unreadable_scene_that_cannot_be_written_is_left_out_with_a_warning(tmp_path):
    def answer(messages: list[Message], schema: type):
        if schema is SceneReplacement:
            return '{"scene": 1}'  # never valid: the fake gives up after its repairs
        good, inner = _answering(None, drop_narration=True)
        return good(messages, schema)

    manifest, saved = _make(tmp_path, answer)
    assert manifest.status == "done" and len(saved["scenes"]) == 2
    assert any(w.startswith("scene 2 could not be written and was left out") for w in saved["warnings"])
