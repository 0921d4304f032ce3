"""--images openai:gpt-image-1 in a lesson: pictures in the shape of their slide's picture box, judged and
drawn again like diffusers pictures, each attempt's cost in lesson.json."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from PIL import Image

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.state import make_request
from tests.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.slow


def picture(request: dict) -> bytes:
    w, h = (int(v) for v in request["size"].split("x"))
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (30, 120, 90)).save(buf, "PNG")
    return buf.getvalue()


def test_hosted_pictures_take_their_slides_shape_and_record_their_cost(tmp_path, monkeypatch):
    with FakeOpenAIServer(images=picture) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        settings = Settings.load(llm="fake:", images="openai:gpt-image-1", speech="fake:", critic="fake:",
                                 image_quality="high", max_attempts=2)
        manifest = asyncio.run(run.make(make_request(topic="tides", minutes=0.5), settings, tmp_path / "lesson"))
        sent = [r.json for r in server.image_requests]
    hook, concept = manifest.scenes[0], manifest.scenes[1]
    assert (hook.role, concept.role) == ("hook", "concept")
    by_prompt = {r["prompt"]: r for r in sent}
    assert by_prompt[hook.attempts[0].prompt]["size"] == "1536x1024"  # full-bleed 16:9 picture
    assert by_prompt[concept.attempts[0].prompt]["size"] == "1024x1536"  # the tall panel beside the text
    assert all(r["quality"] == "high" and r["model"] == "gpt-image-1" for r in sent)
    # the fake critic finds nothing of the prompt in a flat picture: every scene tried twice, as with diffusers
    assert all(len(s.attempts) == 2 and s.critic == "below_bar" for s in manifest.scenes)
    assert len(sent) == 2 * len(manifest.scenes)
    saved = json.loads((tmp_path / "lesson" / "lesson.json").read_text())
    costs = [a["cost"] for s in saved["scenes"] for a in s["attempts"]]
    assert costs and all(c == pytest.approx((50 * 5 + 4160 * 40) / 1e6) for c in costs)
    assert saved["backends"]["images"] == "openai:gpt-image-1"


def test_a_batch_asks_its_shared_picture_backend_for_the_runs_quality(tmp_path, monkeypatch):
    from lessonforge.agent.batch import run_batch

    topics = tmp_path / "topics.yaml"
    topics.write_text("- tides\n")
    with FakeOpenAIServer(images=picture) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        settings = Settings.load(llm="fake:", images="openai:gpt-image-1", speech="fake:", critic="fake:",
                                 image_quality="low", max_attempts=1)
        report = asyncio.run(run_batch(topics, tmp_path / "run", defaults={"minutes": 0.5}, settings=settings))
        sent = [r.json for r in server.image_requests]
    assert report.done == 1
    assert sent and all(r["quality"] == "low" for r in sent)
