from __future__ import annotations

import pytest

from lessonforge.tools import registry
from lessonforge.tools.base import ConfigError
from lessonforge.tools.fakes import FakeImages, FakeLLM


def test_parse_and_create():
    spec = registry.parse("llm", "openai:gpt-4.1-mini")
    assert (spec.backend, spec.model) == ("openai", "gpt-4.1-mini")
    assert registry.parse("llm", "openai:org/model:tag").model == "org/model:tag"
    assert registry.parse("images", "none") is None
    assert isinstance(registry.create("llm", "fake:x"), FakeLLM)
    assert isinstance(registry.create("images", "fake:"), FakeImages)
    assert registry.create("critic", "none") is None


def test_llm_and_speech_cannot_be_switched_off():
    with pytest.raises(ConfigError):
        registry.parse("llm", "none")
    with pytest.raises(ConfigError):
        registry.parse("speech", "none")


def test_plugins_through_entry_points(monkeypatch):
    class EP:
        name = "speech.coqui"

        def load(self):
            return lambda model, **kw: ("coqui", model)

    monkeypatch.setattr(registry, "entry_points", lambda group: [EP()])
    assert "coqui" in registry.prefixes("speech")
    assert registry.create("speech", "coqui:vits") == ("coqui", "vits")
