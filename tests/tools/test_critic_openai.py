"""OpenAICritic: the real openai client against FakeOpenAIServer (tests/fake_openai.py).

What goes out (a PNG data URL no larger than 768 px, a strict json_schema, the scene texts), how the
model's structured answer becomes a Verdict, the repair loop, errors and the secret.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import socket
import threading
from typing import Any

import pytest
from PIL import Image as PILModule

from lessonforge.tools.base import ConfigError, Critic, CriticError, Verdict
from lessonforge.tools.batching import BatchedCritic
from lessonforge.tools.cache import AssetStore
from lessonforge.tools.critic.openai import MAX_SIDE, OpenAICritic, VisionVerdict, png_data_url, to_verdict
from tests.fake_openai import Error, FakeOpenAIServer, fake_openai, full_text  # noqa: F401

SECRET = "sk-test-SECRET-critic-123"
PROMPTS = [
    "A green leaf in sunlight, with arrows showing light going in",
    "Roots of a plant drawing water from the soil",
    "A chloroplast seen under a microscope",
]


def answer(matches: int = 5, legible: int = 5, resembles: int | None = None, problems: tuple[str, ...] = (),
           suggestion: str = "") -> str:
    return json.dumps({"matches_narration": matches, "legible": legible, "resembles_other_scene": resembles,
                       "problems": list(problems), "suggestion": suggestion})


def picture(width: int = 64, height: int = 48, color: tuple[int, int, int] = (30, 160, 60)) -> PILModule.Image:
    return PILModule.new("RGB", (width, height), color)


def _parts(request_json: dict[str, Any]) -> list[dict[str, Any]]:
    """The content parts of the request's (one) multi-part user message."""
    (message,) = [m for m in request_json["messages"] if isinstance(m.get("content"), list)]
    assert message["role"] == "user"
    return message["content"]


def _image_part(request_json: dict[str, Any]) -> dict[str, Any]:
    (image,) = [p for p in _parts(request_json) if p["type"] == "image_url"]
    return image


def _text_part(request_json: dict[str, Any]) -> str:
    (text,) = [p["text"] for p in _parts(request_json) if p["type"] == "text"]
    return text


def _decode(url: str) -> PILModule.Image:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    raw = base64.b64decode(url[len(prefix):], validate=True)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    img = PILModule.open(io.BytesIO(raw))
    img.load()
    return img


@pytest.fixture
def critic(fake_openai: FakeOpenAIServer) -> OpenAICritic:  # noqa: F811
    return OpenAICritic("gpt-4.1-mini", base_url=fake_openai.url)


# --------------------------------------------------------------------------- the request


def test_request_sends_a_downscaled_png_data_url_and_a_strict_schema(fake_openai, critic):  # noqa: F811
    fake_openai.script(answer(5, 4))
    big = picture(1200, 600)

    [verdict] = critic.judge([big], PROMPTS, [1])

    (req,) = fake_openai.chat_requests
    body = req.json
    assert body["model"] == "gpt-4.1-mini"
    image = _image_part(body)
    assert image["image_url"]["detail"] == "low"
    sent = _decode(image["image_url"]["url"])
    assert sent.format == "PNG" and sent.mode == "RGB"
    assert sent.size == (MAX_SIDE, MAX_SIDE // 2)  # longest side 768, aspect kept
    assert sent.getpixel((10, 10)) == (30, 160, 60)
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "VisionVerdict"
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == sorted(schema["properties"]) == sorted(
        ["matches_narration", "legible", "resembles_other_scene", "problems", "suggestion"])
    assert schema["properties"]["matches_narration"]["enum"] == [1, 2, 3, 4, 5]
    assert all(p.get("description") for p in schema["properties"].values())
    text = _text_part(body)
    assert "scene 2 of 3" in text and f'"""{PROMPTS[1]}"""' in text  # its own scene, quoted
    assert f"scene 1: {PROMPTS[0]}" in text and f"scene 3: {PROMPTS[2]}" in text  # the contrast
    assert f"scene 2: {PROMPTS[1]}" not in text
    assert body["messages"][0]["role"] == "system"
    assert verdict == Verdict(accepted=True, score=2.5, scores=(0.0, 2.5, 0.0), rank=1, reason=verdict.reason)
    assert verdict.reason.startswith("narration match 5/5, legibility 4/5")


def test_small_pictures_are_sent_at_their_own_size_as_rgb():
    rgba = PILModule.new("RGBA", (300, 200), (255, 0, 0, 128))
    img = _decode(png_data_url(rgba))
    assert img.size == (300, 200) and img.mode == "RGB"
    tall = _decode(png_data_url(PILModule.new("L", (500, 2000), 128)))
    assert tall.size == (192, 768)


def test_default_targets_judge_each_picture_against_its_own_prompt(fake_openai, critic):  # noqa: F811
    def by_scene(request: dict[str, Any]) -> str:
        scene = int(re.search(r"belongs to scene (\d+) of", _text_part(request)).group(1))
        return answer(matches=scene + 2)  # scene 1 -> 3/5, scene 2 -> 4/5, scene 3 -> 5/5

    fake_openai.default = by_scene

    verdicts = critic.judge([picture(), picture(), picture()], PROMPTS)

    assert [v.score for v in verdicts] == [1.5, 2.0, 2.5]
    assert [v.accepted for v in verdicts] == [False, True, True]
    assert [v.scores.index(max(v.scores)) for v in verdicts] == [0, 1, 2]
    assert len(fake_openai.chat_requests) == 3
    assert critic.usage.calls == 3 and critic.usage.prompt_tokens > 0


def test_no_pictures_sends_nothing(fake_openai, critic):  # noqa: F811
    assert critic.judge([], PROMPTS) == []
    assert fake_openai.requests == []


def test_targets_are_checked_before_any_request(fake_openai, critic):  # noqa: F811
    with pytest.raises(ConfigError, match="one target"):
        critic.judge([picture()], PROMPTS, [0, 1])
    with pytest.raises(ConfigError, match="outside the 3 prompt"):
        critic.judge([picture()], PROMPTS, [3])
    assert fake_openai.requests == []


# --------------------------------------------------------------------------- verdicts


def test_low_narration_match_is_rejected_with_the_models_problems_and_suggestion(fake_openai, critic):  # noqa: F811
    fake_openai.script(answer(2, 5, problems=("shows a tree, not a single leaf", "no light arrows"),
                              suggestion="Draw one leaf close up with yellow arrows of sunlight entering it."))

    [verdict] = critic.judge([picture()], PROMPTS, [0])

    assert not verdict.accepted
    assert verdict.score == pytest.approx(1.0)  # 2/5 of 2.5
    assert verdict.rank == 1
    assert "shows a tree, not a single leaf" in verdict.reason and "no light arrows" in verdict.reason
    assert "suggestion: Draw one leaf close up with yellow arrows of sunlight entering it." in verdict.reason
    assert verdict.reason.endswith("it.") and ". " not in verdict.reason  # one sentence


def test_illegible_picture_is_rejected_even_when_it_matches(fake_openai, critic):  # noqa: F811
    fake_openai.script(answer(5, 2, problems=("garbled letters",)))
    [verdict] = critic.judge([picture()], PROMPTS, [0])
    assert not verdict.accepted and verdict.score == 2.5
    assert "legibility 2/5" in verdict.reason and "garbled letters" in verdict.reason


def test_resembling_another_scene_is_rejected_with_rank_above_one(fake_openai, critic):  # noqa: F811
    fake_openai.script(answer(4, 5, resembles=3, problems=("looks like a microscope view",)))

    [verdict] = critic.judge([picture()], PROMPTS, [0])

    assert not verdict.accepted
    assert verdict.rank > 1
    assert verdict.scores == (2.0, 0.0, 2.0)  # the rival scores as well as its own
    assert "scene 3" in verdict.reason


def test_floor_is_the_bar_for_both_ratings(fake_openai):  # noqa: F811
    fake_openai.default = lambda request: answer(3, 3)
    lenient = OpenAICritic("gpt-4.1-mini", base_url=fake_openai.url, floor=3)
    strict = OpenAICritic("gpt-4.1-mini", base_url=fake_openai.url)
    assert lenient.judge([picture()], PROMPTS, [0])[0].accepted
    assert not strict.judge([picture()], PROMPTS, [0])[0].accepted


@pytest.mark.parametrize("rival", [1, 4, 0, -2])
def test_a_rival_that_is_not_another_listed_scene_is_ignored(rival):
    verdict = to_verdict(VisionVerdict.model_validate_json(answer(5, 5, resembles=rival)), 3, 0)
    assert verdict.accepted and verdict.rank == 1 and verdict.scores == (2.5, 0.0, 0.0)


def test_a_single_scene_is_judged_without_contrast(fake_openai, critic):  # noqa: F811
    fake_openai.script(answer(4, 4))
    [verdict] = critic.judge([picture()], PROMPTS[:1])
    assert verdict.accepted and verdict.scores == (2.0,)
    assert "only scene" in _text_part(fake_openai.chat_requests[0].json)


# --------------------------------------------------------------------------- repairs and errors


def test_invalid_json_is_repaired_and_the_picture_is_sent_again(fake_openai, critic):  # noqa: F811
    fake_openai.script("The picture shows a leaf, it is good!", '{"matches_narration": 7}', answer(5, 5))

    [verdict] = critic.judge([picture()], PROMPTS, [0])

    assert verdict.accepted
    first, second, third = fake_openai.chat_requests
    assert "not valid JSON" in second.json["messages"][-1]["content"]
    assert "matches_narration" in third.json["messages"][-1]["content"]  # the 1-5 enum, quoted back
    assert _image_part(third.json) == _image_part(first.json)
    assert third.json["response_format"] == first.json["response_format"]


def test_invalid_replies_beyond_max_repairs_raise_a_critic_error(fake_openai):  # noqa: F811
    fake_openai.default = lambda request: "no"
    critic = OpenAICritic("gpt-4.1-mini", base_url=fake_openai.url, max_repairs=1)
    with pytest.raises(CriticError, match="openai:gpt-4.1-mini did not return a valid VisionVerdict") as info:
        critic.judge([picture()], PROMPTS, [0])
    assert "2 attempt" in str(info.value) and "--critic openai:gpt-6.1-terra" in str(info.value)
    assert len(fake_openai.chat_requests) == 2


def test_a_server_that_rejects_images_raises_a_critic_error(fake_openai, critic):  # noqa: F811
    fake_openai.script(Error(400, body={"error": {"message": "this model does not support image input",
                                                   "type": "invalid_request_error"}}))
    with pytest.raises(CriticError, match="HTTP 400.*does not support image input"):
        critic.judge([picture()], PROMPTS, [0])


def test_planted_key_never_appears_in_errors_or_repr():
    with FakeOpenAIServer(api_key="sk-the-right-one") as server:
        critic = OpenAICritic("gpt-4.1-mini", api_key=SECRET, base_url=server.url)
        with pytest.raises(ConfigError) as judged:
            critic.judge([picture()], PROMPTS, [0])
        with pytest.raises(ConfigError) as checked:
            asyncio.run(critic.check())
        assert server.requests and all(r.headers["authorization"] == f"Bearer {SECRET}" for r in server.requests)
    for err in (judged.value, checked.value):
        text = full_text(err)
        assert SECRET not in text
        assert "rejected the API key" in text and "OPENAI_API_KEY" in text
    assert SECRET not in repr(critic)


def test_neither_key_nor_server_is_a_config_error_naming_the_critic_option(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError) as info:
        OpenAICritic()
    text = str(info.value)
    assert "vision critic openai:gpt-6-luna" in text  # the default (lessonforge.tools.defaults)
    assert "OPENAI_API_KEY" in text and "OPENAI_BASE_URL" in text and "--critic / LESSONFORGE_CRITIC" in text
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    critic = OpenAICritic("gpt-4o", floor=4)
    assert critic.name == "openai:gpt-4o" and critic.base_url == "https://api.openai.com/v1"
    critic.load()  # nothing to load; the settings still hold
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="--critic"):
        critic.load()


@pytest.mark.parametrize("floor", [0.5, 5.5, "4", True])
def test_floor_off_the_rating_scale_is_a_config_error(floor):
    with pytest.raises(ConfigError, match="between 1 and 5"):
        OpenAICritic(base_url="http://127.0.0.1:9/v1", floor=floor)


def test_check_passes_when_the_server_answers_and_fails_fast_when_none_does(fake_openai, critic):  # noqa: F811
    asyncio.run(critic.check())
    assert [r.path for r in fake_openai.requests] == ["/v1/models"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = OpenAICritic(base_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ConfigError, match=f"No vision critic reachable at http://127.0.0.1:{port}") as info:
        asyncio.run(down.check())
    assert "--critic" in str(info.value)


# --------------------------------------------------------------------------- how the agent uses it


def test_is_a_critic_and_takes_the_device_option_the_agent_passes(fake_openai):  # noqa: F811
    critic = OpenAICritic("gpt-4.1-mini", base_url=fake_openai.url, device="cpu")
    assert isinstance(critic, Critic)
    assert critic.name == "openai:gpt-4.1-mini"


def test_concurrent_judges_from_worker_threads_share_nothing_but_usage(fake_openai, critic):  # noqa: F811
    fake_openai.default = lambda request: answer(5, 5)
    results: list[list[Verdict]] = []
    errors: list[BaseException] = []

    def work(target: int) -> None:
        try:
            results.append(critic.judge([picture()], PROMPTS, [target]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in (0, 1, 2, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(results) == 4 and all(r[0].accepted for r in results)
    assert critic.usage.calls == 4


async def test_judge_works_when_called_inside_a_running_event_loop(fake_openai, critic):  # noqa: F811
    fake_openai.script(answer(5, 5))
    [verdict] = critic.judge([picture()], PROMPTS, [2])
    assert verdict.accepted and verdict.scores == (0.0, 0.0, 2.5)


async def test_batched_critic_judges_concurrent_scenes_in_one_pass_and_caches_the_verdicts(
        fake_openai, critic, tmp_path):  # noqa: F811
    """How the agent calls it: lessonforge.tools.batching.BatchedCritic groups concurrent scenes into one judge call."""
    def by_scene(request: dict[str, Any]) -> str:
        scene = int(re.search(r"belongs to scene (\d+) of", _text_part(request)).group(1))
        return answer(5, 5) if scene != 2 else answer(1, 5, problems=("off topic",))

    fake_openai.default = by_scene
    batched = BatchedCritic(critic, AssetStore(tmp_path / "store"))
    pictures = [picture(color=(40 * i, 120, 60)) for i in range(3)]

    verdicts = await asyncio.gather(*(batched.judge_one(p, PROMPTS, i) for i, p in enumerate(pictures)))

    assert [v.accepted for v in verdicts] == [True, False, True]
    assert "off topic" in verdicts[1].reason
    assert batched.passes == 1 and batched.judged == 3  # one judge call for the three scenes
    assert len(fake_openai.chat_requests) == 3  # one chat request a picture, sent concurrently
    assert await batched.judge_one(pictures[1], PROMPTS, 1) == verdicts[1]
    assert batched.hits == 1 and len(fake_openai.chat_requests) == 3


@pytest.mark.slow
def test_the_agent_retries_a_scene_the_vision_critic_rejects_and_records_its_reason(fake_openai, tmp_path):  # noqa: F811
    """A whole (fake) lesson judged by OpenAICritic: scene 1's first picture "resembles scene 2"."""
    from lessonforge.agent import run
    from lessonforge.agent.config import Settings
    from lessonforge.agent.fakes import FakeLLM
    from lessonforge.agent.state import make_request
    from lessonforge.tools.fakes import FakeImages, FakeSpeech

    seen: dict[int, int] = {}
    lock = threading.Lock()

    def by_scene(request: dict[str, Any]) -> str:
        scene = int(re.search(r"belongs to scene (\d+) of", _text_part(request)).group(1))
        with lock:
            seen[scene] = seen.get(scene, 0) + 1
            first = seen[scene] == 1
        if scene == 1 and first:
            return answer(4, 5, resembles=2, problems=("looks like the next scene",), suggestion="Show a bud.")
        return answer(5, 5)

    fake_openai.default = by_scene
    critic = OpenAICritic("gpt-4.1-mini", base_url=fake_openai.url)
    manifest = asyncio.run(run.make(make_request(topic="how seeds sprout", minutes=0.5), Settings.load(),
                                    tmp_path / "seeds", llm=FakeLLM(), speech=FakeSpeech(), images=FakeImages(),
                                    critic=critic))

    first, *rest = manifest.scenes
    assert rest and manifest.backends["critic"] == "openai:gpt-4.1-mini"
    assert [a.accepted for a in first.attempts] == [False, True] and first.critic == "accepted"
    assert first.attempts[0].rank == 2 and "scene 2" in first.attempts[0].reason
    assert "Show a bud" in first.attempts[0].reason
    assert first.attempts[0].scores[1] == first.attempts[0].score == 2.0
    assert all(s.critic == "accepted" and len(s.attempts) == 1 for s in rest)
    assert len(fake_openai.chat_requests) == len(manifest.scenes) + 1
