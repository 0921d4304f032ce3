"""Audio helpers: WAV writing, decoding through ffmpeg, and rejection of damaged files."""

from __future__ import annotations

import math
import struct
import subprocess
import wave
from pathlib import Path

import pytest

from lessonforge.tools.base import RenderError, SpeechError
from lessonforge.tools.media import audio


def _tone(seconds: float, rate: int, freq: float = 440.0) -> bytes:
    n = int(seconds * rate)
    return struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))


def test_write_wav_round_trip(tmp_path: Path) -> None:
    out = audio.write_wav(tmp_path / "a.wav", _tone(0.5, 16000), 16000)
    assert audio.wav_duration(out) == pytest.approx(0.5)
    assert audio.check_audio(out) == pytest.approx(0.5)
    pcm, rate = audio.read_wav_pcm(out)
    assert rate == 16000 and len(pcm) == 2 * 8000
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temporary file left behind


def test_to_wav_decodes_mp3_to_mono_pcm(tmp_path: Path) -> None:
    src = audio.write_wav(tmp_path / "src.wav", _tone(1.0, 22050), 22050)
    mp3 = tmp_path / "src.mp3"
    subprocess.run(
        [audio.ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(src), "-ac", "2", "-b:a", "64k", str(mp3)],
        check=True,
    )
    out = audio.to_wav(mp3, tmp_path / "out.wav", sample_rate=24000)
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
    assert audio.check_audio(out) == pytest.approx(1.0, abs=0.08)


@pytest.mark.parametrize("content", [b"", b"this is not audio at all" * 40])
def test_to_wav_rejects_empty_or_undecodable_input(tmp_path: Path, content: bytes) -> None:
    src = tmp_path / "bad.mp3"
    src.write_bytes(content)
    with pytest.raises(SpeechError, match="bad.mp3"):
        audio.to_wav(src, tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.mp3"]


def test_check_audio_rejects_missing_empty_truncated_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(SpeechError, match="does not exist"):
        audio.check_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(SpeechError, match="0 bytes"):
        audio.check_audio(empty)
    good = audio.write_wav(tmp_path / "good.wav", _tone(0.5, 16000), 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[:4000])  # header still claims 0.5 s of samples
    with pytest.raises(SpeechError, match="truncated"):
        audio.check_audio(cut)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFX" + b"\x00" * 100)
    with pytest.raises(SpeechError, match="cannot be decoded"):
        audio.check_audio(garbage)
    silent = audio.write_wav(tmp_path / "nothing.wav", b"", 16000)
    with pytest.raises(SpeechError, match="no samples"):
        audio.check_audio(silent)


def test_ffmpeg_exe_falls_back_to_path_and_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import imageio_ffmpeg

    def missing() -> str:
        raise RuntimeError("no bundled binary")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", missing)
    monkeypatch.setattr(audio.shutil, "which", lambda name: "/usr/bin/ffmpeg" if name == "ffmpeg" else None)
    assert audio.ffmpeg_exe() == "/usr/bin/ffmpeg"
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    with pytest.raises(RenderError, match="imageio-ffmpeg"):
        audio.ffmpeg_exe()


def test_tempo_changes_length_not_pitch(tmp_path):
    import numpy as np

    from lessonforge.tools.media.audio import read_wav_pcm, to_wav, wav_duration, write_wav

    rate = 24000
    t = np.arange(rate * 2) / rate
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    src = write_wav(tmp_path / "a.wav", tone.tobytes(), rate)
    fast = to_wav(src, tmp_path / "fast.wav", rate, tempo=1.1)
    assert abs(wav_duration(fast) - 2 / 1.1) < 0.02
    pcm, _ = read_wav_pcm(fast)
    samples = np.frombuffer(pcm, dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * rate / len(samples)
    assert abs(peak_hz - 440) < 5  # same pitch
