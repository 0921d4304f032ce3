"""The Piper backend, run through piper-tts and onnxruntime on a tiny random-weight voice.

The voice (tests/tiny_piper.py) has a real voice's inputs, outputs, config and phoneme map, and
speaks silence for spaces and punctuation: so word times taken from its phoneme durations can
be checked against the audio itself.
"""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("piper")
pytest.importorskip("onnx")

from lessonforge.tools import hub as models
from lessonforge.tools.base import ConfigError
from lessonforge.tools.registry import create
from lessonforge.tools.speech.piper import DEFAULT_VOICE, PiperSpeech, voice_files
from tests.tiny_piper import HOP, RATE, make_piper_voice

TEXT = "Plants make sugar from light. In 1990, Dr. Smith measured it, carefully — twice!"


@pytest.fixture(scope="module")
def voice(tmp_path_factory) -> Path:
    return make_piper_voice(tmp_path_factory.mktemp("piper"))


def speak(backend: PiperSpeech, text: str, out: Path, voice: str = ""):
    return asyncio.run(backend.speak(text, voice, out))


def samples_of(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64), w.getframerate()


def loud(samples: np.ndarray, rate: int, start: float, end: float) -> float:
    """The share of loud 5 ms frames between two times."""
    step = rate // 200
    part = samples[int(start * rate): int(end * rate)]
    part = part[: len(part) // step * step].reshape(-1, step)
    return float((np.sqrt((part**2).mean(axis=1)) > 1000).mean()) if part.size else 0.0


def test_speaks_with_word_times_from_the_voice_durations(voice, tmp_path):
    backend = create("speech", f"piper:{voice}")
    speech = speak(backend, TEXT, tmp_path / "n.wav")
    samples, rate = samples_of(speech.path)
    assert rate == RATE
    assert speech.duration == pytest.approx(len(samples) / rate)
    assert backend.timing_source == "engine"
    # One timing per written word, bare as every engine reports them ("1990" included).
    assert [w.word for w in speech.words] == [t.strip(".,!") for t in TEXT.split() if t != "—"]
    previous = 0.0
    for w in speech.words:
        assert previous <= w.start <= w.end <= speech.duration
        previous = w.end
    # Spoken words are voiced through most of their span; the gaps between them are silent
    # (the tiny voice is silent exactly on spaces and punctuation).
    for w in speech.words:
        if w.end > w.start:
            assert loud(samples, rate, w.start, w.end) > 0.6, w
    for a, b in zip(speech.words, speech.words[1:], strict=False):
        if b.start - a.end > 2 * HOP / rate:
            assert loud(samples, rate, a.end + HOP / rate, b.start - HOP / rate) < 0.05, (a, b)
    # "1990" is spoken as two words: its span covers both, so it lasts longer than "In".
    year = next(w for w in speech.words if w.word == "1990")
    short = next(w for w in speech.words if w.word == "In")
    assert year.end - year.start > 2 * (short.end - short.start)


def test_voice_from_the_hub_cache_offline(voice, tmp_path, monkeypatch):
    files = voice_files("en_US-tiny-medium")
    snapshot = tmp_path / "hub" / "models--rhasspy--piper-voices" / "snapshots" / ("a" * 40)
    for name, src in ((files.onnx, voice), (files.config, Path(f"{voice}.json"))):
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_bytes(src.read_bytes())
    (tmp_path / "hub" / "models--rhasspy--piper-voices" / "refs").mkdir()
    (tmp_path / "hub" / "models--rhasspy--piper-voices" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    backend = PiperSpeech("en_US-tiny-medium")
    speech = speak(backend, "Light becomes sugar.", tmp_path / "n.wav")
    assert speech.voice == "en_US-tiny-medium" and speech.backend == "piper:en_US-tiny-medium"
    assert [w.word for w in speech.words] == ["Light", "becomes", "sugar"]
    assert models.is_cached("rhasspy/piper-voices", [files.onnx, files.config])

    # A voice that is not cached, offline: the error names the file and the command that fetches it.
    with pytest.raises(ConfigError) as err:
        speak(backend, "Hello.", tmp_path / "m.wav", voice="en_GB-alan-medium")
    text = str(err.value)
    assert "en/en_GB/alan/medium/en_GB-alan-medium.onnx" in text
    assert "HF_HUB_OFFLINE" in text and "lessonforge models pull piper:en_GB-alan-medium" in text


def test_models_lists_and_checks_the_default_voice(tmp_path):
    env = {"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    record = next(r for r in models.model_records(env) if r.id == f"piper:{DEFAULT_VOICE}")
    assert not record.cached
    files = voice_files(DEFAULT_VOICE)
    assert record.missing == (files.onnx, files.config)
    with pytest.raises(ConfigError, match=f"piper:{DEFAULT_VOICE}"):
        models.pull([f"piper:{DEFAULT_VOICE}"], env=env)
    with pytest.raises(ConfigError, match="not a Piper voice name"):
        models.pull(["piper:lessac"], env=env)


def test_length_scale_slows_the_voice(voice, tmp_path):
    normal = speak(PiperSpeech(str(voice)), "Chlorophyll absorbs light.", tmp_path / "a.wav")
    slow = speak(PiperSpeech(str(voice), length_scale=2.0), "Chlorophyll absorbs light.", tmp_path / "b.wav")
    assert slow.duration == pytest.approx(2 * normal.duration, rel=0.1)
    assert slow.words[-1].end > 1.7 * normal.words[-1].end


def test_speakers_of_a_multi_speaker_voice(tmp_path):
    path = make_piper_voice(tmp_path, "en_US-crowd-medium", num_speakers=3)
    backend = PiperSpeech(str(path))
    one = speak(backend, "Leaves are green.", tmp_path / "1.wav", voice=f"{path}#1")
    two = speak(backend, "Leaves are green.", tmp_path / "2.wav", voice=f"{path}#speaker_2")
    assert one.duration == pytest.approx(two.duration)
    assert not np.array_equal(samples_of(one.path)[0], samples_of(two.path)[0])  # each speaker sounds different
    with pytest.raises(ConfigError, match="no speaker '7'"):
        speak(backend, "Leaves are green.", tmp_path / "3.wav", voice=f"{path}#7")


def test_a_voice_without_alignments_is_aligned_to_the_audio(voice, tmp_path, monkeypatch):
    import lessonforge.tools.speech.piper as sp

    monkeypatch.setattr(sp, "_has_onnx", lambda: False)  # as when the onnx package is missing
    backend = PiperSpeech(str(voice))
    speech = speak(backend, "Water and light make sugar.", tmp_path / "n.wav")
    assert backend.timing_source == "aligned"
    assert [w.word for w in speech.words] == ["Water", "and", "light", "make", "sugar"]
    assert all(0 <= w.start <= w.end <= speech.duration for w in speech.words)


def test_bad_input_is_named_with_its_fix(voice, tmp_path):
    with pytest.raises(ConfigError, match="en_US-lessac-medium"):
        PiperSpeech("lessac")
    with pytest.raises(ConfigError, match="length_scale"):
        PiperSpeech("", length_scale=0)
    backend = PiperSpeech(str(voice))
    with pytest.raises(ConfigError, match="empty"):
        speak(backend, "  ", tmp_path / "n.wav")
    with pytest.raises(ConfigError, match="does not exist"):
        speak(backend, "Hello.", tmp_path / "n.wav", voice=str(tmp_path / "nowhere.onnx"))
    with pytest.raises(ConfigError, match="one speaker"):
        speak(backend, "Hello.", tmp_path / "n.wav", voice=f"{voice}#2")
    broken = tmp_path / "en_US-broken-medium.onnx"
    broken.write_bytes(b"not a model")
    Path(f"{broken}.json").write_text(json.dumps(json.loads(Path(f"{voice}.json").read_text())))
    with pytest.raises(ConfigError, match="not a valid ONNX voice"):
        speak(backend, "Hello.", tmp_path / "n.wav", voice=str(broken))
    assert not (tmp_path / "n.wav").exists()  # nothing half-written


def test_default_voices_per_language():
    backend = PiperSpeech()
    assert backend.default_voice("en") == DEFAULT_VOICE
    assert backend.default_voice("en-GB") == "en_GB-alan-medium"
    assert backend.default_voice("fr-CA") == "fr_FR-siwis-medium"
    assert PiperSpeech("de_DE-thorsten-high").default_voice("de") == "de_DE-thorsten-high"
    assert PiperSpeech("en_US-libritts_r-medium#12").default_voice("en-US") == "en_US-libritts_r-medium#12"
    with pytest.raises(ConfigError, match="No default Piper voice for language 'sw'"):
        backend.default_voice("sw")
    assert {v.language for v in asyncio.run(backend.voices("en"))} == {"en-us", "en-gb"}
