"""Where lessons are made: on this machine (the default) or as tasks on a Ray cluster.

`lessonforge batch` and `lessonforge eval` hand each lesson to an executor:

    executor = executor.create("local" | "ray" | "ray:ADDRESS")
    settings = await executor.start(settings)     # Ray: the image model and critic served once
    manifest = await executor.make(job, on_event, **backends)
    await executor.close()

``local`` runs `agent.run.make` in this process; backends built by the caller (one image model
and critic for every lesson) are handed to each lesson. ``ray`` runs each lesson as a Ray task
(retried when its worker is lost) on a local Ray or the cluster at ADDRESS, with the image model
and critic as shared Ray Serve deployments (`tools.ray_serve`) and a checkpoint per lesson, so a
retried lesson resumes at its last finished step (`agent.checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tools.base import ConfigError

from .config import Settings
from .context import EventSink
from .project import Manifest
from .state import LessonRequest


@dataclass(frozen=True)
class LessonJob:
    """One lesson to make: what, where, how, and where its checkpoints live."""

    request: LessonRequest
    out: Path
    settings: Settings
    checkpoint: bool | str | None = True  # True: SQLite beside the lesson; a Postgres DSN; None: off
    label: str = ""  # the topic's slug, for progress


class Executor(Protocol):
    name: str
    shares_objects: bool  # backends built by the caller can be handed to every lesson (same process)

    async def start(self, settings: Settings) -> Settings:
        """Get ready to make lessons with ``settings``; the settings the lessons will use."""
        ...

    async def make(self, job: LessonJob, on_event: EventSink, **backends: Any) -> Manifest: ...

    async def close(self) -> None: ...


class LocalExecutor:
    """Lessons made in this process, concurrently as the caller schedules them."""

    name = "local"
    shares_objects = True

    async def start(self, settings: Settings) -> Settings:
        return settings

    async def make(self, job: LessonJob, on_event: EventSink, **backends: Any) -> Manifest:
        from . import run

        return await run.make(job.request, job.settings, job.out, on_event=on_event, checkpoint=job.checkpoint,
                              **backends)

    async def close(self) -> None:
        return None


EXECUTORS = "local, ray or ray:ADDRESS"


def create(spec: str | None, **options: Any) -> Executor:
    """The executor ``spec`` names: "local" (default), "ray" (a local Ray, or RAY_ADDRESS's) or "ray:ADDRESS"."""
    text = (spec or "local").strip()
    kind, sep, address = text.partition(":")
    if kind == "local" and not sep:
        return LocalExecutor()
    if kind == "ray":
        if sep and not address.strip():
            raise ConfigError("--executor ray: needs an address after the colon, e.g. ray:10.0.0.5:6379 or "
                              "ray:auto; or write --executor ray for a local Ray")
        from .executor_ray import RayExecutor

        return RayExecutor(address.strip() or None, **options)
    raise ConfigError(f"unknown executor {text!r}; use {EXECUTORS}")
