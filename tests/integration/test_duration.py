"""--minutes is honoured: the lesson ends within ±5% (or ±6 s) of the target."""

from __future__ import annotations

import asyncio

import pytest

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.fakes import FakeLLM, default_answer
from lessonforge.agent.schemas import Script
from lessonforge.agent.state import make_request
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech
from lessonforge.tools.media import video

pytestmark = pytest.mark.slow


def _twice_too_long(messages, schema):
    """The writer ignores its budgets: every narration is twice as long as asked."""
    script = default_answer(messages, Script)
    return script.model_copy(update={"scenes": [
        sc.model_copy(update={"narration": sc.narration + " " + sc.narration}) for sc in script.scenes
    ]})


def _make(tmp_path, minutes, *, llm, speech, **settings):
    request = make_request(topic="glaciers", minutes=minutes)
    manifest = asyncio.run(run.make(request, Settings.load(**settings), tmp_path / "g", llm=llm, speech=speech,
                                    images=FakeImages(), critic=FakeCritic()))
    info = video.probe(tmp_path / "g" / "lesson.mp4")
    return manifest, info


def test_narration_written_twice_too_long_ends_within_tolerance(tmp_path):
    llm = FakeLLM(script=[lambda m, s: default_answer(m, s), _twice_too_long])
    manifest, info = _make(tmp_path, 2.0, llm=llm, speech=FakeSpeech())
    assert abs(info.duration - 120) <= 6.0
    assert manifest.duration.within and abs(manifest.duration.actual - info.duration) < 0.1
    assert any("must have about" in c[0][-1].content for c in llm.calls)  # rewrites were asked for


def test_a_slower_voice_is_measured_and_the_lesson_refitted(tmp_path):
    # budgets assume 150 wpm, the voice speaks 110: the first cut runs ~35% long
    llm = FakeLLM()
    manifest, info = _make(tmp_path, 3.0, llm=llm, speech=FakeSpeech(wpm=110), fit_rounds=2)
    assert abs(info.duration - 180) <= 9.0
    assert manifest.duration.words_per_minute == pytest.approx(110, rel=0.05)
    assert manifest.duration.rewrites >= 1
    for scene in manifest.scenes:  # each scene records its target, its plan and what it became
        assert scene.target_seconds > 0 and scene.planned_words > 0 and scene.hold_seconds > 0


def test_without_rewrites_the_tempo_closes_a_small_gap(tmp_path):
    # 8% slow and no rewrite rounds: speaking ~8% faster fits it, within the ±10% bound
    manifest, info = _make(tmp_path, 3.0, llm=FakeLLM(), speech=FakeSpeech(wpm=138), fit_rounds=0)
    assert abs(info.duration - 180) <= 9.0
    assert 1.0 < manifest.duration.tempo <= 1.1
    assert all(s.speech.tempo == manifest.duration.tempo for s in manifest.scenes)
    # subtitles follow the retimed speech: no cue ends after the audio
    srt = (tmp_path / "g" / "lesson.srt").read_text()
    last = srt.strip().split("\n\n")[-1].splitlines()[1].split(" --> ")[1]
    h, m, rest = last.split(":")
    assert int(h) * 3600 + int(m) * 60 + float(rest.replace(",", ".")) <= info.audio_duration + 0.05


def test_a_gap_too_large_for_tempo_is_reported_not_hidden(tmp_path):
    manifest, info = _make(tmp_path, 3.0, llm=FakeLLM(), speech=FakeSpeech(wpm=90), fit_rounds=0)
    assert not manifest.duration.within
    assert manifest.duration.tempo == pytest.approx(1.1)
    assert any("against a target of 180" in w for w in manifest.warnings)
