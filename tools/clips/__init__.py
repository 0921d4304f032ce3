"""Short motion clips (4-8 s) for scenes whose visual is a ``clip``: ``veo:MODEL`` and ``videos:MODEL``.

A clip generator has one method::

    ClipGenerator.generate(request, out) -> Clip     # an MP4 at ``out``, what it cost

- ``veo:MODEL`` (e.g. ``veo:veo-3.1-generate-preview``): Google's Veo through the Gemini API with
  google-genai: ``models.generate_videos`` starts a long-running operation, ``operations.get``
  polls it until done, ``files.download`` fetches the video. The key is ``GEMINI_API_KEY`` (or
  ``GOOGLE_API_KEY``); ``GEMINI_BASE_URL`` points the client at another server.
- ``videos:MODEL`` (e.g. ``videos:sora-2``): any server speaking the OpenAI Videos API shape at
  ``OPENAI_BASE_URL`` (gateways, self-hosted servers): ``videos.create``, ``videos.retrieve``
  until ``completed`` (or ``failed``), ``videos.download_content``.

Clips cost money by the second, so a lesson has a cost cap (:class:`ClipBudget`): each clip's price
(its seconds at the model's price per second) is reserved *before* its request is sent, and a clip
that would go over the cap is refused without any call. A failed, refused or timed-out clip
raises :class:`ClipError`; the scene then falls back to a picture (lessonforge.agent.nodes.illustrate).

Other hosted generators fit as plugins: a class with ``name``, ``price_per_second`` and
``async generate(request, out) -> Clip``, registered under the entry-point group
``lessonforge.backends`` as ``clips.PREFIX`` (see the README).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from lessonforge.tools.base import ClipBackend, ClipError, ConfigError, Lifecycle, Wrapper
from lessonforge.tools.cache import atomic_path
from lessonforge.tools.defaults import VEO_CLIPS, VIDEOS_CLIPS
from lessonforge.tools.registry import BackendOptions

MIN_SECONDS, MAX_SECONDS = 4, 8

# Dollars per second of video (list prices; the ``price_per_second`` option overrides them).
PRICES: dict[str, float] = {
    "veo-3.1-fast": 0.15,
    "veo-3.1": 0.40,
    "veo-3.0-fast": 0.15,
    "veo-3.0": 0.40,
    "veo-2": 0.35,
    "sora-2-pro": 0.30,
    "sora-2": 0.10,
}


def list_price(model: str) -> float | None:
    """The list price per second of ``model`` (longest known prefix), or None."""
    bare = model.removeprefix("models/")
    return next((PRICES[m] for m in sorted(PRICES, key=len, reverse=True) if bare.startswith(m)), None)


@dataclass(frozen=True)
class ClipRequest:
    prompt: str
    seconds: int  # 4-8
    aspect: str = "16:9"  # the lesson's frame shape: "16:9", "9:16" or "1:1"
    seed: int = 0


@dataclass(frozen=True)
class Clip:
    """A generated clip: the MP4, how long it is, which model made it and what it cost (dollars)."""

    path: Path
    seconds: float
    model: str
    cost: float
    prompt: str


@runtime_checkable
class ClipGenerator(Lifecycle, Protocol):
    name: str
    price_per_second: float

    async def generate(self, request: ClipRequest, out: Path) -> Clip: ...


class ClipBudget:
    """A lesson's spending cap for clips: reserve before each paid call; refuse what would exceed it."""

    def __init__(self, cap: float) -> None:
        if not cap >= 0:
            raise ConfigError(f"the clip budget must be 0 dollars or more, got {cap!r}; set it with --clip-budget.")
        self.cap = float(cap)
        self.spent = 0.0
        self._lock = asyncio.Lock()

    async def reserve(self, cost: float, what: str) -> None:
        """Count ``cost`` against the cap, or raise ClipError (nothing is spent) when it would exceed it."""
        async with self._lock:
            if self.spent + cost > self.cap + 1e-9:
                raise ClipError(
                    f"{what} would cost ${cost:.2f}, and ${self.spent:.2f} of the lesson's ${self.cap:.2f} clip budget "
                    "is spent; it was not requested. Raise the cap with --clip-budget, or shorten the lesson."
                )
            self.spent = round(self.spent + cost, 6)


class BudgetedClips(Wrapper, ClipBackend):
    """A clip generator under a lesson's :class:`ClipBudget`; the price is reserved before each request."""

    def __init__(self, inner: ClipGenerator, budget: ClipBudget) -> None:
        self.inner, self.budget = inner, budget
        self.name = inner.name

    async def generate(self, request: ClipRequest, out: Path) -> Clip:
        cost = round(request.seconds * self.inner.price_per_second, 6)
        await self.budget.reserve(cost, f"a {request.seconds} s clip from {self.name}")
        return await self.inner.generate(request, out)

    @property
    def price_per_second(self) -> float:
        return self.inner.price_per_second


def check_request(name: str, request: ClipRequest) -> None:
    if not MIN_SECONDS <= request.seconds <= MAX_SECONDS:
        raise ClipError(f"{name}: a clip lasts {MIN_SECONDS}-{MAX_SECONDS} s, {request.seconds} s was asked for.")
    if not request.prompt.strip():
        raise ClipError(f"{name}: the clip prompt is empty; give the scene's clip a prompt.")


def _price(name: str, model: str, price_per_second: float | None) -> float:
    price = price_per_second if price_per_second is not None else list_price(model)
    if price is None or isinstance(price, bool) or not price >= 0:
        raise ConfigError(
            f"{name}: the price per second of {model!r} is not known, so the clip budget cannot be kept. Set it with "
            "--clip-price DOLLARS (per second of video)."
        )
    return float(price)


def _wait(poll_s: float, polls: int) -> float:
    """Seconds before the next status check: from half a second, doubling up to ``poll_s``."""
    return min(poll_s, 0.5 * 2**polls)


def _write(out: Path, data: bytes, name: str) -> None:
    if not data:
        raise ClipError(f"{name} sent an empty video. Try again, or turn clips off (--clips none).")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)


# --------------------------------------------------------------------------- veo (google-genai)


def _veo_seconds(seconds: int) -> int:
    """Veo draws 4, 6 or 8 s: the shortest that is at least ``seconds``."""
    return next(s for s in (4, 6, 8) if s >= seconds)


class VeoClips(ClipBackend):
    """``veo:MODEL`` clips through the Gemini API (google-genai): generate_videos, poll, download."""

    class Options(BackendOptions):
        """What ``veo:`` takes (see the constructor)."""

        api_key: str | None = None
        base_url: str | None = None
        price_per_second: float | None = None
        poll_s: float = 10.0
        timeout_s: float = 600.0

    def __init__(self, model: str = VEO_CLIPS, *, api_key: str | None = None,
                 base_url: str | None = None, price_per_second: float | None = None, poll_s: float = 10.0,
                 timeout_s: float = 600.0) -> None:
        self.model = (model or "").strip() or VEO_CLIPS
        self.name = f"veo:{self.model}"
        key = (api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY") or "").strip()
        if not key:
            raise ConfigError(f"No API key for {self.name}. Set GEMINI_API_KEY (a Gemini API key), or turn clips off "
                              "(--clips none).")
        self.price_per_second = _price(self.name, self.model, price_per_second)
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
                await asyncio.sleep(_wait(self.poll_s, polls))
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
        _write(out, data, self.name)
        return Clip(path=out, seconds=float(seconds), model=self.name, cost=round(seconds * self.price_per_second, 6),
                    prompt=request.prompt)


# --------------------------------------------------------------------------- the OpenAI Videos API shape


def _videos_seconds(seconds: int) -> str:
    return "4" if seconds <= 4 else "8"


def _videos_size(aspect: str) -> str:
    return "720x1280" if aspect == "9:16" else "1280x720"


class OpenAIVideoClips(ClipBackend):
    """``videos:MODEL`` clips from a server speaking the OpenAI Videos API at OPENAI_BASE_URL."""

    class Options(VeoClips.Options):
        """What ``videos:`` takes: what ``veo:`` takes, polled more often (see the constructor)."""

        poll_s: float = 5.0

    def __init__(self, model: str = VIDEOS_CLIPS, *, api_key: str | None = None, base_url: str | None = None,
                 price_per_second: float | None = None, poll_s: float = 5.0, timeout_s: float = 600.0) -> None:
        from lessonforge.tools.images.openai import OpenAIClient

        self.model = (model or "").strip() or VIDEOS_CLIPS
        self.name = f"videos:{self.model}"
        self.price_per_second = _price(self.name, self.model, price_per_second)
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
                await asyncio.sleep(_wait(self.poll_s, polls))
                polls += 1
                job = await api.retrieve(job.id)
            if job.status == "failed":
                why = job.error.message if job.error is not None else "no reason given"
                raise ClipError(f"{self.name} failed the clip (job {job.id}): {self.client.scrub(why)}")
            data = (await api.download_content(job.id, variant="video")).content
        except openai.OpenAIError as err:
            raise self.client.translate(err) from None
        _write(out, data, self.name)
        return Clip(path=out, seconds=float(seconds), model=self.name,
                    cost=round(int(seconds) * self.price_per_second, 6), prompt=request.prompt)


# --------------------------------------------------------------------------- frames for the critic


def sample_frames(clip: Path, count: int = 3) -> list[Any]:
    """``count`` frames spread through the clip (PIL images), for the critic; RenderError for a bad file."""
    import tempfile

    from PIL import Image

    from lessonforge.tools.media import video

    length = clip_length(clip)
    if length <= 0:
        raise ClipError(f"the clip {clip} holds no video. Make it again, or turn clips off (--clips none).")
    frames: list[Any] = []
    with tempfile.TemporaryDirectory() as scratch:
        for k in range(count):
            at = length * (k + 0.5) / count
            png = Path(scratch) / f"{k}.png"
            video.run_ffmpeg(["-ss", f"{at:.3f}", "-i", str(clip), "-frames:v", "1", str(png)],
                             f"take a frame of the clip {clip.name}")
            with Image.open(png) as img:
                frames.append(img.convert("RGB"))
    return frames


def clip_length(clip: Path) -> float:
    """Seconds of video in ``clip`` (0 when it holds none)."""
    from lessonforge.tools.media import video

    info = video.probe(clip)
    return float(info.video_duration or info.duration or 0.0)
