"""Kokoro-82M through the kokoro package: a tiny random-weight model built from a real config's keys.

The model is laid out as a Hugging Face cache snapshot of hexgrad/Kokoro-82M (config.json, the
weights .pth and voices/<voice>.pt) and loaded through the backend's own download path with
HF_HUB_OFFLINE=1, so everything runs offline. Its random weights speak noise, but the durations it
predicts for every phoneme are real model output, and the word timings must agree with them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from lessonforge.tools.base import ConfigError, SpeechError, SpeechSynth
from lessonforge.tools.speech.kokoro import (
    DEFAULT_REPO,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    KokoroSpeech,
    _sentences,
    _split_long,
    _to_pcm,
    locate_words,
    phoneme_words,
)
from lessonforge.tools.speech.wordtiming import bare
from tests.tiny_kokoro import VOCAB, write_kokoro

# Checked without importing kokoro, so collecting the tests stays fast (it imports spaCy and transformers).
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("kokoro") is None,
    reason="the kokoro extra is not installed: pip install 'lessonforge[kokoro]'",
)

SHA = "0123456789abcdef0123456789abcdef01234567"

def _write_hub(root: Path, repo: str = DEFAULT_REPO, voices: tuple[str, ...] = ("af_heart",)) -> Path:
    """A Hugging Face cache holding ``repo`` as huggingface_hub lays it out: refs/main and a snapshot."""
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(SHA)
    write_kokoro(repo_dir / "snapshots" / SHA, voices)
    return root


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Path:
    return _write_hub(tmp_path_factory.mktemp("hub"), voices=("af_heart", "ff_siwis"))


@pytest.fixture
def offline_hub(hub: Path, monkeypatch) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)  # the model's random init
    return hub


@pytest.fixture
def forward_calls(monkeypatch) -> list[tuple[str, np.ndarray, int]]:
    """Every KModel call as (phonemes, frames per input id, samples)."""
    import kokoro

    calls: list[tuple[str, np.ndarray, int]] = []
    original = kokoro.KModel.forward

    def spy(self, phonemes, ref_s, speed=1, return_output=False):
        out = original(self, phonemes, ref_s, speed, return_output=True)
        calls.append((phonemes, out.pred_dur.numpy().reshape(-1).copy(), int(out.audio.numel())))
        return out if return_output else out.audio

    monkeypatch.setattr(kokoro.KModel, "forward", spy)
    return calls


def _expected_spans(calls: list[tuple[str, np.ndarray, int]]) -> list[tuple[float, float]]:
    """Spoken words straight from the durations: split at spaces, punctuation at a word's edges excluded."""
    spans = []
    offset = 0
    for phonemes, frames, samples in calls:
        symbols = [ch for ch in phonemes if ch in VOCAB]
        assert len(frames) == len(symbols) + 2
        starts = np.concatenate([[0], np.cumsum(frames)])  # starts[k]: frames before input id k
        word: list[int] = []
        for k, ch in enumerate(symbols + [" "], start=1):
            if ch == " ":
                if word:
                    spans.append(
                        ((offset + starts[word[0]] * 600) / 24000, (offset + starts[word[-1] + 1] * 600) / 24000)
                    )
                word = []
            elif ch not in ";:,.!?—…\"()“”":
                word.append(k)
        offset += samples
    return spans


def _words(text: str) -> list[str]:
    """The words a caption shows: every token with a letter or digit, without its punctuation."""
    return [bare(t) for t in text.split() if any(ch.isalnum() for ch in t)]


def _assert_well_formed(speech, text: str) -> None:
    assert [w.word for w in speech.words] == _words(text)
    for w, nxt in zip(speech.words, speech.words[1:]):
        assert w.start <= w.end <= nxt.start
    assert speech.words[0].start >= 0 and speech.words[-1].end <= speech.duration + 1e-9


async def test_speaks_with_word_timings_from_the_predicted_durations(offline_hub, forward_calls, tmp_path) -> None:
    tts = KokoroSpeech()
    assert isinstance(tts, SpeechSynth) and tts.name == "kokoro:hexgrad/Kokoro-82M"
    text = "Plants turn sunlight, water and air into sugar."
    speech = await tts.speak(text, "", tmp_path / "s.wav")

    assert speech.path == tmp_path / "s.wav" and speech.voice == "af_heart" and speech.backend == tts.name
    with wave.open(str(speech.path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2)
        assert w.getnframes() == sum(int(f.sum()) for _, f, _ in forward_calls) * SAMPLES_PER_FRAME
    assert len(forward_calls) == 1
    assert speech.duration == pytest.approx(sum(int(f.sum()) for _, f, _ in forward_calls) * 600 / 24000)

    assert tts.timing_source == "engine"
    _assert_well_formed(speech, text)
    expected = _expected_spans(forward_calls)
    assert len(expected) == 8
    for w, (start, end) in zip(speech.words, expected, strict=True):
        assert w.start == pytest.approx(start, abs=1e-3) and w.end == pytest.approx(end, abs=1e-3)
    # The first word starts after the leading boundary token's frames; the comma's pause is no word's.
    frames = forward_calls[0][1]
    assert speech.words[0].start == pytest.approx(frames[0] * 600 / 24000, abs=1e-3)
    assert speech.words[3].start > speech.words[2].end


async def test_a_number_is_one_timed_word(offline_hub, forward_calls, tmp_path) -> None:
    """'1990' is read as two spoken words; the caption still gets one timing covering both."""
    tts = KokoroSpeech()
    text = "In 1990 the lab grew."
    speech = await tts.speak(text, "af_heart", tmp_path / "n.wav")
    assert tts.timing_source == "engine"
    _assert_well_formed(speech, text)
    expected = _expected_spans(forward_calls)
    assert len(expected) == len(text.split()) + 1  # "nineteen ninety"
    year = speech.words[1]
    assert year.start == pytest.approx(expected[1][0], abs=1e-3) and year.end == pytest.approx(expected[2][1], abs=1e-3)


@pytest.mark.slow
async def test_long_narration_is_spoken_in_chunks_joined_sample_exactly(offline_hub, forward_calls, tmp_path) -> None:
    tts = KokoroSpeech()
    text = (
        "Water evaporates from the sea. It rises and cools into clouds. The clouds drift over land, "
        "where the droplets grow heavy and fall as rain; rivers carry it back to the sea again."
    )
    speech = await tts.speak(text, "af_heart", tmp_path / "long.wav")
    assert len(forward_calls) >= 2
    assert all(len(phonemes) <= 126 for phonemes, _, _ in forward_calls)
    total = sum(samples for _, _, samples in forward_calls)
    assert speech.duration == pytest.approx(total / SAMPLE_RATE)
    assert total == sum(int(f.sum()) for _, f, _ in forward_calls) * SAMPLES_PER_FRAME
    assert tts.timing_source == "engine"
    _assert_well_formed(speech, text)
    expected = _expected_spans(forward_calls)
    assert speech.words[0].start == pytest.approx(expected[0][0], abs=1e-3)
    assert speech.words[-1].end == pytest.approx(expected[-1][1], abs=1e-3)
    # Each chunk starts with the boundary token's frames: the first word of the second chunk starts after them.
    first_of_second = next(w for w in speech.words if w.start >= forward_calls[0][2] / SAMPLE_RATE)
    assert first_of_second.start == pytest.approx(
        (forward_calls[0][2] + forward_calls[1][1][0] * 600) / 24000, abs=1e-3
    )


async def test_words_espeak_runs_together_are_timed_apart(offline_hub, forward_calls, tmp_path) -> None:
    """eSpeak NG says "from the" as one word ("fɹʌmðə"); each text word still gets its own part of it."""
    tts = KokoroSpeech()
    text = "It came from the sea."
    speech = await tts.speak(text, "af_heart", tmp_path / "m.wav")
    phonemes = forward_calls[0][0]
    assert "fɹʌmðə" in phonemes.split()  # the phonemizer did run them together
    assert tts.timing_source == "engine"
    _assert_well_formed(speech, text)
    merged = _expected_spans(forward_calls)[2]
    from_, the = speech.words[2:4]
    assert from_.start == pytest.approx(merged[0], abs=1e-3) and the.end == pytest.approx(merged[1], abs=1e-3)
    assert from_.start < from_.end == the.start < the.end
    # "from" ends where its last symbol, m, ends in the model's durations
    edges = np.concatenate([[0], np.cumsum(forward_calls[0][1])])
    before = sum(1 for ch in phonemes[: phonemes.index("fɹʌmðə")] if ch in VOCAB)  # input ids before f
    assert from_.start == pytest.approx(edges[before + 1] * 600 / 24000, abs=1e-3)
    assert from_.end == pytest.approx(edges[before + 5] * 600 / 24000, abs=1e-3)  # after f ɹ ʌ m


async def test_loading_and_speaking_print_nothing(offline_hub, tmp_path, capfd, recwarn, caplog, monkeypatch) -> None:
    import threading

    from lessonforge.tools.speech import kokoro as speech_kokoro

    monkeypatch.setattr(speech_kokoro, "_english_warned", threading.Event())
    monkeypatch.setattr(speech_kokoro, "_spacy_english", lambda: False)
    await KokoroSpeech().speak("Quiet please.", "af_heart", tmp_path / "q.wav")
    await KokoroSpeech().speak("Quiet again.", "af_heart", tmp_path / "r.wav")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert not [w for w in recwarn if "weight_norm" in str(w.message) or "dropout" in str(w.message)]
    # English without spaCy's model falls back to eSpeak NG phonemes, and says so once, in the log
    fallbacks = [r for r in caplog.records if "en_core_web_sm" in r.getMessage()]
    assert len(fallbacks) == 1 and fallbacks[0].levelname == "WARNING"


@pytest.mark.slow
async def test_with_spacys_english_model_misaki_reads_english(offline_hub, forward_calls, tmp_path,
                                                               monkeypatch) -> None:
    """misaki's lexicon G2P runs when spaCy's en_core_web_sm is installed (stood in for by a blank pipeline)."""
    spacy = pytest.importorskip("spacy")
    real = spacy.util.is_package
    monkeypatch.setattr(spacy.util, "is_package", lambda name: name == "en_core_web_sm" or real(name))
    monkeypatch.setattr(spacy, "load", lambda name, **kwargs: spacy.blank("en"))
    tts = KokoroSpeech()
    text = "Plants turn sunlight into sugar."
    speech = await tts.speak(text, "af_heart", tmp_path / "en.wav")
    assert "sˈʌnlˌIt" in forward_calls[0][0]  # misaki's lexicon (eSpeak NG would say sˈʌnlIt)
    assert tts.timing_source == "engine"
    _assert_well_formed(speech, text)


async def test_french_voice_uses_espeak_phonemes(offline_hub, forward_calls, tmp_path) -> None:
    tts = KokoroSpeech()
    assert tts.default_voice("fr-FR") == "ff_siwis"
    text = "Bonjour à tous, ça va bien ?"
    speech = await tts.speak(text, tts.default_voice("fr"), tmp_path / "fr.wav")
    assert speech.voice == "ff_siwis"
    assert "ʒ" in forward_calls[0][0]  # "bɔ̃ʒˈuʁ": French phonemes, not English ones
    _assert_well_formed(speech, text)


async def test_a_local_folder_and_a_voice_file_work_without_the_hub(tmp_path, forward_calls, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    folder = write_kokoro(tmp_path / "kokoro", voices=("bf_emma",))
    custom = tmp_path / "bm_custom.pt"
    torch.save(0.3 * torch.randn(510, 1, 256), custom)
    torch.manual_seed(0)
    tts = KokoroSpeech(str(folder))
    assert tts.name == f"kokoro:{folder}"
    assert [v.name for v in await tts.voices("en")] == ["bf_emma"] and tts.default_voice("en-GB") == "bf_emma"
    speech = await tts.speak("Tea is ready.", "bf_emma", tmp_path / "a.wav")
    assert speech.voice == "bf_emma" and speech.duration > 0
    speech = await tts.speak("Tea is ready.", str(custom), tmp_path / "b.wav")
    assert speech.voice == str(custom)
    with pytest.raises(ConfigError, match=r"voices/am_adam\.pt"):
        await tts.speak("Tea is ready.", "am_adam", tmp_path / "c.wav")


async def test_missing_files_offline_name_each_file_and_the_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as err:
        await KokoroSpeech().speak("Hello there.", "af_bella", tmp_path / "x.wav")
    message = str(err.value)
    for name in ("config.json", "kokoro-v1_0.pth", "voices/af_bella.pt", "hexgrad/Kokoro-82M", "HF_HUB_OFFLINE",
                 "lessonforge models pull hexgrad/Kokoro-82M"):
        assert name in message
    assert not (tmp_path / "x.wav").exists()


async def test_a_voice_missing_from_the_cache_is_named(offline_hub, tmp_path) -> None:
    tts = KokoroSpeech()
    await tts.speak("Hi.", "af_heart", tmp_path / "ok.wav")
    with pytest.raises(ConfigError, match=r"lacks voices/am_michael\.pt of hexgrad/Kokoro-82M") as err:
        await tts.speak("Hi.", "am_michael", tmp_path / "x.wav")
    assert "config.json" not in str(err.value)  # the model is cached; only the voice is missing


async def test_bad_input_is_a_config_error_before_any_work(tmp_path) -> None:
    tts = KokoroSpeech()
    with pytest.raises(ConfigError, match="empty"):
        await tts.speak("  \n", "af_heart", tmp_path / "x.wav")
    with pytest.raises(ConfigError, match="Unknown Kokoro voice 'af_nobody'.*af_heart"):
        await tts.speak("Hello.", "af_nobody", tmp_path / "x.wav")
    with pytest.raises(ConfigError, match="not a Kokoro voice"):
        await tts.speak("Hello.", "en-US-AriaNeural", tmp_path / "x.wav")
    with pytest.raises(ConfigError, match="Japanese.*edge:"):
        await tts.speak("Hello.", "jf_alpha", tmp_path / "x.wav")
    with pytest.raises(ConfigError, match="does not exist"):
        await tts.speak("Hello.", str(tmp_path / "af_gone.pt"), tmp_path / "x.wav")
    with pytest.raises(ConfigError, match="speed"):
        KokoroSpeech(speed=3)
    with pytest.raises(ConfigError, match="device"):
        KokoroSpeech(device="tpu")
    with pytest.raises(ConfigError, match="neither a folder nor a Hugging Face repo id"):
        KokoroSpeech(str(tmp_path / "no-such-folder"))
    with pytest.raises(ConfigError, match="weights option"):
        KokoroSpeech("someone/kokoro-finetune")


def test_default_voices_and_the_voice_list() -> None:
    tts = KokoroSpeech()
    assert tts.default_voice("en") == "af_heart" and tts.default_voice("en-US") == "af_heart"
    assert tts.default_voice("en_GB") == "bf_emma"
    assert [tts.default_voice(t) for t in ("fr", "es", "it", "pt-BR", "pt", "hi")] == [
        "ff_siwis", "ef_dora", "if_sara", "pf_dora", "pf_dora", "hf_alpha",
    ]
    with pytest.raises(ConfigError, match=r"no voice for language 'de'.*edge:.*espeak:"):
        tts.default_voice("de")
    english = asyncio.run(tts.voices("en"))
    assert {v.language for v in english} == {"en-us", "en-gb"} and len(english) == 28
    assert next(v for v in english if v.name == "am_michael").gender == "male"
    assert all(v.backend == "kokoro" for v in asyncio.run(tts.voices()))
    assert not any(v.name.startswith(("j", "z")) for v in asyncio.run(tts.voices()))  # no Japanese/Chinese G2P here
    assert [v.name for v in asyncio.run(tts.voices("fr"))] == ["ff_siwis"]


def test_without_the_package_the_error_says_how_to_install(monkeypatch, tmp_path) -> None:
    from lessonforge.tools.speech.kokoro import _import_kokoro

    monkeypatch.setitem(sys.modules, "kokoro", None)
    with pytest.raises(ConfigError, match=r"pip install 'lessonforge\[kokoro\]'"):
        _import_kokoro()


def test_phoneme_words_follow_the_models_input_ids() -> None:
    vocab = {" ": 16, ",": 3, ".": 4, "a": 43, "b": 44, "ˈ": 156}
    # ids: a=1 b=2 ,=3 ' '=4 ˈ=5 a=6 .=7 ; "x" is not in the vocab and makes no input id
    assert phoneme_words("ab, ˈxa.", vocab) == [(1, 2), (5, 6)]
    assert phoneme_words("— … ,", vocab) == []
    assert phoneme_words("a  b", vocab) == [(1, 1), (4, 4)]


def test_locate_words_matches_each_tokens_phonemes_onto_the_sentence() -> None:
    vocab = {ch: i for i, ch in enumerate(" .,ˈabcdefghijklmnopqrstuvwxyzðəʌɹɪ", start=1)}
    sentence = "ɪt kˈAm fɹʌmðə sˈi."
    times = [None if ch not in vocab else (i * 0.1, i * 0.1 + 0.1) for i, ch in enumerate(sentence)]
    alone = ["ɪt", "kˈAm", "fɹʌm", "ði", "sˈi."]  # "the" alone is "ði": its vowel differs in context
    counts, spans = locate_words(sentence, times, alone, vocab)
    assert counts == [1, 1, 1, 1, 1]
    start = sentence.index("f")
    assert spans[2] == pytest.approx((start * 0.1, (start + 4) * 0.1))  # f ɹ ʌ m
    assert spans[3] == pytest.approx(((start + 4) * 0.1, (start + 6) * 0.1))  # ð, and ə as its neighbour
    # "A" is not in this vocabulary: "kˈAm" keeps k..m; "1990" read as two words counts two
    assert spans[1] == pytest.approx((sentence.index("k") * 0.1, (sentence.index("m") + 1) * 0.1))
    counts, spans = locate_words("nˈIntin nˈInti", [(i, i + 1.0) for i in range(14)], ["nˈIntin nˈInti"], vocab)
    assert counts == [2] and spans == [(0, 7.0), (8, 14.0)]


def test_sentences_and_long_phoneme_strings_are_cut_where_speech_pauses() -> None:
    assert _sentences("Dr. Smith came.\nHe said: “Stop!” Then left") == [
        ["Dr."], ["Smith", "came."], ["He", "said:", "“Stop!”"], ["Then", "left"],
    ]
    clause = "ðə klˈWdz dɹˈɪft ˌOvəɹ lˈænd, wɛɹ ðə dɹˈɑplᵻts ɡɹˈO hˈɛvi; ænd fˈɔl æz ɹˈAn"
    pieces = _split_long(clause, 60)
    assert all(len(p) <= 60 for p in pieces) and " ".join(pieces) == clause
    assert pieces == [clause[: clause.index(";") + 1], clause[clause.index(";") + 2 :]]  # the strongest mark that fits
    assert _split_long("ab cd ef", 4) == ["ab", "cd", "ef"]
    assert _split_long("abcdefgh", 3) == ["abc", "def", "gh"]  # one word longer than a chunk


def test_nan_or_silent_audio_is_rejected() -> None:
    with pytest.raises(SpeechError, match="invalid audio"):
        _to_pcm(np.array([0.1, np.nan], dtype=np.float32), "af_heart")
    with pytest.raises(SpeechError, match="silent"):
        _to_pcm(np.zeros(2400, dtype=np.float32), "af_heart")
    assert _to_pcm(np.array([2.0, -2.0, 0.5], dtype=np.float32), "af_heart").tolist() == [32767, -32767, 16384]


def test_first_use_fetches_the_model_and_only_the_voice_it_needs(fake_hub, tmp_path):
    from lessonforge.tools import hub as models

    folder = write_kokoro(tmp_path / "repo", voices=("af_heart", "bf_emma"))
    fake_hub.repos[DEFAULT_REPO] = {
        str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }
    backend = KokoroSpeech()
    [download] = models.plan_downloads(backend.downloads("bf_emma"))
    wanted = ("config.json", "kokoro-v1_0.pth", "voices/bf_emma.pt")
    assert download.size == sum(len(fake_hub.repos[DEFAULT_REPO][name]) for name in wanted)
    models.pull([download.info])
    backend.prepare("bf_emma")  # loads from the cache now
    fetched = {path.rsplit("/", 1)[-1] for method, path in fake_hub.requests if method == "GET" and "/resolve/" in path}
    assert fetched == {"config.json", "kokoro-v1_0.pth", "bf_emma.pt"}  # not the voices it does not speak
    assert models.plan_downloads(backend.downloads("bf_emma")) == []
