"""Loudness, a pronunciation lexicon and burned-in captions, through a real make."""

from __future__ import annotations

import asyncio
import subprocess

import numpy as np
import pytest
from PIL import Image

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.schemas import SceneDraft, Script
from lessonforge.agent.state import make_request
from lessonforge.tools.fakes import FakeSpeech
from lessonforge.tools.media import loudness, video

pytestmark = pytest.mark.slow


class RecordingSpeech(FakeSpeech):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    async def speak(self, text, voice, out):
        self.texts.append(text)
        return await super().speak(text, voice, out)


SCRIPT = Script(title="Sound levels", scenes=[
    SceneDraft(title="Measuring loudness", bullets=["LUFS", "EBU R128"],
               narration="Broadcasters measure loudness in LUFS. The EBU R128 rule sets the target for you.",
               illustration_prompt="-", visual="text"),
    SceneDraft(title="Why it matters", bullets=["No jumps in volume"],
               narration="When every programme hits the same LUFS level, you never reach for the remote.",
               illustration_prompt="-", visual="text"),
])


def _make(tmp_path, **settings):
    speech = RecordingSpeech()
    manifest = asyncio.run(run.make(make_request(topic="loudness", minutes=0.5),
                                    Settings.load(images="none", fit_rounds=0, **settings),
                                    tmp_path / "l", script=SCRIPT, speech=speech))
    return manifest, speech


def test_narration_is_normalised_to_minus_16_lufs(tmp_path):
    manifest, _ = _make(tmp_path)
    audio = tmp_path / "a.wav"
    subprocess.run([video.ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "l" / "lesson.mp4"), "-vn", str(audio)],
                   check=True)
    assert abs(loudness.measure_loudness(audio) - (-16.0)) <= 1.0
    assert manifest.video.loudness["target_i"] == -16.0
    assert all(abs(s.speech.loudness["output_i"] - (-16.0)) <= 1.0 for s in manifest.scenes)


def test_lexicon_changes_speech_only(tmp_path):
    lex = tmp_path / "lexicon.txt"
    lex.write_text("LUFS = loudness units full scale\nEBU = E B U\n")
    manifest, speech = _make(tmp_path, lexicon=str(lex))
    assert all("LUFS" not in t and "loudness units full scale" in t for t in speech.texts)
    srt = (tmp_path / "l" / "lesson.srt").read_text()
    assert "LUFS" in srt and "full scale" not in srt and "EBU R128" in srt
    assert manifest.scenes[0].bullets == ["LUFS", "EBU R128"] and "LUFS" in manifest.scenes[0].narration


def _frame(mp4, at, out):
    subprocess.run([video.ffmpeg_exe(), "-v", "error", "-ss", str(at), "-i", str(mp4), "-frames:v", "1", str(out)],
                   check=True)
    return np.asarray(Image.open(out).convert("L"), dtype=float)


@pytest.mark.parametrize("motion", [False, True])
def test_burned_captions_appear_over_the_slide(tmp_path, motion):
    manifest, _ = _make(tmp_path, burn_subtitles=True, motion=motion)
    mp4 = tmp_path / "l" / "lesson.mp4"
    info = video.probe(mp4)
    assert abs(info.video_duration - info.audio_duration) <= 0.2 and manifest.video.burned_subtitles
    slide = np.asarray(Image.open(tmp_path / "l" / "scenes" / manifest.scenes[0].slug / "slide.png").convert("L"),
                       dtype=float)
    frame = _frame(mp4, 1.5, tmp_path / "f.png")  # the first cue is on screen
    h = frame.shape[0]
    bottom = np.abs(frame[int(h * 0.75):] - slide[int(h * 0.75):]).mean()
    top = np.abs(frame[: int(h * 0.25)] - slide[: int(h * 0.25)]).mean()
    assert bottom > 5 * max(top, 0.5)  # the caption changed the lower part, the title area is the slide's
