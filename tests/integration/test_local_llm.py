"""The whole make with the local LLM backend: a tiny random-weight model, constrained to the schemas."""

from __future__ import annotations

import asyncio

import pytest

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.state import make_request
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech
from lessonforge.tools.llm.local import LocalLLM
from lessonforge.tools.media import video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_lm_path(tmp_path_factory):
    from tests.tiny_lm import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm") / "lm")


@pytest.mark.parametrize("seed", [0, 1])
def test_make_runs_end_to_end_with_a_local_model(tmp_path, tiny_lm_path, seed):
    events, expected = [], set()
    llm = LocalLLM(str(tiny_lm_path), max_new_tokens=4000, seed=seed, max_string_chars=40, max_items=4,
                   on_tokens=lambda n, rate, total: expected.add(total))
    manifest = asyncio.run(run.make(make_request(topic="tides", minutes=0.5), Settings.load(fit_rounds=0),
                                    tmp_path / "t", llm=llm, images=FakeImages(), speech=FakeSpeech(),
                                    critic=FakeCritic(), on_event=events.append))
    assert manifest.status == "done" and manifest.backends["llm"] == f"local:{tiny_lm_path}"
    assert 1 <= len(manifest.scenes) <= 4 and manifest.outline is not None
    assert manifest.usage["completion_tokens"] > 0
    assert expected and None not in expected  # every step told the model how long a reply to expect (ETA)
    info = video.probe(tmp_path / "t" / "lesson.mp4")
    assert abs(info.video_duration - info.audio_duration) <= 0.2


def test_a_tiny_model_with_the_default_limits_finishes_a_30_second_lesson(tmp_path, tiny_lm_path):
    """The schema sent carries the request's own limits (exactly the scenes asked for, narration within its
    word budget), so even a random model under constrained decoding stops well inside the token cap."""
    asked: list[tuple[str, int]] = []

    class Counted(LocalLLM):
        async def structured(self, messages, schema):
            before = self.usage.completion_tokens
            try:
                return await super().structured(messages, schema)
            finally:
                asked.append((schema.__name__, self.usage.completion_tokens - before))

    llm = Counted(str(tiny_lm_path), seed=0)  # max_new_tokens and every bound at their defaults
    manifest = asyncio.run(run.make(make_request(topic="tides", minutes=0.5), Settings.load(fit_rounds=0),
                                    tmp_path / "t", llm=llm, images=FakeImages(), speech=FakeSpeech(),
                                    critic=FakeCritic()))
    assert manifest.status == "done" and len(manifest.scenes) == 3  # the count asked for
    lesson = [(name, tokens) for name, tokens in asked if not name.startswith("Quiz")]  # the questions come after
    assert [name for name, _ in lesson] == ["Outline", "Script"], asked  # one call each: nothing was asked again
    assert all(tokens < llm.max_new_tokens for _, tokens in lesson)  # each stopped inside the cap


def test_first_use_downloads_the_model_with_its_size_and_progress(tmp_path, tiny_lm_path, fake_hub):
    fake_hub.repos["org/tiny-lm"] = {str(p.relative_to(tiny_lm_path)): p.read_bytes()
                                     for p in tiny_lm_path.rglob("*") if p.is_file()}
    size = sum(len(data) for name, data in fake_hub.repos["org/tiny-lm"].items()
               if name.endswith((".json", ".safetensors", ".jinja", ".txt")) and name != "README.md")

    def make(folder, events):
        llm = LocalLLM("org/tiny-lm", max_new_tokens=4000, seed=0, max_string_chars=40, max_items=4)
        return asyncio.run(run.make(make_request(topic="tides", minutes=0.5), Settings.load(fit_rounds=0),
                                    folder, llm=llm, images=FakeImages(), speech=FakeSpeech(),
                                    critic=FakeCritic(), on_event=events.append))

    events: list[dict] = []
    manifest = make(tmp_path / "first", events)
    assert manifest.status == "done"
    downloads = [e for e in events if e["stage"] == "download"]
    note = downloads[0]["message"]
    assert note.startswith("First use: downloading org/tiny-lm (") and "later runs use the cached copy" in note
    assert downloads[0]["data"]["bytes"] == [size]  # the size is known and said before the download
    last = downloads[-1]["data"]
    assert last["unit"] == "bytes" and last["done"] == last["total"] == size
    # Everything the download step sent came before any planning.
    assert events.index(downloads[-1]) < next(i for i, e in enumerate(events) if e["stage"] == "plan")

    again: list[dict] = []
    assert make(tmp_path / "second", again).status == "done"
    assert not [e for e in again if e["stage"] == "download"]  # cached: nothing is fetched twice
