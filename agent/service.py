"""The lesson service for long-lived front ends (the web page): the same make, chat and undo as the CLI,
each run as an async stream of progress events, serialised per project.

A front end iterates a job and renders what comes: progress events exactly as the graph emits them
(`{"stage": ..., "message": ..., "scene": ..., "total": ...}`), a `wait` event while another job holds
the project, then one `result` (the reply, or the made lesson's folder) or one `error` (a
LessonForgeError's message: the cause and the fix). Two jobs on one project never overlap, whichever
page or tab started them; the second starts from the first one's result.

`Tracker` turns the events into what a progress bar shows: the stage, the share done and the time left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lessonforge.agent import chat, run
from lessonforge.agent import edit as editing
from lessonforge.agent.config import Settings
from lessonforge.agent.context import EventSink
from lessonforge.agent.project import MANIFEST, Project
from lessonforge.agent.state import LessonRequest
from lessonforge.tools.base import ConfigError, LessonForgeError

Job = Callable[[EventSink], Awaitable[dict[str, Any]]]

_locks: dict[Path, asyncio.Lock] = {}


def project_lock(folder: Path | str) -> asyncio.Lock:
    """The one lock of a project folder in this process (by its resolved path)."""
    key = Path(folder).resolve()
    lock = _locks.get(key)
    if lock is None:
        lock = _locks[key] = asyncio.Lock()
    return lock


async def stream(folder: Path | str, job: Job) -> AsyncIterator[dict[str, Any]]:
    """Run ``job`` while holding the project's lock; yield its events as they come, then its result.

    A LessonForgeError ends the stream with an ``error`` event; anything else is a bug and is raised.
    """
    lock = project_lock(folder)
    if lock.locked():
        yield {"stage": "wait", "message": "Waiting for the change under way on this lesson to finish"}
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    async with lock:
        task = asyncio.create_task(_finish(job, queue))
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            if not task.done():  # the page went away: let the run stop where it is (finished work is kept)
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        task.result()  # re-raise a bug


async def _finish(job: Job, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
    try:
        result = await job(queue.put_nowait)
        queue.put_nowait({"stage": "result", **result})
    except LessonForgeError as err:
        queue.put_nowait({"stage": "error", "message": str(err)})
    finally:
        queue.put_nowait(None)


def settings_for(folder: Path | str, **overrides: Any) -> Settings:
    """A project's saved settings, with the given backends (not None or empty) in their place."""
    manifest = Project(folder).load()
    saved = {k: v for k, v in manifest.settings.items() if k in Settings.model_fields}
    saved.update({k: v for k, v in overrides.items() if v})
    return Settings.load(**saved)


def make(request: LessonRequest, settings: Settings, out: Path | str) -> AsyncIterator[dict[str, Any]]:
    """Make a lesson into ``out``; the result names the folder."""

    async def job(emit: EventSink) -> dict[str, Any]:
        manifest = await run.make(request, settings, out, on_event=emit)
        title = manifest.script.title if manifest.script else request.topic
        return {"folder": str(out), "reply": f"Made \"{title}\": {len(manifest.scenes)} scenes, "
                                             f"{manifest.video.duration:.0f} s. Say what to change."}

    return stream(out, job)


def say(folder: Path | str, message: str, **overrides: Any) -> AsyncIterator[dict[str, Any]]:
    """One chat turn, exactly as `lessonforge chat` takes it (/undo and /history included); the
    conversation is the project's own, shared with the CLI."""

    async def job(emit: EventSink) -> dict[str, Any]:
        settings = settings_for(folder, **overrides)
        async with chat.session(folder) as graph:
            reply = await chat.turn(graph, folder, message, settings, on_event=emit)
        return {"reply": reply}

    return stream(folder, job)


def switch(folder: Path | str, number: int, **overrides: Any) -> AsyncIterator[dict[str, Any]]:
    """Make an earlier (or later) version current again."""

    async def job(emit: EventSink) -> dict[str, Any]:
        media = {k: v for k, v in overrides.items() if k != "llm"}
        manifest = await editing.switch(folder, number, settings_for(folder, **media), on_event=emit)
        return {"reply": f"Version {number} is current again ({len(manifest.scenes)} scenes, "
                         f"{manifest.video.duration:.0f} s)."}

    return stream(folder, job)


async def conversation(folder: Path | str) -> list[dict[str, str]]:
    """The project's conversation so far (empty before the first turn)."""
    project = Project(folder)
    if not (project.meta / "chat.sqlite").is_file():
        return []
    async with chat.session(folder) as graph:
        return await chat.conversation(graph, folder)


# --------------------------------------------------------------------------- what a page shows


@dataclass(frozen=True)
class Tile:
    """One scene in the storyboard strip."""

    index: int
    title: str
    slide: Path | None


def storyboard(folder: Path | str) -> list[Tile]:
    """The current lesson's scenes in order, each with its slide picture (None when it is missing)."""
    project = Project(folder)
    manifest = project.load()
    tiles = []
    for rec in manifest.scenes:
        slide = project.resolve(rec.slide) if rec.slide is not None else None
        tiles.append(Tile(rec.index, rec.title, slide if slide is not None and slide.is_file() else None))
    return tiles


DOWNLOADS = ("lesson.mp4", "lesson.srt", "lesson.vtt")
EXPORTS = "export"  # where `lessonforge export` writes PPTX, SCORM, HTML and Markdown


def downloads(folder: Path | str) -> list[Path]:
    """The lesson's files to download: the video, its subtitles and whatever exports exist."""
    root = Path(folder)
    files = [root / name for name in DOWNLOADS if (root / name).is_file()]
    exports = root / EXPORTS
    if exports.is_dir():
        files += sorted(p for p in exports.rglob("*") if p.is_file() and not p.name.startswith("."))
    return files


def stamp(folder: Path | str) -> str:
    """Changes whenever the lesson or its conversation changes: a page polls it to stay current."""
    project = Project(folder)
    parts = [str(project.current_version())]
    for path in (project.manifest_path, project.meta / "chat.sqlite"):
        try:
            parts.append(str(path.stat().st_mtime_ns))
        except OSError:
            parts.append("-")
    return ":".join(parts)


def lessons(workspace: Path | str) -> list[Path]:
    """The lesson folders in ``workspace``: itself when it holds a lesson, and its subfolders that do."""
    root = Path(workspace)
    found = [root] if (root / MANIFEST).is_file() else []
    if root.is_dir():
        found += sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file())
    return found


def new_lesson_folder(workspace: Path | str, topic: str) -> Path:
    """A folder for a new lesson on ``topic`` in ``workspace`` that holds no lesson yet."""
    base = run.default_out(topic)
    for n in range(1, 1000):
        folder = Path(workspace) / (base.name if n == 1 else f"{base.name}-{n}")
        if not (folder / MANIFEST).exists() and not project_lock(folder).locked():
            return folder
    raise ConfigError(f"{workspace} already holds 999 lessons on {topic!r}; choose another folder for lessonforge ui")


# --------------------------------------------------------------------------- progress bar


@dataclass(frozen=True)
class Status:
    stage: str
    message: str
    done: float  # 0..1
    eta_s: float | None  # None until it can be estimated


class Tracker:
    """The share done and the time left of a make or an edit, from its events.

    The lesson-level LLM steps count for the first fifth, the scenes for the next three fifths (a
    scene is done when its slide is), assembly and encoding for the rest. Before any share is done, a
    local LLM's own estimate of its time left is shown.
    """

    BEFORE, SCENES = 0.2, 0.6
    EARLY = ("check", "download", "edit", "plan", "write", "fit", "llm", "review", "wait")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start = clock()
        self.stage, self.message = "start", ""
        self.total = 0
        self.scenes_done: set[int] = set()
        self.encoded: set[int] = set()
        self.early = 0.0
        self.llm_eta: float | None = None

    def update(self, event: dict[str, Any]) -> Status:
        stage = event.get("stage", "")
        scene, total = event.get("scene"), event.get("total")
        if total:
            self.total = int(total)
        if stage == "scene_done" and scene is not None:
            self.scenes_done.add(int(scene))
        elif stage == "encode" and scene is not None:
            self.encoded.add(int(scene))
        elif stage in ("plan", "write", "fit", "edit"):
            self.early = min(self.BEFORE, self.early + self.BEFORE / 3)
        if stage == "llm":
            eta = (event.get("data") or {}).get("eta_s")
            self.llm_eta = float(eta) if eta is not None else None
        else:
            self.llm_eta = None
        if stage not in ("llm", "download"):  # these report within a stage
            self.stage = stage
        self.message = event.get("message", "") or self.message
        return self.status()

    def fraction(self) -> float:
        if self.stage in ("done", "result"):
            return 1.0
        if not self.total:  # the scenes have not started
            return self.early
        rest = 1.0 - self.BEFORE - self.SCENES
        return min(1.0, self.BEFORE + (self.SCENES * len(self.scenes_done) + rest * len(self.encoded)) / self.total)

    def status(self) -> Status:
        done = self.fraction()
        elapsed = self.clock() - self.start
        eta: float | None = None
        if self.llm_eta is not None:
            eta = self.llm_eta
        elif 0.05 <= done < 1.0 and self.stage not in self.EARLY:
            eta = elapsed * (1.0 - done) / done
        elif done >= 1.0:
            eta = 0.0
        return Status(self.stage, self.message, done, eta)
