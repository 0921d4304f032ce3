"""What every export shares: the formats, the finished lesson it reads, times and titles as shown."""

from __future__ import annotations

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
