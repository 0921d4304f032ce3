from __future__ import annotations

import pytest

from lessonforge.agent.config import DEFAULT_LLM, Settings
from lessonforge.agent.state import make_request
from lessonforge.tools.base import ConfigError


def test_explicit_beats_env_beats_default(monkeypatch):
    assert Settings.load().llm == ""  # not chosen: picked when an LLM is needed, not recorded before
    assert Settings.load().llm_spec().startswith("local:")  # no key, no server: a local model
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    assert Settings.load().llm_spec() == DEFAULT_LLM == "openai:gpt-6-luna"
    monkeypatch.setenv("LESSONFORGE_LLM", "fake:from-env")
    monkeypatch.setenv("LESSONFORGE_SPEECH", "espeak:en-gb")
    s = Settings.load(llm="fake:explicit")
    assert s.llm == "fake:explicit"
    assert s.speech == "espeak:en-gb"


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(ConfigError) as err:
        Settings.load(images="stable:xl")
    msg = str(err.value)
    assert "stable" in msg and "diffusers" in msg and "BACKEND:MODEL" in msg


def test_the_speech_fallback_is_checked_with_the_settings_and_none_turns_it_off():
    assert Settings.load(speech_fallback="none").speech_fallback == ""
    assert Settings.load(speech_fallback=" espeak:en-gb ").speech_fallback == "espeak:en-gb"
    with pytest.raises(ConfigError, match="Unknown speech backend 'espek'.*Known: edge, espeak"):
        Settings.load(speech_fallback="espek:")


def test_env_with_bad_value_is_a_config_error(monkeypatch):
    monkeypatch.setenv("LESSONFORGE_MAX_ATTEMPTS", "many")
    with pytest.raises(ConfigError, match="max_attempts"):
        Settings.load()


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"topic": "   "}, "topic is empty"),
        ({"topic": "x", "minutes": 0.2}, "between 0.5 and 30"),
        ({"topic": "x", "minutes": 31}, "between 0.5 and 30"),
        ({"topic": "x", "minutes": float("nan")}, "between 0.5 and 30"),
        ({"topic": "x", "aspect": "4:3"}, "aspect"),
        ({"topic": "x", "language": "english!"}, "--language"),
    ],
)
def test_bad_requests_name_the_problem(fields, needle):
    with pytest.raises(ConfigError, match=needle):
        make_request(**fields)


def test_request_normalises_topic_and_language():
    r = make_request(topic="  photo\tsynthesis \n", language="pt_BR")
    assert r.topic == "photo synthesis"
    assert r.language == "pt-BR"
