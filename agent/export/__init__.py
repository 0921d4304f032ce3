"""A lesson in the forms teachers use: a PowerPoint deck, a SCORM 1.2 package, a web page, Markdown.

    lessonforge export DIR --to pptx --to scorm --to html --to md     (files under DIR/export/)
    lessonforge import DIR deck.pptx                                   (an edited deck back in)

Every export reads `lesson.json` and the files it names; nothing is produced again. A deck
comes back in through the same path as a chat edit (`lessonforge.agent.run.produce`), so only changed scenes
are made again, the result is a new version, and undo goes back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lessonforge.agent.export import deck, markdown, page, scorm
from lessonforge.agent.export.common import EXPORT_DIR, FORMATS, clock, finished, lesson_title, parse_formats
from lessonforge.agent.project import Manifest, Project

__all__ = ["EXPORT_DIR", "FORMATS", "clock", "export", "finished", "lesson_title", "parse_formats"]


def export(folder: Path | str, formats: list[str]) -> dict[str, Path]:
    """Write each format under DIR/export/; returns format -> what was written."""
    writers: dict[str, Callable[[Project, Manifest, Path], Path]] = {
        "pptx": deck.write_deck, "scorm": scorm.write_package, "html": page.write_folder, "md": markdown.write_markdown,
    }
    project = Project(folder)
    manifest = finished(project)
    out = project.root / EXPORT_DIR
    with project.lock():
        out.mkdir(parents=True, exist_ok=True)
        return {fmt: writers[fmt](project, manifest, out) for fmt in formats}
