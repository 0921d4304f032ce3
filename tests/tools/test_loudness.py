"""EBU R128 loudness normalisation (two-pass loudnorm), checked with ffmpeg's separate ebur128 meter."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest

from lessonforge.tools.base import RenderError
from lessonforge.tools.media.loudness import measure, measure_loudness, normalize_loudness

RATE = 24000


def write(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes())
    return path


def read(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64), w.getframerate()


def speechlike(seconds: float, peak: float, seed: int = 1) -> np.ndarray:
    """Syllable-like bursts of harmonics with pauses: a crest factor like real speech's."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.random()), 0, None) ** 2
    pauses = (np.sin(2 * np.pi * 0.35 * t) > -0.6).astype(float)
    x = voice * syllables * pauses + 0.02 * rng.standard_normal(len(t)) * syllables
    return x / np.abs(x).max() * peak


@pytest.fixture(scope="module")
def quiet_and_loud(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("loudness")
    quiet = write(folder / "quiet.wav", speechlike(8.0, peak=900))  # about -45 LUFS
    loud = write(folder / "loud.wav", speechlike(8.0, peak=32767, seed=2))  # peaks at full scale
    return quiet, loud


def test_quiet_and_loud_narration_both_end_within_one_lu_of_minus_16(quiet_and_loud, tmp_path):
    quiet, loud = quiet_and_loud
    before = [measure_loudness(quiet), measure_loudness(loud)]
    assert before[0] < -35 and before[1] > -22
    for src in (quiet, loud):
        dst = tmp_path / f"{src.stem}.norm.wav"
        report = normalize_loudness(src, dst)
        after = measure(dst)  # an independent meter: ffmpeg's ebur128, not loudnorm's own report
        assert after.integrated == pytest.approx(-16.0, abs=1.0), (src.name, report)
        assert after.true_peak <= -1.5 + 0.1  # no clipping: true peak held under the limit
        assert report.input_i == pytest.approx(measure_loudness(src), abs=0.5)
        assert report.output_i == pytest.approx(-16.0, abs=1.0)
        assert report.normalization_type in ("linear", "dynamic") and report.passes >= 2
        x, rate = read(dst)
        y, _ = read(src)
        assert rate == RATE and len(x) == len(y)  # same rate and length: narration timings stay valid
        assert np.abs(x).max() < 32767


def test_a_plain_gain_is_used_when_peaks_allow_it(tmp_path):
    t = np.arange(5 * RATE) / RATE
    tone = 2000 * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))  # low crest factor
    src = write(tmp_path / "tone.wav", tone)
    report = normalize_loudness(src, tmp_path / "tone.norm.wav", target_lufs=-20.0)
    assert report.normalization_type == "linear" and report.passes == 2
    assert measure_loudness(tmp_path / "tone.norm.wav") == pytest.approx(-20.0, abs=0.5)
    out, _ = read(tmp_path / "tone.norm.wav")
    middle = slice(RATE, 4 * RATE)
    ratio = np.abs(out[middle]).max() / np.abs(tone[middle]).max()
    gain = 10 ** ((-20.0 - report.input_i) / 20)
    assert ratio == pytest.approx(gain, rel=0.05)  # one gain for the whole file: dynamics untouched
    assert np.corrcoef(out[middle], tone[middle])[0, 1] > 0.999


def test_silence_is_copied_unchanged_and_reported_as_silent(tmp_path):
    src = write(tmp_path / "silence.wav", np.zeros(3 * RATE))
    dst = tmp_path / "silence.norm.wav"
    report = normalize_loudness(src, dst)
    assert report.normalization_type == "silent" and report.passes == 1
    assert report.output_i == -math.inf and report.input_i == -math.inf
    assert dst.read_bytes() == src.read_bytes()
    assert measure_loudness(dst) == -math.inf


def test_normalising_in_place_replaces_the_file_atomically(quiet_and_loud, tmp_path):
    src = tmp_path / "inplace.wav"
    src.write_bytes(quiet_and_loud[0].read_bytes())
    normalize_loudness(src, src)
    assert measure_loudness(src) == pytest.approx(-16.0, abs=1.0)
    assert [p.name for p in tmp_path.iterdir()] == ["inplace.wav"]  # no temporary file left


def test_bad_inputs_are_clear_render_errors(tmp_path):
    with pytest.raises(RenderError, match="does not exist"):
        normalize_loudness(tmp_path / "missing.wav", tmp_path / "out.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wave file at all")
    with pytest.raises(RenderError, match="not a readable PCM WAV"):
        normalize_loudness(junk, tmp_path / "out.wav")
    with pytest.raises(RenderError, match="target_lufs"):
        normalize_loudness(junk, tmp_path / "out.wav", target_lufs=3.0)
    with pytest.raises(RenderError, match="does not exist"):
        measure(tmp_path / "missing.wav")
    assert not (tmp_path / "out.wav").exists()
