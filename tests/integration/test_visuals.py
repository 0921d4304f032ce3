"""Diagram scenes and --motion, through a real make."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from PIL import Image

from lessonforge.agent import nodes, run
from lessonforge.agent.config import Settings
from lessonforge.agent.schemas import SceneDraft, Script
from lessonforge.agent.state import make_request
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech
from lessonforge.tools.media import video
from lessonforge.tools.media.diagrams import Cycle

pytestmark = pytest.mark.slow

CYCLE = Cycle(kind="cycle", stages=["Evaporation", "Condensation", "Precipitation", "Collection"],
              caption="The water cycle")
SCRIPT = Script(title="The water cycle", scenes=[
    SceneDraft(role="process", title="Water moves in a loop", bullets=["Four stages"], visual=CYCLE, key="",
               answer="", narration="Water moves in a loop: it evaporates, condenses, falls, and collects again."),
    SceneDraft(role="concept", title="Clouds", bullets=["Tiny droplets"], key="", answer="",
               visual={"kind": "picture", "prompt": "white clouds over a green valley, flat illustration"},
               narration="Clouds are made of tiny droplets of water that cooled high in the sky."),
])


def _make(tmp_path, **settings):
    images = FakeImages()
    manifest = asyncio.run(run.make(make_request(topic="water cycle", minutes=0.5),
                                    Settings.load(fit_rounds=0, **settings), tmp_path / "w", script=SCRIPT,
                                    speech=FakeSpeech(), images=images, critic=FakeCritic()))
    return manifest, images


def test_a_diagram_scene_is_drawn_not_generated(tmp_path):
    manifest, images = _make(tmp_path)
    diagram_scene, picture_scene = manifest.scenes
    assert diagram_scene.kind == "cycle" and diagram_scene.visual == CYCLE
    assert diagram_scene.attempts == [] and diagram_scene.illustration is None
    assert images.calls == 1 and len(picture_scene.attempts) == 1  # only the illustration scene drew
    left, top, right, bottom = diagram_scene.picture_box
    slide = np.asarray(Image.open(tmp_path / "w" / diagram_scene.slide.path).convert("L"), dtype=float)
    assert slide[top:bottom, left:right].std() > 20  # the diagram's box is drawn, not empty


def test_a_malformed_diagram_degrades_the_scene_to_text_not_the_lesson():
    scene = SceneDraft.model_validate({"role": "process", "title": "x", "bullets": [], "narration": "y", "key": "",
                                       "answer": "", "visual": {"kind": "cycle", "stages": ["only", "two"],
                                                                "caption": ""}})
    assert scene.kind == "text" and "stages" in scene.degraded
    assert scene.raw_visual["stages"] == ["only", "two"]  # kept, so the writer can ask again with it


def test_motion_keeps_the_length_and_moves_the_picture(tmp_path):
    manifest, _ = _make(tmp_path, motion=True)
    mp4 = tmp_path / "w" / "lesson.mp4"
    info = video.probe(mp4)
    assert abs(info.video_duration - info.audio_duration) <= 0.2
    closing = nodes.END_CARD_SECONDS  # the end card after the last scene
    assert abs(info.duration - sum(s.hold_seconds for s in manifest.scenes) - closing) <= 0.1
