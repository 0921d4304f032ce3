"""The illustrate ⇄ critique loop: a new seed, then a revised prompt, then the best of the rest."""

from __future__ import annotations

import asyncio

import pytest

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.fakes import FakeLLM
from lessonforge.agent.schemas import PromptRevision
from lessonforge.agent.state import make_request
from lessonforge.tools.base import CriticError
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech

pytestmark = pytest.mark.slow


def _make(tmp_path, *, images, critic=None, llm=None, minutes=0.75, **settings):
    events = []
    llm = llm or FakeLLM()
    manifest = asyncio.run(run.make(
        make_request(topic="the moon", minutes=minutes), Settings.load(fit_rounds=0, **settings), tmp_path / "m",
        llm=llm, images=images, speech=FakeSpeech(), critic=critic or FakeCritic(), on_event=events.append,
    ))
    return manifest, llm, events


def _revisions(llm):
    return [c for c in llm.calls if c[1] is PromptRevision]


def test_a_rejected_picture_is_drawn_again_with_a_new_seed(tmp_path):
    images = FakeImages(fail_first={"scene 2": 1})
    manifest, llm, _ = _make(tmp_path, images=images)
    scene = manifest.scenes[1]
    assert [a.accepted for a in scene.attempts] == [False, True]
    assert scene.attempts[0].seed != scene.attempts[1].seed
    assert scene.attempts[0].prompt == scene.attempts[1].prompt  # the seed changed, not the prompt
    assert "weak match" in scene.attempts[0].reason
    assert scene.critic == "accepted" and scene.illustration.sha256 != scene.attempts[0].image.sha256
    assert not _revisions(llm)
    assert all(len(s.attempts) == 1 for s in manifest.scenes if s.index != 2)


def test_then_the_prompt_is_rewritten_from_the_critics_feedback(tmp_path):
    images = FakeImages(fail_first={"scene 2": 2})
    manifest, llm, _ = _make(tmp_path, images=images)
    scene = manifest.scenes[1]
    assert [a.accepted for a in scene.attempts] == [False, False, True]
    [revision] = _revisions(llm)
    asked = revision[0][-1].content
    assert scene.attempts[1].reason in asked  # the critic's feedback went to the LLM
    assert scene.attempts[2].prompt.endswith("shown up close") and scene.final_prompt == scene.attempts[2].prompt


def test_when_nothing_passes_the_best_is_kept_and_marked(tmp_path):
    manifest, _, events = _make(tmp_path, images=FakeImages(fail_first={"scene 3": 3}), max_attempts=3)
    scene = manifest.scenes[2]
    assert len(scene.attempts) == 3 and not any(a.accepted for a in scene.attempts)
    assert scene.critic == "below_bar"
    best = max(scene.attempts, key=lambda a: a.score)
    assert scene.illustration.sha256 == best.image.sha256
    assert any("scene 3" in w and "no picture passed" in w for w in manifest.warnings)
    assert any(e.get("level") == "warning" and e.get("scene") == 3 for e in events)
    for a in scene.attempts:  # every attempt is recorded in full
        assert a.prompt and a.seed >= 0 and len(a.scores) == 3 and a.rank >= 1 and a.seconds >= 0


def test_attempts_are_bounded_by_max_attempts(tmp_path):
    manifest, _, _ = _make(tmp_path, images=FakeImages(fail_first={"scene 1": 7}), max_attempts=5)
    assert len(manifest.scenes[0].attempts) == 5


def test_pictures_of_concurrent_scenes_are_judged_together(tmp_path):
    critic = FakeCritic()
    manifest, _, _ = _make(tmp_path, images=FakeImages(), critic=critic, minutes=1.5)
    judged = sum(len(s.attempts) for s in manifest.scenes)
    assert judged == 6
    assert critic.score_calls < judged  # one pass scored several scenes' pictures


class BrokenCritic(FakeCritic):
    def scores(self, images, prompts):
        raise CriticError("the critic model crashed")


def test_a_failing_critic_leaves_scenes_unjudged_not_lost(tmp_path):
    manifest, _, _ = _make(tmp_path, images=FakeImages(), critic=BrokenCritic())
    assert manifest.status == "done"
    assert {s.critic for s in manifest.scenes} == {"unjudged"}
    assert all("critic model crashed" in s.critic_note for s in manifest.scenes)


def test_diffusers_batches_the_scenes_pictures(tmp_path, tiny_sd):
    from lessonforge.tools.images.diffusers import DiffusersImages

    images = DiffusersImages(str(tiny_sd), batch_window_s=0.2)
    manifest, _, _ = _make(tmp_path, images=images, critic=FakeCritic(floor=0.0, margin=-1.0), image_size=64)
    assert len(manifest.scenes) == 3
    assert images.pipeline_calls < 3  # concurrent scenes shared a pipeline call


def test_vision_critic_judges_the_composed_slide_against_the_narration(tmp_path, fake_openai):
    import base64
    import io
    import json

    from PIL import Image

    from lessonforge.tools.critic.openai import OpenAICritic

    verdict = {"matches_narration": 5, "legible": 5, "resembles_other_scene": None, "problems": [], "suggestion": ""}
    fake_openai.default = lambda request: json.dumps(verdict)
    critic = OpenAICritic("gpt-4.1-mini", base_url=fake_openai.url, api_key="sk-test")
    manifest, _, _ = _make(tmp_path, images=FakeImages(), critic=critic)
    assert {s.critic for s in manifest.scenes} == {"accepted"}
    request = fake_openai.chat_requests[0].json
    parts = request["messages"][-1]["content"]
    url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.width / image.height == pytest.approx(16 / 9, rel=0.02)  # the slide, not the square picture
    text = " ".join(p.get("text", "") for p in parts)
    assert any(s.narration[:40] in text for s in manifest.scenes)
