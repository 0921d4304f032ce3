"""Lessons as Ray tasks, the image model and critic as shared Ray Serve deployments (``--executor ray``).

    RayExecutor()                    a local Ray (or the cluster RAY_ADDRESS names)
    RayExecutor("10.0.0.5:6379")     an existing cluster (``--executor ray:ADDRESS``)

Each lesson is one task (``num_cpus`` each, ``max_retries`` when its worker is lost or a backend
fails). It writes its checkpoints beside the lesson (or to Postgres), so a retried lesson goes on
from its last finished step instead of starting over. The output folder must be one every worker
sees (a shared filesystem on a cluster); each lesson's progress events are kept in
``LESSON/.lessonforge/events.jsonl``. The workers need LessonForge installed and the same
environment (API keys, ``OPENAI_BASE_URL``) as this machine: keys are never shipped with the tasks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from typing import Any

from lessonforge.agent.config import Settings
from lessonforge.agent.context import EventSink
from lessonforge.agent.project import Manifest, Project
from lessonforge.agent.request import LessonJob
from lessonforge.tools import ray_serve
from lessonforge.tools.base import ConfigError, LessonForgeError, ProviderError

EVENTS_LOG = "events.jsonl"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray: {ray_serve.INSTALL}") from None
    return ray


class RayExecutor:
    name = "ray"
    shares_objects = False  # each lesson runs in a worker process of its own

    def __init__(
        self,
        address: str | None = None,
        *,
        retries: int = 3,
        lesson_cpus: float = 1.0,
        replicas: int | None = None,
        max_batch: int = 16,
        batch_wait_s: float = 0.1,
        serve_models: bool = True,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        if retries < 0:
            raise ConfigError(f"--retries must be 0 or more, got {retries}")
        if lesson_cpus <= 0:
            raise ConfigError(f"CPUs per lesson must be more than 0, got {lesson_cpus}")
        self.address = address
        self.retries = retries
        self.lesson_cpus = lesson_cpus
        self.replicas = replicas
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self.serve_models = serve_models
        # workers do not print here, nor does Ray below warnings
        self.init_options = {"log_to_driver": False, "logging_level": logging.WARNING, **(init_options or {})}
        self.served: dict[str, str] = {}  # kind -> the model spec its deployment serves
        self._owns_ray = False
        self._remote: Any = None

    async def start(self, settings: Settings) -> Settings:
        """Connect to (or start) Ray; serve the image model and critic once for every lesson."""
        ray = import_ray()
        if not ray.is_initialized():
            try:  # in the main thread: Ray sets its signal handlers there
                ray.init(address=self.address, **self.init_options)
            except ConnectionError as err:
                raise ConfigError(f"cannot reach the Ray cluster at {self.address}: {err}; check the address "
                                  "(HOST:PORT of its head node, or auto) and that the cluster runs") from None
            self._owns_ray = True
        self._remote = ray.remote(make_on_worker)
        ray_serve.import_serve()
        logging.getLogger("ray.serve").setLevel(logging.WARNING)  # Serve's progress lines are not ours to print
        if not self.serve_models:
            return settings
        update: dict[str, str] = {}
        gpus = int(ray.cluster_resources().get("GPU", 0)) if settings.device != "cpu" else 0
        replicas = self.replicas or max(1, gpus)  # one replica (one loaded model) per GPU
        per_replica = 1.0 if gpus else 0.0
        options = {"device": settings.device, "replicas": replicas, "gpus": per_replica,
                   "max_batch": self.max_batch, "wait_s": self.batch_wait_s}
        images = ray_serve_spec("images", settings.images)
        if images is not None:
            await asyncio.to_thread(ray_serve.deploy, "images", images, **options)
            self.served["images"] = images
            update["images"] = f"{ray_serve.PREFIX}:{images}"
            critic = ray_serve_spec("critic", settings.critic)
            if critic is not None:
                await asyncio.to_thread(ray_serve.deploy, "critic", critic, floor=settings.critic_floor,
                                        margin=settings.critic_margin, **options)
                self.served["critic"] = critic
                update["critic"] = f"{ray_serve.PREFIX}:{critic}"
        return settings.model_copy(update=update)

    async def make(self, job: LessonJob, on_event: EventSink, **backends: Any) -> Manifest:
        """Make one lesson as a Ray task; its errors come back as the LessonForge errors they were."""
        ray = import_ray()
        if self._remote is None:
            raise ConfigError("the Ray executor was not started; call start() first")
        task = self._remote.options(
            num_cpus=self.lesson_cpus, max_retries=self.retries, retry_exceptions=[ProviderError],
            name=f"lesson {job.label or job.request.topic}"[:100],
        )
        try:
            result = await task.remote(job, backends)
        except ray.exceptions.RayTaskError as err:
            cause = ray_serve.unwrap(err)
            if isinstance(cause, LessonForgeError):
                raise cause from None
            raise LessonForgeError(f"the lesson failed on its Ray worker: {_first_line(err)}") from None
        except ray.exceptions.RayError as err:  # the worker (or its node) was lost more times than retried
            raise LessonForgeError(
                f"the Ray worker making this lesson was lost {self.retries + 1} time(s) ({_first_line(err)}); "
                "finished steps are kept: run the same command again to resume"
            ) from None
        status, payload = result
        if status == "error":
            raise _error(payload["type"], payload["message"])
        return Manifest.model_validate(payload)

    async def stats(self) -> dict[str, dict[str, Any]]:
        """Model calls of each shared deployment (and which lessons each call served)."""
        return {kind: await ray_serve.stats(kind, spec) for kind, spec in self.served.items()}

    async def close(self) -> None:
        if not self._owns_ray:
            return
        ray = import_ray()
        await asyncio.to_thread(ray.shutdown)  # with the deployments this Ray ran
        self._owns_ray = False


def ray_serve_spec(kind: Any, spec: str) -> str | None:
    """The model spec to serve for a setting (None: off, or already served by a running deployment)."""
    from lessonforge.tools import registry

    parsed = registry.parse(kind, spec) if spec else None
    if parsed is None or parsed.backend == ray_serve.PREFIX:
        return None
    return spec


def _first_line(err: BaseException) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def _error(name: str, message: str) -> LessonForgeError:
    import lessonforge.tools.base as base

    cls = getattr(base, name, None)
    if not (isinstance(cls, type) and issubclass(cls, LessonForgeError)):
        cls = LessonForgeError
    return cls(message)


class EventLog:
    """A lesson's progress events, appended as JSON lines to its folder (a worker has no console)."""

    def __init__(self, out: Any) -> None:
        self.path = Project(out).meta / EVENTS_LOG
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, event: dict[str, Any]) -> None:
        line = json.dumps({**event, "time": round(time.time(), 3), "pid": os.getpid()}, ensure_ascii=False, default=str)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def make_on_worker(job: LessonJob, backends: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The Ray task: make the lesson, resuming from its checkpoint when this is a retry.

    A ProviderError is raised for Ray to retry the lesson; other LessonForge errors (bad input) are
    returned, as retrying cannot mend them.
    """
    from lessonforge.agent import run

    log = EventLog(job.out)
    log({"stage": "worker", "message": f"lesson started on {socket.gethostname()}"})

    async def go() -> tuple[str, dict[str, Any]]:
        try:
            manifest = await run.make(job.request, job.settings, job.out, on_event=log, checkpoint=job.checkpoint,
                                      understood=job.understood, **backends)
        except ProviderError:
            raise
        except LessonForgeError as err:
            return "error", {"type": type(err).__name__, "message": str(err)}
        return "done", manifest.model_dump(mode="json")

    return asyncio.run(go())
