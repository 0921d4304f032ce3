from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lessonforge.tools.base import RenderError
from lessonforge.tools.media import video
from lessonforge.tools.media.video import (
    assemble,
    concat_entry,
    concat_wavs,
    encode_segment,
    ffmetadata,
    mp4_is_faststart,
    probe,
    quantize_durations,
)

SR = 24000
TITLE = "Light = food; #1 \\ lesson\nsecond line 'quoted'"


def write_tone(path: Path, seconds: float, rate: int = SR, freq: float = 440.0, channels: int = 1) -> Path:
    t = np.arange(int(round(seconds * rate))) / rate
    x = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    if channels > 1:
        x = np.repeat(x[:, None], channels, axis=1).reshape(-1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int, int]:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate(), w.getnchannels()


def write_slide(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (640, 360)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture(scope="module")
def lesson(tmp_path_factory):
    """A three-scene lesson built the way the pipeline builds it, in a folder with a space and a quote."""
    root = tmp_path_factory.mktemp("render") / "it's a lesson dir"
    root.mkdir()
    parts = [
        write_tone(root / "scene 1.wav", 1.3, freq=300),
        write_tone(root / "scene 2.wav", 0.9, rate=16000, freq=400),  # another rate: resampled
        write_tone(root / "scene 3.wav", 1.6, freq=500, channels=2),  # stereo: downmixed
    ]
    narration = root / "narration.wav"
    starts = concat_wavs(parts, narration, gap_s=0.25)
    samples, rate, _ = read_wav(narration)
    total = len(samples) / rate
    ends = [*starts[1:], total]
    durations = quantize_durations([e - s for s, e in zip(starts, ends)], fps=24)
    colours = [(200, 40, 40), (40, 160, 60), (40, 60, 200)]
    segments = [
        encode_segment(write_slide(root / f"slide {i}.png", c), d, root / f"segment {i}.mp4")
        for i, (c, d) in enumerate(zip(colours, durations))
    ]
    chapters = [(f"Scene {i + 1}: part's \"name\"", s, e) for i, (s, e) in enumerate(zip(starts, ends))]
    out = assemble(segments, narration, root / "lesson.mp4", chapters=chapters, title=TITLE)
    return {"root": root, "out": out, "starts": starts, "total": total, "segments": segments,
            "chapters": chapters, "narration": narration}


def test_video_and_audio_last_as_long_as_the_narration(lesson):
    info = probe(lesson["out"])
    assert abs(info.video_duration - info.audio_duration) <= 0.1
    assert info.audio_duration == pytest.approx(lesson["total"], abs=0.1)
    assert info.video_duration == pytest.approx(lesson["total"], abs=0.1)


def test_codecs_play_everywhere(lesson):
    info = probe(lesson["out"])
    assert (info.video_codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert (info.width, info.height) == (640, 360)


def test_chapters_have_titles_and_scene_times(lesson):
    info = probe(lesson["out"])
    assert [c[0] for c in info.chapters] == [c[0] for c in lesson["chapters"]]
    for got, want in zip(info.chapters, lesson["chapters"]):
        assert got[1] == pytest.approx(want[1], abs=0.01)
        assert got[2] == pytest.approx(want[2], abs=0.01)


def test_title_with_metadata_syntax_survives(lesson):
    assert probe(lesson["out"]).title == TITLE


def test_faststart_puts_moov_before_mdat(lesson):
    assert probe(lesson["out"]).faststart
    assert mp4_is_faststart(lesson["out"])
    assert not mp4_is_faststart(lesson["segments"][0])  # segments are written without it


def test_each_scene_shows_its_slide(lesson, tmp_path):
    """The frame shown in the middle of each chapter is that scene's slide colour."""
    expected = [(200, 40, 40), (40, 160, 60), (40, 60, 200)]
    for (_, start, end), colour in zip(lesson["chapters"], expected):
        png = tmp_path / f"at{start:.2f}.png"
        subprocess.run([video.ffmpeg_exe(), "-v", "error", "-ss", f"{(start + end) / 2:.3f}", "-i", str(lesson["out"]),
                        "-frames:v", "1", str(png)], check=True)
        pixel = Image.open(png).convert("RGB").getpixel((320, 180))
        assert all(abs(a - b) <= 12 for a, b in zip(pixel, colour)), (start, pixel, colour)


def test_concat_wavs_places_parts_with_gaps_and_fades(lesson):
    samples, rate, channels = read_wav(lesson["narration"])
    assert (rate, channels) == (SR, 1)
    starts = lesson["starts"]
    assert starts[0] == 0.0
    assert starts[1] == pytest.approx(1.3 + 0.25, abs=1e-4)
    assert starts[2] == pytest.approx(1.3 + 0.25 + 0.9 + 0.25, abs=1e-3)  # 16 kHz part resampled
    assert len(samples) / rate == pytest.approx(1.3 + 0.9 + 1.6 + 3 * 0.25, abs=2e-3)
    for s in starts:
        i = int(round(s * rate))
        assert abs(int(samples[i])) < 200  # faded in, no click
        gap = samples[i - int(0.2 * rate): i] if i else samples[:0]
        assert not np.any(gap)  # silence before each later part
    loud = samples[int(0.5 * rate): int(0.6 * rate)]
    assert np.abs(loud).max() > 8000


def test_segments_last_exactly_whole_frames(tmp_path):
    slide = write_slide(tmp_path / "s.png", (10, 20, 30), size=(321, 181))  # odd size: made even
    for seconds, frames in ((2.5, 60), (1.01, 24), (0.01, 1)):
        seg = encode_segment(slide, seconds, tmp_path / f"seg{frames}.mp4", fps=24)
        info = probe(seg)
        assert info.video_duration == pytest.approx(frames / 24, abs=1e-3)
        assert info.audio_codec is None
        assert (info.width, info.height) == (320, 180)


def test_quantize_durations_keeps_running_sums_on_the_frame_grid():
    durations = [1.37, 2.02, 0.51, 3.333, 0.04]
    q = quantize_durations(durations, fps=24)
    assert all(abs(d * 24 - round(d * 24)) < 1e-9 and d > 0 for d in q)
    running, total = 0.0, 0.0
    for a, b in zip(q, durations):
        running += a
        total += b
        assert abs(running - total) <= 0.5 / 24 + 1e-9


def test_assemble_stretches_the_last_slide_to_the_narration(tmp_path):
    audio = write_tone(tmp_path / "a.wav", 3.0)
    segs = [encode_segment(write_slide(tmp_path / f"{i}.png", (i * 90, 0, 0)), 1.0, tmp_path / f"{i}.mp4")
            for i in range(2)]
    out = assemble(segs, audio, tmp_path / "out.mp4", chapters=[("All", 0.0, 3.0)])
    info = probe(out)
    assert info.video_duration == pytest.approx(3.0, abs=0.05)
    assert info.audio_duration == pytest.approx(3.0, abs=0.05)


def test_assemble_refuses_slides_far_longer_than_the_narration(tmp_path):
    audio = write_tone(tmp_path / "a.wav", 0.5)
    segs = [encode_segment(write_slide(tmp_path / "s.png", (0, 0, 0)), 2.0, tmp_path / f"{i}.mp4") for i in range(2)]
    with pytest.raises(RenderError, match="quantize_durations"):
        assemble(segs, audio, tmp_path / "out.mp4", chapters=[])
    assert not (tmp_path / "out.mp4").exists()


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_a_failing_ffmpeg_raises_render_error_and_leaves_no_file(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a PNG")
    out = tmp_path / "seg.mp4"
    with pytest.raises(RenderError) as err:
        encode_segment(broken, 1.0, out)
    message = str(err.value)
    assert "ffmpeg failed" in message and "Fix:" in message
    assert not out.exists()
    assert _no_temp_files(tmp_path)


def test_missing_inputs_raise_render_error_and_leave_no_file(tmp_path):
    seg = encode_segment(write_slide(tmp_path / "s.png", (0, 0, 0)), 1.0, tmp_path / "seg.mp4")
    out = tmp_path / "lesson.mp4"
    with pytest.raises(RenderError, match="does not exist"):
        assemble([seg], tmp_path / "missing.wav", out, chapters=[])
    with pytest.raises(RenderError, match="does not exist"):
        encode_segment(tmp_path / "missing.png", 1.0, tmp_path / "x.mp4")
    assert not out.exists() and not (tmp_path / "x.mp4").exists()


def test_a_damaged_audio_file_raises_render_error(tmp_path):
    seg = encode_segment(write_slide(tmp_path / "s.png", (0, 0, 0)), 1.0, tmp_path / "seg.mp4")
    bad = tmp_path / "narration.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk" * 4)
    out = tmp_path / "lesson.mp4"
    with pytest.raises(RenderError):
        assemble([seg], bad, out, chapters=[])
    assert not out.exists()
    assert _no_temp_files(tmp_path)


def test_bad_chapters_are_rejected(tmp_path):
    audio = write_tone(tmp_path / "a.wav", 1.0)
    seg = encode_segment(write_slide(tmp_path / "s.png", (0, 0, 0)), 1.0, tmp_path / "seg.mp4")
    with pytest.raises(RenderError, match="chapter 2"):
        assemble([seg], audio, tmp_path / "o.mp4", chapters=[("a", 0.0, 0.6), ("b", 0.4, 1.0)])


def test_probe_without_ffprobe_agrees_with_ffprobe(lesson, monkeypatch):
    if video.ffprobe_exe() is None:
        pytest.skip("ffprobe is not installed")
    with_ffprobe = probe(lesson["out"])
    monkeypatch.setattr(video, "ffprobe_exe", lambda: None)
    fallback = probe(lesson["out"])
    assert fallback.video_codec == with_ffprobe.video_codec
    assert fallback.audio_codec == with_ffprobe.audio_codec
    assert fallback.pix_fmt == with_ffprobe.pix_fmt
    assert (fallback.width, fallback.height) == (with_ffprobe.width, with_ffprobe.height)
    assert fallback.video_duration == pytest.approx(with_ffprobe.video_duration, abs=0.02)
    assert fallback.audio_duration == pytest.approx(with_ffprobe.audio_duration, abs=0.03)
    assert fallback.title == with_ffprobe.title
    assert [c[0] for c in fallback.chapters] == [c[0] for c in with_ffprobe.chapters]
    assert fallback.faststart


def test_escaping_helpers():
    assert concat_entry(Path("/a b/it's.mp4")) == "file '/a b/it'\\''s.mp4'"
    meta = ffmetadata("a=b;c#d\\e\nf", [("x=y", 0.0, 1.5)])
    assert "title=a\\=b\\;c\\#d\\\\e\\\nf" in meta
    assert "START=0\nEND=1500\ntitle=x\\=y" in meta
