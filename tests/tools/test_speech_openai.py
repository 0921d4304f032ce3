"""OpenAISpeech against a real HTTP server (tests/fake_openai.py) through the real openai client.

The server answers POST /v1/audio/speech with real speech made by eSpeak NG (whose engine word
timings are the reference for the alignment) or with synthetic "speech" whose word positions are
known exactly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import re
import socket
import struct
import threading
import time
import wave
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from lessonforge.tools.base import ConfigError, SpeechError, SpeechSynth, SpeechUnavailable, WordTiming
from lessonforge.tools.fakes import FakeSpeech
from lessonforge.tools.media.audio import check_audio, read_wav_pcm
from lessonforge.tools.media.subtitles import cues_from_words, with_punctuation
from lessonforge.tools.speech import espeak as speech_espeak
from lessonforge.tools.speech.align import align_words, voiced_stretches
from lessonforge.tools.speech.fallback import FallbackSpeech
from lessonforge.tools.speech.openai import MAX_INPUT_CHARS, OpenAISpeech, decode_wav, split_for_request
from tests.fake_openai import Error, FakeOpenAIServer, Hang, closed_port, fake_openai, full_text  # noqa: F401

SECRET = "sk-test-SECRET-speech-123"
PAUSE_S = 0.8
PART_A = "Plants need light,"
PART_B = "and they also need water. Without water, the leaves wilt quickly."
TEXT = f"{PART_A} {PART_B}"


# --------------------------------------------------------------------------- audio makers


def streamed_wav(samples: np.ndarray, rate: int) -> bytes:
    """A mono 16-bit WAV as OpenAI streams it: both size fields are 0xFFFFFFFF placeholders."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", 0xFFFFFFFF) + np.asarray(samples, dtype="<i2").tobytes())


def plain_wav(samples: np.ndarray, rate: int, *, channels: int = 1, width: int = 2, tag: int = 1,
              extra_chunk: bytes = b"", declared: int | None = None) -> bytes:
    data = samples if isinstance(samples, bytes) else np.asarray(samples).tobytes()
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * width, channels * width, 8 * width)
    size = len(data) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + extra_chunk + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tone_speech(text: str, rate: int = 24000) -> tuple[np.ndarray, list[WordTiming]]:
    """Synthetic narration: one tone burst per word (length by letters), pauses at punctuation."""
    rng = np.random.default_rng(len(text))
    out: list[np.ndarray] = [np.zeros(int(0.2 * rate))]
    pos = len(out[0])
    truth: list[WordTiming] = []
    for tok in text.split():
        word = re.sub(r"\W", "", tok)
        if not word:
            continue
        n = int((0.05 + 0.06 * len(word)) * rate)
        t = np.arange(n) / rate
        burst = 6000 * np.sin(2 * np.pi * (150 + 40 * rng.random()) * t) * np.sin(np.pi * np.arange(n) / n) ** 0.3
        truth.append(WordTiming(word, pos / rate, (pos + n) / rate))
        gap = 0.45 if tok[-1] in ".!?。" else 0.25 if tok[-1] in ",;:、" else 0.03
        out += [burst, np.zeros(int(gap * rate))]
        pos += n + int(gap * rate)
    out.append(np.zeros(int(0.2 * rate)))
    return np.concatenate(out).round().astype(np.int16), truth


def _run_in_thread(coro_fn: Callable[[], Any]) -> Any:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result()


@pytest.fixture(scope="session")
def espeak_narration(tmp_path_factory) -> dict[str, Any]:
    """TEXT spoken by eSpeak NG with a 0.8 s pause inserted after "light,"; its engine timings as reference."""
    if speech_espeak._engine() is None:
        pytest.skip("libespeak-ng.so.1 is not installed")
    folder = tmp_path_factory.mktemp("espeak")
    tts = speech_espeak.EspeakSpeech("en-us")
    a = _run_in_thread(lambda: tts.speak(PART_A, "en-us", folder / "a.wav"))
    b = _run_in_thread(lambda: tts.speak(PART_B, "en-us", folder / "b.wav"))
    pa, rate = read_wav_pcm(a.path)
    pb, rate_b = read_wav_pcm(b.path)
    assert rate == rate_b
    xa, xb = np.frombuffer(pa, "<i2"), np.frombuffer(pb, "<i2")
    voiced_a = voiced_stretches(xa, rate)
    pause_start = voiced_a[-1][1]  # the end of "light"
    gap = np.zeros(int(PAUSE_S * rate), dtype=np.int16)
    samples = np.concatenate([xa, gap, xb])
    shift = (len(xa) + len(gap)) / rate
    pause_end = shift + voiced_stretches(xb, rate)[0][0]  # "and" begins
    reference = list(a.words) + [WordTiming(w.word, w.start + shift, w.end + shift) for w in b.words]
    return {"samples": samples, "rate": rate, "reference": reference, "pause": (pause_start, pause_end),
            "wav": streamed_wav(samples, rate)}


@pytest.fixture
async def make_tts(fake_openai: FakeOpenAIServer) -> AsyncIterator[Callable[..., OpenAISpeech]]:  # noqa: F811
    made: list[OpenAISpeech] = []

    def make(model: str = "gpt-4o-mini-tts", **options: Any) -> OpenAISpeech:
        options.setdefault("base_url", fake_openai.url)
        options.setdefault("api_key", SECRET)
        options.setdefault("max_retries", 0)
        tts = OpenAISpeech(model, **options)
        made.append(tts)
        return tts

    yield make
    for tts in made:
        await tts.aclose()


def _assert_well_formed(words: tuple[WordTiming, ...] | list[WordTiming], duration: float) -> None:
    for w, nxt in zip(words, words[1:]):
        assert w.start <= w.end <= nxt.start + 1e-9, (w, nxt)
    assert words[0].start >= 0 and words[-1].end <= duration + 1e-9
    assert all(w.end > w.start for w in words)


# --------------------------------------------------------------------------- speaking


async def test_speaks_real_speech_with_timings_aligned_to_the_pauses(fake_openai, make_tts,  # noqa: F811
                                                                     espeak_narration, tmp_path):
    fake_openai.speech = espeak_narration["wav"]
    tts = make_tts()
    assert isinstance(tts, SpeechSynth) and tts.name == "openai:gpt-4o-mini-tts"
    assert tts.timing_source == "aligned"
    speech = await tts.speak(TEXT, "", tmp_path / "scene.wav")

    sent = fake_openai.speech_requests[0]
    assert sent.json == {"model": "gpt-4o-mini-tts", "voice": "alloy", "input": TEXT, "response_format": "wav"}
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    rate = espeak_narration["rate"]
    assert speech.duration == pytest.approx(len(espeak_narration["samples"]) / rate)
    assert check_audio(speech.path) == pytest.approx(speech.duration)
    pcm, got_rate = read_wav_pcm(speech.path)
    assert got_rate == rate and np.array_equal(np.frombuffer(pcm, "<i2"), espeak_narration["samples"])
    assert (speech.voice, speech.backend) == ("alloy", "openai:gpt-4o-mini-tts")

    words = speech.words
    assert [w.word for w in words] == re.sub(r"[^\w\s]", "", TEXT).split()
    _assert_well_formed(words, speech.duration)
    pause_start, pause_end = espeak_narration["pause"]
    light, after = words[2], words[3]
    assert (light.word, after.word) == ("light", "and")
    assert light.end <= pause_start + 0.02  # "light" ends when the voice stops...
    assert after.start >= pause_end - 0.02  # ...and "and" starts when it resumes, 0.8 s later
    assert after.start - light.end >= PAUSE_S - 0.05


async def test_aligned_word_starts_match_espeaks_own_word_events(espeak_narration):
    ref = espeak_narration["reference"]
    words = align_words(TEXT, espeak_narration["samples"], espeak_narration["rate"])
    assert [w.word for w in words] == [w.word for w in ref]
    errors = np.array([abs(w.start - r.start) for w, r in zip(words, ref)])
    assert errors.mean() < 0.1, errors
    assert errors.max() < 0.3, errors


async def test_subtitles_get_the_written_punctuation_and_cues_stay_inside_the_audio(fake_openai,  # noqa: F811
                                                                                    make_tts, espeak_narration,
                                                                                    tmp_path):
    fake_openai.speech = espeak_narration["wav"]
    speech = await make_tts().speak(TEXT, "nova", tmp_path / "s.wav")
    spelled = with_punctuation(TEXT, speech.words)
    assert [w.word for w in spelled] == TEXT.split()  # aligned: the engine words spell the text
    cues = cues_from_words(spelled, audio_end=speech.duration)
    assert cues and cues[-1].end <= speech.duration + 0.0005  # cue times are rounded to milliseconds
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:]))
    assert fake_openai.speech_requests[0].json["voice"] == "nova"


def test_alignment_of_synthetic_speech_is_close_and_exact_after_pauses():
    text = "Light reaches the leaf, where chlorophyll absorbs it. Then sugar forms; oxygen leaves through stomata."
    samples, truth = tone_speech(text)
    words = align_words(text, samples, 24000)
    assert [w.word for w in words] == [t.word for t in truth]
    errors = [abs(w.start - t.start) for w, t in zip(words, truth)]
    assert np.mean(errors) < 0.08
    for k, tok in enumerate(text.split()[:-1]):
        if tok[-1] in ",.;":  # every word after a pause starts at its burst's onset
            assert words[k + 1].start == pytest.approx(truth[k + 1].start, abs=0.02)
            assert words[k].end == pytest.approx(truth[k].end, abs=0.02)


def test_cjk_text_without_spaces_gets_one_timing_per_character():
    text = "光合成は、植物が光を使うことです。"
    samples, _ = tone_speech("光合成は、 植物が光を使うことです。")
    words = align_words(text, samples, 24000)
    assert "".join(w.word for w in words) == "光合成は植物が光を使うことです"
    assert len(words) == 15
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    pause_end = voiced_stretches(samples, 24000)[1][0]
    assert words[4].word == "植" and words[4].start == pytest.approx(pause_end, abs=0.01)


def test_silence_and_wordless_text_give_no_timings():
    assert align_words("Hello there.", np.zeros(24000, dtype=np.int16), 24000) == []
    samples, _ = tone_speech("Hello there.")
    assert align_words("... !", samples, 24000) == []


@pytest.mark.slow
async def test_long_narration_is_spoken_in_chunks_under_the_limit_and_joined(fake_openai, make_tts, tmp_path):  # noqa: F811
    sentence = "Water rises through the xylem, and sugar moves through the phloem to every growing part. "
    text = (sentence * (2 * MAX_INPUT_CHARS // len(sentence) + 3)).strip()

    def speak(request: dict[str, Any]) -> bytes:
        samples, _ = tone_speech(request["input"], rate=8000)
        return streamed_wav(samples, 8000)

    fake_openai.speech = speak
    speech = await make_tts().speak(text, "echo", tmp_path / "long.wav")
    inputs = [r.json["input"] for r in fake_openai.speech_requests]
    assert len(inputs) == 3 and all(len(i) <= MAX_INPUT_CHARS for i in inputs)
    assert " ".join(inputs) == text and all(i.endswith(".") for i in inputs)
    expected = sum(len(tone_speech(i, rate=8000)[0]) for i in inputs) / 8000
    assert speech.duration == pytest.approx(expected)
    assert len(speech.words) == len(text.split())
    _assert_well_formed(speech.words, speech.duration)
    first_of_second = len(inputs[0].split())
    chunk_start = len(tone_speech(inputs[0], rate=8000)[0]) / 8000
    assert speech.words[first_of_second].start == pytest.approx(chunk_start + 0.2, abs=0.02)


def test_split_for_request_cuts_after_sentences_then_at_spaces():
    text = "One two three. Four five six! " + "x" * 30 + " seven eight nine ten eleven twelve."
    pieces = split_for_request(text, 24)
    assert all(len(p) <= 24 for p in pieces)
    assert " ".join(pieces).replace(" ", "") == text.replace(" ", "")
    assert pieces[0] == "One two three."
    assert split_for_request("short", 24) == ["short"]


async def test_requests_in_flight_are_bounded(fake_openai, make_tts, tmp_path):  # noqa: F811
    samples, _ = tone_speech("Hi there.", rate=8000)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def slow(request: dict[str, Any]) -> bytes:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return streamed_wav(samples, 8000)

    fake_openai.speech = slow
    tts = make_tts(max_concurrency=2)
    await asyncio.gather(*(tts.speak("Hi there.", "alloy", tmp_path / f"{i}.wav") for i in range(6)))
    assert len(fake_openai.speech_requests) == 6
    assert state["peak"] == 2


# --------------------------------------------------------------------------- bad audio


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "empty audio"),
        (plain_wav(np.ones(100, "<i2"), 24000, declared=4000), "truncated"),
        (streamed_wav(np.ones(100, "<i2"), 24000)[:-1], "ends inside a sample"),
        (b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00", "truncated before the samples|cut short"),
        (plain_wav(b"", 24000), "no samples"),
        (b"<html>Service temporarily down</html>", "not audio"),
    ],
    ids=["empty", "truncated", "partial-sample", "header-only", "no-samples", "html"],
)
async def test_empty_truncated_or_non_audio_answers_are_rejected(fake_openai, make_tts, tmp_path, body, match):  # noqa: F811
    fake_openai.speech = body
    out = tmp_path / "bad.wav"
    with pytest.raises(SpeechError, match=match) as info:
        await make_tts().speak("Hello there.", "alloy", out)
    assert not isinstance(info.value, SpeechUnavailable)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written, no temporary left


async def test_silent_audio_is_rejected(fake_openai, make_tts, tmp_path):  # noqa: F811
    fake_openai.speech = streamed_wav(np.zeros(24000, dtype=np.int16), 24000)
    with pytest.raises(SpeechError, match="silence"):
        await make_tts().speak("Hello there.", "alloy", tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


def test_decode_wav_reads_other_layouts_as_mono_16_bit():
    x = (np.sin(np.arange(480) / 5) * 20000).astype(np.int16)
    stereo = np.stack([x, x], axis=1).astype("<i2")
    got, rate = decode_wav(plain_wav(stereo, 16000, channels=2, extra_chunk=b"LIST\x03\x00\x00\x00abc\x00"))
    assert rate == 16000 and np.array_equal(got, x)
    as_float = (x / 32767.0).astype("<f4")
    got, _ = decode_wav(plain_wav(as_float, 16000, width=4, tag=3))
    assert np.abs(got.astype(int) - x).max() <= 1
    as_24 = b"".join((int(v) * 256).to_bytes(3, "little", signed=True) for v in x)
    got, _ = decode_wav(plain_wav(as_24, 16000, width=3))
    assert np.array_equal(got, x)
    with pytest.raises(ValueError, match="RIFF"):
        decode_wav(b"ID3\x04" + b"\x00" * 40)


async def test_audio_in_another_container_is_decoded_with_ffmpeg(fake_openai, make_tts, tmp_path):  # noqa: F811
    import subprocess

    from lessonforge.tools.media.audio import ffmpeg_exe

    samples, _ = tone_speech("Hello there, friends.", rate=24000)
    wav = tmp_path / "in.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(24000), w.writeframes(samples.tobytes())
    flac = tmp_path / "in.flac"
    await asyncio.to_thread(subprocess.run, [ffmpeg_exe(), "-loglevel", "error", "-i", str(wav), str(flac)], check=True)
    fake_openai.speech = flac.read_bytes()  # a server that ignores response_format
    speech = await make_tts().speak("Hello there, friends.", "alloy", tmp_path / "out.wav")
    assert speech.duration == pytest.approx(len(samples) / 24000, abs=0.01)
    assert [w.word for w in speech.words] == ["Hello", "there", "friends"]


# --------------------------------------------------------------------------- errors and secrets


async def test_rejected_key_is_a_config_error_that_never_shows_the_key(fake_openai, make_tts, tmp_path, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    fake_openai.api_key = "sk-the-right-one"  # the server echoes the wrong key it was sent, as OpenAI does
    tts = make_tts()
    with pytest.raises(ConfigError) as info:
        await tts.speak("Hello.", "alloy", tmp_path / "x.wav")
    assert fake_openai.speech_requests[0].headers["authorization"] == f"Bearer {SECRET}"
    text = full_text(info.value)
    assert SECRET not in text and "Incorrect API key provided: ***" in text and "OPENAI_API_KEY" in text
    assert SECRET not in caplog.text and SECRET not in repr(tts)


@pytest.mark.parametrize(
    ("reply", "kind", "match"),
    [
        (Error(404, body={"error": {"message": "The model `tts-9` does not exist"}}), ConfigError,
         "no text-to-speech model"),
        (Error(403, body={"error": {"message": "Country not supported"}}), ConfigError, "refused.*403"),
        (Error(400, body={"error": {"message": "Invalid voice"}}), SpeechError, "Invalid voice"),
        (Error(500), SpeechUnavailable, "HTTP 500"),
        (Error(503, headers={"x-should-retry": "false"}), SpeechUnavailable, "HTTP 503"),
        (Error(429, body={"error": {"message": "You exceeded your current quota"}}), SpeechUnavailable, "quota"),
    ],
    ids=["404", "403", "400", "500", "503", "429"],
)
async def test_http_errors_map_to_clear_errors(fake_openai, make_tts, tmp_path, reply, kind, match):  # noqa: F811
    fake_openai.speech = reply
    with pytest.raises(kind, match=match) as info:
        await make_tts().speak("Hello.", "alloy", tmp_path / "x.wav")
    if kind is SpeechError:
        assert not isinstance(info.value, SpeechUnavailable)
    assert SECRET not in full_text(info.value)


async def test_server_errors_are_retried_by_the_client(fake_openai, make_tts, tmp_path):  # noqa: F811
    samples, _ = tone_speech("Hello there.", rate=8000)
    replies = [Error(500, headers={"retry-after-ms": "10"}), streamed_wav(samples, 8000)]
    fake_openai.speech = lambda request: replies.pop(0)
    speech = await make_tts(max_retries=2).speak("Hello there.", "alloy", tmp_path / "x.wav")
    assert len(fake_openai.speech_requests) == 2 and len(speech.words) == 2


async def test_unreachable_or_silent_server_is_unavailable_so_a_fallback_can_speak(make_tts, fake_openai, tmp_path):  # noqa: F811
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(SpeechUnavailable, match="Cannot reach.*127.0.0.1.*espeak"):
        await make_tts(base_url=url).speak("Hello.", "alloy", tmp_path / "x.wav")
    fake_openai.speech = Hang(10)
    start = time.monotonic()
    with pytest.raises(SpeechUnavailable, match=r"within 0\.3 s"):
        await make_tts(timeout_s=0.3).speak("Hello.", "alloy", tmp_path / "x.wav")
    assert time.monotonic() - start < 5

    warned: list[str] = []
    fallback = FallbackSpeech(make_tts(base_url=url), FakeSpeech(), language="en", on_fallback=warned.append)
    speech = await fallback.speak("Hello there.", "alloy", tmp_path / "f.wav")
    assert speech.backend == "fake:" and warned and fallback.fallbacks[0]["primary"] == "openai:gpt-4o-mini-tts"


def test_configuration_errors_come_before_any_request(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY.*--speech"):
        OpenAISpeech()
    with pytest.raises(ConfigError, match="not an http"):
        OpenAISpeech(base_url="localhost:8880")
    with pytest.raises(ConfigError, match="max_concurrency"):
        OpenAISpeech(api_key="k", max_concurrency=0)
    with pytest.raises(ConfigError, match="timeout_s"):
        OpenAISpeech(api_key="k", timeout_s=0)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    tts = OpenAISpeech("")
    assert tts.model == "gpt-4o-mini-tts-2025-12-15" and tts.official and "sk-env" not in repr(tts)


async def test_voices_and_their_checks(fake_openai, make_tts, tmp_path):  # noqa: F811
    official = OpenAISpeech("tts-1", api_key="k")
    assert official.default_voice("fr-FR") == "alloy"
    listed = await official.voices("fr")
    classic = ["alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer"]
    assert [v.name for v in listed] == sorted(classic)
    assert len(await OpenAISpeech(api_key="k").voices()) == 13
    with pytest.raises(ConfigError, match="Unknown OpenAI voice 'af_heart'"):
        await OpenAISpeech(api_key="k").speak("Hi.", "af_heart", tmp_path / "x.wav")
    with pytest.raises(ConfigError, match="needs gpt-4o-mini-tts"):
        await official.speak("Hi.", "marin", tmp_path / "x.wav")
    with pytest.raises(ConfigError, match="empty"):
        await official.speak("  ", "alloy", tmp_path / "x.wav")
    with pytest.raises(ConfigError, match="language"):
        official.default_voice("")
    # A compatible server has its own voice names: they are passed through.
    samples, _ = tone_speech("Hi.", rate=8000)
    fake_openai.speech = streamed_wav(samples, 8000)
    speech = await make_tts("kokoro").speak("Hi.", "af_heart", tmp_path / "k.wav")
    assert speech.voice == "af_heart" and fake_openai.speech_requests[0].json["model"] == "kokoro"
    assert math.isclose(speech.duration, len(samples) / 8000)


async def test_a_body_cut_off_in_transfer_is_never_accepted(make_tts, tmp_path):
    """A server that promises 100 kB and closes after 500 bytes (Content-Length checked by the client)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"content-length: *(\d+)", head, re.IGNORECASE).group(1))
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: 100000\r\n\r\n"
                             + streamed_wav(np.ones(250, "<i2"), 24000)[:500])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(SpeechUnavailable, match="dropped the connection.*complete"):
            await make_tts(base_url=f"http://127.0.0.1:{listener.getsockname()[1]}/v1").speak(
                "Hello.", "alloy", tmp_path / "x.wav")
    finally:
        listener.close()
        thread.join(5)
    assert not (tmp_path / "x.wav").exists()


async def test_a_short_key_is_scrubbed_without_garbling_the_message(fake_openai, make_tts, tmp_path):  # noqa: F811
    fake_openai.api_key = "the-right-one"
    with pytest.raises(ConfigError) as info:
        await make_tts(api_key="k").speak("Hello.", "alloy", tmp_path / "x.wav")
    text = str(info.value)
    assert "Incorrect API key provided: ***." in text and "Check OPENAI_API_KEY" in text
