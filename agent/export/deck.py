"""PowerPoint both ways: a deck with one slide per scene, and an edited deck read back in.

Each slide has real text boxes (the title, the key phrases as bullets), the scene's picture or
diagram as an image and the narration in the speaker notes, in the theme's colours and the font the
video's slides use. The title box is named after its scene (``LessonForge title, scene 3``) and the
deck records which lesson and version it came from, so a deck that comes back is matched slide by
slide: changed titles, bullets and notes become a new version of the lesson, slides added or deleted
become scenes added or deleted, and only the scenes that changed are produced again.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from PIL import ImageFont

from lessonforge.agent.export.common import lesson_title
from lessonforge.agent.project import Manifest, Project
from lessonforge.agent.state import SceneRecord
from lessonforge.tools.base import ConfigError
from lessonforge.tools.cache import atomic_path, content_key

INCH = 914400  # EMU
SIZES = {"16:9": (13.333, 7.5), "9:16": (7.5, 13.333), "1:1": (7.5, 7.5)}
TITLE_NAME, BULLETS_NAME, VISUAL_NAME = "LessonForge title, scene {n}", "LessonForge bullets", "LessonForge visual"
_SCENE_MARK = re.compile(r"^LessonForge title, scene (\d+)$")
DECK = "lesson.pptx"


def lesson_id(manifest: Manifest) -> str:
    """Which lesson a deck belongs to (kept in the deck's properties)."""
    return "lessonforge:" + content_key("lesson", manifest.request.topic, manifest.created)[:16]


def text_key(manifest: Manifest) -> str:
    """What the deck's text was when exported: an import checks it compares against that version."""
    return content_key("deck-text", [(s.title, s.bullets, s.narration) for s in manifest.scenes])[:16]


def _font_name(text: str, language: str, bold: bool) -> str:
    """The family of the font the video's slides use for ``text`` (as PowerPoint names it)."""
    from lessonforge.tools.media.slides import choose_font

    choice = choose_font(text or "A", bold=bold, language=language)
    return ImageFont.truetype(choice.path, 12, index=choice.index).getname()[0] or "Arial"


def _visual(project: Project, scene: SceneRecord) -> PILImage.Image | None:
    """The scene's picture (full size), or its diagram cut from the slide; None for a text slide."""
    if scene.illustration is not None:
        with PILImage.open(project.resolve(scene.illustration)) as img:
            return img.convert("RGB")
    if scene.diagram is not None and scene.slide is not None and scene.picture_box:
        with PILImage.open(project.resolve(scene.slide)) as img:
            return img.convert("RGB").crop(tuple(scene.picture_box))
    return None


def _boxes(aspect: str, has_visual: bool) -> dict[str, tuple[float, float, float, float]]:
    """Where title, bullets and picture go (inches: left, top, width, height)."""
    w, h = SIZES[aspect]
    m = 0.45
    title = (m, m, w - 2 * m, 1.2 if w > h else 1.6)
    top = m + title[3] + 0.2
    if not has_visual:
        return {"title": title, "bullets": (m, top, w - 2 * m, h - top - m)}
    if w > h:  # side by side: key phrases left, the picture right
        split = (w - 2 * m) * 0.5
        return {"title": title, "bullets": (m, top, split - 0.2, h - top - m),
                "visual": (m + split, top, w - 2 * m - split, h - top - m)}
    visual_h = (h - top - m) * 0.55
    return {"title": title, "visual": (m, top, w - 2 * m, visual_h),
            "bullets": (m, top + visual_h + 0.2, w - 2 * m, h - top - visual_h - 0.2 - m)}


def _emu(inches: float) -> int:
    return int(round(inches * INCH))


def _style(run: Any, font: str, size: float, rgb: tuple[int, int, int], bold: bool = False) -> None:
    from pptx.dml.color import RGBColor
    from pptx.util import Pt

    run.font.name, run.font.size, run.font.bold = font, Pt(size), bold
    run.font.color.rgb = RGBColor(*rgb)


def _bullet(paragraph: Any, rgb: tuple[int, int, int]) -> None:
    """A real bullet (PowerPoint's own, so a new line the teacher types is a bullet too)."""
    from pptx.oxml.ns import qn

    p_pr = paragraph._p.get_or_add_pPr()
    p_pr.set("marL", str(_emu(0.35)))
    p_pr.set("indent", str(-_emu(0.3)))
    colour = p_pr.makeelement(qn("a:buClr"), {})
    colour.append(colour.makeelement(qn("a:srgbClr"), {"val": "".join(f"{c:02X}" for c in rgb)}))
    p_pr.append(colour)
    p_pr.append(p_pr.makeelement(qn("a:buChar"), {"char": "•"}))


def build_deck(project: Project, manifest: Manifest) -> Any:
    """The lesson as a python-pptx Presentation."""
    from pptx import Presentation
    from pptx.dml.color import RGBColor
    from pptx.enum.text import MSO_ANCHOR, MSO_AUTO_SIZE
    from pptx.util import Emu

    from lessonforge.tools.media.slides import THEMES

    req = manifest.request
    theme = THEMES.get(req.theme, THEMES["light"])
    prs = Presentation()
    w, h = SIZES[req.aspect]
    prs.slide_width, prs.slide_height = Emu(_emu(w)), Emu(_emu(h))
    props = prs.core_properties
    props.title = lesson_title(manifest)
    props.subject = req.topic
    props.identifier = f"{lesson_id(manifest)}:{text_key(manifest)}"
    props.revision = max(1, project.current_version())
    props.language = req.language
    blank = prs.slide_layouts[6]
    scale = min(w, h) / 7.5
    text_all = " ".join([lesson_title(manifest), *(s.title for s in manifest.scenes),
                         *(b for s in manifest.scenes for b in s.bullets)])
    title_font = _font_name(text_all, req.language, bold=True)
    body_font = _font_name(text_all, req.language, bold=False)
    for scene in manifest.scenes:
        slide = prs.slides.add_slide(blank)
        slide.background.fill.solid()
        slide.background.fill.fore_color.rgb = RGBColor(*theme.background)
        picture = _visual(project, scene)
        boxes = _boxes(req.aspect, picture is not None)
        box = slide.shapes.add_textbox(*(_emu(v) for v in boxes["title"]))
        box.name = TITLE_NAME.format(n=scene.index)
        frame = box.text_frame
        frame.word_wrap, frame.auto_size, frame.vertical_anchor = (
            True,
            MSO_AUTO_SIZE.TEXT_TO_FIT_SHAPE,
            MSO_ANCHOR.MIDDLE,
        )
        run = frame.paragraphs[0].add_run()
        run.text = scene.title
        _style(run, title_font, 34 * scale, theme.title, bold=True)
        box = slide.shapes.add_textbox(*(_emu(v) for v in boxes["bullets"]))
        box.name = BULLETS_NAME
        frame = box.text_frame
        frame.word_wrap, frame.auto_size, frame.vertical_anchor = True, MSO_AUTO_SIZE.TEXT_TO_FIT_SHAPE, MSO_ANCHOR.TOP
        for k, text in enumerate(scene.bullets):
            para = frame.paragraphs[0] if k == 0 else frame.add_paragraph()
            _bullet(para, theme.accent)
            para.space_after = _emu(0.12)
            run = para.add_run()
            run.text = text
            _style(run, body_font, 26 * scale, theme.text)
        if picture is not None:
            left, top, bw, bh = boxes["visual"]
            ratio = min(bw / picture.width, bh / picture.height)
            pw, ph = picture.width * ratio, picture.height * ratio
            png = io.BytesIO()
            picture.save(png, format="PNG")
            png.seek(0)
            shape = slide.shapes.add_picture(png, _emu(left + (bw - pw) / 2), _emu(top + (bh - ph) / 2),
                                             _emu(pw), _emu(ph))
            shape.name = VISUAL_NAME
            shape._element.nvPicPr.cNvPr.set("descr", scene.final_prompt or scene.illustration_prompt or scene.title)
        slide.notes_slide.notes_text_frame.text = scene.narration
    return prs


def write_deck(project: Project, manifest: Manifest, out: Path) -> Path:
    """DIR/export/lesson.pptx."""
    prs = build_deck(project, manifest)
    with atomic_path(out / DECK) as tmp:
        prs.save(str(tmp))
    return out / DECK


# --------------------------------------------------------------------------- reading a deck back


@dataclass
class SlideText:
    """What one slide of a deck says: its scene (None for a slide added in the deck) and its text."""

    number: int  # 1-based position in the deck
    scene: int | None
    title: str
    bullets: list[str] = field(default_factory=list)
    notes: str = ""


@dataclass
class DeckText:
    identifier: str
    version: int
    slides: list[SlideText]


def clean_text(text: str) -> str:
    return " ".join(text.replace("\v", " ").split())


def _paragraphs(shape: Any) -> list[str]:
    return [t for t in (clean_text(p.text) for p in shape.text_frame.paragraphs) if t]


def read_deck(path: Path | str) -> DeckText:
    """The text of every slide, matched to scenes by the title boxes' names; a slide made in PowerPoint
    from a layout is read from its title and body placeholders."""
    from pptx import Presentation
    from pptx.exc import PackageNotFoundError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; give the .pptx made by lessonforge export (and edited)")
    try:
        prs = Presentation(str(path))
    except (PackageNotFoundError, KeyError, ValueError) as err:
        raise ConfigError(
            f"{path} is not a PowerPoint deck that can be read ({err}); save it as .pptx and try again"
        ) from None
    slides = []
    for number, slide in enumerate(prs.slides, 1):
        texts = [s for s in slide.shapes if s.has_text_frame]
        title_shape = next((s for s in texts if _SCENE_MARK.match(s.name)), None)
        if title_shape is None:
            title_shape = slide.shapes.title or next(iter(texts), None)
        body = [s for s in texts if title_shape is None or s.shape_id != title_shape.shape_id]
        named = [s for s in body if s.name == BULLETS_NAME]
        bullets = [t for s in (named or body) for t in _paragraphs(s)]
        mark = _SCENE_MARK.match(title_shape.name) if title_shape is not None else None
        notes = slide.notes_slide.notes_text_frame.text if slide.has_notes_slide else ""
        slides.append(SlideText(number=number, scene=int(mark.group(1)) if mark else None,
                                title=clean_text(title_shape.text_frame.text) if title_shape is not None else "",
                                bullets=bullets, notes=clean_text(notes)))
    props = prs.core_properties
    return DeckText(identifier=props.identifier or "", version=props.revision or 0, slides=slides)
