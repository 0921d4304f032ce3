"""Short motion clips (4-8 s) for scenes whose visual is a ``clip``: ``veo:MODEL`` and ``videos:MODEL``.

A clip generator has one method::

    ClipGenerator.generate(request, out) -> Clip     # an MP4 at ``out``, what it cost

- ``veo:MODEL`` (:mod:`.veo`, e.g. ``veo:veo-3.1-generate-preview``): Google's Veo through the Gemini API with
  google-genai: ``models.generate_videos`` starts a long-running operation, ``operations.get``
  polls it until done, ``files.download`` fetches the video. The key is ``GEMINI_API_KEY`` (or
  ``GOOGLE_API_KEY``); ``GEMINI_BASE_URL`` points the client at another server.
- ``videos:MODEL`` (:mod:`.openai`, e.g. ``videos:sora-2``): any server speaking the OpenAI Videos API shape at
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from lessonforge.tools.base import ClipBackend, ClipError, ConfigError, Lifecycle, Wrapper
from lessonforge.tools.cache import atomic_path
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


class ClipOptions(BackendOptions):
    """What a hosted clip backend takes (see each backend's constructor)."""

    api_key: str | None = None
    base_url: str | None = None
    price_per_second: float | None = None
    poll_s: float = 10.0
    timeout_s: float = 600.0


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


def clip_price(name: str, model: str, price_per_second: float | None) -> float:
    price = price_per_second if price_per_second is not None else list_price(model)
    if price is None or isinstance(price, bool) or not price >= 0:
        raise ConfigError(
            f"{name}: the price per second of {model!r} is not known, so the clip budget cannot be kept. Set it with "
            "--clip-price DOLLARS (per second of video)."
        )
    return float(price)


def poll_wait(poll_s: float, polls: int) -> float:
    """Seconds before the next status check: from half a second, doubling up to ``poll_s``."""
    return min(poll_s, 0.5 * 2**polls)


def write_clip(out: Path, data: bytes, name: str) -> None:
    if not data:
        raise ClipError(f"{name} sent an empty video. Try again, or turn clips off (--clips none).")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)


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
