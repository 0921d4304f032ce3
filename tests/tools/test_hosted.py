"""Hosted generators against fake servers: gpt-image pictures (Images API), clips from the OpenAI
Videos API shape and from Veo through google-genai, and the per-lesson cost cap."""

from __future__ import annotations

import asyncio
import io
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from lessonforge.tools.base import ClipBackend, ClipError, ConfigError, ImageError, ImageRequest
from lessonforge.tools.clips import BudgetedClips, ClipBudget, ClipRequest, sample_frames
from lessonforge.tools.clips.openai import OpenAIVideoClips
from lessonforge.tools.clips.veo import VeoClips
from lessonforge.tools.images.openai import OpenAIImages, api_size
from lessonforge.tools.media import video
from tests.fake_gemini import FakeGeminiServer
from tests.fake_openai import Error, FakeOpenAIServer, full_text


def png(size: tuple[int, int], colour=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny_mp4(tmp_path_factory) -> bytes:
    """A 1-second 64x36 test pattern, made with ffmpeg."""
    out = tmp_path_factory.mktemp("clip") / "tiny.mp4"
    subprocess.run([video.ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=64x36:rate=12:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)],
                   check=True)
    return out.read_bytes()


# --------------------------------------------------------------------------- pictures


def test_the_layout_shape_picks_the_api_size():
    assert api_size(512, 512) == "1024x1024"
    assert api_size(768, 432) == "1536x1024"
    assert api_size(432, 768) == "1024x1536"


def test_a_gpt_image_picture_is_sized_priced_and_shaped_to_the_request():
    with FakeOpenAIServer(images=png((1536, 1024)), api_key="sk-test-secret") as server:
        images = OpenAIImages("gpt-image-1", quality="low", base_url=server.url, api_key="sk-test-secret")
        [pic] = asyncio.run(images.generate([ImageRequest("a tide pool at dawn", seed=7, width=768, height=432)]))
        sent = server.image_requests[0].json
    assert sent == {"model": "gpt-image-1", "prompt": "a tide pool at dawn", "n": 1, "size": "1536x1024",
                    "quality": "low", "output_format": "png"}
    assert pic.image.size == (768, 432) and pic.image.getpixel((10, 10)) == (200, 40, 40)
    # usage: 50 text tokens at $5/M and 4160 image tokens at $40/M
    assert float(pic.image.info["lessonforge:cost"]) == pytest.approx((50 * 5 + 4160 * 40) / 1e6)
    assert pic.model == "openai:gpt-image-1" and pic.seed == 7


def test_without_usage_the_price_list_gives_the_cost():
    answer = {"created": 1, "data": [{"b64_json": __import__("base64").b64encode(png((1024, 1024))).decode()}]}
    with FakeOpenAIServer(images=lambda request: answer) as server:
        images = OpenAIImages("gpt-image-1", quality="medium", base_url=server.url)
        [pic] = asyncio.run(images.generate([ImageRequest("a leaf", seed=1, width=512, height=512)]))
    assert float(pic.image.info["lessonforge:cost"]) == pytest.approx(0.042)


def test_a_rejected_key_is_a_config_error_that_never_shows_the_key():
    with FakeOpenAIServer(images=png((64, 64)), api_key="sk-right") as server:
        images = OpenAIImages("gpt-image-1", base_url=server.url, api_key="sk-wrong-secret-123")
        with pytest.raises(ConfigError) as err:
            asyncio.run(images.generate([ImageRequest("a leaf", seed=1)]))
    assert "OPENAI_API_KEY" in str(err.value)
    assert "sk-wrong-secret-123" not in full_text(err.value)


def test_a_refused_prompt_is_an_image_error_and_bad_options_name_the_fix():
    refusal = Error(400, body={"error": {"message": "Your request was rejected by the safety system.",
                                         "type": "invalid_request_error", "code": "moderation_blocked"}})
    with FakeOpenAIServer(images=refusal) as server:
        images = OpenAIImages("gpt-image-1", base_url=server.url)
        with pytest.raises(ImageError, match="safety system"):
            asyncio.run(images.generate([ImageRequest("a leaf", seed=1)]))
    with pytest.raises(ConfigError, match="--image-quality"):
        OpenAIImages("gpt-image-1", quality="ultra", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIImages("gpt-image-1")


# --------------------------------------------------------------------------- clips: the Videos API shape


def test_a_videos_api_clip_is_created_polled_and_downloaded(tmp_path, tiny_mp4):
    with FakeOpenAIServer(videos=tiny_mp4, video_polls=2) as server:
        clips = OpenAIVideoClips("sora-2", base_url=server.url, poll_s=0.01)
        clip = asyncio.run(clips.generate(ClipRequest("water boiling in a glass pot", 6, aspect="9:16"),
                                          tmp_path / "c.mp4"))
        calls = [(r.method, r.path.split("?")[0]) for r in server.video_requests]
        form = server.video_requests[0].json
    assert form == {"prompt": "water boiling in a glass pot", "model": "sora-2", "seconds": "8", "size": "720x1280"}
    assert calls == [("POST", "/v1/videos")] + [("GET", "/v1/videos/video_fake1")] * 3 + [
        ("GET", "/v1/videos/video_fake1/content")]
    assert clip.path.read_bytes() == tiny_mp4
    assert (clip.model, clip.seconds, clip.cost) == ("videos:sora-2", 8.0, pytest.approx(0.8))
    frames = sample_frames(clip.path, 3)
    assert len(frames) == 3 and frames[0].size == (64, 36)


def test_a_failed_or_slow_videos_job_is_a_clip_error(tmp_path, tiny_mp4):
    with FakeOpenAIServer(videos=tiny_mp4, video_error="the prompt was flagged") as server:
        clips = OpenAIVideoClips("sora-2", base_url=server.url, poll_s=0.01)
        with pytest.raises(ClipError, match="the prompt was flagged"):
            asyncio.run(clips.generate(ClipRequest("a volcano", 4), tmp_path / "c.mp4"))
    with FakeOpenAIServer(videos=tiny_mp4, video_polls=10_000) as server:
        clips = OpenAIVideoClips("sora-2", base_url=server.url, poll_s=0.05, timeout_s=0.3)
        with pytest.raises(ClipError, match="did not finish the clip within 0.3 s"):
            asyncio.run(clips.generate(ClipRequest("a volcano", 4), tmp_path / "c.mp4"))
    assert not (tmp_path / "c.mp4").exists()


def test_an_unknown_price_is_a_config_error_naming_the_flag():
    with pytest.raises(ConfigError, match="--clip-price"):
        OpenAIVideoClips("my-own-model", base_url="http://127.0.0.1:9/v1")
    assert (
        OpenAIVideoClips("my-own-model", base_url="http://127.0.0.1:9/v1", price_per_second=0.02).price_per_second
        == 0.02
    )


def test_the_cost_cap_refuses_before_the_first_paid_call(tmp_path, tiny_mp4):
    with FakeOpenAIServer(videos=tiny_mp4, video_polls=0) as server:
        budget = ClipBudget(1.0)
        clips = BudgetedClips(OpenAIVideoClips("sora-2", base_url=server.url, poll_s=0.01), budget)
        asyncio.run(clips.generate(ClipRequest("a river delta", 4), tmp_path / "a.mp4"))  # $0.40 of $1.00
        assert budget.spent == pytest.approx(0.4)
        sent = len(server.video_requests)
        with pytest.raises(ClipError, match=r"\$0\.80.*\$0\.40 of the lesson's \$1\.00.*--clip-budget"):
            asyncio.run(clips.generate(ClipRequest("a glacier", 8), tmp_path / "b.mp4"))  # would be $1.20
        assert len(server.video_requests) == sent  # nothing was asked of the server
        assert budget.spent == pytest.approx(0.4)
    with FakeOpenAIServer(videos=tiny_mp4) as server:
        clips = BudgetedClips(OpenAIVideoClips("sora-2", base_url=server.url), ClipBudget(0.0))
        with pytest.raises(ClipError):
            asyncio.run(clips.generate(ClipRequest("a glacier", 4), tmp_path / "c.mp4"))
        assert server.requests == []


# --------------------------------------------------------------------------- clips: Veo through google-genai


def test_a_veo_clip_runs_the_operation_and_downloads_the_video(tmp_path, tiny_mp4):
    with FakeGeminiServer(video=tiny_mp4, polls=2) as server:
        clips = VeoClips("veo-3.1-fast-generate-preview", api_key="gem-secret", base_url=server.url, poll_s=0.01)
        clip = asyncio.run(clips.generate(ClipRequest("a seed sprouting", 5), tmp_path / "v.mp4"))
        seen = [(r.method, r.path) for r in server.requests]
        start = server.requests[0]
    assert start.json["instances"] == [{"prompt": "a seed sprouting"}]
    assert start.json["parameters"]["durationSeconds"] == 6 and start.json["parameters"]["aspectRatio"] == "16:9"
    assert start.headers["x-goog-api-key"] == "gem-secret"
    model = "/v1beta/models/veo-3.1-fast-generate-preview"
    assert seen == [("POST", f"{model}:predictLongRunning")] + [("GET", f"{model}/operations/op1")] * 3 + [
        ("GET", "/v1beta/files/op1vid:download")]
    assert clip.path.read_bytes() == tiny_mp4
    assert (clip.seconds, clip.cost) == (6.0, pytest.approx(0.9))  # $0.15 a second


@pytest.mark.parametrize(("options", "message"), [
    ({"error": "internal error while generating"}, "internal error while generating"),
    ({"filtered": "the prompt names a real person"}, "filtered: the prompt names a real person"),
    ({"start": 400}, "fake refusal"),
])
def test_a_failed_veo_operation_is_a_clip_error_without_the_key(tmp_path, tiny_mp4, options, message):
    with FakeGeminiServer(video=tiny_mp4, polls=0, **options) as server:
        clips = VeoClips("veo-3.1-generate-preview", api_key="gem-secret", base_url=server.url, poll_s=0.01)
        with pytest.raises(ClipError, match=message) as err:
            asyncio.run(clips.generate(ClipRequest("a seed sprouting", 8), tmp_path / "v.mp4"))
    assert "gem-secret" not in full_text(err.value)
    assert not Path(tmp_path / "v.mp4").exists()


def test_veo_needs_a_key(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        VeoClips("veo-3.1-generate-preview")


def test_a_clip_plugin_registers_through_the_entry_point_group_and_keeps_to_the_cap(monkeypatch, tmp_path, tiny_mp4,
                                                                                   request):
    from lessonforge.agent.config import Settings
    from lessonforge.agent.context import create_clips
    from lessonforge.tools import registry
    from lessonforge.tools.clips import Clip

    class MyClips(ClipBackend):  # the README's example, answering from a file instead of a service
        class Options(registry.BackendOptions):
            price_per_second: float | None = None

        def __init__(self, model: str, *, price_per_second: float | None = None):
            self.name, self.model, self.price_per_second = f"myvideo:{model}", model, price_per_second or 0.05
            self.calls = 0

        async def generate(self, request: ClipRequest, out):
            self.calls += 1
            out.write_bytes(tiny_mp4)
            return Clip(path=out, seconds=request.seconds, model=self.name,
                        cost=request.seconds * self.price_per_second, prompt=request.prompt)

    class EP:
        name = "clips.myvideo"

        def load(self):
            return MyClips

    installed = registry.entry_points
    monkeypatch.setattr(registry, "entry_points", lambda group: [*installed(group=group), EP()])
    registry.refresh()
    request.addfinalizer(registry.refresh)
    clips = create_clips(Settings.load(llm="fake:", clips="myvideo:v1", clip_budget=0.5))
    assert clips.name == "myvideo:v1"
    clip = asyncio.run(clips.generate(ClipRequest("a pendulum swinging", 8), tmp_path / "a.mp4"))  # $0.40
    assert clip.cost == pytest.approx(0.4) and clip.path.read_bytes() == tiny_mp4
    with pytest.raises(ClipError, match="--clip-budget"):
        asyncio.run(clips.generate(ClipRequest("a pendulum swinging", 4), tmp_path / "b.mp4"))  # $0.20 more
    assert clips.inner.calls == 1
    assert create_clips(Settings.load(llm="fake:", clips="myvideo:v1", clip_price=0.1)).inner.price_per_second == 0.1
    assert create_clips(Settings.load(llm="fake:")) is None  # off by default
    with pytest.raises(ConfigError, match="Unknown clips backend"):
        Settings.load(llm="fake:", clips="sora:2")
