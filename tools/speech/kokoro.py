"""Offline neural speech with Kokoro-82M: ``kokoro:<repo or folder>`` (default ``kokoro:hexgrad/Kokoro-82M``).

An optional extra (``pip install 'lessonforge[kokoro]'``): the ``kokoro`` package runs the 82M
parameter StyleTTS2/iSTFTNet model (Apache-2.0) with torch, on CUDA when there is one and on the
CPU otherwise. ``model`` is a Hub repository (``hexgrad/Kokoro-82M``) whose ``config.json``,
weights and ``voices/<voice>.pt`` style packs are fetched on first use into the standard Hugging
Face cache (``HF_HUB_CACHE``/``HF_HOME``; with ``HF_HUB_OFFLINE=1`` nothing is downloaded and the
error names the missing files), or a local folder holding ``config.json``, one ``.pth`` and
``voices/``.

Voices are Kokoro's own names; the first letter is the language (``a`` American English, ``b``
British English, ``e`` Spanish, ``f`` French, ``h`` Hindi, ``i`` Italian, ``p`` Brazilian
Portuguese), the second the gender: ``af_heart``, ``bm_george``, ``ff_siwis``. A voice may also
be a path to a ``.pt`` style pack named the same way (``af_custom.pt``).

Text to phonemes (misaki, the phonemizer Kokoro was trained with): English uses misaki's lexicon
G2P when spaCy's ``en_core_web_sm`` is installed, otherwise misaki's eSpeak NG mapping to the same
phoneme set (a warning is logged once); the other languages use misaki's eSpeak NG G2P. Each
sentence is phonemized on its own; the phonemes are packed into chunks of at most 510 symbols
(the model's context), cut between sentences (inside a very long sentence after a clause mark,
else between words), and the chunks' audio is joined sample-exactly.

Word timings come from the model's own durations: for every input symbol it predicts a number of
frames (600 samples at 24 kHz), so every phoneme symbol has its exact place in the audio. Which
written word a symbol belongs to is found by phonemizing each token of the sentence on its own
(the spoken words it makes: "1990" makes two) and matching those phonemes, symbol by symbol,
onto the sentence's phonemes (:func:`locate_words`): a word's span runs from its first to its
last matched symbol, so eSpeak NG running unstressed words together ("from the" -> "fɹʌmðə") or
reading a word slightly differently in context does not lose it (a word none of whose symbols is
found gets a zero-length timing at the pause). The spans and the counts go to
:func:`lessonforge.tools.speech.wordtiming.timings_from_spans`, sentence by sentence (``timing_source = "engine"``);
a sentence in which no word can be found is aligned to its own stretch of audio (``"aligned"``).

Inference runs in a worker thread; one lock per backend keeps syntheses from running at the same
time (each already uses every CPU core).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
import pickle
import re
import threading
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lessonforge.tools.base import ConfigError, Speech, SpeechBackend, SpeechError, Voice, WordTiming
from lessonforge.tools.defaults import KOKORO_MODEL, KOKORO_VOICE
from lessonforge.tools.media.audio import check_audio, write_wav
from lessonforge.tools.registry import BackendOptions
from lessonforge.tools.speech.wordtiming import TimingSource, bare, timings_from_spans

log = logging.getLogger(__name__)

DEFAULT_REPO = KOKORO_MODEL
DEFAULT_VOICE = KOKORO_VOICE
SAMPLE_RATE = 24_000
SAMPLES_PER_FRAME = 600  # iSTFTNet: 2x upsampling, upsample_rates 10*6, hop 5
MAX_PHONEMES = 510  # the model's 512 positions less the two boundary tokens; also a voice pack's rows
STYLE_WIDTH = 256  # a voice pack row: 128 decoder style + 128 prosody style
WEIGHTS_MB = 328  # kokoro-v1_0.pth and one voice pack, as downloaded
PULL_HINT = f"lessonforge models pull {DEFAULT_REPO}"
INSTALL_HINT = "pip install 'lessonforge[kokoro]'"

# The weights file of each known repository (as kokoro.KModel.MODEL_NAMES).
WEIGHTS: dict[str, str] = {
    KOKORO_MODEL: "kokoro-v1_0.pth",
    "hexgrad/Kokoro-82M-v1.1-zh": "kokoro-v1_1-zh.pth",
}


@dataclass(frozen=True)
class _Language:
    tag: str  # BCP-47, lower case, as Voice.language
    espeak: str  # the eSpeak NG voice misaki's G2P uses
    title: str


LANGUAGES: dict[str, _Language] = {
    "a": _Language("en-us", "en-us", "American English"),
    "b": _Language("en-gb", "en-gb", "British English"),
    "e": _Language("es", "es", "Spanish"),
    "f": _Language("fr-fr", "fr-fr", "French"),
    "h": _Language("hi", "hi", "Hindi"),
    "i": _Language("it", "it", "Italian"),
    "p": _Language("pt-br", "pt-br", "Brazilian Portuguese"),
}
# Kokoro has these voices too, but they need misaki's Japanese/Chinese extras, which are not installed.
_UNSUPPORTED = {"j": "Japanese", "z": "Mandarin Chinese"}

# The voices of hexgrad/Kokoro-82M v1.0 (VOICES.md), by language.
VOICES: tuple[str, ...] = (
    "af_heart", "af_alloy", "af_aoede", "af_bella", "af_jessica", "af_kore", "af_nicole", "af_nova",
    "af_river", "af_sarah", "af_sky",
    "am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam", "am_michael", "am_onyx", "am_puck", "am_santa",
    "bf_alice", "bf_emma", "bf_isabella", "bf_lily", "bm_daniel", "bm_fable", "bm_george", "bm_lewis",
    "ef_dora", "em_alex", "em_santa",
    "ff_siwis",
    "hf_alpha", "hf_beta", "hm_omega", "hm_psi",
    "if_sara", "im_nicola",
    "pf_dora", "pm_alex", "pm_santa",
    "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo",
    "zf_xiaobei", "zf_xiaoni", "zf_xiaoxiao", "zf_xiaoyi", "zm_yunjian", "zm_yunxi", "zm_yunxia", "zm_yunyang",
)  # fmt: skip

DEFAULT_VOICES: dict[str, str] = {
    "en": "af_heart",
    "en-us": "af_heart",
    "en-gb": "bf_emma",
    "en-uk": "bf_emma",
    "es": "ef_dora",
    "fr": "ff_siwis",
    "hi": "hf_alpha",
    "it": "if_sara",
    "pt": "pf_dora",
    "pt-br": "pf_dora",
}

_VOICE_NAME = re.compile(r"^(?P<lang>[a-z])(?P<gender>[fm])_[a-z0-9_]+$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SENTENCE_END = re.compile(r"[.!?…。！？]+[\"'”’»)\]]*$")
_CUT_MARKS = (".!?…", ":;", ",—")  # where to cut a sentence too long for one chunk, best first
_EXAMPLES = "af_heart, am_michael (American English), bf_emma, bm_george (British), ff_siwis, ef_dora, if_sara, pf_dora"
_MAX_TOKEN_CACHE = 50_000

_english_warned = threading.Event()


def _import_kokoro() -> Any:
    """The kokoro package, with its and misaki's loguru output switched off (library code never prints)."""
    try:
        import kokoro
        from loguru import logger
        from misaki import espeak  # noqa: F401  (loads eSpeak NG through espeakng-loader)
    except (ImportError, OSError) as err:
        raise ConfigError(
            f"The kokoro speech backend needs the kokoro and misaki packages ({err}). Install them with "
            f"`{INSTALL_HINT}`, or choose another voice backend, e.g. --speech edge: or --speech espeak:en-us."
        ) from None
    logger.disable("kokoro")
    logger.disable("misaki")
    return kokoro


# --------------------------------------------------------------------------- voices


@dataclass(frozen=True)
class _VoiceRef:
    name: str  # as reported in Speech.voice
    lang: str  # Kokoro language letter
    path: Path | None = None  # a local style pack


def _language_letter(name: str, shown: str) -> str:
    m = _VOICE_NAME.match(name)
    if m is None:
        raise ConfigError(
            f"{shown!r} is not a Kokoro voice. Voices are named <language><f|m>_<name>, e.g. {_EXAMPLES}; "
            "a local style pack is a .pt file named the same way (af_custom.pt). `lessonforge voices` lists them."
        )
    letter = m["lang"]
    if letter in _UNSUPPORTED:
        raise ConfigError(
            f"The Kokoro voice {shown!r} speaks {_UNSUPPORTED[letter]}, which LessonForge's kokoro backend does not "
            "phonemize (it needs misaki's Japanese/Chinese extras). Use --speech edge: for that language."
        )
    if letter not in LANGUAGES:
        raise ConfigError(
            f"Unknown Kokoro voice {shown!r}: no Kokoro language starts with {letter!r}. Valid examples: {_EXAMPLES}."
        )
    return letter


def _voice(name: str, language: str, backend: str = "kokoro") -> Voice:
    gender = {"f": "female", "m": "male"}.get(name[1:2], "")
    return Voice(name=name, language=language, gender=gender, backend=backend)


def _matches(tag: str, want: str) -> bool:
    return not want or tag == want or tag.startswith(want + "-") or want.startswith(tag + "-")


# --------------------------------------------------------------------------- phonemes and words


def _is_mark(ch: str) -> bool:
    """Punctuation, symbols and spaces: part of the phoneme string, never of a spoken word."""
    return unicodedata.category(ch)[0] in "PSZ"


def phoneme_words(phonemes: str, vocab: dict[str, int] | Any) -> list[tuple[int, int]]:
    """The spoken words of a phoneme string as (first, last) input-id positions, 1-based.

    Only symbols in ``vocab`` become input ids (as in ``KModel.forward``), and position 0 is the
    leading boundary token. A word is a space-separated run; its span runs from its first to its
    last phoneme symbol, so edge punctuation (a pause) is not part of it; a run without phoneme
    symbols ("—", "…") is no word.
    """
    words: list[tuple[int, int]] = []
    position = 0
    first = last = -1
    for ch in phonemes:
        if ch.isspace() or ch not in vocab:
            if ch.isspace() and first >= 0:
                words.append((first, last))
                first = last = -1
            if ch in vocab:
                position += 1
            continue
        position += 1
        if not _is_mark(ch):
            if first < 0:
                first = position
            last = position
    if first >= 0:
        words.append((first, last))
    return words


def _id_positions(phonemes: str, vocab: dict[str, int] | Any) -> list[int]:
    """For every character, the 1-based input-id position of the first symbol at or after it."""
    out, position = [], 0
    for ch in phonemes:
        out.append(position + 1)
        if ch in vocab:
            position += 1
    out.append(position + 1)
    return out


def _split_long(phonemes: str, limit: int) -> list[str]:
    """A sentence's phonemes in pieces of at most ``limit`` symbols: after a sentence or clause mark, else
    between words, else (one word longer than the limit) anywhere."""
    pieces = []
    rest = phonemes.strip()
    while len(rest) > limit:
        cut = -1
        for marks in _CUT_MARKS:
            cuts = [i for i in range(1, min(limit, len(rest) - 1) + 1) if rest[i] == " " and rest[i - 1] in marks]
            if cuts:
                cut = cuts[-1]
                break
        if cut <= 0:
            cut = rest.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _sentences(text: str) -> list[list[str]]:
    """The text's whitespace tokens, grouped into sentences (a token ending with . ! ? … ends one)."""
    out: list[list[str]] = []
    current: list[str] = []
    for token in text.split():
        current.append(token)
        if _SENTENCE_END.search(token):
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


@dataclass
class _Piece:
    sentence: int
    phonemes: str
    start: int = 0  # character offset in its chunk


@dataclass
class _Chunk:
    phonemes: str
    pieces: list[_Piece]


def _pack(pieces: list[_Piece], limit: int) -> list[_Chunk]:
    """Consecutive pieces joined by spaces into chunks of at most ``limit`` symbols."""
    chunks: list[_Chunk] = []
    current: list[_Piece] = []
    length = 0
    for piece in pieces:
        added = len(piece.phonemes) + (1 if current else 0)
        if current and length + added > limit:
            chunks.append(_join(current))
            current, length, added = [], 0, len(piece.phonemes)
        current.append(piece)
        length += added
    if current:
        chunks.append(_join(current))
    return chunks


def _join(pieces: list[_Piece]) -> _Chunk:
    offset = 0
    for piece in pieces:
        piece.start = offset
        offset += len(piece.phonemes) + 1
    return _Chunk(" ".join(p.phonemes for p in pieces), pieces)


@dataclass
class _Said:
    """A sentence as the model spoke it: its phonemes, each one's (start, end) in seconds (None when the
    model ignores it), and the samples the sentence covers."""

    phonemes: str = ""
    times: list[tuple[float, float] | None] = field(default_factory=list)
    region: tuple[int, int] | None = None


def _word_symbols(phonemes: str, vocab: dict[str, int] | Any) -> list[str]:
    """The spoken words of a phoneme string as their phoneme symbols (as :func:`phoneme_words` finds them)."""
    words, current = [], ""
    for ch in phonemes + " ":
        if ch.isspace():
            if current:
                words.append(current)
            current = ""
        elif ch in vocab and not _is_mark(ch):
            current += ch
    return words


def locate_words(
    phonemes: str,
    times: Sequence[tuple[float, float] | None],
    alone: Sequence[str],
    vocab: dict[str, int] | Any,
) -> tuple[list[int], list[tuple[float, float]]]:
    """Where each token's spoken words lie in a sentence's phonemes: (words per token, spans in seconds).

    ``alone[i]`` is token ``i`` phonemized on its own; its spoken words are matched symbol by symbol
    (longest common blocks, in order) onto the sentence's phoneme symbols, whose times are ``times``.
    A sentence symbol left unmatched belongs to the word of its neighbour inside the same
    space-separated word (a vowel read differently in context); a spoken word with no symbol in
    the sentence is dropped from its token's count.
    """
    spoken: list[str] = []  # the sentence's word symbols...
    where: list[int] = []  # ...their index in ``phonemes``...
    group: list[int] = []  # ...and which space-separated word they are in
    word = 0
    for i, ch in enumerate(phonemes):
        if ch.isspace():
            word += 1
        elif ch in vocab and not _is_mark(ch) and times[i] is not None:
            spoken.append(ch)
            where.append(i)
            group.append(word)
    owner_of_symbol: list[int] = []  # the alone-words' symbols, by owning alone-word
    token_of_word: list[int] = []
    letters = []
    for t, token_phonemes in enumerate(alone):
        for symbols in _word_symbols(token_phonemes, vocab):
            token_of_word.append(t)
            letters.append(symbols)
            owner_of_symbol += [len(token_of_word) - 1] * len(symbols)
    owner: list[int | None] = [None] * len(spoken)
    matcher = difflib.SequenceMatcher(None, "".join(letters), "".join(spoken), autojunk=False)
    for a, b, n in matcher.get_matching_blocks():
        for k in range(n):
            owner[b + k] = owner_of_symbol[a + k]
    for k in range(1, len(owner)):  # unmatched symbols join the word before them in the same word...
        if owner[k] is None and group[k] == group[k - 1]:
            owner[k] = owner[k - 1]
    for k in range(len(owner) - 2, -1, -1):  # ...or, at a word's start, the word after them
        if owner[k] is None and group[k] == group[k + 1]:
            owner[k] = owner[k + 1]
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for k, j in enumerate(owner):
        if j is not None:
            first.setdefault(j, k)
            last[j] = k
    counts = [0] * len(alone)
    spans: list[tuple[float, float]] = []
    for j, t in enumerate(token_of_word):
        if j in first:
            start = times[where[first[j]]]
            end = times[where[last[j]]]
            assert start is not None and end is not None
            spans.append((start[0], end[1]))
            counts[t] += 1
    return counts, spans


def _to_pcm(audio: np.ndarray, voice: str) -> np.ndarray:
    """Float samples in [-1, 1] as 16-bit PCM; SpeechError for NaN, infinite or silent output."""
    if audio.size == 0 or not np.all(np.isfinite(audio)):
        raise SpeechError(
            f"Kokoro produced invalid audio (NaN or empty) for voice {voice!r}. The model files may be damaged: "
            f"delete them from the Hugging Face cache and run `{PULL_HINT}`, or choose another voice."
        )
    if float(np.max(np.abs(audio))) < 1e-4:
        raise SpeechError(f"Kokoro produced silent audio for voice {voice!r}. Try another voice.")
    return np.clip(np.round(audio * 32767.0), -32767, 32767).astype("<i2")


# --------------------------------------------------------------------------- the backend


@dataclass
class _Engine:
    model: Any  # kokoro.KModel
    vocab: dict[str, int]
    device: str
    limit: int  # phoneme symbols per chunk


class KokoroSpeech(SpeechBackend):
    """Speech from Kokoro-82M, offline, with word timings from the model's own phoneme durations.

    ``model`` is a Hub repository id (default ``hexgrad/Kokoro-82M``) or a local folder with
    ``config.json``, the weights (``.pth``) and ``voices/*.pt``; ``weights`` names the ``.pth``
    file of a repository other than hexgrad's. ``device`` is ``cuda`` or ``cpu`` (default: CUDA
    when available); ``speed`` scales the speaking rate (0.5-2.0).
    """

    local = True

    class Options(BackendOptions):
        """What ``kokoro:`` takes (see the class docstring)."""

        device: str = ""
        speed: float = 1.0
        weights: str = ""

    def __init__(self, model: str = "", *, device: str = "", speed: float = 1.0, weights: str = "") -> None:
        self.model = (model or "").strip() or DEFAULT_REPO
        self.name = f"kokoro:{self.model}"
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.5 <= speed <= 2.0:
            raise ConfigError(f"kokoro speed must be a number between 0.5 and 2.0, got {speed!r}.")
        self.speed = float(speed)
        self.device = (device or "").strip().lower()
        if self.device and not re.fullmatch(r"cpu|cuda(:\d+)?|mps", self.device):
            raise ConfigError(f"kokoro device must be cpu, cuda (or cuda:N) or mps, got {device!r}.")
        folder = Path(self.model).expanduser()
        self.folder: Path | None = folder if folder.is_dir() else None
        if self.folder is None:
            if self.model.startswith((".", "/", "~")) or "\\" in self.model or not _REPO_ID.match(self.model):
                raise ConfigError(
                    f"kokoro model {self.model!r} is neither a folder nor a Hugging Face repo id. Use "
                    f"kokoro:{DEFAULT_REPO} (the default) or the path of a folder holding config.json, the .pth "
                    "weights and voices/."
                )
            self.weights = (weights or "").strip() or WEIGHTS.get(self.model, "")
            if not self.weights:
                raise ConfigError(
                    f"Which file of {self.model} holds the Kokoro weights? Pass the weights option (e.g. "
                    "weights='kokoro-v1_0.pth'), or download the repository into a folder and use kokoro:<folder>."
                )
        else:
            self.weights = (weights or "").strip()
        self.timing_source: TimingSource = "engine"
        self._lock = threading.Lock()  # loading and synthesis, one at a time
        self._engine: _Engine | None = None
        self._packs: dict[str, Any] = {}
        self._g2p: dict[str, Callable[[str], str]] = {}
        self._tokens: dict[tuple[str, str], str] = {}

    # ----------------------------------------------------------------- voices

    def _catalog(self) -> list[str]:
        if self.folder is not None:
            return sorted(p.stem for p in (self.folder / "voices").glob("*.pt") if _VOICE_NAME.match(p.stem))
        return list(VOICES)

    async def voices(self, language: str | None = None) -> list[Voice]:
        """Kokoro voices this backend can speak, optionally for ``language`` ("en" matches en-us and en-gb)."""
        want = (language or "").strip().lower().replace("_", "-")
        out = []
        for name in self._catalog():
            lang = LANGUAGES.get(name[0])
            if lang is not None and _matches(lang.tag, want):
                out.append(_voice(name, lang.tag))
        return out

    def default_voice(self, language: str) -> str:
        """A Kokoro voice for a BCP-47 tag: en/en-US -> af_heart, en-GB -> bf_emma, fr -> ff_siwis..."""
        tag = (language or "").strip().lower().replace("_", "-")
        if not tag:
            raise ConfigError("No language given for the kokoro voice. Use a BCP-47 code such as en, en-GB or fr.")
        chosen = next((DEFAULT_VOICES[c] for c in (tag, tag.split("-")[0]) if c in DEFAULT_VOICES), None)
        if chosen is None:
            names = ", ".join(lang.title for lang in LANGUAGES.values())
            raise ConfigError(
                f"Kokoro has no voice for language {language!r}; it speaks {names}. "
                "Use --speech edge: or --speech espeak: for this language."
            )
        if self.folder is not None:
            available = self._catalog()
            if chosen not in available:
                same = [v for v in available if v[0] == chosen[0]]
                if not same:
                    raise ConfigError(
                        f"The Kokoro folder {self.folder} has no voice for {language!r} in voices/ "
                        f"(e.g. voices/{chosen}.pt). Add one, or name a voice with --voice."
                    )
                chosen = same[0]
        return chosen

    def _resolve_voice(self, voice: str) -> _VoiceRef:
        voice = voice.strip()
        if voice.endswith(".pt"):
            path = Path(voice).expanduser()
            letter = _language_letter(path.stem, voice)
            if not path.is_file():
                raise ConfigError(
                    f"Kokoro voice file {path} does not exist. Check the path, or name a voice: {_EXAMPLES}."
                )
            return _VoiceRef(voice, letter, path)
        name = voice.lower()
        letter = _language_letter(name, voice)
        if self.folder is None and self.model == DEFAULT_REPO and name not in VOICES:
            raise ConfigError(
                f"Unknown Kokoro voice {voice!r}. Choose one of {DEFAULT_REPO}'s voices, e.g. {_EXAMPLES} "
                "(`lessonforge voices` lists them), or give the path of a local .pt voice."
            )
        return _VoiceRef(name, letter)

    # ----------------------------------------------------------------- speaking

    async def speak(self, text: str, voice: str, out: Path) -> Speech:
        """Speak ``text`` into the WAV file ``out`` (atomically) and return its word timings."""
        if not text or not text.strip():
            raise ConfigError("Nothing to speak: the narration text is empty. Write narration for the scene.")
        ref = self._resolve_voice((voice or "").strip() or self.default_voice("en"))
        return await asyncio.to_thread(self._speak_sync, text, ref, Path(out))

    def _speak_sync(self, text: str, ref: _VoiceRef, out: Path) -> Speech:
        with self._lock:
            engine, pack = self._load(ref)
            g2p = self._phonemizer(ref.lang)
            sentences = _sentences(text)
            pieces = [
                _Piece(k, piece)
                for k, tokens in enumerate(sentences)
                for piece in _split_long(g2p(" ".join(tokens)), engine.limit)
                if phoneme_words(piece, engine.vocab)
            ]
            if not pieces:
                raise ConfigError(
                    f"Kokoro found nothing to pronounce in {text[:80]!r}. Write the narration in words of the "
                    f"voice's language ({LANGUAGES[ref.lang].title})."
                )
            audio, said = self._synthesize(engine, pack, _pack(pieces, engine.limit), len(sentences), ref)
            located = [
                locate_words(s.phonemes, s.times, [self._alone(ref.lang, g2p, t) for t in tokens], engine.vocab)
                for tokens, s in zip(sentences, said, strict=True)
            ]
        pcm = _to_pcm(audio, ref.name)
        write_wav(out, pcm.tobytes(), SAMPLE_RATE)
        duration = check_audio(out)
        words, source = _timings(sentences, located, [s.region for s in said], pcm, duration)
        self.timing_source = source
        return Speech(path=out, duration=duration, words=tuple(words), voice=ref.name, backend=self.name)

    def _synthesize(
        self, engine: _Engine, pack: Any, chunks: list[_Chunk], n_sentences: int, ref: _VoiceRef
    ) -> tuple[np.ndarray, list[_Said]]:
        """The joined audio and, per sentence, its phonemes with their times and its sample region."""
        parts: list[np.ndarray] = []
        said = [_Said() for _ in range(n_sentences)]
        offset = 0
        for chunk in chunks:
            audio, frames = self._infer(engine, pack, chunk.phonemes, ref)
            edges = np.concatenate([[0], np.cumsum(frames)]).astype(np.float64)
            per_frame = len(audio) / edges[-1] if edges[-1] > 0 else float(SAMPLES_PER_FRAME)
            at = _id_positions(chunk.phonemes, engine.vocab)
            starts = [0] + [round(edges[min(at[p.start], len(edges) - 1)] * per_frame) for p in chunk.pieces[1:]]
            ends = starts[1:] + [len(audio)]
            for piece, a, z in zip(chunk.pieces, starts, ends, strict=True):
                sentence = said[piece.sentence]
                sentence.region = (offset + a if sentence.region is None else sentence.region[0], offset + z)
                if sentence.phonemes:  # the next piece of a long sentence
                    sentence.phonemes += " "
                    sentence.times.append(None)
                for i in range(piece.start, piece.start + len(piece.phonemes)):
                    ch = chunk.phonemes[i]
                    sentence.phonemes += ch
                    if ch in engine.vocab:
                        k = at[i]  # this symbol's input id
                        sentence.times.append(
                            (
                                (offset + edges[k] * per_frame) / SAMPLE_RATE,
                                (offset + edges[k + 1] * per_frame) / SAMPLE_RATE,
                            )
                        )
                    else:
                        sentence.times.append(None)
            parts.append(audio)
            offset += len(audio)
        return np.concatenate(parts), said

    def _infer(self, engine: _Engine, pack: Any, phonemes: str, ref: _VoiceRef) -> tuple[np.ndarray, np.ndarray]:
        """One chunk's float audio and its frames per input id (boundary tokens included)."""
        import torch

        style = pack[min(len(phonemes), pack.shape[0]) - 1]
        try:
            with torch.inference_mode():
                output = engine.model(phonemes, style, self.speed, return_output=True)
        except (RuntimeError, AssertionError, ValueError, IndexError) as err:
            raise SpeechError(
                f"Kokoro failed to speak with voice {ref.name!r} on {engine.device}: {err}. "
                "Try again, or run it on the CPU (device='cpu')."
            ) from None
        audio = output.audio.detach().float().cpu().numpy().reshape(-1)
        frames = output.pred_dur.detach().cpu().numpy().reshape(-1).astype(np.int64)
        n_ids = sum(1 for ch in phonemes if ch in engine.vocab)
        if frames.size != n_ids + 2:
            raise SpeechError(
                f"Kokoro returned {frames.size} durations for {n_ids + 2} input symbols; the installed kokoro "
                f"package does not match this backend. Reinstall it with `{INSTALL_HINT}`."
            )
        return audio, frames

    def _alone(self, lang: str, g2p: Callable[[str], str], token: str) -> str:
        """The phonemes of ``token`` phonemized on its own (cached)."""
        key = (lang, token)
        if key not in self._tokens:
            if len(self._tokens) >= _MAX_TOKEN_CACHE:
                self._tokens.clear()
            self._tokens[key] = g2p(token)
        return self._tokens[key]

    # ----------------------------------------------------------------- loading

    def downloads(self, voice: str = "") -> list[Any]:
        """What speaking with ``voice`` fetches from the Hub on first use: the config, the weights and
        that voice's style pack (nothing for a local folder or a local .pt voice)."""
        from lessonforge.tools.hub import ModelInfo

        if self.folder is not None:
            return []
        ref = self._resolve_voice((voice or "").strip() or self.default_voice("en"))
        files = ("config.json", self.weights) + (() if ref.path is not None else (f"voices/{ref.name}.pt",))
        return [ModelInfo(self.model, f"Kokoro voice {ref.name}", WEIGHTS_MB, files, files)]

    def prepare(self, voice: str = "") -> None:
        """Fetch and load the model and ``voice`` now (ConfigError naming the fix when they cannot be),
        so a lesson does not fail at its first narration."""
        ref = self._resolve_voice((voice or "").strip() or self.default_voice("en"))
        with self._lock:
            self._load(ref)

    def _load(self, ref: _VoiceRef) -> tuple[_Engine, Any]:
        """The model and the voice's style pack, loaded once (the caller holds the lock)."""
        engine, pack = self._engine, self._packs.get(ref.name)
        if engine is not None and pack is not None:
            return engine, pack
        kokoro = _import_kokoro()
        files = self._files(engine is None, ref if pack is None and ref.path is None else None)
        if engine is None:
            engine = self._engine = self._load_model(kokoro, files["config"], files["weights"])
        if pack is None:
            pack = self._packs[ref.name] = self._load_pack(ref, ref.path or files["voice"], engine.device)
        return engine, pack

    def _files(self, model: bool, voice: _VoiceRef | None) -> dict[str, Path]:
        """Paths of the config, weights and voice pack asked for; one ConfigError naming every missing file."""
        wanted: dict[str, str] = {}
        if model:
            wanted["config"] = "config.json"
            wanted["weights"] = self.weights or (self._folder_weights() if self.folder is not None else "")
        if voice is not None:
            wanted["voice"] = f"voices/{voice.name}.pt"
        if self.folder is not None:
            found = {key: self.folder / name for key, name in wanted.items()}
            missing = [str(path) for path in found.values() if not path.is_file()]
            if missing:
                raise ConfigError(
                    f"The Kokoro folder {self.folder} lacks {', '.join(missing)}. A Kokoro folder holds config.json, "
                    f"the weights (.pth) and voices/<voice>.pt, as in the {DEFAULT_REPO} repository."
                )
            return found
        return self._download(wanted, voice)

    def _folder_weights(self) -> str:
        assert self.folder is not None
        known = [name for name in WEIGHTS.values() if (self.folder / name).is_file()]
        found = known or sorted(p.name for p in self.folder.glob("*.pth"))
        if len(found) != 1:
            what = "no .pth weights file" if not found else f"several .pth files ({', '.join(found)})"
            raise ConfigError(
                f"The Kokoro folder {self.folder} has {what}. Put exactly one there, or name it with the "
                "weights option."
            )
        return found[0]

    def _download(self, wanted: dict[str, str], voice: _VoiceRef | None) -> dict[str, Path]:
        from lessonforge.tools.hub import NotOnHub, hf_offline, hub_cache_dir, hub_files

        try:
            found, missing = hub_files(self.model, wanted.values(), self.model)
        except NotOnHub as err:
            if err.name == wanted.get("voice") and voice is not None:
                raise ConfigError(
                    f"{self.model} has no voice {voice.name!r} ({err.name}). Valid examples: {_EXAMPLES}."
                ) from None
            raise ConfigError(
                f"{self.model} has no file {err.name}; it is not a Kokoro repository like {DEFAULT_REPO}."
            ) from None
        if missing:
            files = ", ".join(missing)
            if hf_offline():
                why = (f"HF_HUB_OFFLINE is set and the Hugging Face cache ({hub_cache_dir()}) lacks {files} "
                       f"of {self.model}")
                fix = f"Run `lessonforge models pull {self.model}` while online, or unset HF_HUB_OFFLINE"
            else:
                why = f"{files} of {self.model} could not be downloaded (the Hub cannot be reached) and are not cached"
                fix = f"Connect to the internet and run `lessonforge models pull {self.model}`"
            raise ConfigError(
                f"Kokoro cannot speak: {why}. {fix}, or choose another backend (--speech edge: or espeak:)."
            )
        return {key: found[name] for key, name in wanted.items()}

    def _load_model(self, kokoro: Any, config: Path, weights: Path) -> _Engine:
        import torch

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("kokoro device 'cuda' was asked for, but torch sees no CUDA GPU. Use device='cpu'.")
        from lessonforge.tools.hub import quiet_progress

        try:
            with quiet_progress(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*weight_norm.* is deprecated", category=FutureWarning)
                warnings.filterwarnings("ignore", message=r"dropout option adds dropout", category=UserWarning)
                model = kokoro.KModel(repo_id=self.model, config=str(config), model=str(weights)).to(device).eval()
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise ConfigError(
                f"{config} is not a Kokoro config ({type(err).__name__}: {err}). Delete it and run `{PULL_HINT}`."
            ) from None
        except (RuntimeError, ValueError, AssertionError, OSError, EOFError, pickle.UnpicklingError) as err:
            detail = " ".join(str(err).split())[:300]
            raise ConfigError(
                f"The Kokoro weights {weights} could not be loaded on {device} ({type(err).__name__}: {detail}). "
                f"Delete them from the cache and run `{PULL_HINT}` again."
            ) from None
        vocab = dict(model.vocab)
        limit = max(1, min(MAX_PHONEMES, int(model.context_length) - 2))
        return _Engine(model=model, vocab=vocab, device=device, limit=limit)

    @staticmethod
    def _load_pack(ref: _VoiceRef, path: Path, device: str) -> Any:
        import torch

        try:
            pack = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as err:
            raise ConfigError(
                f"The Kokoro voice file {path} could not be read ({err}). Delete it and download it again "
                f"(`{PULL_HINT}`), or choose another voice."
            ) from None
        if not isinstance(pack, torch.Tensor) or pack.ndim != 3 or pack.shape[-1] != STYLE_WIDTH or pack.shape[0] < 1:
            shape = tuple(pack.shape) if isinstance(pack, torch.Tensor) else type(pack).__name__
            raise ConfigError(
                f"{path} is not a Kokoro voice (a tensor of shape [510, 1, {STYLE_WIDTH}]; got {shape}). "
                "Choose another voice."
            )
        return pack.float().to(device)

    def _phonemizer(self, lang: str) -> Callable[[str], str]:
        """Text -> Kokoro phonemes for a language letter (created once per language)."""
        if lang not in self._g2p:
            self._g2p[lang] = _make_g2p(lang)
        return self._g2p[lang]


def _make_g2p(lang: str) -> Callable[[str], str]:
    """misaki's G2P for a Kokoro language letter, as a function text -> phoneme string."""
    from misaki import espeak

    language = LANGUAGES[lang]
    try:
        if lang not in ("a", "b"):
            g2p = espeak.EspeakG2P(language=language.espeak)
            return lambda text: g2p(text)[0] or ""
        fallback = espeak.EspeakFallback(british=lang == "b")
    except (RuntimeError, OSError, ValueError) as err:
        raise ConfigError(
            f"eSpeak NG cannot phonemize {language.title} ({language.espeak}) for Kokoro: {err}. Reinstall the "
            f"phonemizer with `{INSTALL_HINT}`, or choose another backend (--speech edge:)."
        ) from None
    if _spacy_english():
        from misaki import en

        try:
            lexicon = en.G2P(trf=False, british=lang == "b", fallback=fallback, unk="")
        except (OSError, ValueError, ImportError) as err:
            log.warning(
                "spaCy's en_core_web_sm could not be loaded (%s); Kokoro phonemizes English with eSpeak NG", err
            )
        else:
            return lambda text: lexicon(text)[0] or ""
    elif not _english_warned.is_set():
        _english_warned.set()
        log.warning(
            "spaCy's en_core_web_sm is not installed, so Kokoro phonemizes English with eSpeak NG instead of "
            "misaki's lexicon (less accurate). Install it with `python -m spacy download en_core_web_sm`."
        )
    return lambda text: fallback(_Token(text))[0] or ""


@dataclass
class _Token:
    """What misaki's EspeakFallback reads: an object with the text to phonemize."""

    text: str


def _spacy_english() -> bool:
    try:
        import spacy.util
    except ImportError:
        return False
    return bool(spacy.util.is_package("en_core_web_sm"))


def _timings(
    sentences: Sequence[Sequence[str]],
    located: Sequence[tuple[list[int], list[tuple[float, float]]]],
    regions: Sequence[tuple[int, int] | None],
    pcm: np.ndarray,
    duration: float,
) -> tuple[list[WordTiming], TimingSource]:
    """Every word's timing, sentence by sentence; "aligned" when any sentence had to be aligned."""
    words: list[WordTiming] = []
    source: TimingSource = "engine"
    previous = 0.0
    for tokens, (counts, spans), region in zip(sentences, located, regions, strict=True):
        if region is None:  # nothing pronounceable: its words sit where the speech pauses
            at = round(previous, 3)
            words += [WordTiming(bare(t) or t, at, at) for t in tokens if any(ch.isalnum() for ch in t)]
            continue
        a, z = region
        shift = a / SAMPLE_RATE
        relative = [(s - shift, e - shift) for s, e in spans]
        timed, how = timings_from_spans(" ".join(tokens), counts, relative, pcm[a:z], SAMPLE_RATE)
        if how != "engine":
            source = how
        for w in timed:
            start = min(max(round(w.start + shift, 3), previous), duration)
            end = min(max(round(w.end + shift, 3), start), duration)
            words.append(WordTiming(w.word, start, end))
            previous = end
    return words, source


__all__ = ["DEFAULT_REPO", "DEFAULT_VOICE", "DEFAULT_VOICES", "VOICES", "KokoroSpeech", "locate_words", "phoneme_words"]
