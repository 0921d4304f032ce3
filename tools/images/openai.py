"""Pictures from OpenAI's Images API: ``openai:<model>`` (e.g. ``openai:gpt-image-1``).

Any current gpt-image model id works (gpt-image-1, gpt-image-1-mini, ...); a compatible server
works through ``OPENAI_BASE_URL``. One ``images.generate`` call per picture (``n=1``), at most
``max_concurrency`` at a time:

- **size** follows the shape the layout gives the picture (the request's width and height): the
  nearest of the sizes the gpt-image models draw, 1024x1024, 1536x1024 (landscape) or 1024x1536
  (portrait); the picture is then scaled to the size asked for, so a slide composes it as it would
  a diffusers picture.
- **quality** is ``low``, ``medium``, ``high`` or ``auto`` (the ``quality`` option).
- the answer is base64 PNG (``output_format="png"``; dall-e models get ``response_format="b64_json"``).
- **cost**: from the tokens the answer reports (``usage``) at the model's price per million tokens,
  else from the price per picture for its quality and size; unknown models record none. It travels
  with the picture as the PNG text chunk ``lessonforge:cost`` (dollars), so lesson.json shows it
  for every attempt, cached or not.

The API takes no seed: a retry after the critic rejects a picture simply asks again (and from
the third attempt with a revised prompt, as for diffusers). Errors follow the speech backend's: a
rejected key, a refused or unknown model are ConfigErrors; refusals of one prompt (a safety
system) and servers failing after the client's retries are ImageErrors. The key never appears in
a message.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import openai

from lessonforge.tools.base import ConfigError, Image, ImageBackend, ImageError, ImageRequest, LessonForgeError
from lessonforge.tools.cached import PerLoop
from lessonforge.tools.defaults import OPENAI_IMAGES
from lessonforge.tools.llm.openai import NO_KEY, OPENAI_URL, display_url, scrub_secrets
from lessonforge.tools.openai_errors import Advice, translate
from lessonforge.tools.registry import BackendOptions

DEFAULT_MODEL = OPENAI_IMAGES
Quality = Literal["low", "medium", "high", "auto"]
QUALITIES: tuple[str, ...] = ("low", "medium", "high", "auto")
SIZES: tuple[tuple[int, int], ...] = ((1024, 1024), (1536, 1024), (1024, 1536))

# Dollars per million tokens: (text input, image output), from OpenAI's price list.
TOKEN_PRICES: dict[str, tuple[float, float]] = {
    "gpt-image-1": (5.0, 40.0),
    "gpt-image-1-mini": (2.0, 8.0),
    "gpt-image-1.5": (5.0, 32.0),
}
# Dollars per picture by quality at (square, landscape or portrait), when no usage comes back.
PICTURE_PRICES: dict[str, dict[str, tuple[float, float]]] = {
    "gpt-image-1": {"low": (0.011, 0.016), "medium": (0.042, 0.063), "high": (0.167, 0.25)},
    "gpt-image-1-mini": {"low": (0.005, 0.006), "medium": (0.011, 0.015), "high": (0.036, 0.052)},
}
COST_KEY = "lessonforge:cost"


def api_size(width: int, height: int) -> str:
    """The gpt-image size nearest in shape to ``width`` x ``height``."""
    ratio = width / max(1, height)
    w, h = SIZES[1] if ratio > 1.25 else SIZES[2] if ratio < 0.8 else SIZES[0]
    return f"{w}x{h}"


def picture_cost(model: str, quality: str, size: str, usage: Any = None) -> float | None:
    """Dollars one picture cost: from ``usage`` tokens when reported, else the price list; None if unknown."""
    base = next((m for m in sorted(TOKEN_PRICES, key=len, reverse=True) if model.startswith(m)), None)
    if usage is not None and base is not None:
        tin, tout = TOKEN_PRICES[base]
        spent = (getattr(usage, "input_tokens", 0) or 0) * tin + (getattr(usage, "output_tokens", 0) or 0) * tout
        if spent > 0:
            return round(spent / 1e6, 6)
    table = PICTURE_PRICES.get(base or "", {}).get("medium" if quality == "auto" else quality)
    if table is None:
        return None
    return table[0] if size == "1024x1024" else table[1]


class OpenAIClient:
    """The key, server and per-loop client shared by the hosted OpenAI backends (images, videos)."""

    def __init__(self, name: str, what: str, *, api_key: str | None, base_url: str | None, timeout_s: float,
                 max_retries: int, error: type[LessonForgeError], flag: str) -> None:
        self.name, self.what, self.error, self.flag = name, what, error, flag
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s > 0:
            raise ConfigError(f"{name}: option timeout_s must be a number > 0, got {timeout_s!r}.")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"{name}: option max_retries must be a whole number >= 0, got {max_retries!r}.")
        key = (api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")).strip() or None
        url = (base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL", "")).strip() or None
        if key is None and url is None:
            raise ConfigError(
                f"No API key or server for {name}. Set OPENAI_API_KEY, or OPENAI_BASE_URL for a compatible server, "
                f"or choose another backend with {flag}."
            )
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(f"OPENAI_BASE_URL / base_url {display_url(url)!r} is not an http(s) URL. "
                              "Write it in full, e.g. http://localhost:8000/v1.")
        self._api_key = key
        self.base_url = (url or OPENAI_URL).rstrip("/")
        self.timeout_s, self.max_retries = float(timeout_s), max_retries
        self._clients = PerLoop(lambda: openai.AsyncOpenAI(
            api_key=self._api_key or NO_KEY, base_url=self.base_url, timeout=self.timeout_s,
            max_retries=self.max_retries))

    def get(self) -> openai.AsyncOpenAI:
        return self._clients.get()

    async def aclose(self) -> None:
        client = self._clients.pop()
        if client is not None:
            await client.close()

    def scrub(self, text: str) -> str:
        return scrub_secrets(text, self._api_key, urlsplit(self.base_url).password)

    def translate(self, err: openai.OpenAIError) -> LessonForgeError:
        """A client error as a ConfigError (the user must fix something) or this backend's error."""
        return translate(err, name=self.name, url=display_url(self.base_url), scrub=self.scrub,
                         timeout_s=self.timeout_s, tries=self.max_retries + 1, flag=self.flag, error=self.error,
                         advice=Advice(not_found=f"Check that the model exists there and your key may use it, that "
                                                 f"the base URL ends in /v1 and the server has {self.what}, or "
                                                 f"choose another backend with {self.flag}."))


class OpenAIImages(ImageBackend):
    """``openai:MODEL`` pictures through the Images API (see the module docstring)."""

    shaped = True  # draws the picture in the shape the layout gives it (lessonforge.agent.nodes.illustrate)

    class Options(BackendOptions):
        """What ``openai:`` pictures take (see the constructor)."""

        quality: Literal["low", "medium", "high", "auto"] = "auto"
        api_key: str | None = None
        base_url: str | None = None
        max_concurrency: int = 4
        timeout_s: float = 180.0
        max_retries: int = 2

    def __init__(self, model: str = DEFAULT_MODEL, *, quality: str = "auto", api_key: str | None = None,
                 base_url: str | None = None, max_concurrency: int = 4, timeout_s: float = 180.0,
                 max_retries: int = 2) -> None:
        self.model = (model or "").strip() or DEFAULT_MODEL
        self.name = f"openai:{self.model}"
        if quality not in QUALITIES:
            raise ConfigError(f"{self.name}: quality {quality!r} is not one of {', '.join(QUALITIES)}; "
                              "set it with --image-quality.")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigError(f"{self.name}: option max_concurrency must be a whole number >= 1.")
        self.quality = quality
        self.client = OpenAIClient(self.name, "an /images/generations endpoint", api_key=api_key, base_url=base_url,
                                   timeout_s=timeout_s, max_retries=max_retries, error=ImageError, flag="--images")
        self._semaphore = PerLoop(lambda: asyncio.Semaphore(max_concurrency))

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIImages(model={self.model!r}, base_url={display_url(self.client.base_url)!r})"

    def load(self) -> None:
        """Nothing to load: the model runs at the server."""

    async def aclose(self) -> None:
        await self.client.aclose()

    async def generate(self, requests: Sequence[ImageRequest]) -> list[Image]:
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def _one(self, request: ImageRequest) -> Image:
        from PIL import Image as PILImage

        size = api_size(request.width, request.height)
        params: dict[str, Any] = {"model": self.model, "prompt": request.prompt, "n": 1, "size": size}
        if self.model.startswith("dall-e"):
            params["response_format"] = "b64_json"
        else:
            params |= {"quality": self.quality, "output_format": "png"}
        async with self._semaphore.get():
            try:
                answer = await self.client.get().images.generate(**params)
            except openai.OpenAIError as err:
                raise self.client.translate(err) from None  # the cause may carry the key: not chained
        data = answer.data[0] if answer.data else None
        if data is None or not data.b64_json:
            raise ImageError(f"{self.name} sent no picture for {request.prompt[:60]!r} (no b64_json in the answer). "
                             "Check that the server speaks the Images API, or use another backend (--images).")
        try:
            with PILImage.open(io.BytesIO(base64.b64decode(data.b64_json))) as img:
                picture = img.convert("RGB")
        except (OSError, ValueError) as err:
            raise ImageError(f"{self.name} sent a picture that cannot be read ({err}). Try again, or use another "
                             "backend (--images).") from None
        if picture.size != (request.width, request.height):
            picture = picture.resize((request.width, request.height), PILImage.Resampling.LANCZOS)
        cost = picture_cost(self.model, self.quality, size, getattr(answer, "usage", None))
        if cost is not None:
            picture.info[COST_KEY] = f"{cost:.6f}"
        picture.info["lessonforge:size"] = size
        return Image(image=picture, prompt=request.prompt, seed=request.seed, model=self.name)
