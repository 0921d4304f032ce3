"""Narration rewritten toward its word budget: one routine, used by fit (before speech) and measure (after)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from lessonforge.agent.config import Settings
from lessonforge.agent.context import Context
from lessonforge.agent.fakes import FakeLLM
from lessonforge.agent.nodes import fit, measure
from lessonforge.agent.nodes.lesson import LONGER, SHORTER, rewrite_to_budget
from lessonforge.agent.nodes.timing import count_words, word_budgets
from lessonforge.agent.project import Project
from lessonforge.agent.schemas import SceneDraft, Script
from lessonforge.agent.state import AssetRef, LessonRequest, SceneRecord, SpeechRecord
from lessonforge.tools.fakes import FakeSpeech


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONFORGE_CACHE_DIR", str(tmp_path / "user-cache"))  # no measured voice rates


def _draft(n: int, words: int) -> SceneDraft:
    return SceneDraft(title=f"Scene {n}", bullets=[f"point {n}"], narration=" ".join(["word"] * words) + ".",
                      illustration_prompt=f"a picture {n}", visual="illustration")


def _ctx(tmp_path, llm: FakeLLM, **settings) -> Context:
    return Context(project=Project(tmp_path / "lesson"), settings=Settings(**settings), speech=FakeSpeech(), llm=llm)


def _asked(llm: FakeLLM) -> list[str]:
    return ["\n".join(str(m.content) for m in msgs) for msgs, _ in llm.calls]


def test_rewrite_reaches_each_budget_and_keeps_the_others(tmp_path):
    llm = FakeLLM()
    drafts = [_draft(1, 90), _draft(2, 30), _draft(3, 5)]
    out = asyncio.run(rewrite_to_budget(_ctx(tmp_path, llm), LessonRequest(topic="tides"), drafts, [0, 2],
                                        [30, 30, 30], [12.0, 12.0, 12.0], 150.0))
    assert [abs(count_words(d.narration) - 30) <= 3 for d in out] == [True, True, True]
    assert out[1] == drafts[1]  # not asked
    assert [d.title for d in out] == ["Scene 1", "Scene 2", "Scene 3"]
    prompts = _asked(llm)  # asked at once, so in any order: each prompt is found by its scene's title
    assert len(prompts) == 2
    first, third = (next(p for p in prompts if f"Scene title: Scene {k}\n" in p) for k in (1, 3))
    assert SHORTER in first and LONGER not in first  # 90 words against 30: shorter
    assert LONGER in third and SHORTER not in third  # 5 words against 30: longer


def test_a_lesson_wide_direction_overrides_each_scenes_own(tmp_path):
    llm = FakeLLM()
    asyncio.run(rewrite_to_budget(_ctx(tmp_path, llm), LessonRequest(topic="tides"), [_draft(1, 5)], [0], [30],
                                  [12.0], 150.0, shorter=True))
    [prompt] = _asked(llm)
    assert SHORTER in prompt  # the lesson runs long, so even a short scene is cut


def test_fit_brings_scenes_off_budget_to_it(tmp_path):
    llm = FakeLLM()
    ctx = _ctx(tmp_path, llm, fit_rounds=2)
    req = LessonRequest(topic="tides", minutes=1)
    targets = [20.0, 20.0, 20.0]
    budgets = word_budgets(targets, ctx.settings.words_per_minute, ctx.settings.gap_seconds)
    script = Script(title="Tides", scenes=[_draft(1, budgets[0]), _draft(2, 200), _draft(3, 4)])
    out = asyncio.run(fit({"request": req, "script": script, "targets": targets},
                          SimpleNamespace(context=ctx)))  # type: ignore[arg-type]
    scenes = out["script"].scenes
    assert scenes[0] == script.scenes[0]  # on budget: untouched
    for sc, budget in zip(scenes, budgets, strict=True):
        assert abs(count_words(sc.narration) - budget) <= ctx.settings.fit_tolerance * budget
    assert len(llm.calls) == 2  # one round was enough
    assert ctx.project.load().script == out["script"]  # saved as progress


def _record(k: int, draft: SceneDraft, seconds: float) -> SceneRecord:
    speech = SpeechRecord(audio=AssetRef(path=f"scenes/{k}/narration.wav", sha256="0" * 64), duration=seconds,
                          voice="v", backend="fake:")
    return SceneRecord(index=k, slug=f"{k:02d}-s", target_seconds=20.0, speech=speech, **draft.model_dump())


def test_measure_rewrites_a_lesson_that_runs_long_toward_the_budgets(tmp_path):
    llm = FakeLLM()
    ctx = _ctx(tmp_path, llm, fit_rounds=2)
    req = LessonRequest(topic="tides", minutes=1)
    targets = [20.0, 20.0, 20.0]
    drafts = [_draft(k, 100) for k in (1, 2, 3)]
    state = {"request": req, "script": Script(title="Tides", scenes=drafts), "targets": targets,
             "scenes": {k: _record(k, d, 40.0) for k, d in enumerate(drafts, 1)}}  # twice as long as planned
    out = asyncio.run(measure(state, SimpleNamespace(context=ctx)))  # type: ignore[arg-type]
    assert out["refits"] == 1 and not out["duration"].within
    wpm = out["duration"].words_per_minute  # the rate the voice was measured at
    budgets = word_budgets(targets, wpm, ctx.settings.gap_seconds)
    for sc, budget in zip(out["script"].scenes, budgets, strict=True):
        assert abs(count_words(sc.narration) - budget) <= 3
    assert all(SHORTER in p for p in _asked(llm))
