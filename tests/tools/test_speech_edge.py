"""edge-tts backend, run through edge-tts' real code with only the websocket replaced.

The fake server speaks the service's wire format (text frames with ``Path:audio.metadata``,
binary frames with a 2-byte header length and ``Path:audio``, then ``Path:turn.end``), carrying
real MP3 made with ffmpeg from an espeak-ng recording and that recording's word timings.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import edge_tts.communicate
import pytest
import yarl
from multidict import CIMultiDict, CIMultiDictProxy

from lessonforge.tools.base import ConfigError, SpeechSynth, SpeechUnavailable
from lessonforge.tools.media.audio import ffmpeg_exe, wav_duration
from lessonforge.tools.registry import create
from lessonforge.tools.speech import espeak as speech_espeak
from lessonforge.tools.speech.edge import EdgeSpeech
from lessonforge.tools.speech.espeak import EspeakSpeech

TEXT = "Light bends when it enters water."
TICKS = 10_000_000


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Real MP3 bytes (24 kHz mono 48 kbit/s, the service's format) and word timings in ticks."""
    if speech_espeak._engine() is None:
        pytest.skip("libespeak-ng.so.1 is not installed")
    folder = tmp_path_factory.mktemp("edge")
    speech = asyncio.run(EspeakSpeech("en-us").speak(TEXT, "", folder / "src.wav"))
    mp3 = folder / "src.mp3"
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(speech.path), "-ar", "24000", "-ac", "1",
         "-c:a", "libmp3lame", "-b:a", "48k", "-write_xing", "0", "-id3v2_version", "0", "-f", "mp3", str(mp3)],
        check=True,
    )  # fmt: skip
    marks = [(round(w.start * TICKS), round((w.end - w.start) * TICKS), w.word) for w in speech.words]
    return {"mp3": mp3.read_bytes(), "marks": marks, "duration": speech.duration}


def _text_frame(path: str, body: str = "") -> SimpleNamespace:
    head = f"X-RequestId:abc\r\nContent-Type:application/json; charset=utf-8\r\nPath:{path}\r\n\r\n"
    return SimpleNamespace(type=aiohttp.WSMsgType.TEXT, data=head + body)


def _audio_frame(data: bytes) -> SimpleNamespace:
    head = (
        b"X-RequestId:abc\r\nContent-Type:audio/mpeg\r\nPath:audio\r\n"
        if data
        else b"X-RequestId:abc\r\nPath:audio\r\n"
    )
    return SimpleNamespace(type=aiohttp.WSMsgType.BINARY, data=len(head).to_bytes(2, "big") + head + data)


def _boundary(offset: int, duration: int, word: str) -> SimpleNamespace:
    text = {"Text": word, "Length": len(word), "BoundaryType": "WordBoundary"}
    meta = {"Metadata": [{"Type": "WordBoundary", "Data": {"Offset": offset, "Duration": duration, "text": text}}]}
    return _text_frame("audio.metadata", json.dumps(meta))


def _turn(recording: dict[str, Any], *, audio: bytes | None = None, end: bool = True) -> list:
    """The frames of one synthesis turn, as the service sends them."""
    data = recording["mp3"] if audio is None else audio
    frames = [_text_frame("turn.start", "{}"), _text_frame("response", "{}")]
    pieces = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    boundaries = [_boundary(*m) for m in recording["marks"]]
    for k, piece in enumerate(pieces):  # metadata interleaved with audio, in order, as on the wire
        frames += [b for i, b in enumerate(boundaries) if i * len(pieces) // len(boundaries) == k]
        frames.append(_audio_frame(piece))
    frames.append(_audio_frame(b""))  # the empty end-of-audio message, without Content-Type
    if end:
        frames.append(_text_frame("turn.end", "{}"))
    return frames


def _http_error(status: int) -> aiohttp.WSServerHandshakeError:
    url = yarl.URL("wss://speech.platform.bing.com/consumer/speech/synthesize/readaloud/edge/v1")
    info = aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    return aiohttp.WSServerHandshakeError(info, (), status=status, message="Invalid response status")


class FakeService:
    """Replaces ``aiohttp.ClientSession.ws_connect``; each connection plays the next script entry."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, script: list[list | BaseException]) -> None:
        self.script = list(script)
        self.connections = 0
        self.sent: list[str] = []
        service = self

        class _Socket:
            def __init__(self, frames: list) -> None:
                self.frames = frames

            async def send_str(self, data: str) -> None:
                service.sent.append(data)

            async def __aiter__(self):
                for frame in self.frames:
                    yield frame

        class _Connect:
            def __init__(self, entry: list | BaseException) -> None:
                self.entry = entry

            async def __aenter__(self) -> _Socket:
                if isinstance(self.entry, BaseException):
                    raise self.entry
                return _Socket(self.entry)

            async def __aexit__(self, *exc: object) -> bool:
                return False

        def ws_connect(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> _Connect:
            service.connections += 1
            entry = self.script.pop(0) if len(self.script) > 1 else self.script[0]
            return _Connect(entry)

        monkeypatch.setattr(aiohttp.ClientSession, "ws_connect", ws_connect)


def _fast(**kw: Any) -> EdgeSpeech:
    return EdgeSpeech("en-US-AriaNeural", backoff_s=0.001, **kw)


def _no_leftovers(folder: Path, keep: set[str] = frozenset()) -> None:
    assert {p.name for p in folder.iterdir()} == set(keep)


async def test_word_timings_come_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recording) -> None:
    service = FakeService(monkeypatch, [_turn(recording)])
    tts = create("speech", "edge:en-US-AriaNeural")
    assert isinstance(tts, SpeechSynth) and tts.name == "edge:en-US-AriaNeural"
    speech = await tts.speak(TEXT, "", tmp_path / "s.wav")
    assert speech.backend == "edge:en-US-AriaNeural" and speech.voice == "en-US-AriaNeural"
    assert speech.duration == pytest.approx(wav_duration(speech.path))
    assert speech.duration == pytest.approx(recording["duration"], abs=0.15)
    assert [w.word for w in speech.words] == ["Light", "bends", "when", "it", "enters", "water"]
    for w, (offset, duration, _) in zip(speech.words, recording["marks"], strict=True):
        assert w.start == pytest.approx(offset / TICKS) and w.end == pytest.approx((offset + duration) / TICKS)
    assert service.connections == 1
    ssml = next(s for s in service.sent if "Path:ssml" in s)
    assert "en-US, AriaNeural" in ssml and "Light bends" in ssml
    config = next(s for s in service.sent if "speech.config" in s)
    assert '"wordBoundaryEnabled":"true"' in config
    _no_leftovers(tmp_path, {"s.wav"})


async def test_503_then_success_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recording) -> None:
    service = FakeService(monkeypatch, [_http_error(503), _http_error(503), _turn(recording)])
    speech = await _fast().speak(TEXT, "en-GB-SoniaNeural", tmp_path / "s.wav")
    assert service.connections == 3 and len(speech.words) == 6 and speech.voice == "en-GB-SoniaNeural"


async def test_no_audio_received_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recording) -> None:
    empty_turn = [_text_frame("turn.start", "{}"), _text_frame("turn.end", "{}")]
    service = FakeService(monkeypatch, [empty_turn, _turn(recording)])
    speech = await _fast().speak(TEXT, "", tmp_path / "s.wav")
    assert service.connections == 2 and speech.duration > 1


async def test_persistent_failure_becomes_unavailable_after_the_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recording
) -> None:
    service = FakeService(monkeypatch, [_http_error(503)])
    with pytest.raises(SpeechUnavailable, match="3 times.*503"):
        await _fast(retries=2).speak(TEXT, "", tmp_path / "s.wav")
    assert service.connections == 3
    _no_leftovers(tmp_path)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda rec: _turn(rec, end=False)[: len(_turn(rec)) // 2], id="connection-dropped"),
        pytest.param(lambda rec: _turn(rec, audio=rec["mp3"][: len(rec["mp3"]) // 3]), id="audio-cut-short"),
        pytest.param(lambda rec: _turn(rec, audio=b"\x00" * 3000), id="undecodable-audio"),
        pytest.param(lambda rec: [_text_frame("turn.start", "{}"), _text_frame("turn.end", "{}")], id="empty"),
    ],
)
async def test_truncated_or_empty_stream_is_never_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recording, damage: Callable
) -> None:
    service = FakeService(monkeypatch, [damage(recording)])
    with pytest.raises(SpeechUnavailable):
        await _fast(retries=1).speak(TEXT, "", tmp_path / "s.wav")
    assert service.connections == 2
    _no_leftovers(tmp_path)
    # A damaged first answer followed by a good one gives good audio.
    FakeService(monkeypatch, [damage(recording), _turn(recording)])
    speech = await _fast(retries=1).speak(TEXT, "", tmp_path / "s.wav")
    assert speech.duration == pytest.approx(recording["duration"], abs=0.15)


async def test_connection_failure_is_unavailable_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = aiohttp.ClientConnectorError(SimpleNamespace(host="speech.platform.bing.com", port=443, ssl=True),
                                           ConnectionRefusedError(111, "Connection refused"))  # fmt: skip
    service = FakeService(monkeypatch, [refused])
    t0 = time.monotonic()
    with pytest.raises(SpeechUnavailable, match="Cannot reach.*espeak"):
        await EdgeSpeech(backoff_s=5.0).speak(TEXT, "", tmp_path / "s.wav")
    assert service.connections == 1 and time.monotonic() - t0 < 1


async def test_real_dns_failure_raises_unavailable_quickly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No fake here: edge-tts and aiohttp really resolve a name that cannot exist (RFC 2606 .invalid)."""
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", "wss://speech.lessonforge.invalid/edge/v1?TrustedClientToken=x")
    t0 = time.monotonic()
    with pytest.raises(SpeechUnavailable, match="Cannot reach"):
        await EdgeSpeech(backoff_s=5.0).speak(TEXT, "", tmp_path / "s.wav")
    assert time.monotonic() - t0 < 5
    _no_leftovers(tmp_path)


async def test_concurrency_is_limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recording) -> None:
    FakeService(monkeypatch, [_turn(recording)])
    real_stream = edge_tts.Communicate.stream
    active, peak = 0, 0

    async def slow_stream(self):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await asyncio.sleep(0.05)
            async for item in real_stream(self):
                yield item
        finally:
            active -= 1

    monkeypatch.setattr(edge_tts.Communicate, "stream", slow_stream)
    tts = _fast(max_concurrency=2)
    results = await asyncio.gather(*(tts.speak(TEXT, "", tmp_path / f"{n}.wav") for n in range(5)))
    assert peak == 2 and len(results) == 5


def test_default_voices_cover_many_languages() -> None:
    tts = EdgeSpeech()
    expected = {"en": "en-US-AriaNeural", "en-GB": "en-GB-SoniaNeural", "fr": "fr-FR-DeniseNeural",
                "de-DE": "de-DE-KatjaNeural", "es": "es-ES-ElviraNeural", "ja": "ja-JP-NanamiNeural",
                "ar": "ar-SA-ZariyahNeural", "zh": "zh-CN-XiaoxiaoNeural", "fr-LU": "fr-FR-DeniseNeural"}  # fmt: skip
    assert {tag: tts.default_voice(tag) for tag in expected} == expected
    languages = {"en", "fr", "de", "es", "it", "pt", "nl", "ja", "ko", "zh", "ar", "ru", "pl", "tr", "sv", "hi"}
    assert all(tts.default_voice(lang).endswith("Neural") for lang in languages)
    with pytest.raises(ConfigError, match="lessonforge voices"):
        tts.default_voice("tlh")


async def test_bad_voice_and_empty_text_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="en-US-AriaNeural"):
        EdgeSpeech("en-us")
    with pytest.raises(ConfigError, match="lessonforge voices"):
        await EdgeSpeech().speak(TEXT, "fr", tmp_path / "s.wav")
    with pytest.raises(ConfigError, match="empty"):
        await EdgeSpeech().speak("  ", "", tmp_path / "s.wav")


async def test_voices_offline_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_tts.voices

    monkeypatch.setattr(edge_tts.voices, "VOICE_LIST", "https://voices.lessonforge.invalid/list?x=1")
    with pytest.raises(SpeechUnavailable, match="voices"):
        await EdgeSpeech().voices("en")


async def test_voices_are_filtered_by_language(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = [
        {"ShortName": "en-US-AriaNeural", "Locale": "en-US", "Gender": "Female"},
        {"ShortName": "en-GB-RyanNeural", "Locale": "en-GB", "Gender": "Male"},
        {"ShortName": "fr-FR-DeniseNeural", "Locale": "fr-FR", "Gender": "Female"},
    ]

    async def list_voices(**kwargs: Any) -> list[dict]:
        return listed

    monkeypatch.setattr(edge_tts, "list_voices", list_voices)
    english = await EdgeSpeech().voices("en")
    assert [(v.name, v.gender, v.backend) for v in english] == [
        ("en-GB-RyanNeural", "male", "edge"), ("en-US-AriaNeural", "female", "edge")]  # fmt: skip
    assert [v.name for v in await EdgeSpeech().voices("fr-FR")] == ["fr-FR-DeniseNeural"]
