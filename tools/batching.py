"""One micro-batcher, and the critic behind it.

Scenes run concurrently, so their requests reach a backend at about the same time. `MicroBatcher`
collects requests arriving within a short window (or until a batch is full) and runs them as one
batch in a worker thread; the image model (`lessonforge.tools.images.diffusers`) draws a batch in one
pipeline call, and `BatchedCritic` judges one.

Each scene asks the critic for its own verdict (``await critic.judge_one(...)``); requests arriving
together are scored in one forward pass of images x every distinct prompt for a scoring critic (CLIP
and the fake), else one ``judge`` call per group of scenes that share their prompt list. Verdicts are
cached per (picture, prompts, target), so a rerun or an edit asks the critic only about new pictures.
(Across the lessons of a Ray cluster, Ray Serve's own ``@serve.batch`` batches in the deployment.)
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lessonforge.tools.base import Critic, CriticBackend, Verdict, Wrapper
from lessonforge.tools.cache import AssetStore, content_key
from lessonforge.tools.cached import PerLoop

R = TypeVar("R")
V = TypeVar("V")


@dataclass
class _Job(Generic[R, V]):
    item: R
    future: asyncio.Future[V]


class MicroBatcher(Generic[R, V]):
    """Requests submitted on one event loop, run in batches by ``run_batch`` in a worker thread.

    ``run_batch(items)`` (blocking) returns one result per item, in order; an exception in that list
    goes to its own caller only, one raised reaches every caller of the batch. A batch holds up to
    ``max_batch`` items with the same ``key`` (e.g. a picture's size), oldest first; it runs when
    ``window_s`` has passed since the first of them arrived, or at once when it is full. A caller
    that was cancelled is left out of the batch.
    """

    def __init__(
        self,
        run_batch: Callable[[list[R]], Sequence[V | BaseException]],
        *,
        max_batch: int,
        window_s: float,
        key: Callable[[R], Hashable] = lambda _item: None,
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max(1, int(max_batch))
        self._window_s = window_s
        self._key = key
        self._pending: list[_Job[R, V]] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, item: R) -> asyncio.Future[V]:
        loop = asyncio.get_running_loop()
        job: _Job[R, V] = _Job(item, loop.create_future())
        self._pending.append(job)
        if self._count_ready(item) >= self._max_batch:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return job.future

    def _count_ready(self, item: R) -> int:
        key = self._key(item)
        return sum(1 for j in self._pending if self._key(j.item) == key)

    def _take(self) -> list[_Job[R, V]]:
        """The oldest waiting job and up to ``max_batch - 1`` more with its key, in order."""
        self._pending = [j for j in self._pending if not j.future.done()]  # drop cancelled callers
        if not self._pending:
            return []
        key = self._key(self._pending[0].item)
        batch = [j for j in self._pending if self._key(j.item) == key][: self._max_batch]
        taken = {id(j) for j in batch}
        self._pending = [j for j in self._pending if id(j) not in taken]
        return batch

    async def _drain(self) -> None:
        while self._pending:
            if not self._full.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._window_s)
            self._full.clear()
            batch = self._take()
            if not batch:
                continue
            try:
                results = await asyncio.to_thread(self._run_batch, [j.item for j in batch])
            except asyncio.CancelledError:  # the loop is shutting down: nobody will collect these
                for job in batch:
                    job.future.cancel()
                raise
            except Exception as exc:  # every caller in the batch learns why
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for job, result in zip(batch, results, strict=True):
                if job.future.done():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
            if any(self._count_ready(j.item) >= self._max_batch for j in self._pending):
                self._full.set()


# --------------------------------------------------------------------------- the critic


@dataclass(frozen=True)
class _Request:
    image: Any
    prompts: tuple[str, ...]
    target: int
    key: str


def _png(img: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class BatchedCritic(Wrapper, CriticBackend):
    """The critic the scenes call: ``judge_one`` per scene, batched and cached (see the module doc)."""

    inner: Critic

    def __init__(self, inner: Critic, store: AssetStore | None = None, *, window_s: float = 0.05,
                 max_batch: int = 32) -> None:
        super().__init__(inner)
        self.store = store
        self.window_s = window_s
        self.max_batch = max_batch
        self.passes = 0  # critic passes made (each may judge many pictures)
        self.judged = 0  # pictures judged by the critic (not from the cache)
        self.hits = 0
        self._batchers: PerLoop[MicroBatcher[_Request, Verdict]] = PerLoop(
            lambda: MicroBatcher(self._judge_and_keep, max_batch=self.max_batch, window_s=self.window_s))

    # the interface of what it wraps, forwarded

    @property
    def judges(self) -> Any:
        return self.inner.judges

    @property
    def scoring(self) -> bool:
        return self.inner.scoring

    @property
    def floor(self) -> float | None:
        return self.inner.floor

    @property
    def margin(self) -> float | None:
        return self.inner.margin

    def scores(self, images: Sequence[Any], prompts: Sequence[str]) -> Any:
        return self.inner.scores(images, prompts)

    def judge(self, images: Sequence[Any], prompts: Sequence[str],
              targets: Sequence[int] | None = None) -> list[Verdict]:
        return self.inner.judge(images, prompts, targets)

    # batched and cached

    def _key(self, image: Any, prompts: Sequence[str], target: int) -> str:
        settings = {"floor": self.inner.floor, "margin": self.inner.margin}
        if self.inner.scoring:
            # scores do not depend on the other scenes' order: moving scenes keeps the cache
            others = sorted(p for j, p in enumerate(prompts) if j != target)
            return content_key("critic", self.name, settings, _png(image), prompts[target], others)
        return content_key("critic", self.name, settings, _png(image), list(prompts), target)

    def _decide(self, row: list[float], target: int) -> Verdict:
        from lessonforge.tools.critic.clip import decide  # the shared rule of scoring critics

        floor = self.inner.floor
        if floor is None:
            raise ValueError(f"the scoring critic {self.name} has no acceptance floor")
        return decide(row, target, floor, self.inner.margin or 0.0)

    def _from_cache(self, cached: dict[str, Any], prompts: Sequence[str], target: int) -> Verdict:
        by_prompt = cached.get("by_prompt")
        if by_prompt is not None and self.inner.scoring:  # rank and reason follow the scenes' current order
            return self._decide([float(by_prompt[p]) for p in prompts], target)
        return Verdict(**{k: v for k, v in cached.items() if k != "by_prompt"} | {"scores": tuple(cached["scores"])})

    async def judge_one(self, image: Any, prompts: Sequence[str], target: int) -> Verdict:
        """The verdict on ``image`` as a picture for ``prompts[target]`` (the others are contrast)."""
        key = await asyncio.to_thread(self._key, image, prompts, target)
        cached = await asyncio.to_thread(self.store.get_json, key) if self.store is not None else None
        if cached is not None:
            try:
                verdict = self._from_cache(cached, prompts, target)
                self.hits += 1
                return verdict
            except (KeyError, TypeError, ValueError):
                pass  # an unreadable entry: judge again
        return await self._batchers.get().submit(_Request(image, tuple(prompts), target, key))

    def _judge_and_keep(self, batch: list[_Request]) -> list[Verdict]:
        """Blocking: judge a batch and keep every verdict (with its score per prompt) in the store."""
        verdicts = self._judge_batch(batch)
        if self.store is not None:
            for r, v in zip(batch, verdicts, strict=True):
                self.store.put_json(r.key, {"accepted": v.accepted, "score": v.score, "scores": list(v.scores),
                                            "rank": v.rank, "reason": v.reason,
                                            "by_prompt": dict(zip(r.prompts, v.scores, strict=False))})
        return verdicts

    def _judge_batch(self, batch: list[_Request]) -> list[Verdict]:
        self.judged += len(batch)
        if self.inner.scoring:
            self.passes += 1
            union = list(dict.fromkeys(p for r in batch for p in r.prompts))
            matrix = self.inner.scores([r.image for r in batch], union)
            return [self._decide([float(matrix[i][union.index(p)]) for p in r.prompts], r.target)
                    for i, r in enumerate(batch)]
        verdicts: dict[int, Verdict] = {}
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, r in enumerate(batch):
            groups.setdefault(r.prompts, []).append(i)
        for prompts, idx in groups.items():
            self.passes += 1
            got = self.inner.judge([batch[i].image for i in idx], list(prompts), [batch[i].target for i in idx])
            verdicts.update(zip(idx, got, strict=True))
        return [verdicts[i] for i in range(len(batch))]
