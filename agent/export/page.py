"""The lesson page: one self-contained HTML file beside the video and its captions, no requests
outside its folder. The same page plays inside a SCORM package, where it also reports to the LMS."""

from __future__ import annotations

import base64
import json
import re
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from lessonforge.agent.export.common import lesson_title
from lessonforge.agent.project import Manifest, Project
from lessonforge.tools.cache import link_or_copy

RTL = {"ar", "he", "fa", "ur", "yi", "ps", "dv"}
MASTERY = 80  # percent of questions right that passes (the SCORM manifest's masteryscore)
LABELS = {"CAPTIONS": "Captions", "CHAPTERS": "Chapters", "QUIZ": "Check your understanding",
          "TRANSCRIPT": "Transcript"}


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text("utf-8")


def lesson_data(manifest: Manifest, *, scorm: bool) -> dict[str, Any]:
    """What the page's script needs: scenes with their times and narration, the quiz, the pass mark."""
    return {
        "title": lesson_title(manifest),
        "language": manifest.request.language,
        "duration": manifest.video.duration if manifest.video else 0.0,
        "scenes": [{"n": s.index, "title": s.title, "start": s.start, "end": s.end, "narration": s.narration}
                   for s in manifest.scenes],
        "quiz": manifest.quiz.model_dump(mode="json") if manifest.quiz else None,
        "mastery": MASTERY,
        "scorm": scorm,
    }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def render_page(manifest: Manifest, vtt: str, *, scorm: bool) -> str:
    """The page's HTML: styles, script, captions and the lesson's data all inline."""
    data = json.dumps(lesson_data(manifest, scorm=scorm), ensure_ascii=False).replace("</", "<\\/")
    lang = manifest.request.language
    values = {
        "LANG": _escape(lang), "DIR": "rtl" if lang.split("-")[0].lower() in RTL else "ltr",
        "TITLE": _escape(lesson_title(manifest)),
        # captions inline, so they show when the page is opened from disk too (file: URLs cannot load
        # a track from a sibling file)
        "VTT": "data:text/vtt;charset=utf-8;base64," + base64.b64encode(vtt.encode("utf-8")).decode("ascii"),
        "CSS": _asset("player.css"), "JS": _asset("player.js"), "DATA": data, **LABELS,
    }
    # one pass: text put in (the lesson's own words among it) is never searched for markers again
    html = re.sub(r"__([A-Z]+)__", lambda m: values[m.group(1)], _asset("player.html"))
    return html


def page_files(project: Project, manifest: Manifest, folder: Path, *, scorm: bool) -> list[str]:
    """Write the page and what it plays into ``folder``; returns the file names (for a package manifest)."""
    assert manifest.video is not None
    vtt_path = project.resolve(manifest.video.vtt)
    link_or_copy(project.resolve(manifest.video.file), folder / "lesson.mp4")
    link_or_copy(vtt_path, folder / "lesson.vtt")
    first = manifest.scenes[0].slide
    assert first is not None
    link_or_copy(project.resolve(first), folder / "poster.png")
    page = render_page(manifest, vtt_path.read_text("utf-8"), scorm=scorm)
    (folder / "index.html").write_text(page, "utf-8")
    return ["index.html", "lesson.mp4", "lesson.vtt", "poster.png"]


def write_folder(project: Project, manifest: Manifest, out: Path) -> Path:
    """DIR/export/html/: the standalone page (open index.html, offline)."""
    final = out / "html"
    with tempfile.TemporaryDirectory(dir=out, prefix=".html-", suffix=".tmp") as scratch:
        staged = Path(scratch) / "html"
        staged.mkdir()
        page_files(project, manifest, staged, scorm=False)
        old = Path(scratch) / "old"
        if final.exists():
            final.rename(old)  # replaced as a whole: a reader never sees half of each
        staged.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    return final / "index.html"
