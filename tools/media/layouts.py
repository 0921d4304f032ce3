"""Slide layouts chosen by what a scene does: one entry point, :func:`compose_scene`, for every scene.

The role a scene plays (tools' callers pass ``lessonforge.agent.schemas.SceneDraft.role``) and what it carries
(a picture, a pictogram, a diagram, a big number or term, bullets, a question's answer) choose the
layout, for 16:9, 9:16 and 1:1 frames alike:

    hero       hook with a picture: the picture full-bleed, the title over a scrim that keeps AA
    split      a picture or pictogram beside (16:9, 1:1) or above (9:16) the title and bullets
    key        key_fact / definition with ``key``: the number or term large on a panel, bullets beside it
    diagram    a diagram centred under a title band, bullets beside (16:9) or under it
    columns    comparison without a diagram: the bullets split into two cards
    numbered   recap / objectives: numbered rows that fill the body
    question   the question large, the answer on a card under it (drawn when ``reveal_answer``)
    text       text only: bullets as rows that fill the frame, type sized to the space
    statement  no bullets, no visual: the title alone, large

Every layout sets the title at the same size (it never jumps between slides) and bullets at one
size cap beside pictures and diagrams alike; text shrinks to fit its box down to a floor that
stays legible at the output size (28 px body, 44 px titles at 1080 p), then is cut with an
ellipsis and reported. ``shown`` and ``highlight`` give the build states of one scene: every
bullet is fitted whether shown or not, so the states differ only where a bullet appears or is
highlighted. At 9:16 titles, text and footers stay out of the zones short-video apps cover (top
220 px, bottom 380 px, the right 140 px at 1080 x 1920); pictures may run under them.

Title and end cards (:func:`title_card`, :func:`end_card`) open and close a lesson.
:func:`largest_empty_fraction` measures the largest run of bare background on a frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from lessonforge.tools.base import ConfigError, RenderError
from lessonforge.tools.media import pictograms
from lessonforge.tools.media.slides import (
    _RTL_LANGUAGES,
    ASPECTS,
    MAX_BULLETS,
    RGB,
    THEMES,
    Box,
    SlideResult,
    Theme,
    _Block,
    _check_args,
    _clean,
    _draw_block,
    _draw_footer,
    _fit_block,
    _line_metrics,
    _paras,
    _record,
    canvas,
    choose_font,
    contrast_ratio,
    display_title,
    frame_inset,
    is_rtl,
    raqm_available,
    relative_luminance,
)

LAYOUTS = ("hero", "split", "key", "diagram", "columns", "numbered", "question", "text", "statement")
TITLE_PX = {"16:9": 68, "9:16": 64, "1:1": 60}  # at 1080 p: one title size on every slide of an aspect
BULLET_PX = 56  # the bullet cap beside a picture or diagram
FILL_PX = 64  # the bullet cap on text-only slides
TITLE_FLOOR, BODY_FLOOR, FOOTER_PX = 44, 28, 28
SAFE_9_16 = (220, 380, 140)  # top, bottom, right zones that short-video apps cover at 1080 x 1920
SCRIM: RGB = (10, 12, 18)
ON_SCRIM: tuple[RGB, RGB] = ((250, 250, 250), (232, 234, 238))  # title, body over a scrim
CHALK_GRAIN = 7  # the chalkboard's lightest pixel is at most this much above its base colour


def mix(a: Sequence[int], b: Sequence[int], t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))


@dataclass
class _Frame:
    """One frame being drawn: its canvas, scale, safe area and what was drawn where."""

    W: int
    H: int
    aspect: str
    theme: Theme
    language: str
    rtl: bool
    img: Image.Image
    notes: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    boxes: dict[str, Box] = field(default_factory=dict)
    ink: list[tuple[str, Box, RGB, RGB]] = field(default_factory=list)
    overflow: bool = False

    @property
    def s(self) -> float:
        return min(self.W, self.H) / 1080

    def px(self, v: float) -> int:
        return int(round(v * self.s))

    @property
    def raqm_lang(self) -> str | None:
        return self.language if raqm_available() else None

    @property
    def draw(self) -> ImageDraw.ImageDraw:
        return ImageDraw.Draw(self.img)

    def safe(self) -> Box:
        """The area text may use: margins inside the frame, and at 9:16 outside the covered zones."""
        inset = frame_inset(self.theme, (self.W, self.H))
        m = self.px(72) + inset
        if self.aspect == "9:16":
            top, bottom, right = (round(v * self.W / 1080) for v in SAFE_9_16)
            return (m, max(top, m), self.W - max(right, m), self.H - max(bottom, m))
        return (m, self.px(60) + inset, self.W - m, self.H - self.px(40) - inset)

    @property
    def _tint(self) -> RGB:  # a chalkboard's panels are chalk dust, other themes' a wash of the accent
        return self.theme.text if self.theme.surface == "chalk" else self.theme.accent

    @property
    def panel(self) -> RGB:
        return mix(self.theme.background, self._tint, 0.14)

    @property
    def band(self) -> RGB:
        return mix(self.theme.background, self._tint, 0.24)

    def worst(self, under: RGB) -> RGB:
        """The lightest (dark text) or darkest (light text) colour text may land on, grain included."""
        if self.theme.surface != "chalk" or under != self.theme.background:
            return under
        return tuple(min(255, c + CHALK_GRAIN) for c in under)

    def rect(self, box: Box, fill: RGB, radius: int = 0) -> None:
        x0, y0, x1, y1 = box
        if radius:
            self.draw.rounded_rectangle((x0, y0, x1 - 1, y1 - 1), radius=radius, fill=fill)
        else:
            self.draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)

    def text(self, name: str, texts: Sequence[str], box: Box, *, bold: bool, max_size: int, min_size: int,
             colour: RGB, under: RGB, valign: str = "middle", align: str = "start", max_lines: int | None = None,
             leading: float = 0.1, record_box: bool = True) -> _Block:
        """Fit ``texts`` (one paragraph each) into ``box`` and draw them; the used box is named ``name``."""
        paras, notes = _paras([t for t in texts if t], bold=bold, language=self.language)
        self.notes.extend(n for n in notes if n not in self.notes)
        block = _fit_block(paras, box, max_size=max_size, min_size=min_size, max_lines=max_lines, leading=leading,
                           language=self.raqm_lang)
        self.overflow |= _record(block, name, self.sizes, self.notes)
        if not block.paras:
            return block
        _draw_aligned(self.img, block, box, colour=colour, align=align, rtl=self.rtl, valign=valign)
        if record_box:
            self.boxes[name] = box
        self.ink.append((name, box, colour, self.worst(under)))
        return block


def _draw_aligned(img: Image.Image, block: _Block, box: Box, *, colour: RGB, align: str, rtl: bool,
                  valign: str) -> None:
    if align == "center":
        w, h = box[2] - box[0], box[3] - box[1]
        region = img.crop(box)
        draw = ImageDraw.Draw(region)
        y = max(0, (h - block.height) // 2) if valign == "middle" else 0
        for sp in block.paras:
            for line in sp.lines:
                draw.text((w // 2, y + sp.ascent), line, font=sp.font, fill=colour, anchor="ms", **sp.measure.kw)
                y += sp.line_h
        img.paste(region, box[:2])
        return
    if valign == "bottom":
        box, valign = (box[0], max(box[1], box[3] - block.height), box[2], box[3]), "top"
    _draw_block(img, block, box, colour=colour, align_right=rtl, valign=valign)


# --------------------------------------------------------------------------- pieces shared by layouts


def _footer(f: _Frame, footer: str, index: int, total: int, box: Box | None = None, *, colour: RGB | None = None,
            under: RGB | None = None, rule: bool = True) -> int:
    """The lesson title and "i / N" at the bottom of ``box`` (the safe area); returns the top of the footer."""
    left, _, right, bottom = box or f.safe()
    size = f.px(FOOTER_PX)
    page = f"{index} / {total}"
    choice = choose_font(footer or page, language=f.language)
    line_h, _ = _line_metrics(choice.at(size), size, 0.1)
    fbox = (left, bottom - line_h, right, bottom)
    colour = colour or f.theme.muted
    _draw_footer(f.img, fbox, _clean(footer), page, choice, size, colour, f.rtl, f.raqm_lang, f.notes)
    f.boxes["footer"] = fbox
    f.ink.append(("footer", fbox, colour, f.worst(under or f.theme.background)))
    top = fbox[1] - f.px(18)
    if rule:
        f.rect((left, top, right, top + max(1, f.px(2))), colour)
        f.boxes["rule"] = (left, top, right, top + max(1, f.px(2)))
    return top - f.px(24)


def _title(f: _Frame, title: str, box: Box, *, colour: RGB | None = None, under: RGB | None = None,
           max_lines: int = 2, bar: bool = True, valign: str = "top") -> int:
    """The slide title at the aspect's one title size (smaller only when it must); returns the bottom."""
    block = f.text("title", [title], box, bold=True, max_size=f.px(TITLE_PX[f.aspect]), min_size=f.px(TITLE_FLOOR),
                   colour=colour or f.theme.title, under=under or f.theme.background, max_lines=max_lines,
                   leading=0.08, valign=valign, record_box=False)
    h = max(block.height, 1)
    y0 = box[1] if valign == "top" else box[1] + max(0, (box[3] - box[1] - h) // 2)
    f.boxes["title"] = (box[0], y0, box[2], y0 + h)
    bottom = y0 + h
    if bar:
        bw, bh = f.px(120), max(2, f.px(8))
        y = bottom + f.px(16)
        x = box[2] - bw if f.rtl else box[0]
        f.rect((x, y, x + bw, y + bh), f.theme.accent)
        f.boxes["bar"] = (x, y, x + bw, y + bh)
        bottom = y + bh
    return bottom + f.px(32)


def _bullets(f: _Frame, items: Sequence[str], box: Box, *, max_size: int, shown: int | None, highlight: int | None,
             under: RGB, colour: RGB | None = None, spread: bool = True, first: int = 0) -> None:
    """Bullets with markers, fitted all together (shown or not), spread over ``box``; one box per bullet."""
    if not items:
        return
    paras, notes = _paras(items, bold=False, language=f.language)
    f.notes.extend(n for n in notes if n not in f.notes)
    indent_em, gap_em = 0.95, 0.55
    block = _fit_block(paras, box, max_size=max_size, min_size=f.px(BODY_FLOOR), indent_em=indent_em, gap_em=gap_em,
                       leading=0.12, language=f.raqm_lang)
    f.overflow |= _record(block, "bullets", f.sizes, f.notes)
    f.boxes["bullets"] = box
    size = block.size
    heights = [len(sp.lines) * sp.line_h for sp in block.paras]
    free = (box[3] - box[1]) - sum(heights)
    n = len(heights)
    gap = min(free // max(1, n - 1) if spread and n > 1 else int(gap_em * size), int(1.6 * size))
    gap = max(gap, 0) if n > 1 else 0
    y = box[1] + max(0, (box[3] - box[1] - sum(heights) - gap * (n - 1)) // 2)
    colour = colour or f.theme.text
    pad = max(4, int(0.22 * size))
    for i, (sp, h) in enumerate(zip(block.paras, heights, strict=True), first):
        bbox = (box[0], y, box[2], y + h)
        f.boxes[f"bullet{i}"] = bbox
        if shown is None or i < shown:
            bg = under
            if highlight == i:
                bg = mix(under, f.theme.accent, 0.18)
                f.rect((bbox[0] - pad, bbox[1] - pad, bbox[2] + pad, bbox[3] + pad), bg, radius=pad)
            one = _Block(size, [sp], h)
            _draw_block(f.img, one, bbox, colour=colour, align_right=f.rtl, valign="top", marker=f.theme.accent,
                        indent_em=indent_em)
            f.ink.append((f"bullet{i}", bbox, colour, f.worst(bg)))
        y += h + gap


def _cover(src: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``src`` scaled to fill ``size`` and centre-cropped (no distortion)."""
    src = _flat(src)
    return ImageOps.fit(src, size, Image.Resampling.LANCZOS, centering=(0.5, 0.45))


def _flat(src: Image.Image, background: RGB = (255, 255, 255)) -> Image.Image:
    if src.mode in ("RGBA", "LA", "P", "PA"):
        src = src.convert("RGBA")
        flat = Image.new("RGB", src.size, background)
        flat.paste(src, (0, 0), src)
        return flat
    return src.convert("RGB")


def _visual_panel(f: _Frame, box: Box, *, picture: Image.Image | None, icon: str | None, key: str = "") -> None:
    """The visual side of a split: the picture filling ``box``, or a tinted panel with the pictogram (and key)."""
    w, h = box[2] - box[0], box[3] - box[1]
    f.boxes["illustration"] = box
    if picture is not None and not key:
        f.img.paste(_cover(picture, (w, h)), box[:2])
        f.boxes["picture"] = box
        return
    f.rect(box, f.panel)
    inner = _shrink(box, f.px(48))
    if key:  # text stays in the safe area (at 9:16 the panel runs under the covered top zone)
        safe = f.safe()
        inner = (max(inner[0], safe[0]), max(inner[1], safe[1]), min(inner[2], safe[2]), inner[3])
        iw, ih = inner[2] - inner[0], inner[3] - inner[1]
        has_mark = bool(icon or picture is not None)
        if has_mark and iw > 1.6 * ih:  # a wide panel: the mark beside the key, on the reading side
            side = int(ih * 0.8)
            mark = (inner[2] - side, inner[1], inner[2], inner[3]) if f.rtl else (inner[0], inner[1],
                                                                                   inner[0] + side, inner[3])
            _glyph(f, mark, icon, picture)
            kbox = (inner[0], inner[1], mark[0] - f.px(32), inner[3]) if f.rtl else (mark[2] + f.px(32), inner[1],
                                                                                      inner[2], inner[3])
        else:
            icon_h = int(ih * 0.38) if has_mark else 0
            if icon_h:
                _glyph(f, (inner[0], inner[1], inner[2], inner[1] + icon_h), icon, picture)
            kbox = (inner[0], inner[1] + icon_h + (f.px(24) if icon_h else 0), inner[2], inner[3])
        colour = f.theme.accent if contrast_ratio(f.theme.accent, f.panel) >= 4.5 else f.theme.title
        f.text("key", [key], kbox, bold=True, max_size=f.px(200 if iw > 500 else 150), min_size=f.px(TITLE_FLOOR),
               colour=colour, under=f.panel, align="center", max_lines=2, leading=0.05)
        return
    _glyph(f, inner, icon or pictograms.FALLBACK, None)


def _glyph(f: _Frame, box: Box, icon: str | None, picture: Image.Image | None) -> None:
    w, h = box[2] - box[0], box[3] - box[1]
    if picture is not None:
        fitted = ImageOps.contain(_flat(picture), (w, h), Image.Resampling.LANCZOS)
        at = (box[0] + (w - fitted.width) // 2, box[1] + (h - fitted.height) // 2)
        f.img.paste(fitted, at)
        f.boxes["picture"] = (*at, at[0] + fitted.width, at[1] + fitted.height)
        return
    side = max(8, int(min(w, h) * 0.82))
    mark = pictograms.draw(icon or pictograms.FALLBACK, side, f.theme.accent)
    at = (box[0] + (w - side) // 2, box[1] + (h - side) // 2)
    f.img.paste(mark, at, mark)
    f.boxes["picture"] = (*at, at[0] + side, at[1] + side)


def _shrink(box: Box, by: int) -> Box:
    return (box[0] + by, box[1] + by, box[2] - by, box[3] - by)


def _edge_box(f: _Frame) -> Box:
    """The frame inside the theme's border (the whole frame without one)."""
    i = frame_inset(f.theme, (f.W, f.H))
    return (i, i, f.W - i, f.H - i)


# --------------------------------------------------------------------------- layouts


@dataclass
class Scene:
    role: str
    title: str
    bullets: list[str]
    key: str
    answer: str
    picture: Image.Image | None
    diagram: object | None
    icon: str | None
    footer: str
    index: int
    total: int
    shown: int | None
    highlight: int | None
    reveal_answer: bool


def choose_layout(role: str, *, picture: bool, icon: bool, diagram: bool, key: str, bullets: int) -> str:
    """The layout for a scene's role and what it carries (see the module docstring)."""
    if diagram:
        return "diagram"
    if role == "question":
        return "question"
    if role in ("key_fact", "definition") and key:
        return "key"
    if role == "hook" and picture:
        return "hero"
    if picture or icon:
        return "split"
    if role in ("recap", "objectives") and bullets:
        return "numbered"
    if role == "comparison" and bullets >= 2:
        return "columns"
    return "text" if bullets else "statement"


def _hero(f: _Frame, sc: Scene) -> None:
    """The picture full-bleed; the title and bullets over a scrim rising from the bottom."""
    assert sc.picture is not None
    f.img.paste(_cover(sc.picture, (f.W, f.H)), (0, 0))
    f.boxes["picture"] = (0, 0, f.W, f.H)
    safe = f.safe()
    text_h = int((safe[3] - safe[1]) * (0.5 if f.H > f.W else 0.64))
    top = safe[3] - text_h
    fade = f.px(200)
    strength = _scrim_strength(f.img, (0, top, f.W, f.H))
    ramp = np.clip((np.arange(f.H, dtype=np.float32) - (top - fade)) / fade, 0, 1) * strength
    alpha = Image.fromarray((np.repeat(ramp[:, None], f.W, axis=1) * 255).astype(np.uint8), "L")
    f.img.paste(Image.new("RGB", (f.W, f.H), SCRIM), (0, 0), alpha)
    worst = _worst_pixel(f.img, (0, top, f.W, f.H))
    bottom = _footer(f, sc.footer, sc.index, sc.total, colour=ON_SCRIM[1], under=worst, rule=False)
    t_bottom = _title(f, sc.title, (safe[0], top, safe[2], top + int(text_h * 0.36)), colour=ON_SCRIM[0], under=worst)
    _bullets(f, sc.bullets, (safe[0], t_bottom, safe[2], bottom), max_size=f.px(BULLET_PX), shown=sc.shown,
             highlight=sc.highlight, under=worst, colour=ON_SCRIM[1], spread=False)


def _scrim_strength(img: Image.Image, box: Box) -> float:
    """The scrim opacity that puts light text at >= 4.5:1 over the brightest pixel of ``box`` (with room)."""
    small = img.crop(box).reduce(4)
    lum = _luminance(np.asarray(small))
    bright = float(lum.max()) if lum.size else 1.0
    for a in np.linspace(0.45, 0.95, 26):
        # the scrimmed pixel's luminance is bounded by mixing in linear light
        mixed = bright * (1 - a) + relative_luminance(SCRIM) * a
        if (relative_luminance(ON_SCRIM[1]) + 0.05) / (mixed + 0.05) >= 5.0:
            return float(a)
    return 0.95


def _luminance(arr: np.ndarray) -> np.ndarray:
    c = arr[..., :3].astype(np.float32) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def _worst_pixel(img: Image.Image, box: Box) -> RGB:
    arr = np.asarray(img.crop(box))
    lum = _luminance(arr)
    y, x = np.unravel_index(int(lum.argmax()), lum.shape)
    return tuple(int(v) for v in arr[y, x, :3])


def _split(f: _Frame, sc: Scene, *, key: str = "") -> None:
    """Picture, pictogram or key panel on one side (top at 9:16), title and bullets on the other."""
    edge = _edge_box(f)
    safe = f.safe()
    if f.H >= f.W:  # 9:16 and 1:1: the visual across the top (at 9:16 running under the covered zone)
        panel = (edge[0], edge[1], edge[2], safe[1] + int((safe[3] - safe[1]) * (0.34 if f.H > f.W else 0.30)))
        text = (safe[0], panel[3] + f.px(40), safe[2], safe[3])
    else:
        pw = int((edge[2] - edge[0]) * 0.44)
        if f.rtl:
            panel = (edge[0], edge[1], edge[0] + pw, edge[3])
            text = (panel[2] + f.px(64), safe[1], safe[2], safe[3])
        else:
            panel = (edge[2] - pw, edge[1], edge[2], edge[3])
            text = (safe[0], safe[1], panel[0] - f.px(64), safe[3])
    _visual_panel(f, panel, picture=sc.picture, icon=sc.icon, key=key)
    bottom = _footer(f, sc.footer, sc.index, sc.total, text)
    t_bottom = _title(f, sc.title, (text[0], text[1], text[2], text[1] + int((bottom - text[1]) * 0.42)))
    _bullets(f, sc.bullets, (text[0], t_bottom, text[2], bottom), max_size=f.px(BULLET_PX if key == "" else 56),
             shown=sc.shown, highlight=sc.highlight, under=f.theme.background)


def _diagram(f: _Frame, sc: Scene) -> None:
    """A title band across the top, the diagram centred under it, bullets beside (16:9) or under it."""
    from lessonforge.tools.media import diagrams

    edge = _edge_box(f)
    safe = f.safe()
    head_top = safe[1] if f.H > f.W else edge[1] + f.px(44)
    t_size = f.px(TITLE_PX[f.aspect])
    one_line, _ = _line_metrics(choose_font(sc.title or "T", bold=True, language=f.language).at(t_size), t_size, 0.08)
    title_h = one_line * (2 if f.H > f.W else 1)
    band = (edge[0], edge[1], edge[2], head_top + title_h + f.px(40))
    f.rect(band, f.band)
    f.boxes["band"] = band
    _title(f, sc.title, (safe[0], head_top, safe[2], head_top + title_h), under=f.band, bar=False,
           max_lines=2 if f.H > f.W else 1, valign="middle")
    bottom = _footer(f, sc.footer, sc.index, sc.total)
    body = (safe[0], band[3] + f.px(40), safe[2], bottom)
    if sc.bullets and f.W > f.H:
        bw = int((body[2] - body[0]) * 0.34)
        gap = f.px(56)
        if f.rtl:
            blist, dbox = (body[0], body[1], body[0] + bw, body[3]), (body[0] + bw + gap, body[1], body[2], body[3])
        else:
            blist, dbox = (body[2] - bw, body[1], body[2], body[3]), (body[0], body[1], body[2] - bw - gap, body[3])
    elif sc.bullets:
        bh = int((body[3] - body[1]) * (0.34 if f.H > f.W else 0.38))
        dbox = (body[0], body[1], body[2], body[3] - bh - f.px(32))
        blist = (body[0], body[3] - bh, body[2], body[3])
    else:
        dbox, blist = body, None
    drawn = diagrams._render(sc.diagram, width=dbox[2] - dbox[0], height=dbox[3] - dbox[1], theme=f.theme,
                             language=f.language, min_font_px=round(diagrams.LABEL_FLOOR_PX * f.s))
    ink = np.abs(np.asarray(drawn.image, np.int16) - np.asarray(f.theme.background, np.int16)).max(axis=2) > 0
    f.img.paste(drawn.image, dbox[:2], Image.fromarray((ink * 255).astype(np.uint8), "L"))
    f.boxes["illustration"] = f.boxes["picture"] = dbox
    f.boxes["diagram"] = dbox
    if drawn.cuts:
        f.overflow = True
        f.notes.append("diagram text cut at the smallest size: " + ", ".join(repr(t) for t in drawn.cuts)
                       + "; shorten these labels")
    if blist is not None:
        _bullets(f, sc.bullets, blist, max_size=f.px(BULLET_PX), shown=sc.shown, highlight=sc.highlight,
                 under=f.theme.background, spread=False)


def _rows(f: _Frame, sc: Scene, body: Box, *, numbered: bool) -> None:
    """One tinted row per bullet, filling ``body``: a number disc (or an accent edge) and the text."""
    n = len(sc.bullets)
    gap = f.px(22)
    row_h = min((body[3] - body[1] - gap * (n - 1)) // n, f.px(230))
    top = body[1] + (body[3] - body[1] - (row_h * n + gap * (n - 1))) // 2
    pad = f.px(26)
    disc = min(row_h - 2 * f.px(14), f.px(96)) if numbered else f.px(12)
    inners = []
    for i in range(n):
        y = top + i * (row_h + gap)
        inners.append((body[0], y, body[2], y + row_h))
    # one size for every row: the largest at which each row's text fits its row
    text_boxes = []
    for r in inners:
        if f.rtl:
            text_boxes.append((r[0] + pad, r[1] + f.px(10), r[2] - pad - disc - pad, r[3] - f.px(10)))
        else:
            text_boxes.append((r[0] + disc + 2 * pad, r[1] + f.px(10), r[2] - pad, r[3] - f.px(10)))
    paras, notes = _paras(sc.bullets, bold=False, language=f.language)
    f.notes.extend(x for x in notes if x not in f.notes)
    size = min(_fit_block([p], b, max_size=f.px(FILL_PX), min_size=f.px(BODY_FLOOR), leading=0.1,
                          language=f.raqm_lang).size for p, b in zip(paras, text_boxes, strict=True))
    f.boxes["bullets"] = body
    for i, (p, r, tb) in enumerate(zip(paras, inners, text_boxes, strict=True)):
        f.boxes[f"bullet{i}"] = r
        visible = sc.shown is None or i < sc.shown
        fill = f.band if sc.highlight == i else f.panel
        block = _fit_block([p], tb, max_size=size, min_size=min(size, f.px(BODY_FLOOR)), leading=0.1,
                           language=f.raqm_lang)
        f.overflow |= _record(block, f"bullet {i + 1}", f.sizes, f.notes)
        if not visible:
            continue
        f.rect(r, fill, radius=f.px(14))
        if numbered:
            cx = r[2] - pad - disc // 2 if f.rtl else r[0] + pad + disc // 2
            cy = (r[1] + r[3]) // 2
            f.draw.ellipse((cx - disc // 2, cy - disc // 2, cx + disc // 2, cy + disc // 2), fill=f.theme.accent)
            nb = (cx - disc // 2, cy - disc // 2, cx + disc // 2, cy + disc // 2)
            f.text(f"number{i}", [str(i + 1)], _shrink(nb, max(2, disc // 6)), bold=True,
                         max_size=int(disc * 0.6), min_size=f.px(BODY_FLOOR), colour=f.theme.background,
                         under=f.theme.accent, align="center", record_box=False)
        else:
            x = r[2] - disc if f.rtl else r[0]
            f.rect((x, r[1], x + disc, r[3]), f.theme.accent)
        _draw_block(f.img, block, tb, colour=f.theme.text, align_right=f.rtl, valign="middle")
        f.ink.append((f"bullet{i}", tb, f.theme.text, fill))


def _numbered(f: _Frame, sc: Scene, *, numbered: bool = True) -> None:
    safe = f.safe()
    bottom = _footer(f, sc.footer, sc.index, sc.total)
    t_bottom = _title(f, sc.title, (safe[0], safe[1], safe[2], safe[1] + int((bottom - safe[1]) * 0.3)))
    _rows(f, sc, (safe[0], t_bottom, safe[2], bottom), numbered=numbered)


def _columns(f: _Frame, sc: Scene) -> None:
    """The bullets split into two cards side by side (stacked at 9:16)."""
    safe = f.safe()
    bottom = _footer(f, sc.footer, sc.index, sc.total)
    t_bottom = _title(f, sc.title, (safe[0], safe[1], safe[2], safe[1] + int((bottom - safe[1]) * 0.3)))
    body = (safe[0], t_bottom, safe[2], bottom)
    half = (len(sc.bullets) + 1) // 2
    gap = f.px(40)
    if f.H >= f.W:
        mid = (body[1] + body[3]) // 2
        cards = [(body[0], body[1], body[2], mid - gap // 2), (body[0], mid + gap // 2, body[2], body[3])]
    else:
        mid = (body[0] + body[2]) // 2
        cards = [(body[0], body[1], mid - gap // 2, body[3]), (mid + gap // 2, body[1], body[2], body[3])]
        if f.rtl:
            cards.reverse()
    groups = [sc.bullets[:half], sc.bullets[half:]]
    paras, _ = _paras(sc.bullets, bold=False, language=f.language)
    inner = [_shrink(c, f.px(36)) for c in cards]
    inner = [(b[0], b[1] + f.px(10), b[2], b[3]) for b in inner]
    size = min(_fit_block(paras[:half] if k == 0 else paras[half:], inner[k], max_size=f.px(FILL_PX),
                          min_size=f.px(BODY_FLOOR), indent_em=0.95, gap_em=0.55, leading=0.12,
                          language=f.raqm_lang).size for k in range(2) if groups[k])
    for k, (card, group) in enumerate(zip(cards, groups, strict=True)):
        f.rect(card, f.panel, radius=f.px(18))
        f.rect((card[0], card[1], card[2], card[1] + f.px(10)), f.theme.accent)
        _bullets(f, group, inner[k], max_size=size, shown=sc.shown, highlight=sc.highlight, under=f.panel,
                 first=0 if k == 0 else half)
    f.boxes["bullets"] = body


def _question(f: _Frame, sc: Scene) -> None:
    """The question large; under it the answer card, with the answer drawn once it is revealed."""
    safe = f.safe()
    bottom = _footer(f, sc.footer, sc.index, sc.total)
    body = (safe[0], safe[1], safe[2], bottom)
    portrait = f.H > f.W
    icon_side = f.px(150 if portrait else 170)
    if f.W > f.H:  # the mark beside the question, both centred on the question's band
        q_bottom = body[1] + int((body[3] - body[1]) * (0.34 if sc.bullets else 0.55))
        iy = (body[1] + q_bottom - icon_side) // 2
        ib = (body[2] - icon_side, iy, body[2], iy + icon_side) if f.rtl else (body[0], iy, body[0] + icon_side,
                                                                                iy + icon_side)
        qbox = (body[0], body[1], ib[0] - f.px(48), q_bottom) if f.rtl else (ib[2] + f.px(48), body[1], body[2],
                                                                             q_bottom)
    else:
        cx = (body[0] + body[2]) // 2
        ib = (cx - icon_side // 2, body[1], cx + icon_side // 2, body[1] + icon_side)
        qbox = (body[0], ib[3] + f.px(24), body[2], body[1] + int((body[3] - body[1]) * (0.44 if sc.bullets else 0.58)))
    mark = pictograms.draw("circle-question", icon_side, f.theme.accent)
    f.img.paste(mark, ib[:2], mark)
    f.boxes["icon"] = ib
    f.text("title", [sc.title], qbox, bold=True, max_size=f.px(96), min_size=f.px(TITLE_FLOOR),
           colour=f.theme.title, under=f.theme.background, max_lines=4, leading=0.08,
           align="center" if portrait else "start")
    card = (body[0], qbox[3] + f.px(36), body[2], body[3])
    if sc.bullets:  # choices, between the question and the answer card
        ch = int((card[3] - card[1]) * 0.55)
        _bullets(f, sc.bullets, (card[0], card[1], card[2], card[1] + ch), max_size=f.px(BULLET_PX), shown=sc.shown,
                 highlight=sc.highlight, under=f.theme.background, spread=False)
        card = (card[0], card[1] + ch + f.px(28), card[2], card[3])
    f.boxes["answer_card"] = card
    f.rect(card, f.panel, radius=f.px(18))
    edge = f.px(12)
    f.rect((card[2] - edge, card[1], card[2], card[3]) if f.rtl else (card[0], card[1], card[0] + edge, card[3]),
           f.theme.accent)
    abox = _shrink(card, f.px(40))
    abox = (abox[0] + (0 if f.rtl else edge), abox[1], abox[2] - (edge if f.rtl else 0), abox[3])
    if sc.answer:
        paras, notes = _paras([sc.answer], bold=True, language=f.language)
        block = _fit_block(paras, abox, max_size=f.px(64), min_size=f.px(BODY_FLOOR), max_lines=3, leading=0.1,
                           language=f.raqm_lang)
        f.overflow |= _record(block, "answer", f.sizes, f.notes)
        f.boxes["answer"] = abox
        if sc.reveal_answer:
            f.notes.extend(n for n in notes if n not in f.notes)
            _draw_block(f.img, block, abox, colour=f.theme.text, align_right=f.rtl, valign="middle")
            f.ink.append(("answer", abox, f.theme.text, f.panel))


def _text(f: _Frame, sc: Scene) -> None:
    _numbered(f, sc, numbered=False)


def _statement(f: _Frame, sc: Scene) -> None:
    """The title alone, large, on a tinted panel with an accent edge."""
    safe = f.safe()
    bottom = _footer(f, sc.footer, sc.index, sc.total)
    card = (safe[0], safe[1], safe[2], bottom)
    f.rect(card, f.panel, radius=f.px(24))
    edge = f.px(16)
    f.rect((card[2] - edge, card[1], card[2], card[3]) if f.rtl else (card[0], card[1], card[0] + edge, card[3]),
           f.theme.accent)
    f.text("title", [sc.title], _shrink(card, f.px(64)), bold=True, max_size=f.px(120), min_size=f.px(TITLE_FLOOR),
           colour=f.theme.title, under=f.panel, max_lines=5, leading=0.08)


_DRAW = {"hero": _hero, "split": _split, "diagram": _diagram, "columns": _columns, "numbered": _numbered,
         "question": _question, "text": _text, "statement": _statement}


# --------------------------------------------------------------------------- public


def _frame(aspect: str, theme: str, language: str, texts: Sequence[str]) -> _Frame:
    th = THEMES[theme]
    W, H = ASPECTS[aspect]
    rtl = language.split("-")[0].lower() in _RTL_LANGUAGES or is_rtl(" ".join(texts))
    f = _Frame(W, H, aspect, th, language, rtl, canvas(th, (W, H)))
    if any(is_rtl(t) for t in texts) and not raqm_available():
        f.notes.append("right-to-left text is not shaped: Pillow lacks libraqm. Fix: apt-get install libraqm0 "
                       "(or libfribidi0 for Pillow's wheels)")
    return f


def _result(f: _Frame, layout: str) -> SlideResult:
    sizes = f.sizes or [f.px(FOOTER_PX)]
    return SlideResult(image=f.img, overflow=f.overflow, min_font_px=min(sizes), notes=f.notes, boxes=f.boxes,
                       layout=layout, ink=f.ink)


def compose_scene(*, role: str, title: str, bullets: Sequence[str], key: str = "", answer: str = "",
                  picture: Image.Image | None = None, diagram: object | None = None, icon: str | None = None,
                  footer: str, index: int, total: int, aspect: str = "16:9", theme: str = "light",
                  language: str = "en", shown: int | None = None, highlight: int | None = None,
                  reveal_answer: bool = True) -> SlideResult:
    """One scene's slide, laid out for its role (see the module docstring).

    ``shown`` is how many bullets are visible (None: all; hidden ones keep their space),
    ``highlight`` the bullet being spoken, ``reveal_answer`` whether a question's answer is drawn.
    ``boxes`` names what went where ("title", "picture", "bullet0".., "answer", "footer"); ``ink``
    lists every text with its colour and the colour it was judged against (AA).
    """
    _check_args(aspect, theme, index, total)
    if shown is not None and shown < 0:
        raise ConfigError(f"shown must be None or >= 0, got {shown}")
    if icon is not None:
        pictograms.glyph(icon)  # an unknown name is a ConfigError naming valid ones
    items = [b for b in (_clean(b) for b in bullets) if b]
    f = _frame(aspect, theme, language, [title, *items, key, answer])
    if len(items) > MAX_BULLETS:
        f.notes.append(f"{len(items)} bullets given, {MAX_BULLETS} shown: split the scene or merge bullets")
        items = items[:MAX_BULLETS]
        f.overflow = True
    clean_title = _clean(title)
    if role not in ("question", "hook"):
        clean_title = display_title(clean_title, language)
    sc = Scene(role, clean_title, items, _clean(key), _clean(answer), picture, diagram, icon, footer, index, total,
               shown, highlight, reveal_answer)
    layout = choose_layout(role, picture=picture is not None, icon=icon is not None, diagram=diagram is not None,
                           key=sc.key, bullets=len(items))
    if layout == "key":
        _split(f, sc, key=sc.key)
    else:
        _DRAW[layout](f, sc)
    return _result(f, layout)


def title_card(*, title: str, lines: Sequence[str] = (), icon: str | None = None, picture: Image.Image | None = None,
               aspect: str = "16:9", theme: str = "light", language: str = "en") -> SlideResult:
    """The lesson's opening card: its title large, the hook or objectives under it, a picture or pictogram."""
    _check_args(aspect, theme, 1, 1)
    items = [b for b in (_clean(b) for b in lines) if b][:MAX_BULLETS]
    f = _frame(aspect, theme, language, [title, *items])
    edge, safe = _edge_box(f), f.safe()
    if f.H >= f.W:
        panel = (edge[0], edge[1], edge[2], safe[1] + int((safe[3] - safe[1]) * (0.36 if f.H > f.W else 0.32)))
        text = (safe[0], panel[3] + f.px(56), safe[2], safe[3])
    else:
        pw = int((edge[2] - edge[0]) * 0.40)
        panel = (edge[0], edge[1], edge[0] + pw, edge[3]) if f.rtl else (edge[2] - pw, edge[1], edge[2], edge[3])
        text = (panel[2] + f.px(72), safe[1], safe[2], safe[3]) if f.rtl else (safe[0], safe[1], panel[0] - f.px(72),
                                                                                safe[3])
    _visual_panel(f, panel, picture=picture, icon=icon or "graduation-cap")
    split = text[1] + int((text[3] - text[1]) * (0.55 if items else 1.0))
    f.text("title", [display_title(_clean(title), language)], (text[0], text[1], text[2], split), bold=True,
           max_size=f.px(120), min_size=f.px(TITLE_FLOOR), colour=f.theme.title, under=f.theme.background,
           max_lines=4, leading=0.06, valign="bottom" if items else "middle")
    if items:
        y = split + f.px(28)
        f.rect((text[2] - f.px(140), y, text[2], y + f.px(10)) if f.rtl else (text[0], y, text[0] + f.px(140),
                                                                               y + f.px(10)), f.theme.accent)
        _bullets(f, items, (text[0], y + f.px(40), text[2], text[3]), max_size=f.px(48), shown=None, highlight=None,
                 under=f.theme.background, spread=False)
    return _result(f, "title_card")


def end_card(*, title: str, lines: Sequence[str] = (), icon: str | None = None, aspect: str = "16:9",
             theme: str = "light", language: str = "en") -> SlideResult:
    """The lesson's closing card: a large pictogram, the lesson title, and up to five closing lines."""
    _check_args(aspect, theme, 1, 1)
    items = [b for b in (_clean(b) for b in lines) if b][:MAX_BULLETS]
    f = _frame(aspect, theme, language, [title, *items])
    edge, safe = _edge_box(f), f.safe()
    f.rect(edge, f.panel)
    body = safe
    side = int(min(body[2] - body[0], body[3] - body[1]) * (0.34 if items else 0.46))
    cx = (body[0] + body[2]) // 2
    top = body[1] + (f.px(20) if items else (body[3] - body[1]) // 6)
    mark = pictograms.draw(icon or "circle-check", side, f.theme.accent)
    f.img.paste(mark, (cx - side // 2, top), mark)
    f.boxes["icon"] = (cx - side // 2, top, cx + side // 2, top + side)
    t_top = top + side + f.px(40)
    t_bottom = t_top + int((body[3] - t_top) * (0.45 if items else 0.7))
    f.text("title", [display_title(_clean(title), language)], (body[0], t_top, body[2], t_bottom), bold=True,
           max_size=f.px(100), min_size=f.px(TITLE_FLOOR), colour=f.theme.title, under=f.panel, max_lines=3,
           leading=0.06, align="center")
    if items:
        f.text("lines", items, (body[0], t_bottom + f.px(24), body[2], body[3]), bold=False, max_size=f.px(48),
               min_size=f.px(BODY_FLOOR), colour=f.theme.text, under=f.panel, align="center", valign="top")
    return _result(f, "end_card")


def largest_empty_fraction(img: Image.Image, background: Sequence[int], *, cell: int = 10,
                           tolerance: int = 24) -> float:
    """The largest axis-aligned rectangle of background-coloured pixels, as a fraction of the frame.

    The frame is reduced to ``cell`` x ``cell`` px blocks (their mean colour); a block is empty when
    every channel is within ``tolerance`` of ``background`` (a chalkboard's grain stays empty).
    """
    if img.width < cell or img.height < cell:
        raise RenderError(f"frame {img.size} is smaller than one {cell} px cell")
    small = np.asarray(img.convert("RGB").reduce(cell), np.int16)
    empty = (np.abs(small - np.asarray(background, np.int16)[None, None, :]).max(axis=2) <= tolerance)
    rows, cols = empty.shape
    heights = np.zeros(cols, np.int32)
    best = 0
    for r in range(rows):
        heights = np.where(empty[r], heights + 1, 0)
        stack: list[tuple[int, int]] = []  # (start column, height)
        for c in range(cols + 1):
            h = int(heights[c]) if c < cols else 0
            start = c
            while stack and stack[-1][1] >= h:
                start, sh = stack.pop()
                best = max(best, sh * (c - start))
            stack.append((start, h))
    return best / (rows * cols)
