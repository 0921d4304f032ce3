"""The image model and the critic as Ray Serve deployments shared by every lesson of a cluster.

Each replica loads its model once (one replica per GPU) and batches requests from every lesson
that reaches it (``@serve.batch``): pictures of many lessons are drawn in one pipeline call, and
judged in one critic pass against the union of their prompts. Lessons reach the deployments
through the same interfaces as any backend, by the prefix ``ray:`` before the model's own spec:

    --images ray:diffusers:stabilityai/sd-turbo     ServedImages -> the images deployment
    --critic ray:clip:openai/clip-vit-base-patch32  ServedCritic -> the critic deployment

`deploy` starts them (`lessonforge batch --executor ray` does, before any lesson); a client finds
its deployment by the model's spec. A served backend is named by that spec, so its pictures share
the content cache with the same model run locally.

Each replica counts its model calls and which lessons each call served (`stats`), so a run can
show that one call served several lessons.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from lessonforge.tools.base import (
    ConfigError,
    CriticBackend,
    Image,
    ImageBackend,
    ImageRequest,
    LessonForgeError,
    Verdict,
)
from lessonforge.tools.cache import content_key
from lessonforge.tools.defaults import CLIP_CRITIC, DIFFUSERS_IMAGES
from lessonforge.tools.registry import BackendOptions

PREFIX = "ray"
IMAGES_DEPLOYMENT = "LessonForgeImages"
CRITIC_DEPLOYMENT = "LessonForgeCritic"
INSTALL = "pip install 'lessonforge[ray]'"


def import_serve() -> Any:
    try:
        from ray import serve
    except ImportError:
        raise ConfigError(f"running on Ray needs Ray Serve: {INSTALL}") from None
    return serve


def app_name(kind: str, spec: str) -> str:
    """The Serve application that serves ``spec`` (one per model spec and kind)."""
    return f"lessonforge-{kind}-{content_key(kind, spec)[:12]}"


def caller() -> str:
    """Who is asking: the Ray task (a lesson) this runs in, else this process."""
    try:
        import ray

        if ray.is_initialized():
            task = ray.get_runtime_context().get_task_id()
            if task:
                return task
    except Exception:
        pass
    import os

    return f"pid-{os.getpid()}"


def unwrap(err: BaseException) -> BaseException:
    """The LessonForge error a replica raised, out of Ray's wrapper (its text carries a traceback)."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, LessonForgeError) else err


# --------------------------------------------------------------------------- replicas


class _Counted:
    """Model calls made by a replica, and which callers (lessons) each call served."""

    calls: int
    items: int
    loads: int
    callers_per_call: list[int]

    def _count(self, callers: Sequence[str], items: int) -> None:
        self.calls += 1
        self.items += items
        self.callers_per_call.append(len(set(callers)))

    def stats(self) -> dict[str, Any]:
        return {"calls": self.calls, "items": self.items, "callers_per_call": list(self.callers_per_call),
                "loads": self.loads}


class ImageModel(_Counted):
    """A replica of the image model: loaded once, every batch of requests drawn in one call."""

    def __init__(self, spec: str, device: str = "", max_batch: int = 16) -> None:
        from lessonforge.tools.registry import create

        self.backend = create("images", spec, offered={"device": device, "max_batch": max_batch})
        self.backend.load()
        self.calls = self.items = 0
        self.loads = 1
        self.callers_per_call: list[int] = []

    async def generate(self, callers: list[str], requests: list[ImageRequest]) -> list[Image]:
        images = await self.backend.generate(requests)
        self._count(callers, len(requests))
        return images


class CriticModel(_Counted):
    """A replica of the critic: every batch of pictures scored in one pass against all their prompts."""

    def __init__(self, spec: str, device: str = "", floor: float | None = None, margin: float | None = None) -> None:
        from lessonforge.tools.registry import create

        options = {k: v for k, v in (("floor", floor), ("margin", margin)) if v is not None}
        self.critic = create("critic", spec, offered={"device": device}, **options)
        self.critic.load()
        self.calls = self.items = 0
        self.loads = 1
        self.callers_per_call: list[int] = []

    def info(self) -> dict[str, Any]:
        return {"floor": self.critic.floor, "margin": self.critic.margin, "scoring": self.critic.scoring}

    async def scores(self, callers: list[str], images: list[list[Any]],
                     prompts: list[list[str]]) -> list[list[list[float]]]:
        """Each request's score matrix, from ONE forward pass over all pictures and all distinct prompts."""
        union = list(dict.fromkeys(p for ps in prompts for p in ps))
        flat = [img for imgs in images for img in imgs]
        matrix = await asyncio.to_thread(self.critic.scores, flat, union)
        self._count(callers, len(flat))
        column = {p: j for j, p in enumerate(union)}
        out, row = [], 0
        for imgs, ps in zip(images, prompts, strict=True):
            out.append([[float(matrix[row + i][column[p]]) for p in ps] for i in range(len(imgs))])
            row += len(imgs)
        return out

    async def judge(self, callers: list[str], images: list[list[Any]], prompts: list[list[str]],
                    targets: list[list[int] | None]) -> list[list[Verdict]]:
        """A critic that judges without scores (a vision LLM): one call per request of the batch."""
        out = []
        for imgs, ps, ts in zip(images, prompts, targets, strict=True):
            out.append(await asyncio.to_thread(self.critic.judge, imgs, ps, ts))
            self._count(callers[len(out) - 1: len(out)], len(imgs))
        return out


def _batched(cls: type, names: Sequence[str], max_batch: int, wait_s: float) -> type:
    """``cls`` with ``@serve.batch`` on ``names``: requests arriving within ``wait_s`` share one call."""
    serve = import_serve()
    methods = {n: serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=wait_s)(getattr(cls, n)) for n in names}
    return type(cls.__name__, (cls,), {**methods, "__module__": cls.__module__})


# --------------------------------------------------------------------------- deploying


def deploy(kind: str, spec: str, *, device: str = "", replicas: int = 1, gpus: float = 0.0,
           max_batch: int = 16, wait_s: float = 0.1, **options: Any) -> Any:
    """Start (or update) the deployment serving ``spec`` on the connected Ray cluster; its handle."""
    serve = import_serve()
    cls: type[_Counted]
    methods: tuple[str, ...]
    args: tuple[Any, ...]
    if kind == "images":
        cls, name, methods, args = ImageModel, IMAGES_DEPLOYMENT, ("generate",), (spec, device, max_batch)
    elif kind == "critic":
        cls, name, methods = CriticModel, CRITIC_DEPLOYMENT, ("scores", "judge")
        args = (spec, device, options.get("floor"), options.get("margin"))
    else:
        raise ConfigError(f"no Ray Serve deployment for {kind!r}; images and critic can be served")
    deployment = serve.deployment(
        _batched(cls, methods, max_batch, wait_s),
        name=name,
        num_replicas=replicas,
        max_ongoing_requests=max_batch * 4,  # room for full batches from many lessons
        ray_actor_options={"num_cpus": 0, "num_gpus": gpus},
    )
    try:
        return serve.run(deployment.bind(*args), name=app_name(kind, spec), route_prefix=None, blocking=False)
    except Exception as err:
        raise unwrap(err) from None


async def stats(kind: str, spec: str) -> dict[str, Any]:
    """The counters of the deployment serving ``spec`` (one replica's, the one the call reached)."""
    return await _handle(kind, spec).stats.remote()


def _handle(kind: str, spec: str) -> Any:
    serve = import_serve()
    name = IMAGES_DEPLOYMENT if kind == "images" else CRITIC_DEPLOYMENT
    try:
        return serve.get_deployment_handle(name, app_name=app_name(kind, spec))
    except Exception:
        raise ConfigError(
            f"no Ray Serve deployment serves the {kind} model {spec!r} on this Ray cluster; run with "
            f"--executor ray, which starts it, or pass --{kind} {spec} to load the model in each lesson"
        ) from None


# --------------------------------------------------------------------------- clients (the backends lessons use)


class ServedImages(ImageBackend):
    """ImageGenerator that forwards every request to the shared images deployment (batched there)."""

    class Options(BackendOptions):
        """None: the deployment was built with the run's settings (`deploy`)."""

    def __init__(self, model: str) -> None:
        from lessonforge.tools.registry import parse

        if parse("images", model) is None or model.startswith(f"{PREFIX}:"):
            raise ConfigError(f"--images {PREFIX}:{model} names no image model; write {PREFIX}:BACKEND:MODEL, "
                              f"e.g. {PREFIX}:diffusers:{DIFFUSERS_IMAGES}")
        self.spec = model
        self.name = model  # the same model draws the same pictures: share the cache with local runs
        self._handle: Any = None

    async def generate(self, requests: Sequence[ImageRequest]) -> list[Image]:
        if self._handle is None:
            self._handle = _handle("images", self.spec)
        who = caller()
        try:
            return list(await asyncio.gather(*(self._handle.generate.remote(who, r) for r in requests)))
        except Exception as err:
            raise unwrap(err) from None


class ServedCritic(CriticBackend):
    """Critic that forwards to the shared critic deployment; BatchedCritic sees the same scores() as CLIP's."""

    class Options(BackendOptions):
        """The acceptance floor and margin the run names; the deployment's critic applies them (`deploy`)."""

        floor: float | None = None
        margin: float | None = None

    def __init__(self, model: str, *, floor: float | None = None, margin: float | None = None) -> None:
        """``floor`` and ``margin`` are the run's; the deployment's critic was built with them."""
        from lessonforge.tools.registry import parse

        if parse("critic", model) is None or model.startswith(f"{PREFIX}:"):
            raise ConfigError(f"--critic {PREFIX}:{model} names no critic; write {PREFIX}:BACKEND:MODEL, "
                              f"e.g. {PREFIX}:clip:{CLIP_CRITIC}")
        self.spec = model
        self.name = model
        self._handle: Any = None
        self._info: dict[str, Any] | None = None

    def _remote(self) -> tuple[Any, dict[str, Any]]:
        """The handle and the critic's settings (blocking: called from worker threads)."""
        if self._handle is None:
            self._handle = _handle("critic", self.spec)
        if self._info is None:
            self._info = self._handle.info.remote().result()
        return self._handle, self._info

    @property
    def floor(self) -> float | None:
        return self._remote()[1]["floor"]

    @property
    def margin(self) -> float | None:
        return self._remote()[1]["margin"]

    @property
    def scoring(self) -> bool:
        """True for a scoring critic (CLIP): its score matrix comes from the deployment."""
        return bool(self._remote()[1]["scoring"])

    def scores(self, images: Sequence[Any], prompts: Sequence[str]) -> list[list[float]]:
        """The remote score matrix of a scoring critic (one forward pass there, batched across lessons)."""
        handle, info = self._remote()
        if not info["scoring"]:
            return super().scores(images, prompts)  # a CriticError: this critic judges without scores
        try:
            return handle.scores.remote(caller(), list(images), list(prompts)).result()
        except Exception as err:
            raise unwrap(err) from None

    def judge(self, images: Sequence[Any], prompts: Sequence[str],
              targets: Sequence[int] | None = None) -> list[Verdict]:
        handle, _ = self._remote()
        try:
            return handle.judge.remote(caller(), list(images), list(prompts),
                                       list(targets) if targets is not None else None).result()
        except Exception as err:
            raise unwrap(err) from None
