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
(``timing_source = "aligned"``, see :func:`align_words`):

1. *Voice activity.* 10 ms frames; a frame is voiced when its level is within 35 dB of the
   speech level (the 95th percentile of frame levels) and clearly above the noise floor. Voiced
   frames separated by less than 80 ms (stop closures) are one *stretch*; stretches under 30 ms
   are dropped (clicks).
2. *Word weights.* Each word's expected length, in letters: its letters plus half a letter per
   syllable (vowel group) for alphabetic scripts (fitted on eSpeak NG's word durations), four
   per digit, two and a half per CJK character or Hangul block (one for small kana), 1.3 per
   letter of other scripts. CJK text is split into characters, so a sentence without spaces
   still gets per-character times.
3. *Alignment.* Stretches and words are cut into the same number of consecutive groups by
   dynamic programming; a group's cost is how far its voiced time is from its words' expected
   time (log ratio, squared, at the narration's mean rate), plus a cost for a group boundary at a
   word that ends without punctuation, for punctuation inside a group (a sentence end more than a
   comma), and for each pause merged into a group (longer pauses cost more). A stretch may also
   be left without words (a breath). So pauses are matched to punctuation wherever the audio
   has them, and a word that follows a pause starts when the voice resumes.
4. *Inside a group* the words share the voiced time (pauses excluded) in proportion to their
   weights; a word boundary that falls near a pause inside the group is moved onto the pause.

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
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
import openai

from lessonforge.tools.base import (
    ConfigError,
    LessonForgeError,
    Speech,
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
from lessonforge.tools.speech.wordtiming import bare as _strip_punct

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

# Voice activity and alignment (see the module docstring).
FRAME_S = 0.01
MIN_PAUSE_S = 0.08
MIN_VOICED_S = 0.03
_RANGE_DB = 35.0  # voiced: within this many dB of the speech level
_FLOOR_MARGIN_DB = 6.0  # ...and this far above the noise floor
_SILENT_DBFS = -60.0  # a file whose speech level is below this is silence
_MAX_STRETCHES_PER_GROUP = 8
_MAX_WORDS_PER_GROUP = 80
_W_DURATION = 4.0
_FINAL_LENGTHENING = 0.4  # a word before a pause is spoken this much longer
_TAU_S = 0.05  # softens the duration ratio for very short groups
_SPLIT_COST = (1.0, 0.2, 0.0)  # group boundary after a word ending with: nothing, a clause mark, a sentence end
_INNER_COST = (0.0, 0.6, 2.0)  # the same marks inside a group (no pause where one was likely)
_MERGE_COST_PER_S = 1.0 / 0.1  # a pause inside a group, per second of pause
_SKIP_COST = 1.0
_SKIP_COST_PER_S = 10.0
_SNAP = 0.35  # move an inner word boundary onto a pause closer than this share of a word

_SENTENCE_MARKS = frozenset(".!?…。！？‼⁇؟።।")
_CLAUSE_MARKS = frozenset(",;:—–，、；：،؛")


# --------------------------------------------------------------------------- the backend


class OpenAISpeech:
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

    def voices(self, language: str | None = None) -> list[Voice]:
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
            if not timed and _tokens(chunk):
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


# --------------------------------------------------------------------------- voice activity


def voiced_stretches(samples: np.ndarray, rate: int, *, min_pause: float = MIN_PAUSE_S) -> list[tuple[float, float]]:
    """(start, end) seconds of speech between pauses of at least ``min_pause``; [] for silence."""
    x = np.asarray(samples, dtype=np.float64)
    step = max(1, int(round(rate * FRAME_S)))
    n = -(-len(x) // step)
    if n == 0:
        return []
    padded = np.zeros(n * step)
    padded[: len(x)] = x
    rms = np.sqrt((padded.reshape(n, step) ** 2).mean(axis=1))
    db = 20.0 * np.log10(rms / 32768.0 + 1e-10)
    audible = db[db > -100.0]
    if audible.size == 0:
        return []
    level = float(np.percentile(audible, 95))
    if level < _SILENT_DBFS:
        return []
    floor = float(np.percentile(db, 10))
    threshold = min(max(level - _RANGE_DB, floor + _FLOOR_MARGIN_DB), level - 6.0)
    voiced = db > threshold
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    min_gap = max(1, int(round(min_pause / FRAME_S)))
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] < min_gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    min_len = max(1, int(round(MIN_VOICED_S / FRAME_S)))
    total = len(x) / rate
    return [(a * FRAME_S, min(b * FRAME_S, total)) for a, b in merged if b - a >= min_len]


# --------------------------------------------------------------------------- words


@dataclass(frozen=True)
class _Token:
    word: str
    weight: float
    mark: int  # after the word: 0 nothing, 1 a clause mark, 2 a sentence end


def _is_edge(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PSZ"


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (0x3040 <= cp <= 0x30FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF
            or 0x31F0 <= cp <= 0x31FF or 0xFF66 <= cp <= 0xFF9F or 0x20000 <= cp <= 0x2FA1F)


def _pieces(token: str) -> list[str]:
    """A whitespace token, with CJK characters split apart (punctuation stays with the character before)."""
    if not any(_is_cjk(ch) for ch in token):
        return [token]
    out: list[str] = []
    buf = ""
    for ch in token:
        if _is_cjk(ch):
            if buf and any(c.isalnum() for c in buf):
                out.append(buf)
                buf = ""
            buf += ch
            out.append(buf)
            buf = ""
        elif out and not buf and not ch.isalnum():
            out[-1] += ch  # punctuation right after a CJK character
        else:
            buf += ch
    if buf:
        if out and not any(c.isalnum() for c in buf):
            out[-1] += buf
        else:
            out.append(buf)
    return out


_VOWELS = frozenset("aeiouyæøœåäöüıаеёиоуыэюяєіїαεηιουωάέήίόύώ")
_SMALL_KANA = frozenset("ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮーヵヶ")
# Weights in letters. Fitted on eSpeak NG word durations in English, French, German and Spanish
# (0.029 s per syllable + 0.056 s per letter explained them best: 22% mean error); a digit is
# read as about four letters ("four", "eighty"); a kana, hanzi or Hangul block as a syllable of
# two or three letters; a letter of an abjad or abugida as a little more than one.
_PER_SYLLABLE = 0.5
_DIGIT = 4.0
_CJK = 2.5
_SMALL_KANA_UNITS = 1.0
_OTHER_LETTER = 1.3


def word_weight(word: str) -> float:
    """Expected spoken length of ``word``, in letter-sized units (see the module docstring)."""
    weight = 0.0
    letters = 0
    groups = 0
    in_vowel = False
    for ch in unicodedata.normalize("NFD", word.casefold()):
        if unicodedata.combining(ch):
            continue
        if ch.isdigit():
            weight += _DIGIT
            in_vowel = False
        elif ch in _SMALL_KANA:
            weight += _SMALL_KANA_UNITS
        elif _is_cjk(ch) or 0xAC00 <= ord(ch) <= 0xD7AF:
            weight += _CJK
        elif ch.isalpha():
            if unicodedata.name(ch, "").startswith(("LATIN", "GREEK", "CYRILLIC")):
                letters += 1
                vowel = ch in _VOWELS
                if vowel and not in_vowel:
                    groups += 1
                in_vowel = vowel
            else:
                weight += _OTHER_LETTER
                in_vowel = False
        else:
            in_vowel = False
    if letters:
        weight += letters + _PER_SYLLABLE * max(1, groups)
    return max(weight, 1.0)


def _mark(piece: str) -> int:
    core = _strip_punct(piece)
    tail = piece[piece.rfind(core[-1]) + 1 :] if core else piece
    if any(ch in _SENTENCE_MARKS for ch in tail):
        return 2
    if any(ch in _CLAUSE_MARKS for ch in tail):
        return 1
    return 0


def _tokens(text: str) -> list[_Token]:
    """The words of ``text`` (punctuation stripped) with weights and the mark after each."""
    out: list[_Token] = []
    for raw in text.split():
        for piece in _pieces(raw):
            core = _strip_punct(piece)
            if not any(ch.isalnum() for ch in core):  # a dash or a lone "!": it marks the word before
                if out:
                    mark = max(out[-1].mark, _mark(piece) or (1 if any(_is_edge(c) for c in piece) else 0))
                    out[-1] = _Token(out[-1].word, out[-1].weight, mark)
                continue
            out.append(_Token(core, word_weight(core), _mark(piece)))
    return out


# --------------------------------------------------------------------------- alignment


def align_words(text: str, samples: np.ndarray, rate: int) -> list[WordTiming]:
    """Word timings for ``text`` spoken in ``samples`` (see the module docstring); [] when silent or wordless."""
    tokens = _tokens(text)
    stretches = voiced_stretches(samples, rate)
    if not tokens or not stretches:
        return []
    groups = _align(stretches, tokens)
    out: list[WordTiming] = []
    for (i0, i1), (j0, j1) in groups:
        out += _spread(stretches[i0:i1], tokens[j0:j1])
    return out


def _align(stretches: Sequence[tuple[float, float]],
           tokens: Sequence[_Token]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Groups ((first stretch, end), (first word, end)) of least total cost, by dynamic programming.

    The speaking rate (seconds per weight unit) is first taken from the whole narration, then
    once more from the first alignment, whose group-final words are lengthened.
    """
    weights = np.array([t.weight for t in tokens])
    voiced = sum(e - s for s, e in stretches)
    groups = _align_at(stretches, tokens, voiced / weights.sum())
    lengthened = weights.sum() + _FINAL_LENGTHENING * sum(weights[j1 - 1] for _, (_, j1) in groups)
    return _align_at(stretches, tokens, voiced / lengthened)


def _align_at(stretches: Sequence[tuple[float, float]], tokens: Sequence[_Token],
              unit: float) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    K, N = len(stretches), len(tokens)
    starts = np.array([s for s, _ in stretches])
    ends = np.array([e for _, e in stretches])
    V = np.concatenate([[0.0], np.cumsum(ends - starts)])
    gaps = starts[1:] - ends[:-1]
    G = np.concatenate([[0.0], np.cumsum(gaps * _MERGE_COST_PER_S)])  # G[k]: merge cost of gaps before stretch k
    weights = np.array([t.weight for t in tokens])
    CW = np.concatenate([[0.0], np.cumsum(weights)])
    marks = np.array([t.mark for t in tokens])
    inner = np.array(_INNER_COST)[marks]
    IC = np.concatenate([[0.0], np.cumsum(inner)])
    split = np.array(_SPLIT_COST)[marks]
    split[-1] = 0.0  # the last word ends the narration
    B = min(N, _MAX_WORDS_PER_GROUP)

    cost = np.full((K + 1, N + 1), np.inf)
    cost[0, 0] = 0.0
    back_i = np.full((K + 1, N + 1), -1, dtype=np.int64)
    back_j = np.full((K + 1, N + 1), -1, dtype=np.int64)
    js = np.arange(N)[:, None]
    bs = np.arange(1, B + 1)[None, :]
    stop = js + bs  # word after the group
    valid = stop <= N
    stop_c = np.minimum(stop, N)
    expected = unit * (CW[stop_c] - CW[js] + _FINAL_LENGTHENING * weights[stop_c - 1])
    inner_cost = IC[np.maximum(stop_c - 1, 0)] - IC[js]
    split_cost = split[stop_c - 1]
    fixed = np.where(valid, inner_cost + split_cost, np.inf)
    for i in range(K):
        row = cost[i]
        if not np.isfinite(row).any():
            continue
        skip = row + _SKIP_COST + _SKIP_COST_PER_S * (ends[i] - starts[i])  # a breath or a click: no words
        better = skip < cost[i + 1]
        cost[i + 1][better] = skip[better]
        back_i[i + 1][better] = i
        back_j[i + 1][better] = np.flatnonzero(better)
        for a in range(1, min(_MAX_STRETCHES_PER_GROUP, K - i) + 1):
            D = V[i + a] - V[i]
            merge = G[i + a - 1] - G[i]
            total = row[:N, None] + _W_DURATION * np.log((D + _TAU_S) / (expected + _TAU_S)) ** 2 + fixed + merge
            target = cost[i + a]
            for b in range(1, B + 1):  # scatter: group j..j+b-1 ends at word j+b
                col = total[: N - b + 1, b - 1]
                cur = target[b:]
                better = col < cur
                if better.any():
                    idx = np.flatnonzero(better)
                    cur[idx] = col[idx]
                    back_i[i + a, idx + b] = i
                    back_j[i + a, idx + b] = idx
    if not np.isfinite(cost[K, N]):
        raise SpeechError("cannot align the narration's words to the audio. Synthesize the scene again.")
    groups: list[tuple[tuple[int, int], tuple[int, int]]] = []
    i, j = K, N
    while i > 0:
        pi, pj = int(back_i[i, j]), int(back_j[i, j])
        if pj != j:  # a group of words (pj == j is a skipped stretch)
            groups.append(((pi, i), (pj, j)))
        i, j = pi, pj
    return groups[::-1]


def _spread(stretches: Sequence[tuple[float, float]], tokens: Sequence[_Token]) -> list[WordTiming]:
    """The words of one group over its stretches' voiced time, in proportion to their weights."""
    durs = [e - s for s, e in stretches]
    cum = np.concatenate([[0.0], np.cumsum(durs)])
    total_v = float(cum[-1])
    weights = np.array([t.weight for t in tokens])
    weights[-1] *= 1.0 + _FINAL_LENGTHENING
    bounds = list(np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum() * total_v)  # voiced-time positions
    # Move an inner word boundary onto a pause inside the group when it is close to one.
    taken: set[int] = set()
    for g in range(1, len(stretches)):
        pos = float(cum[g])
        k = min(range(1, len(tokens)), key=lambda k: abs(bounds[k] - pos), default=None)
        if k is None or k in taken:
            continue
        shorter = min(bounds[k] - bounds[k - 1], bounds[k + 1] - bounds[k])
        if abs(bounds[k] - pos) <= _SNAP * max(shorter, 1e-9) + 1e-9:
            bounds[k] = pos
            taken.add(k)
    for k in range(1, len(bounds)):
        bounds[k] = min(max(bounds[k], bounds[k - 1]), total_v)

    def at(p: float, prefer_next: bool) -> float:
        """Clock time of voiced-time position ``p``; at a pause, its end if ``prefer_next`` else its start."""
        for s in range(len(stretches)):
            hi = cum[s + 1]
            if p < hi - 1e-9 or (p <= hi + 1e-9 and not prefer_next) or s == len(stretches) - 1:
                return stretches[s][0] + min(max(p - float(cum[s]), 0.0), durs[s])
        return stretches[-1][1]

    out = []
    for k, tok in enumerate(tokens):
        start = at(bounds[k], prefer_next=True)
        end = at(bounds[k + 1], prefer_next=False)
        out.append(WordTiming(tok.word, float(start), float(max(end, start))))
    return out
