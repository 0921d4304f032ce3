"""Offline speech with eSpeak NG: ``espeak:<voice>`` (e.g. ``espeak:en-us``, ``espeak:fr``).

The C library (``libespeak-ng.so.1``) is driven through ctypes in synchronous mode: a synth
callback collects the PCM samples and the ``espeakEVENT_WORD`` events, whose sample offsets are
the engine's own word start times. A word ends where the next word (or clause) starts, less any
pause in between; the last word ends where the trailing speech ends.

When the library cannot be loaded the ``espeak-ng`` command line speaks instead (``-w file``),
and word times are estimated from word lengths: ``timing_source`` says which one applies.

The library keeps global state and is not thread-safe, so every call holds one process-wide lock
and synthesis runs in a worker thread (``asyncio.to_thread``) to keep the event loop free.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lessonforge.tools.base import ConfigError, Speech, SpeechBackend, SpeechError, SpeechUnavailable, Voice, WordTiming
from lessonforge.tools.cache import atomic_path
from lessonforge.tools.media.audio import check_audio, read_wav_pcm, write_wav
from lessonforge.tools.registry import BackendOptions
from lessonforge.tools.speech.wordtiming import bare

log = logging.getLogger(__name__)

LIBRARY_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.1.dylib", "libespeak-ng.dll")
CLI_NAMES = ("espeak-ng", "espeak")

# Where espeak's own priorities pick a less expected voice for a bare language code.
_PREFERRED: dict[str, str] = {"en": "en-us", "zh": "cmn", "zh-cn": "cmn", "zh-hk": "yue", "pt": "pt-br"}

_BCP47 = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})+$")
_SILENCE_RMS = 100.0  # 16-bit amplitude; espeak's pauses are near-exact zeros
_FRAME_S = 0.005

# espeak_EVENT_TYPE, espeak_AUDIO_OUTPUT, flags and parameters from speak_lib.h
_EV_LIST_TERMINATED, _EV_WORD, _EV_END = 0, 1, 5
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE = 1
_EE_OK, _EE_NOT_FOUND = 0, 2


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),  # in characters, for word events
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # sample index from the start of this synthesis
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _VoiceStruct(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated code)*, then a 0 byte
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class _VoiceInfo:
    """An installed espeak-ng voice: file identifier (``gmw/en-US``), display name, languages."""

    identifier: str
    title: str
    languages: tuple[tuple[int, str], ...]  # (priority, lower-case code); lower priority = better
    gender: str = ""

    @property
    def key(self) -> str:
        """The name users type: the voice file's base name, lower case (``en-us``, ``fr``)."""
        return self.identifier.rsplit("/", 1)[-1].lower()

    @property
    def language(self) -> str:
        return self.languages[0][1] if self.languages else self.key

    def as_voice(self) -> Voice:
        return Voice(name=self.key, language=self.language, gender=self.gender, backend="espeak")


@dataclass
class _Raw:
    """What one synthesis produced: 16-bit samples, their rate, and (sample, char pos, length, type) events."""

    pcm: bytes
    rate: int
    events: list[tuple[int, int, int, int]]


# --------------------------------------------------------------------------- the C library


class _Library:
    """The loaded, initialised libespeak-ng. One per process; every use holds ``lock``."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lock = threading.Lock()
        self._lib = lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VoiceStruct))
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p

        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_DONT_EXIT)
        if self.rate <= 0:
            raise OSError("espeak_Initialize failed (espeak-ng-data not found?)")
        self._pcm: list[bytes] = []
        self._events: list[tuple[int, int, int, int]] = []
        self._callback = _SynthCallback(self._on_synth)  # kept referenced for the library's lifetime
        lib.espeak_SetSynthCallback(self._callback)
        data = ctypes.c_char_p()
        lib.espeak_Info(ctypes.byref(data))
        self.data_path = Path(data.value.decode()) if data.value else None
        self._voices: list[_VoiceInfo] | None = None

    def _on_synth(self, wav: ctypes.Array, n: int, events: ctypes.Array) -> int:
        if wav and n > 0:
            self._pcm.append(ctypes.string_at(wav, n * 2))
        i = 0
        while events and events[i].type != _EV_LIST_TERMINATED:
            e = events[i]
            if e.type in (_EV_WORD, _EV_END):
                self._events.append((e.sample, e.text_position, e.length, e.type))
            i += 1
        return 0

    def voices(self) -> list[_VoiceInfo]:
        with self.lock:
            if self._voices is None:
                self._voices = self._list_voices()
            return self._voices

    def _list_voices(self) -> list[_VoiceInfo]:
        found: list[_VoiceInfo] = []
        table = self._lib.espeak_ListVoices(None)
        i = 0
        while table and table[i]:
            v = table[i].contents
            title = (v.name or b"").decode("utf-8", "replace").strip()
            # no gender: every language voice reports "male" (the engine's default, not the voice's own)
            found.append(_VoiceInfo(v.identifier.decode(), title, _languages(v.languages)))
            i += 1
        return found

    def synth(self, text: str, voice: str, rate_wpm: int) -> _Raw:
        data = text.encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        with self.lock:
            if self._lib.espeak_SetVoiceByName(voice.encode("utf-8")) != _EE_OK:
                raise ConfigError(f"espeak-ng has no voice {voice!r}. List voices with `lessonforge voices`.")
            self._lib.espeak_SetParameter(_PARAM_RATE, rate_wpm, 0)
            self._pcm, self._events = [], []
            try:
                err = self._lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
                self._lib.espeak_Synchronize()
                raw = _Raw(b"".join(self._pcm), self.rate, list(self._events))
            finally:
                self._pcm, self._events = [], []
        if err != _EE_OK:
            raise SpeechError(f"espeak-ng failed to synthesize (error {err}). Check that espeak-ng-data is installed.")
        return raw


def _languages(ptr: int | None) -> tuple[tuple[int, str], ...]:
    out: list[tuple[int, str]] = []
    off = 0
    while ptr:
        priority = ctypes.string_at(ptr + off, 1)[0]
        if priority == 0:
            break
        code = ctypes.string_at(ptr + off + 1)
        out.append((priority, code.decode("utf-8", "replace").lower()))
        off += len(code) + 2
    return tuple(out)


_LIB_STATE: dict[str, _Library | None] = {}
_LIB_INIT_LOCK = threading.Lock()


def _engine() -> _Library | None:
    """The process-wide library, loaded on first use; None when it cannot be loaded."""
    with _LIB_INIT_LOCK:
        if "lib" not in _LIB_STATE:
            _LIB_STATE["lib"] = _load_library()
        return _LIB_STATE["lib"]


def _load_library() -> _Library | None:
    for name in LIBRARY_NAMES:
        try:
            return _Library(ctypes.CDLL(name))
        except (OSError, AttributeError) as err:
            log.debug("espeak-ng library %s not usable: %s", name, err)
    log.info("libespeak-ng not loadable; using the espeak-ng command line with estimated word timings")
    return None


# --------------------------------------------------------------------------- the command line


def _cli() -> str:
    for name in CLI_NAMES:
        exe = shutil.which(name)
        if exe:
            return exe
    raise SpeechUnavailable(
        "espeak-ng is not installed (neither libespeak-ng.so.1 nor the espeak-ng command was found). "
        "Install it, e.g. `apt install espeak-ng`, or choose another speech backend."
    )


@functools.lru_cache(maxsize=1)
def _cli_voices() -> list[_VoiceInfo]:
    proc = subprocess.run([_cli(), "--voices"], capture_output=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise SpeechError(f"`espeak-ng --voices` failed: {proc.stderr.decode(errors='replace')[-300:]}")
    found: list[_VoiceInfo] = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5 or cols[4].startswith("mb/"):  # mbrola voices need separate databases
            continue
        pty, lang, _age_gender, title, ident = cols[:5]  # "--/M" for every voice: not the voice's own
        langs = [(int(pty) if pty.isdigit() else 5, lang.lower())]
        langs += [(int(p), code.lower()) for code, p in re.findall(r"\((\S+) (\d+)\)", " ".join(cols[5:]))]
        found.append(_VoiceInfo(ident, title.replace("_", " "), tuple(langs)))
    return found


def _cli_synth(text: str, voice: str, rate_wpm: int, tmp: Path) -> _Raw:
    cmd = [_cli(), "-v", voice, "-s", str(rate_wpm), "-b", "1", "-w", str(tmp), "--stdin"]
    proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise SpeechError(f"espeak-ng exited with {proc.returncode}: {proc.stderr.decode(errors='replace')[-300:]}")
    check_audio(tmp)
    pcm, rate = read_wav_pcm(tmp)
    return _Raw(pcm, rate, [])


# --------------------------------------------------------------------------- the backend


# Languages eSpeak NG has a voice for but whose writing it cannot read aloud.
_CANNOT_READ = {"ja": "reads every kanji as \"Chinese letter\" (its Japanese voice knows only kana)"}


class EspeakSpeech(SpeechBackend):
    """Speech from eSpeak NG, offline, with the engine's own word timings.

    ``model`` is a default voice (``en-us``, ``fr``, ``de``, ``en-us+f3``...); ``rate_wpm`` the
    speaking rate in words per minute (espeak accepts 80..450).
    """

    # shown under `lessonforge voices`: a voice here is a language; a variant gives another sound
    voices_note = ("eSpeak NG's voices are languages, all with one default sound; add a variant for another, "
                   "e.g. en-us+f3 (higher) or en-us+m3 (lower)")

    class Options(BackendOptions):
        """What ``espeak:`` takes (see the class docstring)."""

        rate_wpm: int = 160

    def __init__(self, model: str = "", *, rate_wpm: int = 160) -> None:
        if not 80 <= int(rate_wpm) <= 450:
            raise ConfigError(f"espeak rate_wpm must be between 80 and 450, got {rate_wpm}.")
        self.model = model.strip()
        self.name = f"espeak:{self.model}"
        self.rate_wpm = int(rate_wpm)
        if self.model:
            try:
                self._resolve(self.model)  # an unknown voice is a ConfigError before any work starts
            except SpeechUnavailable:
                pass  # espeak-ng is not installed: say so when it is asked to speak

    @property
    def timing_source(self) -> Literal["engine", "estimate"]:
        """"engine" when word times come from the library's events, "estimate" with the CLI."""
        return "engine" if _engine() is not None else "estimate"

    # ----------------------------------------------------------------- voices

    def _installed(self) -> list[_VoiceInfo]:
        lib = _engine()
        return lib.voices() if lib is not None else _cli_voices()

    async def voices(self, language: str | None = None) -> list[Voice]:
        """Installed voices, optionally those speaking ``language`` (``"en"`` matches en-us, en-gb...)."""
        want = (language or "").strip().lower().replace("_", "-")
        out = []
        for info in self._installed():
            codes = [code for _, code in info.languages]
            if not want or any(c == want or c.startswith(want + "-") for c in codes):
                out.append(info.as_voice())
        return sorted(out, key=lambda v: (v.language, v.name))

    def check_language(self, language: str) -> None:
        """Refuse, before any work, a language eSpeak NG has a voice for but cannot read aloud properly."""
        base = (language or "").strip().lower().replace("_", "-").split("-")[0]
        why = _CANNOT_READ.get(base)
        if why:
            raise ConfigError(
                f"espeak-ng cannot narrate {language!r}: it {why}. Use a voice that speaks it: --speech edge: "
                "(online), or offline --speech kokoro: (Japanese voices, `pip install lessonforge[kokoro]`)."
            )

    def default_voice(self, language: str) -> str:
        """An espeak-ng voice for a BCP-47 language tag: "en" -> "en-us", "en-GB" -> "en", "fr" -> "fr"."""
        tag = (language or "").strip().lower().replace("_", "-")
        if not tag:
            raise ConfigError("No language given for the espeak voice. Use a BCP-47 code such as en, fr or de-DE.")
        installed = self._installed()
        for candidate in (tag, tag.split("-")[0]):
            preferred = _PREFERRED.get(candidate)
            if preferred and _by_key(installed, preferred):
                return preferred
            info = _by_language(installed, candidate)
            if info is not None:
                return info.key
        raise ConfigError(
            f"espeak-ng has no voice for language {language!r}. "
            "See `lessonforge voices` for the installed ones (e.g. en-us, fr, de, es, ja)."
        )

    def _resolve(self, voice: str) -> tuple[str, str]:
        """(voice name to report, voice to pass to espeak) for a user's voice string; ConfigError if unknown."""
        base, _, variant = voice.strip().partition("+")
        wanted = base.lower().replace("_", "-")
        installed = self._installed()
        info = _by_key(installed, wanted) or next(
            (v for v in installed if wanted in (v.identifier.lower(), v.title.lower())), None
        )
        if info is None:
            info = _by_language(installed, wanted)
        if info is None and _BCP47.match(wanted):  # "de-de", "fr-lu": the language's voice
            info = _by_language(installed, wanted.split("-")[0])
        if info is None:
            raise ConfigError(
                f"Unknown espeak-ng voice {voice!r}. Run `lessonforge voices` to list them; "
                "valid examples: en-us, en (British), fr, de, es, ja, en-us+f3."
            )
        if variant and not self._variant_exists(variant):
            raise ConfigError(
                f"Unknown espeak-ng voice variant {variant!r} in {voice!r}. "
                "Valid examples: en-us+f3, en-us+m3, fr+klatt."
            )
        suffix = f"+{variant}" if variant else ""
        return info.key + suffix, info.identifier + suffix

    @staticmethod
    def _variant_exists(variant: str) -> bool:
        lib = _engine()
        if lib is None or lib.data_path is None:
            return True  # cannot check; espeak ignores unknown variants
        return (lib.data_path / "voices" / "!v" / variant).is_file()

    # ----------------------------------------------------------------- speaking

    async def speak(self, text: str, voice: str, out: Path) -> Speech:
        """Speak ``text`` into the WAV file ``out`` (atomically) and return its word timings."""
        if not text or not text.strip():
            raise ConfigError("Nothing to speak: the narration text is empty. Write narration for the scene.")
        chosen = voice.strip() or self.model or self.default_voice("en")
        return await asyncio.to_thread(self._speak_sync, text, chosen, Path(out))

    def _speak_sync(self, text: str, voice: str, out: Path) -> Speech:
        name, spec = self._resolve(voice)
        lib = _engine()
        if lib is not None:
            raw = lib.synth(text, spec, self.rate_wpm)
            if not raw.pcm:
                raise SpeechError(f"espeak-ng produced no audio for voice {voice!r}. Check the text and the voice.")
            write_wav(out, raw.pcm, raw.rate)
        else:
            with atomic_path(out) as tmp:
                raw = _cli_synth(text, spec, self.rate_wpm, tmp)
        duration = check_audio(out)
        samples = np.frombuffer(raw.pcm, dtype="<i2")
        if lib is not None:
            words = engine_timings(text, raw.events, samples, raw.rate)
        else:
            words = estimate_timings(text, samples, raw.rate)
        return Speech(path=out, duration=duration, words=tuple(words), voice=name, backend=self.name)


def _by_key(installed: list[_VoiceInfo], key: str) -> _VoiceInfo | None:
    return next((v for v in installed if v.key == key), None)


def _by_language(installed: list[_VoiceInfo], code: str) -> _VoiceInfo | None:
    best: tuple[int, int, _VoiceInfo] | None = None
    for order, info in enumerate(installed):
        for priority, lang in info.languages:
            if lang == code and (best is None or (priority, order) < best[:2]):
                best = (priority, order, info)
    return best[2] if best else None


# --------------------------------------------------------------------------- word timings


def _strip_punct(word: str) -> str:
    return bare(word) or word


def _has_alnum(s: str) -> bool:
    return any(ch.isalnum() for ch in s)


def _frames(samples: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """Per-frame loudness flags (True = speech) and the frame length in samples."""
    step = max(1, int(rate * _FRAME_S))
    n = len(samples) // step + (1 if len(samples) % step else 0)
    padded = np.zeros(n * step, dtype=np.float64)
    padded[: len(samples)] = samples
    rms = np.sqrt((padded.reshape(n, step) ** 2).mean(axis=1))
    return rms >= _SILENCE_RMS, step


def _trim(loud: np.ndarray, step: int, a: int, b: int) -> tuple[int, int]:
    """Narrow the sample span [a, b) to its loud part; unchanged when it is all quiet."""
    fa, fb = a // step, min(len(loud), -(-b // step))
    idx = np.flatnonzero(loud[fa:fb])
    if idx.size == 0:
        return a, b
    return max(a, (fa + int(idx[0])) * step), min(b, (fa + int(idx[-1]) + 1) * step)


def engine_timings(
    text: str, events: list[tuple[int, int, int, int]], samples: np.ndarray, rate: int
) -> list[WordTiming]:
    """Word timings from espeak's events: (sample, 1-based char position, length, type) tuples.

    Every word of the text gets one timing, starting at the first engine word event inside it.
    A token that espeak split into separate, non-overlapping words (Chinese characters) becomes
    one word per event. A word ends where the next word or the clause ends, less the pause there.
    """
    total = len(samples)
    words = sorted((max(0, min(s, total)), pos - 1, length) for s, pos, length, kind in events if kind == _EV_WORD)
    clause_ends = sorted(max(0, min(s, total)) for s, _, _, kind in events if kind == _EV_END)
    spans: list[tuple[int, int, int | None]] = []  # (char start, char end, start sample or None)
    for tok in re.finditer(r"\S+", text):
        inside = [(s, p, n) for s, p, n in words if tok.start() <= p < tok.end()]
        if not inside and not _has_alnum(tok.group()):
            continue  # punctuation on its own, not spoken
        spans.extend(_split_token(text, tok.start(), tok.end(), inside))
    starts = _fill_missing([s for _, _, s in spans], [e - b for b, e, _ in spans], total)
    loud, step = _frames(samples, rate)
    out: list[WordTiming] = []
    prev = 0
    for i, (b, e, _) in enumerate(spans):
        start = max(starts[i], prev)
        next_start = starts[i + 1] if i + 1 < len(starts) else total
        end = min(next_start, next((c for c in clause_ends if c > start), total))
        a, z = _trim(loud, step, start, max(start, end))
        out.append(WordTiming(_strip_punct(text[b:e]), a / rate, z / rate))
        prev = a
    return out


def _split_token(
    text: str, b: int, e: int, inside: list[tuple[int, int, int]]
) -> list[tuple[int, int, int | None]]:
    """One span per token, or one per engine word when espeak split the token into separate words."""
    if not inside:
        return [(b, e, None)]
    first: dict[int, tuple[int, int]] = {}  # char position -> (earliest sample, length)
    for s, p, n in inside:
        if p not in first or s < first[p][0]:
            first[p] = (s, n)
    pos = sorted(first)
    separate = len(pos) > 1 and all(
        p + first[p][1] <= q and first[p][0] <= first[q][0] for p, q in zip(pos, pos[1:], strict=False)
    )
    if not separate:
        return [(b, e, min(s for s, _, _ in inside))]
    cuts = [b, *pos[1:], e]
    parts = [(cuts[k], cuts[k + 1], first[pos[k]][0]) for k in range(len(pos))]
    return [part for part in parts if _has_alnum(text[part[0] : part[1]])]


def _fill_missing(starts: list[int | None], weights: list[int], total: int) -> list[int]:
    """Starts for words espeak gave no event, spread by length between their known neighbours."""
    out: list[int] = []
    i = 0
    while i < len(starts):
        known = starts[i]
        if known is not None:
            out.append(max(known, out[-1] if out else 0))
            i += 1
            continue
        j = i
        while j < len(starts) and starts[j] is None:
            j += 1
        lo = out[-1] if out else 0
        following = starts[j] if j < len(starts) else None  # the next known start (the loop stopped there)
        hi = max(lo, following if following is not None else total)
        shares = weights[i - 1 : j] if i > 0 else [0, *weights[i:j]]  # the previous word keeps its share
        unit = max(1, sum(shares))
        acc = shares[0]
        for k in range(i, j):
            out.append(lo + (hi - lo) * acc // unit)
            acc += weights[k]
        i = j
    return out


def estimate_timings(text: str, samples: np.ndarray, rate: int) -> list[WordTiming]:
    """Word timings spread over the speech in proportion to word length (no engine events)."""
    tokens = [_strip_punct(m.group()) for m in re.finditer(r"\S+", text) if _has_alnum(m.group())]
    if not tokens:
        return []
    loud, step = _frames(samples, rate)
    a, z = _trim(loud, step, 0, len(samples))
    weights = [len(t) for t in tokens]
    total_w = sum(weights)
    out: list[WordTiming] = []
    acc = 0
    for word, w in zip(tokens, weights, strict=True):
        start = a + (z - a) * acc / total_w
        acc += w
        out.append(WordTiming(word, start / rate, (a + (z - a) * acc / total_w) / rate))
    return out
