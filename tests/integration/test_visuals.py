"""Diagram scenes and --motion, through a real make."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from PIL import Image

from agent import run
from agent.config import Settings
from agent.schemas import SceneDraft, Script
from agent.state import make_request
from tools import video
from tools.diagrams import Diagram
from tools.fakes import FakeCritic, FakeImages, FakeSpeech

pytestmark = pytest.mark.slow

CYCLE = Diagram(kind="cycle", labels=["Evaporation", "Condensation", "Precipitation", "Collection"], values=[],
                columns=[], rows=[], caption="The water cycle")
SCRIPT = Script(title="The water cycle", scenes=[
    SceneDraft(title="Water moves in a loop", bullets=["Four stages"], visual="diagram", diagram=CYCLE,
               narration="Water moves in a loop: it evaporates, condenses, falls, and collects again.",
               illustration_prompt="the water cycle"),
    SceneDraft(title="Clouds", bullets=["Tiny droplets"], visual="illustration",
               narration="Clouds are made of tiny droplets of water that cooled high in the sky.",
               illustration_prompt="white clouds over a green valley, flat illustration"),
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
    assert diagram_scene.visual == "diagram" and diagram_scene.diagram == CYCLE
    assert diagram_scene.attempts == [] and diagram_scene.illustration is None
    assert images.calls == 1 and len(picture_scene.attempts) == 1  # only the illustration scene drew
    left, top, right, bottom = diagram_scene.picture_box
    slide = np.asarray(Image.open(tmp_path / "w" / diagram_scene.slide.path).convert("L"), dtype=float)
    assert slide[top:bottom, left:right].std() > 20  # the diagram's box is drawn, not empty


def test_a_diagram_scene_without_a_diagram_is_refused():
    with pytest.raises(ValueError, match="no diagram"):
        SceneDraft(title="x", bullets=[], narration="y", illustration_prompt="z", visual="diagram")


def test_motion_keeps_the_length_and_moves_the_picture(tmp_path):
    manifest, _ = _make(tmp_path, motion=True)
    mp4 = tmp_path / "w" / "lesson.mp4"
    info = video.probe(mp4)
    assert abs(info.video_duration - info.audio_duration) <= 0.2
    assert abs(info.duration - sum(s.hold_seconds for s in manifest.scenes)) <= 0.1
