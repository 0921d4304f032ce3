"""Burned-in captions: pieces of a scene's hold, safe areas, wrapping, scripts, and encoding that joins."""

from __future__ import annotations

import math
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageChops, ImageDraw

from lessonforge.tools.base import ConfigError, RenderError
from lessonforge.tools.media import video
from lessonforge.tools.media.captions import (
    CaptionStyle,
    caption_frames,
    encode_captioned_segment,
    render_caption,
    safe_area,
)
from lessonforge.tools.media.slides import ASPECTS, choose_font, compose_slide
from lessonforge.tools.media.subtitles import Cue

TWO_LINES = "Plants need light, and they also\nneed water to grow tall and strong."


def slide(aspect: str = "16:9") -> Image.Image:
    return compose_slide(title="Photosynthesis", bullets=["Light", "Water", "Carbon dioxide"], illustration=None,
                         footer="Plants", index=1, total=3, aspect=aspect).image


def changed_box(a: Image.Image, b: Image.Image) -> tuple[int, int, int, int] | None:
    return ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox()


def inside(box: tuple[int, int, int, int], area: tuple[int, int, int, int]) -> bool:
    return area[0] <= box[0] and area[1] <= box[1] and box[2] <= area[2] and box[3] <= area[3]


def text_rows(img: Image.Image, area: tuple[int, int, int, int]) -> int:
    """Bands of rows holding the caption's pure white text fill inside ``area``."""
    px = np.asarray(img.crop(area).convert("RGB")).astype(int)
    white = (px == 255).all(axis=2).sum(axis=1) >= 3
    return int(np.count_nonzero(np.diff(np.concatenate([[0], white.astype(int), [0]])) == 1))


# --------------------------------------------------------------------------- pieces


def test_pieces_cover_the_hold_exactly_with_the_plain_slide_in_gaps():
    base = slide()
    cues = [
        Cue(8.0, 10.5, "Before the scene"),  # ends before the scene starts
        Cue(10.4, 11.5, "Plants need light,"),  # starts before the scene: cut at 0
        Cue(11.52, 12.4, "and water."),  # a 0.02 s gap: too short to show, absorbed
        Cue(13.0, 14.0, "Then sugar forms."),
        Cue(14.8, 16.0, "Past the end"),  # crosses the end: cut at the hold
    ]
    pieces = caption_frames(base, cues, 10.5, 4.7, aspect="16:9")
    assert math.fsum(d for _, d in pieces) == pytest.approx(4.7, abs=1e-12)
    durations = [round(d, 6) for _, d in pieces]
    assert durations == [1.0, 0.9, 0.6, 1.0, 0.8, 0.4]  # the next cue starts when the first ends
    plain = [img is base for img, _ in pieces]
    assert plain == [False, False, True, False, True, False]
    assert all(changed_box(img, base) is not None for img, _ in pieces if img is not base)
    # No cues, or cues outside the scene: one plain piece.
    assert caption_frames(base, [], 0.0, 3.0, aspect="16:9") == [(base, 3.0)]
    assert caption_frames(base, [Cue(20, 21, "later")], 0.0, 3.0, aspect="16:9") == [(base, 3.0)]
    with pytest.raises(RenderError, match="positive"):
        caption_frames(base, cues, 0.0, 0.0, aspect="16:9")


def test_the_same_cue_text_is_drawn_once():
    base = slide()
    pieces = caption_frames(base, [Cue(0, 1, "Again."), Cue(2, 3, "Again.")], 0.0, 3.0, aspect="16:9")
    assert [d for _, d in pieces] == [1.0, 1.0, 1.0]
    assert pieces[0][0] is pieces[2][0]


# --------------------------------------------------------------------------- drawing


@pytest.mark.parametrize("aspect", list(ASPECTS))
def test_caption_pixels_stay_inside_the_safe_area(aspect):
    base = slide(aspect)
    W, H = base.size
    area = safe_area(W, H, aspect)
    img = render_caption(base, TWO_LINES, aspect=aspect)
    box = changed_box(img, base)
    assert box is not None and inside(box, area), (box, area)
    assert box[3] >= area[3] - 2  # anchored to the bottom of the safe area
    assert abs((box[0] + box[2]) / 2 - W / 2) <= 2  # centred
    assert text_rows(img, area) == 2
    if aspect == "9:16":
        assert box[3] <= H * 0.85  # above the bottom 15% that phone apps cover
        assert box[0] >= W * 0.08 and box[2] <= W * 0.92
    assert base.size == img.size and changed_box(base, slide(aspect)) is None  # the slide itself is untouched


def test_lines_too_wide_shrink_then_wrap_within_the_safe_width():
    base = slide("9:16")
    W, H = base.size
    style = CaptionStyle(font_scale=0.09)
    area = safe_area(W, H, "9:16", style)
    text = "Photosynthesis makes glucose from\ncarbon dioxide and water in light."
    img = render_caption(base, text, aspect="9:16", style=style)
    box = changed_box(img, base)
    assert box is not None and inside(box, area)
    assert text_rows(img, area) > 2  # wrapped: at this size two lines cannot fit the width
    normal = render_caption(base, text, aspect="9:16")
    assert text_rows(normal, area) == 2  # at the default size the cue keeps its own two lines


def test_style_controls_box_and_outline():
    base = Image.new("RGB", (1920, 1080), (250, 250, 245))
    boxed = render_caption(base, "Light.", aspect="16:9")
    bare = render_caption(base, "Light.", aspect="16:9", style=CaptionStyle(box_opacity=0.0, outline_width=0.0))
    dark = lambda im: int((np.asarray(im).astype(int).sum(axis=2) < 200).sum())
    assert dark(boxed) > 20 * max(1, dark(bare))  # the translucent box darkens a whole band
    with pytest.raises(ConfigError, match="box_opacity"):
        CaptionStyle(box_opacity=1.5)
    with pytest.raises(ConfigError, match="unknown aspect"):
        safe_area(100, 100, "4:3")


@pytest.mark.parametrize(
    ("language", "text"),
    [("ar", "النباتات تحتاج إلى الضوء والماء"), ("he", "הצמחים צריכים אור ומים"),
     ("ja", "植物は光と水を必要とします。"),
     ("fr", "Les plantes ont besoin de lumière, d'eau et d'air."), ("de", "Pflanzen brauchen Licht, Wasser und Luft.")],
)
def test_other_scripts_draw_with_fonts_that_have_their_glyphs(language, text):
    choice = choose_font(text, bold=True, language=language)
    if choice.missing:
        pytest.skip(f"no installed font covers {language} ({choice.missing[:5]!r})")
    base = slide()
    area = safe_area(*base.size, "16:9")
    img = render_caption(base, text, aspect="16:9", style=CaptionStyle(language=language))
    box = changed_box(img, base)
    assert box is not None and inside(box, area)
    assert text_rows(img, area) == 1


# --------------------------------------------------------------------------- encoding


def _frame_at(path: Path, t: float, out: Path) -> Image.Image:
    subprocess.run([video.ffmpeg_exe(), "-loglevel", "error", "-y", "-ss", f"{t:.3f}", "-i", str(path),
                    "-frames:v", "1", str(out)], check=True)
    return Image.open(out).convert("RGB")


def _mean_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b.convert("RGB"), dtype=np.int16)).mean())


def test_captioned_segment_joins_plain_segments_with_the_right_length(tmp_path):
    fps = 24
    base = Image.new("RGB", (640, 360), (245, 245, 240))
    ImageDraw.Draw(base).rectangle((40, 40, 300, 120), fill=(20, 60, 160))
    other = Image.new("RGB", (640, 360), (30, 30, 30))
    base.save(tmp_path / "a.png")
    other.save(tmp_path / "c.png")
    holds = video.quantize_durations([1.5, 2.5, 1.0], fps)
    starts = [0.0, holds[0], holds[0] + holds[1]]
    cues = [Cue(1.9, 2.6, "Plants need light,"), Cue(2.6, 3.4, "and water.")]
    pieces = caption_frames(base, cues, starts[1], holds[1], aspect="16:9")
    assert [round(d, 3) for _, d in pieces] == [0.4, 0.7, 0.8, 0.6]

    seg_a = video.encode_segment(tmp_path / "a.png", holds[0], tmp_path / "a.mp4", fps=fps)
    seg_b = encode_captioned_segment(pieces, tmp_path / "b.mp4", fps=fps)
    seg_c = video.encode_segment(tmp_path / "c.png", holds[2], tmp_path / "c.mp4", fps=fps)
    assert video._segment_duration(seg_b) == pytest.approx(2.5, abs=1e-6)
    info_b = video.probe(seg_b)
    assert (info_b.video_codec, info_b.pix_fmt, info_b.width, info_b.height) == ("h264", "yuv420p", 640, 360)

    audio = tmp_path / "narration.wav"
    with wave.open(str(audio), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(24000)
        w.writeframes(np.zeros(int(5.0 * 24000), "<i2").tobytes())
    lesson = video.assemble([seg_a, seg_b, seg_c], audio, tmp_path / "lesson.mp4",
                            chapters=[("A", 0, 1.5), ("B", 1.5, 4.0), ("C", 4.0, 5.0)], fps=fps)
    info = video.probe(lesson)
    assert info.video_duration == pytest.approx(5.0, abs=0.5 / fps)
    assert info.duration == pytest.approx(5.0, abs=0.05)

    expect = [(0.5, base), (1.7, base), (2.2, pieces[1][0]), (2.95, pieces[2][0]), (3.7, pieces[3][0]),
              (4.5, other)]
    for t, want in expect:
        got = _frame_at(lesson, t, tmp_path / f"f{t}.png")
        assert _mean_diff(got, want) < 2.0, t
    assert _mean_diff(_frame_at(lesson, 2.2, tmp_path / "g.png"), base) > _mean_diff(pieces[1][0], base) / 2


def test_encoding_puts_pieces_on_the_frame_grid(tmp_path):
    base = Image.new("RGB", (320, 180), (200, 200, 200))
    cap = render_caption(base, "Hi.", aspect="16:9")
    # 0.01 s is under half a frame: merged into its neighbour; the total stays round(sum * fps) frames.
    out = encode_captioned_segment([(base, 0.01), (cap, 1.0), (base, 0.52)], tmp_path / "s.mp4", fps=25)
    assert video._segment_duration(out) == pytest.approx(round(1.53 * 25) / 25, abs=1e-6)
    with pytest.raises(RenderError, match="no caption pieces"):
        encode_captioned_segment([], tmp_path / "e.mp4")
    with pytest.raises(RenderError, match="differ in size"):
        encode_captioned_segment([(base, 1.0), (Image.new("RGB", (64, 64)), 1.0)], tmp_path / "e.mp4")
    assert not (tmp_path / "e.mp4").exists()
