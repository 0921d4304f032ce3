"""``storyboard.png``: a contact sheet of a lesson's slides, with each scene's number, role and layout
under it, so a lesson (or a change to a layout) can be judged at a glance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from lessonforge.tools.cache import atomic_path
from lessonforge.tools.media import slides


@dataclass(frozen=True)
class Frame:
    slide: Path
    caption: str  # e.g. "3 · definition · key term"


def contact_sheet(frames: Sequence[Frame], out: Path, *, columns: int | None = None, thumb_width: int = 480,
                  theme: str = "light") -> Path:
    """Every frame's slide as a thumbnail (aspect kept) with its caption under it, written atomically to ``out``."""
    if not frames:
        raise ValueError("a storyboard needs at least one slide")
    with Image.open(frames[0].slide) as first:
        w, h = first.size
    th = slides.THEMES.get(theme, slides.THEMES["light"])
    cols = columns or min(len(frames), 4 if w >= h else 6)
    rows = math.ceil(len(frames) / cols)
    tw, tht = thumb_width, round(thumb_width * h / w)
    pad, cap = 16, 40
    sheet = Image.new("RGB", (cols * (tw + pad) + pad, rows * (tht + cap + pad) + pad), th.background)
    draw = ImageDraw.Draw(sheet)
    for k, f in enumerate(frames):
        x = pad + (k % cols) * (tw + pad)
        y = pad + (k // cols) * (tht + cap + pad)
        with Image.open(f.slide) as img:
            sheet.paste(img.convert("RGB").resize((tw, tht), Image.Resampling.LANCZOS), (x, y))
        draw.rectangle((x, y, x + tw - 1, y + tht - 1), outline=th.muted)
        font = slides.choose_font(f.caption).at(20)
        draw.text((x, y + tht + 8), f.caption, font=font, fill=th.text)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return Path(out)
