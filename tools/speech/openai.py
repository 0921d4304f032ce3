"""Speech from OpenAI's text-to-speech endpoint: ``openai:<model>`` (e.g. ``openai:gpt-4o-mini-tts``).

The audio comes from ``POST /v1/audio/speech`` through the ``openai`` client, as WAV
(``response_format="wav"``). OpenAI streams that WAV with ``0xFFFFFFFF`` placeholders in its size
fields, so the bytes are parsed here (``decode_wav``), not trusted to the header: a placeholder
size means "to the end of the body", a real size larger than the body means a truncated answer
and is rejected, as is an empty body, an answer ending inside a sample or one holding no samples.
Compatible servers (Kokoro-FastAPI, speaches, LocalAI) work through ``OPENAI_BASE_URL``; an
answer in another container (MP3...) is decoded with ffmpeg. The endpoint takes at most 4096
characters: longer narration is spoken in sentence-aligned chunks, joined sample-exactly.

Word timings: the endpoint returns none, so they are aligned to the audio itself
(``timing_source = "aligned"``, :func:`lessonforge.tools.speech.align.align_words`).

Errors: a rejected key, a refused model or an unknown endpoint are ConfigErrors (the user must
fix them); a server that cannot be reached, times out, or keeps answering 429/5xx after the
client's own retries raises SpeechUnavailable, so a fallback voice can take over; other refusals
are SpeechErrors. The API key never appears in a message or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import struct
import tempfile
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
import openai

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
from lessonforge.tools.cached import PerLoop
from lessonforge.tools.defaults import OPENAI_TTS
from lessonforge.tools.llm.openai import (
    NO_KEY,
    OPENAI_URL,
    ServiceOptions,
    display_url,
    scrub_secrets,
)
from lessonforge.tools.media.audio import check_audio, read_wav_pcm, to_wav, write_wav
from lessonforge.tools.openai_errors import Advice, translate
from lessonforge.tools.speech.align import align_words, word_tokens

log = logging.getLogger(__name__)

DEFAULT_MODEL = OPENAI_TTS
DEFAULT_VOICE = "alloy"  # available in every OpenAI TTS model
# Built-in voices; every one speaks every language the model knows.
VOICES: tuple[str, ...] = (
    "alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage", "shimmer", "verse",
)
_CLASSIC_VOICES = frozenset({"alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer"})
_CLASSIC_MODELS = ("tts-1", "tts-1-hd")  # these know only the classic voices
MAX_INPUT_CHARS = 4096  # the endpoint's limit per request
PCM_RATE = 24_000  # response_format="pcm": raw 16-bit little-endian mono at 24 kHz
_PLACEHOLDER_SIZES = (0xFFFFFFFF, 0x7FFFFFFF, 0)  # streamed WAVs do not know their length up front



# --------------------------------------------------------------------------- the backend


class OpenAISpeech(SpeechBackend):
    """Speech from an OpenAI-compatible ``/audio/speech`` endpoint, word timings aligned to the audio.

    ``model`` is the TTS model (``gpt-4o-mini-tts``, ``tts-1``, ``tts-1-hd``, or a compatible
    server's); the key and server come from ``api_key``/``base_url`` or ``OPENAI_API_KEY``/
    ``OPENAI_BASE_URL``. ``max_concurrency`` bounds requests in flight; ``max_retries`` is the
    client's own retry count for 429, 5xx and timeouts.
    """

    timing_source: Literal["aligned"] = "aligned"

    class Options(ServiceOptions):
        """What ``openai:`` speech takes (see the class docstring)."""

        max_concurrency: int = 4

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_concurrency: int = 4,
        timeout_s: float = 120.0,
        max_retries: int = 4,
    ) -> None:
        self.model = (model or "").strip() or DEFAULT_MODEL
        self.name = f"openai:{self.model}"
        _check_int("max_concurrency", max_concurrency, minimum=1)
        _check_int("max_retries", max_retries, minimum=0)
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s > 0:
            raise ConfigError(f"OpenAISpeech option timeout_s must be a number > 0, got {timeout_s!r}.")
        key = (api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")).strip() or None
        url = (base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL", "")).strip() or None
        if key is None and url is None:
            raise ConfigError(
                f"No API key or server for the speech backend {self.name}. Set OPENAI_API_KEY, or OPENAI_BASE_URL "
                "for a compatible local TTS server (Kokoro-FastAPI, speaches), or choose another voice backend, "
                "e.g. --speech edge: or --speech espeak:en-us."
            )
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(
                f"OPENAI_BASE_URL / base_url {display_url(url)!r} is not an http(s) URL. "
                "Write it in full, e.g. http://localhost:8880/v1."
            )
        self._api_key = key
        self.base_url = (url or OPENAI_URL).rstrip("/")
        self.max_concurrency = int(max_concurrency)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self._clients = PerLoop(lambda: openai.AsyncOpenAI(  # an httpx pool cannot be shared across loops
            api_key=self._api_key or NO_KEY, base_url=self.base_url, timeout=self.timeout_s,
            max_retries=self.max_retries,
        ))
        self._semaphore = PerLoop(lambda: asyncio.Semaphore(self.max_concurrency))

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAISpeech(model={self.model!r}, base_url={display_url(self.base_url)!r})"

    @property
    def official(self) -> bool:
        """Whether this talks to api.openai.com (whose voice names are known)."""
        return urlsplit(self.base_url).hostname == urlsplit(OPENAI_URL).hostname

    # ----------------------------------------------------------------- voices

    async def voices(self, language: str | None = None) -> list[Voice]:
        """OpenAI's built-in voices; each speaks every supported language, so ``language`` filters nothing."""
        names = VOICES if not self.model.startswith(_CLASSIC_MODELS) else tuple(sorted(_CLASSIC_VOICES))
        lang = (language or "").strip() or "mul"
        return [Voice(name=n, language=lang, backend="openai") for n in names]

    def default_voice(self, language: str) -> str:
        """``alloy``: OpenAI's voices are multilingual, and alloy exists in every TTS model."""
        if not (language or "").strip():
            raise ConfigError("No language given for the openai voice. Use a BCP-47 code such as en, fr or de-DE.")
        return DEFAULT_VOICE

    def _check_voice(self, voice: str) -> str:
        if not self.official:
            return voice  # compatible servers have their own voice names
        name = voice.lower()
        if name not in VOICES:
            raise ConfigError(
                f"Unknown OpenAI voice {voice!r}. Choose one of {', '.join(VOICES)} "
                "(`lessonforge voices` lists them)."
            )
        if self.model.startswith(_CLASSIC_MODELS) and name not in _CLASSIC_VOICES:
            raise ConfigError(
                f"OpenAI voice {voice!r} needs gpt-4o-mini-tts; {self.model} has only "
                f"{', '.join(sorted(_CLASSIC_VOICES))}. Pick one of those or use --speech openai:gpt-4o-mini-tts."
            )
        return name

    # ----------------------------------------------------------------- speaking

    async def speak(self, text: str, voice: str, out: Path) -> Speech:
        """Speak ``text`` into the WAV file ``out`` (atomically) with word timings aligned to the audio."""
        if not text or not text.strip():
            raise ConfigError("Nothing to speak: the narration text is empty. Write narration for the scene.")
        chosen = self._check_voice(voice.strip() or DEFAULT_VOICE)
        out = Path(out)
        parts: list[np.ndarray] = []
        rate: int | None = None
        chunks = split_for_request(text, MAX_INPUT_CHARS)
        async with self._semaphore.get():
            for chunk in chunks:
                body = await self._request(chunk, chosen)
                samples, chunk_rate = await asyncio.to_thread(self._decode, body, out.parent)
                if rate is not None and chunk_rate != rate:
                    raise SpeechError(
                        f"{self.name} answered parts of one narration at {rate} Hz and {chunk_rate} Hz. "
                        "Check the server's audio settings, or shorten the narration below "
                        f"{MAX_INPUT_CHARS} characters."
                    )
                rate = chunk_rate
                parts.append(samples)
        assert rate is not None
        words: list[WordTiming] = []
        offset = 0
        for chunk, samples in zip(chunks, parts, strict=True):
            timed = align_words(chunk, samples, rate)
            if not timed and word_tokens(chunk):
                raise SpeechError(
                    f"{self.name} returned {len(samples) / rate:.2f} s of silence for voice {chosen!r}. "
                    "Try again, or use another voice or backend (--speech)."
                )
            shift = offset / rate
            words += [WordTiming(w.word, w.start + shift, w.end + shift) for w in timed]
            offset += len(samples)
        pcm = np.concatenate(parts).astype("<i2").tobytes()
        write_wav(out, pcm, rate)
        duration = check_audio(out)
        return Speech(path=out, duration=duration, words=tuple(words), voice=chosen, backend=self.name)

    async def aclose(self) -> None:
        """Close the HTTP connections of this loop's client (a later call opens new ones)."""
        client = self._clients.pop()
        if client is not None:
            with contextlib.suppress(RuntimeError):
                await client.close()

    async def _request(self, text: str, voice: str) -> bytes:
        try:
            response = await (await self._clients.aget()).audio.speech.create(
                model=self.model, voice=voice, input=text, response_format="wav"
            )
            return response.content
        except openai.OpenAIError as err:
            raise self._translate(err, voice) from None  # the cause may carry the key: not chained

    def _decode(self, body: bytes, scratch: Path) -> tuple[np.ndarray, int]:
        """Mono int16 samples and rate of one answer; SpeechError for empty, truncated or non-audio bodies."""
        if not body:
            raise SpeechError(
                f"{self.name} answered with empty audio (0 bytes). Try again; if it persists, check the server "
                "or use another backend (--speech)."
            )
        if body[:4] == b"RIFF":
            try:
                samples, rate = decode_wav(body)
            except ValueError as err:
                raise SpeechError(
                    f"{self.name} sent unusable WAV audio: {err}. Try again; if it persists, check the server."
                ) from None
        else:  # a compatible server that ignored response_format (MP3, OGG...): let ffmpeg decode it
            samples, rate = _decode_other(body, scratch, self.name)
        if samples.size == 0:
            raise SpeechError(f"{self.name} sent audio holding no samples. Try again, or use another backend.")
        return samples, rate

    def _translate(self, err: openai.OpenAIError, voice: str) -> LessonForgeError:
        advice = Advice(
            timeout="Raise timeout_s, shorten the narration, or use another backend (--speech).",
            connection="Check the network or OPENAI_BASE_URL, or use an offline voice, e.g. --speech espeak:en-us.",
            missing=f"has no text-to-speech model {self.model!r} or no /audio/speech endpoint",
            not_found=(f"Use a TTS model ({OPENAI_TTS}, tts-1) with a server that speaks, and check that the base "
                       "URL ends in /v1."),
            rate_limit="Wait and retry, check your quota, or lower max_concurrency.",
            server="Retry later, or use another backend (--speech).",
            refused=f"Check the voice ({voice!r}) and model names, or use another backend (--speech).")
        return translate(err, name=self.name, url=display_url(self.base_url), scrub=self._scrub,
                         timeout_s=self.timeout_s, tries=self.max_retries + 1, flag="--speech", error=SpeechError,
                         unavailable=SpeechUnavailable, model=self.model, advice=advice)

    def _scrub(self, text: str) -> str:
        return scrub_secrets(text, self._api_key, urlsplit(self.base_url).password)


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"OpenAISpeech option {name} must be a whole number >= {minimum}, got {value!r}.")


def split_for_request(text: str, limit: int = MAX_INPUT_CHARS) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut after sentences, else at spaces."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return [text]
    sentences = re.findall(r".+?(?:[.!?…。！？؟]+[\"'”’»)\]]*(?=\s)|$)", text)
    pieces: list[str] = []
    buf = ""
    for sentence in (s.strip() for s in sentences):
        while len(sentence) > limit:  # one sentence longer than a request: cut at the last space that fits
            cut = sentence.rfind(" ", 0, limit + 1)
            cut = cut if cut > 0 else limit
            head, sentence = sentence[:cut].strip(), sentence[cut:].strip()
            if buf:
                pieces.append(buf)
                buf = ""
            pieces.append(head)
        if not sentence:
            continue
        if buf and len(buf) + 1 + len(sentence) > limit:
            pieces.append(buf)
            buf = sentence
        else:
            buf = f"{buf} {sentence}" if buf else sentence
    if buf:
        pieces.append(buf)
    return pieces


# --------------------------------------------------------------------------- audio bytes


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono int16 samples and the rate of a WAV body (PCM 8/16/24/32-bit or float), size placeholders allowed.

    Raises ValueError, naming the problem, for a body that is not WAV, lacks its format or data
    chunk, is shorter than its header says (truncated), or ends inside a sample frame.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int, int] | None = None
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if kind == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise ValueError("its format chunk is cut short")
            tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == 0xFFFE and size >= 40 and body + 26 <= len(data):  # WAVE_FORMAT_EXTENSIBLE
                tag = struct.unpack_from("<H", data, body + 24)[0]
            fmt = (tag, channels, rate, block, bits)
        elif kind == b"data":
            if fmt is None:
                raise ValueError("its data chunk comes before the format chunk")
            available = len(data) - body
            if size > available:
                if size not in _PLACEHOLDER_SIZES:
                    raise ValueError(f"truncated: the header announces {size} bytes of samples, {available} arrived")
                size = available
            elif size == 0 and available > 0:
                size = available
            return _to_mono16(data[body : body + size], *fmt)
        pos = body + size + (size & 1)
    raise ValueError("no data chunk (truncated before the samples)" if fmt else "no format chunk")


def _to_mono16(raw: bytes, tag: int, channels: int, rate: int, block: int, bits: int) -> tuple[np.ndarray, int]:
    if rate <= 0 or channels <= 0 or bits <= 0:
        raise ValueError(f"invalid format ({channels} channel(s), {rate} Hz, {bits} bits)")
    width = bits // 8
    block = block or channels * width
    if block != channels * width or width not in (1, 2, 3, 4, 8):
        raise ValueError(f"unsupported sample layout ({bits} bits, block {block})")
    if len(raw) % block:
        raise ValueError(f"truncated: it ends inside a sample frame ({len(raw)} bytes, frames of {block})")
    if tag == 3 and width in (4, 8):
        x = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float64) * 32767.0
    elif tag == 1 and width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    elif tag == 1 and width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float64)
    elif tag == 1 and width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v) / 256.0).astype(np.float64)
    elif tag == 1 and width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float64) / 65536.0
    else:
        raise ValueError(f"unsupported encoding (format tag {tag}, {bits} bits)")
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16), rate


def _decode_other(body: bytes, scratch: Path, name: str) -> tuple[np.ndarray, int]:
    scratch.mkdir(parents=True, exist_ok=True)
    fd, src = tempfile.mkstemp(prefix=".openai-tts.", suffix=".audio", dir=scratch)
    wav = Path(src).with_suffix(".wav")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        try:
            to_wav(src, wav, sample_rate=PCM_RATE)
        except SpeechError as err:
            raise SpeechError(
                f"{name} answered with something that is not audio ({len(body)} bytes; {err}). Check that the "
                "server supports response_format 'wav', or use another backend (--speech)."
            ) from None
        pcm, rate = read_wav_pcm(wav)
        return np.frombuffer(pcm, dtype="<i2").copy(), rate
    finally:
        for p in (Path(src), wav):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
