"""The ``pictogram`` visual kind: an icon from Font Awesome Free, drawn crisply in the theme's colours.

Without an image model (a CPU, no key) a scene still gets a visual anchor: the writer picks one of
:data:`NAMES` (a curated, teaching-oriented subset, so the JSON schema's enum stays short enough for
a small model), and :func:`draw` renders the glyph from the solid face that the ``fontawesomefree``
package ships (PyPI; icons CC BY 4.0, font SIL OFL 1.1: :data:`LICENCE`) at any size, with no
resampling. Drawing is deterministic: the same name, size and colour give the same pixels.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from lessonforge.tools.base import ConfigError

# grouped by what lessons teach; every name is a free solid icon of the set
NAMES: tuple[str, ...] = (
    # nature and earth
    "leaf", "seedling", "tree", "sun", "moon", "star", "cloud", "cloud-rain", "snowflake", "droplet", "water",
    "wind", "fire", "bolt", "mountain", "volcano", "hurricane", "tornado", "globe", "earth-americas",
    "temperature-half", "temperature-high", "temperature-low", "recycle",
    # living things and the body
    "fish", "dog", "cat", "horse", "dove", "spider", "bug", "feather", "apple-whole", "wheat-awn", "carrot",
    "egg", "bread-slice", "brain", "heart-pulse", "lungs", "bone", "eye", "hand", "virus", "bacteria",
    "dna", "pills", "syringe", "stethoscope",
    # science and maths
    "atom", "microscope", "flask", "vial", "magnet", "satellite", "meteor", "shuttle-space", "rocket",
    "calculator", "square-root-variable", "infinity", "ruler", "compass", "scale-balanced",
    "chart-line", "chart-bar", "chart-pie", "magnifying-glass", "binoculars",
    # technology
    "lightbulb", "gear", "gears", "plug", "battery-full", "laptop", "mobile-screen", "robot", "microchip",
    "database", "server", "wifi", "code", "network-wired",
    # people, society, history
    "person", "child", "users", "people-group", "user-graduate", "handshake", "comments", "language",
    "landmark", "building", "city", "house", "school", "industry", "tractor", "store", "cart-shopping",
    "coins", "money-bill", "gavel", "crown", "scroll", "flag", "shield", "key", "lock",
    # travel and places
    "map", "location-dot", "road", "car", "bus", "train", "plane", "ship", "bicycle",
    # learning and time
    "book", "book-open", "graduation-cap", "pencil", "palette", "music", "camera", "film", "clock",
    "hourglass", "calendar", "list-check", "puzzle-piece", "bullseye", "arrows-rotate",
    "circle-question", "circle-check", "triangle-exclamation", "quote-left",
)
LICENCE = "Font Awesome Free 6 (fontawesomefree): icons CC BY 4.0, font SIL OFL 1.1 — https://fontawesome.com/license/free"
FALLBACK = "lightbulb"


def _root() -> Path:
    try:
        import fontawesomefree
    except ImportError as err:  # a declared dependency; a broken environment is named with its fix
        raise ConfigError("pictograms need the fontawesomefree package: pip install fontawesomefree") from err
    return Path(fontawesomefree.__file__).parent / "static" / "fontawesomefree"


@functools.lru_cache(maxsize=1)
def codepoints() -> dict[str, int]:
    """Every free solid icon's name -> its code point in the solid face."""
    with open(_root() / "metadata" / "icons.json", encoding="utf-8") as f:
        meta = json.load(f)
    return {name: int(v["unicode"], 16) for name, v in meta.items() if "solid" in v.get("free", [])}


@functools.lru_cache(maxsize=32)
def _face(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(_root() / "webfonts" / "fa-solid-900.ttf"), size)


def glyph(name: str) -> str:
    """The character that draws ``name``; an unknown name is a ConfigError naming a few valid ones."""
    points = codepoints()
    if name not in points:
        near = [n for n in NAMES if n.split("-")[0] in name or name.split("-")[0] in n][:5] or list(NAMES[:5])
        raise ConfigError(f"unknown pictogram {name!r}; use one of the offered names, e.g. {', '.join(near)}")
    return chr(points[name])


def draw(name: str, size: int, color: tuple[int, int, int], background: tuple[int, int, int, int] | None = None
         ) -> Image.Image:
    """The icon as an RGBA image of ``size`` × ``size`` pixels, centred, in ``color``."""
    if size < 8:
        raise ValueError(f"pictogram size must be at least 8 px, got {size}")
    char = glyph(name)
    img = Image.new("RGBA", (size, size), background or (0, 0, 0, 0))
    face = _face(max(8, int(size * 0.86)))
    d = ImageDraw.Draw(img)
    left, top, right, bottom = d.textbbox((0, 0), char, font=face)
    x = (size - (right - left)) / 2 - left
    y = (size - (bottom - top)) / 2 - top
    d.text((x, y), char, font=face, fill=(*color, 255))
    return img


_WORD = re.compile(r"[a-z]+")


@functools.lru_cache(maxsize=1)
def _terms() -> dict[str, tuple[set[str], set[str]]]:
    """For each offered name: the words of its name and label (strong), and its search terms (weak)."""
    with open(_root() / "metadata" / "icons.json", encoding="utf-8") as f:
        meta = json.load(f)
    out: dict[str, tuple[set[str], set[str]]] = {}
    for name in NAMES:
        v = meta.get(name, {})
        strong = {_stem(w) for w in [*name.split("-"), *_WORD.findall(v.get("label", "").lower())] if len(w) > 2}
        weak = {_stem(w) for t in v.get("search", {}).get("terms", []) for w in _WORD.findall(str(t).lower())
                if len(w) > 2}
        out[name] = (strong, weak - strong)
    return out


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") else word


def suggest(text: str, *, title: str = "") -> str | None:
    """The offered pictogram whose words best match ``title`` (counted twice) and ``text`` (English), or
    None when nothing matches. Used when a scene asked for a picture but no image model draws one,
    so the scene keeps a visual anchor. A match on an icon's name or label counts three times one
    on its search terms; ties go to the icon named earliest in the text."""
    words = [_stem(w) for w in _WORD.findall(f"{title} {title} {text}".lower()) if len(w) > 2]
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    best, best_key = None, (0, 0)
    for name, (strong, weak) in _terms().items():
        score = sum(3 * n for w, n in counts.items() if w in strong) + sum(n for w, n in counts.items() if w in weak)
        if score:
            first = min(k for k, w in enumerate(words) if w in strong or w in weak)
            key = (score, -first)
            if key > best_key:
                best, best_key = name, key
    return best
