"""Slides build with the voice in the video itself; --builds off keeps one still per scene."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.schemas import Script
from lessonforge.agent.state import make_request
from lessonforge.tools.fakes import FakeSpeech
from lessonforge.tools.media import video

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "photosynthesis.json"


def _make(out: Path, **settings):
    script = Script.model_validate(json.loads(EXAMPLE.read_text("utf-8"))["script"])  # beside its "request"
    return asyncio.run(run.make(make_request(topic="photosynthesis", minutes=1.5), Settings.load(
        fit_rounds=0, images="none", critic="none", **settings), out, script=script, speech=FakeSpeech()))


def _distinct_pictures(mp4: Path, scratch: Path) -> int:
    """How many different pictures the video shows (each still is encoded as its first and last frame)."""
    scratch.mkdir()
    subprocess.run([video.ffmpeg_exe(), "-v", "error", "-i", str(mp4), "-fps_mode", "passthrough",
                    str(scratch / "f%05d.png")], check=True)
    pictures, last = 0, None
    for f in sorted(scratch.glob("*.png")):
        small = np.asarray(Image.open(f).convert("L").resize((192, 108)), dtype=float)
        if last is None or np.abs(small - last).mean() > 1.0:  # a new picture, not coding noise
            pictures += 1
        last = small
    return pictures


def test_key_phrases_appear_as_they_are_said_and_the_answer_after_a_pause(tmp_path):
    manifest = _make(tmp_path / "on")
    scenes = manifest.scenes
    built = [s for s in scenes if s.bullets]
    assert all(len(s.builds) >= 2 for s in built)
    for s in built:  # phrases appear in order, one more at each step, while the narration is speaking
        shown = [b.shown for b in s.builds]
        assert shown == sorted(shown) and shown[-1] == len(s.bullets) and s.builds[0].start == 0.0
        assert all(b.start <= s.speech.duration for b in s.builds)
    question = scenes[-1]
    assert question.role == "question" and question.speech.answer_at is not None
    assert [b.reveal_answer for b in question.builds] == [False, True]
    assert question.builds[1].start == pytest.approx(question.speech.answer_at, abs=0.01)
    spoken_question = max(e for w, s, e in question.speech.words if s < question.speech.answer_at)
    assert question.speech.answer_at - spoken_question >= 2.5  # a thinking pause before the answer
    srt = (tmp_path / "on" / "lesson.srt").read_text("utf-8")
    assert "Oxygen, released" in srt  # the answer is heard and captioned
    frames = _distinct_pictures(tmp_path / "on" / "lesson.mp4", tmp_path / "frames-on")
    assert frames >= len(scenes) + sum(len(s.builds) - 1 for s in built)
    assert (tmp_path / "on" / "storyboard.png").is_file() and manifest.video.storyboard is not None
    icons = [s.pictogram for s in scenes]
    assert icons[:3] == ["tree", "sun", "leaf"]  # its own pictogram, or one standing in for a picture
    assert any("Font Awesome Free" in c and "CC BY 4.0" in c for c in manifest.video.credits)


def test_builds_off_keeps_one_still_per_scene(tmp_path):
    manifest = _make(tmp_path / "off", builds=False)
    assert all(s.builds == [] for s in manifest.scenes)
    cards = 2  # the opening and the closing card
    assert _distinct_pictures(tmp_path / "off" / "lesson.mp4", tmp_path / "frames-off") == len(manifest.scenes) + cards


def test_a_title_card_opens_and_an_end_card_closes_the_lesson(tmp_path):
    from lessonforge.agent import nodes

    manifest = _make(tmp_path / "cards")
    mp4 = tmp_path / "cards" / "lesson.mp4"
    info = video.probe(mp4)
    holds = sum(s.hold_seconds for s in manifest.scenes)
    assert info.duration == pytest.approx(holds + nodes.END_CARD_SECONDS, abs=0.1)  # counted in the length
    assert info.chapters[-1][2] == pytest.approx(info.duration, abs=0.1)
    frames = tmp_path / "f"
    frames.mkdir()
    subprocess.run([video.ffmpeg_exe(), "-v", "error", "-i", str(mp4), "-fps_mode", "passthrough",
                    str(frames / "f%05d.png")], check=True)
    shots = sorted(frames.glob("*.png"))
    slide1 = np.asarray(Image.open(tmp_path / "cards" / manifest.scenes[0].builds[0].slide.path).convert("L"), float)
    opening = np.asarray(Image.open(shots[0]).convert("L"), float)
    closing = np.asarray(Image.open(shots[-1]).convert("L"), float)
    last = np.asarray(Image.open(tmp_path / "cards" / manifest.scenes[-1].slide.path).convert("L"), float)
    assert np.abs(opening - slide1).mean() > 10 and np.abs(closing - last).mean() > 10  # cards, not slides
