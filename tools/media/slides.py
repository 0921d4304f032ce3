"""The typesetter: one lesson slide drawn with Pillow.

A slide is a title, up to five short bullets, an optional illustration and a footer with the
lesson title and "i / N". Text is set by the tool, never by the image model (diffusion models draw
pictures well and letters badly).

Layout, per aspect ratio::

    16:9  title on top; bullets beside the illustration (mirrored for right-to-left languages)
    9:16  title; illustration; bullets below it
    1:1   title; illustration; bullets below it
    any   without an illustration, a text-first layout: text uses the whole width, set larger,
          with an accent band on the reading side; a slide with neither bullets nor illustration
          shows its title large and centred (a hook or a question)

Text auto-fits its box: it wraps by measured pixel width (per character for CJK), then shrinks
to a floor that stays legible at the output size (bullets >= 28 px at 1080 p); text that still
does not fit is cut with an ellipsis and reported (``SlideResult.overflow``). Every text block is
drawn into its own box, so nothing lands outside it.

Fonts are found by the script of each string (Noto Sans / DejaVu Sans for Latin, Greek and
Cyrillic; Noto Sans Arabic, Hebrew, Devanagari, Thai; Noto Sans CJK and other CJK fonts when
installed); right-to-left text is shaped with libraqm when Pillow has it, and right-aligned. A
script's face that lacks a few characters ("+" in Noto Sans Arabic) is merged with the family's
Latin face, so a line keeps one typeface (per-glyph fallback). Lines are balanced (no lone last
word) and Japanese breaks between phrases, not inside words. The chalk theme paints a board.

The layouts by scene role live in :mod:`lessonforge.tools.media.layouts`; :func:`compose_slide` is the earlier
one-layout slide, kept for callers that have not moved.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import logging
import os
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps, features

from lessonforge.tools.base import ConfigError, RenderError

log = logging.getLogger(__name__)

ASPECTS: dict[str, tuple[int, int]] = {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)}

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive)

MAX_BULLETS = 5
ELLIPSIS = "\u2026"


# --------------------------------------------------------------------------- colour


def _channel(v: int) -> float:
    c = v / 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(rgb: Sequence[int]) -> float:
    """WCAG 2.x relative luminance of an sRGB colour (0 = black, 1 = white)."""
    r, g, b = (_channel(int(v)) for v in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(rgb1: Sequence[int], rgb2: Sequence[int]) -> float:
    """WCAG 2.x contrast ratio, 1..21. AA asks 4.5 for body text, 3 for large text and graphics."""
    hi, lo = sorted((relative_luminance(rgb1), relative_luminance(rgb2)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@dataclass(frozen=True)
class Theme:
    """Slide colours. Every colour meets WCAG AA (4.5:1) against ``background``."""

    name: str
    background: RGB
    title: RGB
    text: RGB
    accent: RGB  # bullet markers, bars, the text-first band
    muted: RGB  # footer text and rule
    surface: str = "flat"  # "chalk": a board's grain and smudges, with a wooden frame
    frame: RGB | None = None  # the board's frame colour


def _chalk_board(size: tuple[int, int], base: RGB, frame: RGB | None) -> Image.Image:
    """A chalkboard: smudges and grain around ``base`` (within a few levels), a wooden frame. Deterministic."""
    import numpy as np

    W, H = size
    rng = np.random.default_rng(20240611)
    small = rng.normal(0.0, 1.0, (max(2, H // 60), max(2, W // 60))).astype(np.float32)
    blot = np.asarray(Image.fromarray(small).resize((W, H), Image.Resampling.BICUBIC), dtype=np.float32)
    grain = rng.normal(0.0, 1.0, (H, W)).astype(np.float32)
    wiggle = np.clip(blot * 3.0 + grain * 2.2, -7, 7)
    arr = np.clip(np.asarray(base, np.float32)[None, None, :] + wiggle[..., None], 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    if frame is not None:
        f = max(6, round(min(W, H) * 0.016))
        d = ImageDraw.Draw(img)
        d.rectangle((0, 0, W - 1, H - 1), outline=frame, width=f)
        inner = tuple(max(0, int(c * 0.7)) for c in frame)
        d.rectangle((f, f, W - f - 1, H - f - 1), outline=inner, width=max(2, f // 4))
    return img


@functools.lru_cache(maxsize=12)
def _surface(theme: Theme, size: tuple[int, int]) -> Image.Image:
    if theme.surface == "chalk":
        return _chalk_board(size, theme.background, theme.frame)
    return Image.new("RGB", size, theme.background)


def canvas(theme: Theme, size: tuple[int, int]) -> Image.Image:
    """A fresh slide background for ``theme`` (a flat colour, or the chalkboard)."""
    return _surface(theme, size).copy()


def frame_inset(theme: Theme, size: tuple[int, int]) -> int:
    """Pixels along each edge that the theme's frame covers (0 without one)."""
    return (
        0 if theme.frame is None else max(6, round(min(size) * 0.016)) + max(2, max(6, round(min(size) * 0.016)) // 4)
    )


_SMALL_WORDS = {"a", "an", "and", "as", "at", "but", "by", "for", "from", "in", "into", "nor", "of", "on", "or",
                "per", "the", "to", "vs", "via", "with"}


def display_title(text: str, language: str) -> str:
    """``text`` in title case where the language writes titles so (English), else exactly as written.

    Words with capitals or digits inside (CO2, DNA, iPhone) and the small words are left alone.
    """
    if not language.lower().startswith("en"):
        return text
    words = text.split(" ")
    out = []
    for i, w in enumerate(words):
        core = w.strip("\"'([{")
        if (not core or any(c.isupper() or c.isdigit() for c in core[1:]) or not core[0].isalpha()
                or i and i < len(words) - 1 and core.lower() in _SMALL_WORDS):
            out.append(w)
        else:
            at = w.index(core[0])
            out.append(w[:at] + core[0].upper() + w[at + 1:])
    return " ".join(out)


THEMES: dict[str, Theme] = {
    "light": Theme("light", (250, 250, 247), (16, 32, 64), (33, 37, 41), (0, 95, 184), (88, 96, 105)),
    "dark": Theme("dark", (17, 20, 27), (245, 247, 250), (222, 226, 232), (95, 179, 255), (160, 168, 180)),
    "chalk": Theme("chalk", (38, 59, 48), (255, 250, 235), (236, 238, 226), (255, 214, 102), (190, 204, 194),
                   surface="chalk", frame=(120, 84, 52)),
}


# --------------------------------------------------------------------------- scripts and fonts

_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0590, 0x05FF, "hebrew"),
    (0xFB1D, 0xFB4F, "hebrew"),
    (0x0600, 0x06FF, "arabic"),
    (0x0750, 0x077F, "arabic"),
    (0x08A0, 0x08FF, "arabic"),
    (0xFB50, 0xFDFF, "arabic"),
    (0xFE70, 0xFEFF, "arabic"),
    (0x0900, 0x097F, "devanagari"),
    (0x0980, 0x09FF, "bengali"),
    (0x0B80, 0x0BFF, "tamil"),
    (0x0E00, 0x0E7F, "thai"),
    (0x1100, 0x11FF, "cjk"),
    (0x2E80, 0x2FFF, "cjk"),
    (0x3000, 0x303F, "cjk"),
    (0x3040, 0x30FF, "cjk"),
    (0x3100, 0x31FF, "cjk"),
    (0x3400, 0x4DBF, "cjk"),
    (0x4E00, 0x9FFF, "cjk"),
    (0xAC00, 0xD7AF, "cjk"),
    (0xF900, 0xFAFF, "cjk"),
    (0xFF00, 0xFFEF, "cjk"),
    (0x20000, 0x2FFFF, "cjk"),
)

_RTL_LANGUAGES = {"ar", "he", "iw", "fa", "ur", "ps", "yi", "dv", "ckb", "sd", "ug"}

# Debian package that provides fonts for each script.
_FONT_PACKAGE = {
    "latin": "fonts-dejavu-core (or fonts-noto-core)",
    "cjk": "fonts-noto-cjk",
}

_DEBIAN = "/usr/share/fonts"


def char_script(ch: str) -> str:
    """"latin" for Latin/Greek/Cyrillic and everything unlisted; else the script's name."""
    cp = ord(ch)
    for lo, hi, name in _RANGES:
        if lo <= cp <= hi:
            return name
    return "latin"


def text_script(text: str) -> str:
    """The dominant non-Latin script of ``text`` ("latin" when there is none)."""
    counts: dict[str, int] = {}
    for ch in text:
        if ch.isspace():
            continue
        s = char_script(ch)
        if s != "latin":
            counts[s] = counts.get(s, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else "latin"


def is_rtl(text: str) -> bool:
    """Whether the first strongly directional character of ``text`` is right-to-left."""
    for ch in text:
        bidi = unicodedata.bidirectional(ch)
        if bidi in ("R", "AL"):
            return True
        if bidi == "L":
            return False
    return False


def _cjk_index(language: str) -> int:
    """Face index inside Noto Sans CJK .ttc files: JP, KR, SC, TC, HK."""
    lang = language.lower().replace("_", "-")
    if lang.startswith("ja"):
        return 0
    if lang.startswith("ko"):
        return 1
    if lang in ("zh-tw", "zh-hant", "zh-hant-tw") or lang.startswith("zh-hant"):
        return 3
    if lang in ("zh-hk", "zh-mo"):
        return 4
    return 2


def _noto(name: str) -> str:
    return f"{_DEBIAN}/truetype/noto/{name}"


@functools.lru_cache(maxsize=1)
def _matplotlib_fonts() -> str | None:
    """matplotlib's bundled DejaVu folder, found without importing matplotlib."""
    try:
        spec = importlib.util.find_spec("matplotlib")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf"
    return str(folder) if folder.is_dir() else None


def _latin_candidates(bold: bool) -> list[tuple[str, int]]:
    w = "Bold" if bold else "Regular"
    dj = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    paths = [_noto(f"NotoSans-{w}.ttf"), f"{_DEBIAN}/truetype/dejavu/{dj}"]
    mpl = _matplotlib_fonts()
    if mpl:
        paths.append(os.path.join(mpl, dj))
    return [(p, 0) for p in paths]


@functools.lru_cache(maxsize=16)
def _cjk_candidates(bold: bool, language: str) -> list[tuple[str, int]]:
    w = "Bold" if bold else "Regular"
    idx = _cjk_index(language)
    found: list[tuple[str, int]] = []
    for pattern in (
        f"{_DEBIAN}/opentype/noto/NotoSansCJK-{w}.ttc",
        f"{_DEBIAN}/opentype/noto/NotoSansCJK-Regular.ttc",
        f"{_DEBIAN}/**/NotoSansCJK*-{w}.tt[cf]",
        f"{_DEBIAN}/**/NotoSansCJK*.tt[cf]",
    ):
        for p in sorted(glob.glob(pattern, recursive=True)):
            found.append((p, idx if p.endswith(".ttc") else 0))
    for p in (
        f"{_DEBIAN}/truetype/droid/DroidSansFallbackFull.ttf",
        f"{_DEBIAN}/truetype/wqy/wqy-microhei.ttc",
        f"{_DEBIAN}/truetype/wqy/wqy-zenhei.ttc",
        f"{_DEBIAN}/opentype/ipafont-gothic/ipagp.ttf",
        f"{_DEBIAN}/truetype/nanum/NanumGothic.ttf",
    ):
        found.append((p, 0))
    return found


def font_candidates(script: str, *, bold: bool = False, language: str = "en") -> list[tuple[str, int]]:
    """Font files (path, face index) that may set ``script``, best first, existing or not."""
    w = "Bold" if bold else "Regular"
    by_script: dict[str, list[tuple[str, int]]] = {
        "arabic": [(_noto(f"NotoSansArabic-{w}.ttf"), 0), (_noto(f"NotoNaskhArabic-{w}.ttf"), 0)],
        "hebrew": [(_noto(f"NotoSansHebrew-{w}.ttf"), 0)],
        "devanagari": [(_noto(f"NotoSansDevanagari-{w}.ttf"), 0)],
        "bengali": [(_noto(f"NotoSansBengali-{w}.ttf"), 0)],
        "tamil": [(_noto(f"NotoSansTamil-{w}.ttf"), 0)],
        "thai": [(_noto(f"NotoSansThai-{w}.ttf"), 0), (_noto(f"NotoLoopedThai-{w}.ttf"), 0)],
    }
    if script == "cjk":
        first = list(_cjk_candidates(bold, language))
    else:
        first = by_script.get(script, [])
    # Latin fonts close every list: they cover digits and punctuation, DejaVu also Arabic/Hebrew.
    out: list[tuple[str, int]] = []
    for cand in first + _latin_candidates(bold):
        if cand not in out:
            out.append(cand)
    return out


def _load(path: str, index: int, size: int, raqm: bool) -> ImageFont.FreeTypeFont:
    # One font object per thread: a FreeType face must not be used by two threads at once.
    return _load_for_thread(path, index, size, raqm, threading.get_ident())


@functools.lru_cache(maxsize=512)
def _load_for_thread(path: str, index: int, size: int, raqm: bool, _thread: int) -> ImageFont.FreeTypeFont:
    engine = ImageFont.Layout.RAQM if raqm else ImageFont.Layout.BASIC
    return ImageFont.truetype(path, size, index=index, layout_engine=engine)


@functools.lru_cache(maxsize=64)
def _usable(path: str, index: int) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        _load(path, index, 32, False)
    except OSError as exc:  # unreadable or not a font
        log.warning("skipping font %s: %s", path, exc)
        return False
    return True


@functools.lru_cache(maxsize=64)
def _notdef(path: str, index: int) -> tuple[tuple[int, int], bytes]:
    mask = _load(path, index, 32, False).getmask("\U0010fffd")
    return mask.size, bytes(mask)


@functools.lru_cache(maxsize=65536)
def _has_glyph(path: str, index: int, ch: str) -> bool:
    mask = _load(path, index, 32, False).getmask(ch)
    return (mask.size, bytes(mask)) != _notdef(path, index)


def _needs_glyph(ch: str) -> bool:
    return not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf", "Zs", "Zl", "Zp", "Mn")


def raqm_available() -> bool:
    return bool(features.check("raqm"))


@dataclass(frozen=True)
class FontChoice:
    """A font file picked for one string, and what it cannot draw."""

    path: str
    index: int
    script: str
    missing: str = ""  # characters the font has no glyph for (drawn as boxes)

    def at(self, size: int) -> ImageFont.FreeTypeFont:
        return _load(self.path, self.index, size, raqm_available())


_MERGE_LOCK = threading.Lock()


def _merged_font(primary: str, latin: str) -> str | None:
    """One face with ``primary``'s glyphs and ``latin``'s for everything it lacks (same family, same weight).

    Per-glyph fallback inside one face: an Arabic line with "+" or "…" keeps its Arabic face instead
    of moving the whole line to another font. Built once with fontTools and kept in the user cache.
    """
    from lessonforge.tools.cache import atomic_path, content_key, user_cache_dir

    try:
        stamp = [(p, os.path.getsize(p), int(os.path.getmtime(p))) for p in (primary, latin)]
    except OSError:
        return None
    out = user_cache_dir() / "fonts" / f"{content_key('merged-font', 1, stamp)[:24]}.ttf"
    with _MERGE_LOCK:
        if out.is_file():
            return str(out)
        try:
            from fontTools.merge import Merger, Options

            font = Merger(options=Options(drop_tables=["vhea", "vmtx"])).merge([primary, latin])
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as tmp:
                font.save(str(tmp))
        except Exception as exc:
            log.warning("could not merge %s with %s for per-glyph fallback: %s", primary, latin, exc)
            return None
    return str(out)


@functools.lru_cache(maxsize=1024)
def choose_font(text: str, *, bold: bool = False, language: str = "en") -> FontChoice:
    """The first installed font that covers every character of ``text``, by its script.

    A script's own face that lacks a few characters (Noto Sans Arabic has no "+") gets them from
    the family's Latin face, merged into one (per-glyph fallback), so one run keeps one typeface.
    When none covers everything, the one that covers most is returned with ``missing`` set.
    Raises RenderError when no font at all is installed.
    """
    script = text_script(text)
    needed = sorted({ch for ch in text if _needs_glyph(ch)})
    best: FontChoice | None = None
    candidates = font_candidates(script, bold=bold, language=language)
    if script not in ("latin", "cjk"):
        first, latin = candidates[0], _latin_candidates(bold)[0]
        if _usable(*first) and _usable(*latin) and any(not _has_glyph(*first, ch) for ch in needed):
            merged = _merged_font(first[0], latin[0])
            if merged:
                candidates = [(merged, 0), *candidates]
    for path, index in candidates:
        if not _usable(path, index):
            continue
        missing = "".join(ch for ch in needed if not _has_glyph(path, index, ch))
        choice = FontChoice(path, index, script, missing)
        if not missing:
            return choice
        if best is None or len(missing) < len(best.missing):
            best = choice
    if best is None:
        raise RenderError(
            "No usable font found for slide text (looked for Noto Sans and DejaVu Sans under "
            f"{_DEBIAN} and in matplotlib). Fix: install one, e.g. `apt-get install fonts-dejavu-core "
            "fonts-noto-core`."
        )
    return best


# --------------------------------------------------------------------------- wrapping

_NO_LINE_START = set(
    "、。，．,.:;!?)]}」』】〕〉》〙〗”’ー…‥・：；？！）ゝゞぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮ％"
)
_NO_LINE_END = set("([{「『【〔〈《〘〖“‘（")


def _is_cjk_char(ch: str) -> bool:
    return char_script(ch) == "cjk" and ch not in "\uff01\uff08\uff09"


@dataclass(frozen=True)
class _Token:
    text: str
    space_before: bool


def _is_hiragana(ch: str) -> bool:
    return "\u3041" <= ch <= "\u309f"


def _has_kana(text: str) -> bool:
    return any("\u3041" <= ch <= "\u30ff" for ch in text)


def _phrases(word: str) -> list[str]:
    """Japanese phrases (bunsetsu, approximately): a run of kanji, katakana or Latin, then its hiragana.

    Lines break between phrases, so a word such as 光合成 or 二酸化炭素 is never split.
    """
    out: list[str] = []
    buf = ""
    for ch in word:
        if buf and _is_hiragana(buf[-1]) and not _is_hiragana(ch) and ch not in _NO_LINE_START:
            out.append(buf)
            buf = ""
        buf += ch
        if ch in "、。，．！？":
            out.append(buf)
            buf = ""
    if buf:
        out.append(buf)
    return out


def tokenize(text: str) -> list[_Token]:
    """Break opportunities: between words, between CJK characters (kinsoku rules kept), and between
    Japanese phrases rather than inside words when the text has kana."""
    tokens: list[_Token] = []
    japanese = _has_kana(text)
    for w_i, word in enumerate(text.split()):
        pieces: list[str] = []
        buf = ""
        if japanese:
            pieces = _phrases(word)
        for ch in ("" if japanese else word):
            if _is_cjk_char(ch):
                if buf:
                    pieces.append(buf)
                    buf = ""
                pieces.append(ch)
            else:
                buf += ch
        if buf:
            pieces.append(buf)
        merged: list[str] = []
        for p in pieces:  # no closing punctuation at a line start, no opening one at a line end
            if merged and (p[0] in _NO_LINE_START or merged[-1][-1] in _NO_LINE_END):
                merged[-1] += p
            else:
                merged.append(p)
        for j, p in enumerate(merged):
            tokens.append(_Token(p, space_before=(j == 0 and w_i > 0)))
    return tokens


def _clusters(text: str) -> list[str]:
    """Characters with their combining marks attached (approximate grapheme clusters)."""
    out: list[str] = []
    for ch in text:
        if out and (unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Mc", "Me")):
            out[-1] += ch
        else:
            out.append(ch)
    return out


class _Measure:
    """Width of a string in a font, with the layout options used to draw it."""

    def __init__(self, font: ImageFont.FreeTypeFont, direction: str | None, language: str | None) -> None:
        self.font = font
        self.kw: dict[str, Any] = {}  # keyword arguments of Pillow's text calls (direction, language)
        if raqm_available():
            if direction:
                self.kw["direction"] = direction
            if language:
                self.kw["language"] = language

        self._cache: dict[str, float] = {}

    def width(self, text: str) -> float:
        w = self._cache.get(text)
        if w is None:
            w = self._cache[text] = self.font.getlength(text, **self.kw)
        return w


def _break_long(token: str, measure: _Measure, max_w: float) -> list[str]:
    parts: list[str] = []
    buf = ""
    for cl in _clusters(token):
        if buf and measure.width(buf + cl) > max_w:
            parts.append(buf)
            buf = cl
        else:
            buf += cl
    if buf:
        parts.append(buf)
    return parts


def wrap_text(text: str, font: ImageFont.FreeTypeFont, max_width: float, *, direction: str | None = None,
              language: str | None = None) -> list[str]:
    """Greedy line breaking by measured width; a word wider than a line is broken per character."""
    return _wrap(text, _Measure(font, direction, language), max_width) or []


def balance(text: str, measure: _Measure, max_w: float, lines: list[str]) -> list[str]:
    """The same number of lines as ``lines``, as even in width as they go: no lone last word.

    The narrowest width that still gives that many lines is found by bisection; a single line or a
    paragraph with a word broken across lines is kept as it is.
    """
    n = len(lines)
    if n < 2:
        return lines
    lo, hi = max_w * 0.35, float(max_w)
    best = lines
    for _ in range(8):
        mid = (lo + hi) / 2
        trial = _wrap(text, measure, mid, whole_words=True)
        if trial is not None and len(trial) == n:
            best, hi = trial, mid
        else:
            lo = mid
    return best


def _wrap(text: str, measure: _Measure, max_w: float, *, whole_words: bool = False) -> list[str] | None:
    """Greedy lines; a token wider than a line is broken per cluster (or, with ``whole_words``, None)."""
    lines: list[str] = []
    line = ""
    for tok in tokenize(text):
        candidate = (line + (" " if tok.space_before else "") + tok.text) if line else tok.text
        if measure.width(candidate) <= max_w:
            line = candidate
            continue
        if line:
            lines.append(line)
        if measure.width(tok.text) <= max_w:
            line = tok.text
        elif whole_words:
            return None
        else:
            *full, line = _break_long(tok.text, measure, max_w)
            lines.extend(full)
    if line:
        lines.append(line)
    return lines


def _ellipsize(line: str, measure: _Measure, max_w: float, mark: str = ELLIPSIS) -> str:
    """``line`` cut at a cluster boundary so that it plus ``mark`` (an ellipsis) fits ``max_w``."""
    cl = _clusters(line.rstrip())
    while cl:
        candidate = "".join(cl).rstrip(" ,;:.-\u3001\u3002") + mark
        if measure.width(candidate) <= max_w:
            return candidate
        cl.pop()
    return mark


# --------------------------------------------------------------------------- fitting


@dataclass
class _Para:
    text: str
    choice: FontChoice
    direction: str  # "ltr" | "rtl"


@dataclass
class _SetPara:
    para: _Para
    font: ImageFont.FreeTypeFont
    lines: list[str]
    line_h: int
    ascent: int
    measure: _Measure


@dataclass
class _Block:
    size: int
    paras: list[_SetPara]
    height: int
    overflow: bool = False
    broken: bool = False  # a word was broken across lines (allowed only at the smallest size)


def _line_metrics(font: ImageFont.FreeTypeFont, size: int, leading: float) -> tuple[int, int]:
    ascent, descent = font.getmetrics()
    return int(round(ascent + descent + leading * size)), ascent


def _set_block(paras: Sequence[_Para], size: int, width: int, indent: int, gap_em: float, leading: float,
               language: str | None) -> _Block:
    out: list[_SetPara] = []
    height = 0
    broken = False
    for i, p in enumerate(paras):
        font = p.choice.at(size)
        measure = _Measure(font, p.direction, language)
        lines = _wrap(p.text, measure, max(1, width - indent), whole_words=True)
        if lines is None:  # a word wider than the line: broken, and this size is a last resort
            lines = _wrap(p.text, measure, max(1, width - indent)) or []
            broken = True
        line_h, ascent = _line_metrics(font, size, leading)
        out.append(_SetPara(p, font, lines, line_h, ascent, measure))
        height += len(lines) * line_h + (int(round(gap_em * size)) if i else 0)
    return _Block(size, out, height, broken=broken)


def _fits(block: _Block, box_h: int, max_lines: int | None) -> bool:
    if block.height > box_h:
        return False
    return max_lines is None or sum(len(p.lines) for p in block.paras) <= max_lines


def _fit_block(paras: Sequence[_Para], box: Box, *, max_size: int, min_size: int, indent_em: float = 0.0,
               gap_em: float = 0.0, leading: float = 0.1, max_lines: int | None = None,
               language: str | None = None) -> _Block:
    """The largest size in [min_size, max_size] at which ``paras`` fit ``box``; else truncated."""
    width, box_h = box[2] - box[0], box[3] - box[1]

    def attempt(size: int) -> _Block:
        return _set_block(paras, size, width, int(round(indent_em * size)), gap_em, leading, language)

    best = attempt(min_size)
    if not _fits(best, box_h, max_lines):
        return _truncate(best, box_h, max_lines, gap_em, width, int(round(indent_em * min_size)))
    lo, hi = min_size, max_size  # invariant: lo fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        block = attempt(mid)
        if _fits(block, box_h, max_lines) and not block.broken:
            lo, best = mid, block
        else:
            hi = mid - 1
    for sp in best.paras:
        sp.lines = balance(sp.para.text, sp.measure, max(1, width - int(round(indent_em * best.size))), sp.lines)
    return best


def _truncate(block: _Block, box_h: int, max_lines: int | None, gap_em: float, width: int, indent: int) -> _Block:
    """Keep whole lines while they fit; the last kept line ends with an ellipsis."""
    kept: list[_SetPara] = []
    height = 0
    lines_left = max_lines if max_lines is not None else 10**9
    gap = int(round(gap_em * block.size))
    for i, sp in enumerate(block.paras):
        extra = gap if i else 0
        room = (box_h - height - extra) // sp.line_h
        n = min(len(sp.lines), room, lines_left)
        if n <= 0:
            break
        kept.append(_SetPara(sp.para, sp.font, sp.lines[:n], sp.line_h, sp.ascent, sp.measure))
        height += extra + n * sp.line_h
        lines_left -= n
        if n < len(sp.lines):
            break
    if kept:
        last = kept[-1]
        mark = ELLIPSIS if _has_glyph(last.para.choice.path, last.para.choice.index, ELLIPSIS) else "..."
        last.lines[-1] = _ellipsize(last.lines[-1], last.measure, max(1, width - indent), mark)
    return _Block(block.size, kept, height, overflow=True)


# --------------------------------------------------------------------------- drawing


@dataclass
class SlideResult:
    """A composed slide.

    ``min_font_px`` is the smallest size the title and bullets were set at (the footer has a fixed
    size, 28 px at 1080 p); ``boxes`` names the regions (left, top, right, bottom) that text and the
    illustration were confined to; ``notes`` says what was cut or could not be drawn, and the fix.
    """

    image: Image.Image
    overflow: bool
    min_font_px: int
    notes: list[str] = field(default_factory=list)
    boxes: dict[str, Box] = field(default_factory=dict)
    layout: str = ""  # the layout used (lessonforge.tools.media.layouts), "" for compose_slide's
    ink: list[tuple[str, Box, RGB, RGB]] = field(default_factory=list)  # text drawn: name, box, colour, ground


def _draw_block(img: Image.Image, block: _Block, box: Box, *, colour: RGB, align_right: bool, valign: str,
                marker: RGB | None = None, indent_em: float = 0.0, gap_em: float = 0.0) -> None:
    """Draw ``block`` inside ``box`` only: onto a crop of the slide, pasted back."""
    if not block.paras:
        return
    w, h = box[2] - box[0], box[3] - box[1]
    region = img.crop(box)
    draw = ImageDraw.Draw(region)
    y = 0
    if valign == "middle":
        y = max(0, (h - block.height) // 2)
    size = block.size
    indent = int(round(indent_em * size))
    gap = int(round(gap_em * size))
    for i, sp in enumerate(block.paras):
        if i:
            y += gap
        if marker is not None:
            r = max(3, int(round(0.15 * size)))
            cy = y + sp.ascent - int(round(0.33 * size))
            cx = w - indent // 2 if align_right else indent // 2
            cx = min(max(cx, r), w - r)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=marker)
        for line in sp.lines:
            kw = dict(sp.measure.kw)
            if align_right:
                draw.text((w - indent, y + sp.ascent), line, font=sp.font, fill=colour, anchor="rs", **kw)
            else:
                draw.text((indent, y + sp.ascent), line, font=sp.font, fill=colour, anchor="ls", **kw)
            y += sp.line_h
    img.paste(region, box[:2])


def _scaled(v: float, s: float) -> int:
    return int(round(v * s))


def _paste_illustration(img: Image.Image, illustration: Image.Image, box: Box, background: RGB) -> Box:
    """Scale ``illustration`` to fit ``box`` without distortion, centred; returns where it went."""
    src = illustration
    if src.mode in ("RGBA", "LA", "P", "PA"):
        src = src.convert("RGBA")
        flat = Image.new("RGB", src.size, background)
        flat.paste(src, (0, 0), src)
        src = flat
    else:
        src = src.convert("RGB")
    bw, bh = box[2] - box[0], box[3] - box[1]
    fitted = ImageOps.contain(src, (bw, bh), Image.Resampling.LANCZOS)
    x = box[0] + (bw - fitted.width) // 2
    y = box[1] + (bh - fitted.height) // 2
    img.paste(fitted, (x, y))
    return (x, y, x + fitted.width, y + fitted.height)


def _paras(texts: Sequence[str], *, bold: bool, language: str) -> tuple[list[_Para], list[str]]:
    paras: list[_Para] = []
    notes: list[str] = []
    for t in texts:
        choice = choose_font(t, bold=bold, language=language)
        if choice.missing:
            pkg = _FONT_PACKAGE.get(choice.script, "fonts-noto-core")
            notes.append(
                f"no installed font has glyphs for {choice.missing[:12]!r} ({choice.script}); they show as "
                f"boxes. Fix: apt-get install {pkg}"
            )
        paras.append(_Para(t, choice, "rtl" if is_rtl(t) else "ltr"))
    return paras, notes


def _clean(text: str) -> str:
    return " ".join(str(text).split())


def _check_args(aspect: str, theme: str, index: int, total: int) -> None:
    if aspect not in ASPECTS:
        raise ConfigError(f"unknown aspect {aspect!r}; choose one of {', '.join(ASPECTS)}")
    if theme not in THEMES:
        raise ConfigError(f"unknown slide theme {theme!r}; choose one of {', '.join(THEMES)}")
    if total < 1 or not 1 <= index <= total:
        raise ConfigError(f"slide index {index} of {total} is out of range; pass 1 <= index <= total")


def compose_slide(*, title: str, bullets: Sequence[str], illustration: Image.Image | None, footer: str,
                  index: int, total: int, aspect: str = "16:9", theme: str = "light",
                  language: str = "en") -> SlideResult:
    """Draw one slide; see the module docstring for the layout."""
    _check_args(aspect, theme, index, total)
    th = THEMES[theme]
    W, H = ASPECTS[aspect]
    s = min(W, H) / 1080
    img = Image.new("RGB", (W, H), th.background)
    draw = ImageDraw.Draw(img)
    notes: list[str] = []
    boxes: dict[str, Box] = {}
    raqm_lang = language if raqm_available() else None

    title = _clean(title)
    items = [b for b in (_clean(b) for b in bullets) if b]
    overflow = False
    if len(items) > MAX_BULLETS:
        notes.append(f"{len(items)} bullets given, {MAX_BULLETS} shown: split the scene or merge bullets")
        items = items[:MAX_BULLETS]
        overflow = True

    rtl = language.split("-")[0].lower() in _RTL_LANGUAGES or is_rtl(title or " ".join(items))
    if any(is_rtl(t) for t in [title, *items]) and not raqm_available():
        notes.append("right-to-left text is not shaped: Pillow lacks libraqm. Fix: apt-get install libraqm0 "
                     "(or libfribidi0 for Pillow's wheels)")

    title_paras, n1 = _paras([title] if title else [], bold=True, language=language)
    bullet_paras, n2 = _paras(items, bold=False, language=language)
    notes.extend(dict.fromkeys(n1 + n2))  # unique, in order

    margin = _scaled(72, s)
    top = _scaled(60, s)
    text_first = illustration is None
    statement = text_first and not bullet_paras

    # Footer: a rule, the lesson title on the reading side, "i / N" on the other.
    footer_size = _scaled(28, s)
    page = f"{index} / {total}"
    f_choice = choose_font(footer or page, language=language)
    f_font = f_choice.at(footer_size)
    f_line_h, _ = _line_metrics(f_font, footer_size, 0.1)
    f_bottom = H - _scaled(36, s)
    f_box = (margin, f_bottom - f_line_h, W - margin, f_bottom)
    rule_y = f_box[1] - _scaled(18, s)
    draw.rectangle((margin, rule_y, W - margin - 1, rule_y + max(1, _scaled(2, s)) - 1), fill=th.muted)
    boxes["footer"] = f_box
    _draw_footer(img, f_box, _clean(footer), page, f_choice, footer_size, th.muted, rtl, raqm_lang, notes)

    if text_first:  # accent band on the reading side, inside the margin
        band = _scaled(20, s)
        band_box = (W - band, 0, W, H) if rtl else (0, 0, band, H)
        draw.rectangle((band_box[0], band_box[1], band_box[2] - 1, band_box[3] - 1), fill=th.accent)
        boxes["band"] = band_box

    body_bottom = rule_y - _scaled(28, s)
    min_title, min_body = _scaled(44, s), _scaled(28, s)
    sizes: list[int] = []

    # Title.
    if statement:
        t_box = (margin, top, W - margin, body_bottom)
        t_block = _fit_block(title_paras, t_box, max_size=_scaled(104, s), min_size=min_title,
                             max_lines=5, leading=0.08, language=raqm_lang)
        _draw_block(img, t_block, t_box, colour=th.title, align_right=rtl, valign="middle")
        boxes["title"] = t_box
        overflow |= _record(t_block, "title", sizes, notes)
        return _result(img, overflow, sizes or [footer_size], notes, boxes)

    portrait = H > W
    t_max_h = int(H * (0.17 if portrait else 0.22))
    t_box = (margin, top, W - margin, top + t_max_h)
    t_block = _fit_block(title_paras, t_box, max_size=_scaled(88 if text_first else 76, s), min_size=min_title,
                         max_lines=3 if portrait else 2, leading=0.08, language=raqm_lang)
    t_used = (t_box[0], t_box[1], t_box[2], t_box[1] + max(t_block.height, 1))
    _draw_block(img, t_block, t_used, colour=th.title, align_right=rtl, valign="top")
    boxes["title"] = t_used
    overflow |= _record(t_block, "title", sizes, notes)

    # Accent bar under the title.
    bar_y = t_used[3] + _scaled(14, s)
    bar_w, bar_h = _scaled(140, s), max(2, _scaled(8, s))
    bar_x = W - margin - bar_w if rtl else margin
    draw.rectangle((bar_x, bar_y, bar_x + bar_w - 1, bar_y + bar_h - 1), fill=th.accent)
    boxes["bar"] = (bar_x, bar_y, bar_x + bar_w, bar_y + bar_h)
    body = (margin, bar_y + bar_h + _scaled(36, s), W - margin, body_bottom)

    text_box, image_box = _split_body(body, has_image=not text_first, landscape=W > H, rtl=rtl, s=s)
    if image_box is not None and illustration is not None:
        boxes["illustration"] = image_box
        boxes["picture"] = _paste_illustration(img, illustration, image_box, th.background)

    if bullet_paras:
        b_block = _fit_block(bullet_paras, text_box, max_size=_scaled(64 if text_first else 52, s),
                             min_size=min_body, indent_em=0.95, gap_em=0.55, leading=0.12, language=raqm_lang)
        _draw_block(img, b_block, text_box, colour=th.text, align_right=rtl, valign="middle", marker=th.accent,
                    indent_em=0.95, gap_em=0.55)
        boxes["bullets"] = text_box
        overflow |= _record(b_block, "bullets", sizes, notes)
    return _result(img, overflow, sizes or [footer_size], notes, boxes)


def _record(block: _Block, what: str, sizes: list[int], notes: list[str]) -> bool:
    """Note the size ``block`` was set at and whether it was cut; True when it was."""
    if block.paras:
        sizes.append(block.size)
    if block.overflow:
        notes.append(f"{what} cut with an ellipsis at the smallest size ({block.size} px): shorten the text")
    return block.overflow


def _split_body(body: Box, *, has_image: bool, landscape: bool, rtl: bool, s: float) -> tuple[Box, Box | None]:
    """Text box and illustration box inside ``body``."""
    left, top, right, bottom = body
    if not has_image:
        return body, None
    if landscape:
        gap = _scaled(56, s)
        text_w = int((right - left - gap) * 0.52)
        if rtl:
            return (right - text_w, top, right, bottom), (left, top, right - text_w - gap, bottom)
        return (left, top, left + text_w, bottom), (left + text_w + gap, top, right, bottom)
    gap = _scaled(40, s)
    image_h = int((bottom - top) * (0.45 if (bottom - top) > (right - left) else 0.42))
    return (left, top + image_h + gap, right, bottom), (left, top, right, top + image_h)


def _draw_footer(img: Image.Image, box: Box, footer: str, page: str, choice: FontChoice, size: int, colour: RGB,
                 rtl: bool, language: str | None, notes: list[str]) -> None:
    font = choice.at(size)
    w = box[2] - box[0]
    page_para = _Para(page, choose_font(page), "ltr")
    page_m = _Measure(page_para.choice.at(size), "ltr", None)
    page_w = int(page_m.width(page)) + 1
    room = max(1, w - page_w - size)
    _, ascent = _line_metrics(font, size, 0.1)
    paras = []
    if footer:
        direction = "rtl" if is_rtl(footer) else "ltr"
        m = _Measure(font, direction, language)
        text = footer if m.width(footer) <= room else _ellipsize(footer, m, room)
        if text != footer:
            notes.append("footer lesson title shortened with an ellipsis")
        paras.append((text, m, not rtl))
    page_font = page_para.choice.at(size)
    region = img.crop(box)
    draw = ImageDraw.Draw(region)
    for text, m, at_left in paras:
        x, anchor = (0, "ls") if at_left else (w, "rs")
        draw.text((x, ascent), text, font=m.font, fill=colour, anchor=anchor, **m.kw)
    px, anchor = (0, "ls") if rtl else (w, "rs")
    draw.text((px, ascent), page, font=page_font, fill=colour, anchor=anchor)
    img.paste(region, box[:2])


def _result(img: Image.Image, overflow: bool, sizes: list[int], notes: list[str], boxes: dict[str, Box]) -> SlideResult:
    return SlideResult(image=img, overflow=overflow, min_font_px=min(sizes), notes=notes, boxes=boxes)
