"""Judge the pictures of concurrent scenes in one critic pass, and cache every verdict.

Scenes run concurrently, so their pictures reach the critic at about the same time. Each scene
asks for its own verdict (``await critic.judge_one(...)``); requests arriving within a short
window are scored together: one forward pass of images × every distinct prompt for a critic that
exposes ``scores`` (CLIP and the fake), else one ``judge`` call per group of scenes that share
their prompt list. Verdicts are cached per (picture, prompts, target), so a rerun or an edit asks
the critic only about new pictures.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lessonforge.tools.base import Verdict
from lessonforge.tools.cache import AssetStore, content_key


@dataclass
class _Request:
    image: Any
    prompts: tuple[str, ...]
    target: int
    key: str
    future: asyncio.Future[Verdict]


def _png(img: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class BatchedCritic:
    def __init__(self, inner: Any, store: AssetStore | None = None, *, window_s: float = 0.05, max_batch: int = 32) -> None:
        self.inner = inner
        self.store = store
        self.name = inner.name
        self.window_s = window_s
        self.max_batch = max_batch
        self.passes = 0  # critic passes made (each may judge many pictures)
        self.judged = 0  # pictures judged by the critic (not from the cache)
        self.hits = 0
        self._pending: list[_Request] = []
        self._flusher: asyncio.Task[None] | None = None

    def _scoring(self) -> bool:
        """Critics that score every prompt (CLIP) are judged here with the shared decision rule."""
        return getattr(self.inner, "scores", None) is not None and hasattr(self.inner, "floor")

    def _key(self, image: Any, prompts: Sequence[str], target: int) -> str:
        settings = {k: getattr(self.inner, k, None) for k in ("floor", "margin")}
        if self._scoring():
            # scores do not depend on the other scenes' order: moving scenes keeps the cache
            others = sorted(p for j, p in enumerate(prompts) if j != target)
            return content_key("critic", self.name, settings, _png(image), prompts[target], others)
        return content_key("critic", self.name, settings, _png(image), list(prompts), target)

    def _from_cache(self, cached: dict[str, Any], prompts: Sequence[str], target: int) -> Verdict:
        by_prompt = cached.get("by_prompt")
        if by_prompt is not None and self._scoring():
            from lessonforge.tools.critic.clip import (
                decide,  # rank and reason follow the scenes' current order
            )

            row = [float(by_prompt[p]) for p in prompts]
            return decide(row, target, self.inner.floor, getattr(self.inner, "margin", 0.0))
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
        loop = asyncio.get_running_loop()
        request = _Request(image, tuple(prompts), target, key, loop.create_future())
        self._pending.append(request)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())
        return await request.future

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.window_s)
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                verdicts = await asyncio.to_thread(self._judge_batch, batch)
            except BaseException as err:  # every scene in the batch learns why
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(err)
                continue
            for r, v in zip(batch, verdicts, strict=True):
                if self.store is not None:
                    await asyncio.to_thread(
                        self.store.put_json, r.key,
                        {"accepted": v.accepted, "score": v.score, "scores": list(v.scores), "rank": v.rank,
                         "reason": v.reason, "by_prompt": dict(zip(r.prompts, v.scores, strict=False))})
                if not r.future.done():
                    r.future.set_result(v)

    def _judge_batch(self, batch: list[_Request]) -> list[Verdict]:
        self.judged += len(batch)
        if self._scoring():
            from lessonforge.tools.critic.clip import decide

            self.passes += 1
            union = list(dict.fromkeys(p for r in batch for p in r.prompts))
            matrix = self.inner.scores([r.image for r in batch], union)
            out = []
            for i, r in enumerate(batch):
                row = [float(matrix[i][union.index(p)]) for p in r.prompts]
                out.append(decide(row, r.target, self.inner.floor, getattr(self.inner, "margin", 0.0)))
            return out
        verdicts: dict[int, Verdict] = {}
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, r in enumerate(batch):
            groups.setdefault(r.prompts, []).append(i)
        for prompts, idx in groups.items():
            self.passes += 1
            got = self.inner.judge([batch[i].image for i in idx], list(prompts), [batch[i].target for i in idx])
            verdicts.update(zip(idx, got, strict=True))
        return [verdicts[i] for i in range(len(batch))]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
