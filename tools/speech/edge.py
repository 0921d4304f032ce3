"""Neural voices from Microsoft Edge's read-aloud service: ``edge:<voice>`` (e.g. ``edge:en-US-AriaNeural``).

edge-tts streams MP3 chunks and, with ``boundary="WordBoundary"``, one metadata event per word
(offset and duration in 100-ns ticks). The MP3 is decoded to mono PCM WAV; a stream that ends
early (no ``turn.end``) or whose words run past the audio is never accepted.

The free service answers ``NoAudioReceived``, 403 or 503 under load: those are retried with
exponential backoff and jitter, and concurrency is kept low with a semaphore. When the service
cannot be reached at all (DNS failure, connection refused) ``SpeechUnavailable`` is raised at
once, so that a fallback (``lessonforge.tools.speech.fallback``) can take over without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import socket
import tempfile
from pathlib import Path
from typing import Any, Literal

import aiohttp
import edge_tts
from edge_tts.exceptions import EdgeTTSException

from lessonforge.tools.base import (
    ConfigError,
    LessonForgeError,
    Speech,
    SpeechBackend,
    SpeechError,
    SpeechUnavailable,
    Voice,
    WordTiming,
)
from lessonforge.tools.cache import atomic_path
from lessonforge.tools.cached import PerLoop
from lessonforge.tools.media.audio import check_audio, to_wav
from lessonforge.tools.registry import BackendOptions

log = logging.getLogger(__name__)

TICKS_PER_SECOND = 10_000_000
SAMPLE_RATE = 24_000  # the service's "audio-24khz-48kbitrate-mono-mp3"
_END_TOLERANCE_S = 0.15  # a word may end this far past the decoded audio (MP3 framing)
_OFFLINE_HINT = ("Check the internet connection, or use an offline voice, e.g. --speech espeak:en-us, or piper: "
                 "(lessonforge[piper]).")

# One natural-sounding neural voice per language; a region not listed falls back to its language.
DEFAULT_VOICES: dict[str, str] = {
    "en": "en-US-AriaNeural",
    "en-us": "en-US-AriaNeural",
    "en-gb": "en-GB-SoniaNeural",
    "en-au": "en-AU-NatashaNeural",
    "en-ca": "en-CA-ClaraNeural",
    "en-in": "en-IN-NeerjaNeural",
    "en-ie": "en-IE-EmilyNeural",
    "fr": "fr-FR-DeniseNeural",
    "fr-ca": "fr-CA-SylvieNeural",
    "fr-be": "fr-BE-CharlineNeural",
    "fr-ch": "fr-CH-ArianeNeural",
    "de": "de-DE-KatjaNeural",
    "de-at": "de-AT-IngridNeural",
    "de-ch": "de-CH-LeniNeural",
    "es": "es-ES-ElviraNeural",
    "es-mx": "es-MX-DaliaNeural",
    "es-us": "es-US-PalomaNeural",
    "es-419": "es-MX-DaliaNeural",
    "it": "it-IT-ElsaNeural",
    "pt": "pt-BR-FranciscaNeural",
    "pt-br": "pt-BR-FranciscaNeural",
    "pt-pt": "pt-PT-RaquelNeural",
    "nl": "nl-NL-ColetteNeural",
    "ja": "ja-JP-NanamiNeural",
    "ko": "ko-KR-SunHiNeural",
    "zh": "zh-CN-XiaoxiaoNeural",
    "zh-cn": "zh-CN-XiaoxiaoNeural",
    "zh-hans": "zh-CN-XiaoxiaoNeural",
    "zh-tw": "zh-TW-HsiaoChenNeural",
    "zh-hant": "zh-TW-HsiaoChenNeural",
    "zh-hk": "zh-HK-HiuMaanNeural",
    "ar": "ar-SA-ZariyahNeural",
    "ar-eg": "ar-EG-SalmaNeural",
    "ru": "ru-RU-SvetlanaNeural",
    "pl": "pl-PL-ZofiaNeural",
    "tr": "tr-TR-EmelNeural",
    "sv": "sv-SE-SofieNeural",
    "da": "da-DK-ChristelNeural",
    "nb": "nb-NO-PernilleNeural",
    "no": "nb-NO-PernilleNeural",
    "fi": "fi-FI-NooraNeural",
    "cs": "cs-CZ-VlastaNeural",
    "el": "el-GR-AthinaNeural",
    "he": "he-IL-HilaNeural",
    "hi": "hi-IN-SwaraNeural",
    "id": "id-ID-GadisNeural",
    "vi": "vi-VN-HoaiMyNeural",
    "th": "th-TH-PremwadeeNeural",
    "uk": "uk-UA-PolinaNeural",
    "ro": "ro-RO-AlinaNeural",
    "hu": "hu-HU-NoemiNeural",
}

_VOICE_RE = re.compile(r"^[a-z]{2,}-[A-Z]{2,}-.+Neural$")  # edge-tts' own short-name pattern


class _Incomplete(SpeechError):
    """The stream ended early or its audio does not cover its words: worth another try."""


class EdgeSpeech(SpeechBackend):
    """Speech from edge-tts with word timings from the service's WordBoundary events.

    ``model`` is a default voice (``en-US-AriaNeural``); ``max_concurrency`` bounds the requests
    in flight (the free service throttles); ``retries`` and ``backoff_s`` shape the retry loop.
    """

    class Options(BackendOptions):
        """What ``edge:`` takes (see the class docstring)."""

        max_concurrency: int = 2
        retries: int = 4
        backoff_s: float = 1.0

    def __init__(
        self, model: str = "", *, max_concurrency: int = 2, retries: int = 4, backoff_s: float = 1.0
    ) -> None:
        if max_concurrency < 1:
            raise ConfigError(f"edge max_concurrency must be at least 1, got {max_concurrency}.")
        if retries < 0 or backoff_s < 0:
            raise ConfigError(f"edge retries and backoff_s must be >= 0, got {retries} and {backoff_s}.")
        self.model = model.strip()
        if self.model:
            _check_voice(self.model)
        self.name = f"edge:{self.model}"
        self.max_concurrency = max_concurrency
        self.retries = retries
        self.backoff_s = backoff_s
        self._semaphore = PerLoop(lambda: asyncio.Semaphore(self.max_concurrency))

    # ----------------------------------------------------------------- voices

    def default_voice(self, language: str) -> str:
        """A neural voice for a BCP-47 tag: "en" -> en-US-AriaNeural, "fr-CA" -> fr-CA-SylvieNeural."""
        tag = (language or "").strip().lower().replace("_", "-")
        for candidate in (tag, tag.split("-")[0]):
            if candidate in DEFAULT_VOICES:
                return DEFAULT_VOICES[candidate]
        raise ConfigError(
            f"No default edge voice for language {language!r}. Pick one with `lessonforge voices` and pass it as "
            "--speech edge:VOICE (e.g. edge:en-US-AriaNeural), or use a language such as en, fr, de, es, ja."
        )

    async def voices(self, language: str | None = None) -> list[Voice]:
        """The service's voices, optionally for one language ("en" matches en-US, en-GB...)."""
        try:
            listed: list[dict[str, Any]] = await edge_tts.list_voices()  # type: ignore[assignment]
        except (aiohttp.ClientError, OSError, TimeoutError, EdgeTTSException) as err:
            raise SpeechUnavailable(f"Cannot list edge-tts voices: {_describe(err)}. {_OFFLINE_HINT}") from err
        want = (language or "").strip().lower().replace("_", "-")
        out = []
        for item in listed:
            locale = str(item.get("Locale", ""))
            if want and not (locale.lower() == want or locale.lower().startswith(want + "-")):
                continue
            gender = str(item.get("Gender", "")).lower()
            out.append(Voice(name=str(item.get("ShortName", "")), language=locale, gender=gender, backend="edge"))
        return sorted(out, key=lambda v: (v.language, v.name))

    # ----------------------------------------------------------------- speaking

    async def speak(self, text: str, voice: str, out: Path) -> Speech:
        """Speak ``text`` into the WAV file ``out`` (atomically), retrying transient failures."""
        if not text or not text.strip():
            raise ConfigError("Nothing to speak: the narration text is empty. Write narration for the scene.")
        chosen = voice.strip() or self.model or self.default_voice("en")
        _check_voice(chosen)
        out = Path(out)
        async with self._semaphore.get():
            last: BaseException | None = None
            for attempt in range(self.retries + 1):
                if attempt:
                    delay = self.backoff_s * (2 ** (attempt - 1)) * random.uniform(1.0, 1.5)
                    log.info("edge-tts attempt %d failed (%s); retrying in %.1f s", attempt, _describe(last), delay)
                    await asyncio.sleep(delay)
                try:
                    return await self._attempt(text, chosen, out)
                except Exception as err:  # classified: retry, give up at once, or wrap as SpeechError
                    kind = _classify(err)
                    if kind == "unreachable":
                        raise SpeechUnavailable(
                            f"Cannot reach the edge-tts service: {_describe(err)}. {_OFFLINE_HINT}"
                        ) from err
                    if kind == "fatal":
                        if isinstance(err, LessonForgeError):
                            raise
                        raise SpeechError(
                            f"edge-tts failed unexpectedly: {_describe(err)}. Update it (`pip install -U edge-tts`) "
                            "or use another voice, e.g. --speech espeak:en-us."
                        ) from err
                    last = err
        raise SpeechUnavailable(
            f"edge-tts failed {self.retries + 1} times for voice {chosen} (last: {_describe(last)}). The service is "
            f"overloaded or the voice name is wrong (see `lessonforge voices`). {_OFFLINE_HINT}"
        ) from last

    async def _attempt(self, text: str, voice: str, out: Path) -> Speech:
        communicate = edge_tts.Communicate(text, voice, boundary="WordBoundary")
        audio = bytearray()
        marks: list[tuple[int, int, str]] = []
        async for chunk in communicate.stream():
            if chunk["type"] == "audio":
                audio += chunk["data"]
            elif chunk["type"] == "WordBoundary":
                marks.append((int(chunk["offset"]), int(chunk["duration"]), str(chunk["text"])))
        _check_stream_complete(communicate, len(audio))
        with atomic_path(out) as tmp_wav:
            duration = await asyncio.to_thread(_decode, bytes(audio), tmp_wav)
            words = _timings(marks, duration)
        return Speech(path=out, duration=duration, words=tuple(words), voice=voice, backend=self.name)


def _check_voice(voice: str) -> None:
    if not _VOICE_RE.match(voice) and not voice.startswith("Microsoft Server Speech Text to Speech Voice ("):
        raise ConfigError(
            f"{voice!r} is not an edge voice name. Edge voices look like en-US-AriaNeural or fr-FR-DeniseNeural; "
            "list them with `lessonforge voices`."
        )


def _check_stream_complete(communicate: edge_tts.Communicate, received: int) -> None:
    """edge-tts counts audio bytes into ``cumulative_audio_bytes`` only when a turn ends properly."""
    if received == 0:
        raise _Incomplete("edge-tts returned an empty audio stream.")
    state: dict[str, Any] = getattr(communicate, "state", {})
    done = state.get("cumulative_audio_bytes")
    if isinstance(done, int) and done != received:
        raise _Incomplete(f"the edge-tts stream ended early ({done} of {received} audio bytes in completed turns).")


def _decode(mp3: bytes, wav: Path) -> float:
    fd, name = tempfile.mkstemp(prefix=".edge.", suffix=".mp3", dir=wav.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(mp3)
        to_wav(name, wav, sample_rate=SAMPLE_RATE)
    except SpeechError as err:
        raise _Incomplete(str(err)) from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    return check_audio(wav)


def _timings(marks: list[tuple[int, int, str]], duration: float) -> list[WordTiming]:
    """WordTimings from (offset, duration, text) ticks; words past the audio mean a truncated stream."""
    words: list[WordTiming] = []
    prev = 0.0
    for offset, length, text in sorted(marks, key=lambda m: m[0]):
        if not any(ch.isalnum() for ch in text):
            continue  # punctuation boundaries
        start, end = offset / TICKS_PER_SECOND, (offset + max(0, length)) / TICKS_PER_SECOND
        if end > duration + _END_TOLERANCE_S:
            raise _Incomplete(f"the audio ({duration:.2f} s) stops before the word {text!r} ends ({end:.2f} s).")
        start = min(max(start, prev), duration)
        words.append(WordTiming(text, start, min(max(end, start), duration)))
        prev = start
    return words


def _classify(err: BaseException) -> Literal["unreachable", "retry", "fatal"]:
    if isinstance(err, (ConfigError, SpeechUnavailable)):
        return "fatal"
    if isinstance(err, aiohttp.ClientConnectorError | socket.gaierror | ConnectionRefusedError):
        return "unreachable"
    if isinstance(err, aiohttp.ClientResponseError):
        status = err.status or 0
        return "retry" if status in (403, 408, 429) or status >= 500 else "unreachable"
    if isinstance(err, EdgeTTSException | aiohttp.ClientError | TimeoutError | ConnectionError | _Incomplete):
        return "retry"
    return "fatal"


def _describe(err: BaseException | None) -> str:
    if err is None:
        return "no error recorded"
    if isinstance(err, aiohttp.ClientResponseError):
        return f"HTTP {err.status} {err.message}".strip()
    if isinstance(err, aiohttp.ClientConnectorError):
        return f"cannot connect to {err.host}:{err.port} ({err.os_error})"
    text = str(err).strip()
    if isinstance(err, SpeechError) and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
