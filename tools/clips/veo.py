"""``veo:MODEL`` clips: Google's Veo through the Gemini API (google-genai)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from lessonforge.tools.base import ClipBackend, ClipError, ConfigError
from lessonforge.tools.clips import Clip, ClipOptions, ClipRequest, check_request, clip_price, poll_wait, write_clip
from lessonforge.tools.defaults import VEO_CLIPS


def _veo_seconds(seconds: int) -> int:
    """Veo draws 4, 6 or 8 s: the shortest that is at least ``seconds``."""
    return next(s for s in (4, 6, 8) if s >= seconds)


class VeoClips(ClipBackend):
    """``veo:MODEL`` clips through the Gemini API (google-genai): generate_videos, poll, download."""

    Options = ClipOptions

    def __init__(self, model: str = VEO_CLIPS, *, api_key: str | None = None,
                 base_url: str | None = None, price_per_second: float | None = None, poll_s: float = 10.0,
                 timeout_s: float = 600.0) -> None:
        self.model = (model or "").strip() or VEO_CLIPS
        self.name = f"veo:{self.model}"
        key = (api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY") or "").strip()
        if not key:
            raise ConfigError(f"No API key for {self.name}. Set GEMINI_API_KEY (a Gemini API key), or turn clips off "
                              "(--clips none).")
        self.price_per_second = clip_price(self.name, self.model, price_per_second)
        self.poll_s, self.timeout_s = float(poll_s), float(timeout_s)
        self._key = key
        self.base_url = (base_url or os.environ.get("GEMINI_BASE_URL", "")).strip() or None
        self._client: Any = None

    def __repr__(self) -> str:  # never shows the key
        return f"VeoClips(model={self.model!r})"

    def _genai(self) -> Any:
        try:
            from google import genai
            from google.genai import types
        except ImportError as err:
            raise ConfigError(f"{self.name} needs google-genai: pip install 'lessonforge[hosted]'.") from err
        if self._client is None:
            options = types.HttpOptions(base_url=self.base_url) if self.base_url else None
            self._client = genai.Client(api_key=self._key, http_options=options)
        return self._client, types

    async def generate(self, request: ClipRequest, out: Path) -> Clip:
        check_request(self.name, request)
        client, types = self._genai()
        seconds = _veo_seconds(request.seconds)
        config = types.GenerateVideosConfig(number_of_videos=1, duration_seconds=seconds,
                                            aspect_ratio="9:16" if request.aspect == "9:16" else "16:9")
        started = time.monotonic()
        try:
            op = await client.aio.models.generate_videos(
                model=self.model, source=types.GenerateVideosSource(prompt=request.prompt), config=config)
            polls = 0
            while not op.done:
                if time.monotonic() - started > self.timeout_s:
                    raise ClipError(f"{self.name} did not finish the clip within {self.timeout_s:g} s; the scene "
                                    "falls back to a picture. Raise the wait with the timeout_s option.")
                await asyncio.sleep(poll_wait(self.poll_s, polls))
                polls += 1
                op = await client.aio.operations.get(op)
            if op.error:
                raise ClipError(f"{self.name} failed the clip: {op.error.get('message', op.error)}")
            videos = op.response.generated_videos if op.response is not None else None
            if not videos or videos[0].video is None:
                filtered = getattr(op.response, "rai_media_filtered_reasons", None) if op.response else None
                raise ClipError(f"{self.name} returned no video" + (f" (filtered: {'; '.join(filtered)})"
                                                                      if filtered else "") + ".")
            video = videos[0].video
            data = video.video_bytes or await client.aio.files.download(file=video)
        except ClipError:
            raise
        except Exception as err:  # google-genai raises its own errors and httpx's; none may sink the lesson
            text = str(err).replace(self._key, "***")
            raise ClipError(f"{self.name} failed: {type(err).__name__}: {text}") from None
        write_clip(out, data, self.name)
        return Clip(path=out, seconds=float(seconds), model=self.name, cost=round(seconds * self.price_per_second, 6),
                    prompt=request.prompt)
