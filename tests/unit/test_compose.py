"""compose: the slide and its build states drawn once into the store and placed in the scene folder."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from lessonforge.agent.config import Settings
from lessonforge.agent.context import Context
from lessonforge.agent.nodes import compose
from lessonforge.agent.project import Project
from lessonforge.agent.schemas import SceneDraft
from lessonforge.agent.state import AssetRef, LessonRequest, SpeechRecord
from lessonforge.tools.base import RenderError
from lessonforge.tools.fakes import FakeSpeech
from lessonforge.tools.media import layouts


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONFORGE_CACHE_DIR", str(tmp_path / "user-cache"))


def _state(draft: SceneDraft) -> dict:
    words = [("First", 0.0, 0.4), ("we", 0.5, 0.7), ("heat", 1.5, 1.9), ("the", 2.0, 2.1), ("water", 2.2, 2.6),
             ("then", 3.5, 3.8), ("it", 3.9, 4.0), ("boils", 4.1, 4.6)]
    speech = SpeechRecord(audio=AssetRef(path="scenes/01/narration.wav", sha256="0" * 64), duration=5.0, voice="v",
                          backend="fake:", words=words)
    return {"request": LessonRequest(topic="boiling"), "index": 1, "total": 3, "draft": draft,
            "lesson_title": "Boiling", "target_seconds": 8.0, "attempts": [], "chosen": None, "speech": speech,
            "prompts": ["a", "b", "c"]}


def _diagram_scene() -> SceneDraft:
    return SceneDraft.model_validate({
        "role": "process", "title": "How water boils", "bullets": ["Heat", "Water"], "key": "", "answer": "",
        "narration": "First we heat the water, then it boils.",
        "visual": {"kind": "steps", "steps": ["Heat", "Bubbles", "Boil"], "caption": ""}})


def _run(tmp_path, draft: SceneDraft):
    ctx = Context(project=Project(tmp_path / "lesson"), settings=Settings(), speech=FakeSpeech())
    return asyncio.run(compose(_state(draft), SimpleNamespace(context=ctx)))  # type: ignore[arg-type]


def test_a_diagram_that_cannot_be_drawn_leaves_a_text_slide_and_builds_without_it(tmp_path, monkeypatch):
    real, calls = layouts.compose_scene, []

    def no_diagrams(**kw):
        calls.append(kw)
        if kw.get("diagram") is not None:
            raise RenderError("no room for the boxes")
        return real(**kw)

    monkeypatch.setattr(layouts, "compose_scene", no_diagrams)
    out = _run(tmp_path, _diagram_scene())
    record = out["scenes"][1]
    assert record.degraded.startswith("the steps diagram could not be drawn (no room for the boxes)")
    assert record.visual.kind == "text" and any("visual left out" in w for w in out["warnings"])
    assert (tmp_path / "lesson" / record.slide.path).is_file()
    assert record.builds and all((tmp_path / "lesson" / b.slide.path).is_file() for b in record.builds)
    assert [k["diagram"] is None for k in calls].count(False) == 1  # tried once; the build states go without it
    drawn = len(calls)

    # again, from the store: nothing is drawn, and the scene is the same
    again = _run(tmp_path, _diagram_scene())["scenes"][1]
    assert len(calls) == drawn
    assert (again.degraded, again.slide, [b.slide for b in again.builds]) == (
        record.degraded, record.slide, [b.slide for b in record.builds])

    # a build state missing from the store is drawn again without the diagram that failed
    store = Project(tmp_path / "lesson").store
    for build in record.builds:
        for pair in store.root.rglob(f"{build.slide.key}.pair"):
            for f in pair.iterdir():
                f.unlink()
            pair.rmdir()
    third = _run(tmp_path, _diagram_scene())["scenes"][1]
    assert len(calls) == drawn + len(record.builds) and all(k["diagram"] is None for k in calls[drawn:])
    assert [b.slide.sha256 for b in third.builds] == [b.slide.sha256 for b in record.builds]
