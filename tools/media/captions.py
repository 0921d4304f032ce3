"""Burned-in captions without libass: cues drawn with Pillow onto copies of a still slide.

A lesson's picture is a still per scene, so a captioned scene is a short run of stills: the plain
slide in gaps between cues, and the slide with one cue drawn on it while the cue is up.
``caption_frames`` cuts a scene's hold time into those (image, seconds) pieces and
``encode_captioned_segment`` encodes them as one segment with exactly the encoder settings of
``lessonforge.tools.media.video.encode_segment``, so it joins the plain segments by stream copy (``video.assemble``).

Style (``CaptionStyle``): white text with a dark outline on a translucent box per line, centred
at the bottom of the safe area. Sizes are fractions of the frame's shorter side (its height in
16:9), so they scale with resolution. The safe area keeps 5% from every edge (graphics-safe
area of EBU R 95); for 9:16 the bottom 15% (where phone apps put captions, buttons and the
progress bar) and 8% at each side are kept free as well. Lines come from the cue (broken by
``lessonforge.tools.media.subtitles``); a line wider than the safe area at the chosen size first shrinks the text
(down to ``min_scale``) and is then wrapped by measured width.

Fonts come from ``lessonforge.tools.media.slides.choose_font`` by the cue's script, so Arabic, Hebrew, CJK and
others draw with glyphs that exist; right-to-left text is shaped by libraqm when Pillow has it.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from lessonforge.tools.base import ConfigError, RenderError
from lessonforge.tools.cache import atomic_path
from lessonforge.tools.media import video
from lessonforge.tools.media.slides import ASPECTS, choose_font, is_rtl, raqm_available, wrap_text
from lessonforge.tools.media.subtitles import Cue

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]  # left, top, right, bottom (exclusive)


@dataclass(frozen=True)
class CaptionStyle:
    """How captions look; lengths are fractions of the frame's shorter side unless noted."""

    font_scale: float = 0.048  # text size (52 px at 1080p)
    min_scale: float = 0.75  # a line too wide may shrink the text to this share of font_scale
    bold: bool = True
    colour: RGB = (255, 255, 255)
    outline_colour: RGB = (0, 0, 0)
    outline_width: float = 0.07  # of the text size
    box_colour: RGB = (0, 0, 0)
    box_opacity: float = 0.6  # 0 draws no box
    box_padding: float = 0.3  # of the text size, around each line
    line_spacing: float = 1.25  # line pitch, in text sizes
    margin: float = 0.05  # safe-area margin, as a share of each dimension
    portrait_bottom: float = 0.15  # 9:16: bottom share kept free for phone UIs
    portrait_side: float = 0.08  # 9:16: side share kept free (the right-hand button column)
    language: str = "en"

    def __post_init__(self) -> None:
        checks = (("font_scale", self.font_scale, 0.005, 0.3), ("min_scale", self.min_scale, 0.1, 1.0),
                  ("outline_width", self.outline_width, 0.0, 0.5), ("box_opacity", self.box_opacity, 0.0, 1.0),
                  ("box_padding", self.box_padding, 0.0, 2.0), ("line_spacing", self.line_spacing, 0.8, 3.0),
                  ("margin", self.margin, 0.0, 0.3), ("portrait_bottom", self.portrait_bottom, 0.0, 0.5),
                  ("portrait_side", self.portrait_side, 0.0, 0.3))
        for name, value, lo, hi in checks:
            if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
                raise ConfigError(f"caption style {name}={value!r} is outside {lo:g}..{hi:g}. Pass a value in range.")


def safe_area(width: int, height: int, aspect: str, style: CaptionStyle = CaptionStyle()) -> Box:
    """The region captions must stay inside (see the module docstring)."""
    if aspect not in ASPECTS:
        raise ConfigError(f"unknown aspect {aspect!r}; choose one of {', '.join(ASPECTS)}")
    side = style.margin
    bottom = style.margin
    if aspect == "9:16":
        side = max(side, style.portrait_side)
        bottom = max(bottom, style.portrait_bottom)
    left = int(math.ceil(width * side))
    top = int(math.ceil(height * style.margin))
    return (left, top, width - left, height - int(math.ceil(height * bottom)))


@dataclass(frozen=True)
class _Line:
    text: str
    width: int  # ink width with the outline
    direction: str | None


def _layout(text: str, unit: int, style: CaptionStyle, max_w: int, language: str):
    """(font, size, stroke, lines) for ``text``: the largest size down to min_scale that fits, else wrapped."""
    lines_in = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    choice = choose_font(" ".join(lines_in), bold=style.bold, language=language)
    if choice.missing:
        log.warning("caption font %s lacks glyphs for %r; they show as boxes. Fix: install fonts-noto-core "
                    "(or fonts-noto-cjk for Chinese, Japanese and Korean)", choice.path, choice.missing[:12])
    raqm = raqm_available()
    full = max(8, int(round(style.font_scale * unit)))
    smallest = max(8, int(round(full * style.min_scale)))

    def measured(lines: list[str], font, stroke: int) -> list[_Line]:
        out = []
        for line in lines:
            direction = ("rtl" if is_rtl(line) else "ltr") if raqm else None
            kw = {"direction": direction, "language": language} if raqm else {}
            box = font.getbbox(line, stroke_width=stroke, anchor="ls", **kw)
            out.append(_Line(line, int(box[2] - box[0]), direction))
        return out

    size = full
    while True:
        font = choice.at(size)
        stroke = int(round(style.outline_width * size)) if style.outline_width > 0 else 0
        lines = measured(lines_in, font, stroke)
        if all(line.width <= max_w for line in lines) or size <= smallest:
            break
        size = max(smallest, int(size * 0.92))
    if any(line.width > max_w for line in lines):  # still too wide at the smallest size: wrap by width
        wrapped: list[str] = []
        for line in lines:
            if line.width <= max_w:
                wrapped.append(line.text)
            else:
                wrapped += wrap_text(line.text, font, max_w - 2 * stroke, direction=line.direction,
                                     language=language if raqm else None)
        lines = measured(wrapped, font, stroke)
    return font, size, stroke, lines


def render_caption(slide: Image.Image, text: str, *, aspect: str, style: CaptionStyle = CaptionStyle()) -> Image.Image:
    """A copy of ``slide`` with ``text`` (lines separated by "\\n") drawn as a caption."""
    base = slide.convert("RGB") if slide.mode != "RGB" else slide.copy()
    if not text.strip():
        return base
    overlay, region = caption_overlay(base.size, text, aspect=aspect, style=style)
    patch = base.crop(region).convert("RGBA")
    patch.alpha_composite(overlay)
    base.paste(patch.convert("RGB"), region[:2])
    return base


def caption_overlay(size: tuple[int, int], text: str, *, aspect: str,
                    style: CaptionStyle = CaptionStyle()) -> tuple[Image.Image, Box]:
    """The caption for a frame of ``size`` as a transparent RGBA layer and the region it covers
    (left, top, right, bottom): laid over a frame, it looks as :func:`render_caption` draws it."""
    W, H = size
    safe = safe_area(W, H, aspect, style)
    unit = min(W, H)
    full = max(8, int(round(style.font_scale * unit)))
    pad = int(round(style.box_padding * full))
    max_w = safe[2] - safe[0] - 2 * pad
    if max_w <= 0:
        raise RenderError(f"the caption safe area of a {W}x{H} frame is too narrow. Fix: lower the caption margins.")
    font, font_size, stroke, lines = _layout(text, unit, style, max_w, style.language)
    ascent, descent = font.getmetrics()
    pitch = int(round(style.line_spacing * font_size))
    line_h = ascent + descent + 2 * stroke
    block_h = line_h + pitch * (len(lines) - 1) + 2 * pad
    room = safe[3] - safe[1]
    if block_h > room:  # absurdly long cue: keep the lines that fit, the last ones read on
        keep = max(1, 1 + (room - line_h - 2 * pad) // pitch)
        log.warning("caption %r has %d lines; only the last %d fit the safe area", text[:40], len(lines), keep)
        lines = lines[-keep:]
        block_h = line_h + pitch * (len(lines) - 1) + 2 * pad
    top = safe[3] - block_h
    centre = (safe[0] + safe[2]) // 2
    region: Box = (safe[0], top, safe[2], safe[3])
    overlay = Image.new("RGBA", (region[2] - region[0], region[3] - region[1]), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    raqm = raqm_available()
    x = centre - region[0]
    placed = []
    for k, line in enumerate(lines):
        baseline = pad + k * pitch + stroke + ascent  # the line's ink box starts at pad + k * pitch
        kw = {"direction": line.direction, "language": style.language} if raqm else {}
        ink = draw.textbbox((x, baseline), line.text, font=font, anchor="ms", stroke_width=stroke, **kw)
        placed.append((line, baseline, kw, ink, pad + k * pitch))
    alpha = int(round(255 * style.box_opacity))
    if alpha > 0:  # one box per line, drawn as one mask so that overlapping boxes do not darken twice
        mask = Image.new("L", overlay.size, 0)
        mdraw = ImageDraw.Draw(mask)
        for _, _, _, ink, y_top in placed:
            mdraw.rectangle((max(0, ink[0] - pad), max(0, y_top - pad), min(overlay.width, ink[2] + pad) - 1,
                             min(overlay.height, y_top + line_h + pad) - 1), fill=alpha)
        overlay.paste(Image.new("RGBA", overlay.size, (*style.box_colour, 255)), (0, 0), mask)
    for line, baseline, kw, _, _ in placed:
        draw.text((x, baseline), line.text, font=font, fill=(*style.colour, 255), anchor="ms", stroke_width=stroke,
                  stroke_fill=(*style.outline_colour, 255), **kw)
    return overlay, region


def caption_spans(cues: Sequence[Cue], scene_start: float, hold: float, *,
                  min_piece: float = 0.04) -> list[tuple[float, float, str]]:
    """(start, end, text) of the captions shown in a scene, in seconds from its start.

    ``cues`` are in lesson time (as ``subtitles.cues_from_words(offset=...)`` makes them); those
    outside the scene are ignored and those crossing its edges are cut; spans never overlap. A gap
    or cue shorter than ``min_piece`` (about a frame) is absorbed by its neighbour.
    """
    if not (hold > 0 and math.isfinite(hold)):
        raise RenderError(f"scene hold must be a positive number of seconds, got {hold!r}. Fix: check its audio.")
    spans: list[tuple[float, float, str]] = []
    for cue in sorted(cues, key=lambda c: (c.start, c.end)):
        a = max(0.0, cue.start - scene_start)
        b = min(hold, cue.end - scene_start)
        if spans:
            a = max(a, spans[-1][1])  # never overlapping
        if b - a < min_piece or not cue.text.strip():
            continue
        if spans and a - spans[-1][1] < min_piece:
            a = spans[-1][1]  # a gap too short to show: the cue starts where the last one ended
        elif not spans and a < min_piece:
            a = 0.0
        if hold - b < min_piece:
            b = hold
        spans.append((a, b, cue.text))
    return spans


def caption_frames(slide: Image.Image, cues: Sequence[Cue], scene_start: float, hold: float, *, aspect: str,
                   style: CaptionStyle = CaptionStyle(), min_piece: float = 0.04) -> list[tuple[Image.Image, float]]:
    """(image, seconds) pieces covering exactly ``hold`` seconds of a scene that starts at ``scene_start``:
    the slide with each caption of :func:`caption_spans` drawn on it, and the plain slide in the gaps."""
    spans = caption_spans(cues, scene_start, hold, min_piece=min_piece)
    edges: list[tuple[float, str | None]] = []  # (piece start, caption text or None for the plain slide)
    t = 0.0
    for a, b, text in spans:
        if a > t:
            edges.append((t, None))
        edges.append((a, text))
        t = b
    if t < hold or not edges:
        edges.append((t, None))
    rendered: dict[str, Image.Image] = {}
    pieces: list[tuple[Image.Image, float]] = []
    for k, (start, caption) in enumerate(edges):
        end = edges[k + 1][0] if k + 1 < len(edges) else hold
        if caption is None:
            image = slide
        else:
            drawn = rendered.get(caption)
            if drawn is None:
                drawn = rendered[caption] = render_caption(slide, caption, aspect=aspect, style=style)
            image = drawn
        pieces.append((image, end - start))
    return pieces


def encode_captioned_segment(pieces: Sequence[tuple[Image.Image, float]], out: Path, *, fps: int = 24) -> Path:
    """One video-only MP4 showing each piece's image for its seconds, joinable with ``video.encode_segment``'s.

    Piece boundaries are put on the frame grid by ``video.quantize_durations`` (running sums
    rounded, so the total is ``round(sum * fps)`` frames); a piece shorter than half a frame is
    merged into its neighbour. Each piece is encoded by ``video.encode_segment`` itself (two
    frames, its settings exactly; equal pieces once) and the pieces are joined by stream copy, so
    the result has the same codec parameters as every plain segment and joins them with
    ``-c copy``; every piece starts with a key frame.
    """
    out = Path(out)
    if fps <= 0:
        raise RenderError(f"fps must be positive, got {fps}")
    kept: list[tuple[Image.Image, float]] = []
    for image, seconds in pieces:
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise RenderError(f"caption piece duration must be >= 0 seconds, got {seconds!r}.")
        if kept and seconds < 0.5 / fps:
            kept[-1] = (kept[-1][0], kept[-1][1] + seconds)
        elif seconds > 0:
            kept.append((image, seconds))
    if not kept:
        raise RenderError("no caption pieces to encode. Fix: pass at least one (image, seconds) piece.")
    if len(kept) > 1 and kept[0][1] < 0.5 / fps:  # a sliver at the start joins the next piece
        kept = [(kept[1][0], kept[0][1] + kept[1][1]), *kept[2:]]
    sizes = {image.size for image, _ in kept}
    if len(sizes) != 1:
        raise RenderError(f"caption pieces differ in size ({sorted(sizes)}). Fix: draw every piece on the same slide.")
    total = video.frames_for(sum(s for _, s in kept), fps)
    frames = [int(round(d * fps)) for d in video.quantize_durations([s for _, s in kept], fps)]
    while sum(frames) > total:  # one-frame minimums pushed the end: take the frames back from the longest
        frames[max(range(len(frames)), key=lambda i: frames[i])] -= 1
    with tempfile.TemporaryDirectory(prefix="lf-captions-", dir=out.parent if out.parent.is_dir() else None) as tmp:
        scratch = Path(tmp)
        encoded: dict[tuple[int, int], Path] = {}
        pngs: dict[int, Path] = {}
        parts: list[Path] = []
        for k, ((image, _), n) in enumerate(zip(kept, frames, strict=True)):
            if n <= 0:
                continue
            part = encoded.get((id(image), n))
            if part is None:
                png = pngs.get(id(image))
                if png is None:
                    png = pngs[id(image)] = scratch / f"still{len(pngs)}.png"
                    (image if image.mode == "RGB" else image.convert("RGB")).save(png, compress_level=1)
                part = encoded[(id(image), n)] = video.encode_segment(png, n / fps, scratch / f"piece{k}.mp4", fps=fps)
            parts.append(part)
        if len(parts) == 1:
            with atomic_path(out) as dst:
                dst.write_bytes(parts[0].read_bytes())
            return out
        listing = scratch / "pieces.ffconcat"
        listing.write_text("ffconcat version 1.0\n" + "\n".join(video.concat_entry(p) for p in parts) + "\n",
                           encoding="utf-8")
        with atomic_path(out) as dst:
            video.run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0:v:0", "-c:v", "copy",
                        "-video_track_timescale", str(fps * 1000), "-an", "-f", "mp4", str(dst)],
                       f"join {len(parts)} caption pieces into {out.name}")
    return out
