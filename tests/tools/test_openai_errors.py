"""One translation of the OpenAI client's errors for every OpenAI backend: the same failure is the same kind
of error everywhere, names the fix, and never shows the key."""

from __future__ import annotations

import httpx
import openai
import pytest

from lessonforge.tools.base import ConfigError, ImageError, LLMError, SpeechError, SpeechUnavailable
from lessonforge.tools.images.openai import OpenAIImages
from lessonforge.tools.llm.openai import OpenAILLM
from lessonforge.tools.openai_errors import Advice, translate
from lessonforge.tools.speech.openai import OpenAISpeech

SECRET = "sk-planted-secret-0042"
URL = "http://127.0.0.1:9/v1"
REQUEST = httpx.Request("POST", f"{URL}/anything")


def _status(cls: type[openai.APIStatusError], code: int, message: str) -> openai.APIStatusError:
    body = {"message": f"{message} (key {SECRET})"}  # servers echo the key they were sent
    return cls(message, response=httpx.Response(code, request=REQUEST, json={"error": body}), body=body)


FAILURES = {
    "timeout": lambda: openai.APITimeoutError(request=REQUEST),
    "connection": lambda: openai.APIConnectionError(message="Connection refused", request=REQUEST),
    "401": lambda: _status(openai.AuthenticationError, 401, "Incorrect API key"),
    "403": lambda: _status(openai.PermissionDeniedError, 403, "Country not supported"),
    "404": lambda: _status(openai.NotFoundError, 404, "The model does not exist"),
    "429": lambda: _status(openai.RateLimitError, 429, "You exceeded your current quota"),
    "500": lambda: _status(openai.InternalServerError, 500, "boom"),
    "400": lambda: _status(openai.BadRequestError, 400, "Invalid value"),
}

# (kind of error for the LLM, for speech (which has a fallback when the server is unavailable), for pictures)
EXPECTED = {
    "timeout": (LLMError, SpeechUnavailable, ImageError),
    "connection": (LLMError, SpeechUnavailable, ImageError),
    "401": (ConfigError, ConfigError, ConfigError),
    "403": (ConfigError, ConfigError, ConfigError),
    "404": (ConfigError, ConfigError, ConfigError),
    "429": (LLMError, SpeechUnavailable, ImageError),
    "500": (LLMError, SpeechUnavailable, ImageError),
    "400": (LLMError, SpeechError, ImageError),
}


def _backends():
    llm = OpenAILLM("gpt-6-luna", api_key=SECRET, base_url=URL, timeout_s=0.5, max_retries=1)
    speech = OpenAISpeech("gpt-4o-mini-tts", api_key=SECRET, base_url=URL, timeout_s=0.5, max_retries=1)
    images = OpenAIImages("gpt-image-1", api_key=SECRET, base_url=URL, timeout_s=0.5, max_retries=1)
    return [llm._translate, lambda err: speech._translate(err, "alloy"), images.client.translate]


@pytest.mark.parametrize("failure", list(FAILURES))
def test_each_backend_maps_a_failure_to_the_same_kind_of_error_without_the_key(failure):
    for translate_one, kind in zip(_backends(), EXPECTED[failure], strict=True):
        err = translate_one(FAILURES[failure]())
        assert type(err) is kind, (failure, err)
        assert SECRET not in str(err)
        assert "127.0.0.1:9" in str(err)  # the server it is about
        if failure not in ("timeout", "connection"):
            assert f"HTTP {failure}" in str(err)


def test_the_message_names_the_fix_with_the_backends_own_advice():
    llm, speech, images = _backends()
    assert "0.5 s (after 2 attempt(s))" in str(llm(FAILURES["timeout"]()))
    assert "espeak" in str(speech(FAILURES["connection"]()))  # an offline voice to use instead
    assert "no text-to-speech model 'gpt-4o-mini-tts'" in str(speech(FAILURES["404"]()))
    assert "/images/generations" in str(images(FAILURES["404"]()))
    assert "OPENAI_API_KEY" in str(llm(FAILURES["401"]())) and "OPENAI_API_KEY" in str(images(FAILURES["401"]()))
    assert "voice ('alloy')" in str(speech(FAILURES["400"]()))
    assert "json_schema" in str(llm(FAILURES["400"]()))


def test_a_retired_model_that_is_not_found_names_its_replacement():
    err = translate(_status(openai.NotFoundError, 404, "gone"), name="openai:tts-old", url=URL, scrub=str,
                    timeout_s=1, tries=1, flag="--speech", error=SpeechError, model="gpt-4o-mini-tts-2025-03-20")
    assert isinstance(err, ConfigError) and "replacement" in str(err) and "--speech openai:" in str(err)


def test_the_general_advice_names_the_backends_flag():
    err = translate(_status(openai.PermissionDeniedError, 403, "no"), name="openai:m", url=URL, scrub=str,
                    timeout_s=1, tries=1, flag="--images", error=ImageError, advice=Advice())
    assert "choose another backend with --images" in str(err)
