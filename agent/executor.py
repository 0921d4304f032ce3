"""Where lessons are made: on this machine (the default) or as tasks on a Ray cluster.

`lessonforge batch` and `lessonforge eval` hand each lesson to an executor:

    executor = executor.create("local" | "ray" | "ray:ADDRESS")
    settings = await executor.start(settings)     # Ray: the image model and critic served once
    manifest = await executor.make(job, on_event, **backends)
    await executor.close()

``local`` runs `lessonforge.agent.run.make` in this process; backends built by the caller (one image model
and critic for every lesson) are handed to each lesson. ``ray`` runs each lesson as a Ray task
(retried when its worker is lost) on a local Ray or the cluster at ADDRESS, with the image model
and critic as shared Ray Serve deployments (`lessonforge.tools.ray_serve`) and a checkpoint per lesson, so a
retried lesson resumes at its last finished step (`lessonforge.agent.checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.context import Context, EventSink, create_critic, create_images
from lessonforge.agent.context import create as create_backend
from lessonforge.agent.prepare import check_service, preflight
from lessonforge.agent.project import Manifest
from lessonforge.agent.request import LessonJob
from lessonforge.tools import registry
from lessonforge.tools.base import Backend, ConfigError
from lessonforge.tools.batching import BatchedCritic


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
        return await run.make(job.request, job.settings, job.out, on_event=on_event, checkpoint=job.checkpoint,
                              understood=job.understood, **backends)

    async def close(self) -> None:
        return None


@dataclass
class Shared:
    """What every lesson of a run shares: the settings they use and the backends built once for all."""

    settings: Settings
    backends: dict[str, Any]  # objects handed to every lesson (images and critic built here when local)
    names: dict[str, str]  # the backend of each capability, for the run's record and resume keys
    llm: Any  # an LLM that proved the settings work (the given one, or one built for the check)
    owned: list[Backend] = field(default_factory=list)  # clients built here, to close at the end

    async def aclose(self) -> None:
        for client in self.owned:
            await client.aclose()


async def prepare(executor: Executor, settings: Settings, emit: EventSink, **given: Any) -> Shared:
    """Start the executor and check every backend before any lesson: the heavy models are built and
    loaded once, here (local) or as the cluster's deployments (Ray), and the LLM is reached."""
    lesson_settings = await executor.start(settings)
    images, critic, llm = given.get("images"), given.get("critic"), given.get("llm")
    if images is None and executor.shares_objects:
        images = create_images(settings)  # shared by every lesson, as each lesson's own would be built
    if critic is None and images is not None:
        critic = create_critic(settings)  # with the floor and margin the run records
    owned = []
    check_llm = llm
    if check_llm is None:  # each lesson builds its own; this one proves the settings work
        check_llm = create_backend("llm", settings.llm_spec())  # no key and no server: a ConfigError here
        owned.append(check_llm)
    if executor.shares_objects:
        critic_ready = BatchedCritic(critic) if critic is not None else None  # its lifecycle, as a lesson calls it
        await preflight(Context(llm=check_llm, images=images, critic=critic_ready), emit)
    else:  # the lessons' workers fetch and load their own models; only a service is reached from here
        await check_service(check_llm, emit)

    def built_there(kind: Any, spec: str) -> str:
        """The backend each lesson's worker builds for itself, when none was built here."""
        pictures = registry.parse("images", settings.images) is not None
        if executor.shares_objects or registry.parse(kind, spec) is None or not pictures:
            return "none"
        return spec

    speech = given.get("speech")
    backends = {"llm": llm, "images": images, "speech": speech, "critic": critic}
    names = {
        "llm": llm.name if llm is not None else settings.llm_spec(),
        "images": images.name if images is not None else built_there("images", settings.images),
        "speech": speech.name if speech is not None else settings.speech,
        "critic": critic.name if critic is not None else built_there("critic", settings.critic),
    }
    return Shared(lesson_settings, {k: v for k, v in backends.items() if v is not None}, names, check_llm, owned)


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
        from lessonforge.agent.executor_ray import RayExecutor

        return RayExecutor(address.strip() or None, **options)
    raise ConfigError(f"unknown executor {text!r}; use {EXECUTORS}")
