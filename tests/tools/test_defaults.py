"""Hosted defaults stay alive: none is a retired model, and a model the provider no longer serves gets an
error that names its replacement (the fake OpenAI server answering 404 model_not_found)."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import BaseModel, Field

from lessonforge.agent.config import DEFAULT_LLM, Settings
from lessonforge.evals.metrics import estimate_price
from lessonforge.tools import defaults
from lessonforge.tools.base import ConfigError, Message
from lessonforge.tools.critic.openai import OpenAICritic
from lessonforge.tools.hub import OPENAI_DEFAULT
from lessonforge.tools.llm.openai import OpenAILLM
from lessonforge.tools.speech.openai import OpenAISpeech
from tests.fake_openai import Error, fake_openai  # noqa: F401

ASK = [Message("system", "You write lessons."), Message("user", "One scene about tides.")]


class Scene(BaseModel):
    title: str = Field(description="The scene's title.")


NOT_FOUND = {"error": {"message": "The model does not exist or you do not have access to it.",
                       "type": "invalid_request_error", "code": "model_not_found"}}


def test_no_default_is_a_retired_model(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    hosted = [defaults.OPENAI_LLM, defaults.OPENAI_CRITIC, defaults.OPENAI_TTS, defaults.OPENAI_LLM_STRONGER]
    hosted += [OpenAILLM().model, OpenAICritic(api_key="k").name.partition(":")[2], OpenAISpeech(api_key="k").model]
    for model in hosted:
        assert model not in defaults.RETIRED, model
    for retired in defaults.RETIRED.values():  # a replacement is never itself retired
        assert retired.replacement not in defaults.RETIRED
    assert Settings.load().llm_spec() == DEFAULT_LLM == OPENAI_DEFAULT == f"openai:{defaults.OPENAI_LLM}"
    assert estimate_price(DEFAULT_LLM, 1_000_000, 1_000_000) == pytest.approx(0.10 + 0.50)  # evals can price it


def test_the_hint_says_shut_down_or_scheduled():
    past = defaults.retired_hint("gpt-4o-mini-tts-2025-03-20", "--speech", today=date(2026, 11, 30))
    assert "shut gpt-4o-mini-tts-2025-03-20 down on 2026-07-23" in past
    assert "--speech openai:gpt-4o-mini-tts-2025-12-15" in past
    ahead = defaults.retired_hint("gpt-4.1-mini", "--llm", today=date(2026, 11, 30))
    assert "retires gpt-4.1-mini on 2027-01-14" in ahead and "--llm openai:gpt-6-luna" in ahead
    assert defaults.retired_hint("qwen2.5:7b-instruct", "--llm") == ""


async def test_a_retired_llm_names_its_replacement(fake_openai):  # noqa: F811
    fake_openai.script(Error(404, body=NOT_FOUND))
    llm = OpenAILLM("gpt-4.1-mini", base_url=fake_openai.url)
    try:
        with pytest.raises(ConfigError) as info:
            await llm.structured(ASK, Scene)
    finally:
        await llm.aclose()
    text = str(info.value)
    assert "HTTP 404" in text and "gpt-6-luna" in text and "--llm openai:gpt-6-luna" in text


async def test_a_retired_llm_the_server_does_not_list_stops_before_any_work(fake_openai):  # noqa: F811
    fake_openai.models = ["gpt-6-luna", "gpt-6.1-terra", "gpt-4o-mini-tts-2025-12-15"]
    llm = OpenAILLM("gpt-4.1-mini", base_url=fake_openai.url)
    try:
        with pytest.raises(ConfigError, match=r"does not serve 'gpt-4.1-mini'.*--llm openai:gpt-6-luna"):
            await llm.check()
        await OpenAILLM("gpt-6-luna", base_url=fake_openai.url).check()  # a served model passes
    finally:
        await llm.aclose()
    assert not fake_openai.chat_requests  # nothing was asked of the model


async def test_a_retired_speech_snapshot_names_its_replacement(fake_openai, tmp_path):  # noqa: F811
    fake_openai.speech = Error(404, body=NOT_FOUND)
    tts = OpenAISpeech("gpt-4o-mini-tts-2025-03-20", api_key="k", base_url=fake_openai.url, max_retries=0)
    try:
        with pytest.raises(ConfigError) as info:
            await tts.speak("The tide comes in twice a day.", "", tmp_path / "a.wav")
    finally:
        await tts.aclose()
    assert "--speech openai:gpt-4o-mini-tts-2025-12-15" in str(info.value)
