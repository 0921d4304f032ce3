"""``videos:MODEL`` clips: any server speaking the OpenAI Videos API shape (create, poll, download)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from lessonforge.tools.base import ClipBackend, ClipError
from lessonforge.tools.clips import Clip, ClipOptions, ClipRequest, check_request, clip_price, poll_wait, write_clip
from lessonforge.tools.defaults import VIDEOS_CLIPS


def _videos_seconds(seconds: int) -> str:
    return "4" if seconds <= 4 else "8"


def _videos_size(aspect: str) -> str:
    return "720x1280" if aspect == "9:16" else "1280x720"


class OpenAIVideoClips(ClipBackend):
    """``videos:MODEL`` clips from a server speaking the OpenAI Videos API at OPENAI_BASE_URL."""

    class Options(ClipOptions):
        """What ``videos:`` takes: what ``veo:`` takes, polled more often (see the constructor)."""

        poll_s: float = 5.0

    def __init__(self, model: str = VIDEOS_CLIPS, *, api_key: str | None = None, base_url: str | None = None,
                 price_per_second: float | None = None, poll_s: float = 5.0, timeout_s: float = 600.0) -> None:
        from lessonforge.tools.images.openai import OpenAIClient

        self.model = (model or "").strip() or VIDEOS_CLIPS
        self.name = f"videos:{self.model}"
        self.price_per_second = clip_price(self.name, self.model, price_per_second)
        self.poll_s, self.timeout_s = float(poll_s), float(timeout_s)
        self.client = OpenAIClient(self.name, "a /videos endpoint", api_key=api_key, base_url=base_url,
                                   timeout_s=120.0, max_retries=2, error=ClipError, flag="--clips")

    def __repr__(self) -> str:
        return f"OpenAIVideoClips(model={self.model!r})"

    async def aclose(self) -> None:
        await self.client.aclose()

    async def generate(self, request: ClipRequest, out: Path) -> Clip:
        import openai

        check_request(self.name, request)
        seconds = _videos_seconds(request.seconds)
        api = self.client.get().videos
        started = time.monotonic()
        try:
            job = await api.create(model=self.model, prompt=request.prompt, seconds=seconds,
                                   size=_videos_size(request.aspect))
            polls = 0
            while job.status not in ("completed", "failed"):
                if time.monotonic() - started > self.timeout_s:
                    raise ClipError(f"{self.name} did not finish the clip within {self.timeout_s:g} s (job {job.id} "
                                    f"{job.status}, {job.progress}%); the scene falls back to a picture.")
                await asyncio.sleep(poll_wait(self.poll_s, polls))
                polls += 1
                job = await api.retrieve(job.id)
            if job.status == "failed":
                why = job.error.message if job.error is not None else "no reason given"
                raise ClipError(f"{self.name} failed the clip (job {job.id}): {self.client.scrub(why)}")
            data = (await api.download_content(job.id, variant="video")).content
        except openai.OpenAIError as err:
            raise self.client.translate(err) from None
        write_clip(out, data, self.name)
        return Clip(path=out, seconds=float(seconds), model=self.name,
                    cost=round(int(seconds) * self.price_per_second, 6), prompt=request.prompt)
