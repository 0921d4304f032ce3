"""An edited deck comes back: its slides, matched to scenes, become a new version of the lesson.

A field a teacher changed in the deck (title, bullets, notes) replaces the scene's; a field left as
it was exported keeps the lesson's current value, so changes made in chat since the export stay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lessonforge.agent.config import Settings, describe_validation
from lessonforge.agent.context import EventSink
from lessonforge.agent.edit import EditResult
from lessonforge.agent.export.common import finished, lesson_title
from lessonforge.agent.export.deck import DeckText, SlideText, clean_text, lesson_id, read_deck, text_key
from lessonforge.agent.project import Manifest, Project
from lessonforge.agent.quiz import renumber
from lessonforge.agent.run import produce
from lessonforge.agent.schemas import SceneDraft, Script
from lessonforge.tools.base import ConfigError


def _structure(manifest: Manifest) -> list[tuple[str, Any]]:
    """What a deck cannot change: which scenes there are, in which order (their pictures and kinds)."""
    return [(s.role, s.visual) for s in manifest.scenes]


def _draft(slide: SlideText, fields: dict[str, Any]) -> SceneDraft:
    where = f"slide {slide.number} ({slide.title or 'no title'!r})"
    if not str(fields.get("narration", "")).strip():
        raise ConfigError(f"{where}: its speaker notes are empty; they are what the narrator says, so write them")
    try:
        return SceneDraft.model_validate(fields)
    except ValidationError as err:
        raise ConfigError(f"{where}: {describe_validation(err)}") from None


def merge(deck: DeckText, base: Manifest, current: Manifest) -> tuple[list[SceneDraft], dict[int, int], list[str]]:
    """The scenes the deck asks for, which current scene went where, and what changed (for the reply).

    ``base`` is the version the deck was exported from: only what differs from it counts as edited.
    """
    drafts: list[SceneDraft] = []
    moved: dict[int, int] = {}
    changed: list[str] = []
    n = len(current.scenes)
    pictures = current.backends.get("images", "none") not in ("", "none")
    for slide in deck.slides:
        k = slide.scene
        if k is not None and 1 <= k <= n and k not in moved:
            was, now = base.scenes[k - 1], current.scenes[k - 1].draft()
            update: dict[str, Any] = {}
            if slide.title != clean_text(was.title):
                update["title"] = slide.title
            if slide.bullets != [clean_text(b) for b in was.bullets]:
                update["bullets"] = slide.bullets
            if slide.notes != clean_text(was.narration):
                update["narration"] = slide.notes
            draft = _draft(slide, {**now.model_dump(), **update})
            moved[k] = len(drafts) + 1
            edited = [f for f in update if getattr(draft, f) != getattr(now, f)]
            if edited:
                changed.append(f"scene {k} ({', '.join(edited)})")
        else:  # a slide added in the deck (or a copy of one): a new scene
            prompt = f"{slide.title}: {', '.join(slide.bullets)}" if slide.bullets else slide.title
            source = current.scenes[k - 1].draft().model_dump() if k is not None and 1 <= k <= n else {
                "role": "concept", "key": "", "answer": "",
                "visual": {"kind": "picture", "prompt": prompt} if pictures else {"kind": "text"},
            }
            if not slide.title:
                raise ConfigError(f"slide {slide.number} has no title; give it one (a new slide becomes a scene)")
            draft = _draft(slide, {**source, "title": slide.title, "bullets": slide.bullets, "narration": slide.notes})
            changed.append(f"new scene {len(drafts) + 1} (slide {slide.number})")
        drafts.append(draft)
    changed += [f"deleted scene {k}" for k in range(1, n + 1) if k not in moved]
    kept = list(moved)
    if kept != sorted(kept):
        changed.append("scene order")
    return drafts, moved, changed


async def import_deck(
    folder: Path | str,
    deck_path: Path | str,
    settings: Settings | None = None,
    *,
    on_event: EventSink | None = None,
    **backends: Any,
) -> EditResult:
    """Read an edited deck back into the lesson: a new version, only changed scenes produced again."""
    project = Project(folder)
    current = finished(project)
    deck = read_deck(deck_path)
    name = Path(deck_path).name
    parts = deck.identifier.split(":")  # lessonforge:LESSON:TEXT
    lesson, exported_text = ":".join(parts[:2]), ":".join(parts[2:])
    if lesson and lesson != lesson_id(current):
        raise ConfigError(f"{name} was exported from another lesson; import it into that lesson's folder, or "
                          f"export this one with lessonforge export {project.root} --to pptx")
    if not any(s.scene for s in deck.slides):
        raise ConfigError(f"no slide of {name} comes from this lesson (each exported slide's title box is named "
                          f"'LessonForge title, scene N'); start from lessonforge export {project.root} --to pptx")
    version = project.current_version()
    base = current if deck.version in (0, version) else project.version_manifest(deck.version)
    if exported_text and exported_text != text_key(base):
        raise ConfigError(
            f"{name} was exported from a version of the lesson that is no longer in its history (undone, then "
            f"edited again); export the lesson again and make your changes in the new deck")
    if _structure(base) != _structure(current):
        raise ConfigError(
            f"{name} was exported from version {deck.version}, and scenes were added, removed or moved since "
            f"(now version {version}); export the lesson again and make your changes in the new deck")
    drafts, moved, changed = merge(deck, base, current)
    if not changed:
        return EditResult(reply=f"{name} matches the lesson; nothing to change.", action="none")
    quiz, notes = renumber(current.quiz, moved)
    manifest = await produce(
        project, current.model_copy(update={"quiz": quiz}), current.request,
        Script(title=lesson_title(current), scenes=drafts), settings,
        note=f"import {name}", on_event=on_event, **backends,
    )
    changed += notes
    reply = (f"Imported {name}. Changed: {'; '.join(changed)}. "
             f"New video: {project.root / 'lesson.mp4'} ({manifest.video.duration:.0f} s).")
    return EditResult(reply=reply, action="edit", changed=changed, manifest=manifest, version=project.current_version())
