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

from lessonforge.agent.project import Manifest, Project
from lessonforge.tools.base import ConfigError

FORMATS = ("pptx", "scorm", "html", "md")
EXPORT_DIR = "export"


def parse_formats(values: list[str] | None) -> list[str]:
    """Formats from ``--to`` values (repeated or comma-separated); none means all."""
    wanted = [v.strip().lower() for value in values or [] for v in value.split(",") if v.strip()]
    unknown = [v for v in wanted if v not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown export format {', '.join(map(repr, unknown))}; choose from {', '.join(FORMATS)} "
                          "(several at once: --to pptx --to md, or --to pptx,md)")
    return list(dict.fromkeys(wanted)) or list(FORMATS)


def finished(project: Project) -> Manifest:
    """The lesson's manifest, refusing one whose video is not made yet (exports need its files)."""
    manifest = project.load()
    if manifest.video is None or not manifest.scenes or manifest.status != "done":
        raise ConfigError(f"{project.root} has no finished lesson to export (status {manifest.status!r}); "
                          f"finish it first with lessonforge make or lessonforge render {project.root}")
    for ref in [manifest.video.file, manifest.video.vtt, *(s.slide for s in manifest.scenes if s.slide)]:
        if not project.resolve(ref).is_file():
            raise ConfigError(
                f"{ref.path} is missing from {project.root}; rebuild it with lessonforge render {project.root}"
            )
    return manifest


def clock(seconds: float) -> str:
    """A time as the viewer reads it: m:ss (h:mm:ss past an hour)."""
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def lesson_title(manifest: Manifest) -> str:
    return manifest.script.title if manifest.script else manifest.request.topic


def export(folder: Path | str, formats: list[str]) -> dict[str, Path]:
    """Write each format under DIR/export/; returns format -> what was written."""
    from lessonforge.agent.export import deck, markdown, page, scorm

    writers: dict[str, Callable[[Project, Manifest, Path], Path]] = {
        "pptx": deck.write_deck, "scorm": scorm.write_package, "html": page.write_folder, "md": markdown.write_markdown,
    }
    project = Project(folder)
    manifest = finished(project)
    out = project.root / EXPORT_DIR
    with project.lock():
        out.mkdir(parents=True, exist_ok=True)
        return {fmt: writers[fmt](project, manifest, out) for fmt in formats}
