"""--clips end to end: a scene the writer marks for motion gets a clip from a fake Videos API server,
played in its picture box under the title band; a refused, failed or rejected clip leaves the scene
to a picture, with a warning; lesson.json records model, seconds and cost."""

from __future__ import annotations

import asyncio
import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.fakes import FakeLLM, default_answer
from lessonforge.agent.schemas import Script
from lessonforge.agent.state import make_request
from lessonforge.tools.media import video
from tests.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.slow

CLIP_PROMPT = "water boiling in a glass pot, bubbles rising, side view"


@pytest.fixture(scope="module")
def pattern_mp4(tmp_path_factory) -> bytes:
    """A 2-second moving test pattern (shorter than the scene: it must loop)."""
    out = tmp_path_factory.mktemp("clip") / "pattern.mp4"
    subprocess.run([video.ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=160x90:rate=24:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)],
                   check=True)
    return out.read_bytes()


def writer_with_a_clip(messages, schema):
    """The fake writer's script, its second scene marked for motion (the schema sent must allow it)."""
    script = default_answer(messages, schema).model_dump(mode="json")
    script["scenes"][1]["role"] = "process"
    script["scenes"][1]["visual"] = {"kind": "clip", "prompt": CLIP_PROMPT, "seconds": 6}
    return script


def lesson(tmp_path, server, **settings):
    llm = FakeLLM(script=[default_answer, writer_with_a_clip])
    events: list[dict] = []
    manifest = asyncio.run(run.make(
        make_request(topic="boiling water", minutes=0.5), Settings.load(
            llm="fake:", images="fake:", speech="fake:", clips="videos:sora-2", **settings),
        tmp_path / "lesson", on_event=events.append, llm=llm))
    return manifest, llm, events


def frame_at(mp4, seconds: float) -> np.ndarray:
    raw = subprocess.run([video.ffmpeg_exe(), "-loglevel", "error", "-ss", f"{seconds:.3f}", "-i", str(mp4),
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True,
                         capture_output=True).stdout
    info = video.probe(mp4)
    return np.frombuffer(raw, np.uint8).reshape(info.height, info.width, 3).astype(int)


def test_a_clip_plays_in_the_picture_box_under_the_title(tmp_path, monkeypatch, pattern_mp4):
    with FakeOpenAIServer(videos=pattern_mp4, video_polls=0) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        manifest, llm, events = lesson(tmp_path, server, critic="none")
        form = server.video_requests[0].json
    # the writer was offered the clip kind, and the server asked for the scene's clip
    [write_schema] = [s for _, s in llm.calls if issubclass(s, Script)]
    assert '"clip"' in json.dumps(write_schema.model_json_schema())
    assert form["prompt"] == CLIP_PROMPT and form["seconds"] == "8" and form["size"] == "1280x720"
    scene = manifest.scenes[1]
    assert scene.clip is not None and scene.attempts == []  # no picture was drawn for it
    saved = json.loads((tmp_path / "lesson" / "lesson.json").read_text())["scenes"][1]["clip"]
    assert (saved["model"], saved["seconds"], saved["cost"]) == ("videos:sora-2", 8.0, 0.8)
    assert manifest.backends["clips"] == "videos:sora-2"
    # the clip plays in its box below the title, looping through the whole scene; the title stays still
    x0, y0, x1, y1 = scene.clip.box
    assert scene.hold_seconds > 4  # longer than the 2-second clip
    mp4 = tmp_path / "lesson" / "lesson.mp4"
    shots = [frame_at(mp4, scene.start + t) for t in (0.5, 1.25, scene.hold_seconds - 0.5)]
    inside = [s[y0 + 4:y1 - 4, x0 + 4:x1 - 4] for s in shots]
    assert np.abs(inside[0] - inside[1]).mean() > 3  # it moves
    assert np.abs(inside[1] - inside[2]).mean() > 3  # still moving after the clip's own 2 seconds (looped)
    slide = np.asarray(Image.open(tmp_path / "lesson" / scene.slide.path).convert("RGB")).astype(int)
    # the text beside or above the clip is the slide's own
    text = (slice(None), slice(0, x0)) if x0 > 8 else (slice(0, y0), slice(None))
    assert shots[0][text].size and np.abs(shots[0][text] - slide[text]).mean() < 4
    info = video.probe(mp4)
    assert abs(info.video_duration - info.audio_duration) <= 0.2
    assert not [e for e in events if e.get("level") == "warning" and "clip" in e.get("message", "")]


def test_the_cost_cap_refuses_before_any_call_and_the_scene_gets_a_picture(tmp_path, monkeypatch, pattern_mp4):
    with FakeOpenAIServer(videos=pattern_mp4) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        manifest, _, _ = lesson(tmp_path, server, critic="fake:", clip_budget=0.5)  # an 8 s clip costs $0.80
        assert server.video_requests == []
    scene = manifest.scenes[1]
    assert scene.clip is None and scene.attempts and scene.illustration is not None
    assert scene.attempts[0].prompt == CLIP_PROMPT  # the clip's prompt drew the picture
    assert any("scene 2: no clip" in w and "--clip-budget" in w for w in manifest.warnings)


def test_a_failed_clip_degrades_and_a_rejected_one_gives_way_to_pictures(tmp_path, monkeypatch, pattern_mp4):
    with FakeOpenAIServer(videos=pattern_mp4, video_polls=0, video_error="content policy") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        manifest, _, _ = lesson(tmp_path / "failed", server, critic="fake:")
    assert manifest.scenes[1].clip is None and manifest.scenes[1].illustration is not None
    assert any("scene 2: no clip" in w and "content policy" in w for w in manifest.warnings)
    # the fake critic sees nothing of the prompt in a test pattern's frames: the clip is rejected
    with FakeOpenAIServer(videos=pattern_mp4, video_polls=0) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        manifest, _, _ = lesson(tmp_path / "rejected", server, critic="fake:")
    scene = manifest.scenes[1]
    assert scene.clip is None and scene.illustration is not None and scene.critic == "accepted"
    assert any("rejected the clip (0 of 3 frames accepted" in w for w in manifest.warnings)
