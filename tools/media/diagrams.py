"""The ``diagram`` visual kind: a small structured diagram drawn crisply instead of a picture.

Process topics (photosynthesis, the water cycle, how a bill becomes law) teach better as a
labelled diagram than as a diffusion picture, and diffusion models cannot draw words. The LLM
fills :data:`Diagram`, one small object per kind (a discriminated union on ``kind``), and :func:`draw_diagram` draws
it with matplotlib (Agg) at an exact pixel size in the slide theme's colours:

    steps       boxes joined by arrows, left to right (right to left for RTL languages), wrapping
                to rows when there are many; each box carries its step number
    cycle       labelled nodes on a circle, joined clockwise by curved arrows
    comparison  a table: a header row on the accent colour, banded rows
    bar_chart   labelled bars on a baseline, each with its value

Every string is set in a font that covers it (``slides.choose_font``, registered with matplotlib's
font manager; matplotlib >= 3.11 shapes Arabic and Hebrew with libraqm), wrapped to its box and
shrunk to fit; text that still does not fit at the smallest size is cut with an ellipsis, so text
never leaves its box. Drawing is deterministic: the same diagram, size and theme give the same
pixels.

:func:`compose_diagram_slide` puts a diagram on a slide where the illustration would go, drawn
at exactly the size of the slide's illustration box (no rescaling, so lines stay sharp).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self

import numpy as np
from PIL import Image
from pydantic import Field, TypeAdapter, model_validator

from lessonforge.tools.base import ConfigError, RenderError
from lessonforge.tools.contract import Contract, cut_at_word, items, text, tidy
from lessonforge.tools.media import slides

log = logging.getLogger(__name__)

DiagramKind = Literal["steps", "cycle", "comparison", "bar_chart"]

LABEL_FLOOR_PX = 22  # the smallest diagram label on a slide, at 1080 p (slide bullets stop at 28)
MAX_LABEL_CHARS = 40
MAX_CAPTION_CHARS = 120
LIMITS: dict[str, tuple[int, int]] = {"steps": (2, 6), "cycle": (3, 6), "bar_chart": (2, 6)}
COLUMNS = (2, 4)
ROWS = (1, 6)

RGB = tuple[int, int, int]
_DPI = 72  # 1 pt = 1 px, and w / 72 * 72 == w in floating point for every width we draw
_LOCK = threading.Lock()  # matplotlib's font cache and text layout are not thread-safe


# --------------------------------------------------------------------------- the LLM-facing models
#
# One object per kind with exactly its fields (a discriminated union on ``kind``), so a reply that
# is valid under the JSON schema is a drawable diagram: item counts are in the schema, lengths too
# (repaired, not rejected, when a backend does not enforce them: lessonforge.tools.contract).


def _label(description: str = "A few words.") -> Any:
    return text(MAX_LABEL_CHARS, f"{description} At most {MAX_LABEL_CHARS} characters.")


Label = Annotated[str, Field(json_schema_extra={"maxLength": MAX_LABEL_CHARS})]


class _Diagram(Contract):
    caption: str = text(MAX_CAPTION_CHARS, f"One short line under the diagram saying what it shows (at most "
                        f"{MAX_CAPTION_CHARS} characters), or '' for none.")

    @property
    def labels(self) -> list[str]:
        return []

    @property
    def values(self) -> list[float]:
        return []

    @property
    def columns(self) -> list[str]:
        return []

    @property
    def rows(self) -> list[list[str]]:
        return []

    def texts(self) -> list[str]:
        """Every string the diagram shows."""
        out = [*self.labels, *self.columns, *(c for row in self.rows for c in row)]
        if self.caption:
            out.append(self.caption)
        return out

    def _fit_caption(self) -> None:
        self.fit_text("caption", MAX_CAPTION_CHARS)


class _Sequence(_Diagram):
    """Labels in order (steps, a cycle): the list is repaired to its kind's limits and must hold enough."""

    _items: ClassVar[str]  # the list's field name
    _called: ClassVar[str]  # how an error names the diagram
    _limits: ClassVar[tuple[int, int]]  # how many items it holds

    @property
    def labels(self) -> list[str]:
        return list(getattr(self, self._items))

    @model_validator(mode="after")
    def _repair(self) -> Self:
        self._fit_caption()
        low, high = self._limits
        self.fit_list(self._items, high, MAX_LABEL_CHARS)
        if len(self.labels) < low:
            raise ValueError(f"{self._called} needs at least {low} {self._items}, got {len(self.labels)}")
        return self


class Steps(_Sequence):
    """A process in order: boxes joined by arrows."""

    _items, _called, _limits = "steps", "a steps diagram", LIMITS["steps"]
    kind: Literal["steps"]
    steps: list[Label] = items(*LIMITS["steps"], f"The steps in order, {LIMITS['steps'][0]}-{LIMITS['steps'][1]} "
                               f"items, each a few words (at most {MAX_LABEL_CHARS} characters).")


class Cycle(_Sequence):
    """Steps that repeat: nodes on a circle joined clockwise."""

    _items, _called, _limits = "stages", "a cycle", LIMITS["cycle"]
    kind: Literal["cycle"]
    stages: list[Label] = items(*LIMITS["cycle"], f"The stages in order, {LIMITS['cycle'][0]}-{LIMITS['cycle'][1]} "
                                f"items, each a few words (at most {MAX_LABEL_CHARS} characters).")


class Bar(Contract):
    label: str = _label("The bar's name.")
    value: float = Field(description="The bar's number (units go in the caption).", allow_inf_nan=False)

    @model_validator(mode="after")
    def _repair(self) -> Bar:
        self.fit_text("label", MAX_LABEL_CHARS)
        return self


class BarChart(_Diagram):
    """Numbers to compare: labelled bars on a baseline."""

    kind: Literal["bar_chart"]
    bars: list[Bar] = items(*LIMITS["bar_chart"], f"{LIMITS['bar_chart'][0]}-{LIMITS['bar_chart'][1]} bars, each "
                            "a name and its number. Give the units in the caption.")

    @property
    def labels(self) -> list[str]:
        return [b.label for b in self.bars]

    @property
    def values(self) -> list[float]:
        return [b.value for b in self.bars]

    @model_validator(mode="after")
    def _repair(self) -> BarChart:
        self._fit_caption()
        named = [b for b in self.bars if b.label]
        if len(named) < len(self.bars):
            self.note(f"bars: {len(self.bars) - len(named)} bar(s) without a name dropped")
        if len(named) > LIMITS["bar_chart"][1]:
            self.note(f"bars: kept the first {LIMITS['bar_chart'][1]} of {len(named)}")
            named = named[: LIMITS["bar_chart"][1]]
        if named != self.bars:
            object.__setattr__(self, "bars", named)
        if len(self.bars) < LIMITS["bar_chart"][0]:
            raise ValueError(f"a bar chart needs at least {LIMITS['bar_chart'][0]} bars, got {len(self.bars)}")
        return self


class Comparison(_Diagram):
    """A table comparing things: a header row, then one row per thing."""

    kind: Literal["comparison"]
    header: list[Label] = items(*COLUMNS, f"The header row, {COLUMNS[0]}-{COLUMNS[1]} short column names; the "
                                "first names what the rows are (e.g. 'Feature').")
    table: list[Annotated[list[Label], Field(json_schema_extra={"minItems": COLUMNS[0], "maxItems": COLUMNS[1]})]] = \
        items(*ROWS, f"{ROWS[0]}-{ROWS[1]} rows, each with one short cell per column (the row's name first), each "
              f"cell at most {MAX_LABEL_CHARS} characters.")

    @property
    def columns(self) -> list[str]:
        return self.header

    @property
    def rows(self) -> list[list[str]]:
        return self.table

    @model_validator(mode="after")
    def _repair(self) -> Comparison:
        self._fit_caption()
        self.fit_list("header", COLUMNS[1], MAX_LABEL_CHARS)
        n = len(self.header)
        if n < COLUMNS[0]:
            raise ValueError(f"a comparison needs at least {COLUMNS[0]} columns, got {n}")
        rows = []
        for r, row in enumerate(self.table):
            cells = [cut_at_word(tidy(c), MAX_LABEL_CHARS) for c in row]
            if not any(cells):
                self.note(f"table row {r + 1} is empty and was dropped")
                continue
            if len(cells) != n:  # one cell per column: pad with blanks or drop the extras
                self.note(f"table row {r + 1} had {len(cells)} cells for {n} columns; "
                          + ("padded with blanks" if len(cells) < n else f"kept the first {n}"))
                cells = (cells + [""] * n)[:n]
            rows.append(cells)
        if len(rows) > ROWS[1]:
            self.note(f"table: kept the first {ROWS[1]} of {len(rows)} rows")
            rows = rows[: ROWS[1]]
        if rows != self.table:
            object.__setattr__(self, "table", rows)
        if not rows:
            raise ValueError("a comparison needs at least one row with text")
        return self


Diagram = Annotated[Steps | Cycle | Comparison | BarChart, Field(discriminator="kind")]
DIAGRAM_KINDS: tuple[str, ...] = ("steps", "cycle", "comparison", "bar_chart")
_DIAGRAM: TypeAdapter[Steps | Cycle | Comparison | BarChart] = TypeAdapter(Diagram)


def parse_diagram(data: Any) -> Steps | Cycle | Comparison | BarChart:
    """A diagram from its JSON form; the flat form of lesson.json files before the union is read too."""
    return _DIAGRAM.validate_python(from_flat(data))


def from_flat(data: Any) -> Any:
    """Map the earlier flat diagram (kind, labels, values, columns, rows, caption) to its kind's own object."""
    if not isinstance(data, dict) or "labels" not in data and "columns" not in data:
        return data
    kind, caption = data.get("kind"), data.get("caption", "")
    if kind == "steps":
        return {"kind": kind, "steps": data.get("labels", []), "caption": caption}
    if kind == "cycle":
        return {"kind": kind, "stages": data.get("labels", []), "caption": caption}
    if kind == "bar_chart":
        return {"kind": kind, "caption": caption, "bars": [{"label": a, "value": b} for a, b in
                                                           zip(data.get("labels", []), data.get("values", []))]}
    if kind == "comparison":
        return {"kind": kind, "header": data.get("columns", []), "table": data.get("rows", []), "caption": caption}
    return data


# --------------------------------------------------------------------------- colours


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _rgb(c: RGB) -> tuple[float, float, float]:
    return (c[0] / 255, c[1] / 255, c[2] / 255)


@dataclass(frozen=True)
class Palette:
    """The colours a diagram uses, derived from a slide theme."""

    background: RGB
    fill: RGB  # boxes and table bands: a light tint of the accent
    edge: RGB  # box outlines, arrows, bars
    text: RGB  # labels (on ``fill`` and on ``background``)
    strong: RGB  # header text (on ``edge``)
    muted: RGB  # caption, baseline


def palette(theme: slides.Theme) -> Palette:
    """Diagram colours for ``theme``; every text colour meets WCAG AA against what it is drawn on."""
    return Palette(
        background=theme.background,
        fill=_mix(theme.background, theme.accent, 0.12),
        edge=theme.accent,
        text=theme.text,
        strong=theme.background,
        muted=theme.muted,
    )


# --------------------------------------------------------------------------- text fitting


@functools.lru_cache(maxsize=64)
def _register(path: str) -> None:
    from matplotlib import font_manager

    try:
        font_manager.fontManager.addfont(path)
    except (OSError, RuntimeError, ValueError) as exc:  # unreadable: matplotlib can still open it by path
        log.debug("matplotlib could not register %s: %s", path, exc)


def _font(text: str, *, bold: bool, language: str):
    """FontProperties (without size) pinned to the file slides.choose_font picks for ``text``."""
    from matplotlib import font_manager

    choice = slides.choose_font(text or "0", bold=bold, language=language)
    _register(choice.path)
    return font_manager.FontProperties(fname=font_manager.FontPath(choice.path, choice.index))


def _is_cjk_text(text: str) -> bool:
    return slides.text_script(text) == "cjk"


def _tokens(text: str) -> tuple[list[str], str]:
    """Wrap units and the string that joins them: characters for CJK, words otherwise."""
    if _is_cjk_text(text):
        return [c for c in text if not c.isspace()], ""
    return text.split(), " "


@dataclass
class _Set:
    lines: list[str]
    size: int
    line_h: float
    cut: bool = False


class _Typesetter:
    """Measures with the figure's own renderer, so what fits here fits when drawn."""

    LEADING = 1.22

    def __init__(self, renderer, language: str) -> None:
        self.renderer = renderer
        self.language = language
        self._cache: dict[tuple[str, bool, int, str], float] = {}
        self._fonts: dict[tuple[str, bool], Any] = {}

    def prop(self, text: str, bold: bool, size: float):
        key = (text, bold)
        if key not in self._fonts:
            self._fonts[key] = _font(text, bold=bold, language=self.language)
        p = self._fonts[key].copy()
        p.set_size(size)
        return p

    def width(self, text: str, bold: bool, size: int, font_text: str) -> float:
        key = (text, bold, size, font_text)
        if key not in self._cache:
            w, _, _ = self.renderer.get_text_width_height_descent(text, self.prop(font_text, bold, size), ismath=False)
            self._cache[key] = w
        return self._cache[key]

    def wrap(self, text: str, width: float, bold: bool, size: int) -> tuple[list[str], bool]:
        """Lines of at most ``width`` px, and whether a word had to be broken to get there."""
        units, sep = _tokens(text)
        lines: list[str] = []
        broke = False
        cur = ""
        for u in units:
            cand = f"{cur}{sep}{u}" if cur else u
            if self.width(cand, bold, size, text) <= width:
                cur = cand
                continue
            if cur:
                lines.append(cur)
            cur = u
            while self.width(cur, bold, size, text) > width and len(cur) > 1:  # a word wider than the box
                cut = len(cur) - 1
                while cut > 1 and self.width(cur[:cut], bold, size, text) > width:
                    cut -= 1
                lines.append(cur[:cut])
                cur = cur[cut:]
                broke = broke or sep != ""
        if cur:
            lines.append(cur)
        if sep == "" and len(lines) > 1 and len(lines[-1]) == 1:
            broke = True  # one CJK character alone on the last line reads as badly as a broken word
        return lines, broke

    def fit(self, text: str, box_w: float, box_h: float, *, bold: bool = False, max_size: int, min_size: int,
            max_lines: int | None = None) -> _Set:
        """The largest size in [min_size, max_size] at which ``text`` fits without breaking a word.

        At ``min_size`` a word may be broken; text that still does not fit is cut with an ellipsis.
        """
        box_w, box_h = max(1.0, box_w), max(1.0, box_h)
        min_size = max(1, min_size)
        max_size = max(min_size, max_size)  # on a small diagram the floor wins over the scaled size

        def attempt(size: int) -> tuple[_Set, bool]:
            lines, broke = self.wrap(text, box_w, bold, size)
            return _Set(lines, size, size * self.LEADING), broke

        def fits(s: _Set) -> bool:
            return (len(s.lines) * s.line_h <= box_h and (max_lines is None or len(s.lines) <= max_lines)
                    and all(self.width(line, bold, s.size, text) <= box_w for line in s.lines))

        best, broke = attempt(min_size)
        if not fits(best):
            return self._cut(text, best, box_w, box_h, bold, max_lines)
        if broke:
            return best
        lo, hi = min_size, max_size  # invariant: lo fits whole words
        while lo < hi:
            mid = (lo + hi + 1) // 2
            s, broke = attempt(mid)
            if fits(s) and not broke:
                lo, best = mid, s
            else:
                hi = mid - 1
        return best

    def _cut(self, text: str, s: _Set, box_w: float, box_h: float, bold: bool, max_lines: int | None) -> _Set:
        size = s.size
        if s.line_h > box_h:  # not even one line fits at the floor: shrink below it rather than overflow
            size = max(1, int(box_h / self.LEADING))
            s = _Set(self.wrap(text, box_w, bold, size)[0], size, size * self.LEADING)
        room = max(1, int(box_h // s.line_h))
        if max_lines is not None:
            room = min(room, max_lines)
        lines = s.lines[:room]
        last = lines[-1] if lines else ""
        ell = "..."  # three full stops: every face has them (Noto Sans Arabic Bold has no "…")
        while last and self.width(last.rstrip() + ell, bold, size, text) > box_w:
            last = last[:-1]
        lines[-1:] = [(last.rstrip() + ell) if last else ell]
        return _Set(lines, size, s.line_h, cut=True)


# --------------------------------------------------------------------------- drawing primitives


Rect = tuple[float, float, float, float]  # left, top, right, bottom in pixels, y down


class _Canvas:
    def __init__(self, width: int, height: int, pal: Palette, language: str, rtl: bool,
                 min_font_px: int | None) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.W, self.H = width, height
        self.pal = pal
        self.fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI, facecolor=_rgb(pal.background))
        self.agg = FigureCanvasAgg(self.fig)
        ax = self.fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_axis_off()
        ax.set_facecolor(_rgb(pal.background))
        self.ax = ax
        self.ts = _Typesetter(self.agg.get_renderer(), language)
        self.rtl = rtl
        self.cuts: list[str] = []
        self.placed: list[tuple[str, Rect, RGB]] = []  # every text drawn, with the box it was fitted to
        self.lines: dict[str, list[str]] = {}  # every text drawn, as the lines it was broken into
        self.s = math.sqrt(width * height) / 700  # scale: sizes below are for a ~700 x 700 px diagram
        self.min_font_px = min_font_px

    def px(self, v: float) -> float:
        return v * self.s

    def floor(self) -> int:
        """The smallest label size (below it text is cut with an ellipsis instead)."""
        if self.min_font_px is not None:
            return self.min_font_px
        return max(10, round(self.px(20)))

    def rect(self, r: Rect, *, fill: RGB | None, edge: RGB | None, lw: float = 0.0, radius: float = 0.0,
             z: float = 1) -> None:
        from matplotlib.patches import FancyBboxPatch

        x0, y0, x1, y1 = r
        pad = min(radius, (x1 - x0) / 2, (y1 - y0) / 2)
        style = f"round,pad=0,rounding_size={pad:.3f}" if pad > 0 else "square,pad=0"
        self.ax.add_patch(FancyBboxPatch(
            (x0, y0), x1 - x0, y1 - y0, boxstyle=style,
            facecolor=_rgb(fill) if fill else "none", edgecolor=_rgb(edge) if edge else "none",
            linewidth=lw, zorder=z, joinstyle="round", antialiased=True,
        ))

    def arrow(self, points: Sequence[tuple[float, float]], *, colour: RGB, lw: float, head: float,
              z: float = 2) -> None:
        from matplotlib.patches import FancyArrowPatch
        from matplotlib.path import Path as MPath

        path = MPath(np.asarray(points, dtype=float), [MPath.MOVETO] + [MPath.LINETO] * (len(points) - 1))
        self.ax.add_patch(FancyArrowPatch(
            path=path, arrowstyle=f"-|>,head_length={head * 0.9:.2f},head_width={head * 0.45:.2f}",
            color=_rgb(colour), linewidth=lw, zorder=z, shrinkA=0, shrinkB=0, joinstyle="round",
            capstyle="round", mutation_scale=1,
        ))

    def text(self, text: str, box: Rect, *, colour: RGB, bold: bool = False, max_size: int, min_size: int | None = None,
             max_lines: int | None = None, align: str = "center", valign: str = "center", size: int | None = None,
             z: float = 3) -> _Set:
        """Fit ``text`` into ``box`` (or set it at ``size``, already known to fit) and draw it."""
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        if size is None:
            s = self.ts.fit(text, w, h, bold=bold, max_size=max_size, min_size=min_size or self.floor(),
                            max_lines=max_lines)
        else:
            s = self.ts.fit(text, w, h, bold=bold, max_size=size, min_size=size, max_lines=max_lines)
        if s.cut:
            self.cuts.append(text)
        block = len(s.lines) * s.line_h
        top = y0 + (h - block) / 2 if valign == "center" else y0
        if align == "center":
            x, ha = (x0 + x1) / 2, "center"
        elif (align == "start") != self.rtl:
            x, ha = x0, "left"
        else:
            x, ha = x1, "right"
        prop = self.ts.prop(text, bold, s.size)
        for i, line in enumerate(s.lines):
            self.ax.text(x, top + (i + 0.5) * s.line_h, line, fontproperties=prop, color=_rgb(colour),
                         ha=ha, va="center", zorder=z, parse_math=False, clip_on=False)
        self.placed.append((text, box, colour))
        self.lines[text] = list(s.lines)
        return s

    def size_for(self, texts: Sequence[str], w: float, h: float, *, bold: bool = False, max_size: int,
                 max_lines: int | None = None) -> int:
        """One size at which every text fits a w x h box (the smallest of their best sizes)."""
        sizes = [self.ts.fit(t, w, h, bold=bold, max_size=max_size, min_size=self.floor(), max_lines=max_lines).size
                 for t in texts if t]
        return min(sizes) if sizes else max_size

    def image(self) -> Image.Image:
        self.agg.draw()
        buf = np.asarray(self.agg.buffer_rgba())
        img = Image.fromarray(np.ascontiguousarray(buf[..., :3]))
        if img.size != (self.W, self.H):  # never expected (see _DPI); guard the contract anyway
            raise RenderError(f"diagram drawn at {img.size}, asked for {(self.W, self.H)}; this is a bug, "
                              "please report it with the diagram")
        return img


# --------------------------------------------------------------------------- layouts


def _caption_band(c: _Canvas, caption: str) -> Rect:
    """Draw the caption at the bottom; returns the area left for the diagram."""
    m = c.px(18)
    if not caption:
        return (m, m, c.W - m, c.H - m)
    band_h = max(c.floor() * 1.4, c.H * 0.11)
    band = (m, c.H - m - band_h, c.W - m, c.H - m)
    c.text(caption, band, colour=c.pal.muted, max_size=int(c.px(26)), max_lines=2)
    return (m, m, c.W - m, band[1] - c.px(10))


def _grid(n: int, w: float, h: float, gap_x: float, gap_y: float) -> tuple[int, int]:
    """Columns and rows for n boxes: the largest boxes of a ~1.7:1 shape, fewer rows when close."""
    best, best_score = (n, 1), -1.0
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        if rows > 1 and (cols - 1) * rows >= n:  # an empty column: never better
            continue
        cw, ch = (w - gap_x * (cols - 1)) / cols, (h - gap_y * (rows - 1)) / rows
        score = min(cw / 1.7, ch) / (1 + 0.15 * (rows - 1))  # every extra row costs a bent arrow
        if score > best_score + 1e-6:
            best, best_score = (cols, rows), score
    return best


def _draw_steps(c: _Canvas, d: Diagram, area: Rect) -> None:
    n = len(d.labels)
    x0, y0, x1, y1 = area
    cols, rows = _grid(n, x1 - x0, y1 - y0, c.px(54), c.px(64))
    gap_x = c.px(54) if cols > 1 else 0.0
    gap_y = c.px(64) if rows > 1 else 0.0
    cw = (x1 - x0 - gap_x * (cols - 1)) / cols
    ch = min((y1 - y0 - gap_y * (rows - 1)) / rows, cw * 0.85)
    top = y0 + (y1 - y0 - (ch * rows + gap_y * (rows - 1))) / 2
    pad = c.px(16)
    badge = max(c.floor() * 1.5, c.px(34))
    boxes: list[Rect] = []
    for i in range(n):
        r, k = divmod(i, cols)
        in_row = min(cols, n - r * cols)
        left = x0 + (x1 - x0 - (cw * in_row + gap_x * (in_row - 1))) / 2  # a short last row is centred
        xa = left + k * (cw + gap_x)
        if c.rtl:
            xa = x0 + x1 - xa - cw
        ya = top + r * (ch + gap_y)
        boxes.append((xa, ya, xa + cw, ya + ch))
    inner = [(b[0] + pad, b[1] + pad + badge * 0.55, b[2] - pad, b[3] - pad) for b in boxes]
    size = c.size_for(d.labels, inner[0][2] - inner[0][0], inner[0][3] - inner[0][1], bold=True,
                      max_size=int(c.px(40)))
    lw = max(1.5, c.px(3))
    for i, (b, label) in enumerate(zip(boxes, d.labels, strict=True)):
        c.rect(b, fill=c.pal.fill, edge=c.pal.edge, lw=lw, radius=c.px(16))
        bx = b[2] - badge * 0.6 if c.rtl else b[0] + badge * 0.6
        _badge(c, bx, b[1] + badge * 0.6, badge / 2, str(i + 1))
        c.text(label, inner[i], colour=c.pal.text, bold=True, max_size=size, size=size)
    head = max(8.0, c.px(20))
    for i in range(n - 1):
        a, b = boxes[i], boxes[i + 1]
        if abs(a[1] - b[1]) < 1:  # same row: straight arrow between facing sides
            ym = (a[1] + a[3]) / 2
            if c.rtl:
                pts = [(a[0] - c.px(6), ym), (b[2] + c.px(6), ym)]
            else:
                pts = [(a[2] + c.px(6), ym), (b[0] - c.px(6), ym)]
        else:  # next row: down from this box, across the gap, down into the next
            xa, xb = (a[0] + a[2]) / 2, (b[0] + b[2]) / 2
            ym = (a[3] + b[1]) / 2
            pts = [(xa, a[3] + c.px(6)), (xa, ym), (xb, ym), (xb, b[1] - c.px(6))]
        c.arrow(pts, colour=c.pal.edge, lw=lw, head=head)


def _badge(c: _Canvas, x: float, y: float, r: float, text: str) -> None:
    from matplotlib.patches import Circle

    c.ax.add_patch(Circle((x, y), r, facecolor=_rgb(c.pal.edge), edgecolor="none", zorder=4))
    side = r * 1.25
    c.text(text, (x - side / 2, y - side / 2, x + side / 2, y + side / 2), colour=c.pal.strong, bold=True,
           max_size=int(r), min_size=1, z=5)


def _draw_cycle(c: _Canvas, d: Diagram, area: Rect) -> None:
    n = len(d.labels)
    x0, y0, x1, y1 = area
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = x1 - x0, y1 - y0
    gap = c.px(40)
    pad = c.px(12)

    def place(bw: float, bh: float) -> tuple[list[tuple[float, float]], list[Rect], float, float]:
        # nodes on an ellipse that fills the area, so wide areas give wide nodes
        rx, ry = max(1.0, (w - bw) / 2), max(1.0, (h - bh) / 2)
        cs = [(cx + rx * math.cos(math.radians(90 - 360 * i / n)), cy - ry * math.sin(math.radians(90 - 360 * i / n)))
              for i in range(n)]
        return cs, [(x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2) for x, y in cs], rx, ry

    # the node shape whose labels get the largest type, among those that leave room
    best: tuple[int, float, float, list[tuple[float, float]], list[Rect], float, float] | None = None
    for ratio in (0.42, 0.6, 0.8):
        bw = w * 0.42
        while True:
            centres, rects, rx, ry = place(bw, bw * ratio)
            if all(not _overlap(rects[i], rects[(i + 1) % n], gap) for i in range(n)) or bw < c.px(60):
                break
            bw *= 0.95
        size = c.size_for(d.labels, bw - 2 * pad, bw * ratio - 2 * pad, bold=True, max_size=int(c.px(36)))
        if best is None or size > best[0]:
            best = (size, bw, bw * ratio, centres, rects, rx, ry)
    assert best is not None  # three ratios were tried
    size, bw, bh, centres, rects, rx, ry = best
    if c.rtl:  # counter-clockwise for right-to-left readers
        centres = [centres[0], *centres[:0:-1]]
        rects = [rects[0], *rects[:0:-1]]
    lw = max(1.5, c.px(3))
    for r, label in zip(rects, d.labels, strict=True):
        c.rect(r, fill=c.pal.fill, edge=c.pal.edge, lw=lw, radius=c.px(18))
        c.text(label, (r[0] + pad, r[1] + pad, r[2] - pad, r[3] - pad), colour=c.pal.text, bold=True,
               max_size=size, size=size)
    # arrows along the circle, from one box's edge to the next's
    head = max(8.0, c.px(20))
    clear = c.px(10)
    angles = [math.atan2((cy - y) / ry, (x - cx) / rx) for x, y in centres]  # ellipse parameter, y up
    for i in range(n):
        a0, a1 = angles[i], angles[(i + 1) % n]
        # clockwise is the negative direction in maths angles; right-to-left readers go the other way
        step = (a1 - a0) % (2 * math.pi) if c.rtl else -((a0 - a1) % (2 * math.pi))
        ts = np.linspace(0, 1, 240)
        pts = [(cx + rx * math.cos(a0 + step * t), cy - ry * math.sin(a0 + step * t)) for t in ts]
        grown = [_grow(rects[i], clear), _grow(rects[(i + 1) % n], clear)]
        keep = [p for p in pts if not any(_inside(p, g) for g in grown)]
        if len(keep) >= 2:
            c.arrow(keep, colour=c.pal.edge, lw=lw, head=head)


def _overlap(a: Rect, b: Rect, gap: float) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def _grow(r: Rect, by: float) -> Rect:
    return (r[0] - by, r[1] - by, r[2] + by, r[3] + by)


def _inside(p: tuple[float, float], r: Rect) -> bool:
    return r[0] <= p[0] <= r[2] and r[1] <= p[1] <= r[3]


def _draw_comparison(c: _Canvas, d: Diagram, area: Rect) -> None:
    x0, y0, x1, y1 = area
    ncol, nrow = len(d.columns), len(d.rows)
    # column widths follow the longest text in each column, kept between 0.6x and 1.6x of equal
    lengths = [max(len(d.columns[j]), *(len(r[j]) for r in d.rows), 1) for j in range(ncol)]
    mean = sum(lengths) / ncol
    weights = [min(1.6, max(0.6, n / mean)) for n in lengths]
    total_w = x1 - x0
    widths = [total_w * wgt / sum(weights) for wgt in weights]
    row_h = min((y1 - y0) / (nrow + 1), c.px(130))
    top = y0 + (y1 - y0 - row_h * (nrow + 1)) / 2
    pad_x, pad_y = c.px(14), c.px(8)
    lefts = [x0 + sum(widths[:j]) for j in range(ncol)]
    if c.rtl:  # the first column on the reading side
        lefts = [x1 - sum(widths[: j + 1]) for j in range(ncol)]

    def cell(j: int, r: int) -> Rect:
        ya = top + r * row_h
        return (lefts[j], ya, lefts[j] + widths[j], ya + row_h)

    def inner(rc: Rect) -> Rect:
        return (rc[0] + pad_x, rc[1] + pad_y, rc[2] - pad_x, rc[3] - pad_y)

    # one size for the header, one for the body: a table reads calmly when sizes agree
    head_size = min(c.ts.fit(t, *_wh(inner(cell(j, 0))), bold=True, max_size=int(c.px(34)),
                             min_size=c.floor(), max_lines=2).size for j, t in enumerate(d.columns))
    body = [(j, r + 1, t) for r, row in enumerate(d.rows) for j, t in enumerate(row) if t]
    body_size = min([c.ts.fit(t, *_wh(inner(cell(j, r))), bold=(j == 0), max_size=int(c.px(30)),
                              min_size=c.floor(), max_lines=3).size for j, r, t in body] or [int(c.px(30))])
    c.rect((x0, top, x1, top + row_h), fill=c.pal.edge, edge=None, radius=c.px(10))
    for r in range(1, nrow + 1):
        if r % 2 == 0:
            c.rect((x0, top + r * row_h, x1, top + (r + 1) * row_h), fill=c.pal.fill, edge=None)
    lw = max(1.0, c.px(2))
    c.ax.plot([x0, x1], [top + (nrow + 1) * row_h] * 2, color=_rgb(c.pal.edge), linewidth=lw, zorder=2,
              solid_capstyle="butt")
    for j, t in enumerate(d.columns):
        c.text(t, inner(cell(j, 0)), colour=c.pal.strong, bold=True, max_size=head_size, size=head_size, max_lines=2)
    for j, r, t in body:
        c.text(t, inner(cell(j, r)), colour=c.pal.text, bold=(j == 0), max_size=body_size, size=body_size,
               max_lines=3, align="start" if j == 0 else "center")


def _wh(r: Rect) -> tuple[float, float]:
    return r[2] - r[0], r[3] - r[1]


def format_value(v: float) -> str:
    """A bar's value as people write it: 1,500 / 3.75 / 0.042 / -2."""
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    return f"{v:.2g}"


def _draw_bars(c: _Canvas, d: Diagram, area: Rect) -> None:
    n = len(d.values)
    x0, y0, x1, y1 = area
    hi, lo = max(0.0, *d.values), min(0.0, *d.values)
    span = (hi - lo) or 1.0
    label_h = max(c.floor() * 2 * _Typesetter.LEADING, (y1 - y0) * 0.17)
    value_h = max(c.floor() * 1.3, c.px(44))
    plot_top = y0 + value_h
    plot_bottom = y1 - label_h - (value_h if lo < 0 else 0.0)
    unit = (plot_bottom - plot_top) / span  # pixels per unit of value
    zero = plot_top + hi * unit
    slot = (x1 - x0) / n
    bar_w = slot * 0.62
    xs = [x0 + slot * (i + 0.5) for i in range(n)]
    if c.rtl:
        xs = xs[::-1]
    values = [format_value(v) for v in d.values]
    lab_size = c.size_for(d.labels, slot - c.px(10), label_h - c.px(8), bold=False, max_size=int(c.px(28)),
                          max_lines=2)
    val_size = c.size_for(values, slot - c.px(6), value_h - c.px(6), bold=True, max_size=int(c.px(30)), max_lines=1)
    for x, v, shown, label in zip(xs, d.values, values, d.labels, strict=True):
        top, bottom = sorted((zero, zero - v * unit))
        if bottom - top >= 1:
            c.rect((x - bar_w / 2, top, x + bar_w / 2, bottom), fill=c.pal.edge, edge=None, radius=c.px(4))
        vbox = ((x - slot / 2 + c.px(3), top - value_h, x + slot / 2 - c.px(3), top) if v >= 0 else
                (x - slot / 2 + c.px(3), bottom, x + slot / 2 - c.px(3), bottom + value_h))
        c.text(shown, vbox, colour=c.pal.text, bold=True, max_size=val_size, size=val_size, max_lines=1)
        lbox = (x - slot / 2 + c.px(5), y1 - label_h + c.px(8), x + slot / 2 - c.px(5), y1)
        c.text(label, lbox, colour=c.pal.text, max_size=lab_size, size=lab_size, max_lines=2, valign="top")
    c.ax.plot([x0, x1], [zero, zero], color=_rgb(c.pal.muted), linewidth=max(1.0, c.px(2.5)), zorder=2,
              solid_capstyle="butt")


_DRAW = {"steps": _draw_steps, "cycle": _draw_cycle, "comparison": _draw_comparison, "bar_chart": _draw_bars}


# --------------------------------------------------------------------------- public


def draw_diagram(diagram: Diagram, *, width: int, height: int, theme: slides.Theme, language: str = "en",
                 min_font_px: int | None = None) -> Image.Image:
    """``diagram`` drawn with matplotlib on the theme's background, exactly ``width`` x ``height`` px (RGB).

    Labels shrink to fit down to ``min_font_px`` (default: 20 px per 700 px of the geometric mean side,
    at least 10), then are cut with an ellipsis. Raises ConfigError for a size too small to draw
    on, RenderError when drawing fails.
    """
    return _render(diagram, width=width, height=height, theme=theme, language=language,
                   min_font_px=min_font_px).image


@dataclass
class _Drawn:
    image: Image.Image
    placed: list[tuple[str, Rect, RGB]]  # every text drawn, with the box it was fitted to
    cuts: list[str]  # texts cut with an ellipsis
    lines: dict[str, list[str]]  # every text drawn, as its lines


def _render(diagram: Diagram, *, width: int, height: int, theme: slides.Theme, language: str = "en",
            min_font_px: int | None = None) -> _Drawn:
    if not isinstance(diagram, _Diagram):
        raise ConfigError(f"draw_diagram needs a diagram, got {type(diagram).__name__}; build one with "
                          "parse_diagram(...)")
    if width < 64 or height < 64:
        raise ConfigError(f"a diagram needs at least 64 x 64 px, got {width} x {height}; draw it larger")
    rtl = language.split("-")[0].lower() in slides._RTL_LANGUAGES or slides.is_rtl(" ".join(diagram.texts()))
    with _LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = _Canvas(int(width), int(height), palette(theme), language, rtl, min_font_px)
        try:
            area = _caption_band(c, diagram.caption)
            _DRAW[diagram.kind](c, diagram, area)
            img = c.image()
        except (ValueError, RuntimeError, OSError) as exc:
            raise RenderError(f"could not draw the {diagram.kind} diagram: {exc}. Fix: simplify its labels; "
                              "if it persists report it with the diagram") from exc
        finally:
            c.fig.clear()
    messages = sorted({str(w.message) for w in caught})
    glyphs = [m for m in messages if m.startswith("Glyph ")]
    for m in [m for m in messages if m not in glyphs]:
        log.warning("diagram: %s", m)
    if glyphs:
        log.warning("diagram: %d characters have no glyph in the chosen fonts and show as boxes; install "
                    "fonts-noto-core and fonts-noto-cjk", len(glyphs))
    return _Drawn(img, c.placed, c.cuts, c.lines)


def compose_diagram_slide(diagram: Diagram, *, title: str, bullets: Sequence[str], footer: str, index: int,
                          total: int, aspect: str = "16:9", theme: str = "light",
                          language: str = "en") -> slides.SlideResult:
    """A slide with ``diagram`` where the illustration goes, drawn at the illustration box's exact size.

    The layout does not depend on the picture, so a first pass with a placeholder finds the box and
    the second pass places a diagram drawn at exactly that size (pasted 1:1, no resampling). Labels
    stay at least ``LABEL_FLOOR_PX`` at 1080 p; text cut to respect that is reported in ``notes``
    and sets ``overflow``, as cut slide text does.
    """
    kw = {"title": title, "bullets": bullets, "footer": footer, "index": index, "total": total,
          "aspect": aspect, "theme": theme, "language": language}
    probe = slides.compose_slide(illustration=Image.new("RGB", (16, 9)), **kw)
    box = probe.boxes.get("illustration")
    if box is None:
        raise RenderError("the slide layout has no illustration box; this is a bug in lessonforge.tools.media.slides")
    W, H = slides.ASPECTS[aspect]
    drawn = _render(diagram, width=box[2] - box[0], height=box[3] - box[1], theme=slides.THEMES[theme],
                    language=language, min_font_px=round(LABEL_FLOOR_PX * min(W, H) / 1080))
    result = slides.compose_slide(illustration=drawn.image, **kw)
    if drawn.cuts:
        result.overflow = True
        result.notes.append("diagram text cut with an ellipsis at the smallest size: "
                            + ", ".join(repr(t) for t in drawn.cuts) + "; shorten these labels")
    return result
