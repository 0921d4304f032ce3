"""OpenAILLM against a real HTTP server (tests/fake_openai.py) through the real openai client."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import BaseModel, Field

from lessonforge.tools import registry
from lessonforge.tools.base import ConfigError, LLMError, Message
from lessonforge.tools.llm.openai import OpenAILLM, strict_json_schema
from tests.fake_openai import Error, FakeOpenAIServer, Hang, closed_port, completion, fake_openai, full_text  # noqa: F401

SECRET = "sk-test-SECRET123"


class Scene(BaseModel):
    title: str = Field(description="Slide title, at most 6 words")
    bullets: list[str] = Field(description="3-5 key words the narration stresses")
    narration: str = Field(description="What the voice says")


class Outline(BaseModel):
    topic: str
    opening: Scene = Field(description="The hook scene")
    scenes: list[Scene]
    recap: str | None = None


GOOD = json.dumps({"title": "Why leaves are green", "bullets": ["chlorophyll", "light"], "narration": "Look."})
ASK = [Message("system", "You write lessons."), Message("user", "One scene about photosynthesis.")]


@pytest.fixture
async def make_llm(fake_openai: FakeOpenAIServer) -> AsyncIterator[Callable[..., OpenAILLM]]:  # noqa: F811
    made: list[OpenAILLM] = []

    def make(**options: Any) -> OpenAILLM:
        options.setdefault("base_url", fake_openai.url)
        llm = OpenAILLM("gpt-4.1-mini", **options)
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.aclose()


def _walk(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += _walk(value)
    elif isinstance(node, list):
        for value in node:
            found += _walk(value)
    return found


# --------------------------------------------------------------------------- structured output


async def test_valid_reply_parses_and_request_asks_for_strict_json_schema(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(GOOD)
    llm = make_llm(temperature=0.3)

    scene = await llm.structured(ASK, Scene)

    assert scene == Scene.model_validate_json(GOOD)
    (req,) = fake_openai.chat_requests
    body = req.json
    assert body["model"] == "gpt-4.1-mini"
    assert body["messages"] == [m.as_dict() for m in ASK]
    assert body["temperature"] == 0.3
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "Scene"
    schema = fmt["json_schema"]["schema"]
    assert set(schema["properties"]) == {"title", "bullets", "narration"}
    assert sorted(schema["required"]) == ["bullets", "narration", "title"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["title"]["description"] == "Slide title, at most 6 words"
    # a base URL without a key still authenticates with a placeholder, never an empty header
    assert req.headers["authorization"] == "Bearer not-needed"


LLAMA_CPP_REFUSAL = Error(
    400,
    {
        "error": {
            "code": 400,
            "type": "invalid_request_error",
            "message": '"response_format" must be one of "text" or "json_object", but got: json_schema',
        }
    },
)


async def test_a_server_that_refuses_json_schema_gets_json_object_with_the_schema(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(LLAMA_CPP_REFUSAL, GOOD, GOOD)  # as llama.cpp's server answers
    llm = make_llm()
    assert await llm.structured(ASK, Scene) == Scene.model_validate_json(GOOD)
    assert await llm.structured(ASK, Scene) == Scene.model_validate_json(GOOD)
    formats = [r.json["response_format"] for r in fake_openai.chat_requests]
    assert [f["type"] for f in formats] == ["json_schema", "json_object", "json_object"]  # remembered
    assert formats[1]["schema"] == strict_json_schema(Scene)


async def test_a_fixed_format_is_never_switched(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(LLAMA_CPP_REFUSAL)
    with pytest.raises(LLMError, match="json_schema"):
        await make_llm(response_format="json_schema").structured(ASK, Scene)
    fake_openai.script(GOOD)
    await make_llm(response_format="json_object").structured(ASK, Scene)
    assert fake_openai.chat_requests[-1].json["response_format"]["type"] == "json_object"
    with pytest.raises(ConfigError, match="response_format must be one of"):
        make_llm(response_format="xml")


async def test_temperature_is_left_to_the_server_unless_set(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(GOOD)
    await make_llm().structured(ASK, Scene)
    assert "temperature" not in fake_openai.chat_requests[0].json


async def test_missing_field_is_repaired_and_the_repair_quotes_the_error(fake_openai, make_llm):  # noqa: F811
    bad = json.dumps({"title": "Leaves", "bullets": ["green"]})
    fake_openai.script(bad, GOOD)

    scene = await make_llm().structured(ASK, Scene)

    assert scene.title == "Why leaves are green"
    first, second = fake_openai.chat_requests
    sent = second.json["messages"]
    assert sent[: len(ASK)] == [m.as_dict() for m in ASK]
    assert sent[-2] == {"role": "assistant", "content": bad}
    assert sent[-1]["role"] == "user"
    assert "narration: Field required" in sent[-1]["content"]
    assert "JSON object only" in sent[-1]["content"]
    assert second.json["response_format"] == first.json["response_format"]


async def test_prose_instead_of_json_is_repaired(fake_openai, make_llm):  # noqa: F811
    fake_openai.script("Sure! Here is your scene: a slide about leaves.", GOOD)

    scene = await make_llm().structured(ASK, Scene)

    assert scene.bullets == ["chlorophyll", "light"]
    assert "not valid JSON" in fake_openai.chat_requests[1].json["messages"][-1]["content"]


async def test_reply_wrapped_in_a_code_fence_parses_without_a_repair(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(f"```json\n{GOOD}\n```")
    assert (await make_llm().structured(ASK, Scene)).title == "Why leaves are green"
    assert len(fake_openai.chat_requests) == 1


async def test_invalid_replies_beyond_max_repairs_raise_llm_error(fake_openai, make_llm):  # noqa: F811
    fake_openai.script('{"title": "a"}', '{"title": "b"}', '{"title": "c"}', GOOD)

    with pytest.raises(LLMError) as info:
        await make_llm().structured(ASK, Scene)

    assert len(fake_openai.chat_requests) == 3  # the first try + max_repairs=2
    assert fake_openai.pending == 1
    text = str(info.value)
    assert "Scene" in text and "3 attempt" in text
    assert "bullets: Field required" in text  # the last error
    assert "stronger model" in text and "json_schema" in text  # the fix


async def test_max_repairs_zero_means_a_single_try(fake_openai, make_llm):  # noqa: F811
    fake_openai.script("not json", GOOD)
    with pytest.raises(LLMError, match="not valid JSON"):
        await make_llm(max_repairs=0).structured(ASK, Scene)
    assert len(fake_openai.chat_requests) == 1


async def test_nested_models_validate_and_use_a_strict_schema(fake_openai, make_llm):  # noqa: F811
    scene = json.loads(GOOD)
    fake_openai.script(json.dumps({"topic": "Leaves", "opening": scene, "scenes": [scene, scene], "recap": None}))

    outline = await make_llm().structured(ASK, Outline)

    assert len(outline.scenes) == 2 and outline.opening.title == scene["title"]
    schema = fake_openai.chat_requests[0].json["response_format"]["json_schema"]["schema"]
    objects = [n for n in _walk(schema) if n.get("type") == "object"]
    assert len(objects) >= 2
    for node in objects:
        assert node["additionalProperties"] is False
        assert sorted(node["required"]) == sorted(node["properties"])


def test_strict_schema_closes_every_object_and_requires_every_property():
    schema = strict_json_schema(Outline)
    objects = [n for n in _walk(schema) if n.get("type") == "object"]
    assert {n.get("title") for n in objects} >= {"Outline", "Scene"}
    for node in objects:
        assert node["additionalProperties"] is False
        assert sorted(node["required"]) == sorted(node["properties"])
    for node in _walk(schema):
        assert not ("$ref" in node and len(node) > 1), f"$ref with siblings left in {node}"
        assert node.get("default", "absent") is not None
    # the optional field stays nullable, so a strict server can still send null
    assert {"type": "null"} in schema["properties"]["recap"]["anyOf"]


async def test_refusal_raises_a_clear_llm_error_without_retrying(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(completion(None, refusal="I can't help with that."), GOOD)

    with pytest.raises(LLMError) as info:
        await make_llm().structured(ASK, Scene)

    assert "refused" in str(info.value) and "I can't help with that." in str(info.value)
    assert "--llm" in str(info.value)
    assert len(fake_openai.chat_requests) == 1


async def test_empty_replies_are_retried_then_raise_a_clear_llm_error(fake_openai, make_llm):  # noqa: F811
    fake_openai.script("", completion(None), "   ")

    with pytest.raises(LLMError) as info:
        await make_llm().structured(ASK, Scene)

    assert "empty" in str(info.value)
    assert len(fake_openai.chat_requests) == 3


async def test_cut_off_reply_is_retried_once_asking_for_brevity(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(completion('{"title": "Why lea', finish_reason="length"), GOOD)

    scene = await make_llm().structured(ASK, Scene)

    assert scene.title == "Why leaves are green"
    note = fake_openai.chat_requests[1].json["messages"][-1]
    assert note["role"] == "user" and "cut off" in note["content"] and "shorter" in note["content"]


async def test_reply_cut_off_twice_raises_with_the_fix(fake_openai, make_llm):  # noqa: F811
    cut = completion('{"title": "Why lea', finish_reason="length")
    fake_openai.script(cut, cut, GOOD)

    with pytest.raises(LLMError) as info:
        await make_llm().structured(ASK, Scene)

    assert "max output tokens" in str(info.value) and "shorter lesson" in str(info.value)
    assert len(fake_openai.chat_requests) == 2


async def test_usage_totals_add_up_over_calls_and_repairs(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(
        completion('{"title": 1}', prompt_tokens=100, completion_tokens=7),
        completion(GOOD, prompt_tokens=130, completion_tokens=20),
        completion(GOOD, prompt_tokens=90, completion_tokens=19),
    )
    llm = make_llm()

    await llm.structured(ASK, Scene)
    await llm.structured(ASK, Scene)

    assert (llm.usage.prompt_tokens, llm.usage.completion_tokens, llm.usage.calls) == (320, 46, 3)
    assert llm.usage.total_tokens == 366


async def test_concurrent_calls_share_one_backend(fake_openai, make_llm):  # noqa: F811
    import asyncio

    def echo_topic(request: dict[str, Any]) -> str:
        topic = request["messages"][-1]["content"]
        return json.dumps({"title": topic, "bullets": [topic], "narration": topic})

    fake_openai.default = echo_topic
    llm = make_llm()

    scenes = await asyncio.gather(*(llm.structured([Message("user", f"t{i}")], Scene) for i in range(5)))

    assert [s.title for s in scenes] == [f"t{i}" for i in range(5)]
    assert llm.usage.calls == 5


# --------------------------------------------------------------------------- transport


async def test_rate_limit_with_retry_after_then_success(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(
        Error(429, body={"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
              headers={"Retry-After": "0"}),
        GOOD,
    )
    scene = await make_llm().structured(ASK, Scene)
    assert scene.title == "Why leaves are green"
    assert len(fake_openai.chat_requests) == 2


async def test_server_error_then_success(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(Error(500, headers={"retry-after-ms": "10"}), Error(503, headers={"retry-after-ms": "10"}),
                       GOOD)
    assert (await make_llm().structured(ASK, Scene)).narration == "Look."
    assert len(fake_openai.chat_requests) == 3


async def test_server_error_after_retries_raises_llm_error(fake_openai, make_llm):  # noqa: F811
    boom = Error(500, body={"error": {"message": "CUDA out of memory", "type": "server_error"}},
                 headers={"retry-after-ms": "10"})
    fake_openai.script(boom, boom, GOOD)

    with pytest.raises(LLMError) as info:
        await make_llm(max_retries=1).structured(ASK, Scene)

    assert "HTTP 500" in str(info.value) and "CUDA out of memory" in str(info.value)
    assert len(fake_openai.chat_requests) == 2


async def test_rate_limit_after_retries_names_the_fix(fake_openai, make_llm):  # noqa: F811
    limited = Error(429, headers={"retry-after-ms": "10"})
    fake_openai.script(limited, limited)
    with pytest.raises(LLMError, match="rate-limiting.*quota"):
        await make_llm(max_retries=1).structured(ASK, Scene)


async def test_no_reply_within_timeout_raises_llm_error(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(Hang(10))
    start = time.monotonic()
    with pytest.raises(LLMError, match=r"no reply within 0\.3 s.*timeout_s"):
        await make_llm(timeout_s=0.3, max_retries=0).structured(ASK, Scene)
    assert time.monotonic() - start < 5


async def test_unknown_model_is_a_config_error(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(Error(404, body={"error": {
        "message": "The model `gpt-9` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "code": "model_not_found"}}))
    with pytest.raises(ConfigError) as info:
        await make_llm().structured(ASK, Scene)
    assert "gpt-4.1-mini" in str(info.value) and "/models" in str(info.value)


async def test_bad_request_is_an_llm_error_with_the_servers_reason(fake_openai, make_llm):  # noqa: F811
    fake_openai.script(Error(400, body={"error": {"message": "response_format json_schema is not supported"}}),
                       Error(400, body={"error": {"message": "response_format json_object is not supported"}}))
    with pytest.raises(LLMError, match="HTTP 400.*json_object is not supported"):  # both formats tried, once each
        await make_llm().structured(ASK, Scene)
    assert len(fake_openai.chat_requests) == 2


async def test_unreachable_server_is_an_llm_error_naming_the_url(make_llm):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(LLMError) as info:
        await make_llm(base_url=url, max_retries=0).structured(ASK, Scene)
    assert url in str(info.value) and "OPENAI_BASE_URL" in str(info.value)


# --------------------------------------------------------------------------- configuration and secrets


def test_no_key_and_no_base_url_is_a_config_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError) as info:
        OpenAILLM()
    text = str(info.value)
    for needed in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "http://localhost:11434/v1", "--llm", "LESSONFORGE_LLM"):
        assert needed in text


async def test_key_and_base_url_come_from_the_environment(fake_openai, monkeypatch):  # noqa: F811
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.url)
    fake_openai.api_key = "sk-from-env"
    fake_openai.script(GOOD)
    llm = OpenAILLM("qwen2.5:7b")
    try:
        assert (await llm.structured(ASK, Scene)).title
    finally:
        await llm.aclose()
    assert fake_openai.chat_requests[0].headers["authorization"] == "Bearer sk-from-env"
    assert fake_openai.chat_requests[0].json["model"] == "qwen2.5:7b"


def test_registry_builds_it_by_name(fake_openai):  # noqa: F811
    llm = registry.create("llm", "openai:llama3.2", base_url=fake_openai.url, max_repairs=1)
    assert isinstance(llm, OpenAILLM)
    assert llm.name == "openai:llama3.2" and llm.max_repairs == 1
    assert (
        OpenAILLM("", base_url=fake_openai.url).name == "openai:gpt-6-luna"
    )  # the default (lessonforge.tools.defaults)


@pytest.mark.parametrize(
    ("options", "named"),
    [({"timeout_s": 0}, "timeout_s"), ({"max_repairs": -1}, "max_repairs"), ({"max_retries": "4"}, "max_retries"),
     ({"base_url": "localhost:11434"}, "http")],
)
def test_bad_options_are_config_errors_naming_the_option(options, named):
    options.setdefault("base_url", "http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match=named):
        OpenAILLM("m", **options)


async def test_rejected_key_never_appears_in_errors_or_logs(fake_openai, make_llm, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    fake_openai.api_key = "sk-the-right-one"  # the server echoes the wrong key it was sent, as OpenAI does
    llm = make_llm(api_key=SECRET)

    with pytest.raises(ConfigError) as on_call:
        await llm.structured(ASK, Scene)
    with pytest.raises(ConfigError) as on_check:
        await llm.check()

    assert fake_openai.chat_requests[0].headers["authorization"] == f"Bearer {SECRET}"  # it was sent...
    for err in (on_call.value, on_check.value):
        text = full_text(err)
        assert SECRET not in text  # ...but is never shown
        assert "Incorrect API key provided: ***" in text
        assert "OPENAI_API_KEY" in text
    assert SECRET not in caplog.text
    assert SECRET not in repr(llm)


# --------------------------------------------------------------------------- check()


async def test_check_against_a_closed_port_is_a_fast_config_error(make_llm):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        await make_llm(base_url=url).check()
    assert time.monotonic() - start < 3
    assert f"No LLM reachable at {url}" in str(info.value)
    assert "OPENAI_BASE_URL" in str(info.value) and "--llm" in str(info.value)


async def test_check_passes_when_models_are_listed_or_the_endpoint_is_missing(fake_openai, make_llm):  # noqa: F811
    llm = make_llm()
    await llm.check()
    fake_openai.models = Error(404)
    await llm.check()
    assert [r.path for r in fake_openai.requests] == ["/v1/models", "/v1/models"]
    assert not fake_openai.chat_requests  # a check costs no tokens


async def test_check_with_a_rejected_key_is_a_config_error(fake_openai, make_llm):  # noqa: F811
    fake_openai.models = Error(401, body={"error": {"message": "Invalid token", "type": "invalid_request_error"}})
    with pytest.raises(ConfigError, match="rejected the API key.*OPENAI_API_KEY"):
        await make_llm().check()
    assert len(fake_openai.requests) == 1  # no retries


async def test_check_does_not_wait_long_for_a_silent_server(make_llm, monkeypatch):
    import lessonforge.tools.llm.openai as module

    monkeypatch.setattr(module, "CHECK_TIMEOUT_S", 0.3)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel accepts the connection; nobody ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        start = time.monotonic()
        with pytest.raises(ConfigError, match=r"did not answer within 0\.3 s"):
            await make_llm(base_url=url).check()
    assert time.monotonic() - start < 3
