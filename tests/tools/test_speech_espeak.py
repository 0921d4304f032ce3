"""eSpeak NG through its C library: real speech, real word timings from the engine."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lessonforge.tools.base import ConfigError, SpeechSynth
from lessonforge.tools.media.audio import read_wav_pcm, wav_duration
from lessonforge.tools.registry import create
from lessonforge.tools.speech import espeak as speech_espeak
from lessonforge.tools.speech.espeak import EspeakSpeech, estimate_timings

pytestmark = pytest.mark.skipif(speech_espeak._engine() is None, reason="libespeak-ng.so.1 is not installed")


def _samples(path: Path) -> tuple[np.ndarray, int]:
    pcm, rate = read_wav_pcm(path)
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64), rate


def _assert_well_formed(speech, text_words: list[str]) -> None:
    assert [w.word for w in speech.words] == text_words
    starts = [w.start for w in speech.words]
    assert starts == sorted(starts)
    for w, nxt in zip(speech.words, speech.words[1:]):
        assert w.start <= w.end <= nxt.start
    assert speech.words[0].start >= 0 and speech.words[-1].end <= speech.duration + 1e-9
    assert all(w.end > w.start for w in speech.words)


async def test_speaks_a_sentence_with_engine_word_timings(tmp_path: Path) -> None:
    tts = create("speech", "espeak:en-us")
    assert isinstance(tts, SpeechSynth) and tts.name == "espeak:en-us"
    assert tts.timing_source == "engine"
    text = "Plants turn sunlight, water and air into sugar."
    speech = await tts.speak(text, "", tmp_path / "s.wav")
    assert speech.path == tmp_path / "s.wav" and speech.backend == "espeak:en-us" and speech.voice == "en-us"
    assert speech.duration == pytest.approx(wav_duration(speech.path)) and speech.duration > 1.5
    _assert_well_formed(speech, ["Plants", "turn", "sunlight", "water", "and", "air", "into", "sugar"])
    # The last word ends where the speech ends, not in the file's trailing silence.
    samples, rate = _samples(speech.path)
    tail = samples[int(speech.words[-1].end * rate) :]
    assert tail.size == 0 or np.sqrt((tail**2).mean()) < 200


async def test_word_times_come_from_the_engine_not_from_word_lengths(tmp_path: Path) -> None:
    """'1999' is four letters but takes 'nineteen ninety-nine' to say; a length estimate misplaces 'a'."""
    tts = EspeakSpeech("en-us")
    text = "1999 was a good year."
    speech = await tts.speak(text, "", tmp_path / "y.wav")
    _assert_well_formed(speech, ["1999", "was", "a", "good", "year"])
    samples, rate = _samples(speech.path)
    estimated = estimate_timings(text, samples.astype("<i2"), rate)
    assert speech.words[2].start > estimated[2].start + 0.3
    # The number alone lasts about as long as the engine says its word does.
    alone = await tts.speak("1999", "", tmp_path / "n.wav")
    assert speech.words[1].start == pytest.approx(alone.words[0].end, abs=0.25)


async def test_pause_after_a_comma_falls_between_words(tmp_path: Path) -> None:
    speech = await EspeakSpeech().speak("First, second.", "en-us", tmp_path / "p.wav")
    first, second = speech.words
    assert second.start - first.end > 0.08  # the comma's pause is not counted as speech
    samples, rate = _samples(speech.path)
    gap = samples[int(first.end * rate) : int(second.start * rate)]
    assert np.sqrt((gap**2).mean()) < 200
    word = samples[int(second.start * rate) : int(second.end * rate)]
    assert np.sqrt((word**2).mean()) > 500


@pytest.mark.parametrize(
    ("language", "voice", "text", "words"),
    [
        ("fr", "fr", "Bonjour à tous, ça va bien ?", ["Bonjour", "à", "tous", "ça", "va", "bien"]),
        ("de-DE", "de", "Guten Tag, wie geht's dir?", ["Guten", "Tag", "wie", "geht's", "dir"]),
    ],
)
async def test_french_and_german_voices(tmp_path: Path, language: str, voice: str, text: str, words: list[str]) -> None:
    tts = EspeakSpeech()
    assert tts.default_voice(language) == voice
    speech = await tts.speak(text, tts.default_voice(language), tmp_path / f"{voice}.wav")
    assert speech.voice == voice and speech.duration > 1.0
    _assert_well_formed(speech, words)


def test_default_voice_maps_bcp47_tags() -> None:
    tts = EspeakSpeech()
    expected = {"en": "en-us", "en-US": "en-us", "en-GB": "en", "fr-FR": "fr", "de": "de", "ja": "ja",
                "ar": "ar", "zh-CN": "cmn", "pt": "pt-br", "es": "es", "es-MX": "es-419", "ru": "ru"}  # fmt: skip
    assert {tag: tts.default_voice(tag) for tag in expected} == expected
    with pytest.raises(ConfigError, match="lessonforge voices"):
        tts.default_voice("tlh-Latn-QQ")


def test_voices_lists_installed_voices_by_language() -> None:
    tts = EspeakSpeech()
    english = asyncio.run(tts.voices("en"))
    assert {"en-us", "en"} <= {v.name for v in english}
    assert all(v.backend == "espeak" and v.language.startswith("en") for v in english)
    assert len(asyncio.run(tts.voices())) > len(english) > 1
    assert [v.name for v in asyncio.run(tts.voices("fr-FR"))] == ["fr"]


async def test_unknown_voice_is_a_config_error(tmp_path: Path) -> None:
    tts = EspeakSpeech()
    with pytest.raises(ConfigError, match="lessonforge voices"):
        await tts.speak("Hello.", "xx-nonexistent", tmp_path / "x.wav")
    with pytest.raises(ConfigError, match="lessonforge voices"):
        await tts.speak("Hello.", "en-US-AriaNeural", tmp_path / "x.wav")  # an edge voice is not an espeak one
    with pytest.raises(ConfigError, match="lessonforge voices"):
        create("speech", "espeak:klingon-klingon-x")
    with pytest.raises(ConfigError, match="variant"):
        await tts.speak("Hello.", "en-us+nosuchvariant", tmp_path / "x.wav")
    with pytest.raises(ConfigError, match="empty"):
        await tts.speak("   ", "en-us", tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()
    variant = await tts.speak("Hello there.", "en-us+f3", tmp_path / "f3.wav")
    assert variant.duration > 0.3 and variant.voice == "en-us+f3"
    assert (await tts.speak("Hallo.", "de-DE", tmp_path / "de.wav")).voice == "de"  # a BCP-47 tag works too


async def test_chinese_words_are_split_per_engine_word(tmp_path: Path) -> None:
    speech = await EspeakSpeech().speak("你好世界。", "cmn", tmp_path / "zh.wav")
    _assert_well_formed(speech, ["你", "好", "世", "界"])


async def test_concurrent_calls_run_in_worker_threads_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = speech_espeak._engine()
    real_synth = lib._lib.espeak_Synth
    active, seen_threads, peak = 0, set(), 0

    def watched(*args):  # the C call, slowed down so that unserialised calls would overlap
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        seen_threads.add(threading.get_ident())
        time.sleep(0.05)
        try:
            return real_synth(*args)
        finally:
            active -= 1

    monkeypatch.setattr(lib._lib, "espeak_Synth", watched)
    tts = EspeakSpeech("en-us")
    texts = [f"Sentence number {n} is spoken at the same time as the others." for n in range(4)]
    results = await asyncio.gather(*(tts.speak(t, "", tmp_path / f"c{n}.wav") for n, t in enumerate(texts)))
    assert peak == 1 and threading.get_ident() not in seen_threads
    monkeypatch.undo()
    alone = await tts.speak(texts[2], "", tmp_path / "alone.wav")
    assert results[2].duration == pytest.approx(alone.duration, abs=0.05)
    assert [w.word for w in results[2].words] == [w.word for w in alone.words]


async def test_command_line_fallback_estimates_timings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speech_espeak, "_engine", lambda: None)
    tts = EspeakSpeech("fr")
    assert tts.timing_source == "estimate"
    t0 = time.monotonic()
    speech = await tts.speak("Bonjour tout le monde.", "", tmp_path / "cli.wav")
    assert time.monotonic() - t0 < 10
    assert speech.duration == pytest.approx(wav_duration(speech.path)) and speech.duration > 0.8
    _assert_well_formed(speech, ["Bonjour", "tout", "le", "monde"])
    with pytest.raises(ConfigError, match="lessonforge voices"):
        await tts.speak("Bonjour.", "xx-nonexistent", tmp_path / "bad.wav")
