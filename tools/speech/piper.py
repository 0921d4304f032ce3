"""Offline neural speech with Piper: ``piper:<voice>`` (e.g. ``piper:en_US-lessac-medium``).

An optional extra (``pip install 'lessonforge[piper]'``): the ``piper-tts`` package runs a VITS
voice through onnxruntime and phonemizes with its own bundled espeak-ng, so it needs no service
and no GPU; a medium voice is a 63 MB ONNX file that speaks faster than real time on one core.

Voices are named as in the ``rhasspy/piper-voices`` repository, ``<lang>_<REGION>-<name>-<quality>``,
and are fetched from there on first use into the standard Hugging Face cache (``HF_HOME``,
``HF_HUB_CACHE``; ``HF_HUB_OFFLINE=1`` forbids downloads and the error names the missing files).
A voice can also be a path to a local ``.onnx`` file with its ``.onnx.json`` beside it. A
multi-speaker voice takes a speaker after ``#``: ``en_US-libritts_r-medium#12`` or a speaker name
from the voice's ``speaker_id_map``.

Word timings come from the voice's own phoneme durations: the model is loaded with its duration
tensor (``w_ceil``) exposed as an output (piper's ``include_alignments``, which needs the ``onnx``
package), every phoneme is given its samples, and the runs of phonemes between spaces and
punctuation are the spoken words. :func:`lessonforge.tools.speech.wordtiming.timings_from_spans` maps them onto the
text's words (``timing_source = "engine"``); a voice without alignments, or a text the phonemizer
reads differently in context, is aligned to the audio instead (``"aligned"``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from lessonforge.tools.base import ConfigError, Speech, SpeechBackend, SpeechError, Voice
from lessonforge.tools.hub import NotOnHub, hf_offline, hub_files, piper_voice_model
from lessonforge.tools.media.audio import check_audio, write_wav
from lessonforge.tools.registry import BackendOptions
from lessonforge.tools.speech.piper_voices import DEFAULT_VOICE, DEFAULT_VOICES, REPO, VoiceFiles, voice_files
from lessonforge.tools.speech.wordtiming import TimingSource, text_tokens, timings_from_spans

log = logging.getLogger(__name__)

_PAUSE_PHONEMES = frozenset(" ^$_,.;:!?¡¿—–…\"'()")  # not part of a spoken word


def _import_piper() -> Any:
    try:
        import piper
    except ImportError:
        raise ConfigError(
            "The piper speech backend needs the piper-tts package. Install it with "
            "`pip install 'lessonforge[piper]'`, or choose another voice backend, e.g. --speech espeak:en-us."
        ) from None
    return piper


class PiperSpeech(SpeechBackend):
    """Speech from a Piper voice, offline, with word timings from the voice's phoneme durations.

    ``model`` is the default voice (``en_US-lessac-medium`` when empty); ``length_scale`` stretches
    every phoneme (above 1 is slower); ``use_cuda`` runs onnxruntime on CUDA when it has that
    provider (default: when available).
    """

    local = True

    class Options(BackendOptions):
        """What ``piper:`` takes (see the class docstring)."""

        length_scale: float = 1.0
        use_cuda: bool | None = None

    def __init__(self, model: str = "", *, length_scale: float = 1.0, use_cuda: bool | None = None) -> None:
        self.model = (model or "").strip()
        self.name = f"piper:{self.model}"
        if isinstance(length_scale, bool) or not isinstance(length_scale, int | float) or not 0.25 <= length_scale <= 4:
            raise ConfigError(f"piper length_scale must be a number between 0.25 and 4, got {length_scale!r}.")
        self.length_scale = float(length_scale)
        self.use_cuda = use_cuda
        self.timing_source: TimingSource = "engine"
        self._voices: dict[str, Any] = {}
        self._load_lock = threading.Lock()
        self._synth_lock = threading.Lock()  # one synthesis at a time: onnxruntime already uses every core
        if self.model:  # a malformed name is a ConfigError before any work starts
            key, _ = _split_speaker(self.model)
            if not _is_path(key):
                voice_files(key)

    # ----------------------------------------------------------------- voices

    def default_voice(self, language: str) -> str:
        """A Piper voice for a BCP-47 tag: "en" -> en_US-lessac-medium, "en-GB" -> en_GB-alan-medium."""
        tag = (language or "").strip().lower().replace("_", "-")
        if self.model:
            own = _language_of(self.model)
            if tag in (own, own.split("-")[0]):
                return self.model
        for candidate in (tag, tag.split("-")[0]):
            if candidate in DEFAULT_VOICES:
                return DEFAULT_VOICES[candidate]
        known = ", ".join(sorted({k for k in DEFAULT_VOICES if "-" not in k}))
        raise ConfigError(
            f"No default Piper voice for language {language!r} (defaults exist for {known}). Name one from "
            f"https://huggingface.co/{REPO}, e.g. --voice nl_NL-mls-medium, or use --speech edge: or espeak:."
        )

    async def voices(self, language: str | None = None) -> list[Voice]:
        """The per-language default voices (the repository holds many more)."""
        want = (language or "").strip().lower().replace("_", "-")
        out = []
        for key in sorted(set(DEFAULT_VOICES.values())):
            lang = _language_of(key)
            if not want or lang == want or lang.startswith(want + "-"):
                out.append(Voice(name=key, language=lang, backend="piper"))
        return out

    def downloads(self, voice: str = "") -> list[Any]:
        """What speaking with ``voice`` fetches from the Hub on first use (nothing for a local file)."""

        key, _ = _split_speaker((voice or "").strip() or self.model or DEFAULT_VOICE)
        return [] if _is_path(key) else [piper_voice_model(key)]

    def prepare(self, voice: str = "") -> None:
        """Fetch and load ``voice`` now (ConfigError naming the fix when it cannot be), so a lesson
        does not fail at its first narration."""
        key, speaker = _split_speaker((voice or "").strip() or self.model or DEFAULT_VOICE)
        _speaker_id(self._load(key), key, speaker)

    def _load(self, voice: str) -> Any:
        with self._load_lock:
            if voice in self._voices:
                return self._voices[voice]
            piper = _import_piper()
            onnx_path, config_path = self._files(voice)
            _quiet_onnxruntime()
            try:
                loaded = piper.PiperVoice.load(
                    onnx_path, config_path=config_path, use_cuda=self._cuda(), include_alignments=_has_onnx()
                )
            except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
                raise ConfigError(
                    f"The Piper voice {voice!r} could not be loaded ({type(err).__name__}: {err}). "
                    "Delete its files from the cache and run again, or choose another voice."
                ) from None
            except Exception as err:  # onnxruntime raises its own exception types for a broken model
                raise ConfigError(
                    f"The Piper voice {voice!r} is not a valid ONNX voice ({err}). Download it again "
                    f"(`lessonforge models pull {REPO}`) or choose another voice."
                ) from None
            self._voices[voice] = loaded
            return loaded

    def _cuda(self) -> bool:
        if self.use_cuda is not None:
            return self.use_cuda
        try:
            import onnxruntime
        except ImportError:
            return False
        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()

    @staticmethod
    def _files(voice: str) -> tuple[Path, Path]:
        if _is_path(voice):
            onnx_path = Path(voice).expanduser()
            config_path = Path(f"{onnx_path}.json")
            for path in (onnx_path, config_path):
                if not path.is_file():
                    raise ConfigError(
                        f"Piper voice file {path} does not exist. A local voice is an .onnx file with its "
                        ".onnx.json config beside it."
                    )
            return onnx_path, config_path
        return _download(voice_files(voice))

    # ----------------------------------------------------------------- speaking

    async def speak(self, text: str, voice: str, out: Path) -> Speech:
        """Speak ``text`` into the WAV file ``out`` (atomically) and return its word timings."""
        if not text or not text.strip():
            raise ConfigError("Nothing to speak: the narration text is empty. Write narration for the scene.")
        chosen = (voice or "").strip() or self.model or DEFAULT_VOICE
        return await asyncio.to_thread(self._speak_sync, text, chosen, Path(out))

    def _speak_sync(self, text: str, voice: str, out: Path) -> Speech:
        key, speaker = _split_speaker(voice)
        loaded = self._load(key)
        piper = _import_piper()
        config = piper.SynthesisConfig(speaker_id=_speaker_id(loaded, key, speaker), length_scale=self.length_scale)
        with self._synth_lock:
            try:
                chunks = list(loaded.synthesize(text, syn_config=config, include_alignments=True))
            except (RuntimeError, ValueError) as err:
                raise SpeechError(f"Piper failed to speak with voice {voice!r}: {err}") from None
            counts = [_count_words(loaded.phonemize(token)) for token in text_tokens(text)]
        if not chunks:
            raise SpeechError(f"Piper produced no audio for voice {voice!r}. Check that the text has words to speak.")
        rate = int(chunks[0].sample_rate)
        audio = np.concatenate([np.asarray(c.audio_float_array, dtype=np.float32).reshape(-1) for c in chunks])
        if audio.size == 0 or not np.all(np.isfinite(audio)) or float(np.max(np.abs(audio))) < 1e-4:
            raise SpeechError(f"Piper produced silent or invalid audio for voice {voice!r}. Try another voice.")
        pcm = np.clip(np.round(audio * 32767.0), -32767, 32767).astype("<i2")
        write_wav(out, pcm.tobytes(), rate)
        duration = check_audio(out)
        spans = _word_spans(chunks, rate)
        if spans is None:
            from lessonforge.tools.speech.align import align_words

            words, source = align_words(text, pcm, rate), "aligned"
        else:
            words, source = timings_from_spans(text, counts, spans, pcm, rate)
        self.timing_source = source
        return Speech(path=out, duration=duration, words=tuple(words), voice=voice, backend=self.name)


# --------------------------------------------------------------------------- helpers


def _is_path(voice: str) -> bool:
    return voice.endswith(".onnx") or "/" in voice or "\\" in voice


def _language_of(voice: str) -> str:
    """"en_US-lessac-medium" -> "en-us"; a path's file name is read the same way."""
    name = Path(voice.split("#", 1)[0]).name.removesuffix(".onnx")
    return name.split("-", 1)[0].replace("_", "-").lower()


def _split_speaker(voice: str) -> tuple[str, str]:
    key, _, speaker = voice.strip().partition("#")
    if not key:
        raise ConfigError(f"Empty Piper voice in {voice!r}. Write e.g. {DEFAULT_VOICE} or en_US-libritts_r-medium#12.")
    return key, speaker.strip()


def _speaker_id(loaded: Any, voice: str, speaker: str) -> int | None:
    config = loaded.config
    if not speaker:
        return None
    if config.num_speakers <= 1:
        raise ConfigError(f"The Piper voice {voice} has one speaker; drop '#{speaker}' from the voice name.")
    if speaker in config.speaker_id_map:
        return int(config.speaker_id_map[speaker])
    if speaker.isdigit() and int(speaker) < config.num_speakers:
        return int(speaker)
    names = ", ".join(list(config.speaker_id_map)[:8])
    raise ConfigError(
        f"The Piper voice {voice} has no speaker {speaker!r}: use a number below {config.num_speakers}"
        + (f" or a name such as {names}." if names else ".")
    )


def _word_runs(phonemes: list[str]) -> list[tuple[int, int]]:
    """(first, last+1) index of each run of word phonemes."""
    runs, start = [], None
    for i, ph in enumerate(phonemes):
        if ph in _PAUSE_PHONEMES or not ph.strip():
            if start is not None:
                runs.append((start, i))
                start = None
        elif start is None:
            start = i
    if start is not None:
        runs.append((start, len(phonemes)))
    return runs


def _count_words(sentences: list[list[str]]) -> int:
    return sum(len(_word_runs(list(s))) for s in sentences)


def _word_spans(chunks: list[Any], rate: int) -> list[tuple[float, float]] | None:
    """Spoken-word spans (seconds) from every chunk's phoneme alignments; None when a chunk has none."""
    spans: list[tuple[float, float]] = []
    offset = 0
    for chunk in chunks:
        alignments = chunk.phoneme_alignments
        n_audio = int(np.asarray(chunk.audio_float_array).size)
        if not alignments:
            return None
        phonemes = [a.phoneme for a in alignments]
        sizes = np.array([max(0, int(a.num_samples)) for a in alignments], dtype=np.float64)
        total = float(sizes.sum())
        if total <= 0:
            return None
        if abs(total - n_audio) > 0.02 * n_audio + 512:  # the durations must describe this audio
            log.debug("piper alignment covers %d of %d samples; aligning to the audio instead", total, n_audio)
            return None
        edges = np.concatenate([[0.0], np.cumsum(sizes)]) * (n_audio / total)
        for a, b in _word_runs(phonemes):
            spans.append((float(offset + edges[a]) / rate, float(offset + edges[b]) / rate))
        offset += n_audio
    return spans


def _quiet_onnxruntime() -> None:
    """onnxruntime logs warnings to stderr from C++; keep them to errors (library code never prints)."""
    try:
        import onnxruntime
    except ImportError:
        return
    onnxruntime.set_default_logger_severity(3)


def _has_onnx() -> bool:
    try:
        import onnx  # noqa: F401
    except ImportError:
        log.warning("the onnx package is missing, so Piper word times are aligned to the audio; "
                    "`pip install 'lessonforge[piper]'` installs it")
        return False
    return True


def _download(files: VoiceFiles) -> tuple[Path, Path]:
    """The voice's files from the Hub cache, downloading what is missing unless HF_HUB_OFFLINE is set."""

    try:
        found, missing = hub_files(REPO, (files.onnx, files.config), f"piper:{files.key}")
    except NotOnHub:
        raise ConfigError(
            f"There is no Piper voice {files.key!r} in {REPO}. See https://huggingface.co/{REPO} for the names."
        ) from None
    if missing:
        why = "HF_HUB_OFFLINE is set" if hf_offline() else "the Hugging Face Hub cannot be reached"
        raise ConfigError(
            f"The Piper voice {files.key} is not in the model cache and {why}: missing {REPO}/{missing[0]} "
            f"(about {files.size_mb} MB with its config). Run `lessonforge models pull piper:{files.key}` "
            "while online, or choose another voice backend, e.g. --speech espeak:en-us."
        )
    return found[files.onnx], found[files.config]


__all__ = ["PiperSpeech", "DEFAULT_VOICE", "DEFAULT_VOICES", "voice_files", "REPO"]
