"""Fallback from an unreachable edge-tts to a real eSpeak NG, recorded for the manifest."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import edge_tts.communicate
import pytest

from lessonforge.tools.base import ConfigError, Speech, SpeechBackend, SpeechError, SpeechSynth, WordTiming
from lessonforge.tools.cache import content_key
from lessonforge.tools.media.audio import wav_duration
from lessonforge.tools.speech import espeak as speech_espeak
from lessonforge.tools.speech.edge import EdgeSpeech
from lessonforge.tools.speech.espeak import EspeakSpeech
from lessonforge.tools.speech.fallback import FallbackSpeech

pytestmark = pytest.mark.skipif(speech_espeak._engine() is None, reason="libespeak-ng.so.1 is not installed")


class CountingSpeech(SpeechBackend):
    """A primary that fails a given way and counts how often it was asked."""

    def __init__(self, error: Exception | None) -> None:
        self.name = "counting:x"
        self.error = error
        self.calls = 0

    def default_voice(self, language: str) -> str:
        return f"voice-for-{language}"

    async def speak(self, text: str, voice: str, out: Path) -> Speech:
        self.calls += 1
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        out.write_bytes(b"x")
        return Speech(out, 1.0, (WordTiming(text, 0.0, 1.0),), voice, self.name)


async def test_unreachable_edge_falls_back_to_espeak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real edge-tts, real aiohttp: the service's name cannot resolve (RFC 2606 .invalid).
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", "wss://speech.lessonforge.invalid/edge/v1?TrustedClientToken=x")
    warnings: list[str] = []
    tts = FallbackSpeech(EdgeSpeech("fr-FR-DeniseNeural"), EspeakSpeech(), language="fr", on_fallback=warnings.append)
    assert isinstance(tts, SpeechSynth) and tts.name == "edge:fr-FR-DeniseNeural"
    assert tts.default_voice("fr") == "fr-FR-DeniseNeural"
    texts = ["Bonjour à tous.", "La lumière se courbe dans l'eau.", "Merci et au revoir."]
    t0 = time.monotonic()
    speeches = [await tts.speak(t, "fr-FR-DeniseNeural", tmp_path / f"{n}.wav") for n, t in enumerate(texts)]
    assert time.monotonic() - t0 < 10  # no long retries against an unreachable service
    for speech, text in zip(speeches, texts, strict=True):
        assert speech.backend == "espeak:" and speech.voice == "fr"
        assert speech.duration == pytest.approx(wav_duration(speech.path)) and speech.duration > 0.5
        assert speech.words[0].word == text.split()[0]
    assert tts.using_fallback
    assert len(warnings) == 1 and "espeak" in warnings[0] and "edge:fr-FR-DeniseNeural" in warnings[0]
    assert [r["text_hash"] for r in tts.fallbacks] == [content_key(t) for t in texts]
    assert all(r["primary"] == "edge:fr-FR-DeniseNeural" and r["fallback"] == "espeak:" for r in tts.fallbacks)
    assert "SpeechUnavailable" in tts.fallbacks[0]["reason"] and "Cannot reach" in tts.fallbacks[0]["reason"]


async def test_primary_is_not_asked_again_after_it_failed(tmp_path: Path) -> None:
    primary = CountingSpeech(SpeechError("edge-tts failed 5 times"))
    warnings: list[str] = []
    tts = FallbackSpeech(primary, EspeakSpeech(), language="en-GB", on_fallback=warnings.append)
    results = await asyncio.gather(*(tts.speak(f"Scene {n} says hello.", "", tmp_path / f"{n}.wav") for n in range(3)))
    assert primary.calls == 3 and len(warnings) == 1
    await tts.speak("One more scene.", "", tmp_path / "late.wav")
    assert primary.calls == 3  # the late scene went straight to the fallback
    assert {r.backend for r in results} == {"espeak:"} and {r.voice for r in results} == {"en"}
    assert len(tts.fallbacks) == 4


async def test_working_primary_is_used_and_config_errors_are_not_hidden(tmp_path: Path) -> None:
    primary = CountingSpeech(None)
    tts = FallbackSpeech(primary, EspeakSpeech(), language="en")
    speech = await tts.speak("Hello.", "v", tmp_path / "a.wav")
    assert speech.backend == "counting:x" and tts.fallbacks == [] and not tts.using_fallback
    broken = FallbackSpeech(CountingSpeech(ConfigError("bad voice")), EspeakSpeech(), language="en")
    with pytest.raises(ConfigError):
        await broken.speak("Hello.", "v", tmp_path / "b.wav")
    assert broken.fallbacks == [] and not broken.using_fallback
