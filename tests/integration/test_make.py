"""End to end: a topic in, a lesson video out, through the real graph, cache and renderer."""

from __future__ import annotations

import asyncio
import json
import re
import wave
from pathlib import Path

import pytest

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.fakes import FakeLLM
from lessonforge.agent.project import Project
from lessonforge.agent.state import make_request
from lessonforge.tools.base import SpeechError
from lessonforge.tools.cache import file_hash
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech
from lessonforge.tools.llm.openai import OpenAILLM
from lessonforge.tools.media import video
from tests.fake_openai import Error

pytestmark = pytest.mark.slow


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def _parse_srt(text: str) -> list[tuple[float, float, str]]:
    def t(s: str) -> float:
        h, m, rest = s.split(":")
        sec, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(sec) + int(ms) / 1000

    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        start, end = lines[1].split(" --> ")
        cues.append((t(start), t(end), " ".join(lines[2:])))
    return cues


def test_topic_to_video_with_real_backends(tmp_path, lesson_server, tiny_sd, tiny_clip, monkeypatch):
    """Real openai client (fake server), tiny diffusers + CLIP from save_pretrained, espeak-ng."""
    # the first answer is not valid for the Outline schema: the backend must repair it by a retry
    lesson_server.script('{"title": "Photosynthesis"}')
    monkeypatch.setenv("OPENAI_BASE_URL", lesson_server.url)
    settings = Settings.load(
        llm="openai:gpt-4.1-mini",
        images=f"diffusers:{tiny_sd}",
        speech="espeak:en-us",
        critic=f"clip:{tiny_clip}",
        image_size=64,
        max_attempts=2,
    )
    request = make_request(topic="photosynthesis", minutes=0.75)
    events: list[dict] = []
    out = tmp_path / "lesson"
    manifest = asyncio.run(run.make(request, settings, out, on_event=events.append))

    # the repair: the second request carried the validation error back to the model
    chats = lesson_server.chat_requests
    assert len(chats) >= 3
    repair = chats[1].json["messages"]
    assert repair[-1]["role"] == "user" and "objectives" in repair[-1]["content"]
    assert all(r.json["response_format"]["json_schema"]["strict"] for r in chats)

    # the video
    mp4 = out / "lesson.mp4"
    info = video.probe(mp4)
    assert (info.video_codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert info.faststart
    assert abs(info.video_duration - info.audio_duration) <= 0.2
    assert len(manifest.scenes) == 3
    narration = sum(s.speech.duration for s in manifest.scenes)
    assert narration <= info.duration <= narration + 3 * 3.0  # narration plus pauses / reading time
    assert [c[0] for c in info.chapters] == [s.title for s in manifest.scenes]

    # the manifest is complete and true to the files
    data = json.loads((out / "lesson.json").read_text())
    assert data["status"] == "done"
    assert data["request"]["topic"] == "photosynthesis"
    assert data["outline"]["objectives"] and data["script"]["scenes"]
    assert data["backends"] == {
        "llm": "openai:gpt-4.1-mini",
        "images": f"diffusers:{tiny_sd}",
        "speech": "espeak:en-us",
        "speech_fallback": "espeak:",
        "critic": f"clip:{tiny_clip}",
    }
    assert {"plan", "write", "narrate", "illustrate", "critique", "compose", "assemble"} <= set(data["timings"])
    assert data["usage"]["prompt_tokens"] > 0
    for scene in manifest.scenes:
        folder = out / "scenes" / scene.slug
        assert re.fullmatch(rf"{scene.index:02d}-[a-z0-9-]+", scene.slug)
        for ref in (scene.speech.audio, scene.slide, scene.illustration):
            assert file_hash(out / ref.path) == ref.sha256
        assert (folder / "narration.wav").exists() and (folder / "slide.png").exists()
        assert abs(_wav_seconds(folder / "narration.wav") - scene.speech.duration) < 0.01
        assert 1 <= len(scene.attempts) <= 2
        for a in scene.attempts:
            assert (out / a.image.path).is_file() and a.image.path.startswith(f"scenes/{scene.slug}/attempts/")
            assert a.score is not None and len(a.scores) == 3 and a.accepted is not None
        assert scene.critic in ("accepted", "below_bar")
        assert len({a.seed for a in scene.attempts}) == len(scene.attempts)
    assert data["video"]["file"]["sha256"] == file_hash(mp4)

    # subtitles cover the narration, in order, inside each scene's time
    cues = _parse_srt((out / "lesson.srt").read_text())
    spoken = " ".join(s.narration for s in manifest.scenes)
    words = re.findall(r"\w+", spoken.lower())
    assert re.findall(r"\w+", " ".join(c[2] for c in cues).lower()) == words
    assert any(c[2].rstrip().endswith((".", "?", "!")) for c in cues)  # the narration's punctuation is kept
    for a, b in zip(cues, cues[1:]):
        assert a[1] <= b[0] + 1e-3
    assert cues[-1][1] <= info.audio_duration + 0.05
    assert (out / "lesson.vtt").read_text().startswith("WEBVTT")

    # progress went through the stream: every stage, every scene
    stages = {e["stage"] for e in events}
    assert {"plan", "write", "narrate", "illustrate", "critique", "compose", "assemble", "done"} <= stages
    assert {e["scene"] for e in events if e["stage"] == "scene_done"} == {1, 2, 3}


class Crash(SpeechError):
    pass


class CrashingSpeech(FakeSpeech):
    """Speaks until the n-th call, then fails (once the calls before it are done: scenes speak
    concurrently) as a process kill would stop it."""

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__()
        self.crash_at = crash_at
        self.done = 0

    async def speak(self, text, voice, out):
        if self.crash_at is not None and self.calls + 1 >= self.crash_at:
            for _ in range(1000):
                if self.done >= self.crash_at - 1:
                    break
                await asyncio.sleep(0.01)
            raise Crash("simulated crash")
        speech = await super().speak(text, voice, out)
        self.done += 1
        return speech


def _fakes(**kw):
    return {"llm": FakeLLM(), "images": FakeImages(), "critic": FakeCritic(), **kw}


def test_rerun_after_a_crash_reuses_finished_work(tmp_path):
    settings = Settings.load(fit_rounds=0)
    request = make_request(topic="the water cycle", minutes=1.0)  # 4 scenes
    out = tmp_path / "w"
    first = _fakes(speech=CrashingSpeech(crash_at=3))
    with pytest.raises(Crash):
        asyncio.run(run.make(request, settings, out, **first))
    failed = Project(out).load()
    assert failed.status == "failed" and "simulated crash" in failed.error
    assert failed.script is not None  # the written script is on disk
    assert failed.backends["llm"] == "fake:" and failed.settings["fit_rounds"] == 0  # with what it was made
    spoken_before = first["speech"].calls
    assert spoken_before == 2

    second = _fakes(speech=CrashingSpeech())
    manifest = asyncio.run(run.make(request, settings, out, **second))
    assert manifest.status == "done"
    # the LLM was asked only for the questions (the crashed run never reached them), finished narrations
    # were not spoken again, no picture drawn twice
    assert [schema.__name__ for _, schema in second["llm"].calls] == ["Quiz"]
    assert second["speech"].calls == 4 - spoken_before
    assert first["images"].calls + second["images"].calls == 4  # one accepted picture per scene
    info = video.probe(out / "lesson.mp4")
    assert abs(info.video_duration - info.audio_duration) <= 0.2


def test_render_after_hand_edit_redoes_only_that_scene(tmp_path):
    settings = Settings.load(fit_rounds=0)
    request = make_request(topic="volcanoes", minutes=0.75)
    out = tmp_path / "v"
    asyncio.run(run.make(request, settings, out, **_fakes(speech=FakeSpeech())))
    before = {p: p.stat().st_mtime_ns for p in (out / ".lessonforge" / "assets").rglob("*") if p.is_file()}
    slides_before = {p.parent.name: file_hash(p) for p in (out / "scenes").glob("*/slide.png")}
    duration_before = video.probe(out / "lesson.mp4").duration

    data = json.loads((out / "lesson.json").read_text())
    data["scenes"][1]["narration"] += " And here is one more sentence that you added by hand to this scene."
    data["scenes"][1]["bullets"] = ["An edited key phrase"]
    (out / "lesson.json").write_text(json.dumps(data))

    speech = FakeSpeech()
    images = FakeImages()
    manifest = asyncio.run(run.render(out, settings, speech=speech, images=images, critic=FakeCritic()))
    assert speech.calls == 1 and images.calls == 0
    assert manifest.scenes[1].bullets == ["An edited key phrase"]
    assert manifest.script.scenes[1].narration.endswith("added by hand to this scene.")
    after = {p: p.stat().st_mtime_ns for p in (out / ".lessonforge" / "assets").rglob("*") if p.is_file()}
    assert all(after[p] == t for p, t in before.items())  # nothing produced before was touched
    slides_after = {p.parent.name: file_hash(p) for p in (out / "scenes").glob("*/slide.png")}
    changed = {k for k in slides_after if slides_after[k] != slides_before.get(k)}
    assert changed == {manifest.scenes[1].slug}
    assert video.probe(out / "lesson.mp4").duration > duration_before + 2


def test_llm_failure_keeps_partial_work_and_says_why(tmp_path, fake_openai, monkeypatch):
    """A server that keeps failing: a clear LLMError, and lesson.json records the failure."""
    from lessonforge.tools.base import LLMError

    fake_openai.script(*[Error(400, body={"error": {"message": "model overloaded", "type": "x"}})] * 3)
    llm = OpenAILLM("m", base_url=fake_openai.url, max_retries=0)
    with pytest.raises(LLMError, match="overloaded"):
        asyncio.run(run.make(make_request(topic="tides"), Settings.load(), tmp_path / "t",
                             llm=llm, speech=FakeSpeech(), images=FakeImages(), critic=FakeCritic()))
    m = Project(tmp_path / "t").load()
    assert m.status == "failed" and "overloaded" in m.error
