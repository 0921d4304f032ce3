"""Illustrations from a local diffusion model (🤗 diffusers), batched across concurrent scenes.

Scenes run concurrently and each asks for its own picture; a GPU draws four pictures in one
pipeline call almost as fast as one. So ``generate`` does not call the pipeline itself: it hands
its requests to a small micro-batcher that waits ``batch_window_s`` for company, groups requests
of the same size (up to ``max_batch``) into ONE call with a list of prompts and one
``torch.Generator`` per request, and runs that call in a worker thread. Each latent is drawn from
its own generator, so an image depends on its own seed only, never on what it was batched with.

Failure handling, inside the backend (principle 4: concurrency is the backend's business):
  * CUDA out of memory -> the batch is split in halves, down to one request at a time;
  * an all-black or NaN picture (fp16 overflow, a safety checker) -> drawn again once with
    ``seed + RESEED_OFFSET``; the returned ``Image.seed`` is the seed that produced it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from lessonforge.tools import extras
from lessonforge.tools.base import ConfigError, Image, ImageBackend, ImageError, ImageRequest, LessonForgeError
from lessonforge.tools.batching import MicroBatcher
from lessonforge.tools.defaults import DIFFUSERS_IMAGES, TINY_VAE
from lessonforge.tools.hub import first_use, hub_cache_dir, quiet_progress
from lessonforge.tools.registry import BackendOptions

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

log = logging.getLogger(__name__)

# What loading imports (the [local] extra), and how to do without local pictures.
_PACKAGES = ("torch", "diffusers", "transformers")
_INSTEAD = "--images none (slides without pictures) or --images openai:"

CPU_MAX_BATCH = 4  # pictures per pipeline call on CPU (a setting: a CPU gains little from larger batches)
# On CUDA the batch is sized from free memory: about this many bytes of activations per megapixel of
# picture in one call (UNet + full VAE decode in fp16, SDPA attention, with headroom; an out-of-memory
# batch is split in halves anyway), never more than MAX_AUTO_BATCH pictures.
BYTES_PER_MEGAPIXEL = 6 * 2**30
MAX_AUTO_BATCH = 32
MEMORY_HEADROOM = 0.8  # use at most this share of the free memory
COMPILE_ENV = "LESSONFORGE_TORCH_COMPILE"  # "1": compile the UNet (pays off over many lessons in one process)
RESEED_OFFSET = 1_000_003  # a blank picture is drawn again with seed + this (a prime, far from user seeds)
BLANK_LEVEL = 2 / 255  # a picture whose brightest value is at most this is "all black"
SIZE_MULTIPLE = 8  # widths and heights are rounded to a multiple of this (and of the VAE's factor)


# --------------------------------------------------------------------------- model families


@dataclass(frozen=True)
class FamilyDefaults:
    """Sampling defaults for a family of models, recognised from the model id."""

    steps: int
    guidance_scale: float
    max_side: int | None = None  # longest side the model was trained for; larger requests are scaled down
    call_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # On CPU the full VAE decode dominates a one-step image (measured ~16 s vs ~5 s per 512² picture on
    # 2 cores with TAESD after SD-Turbo's step), so turbo models decode with the tiny autoencoder there.
    cpu_tiny_vae: str | None = None


# First match wins: (substrings that must all occur in the lower-cased model id, defaults).
_FAMILIES: tuple[tuple[tuple[str, ...], FamilyDefaults], ...] = (
    # Adversarial-diffusion-distilled models: one step, no classifier-free guidance, 512² training.
    (("sdxl-turbo",), FamilyDefaults(steps=1, guidance_scale=0.0, max_side=512, cpu_tiny_vae="madebyollin/taesdxl")),
    (("sd-turbo",), FamilyDefaults(steps=1, guidance_scale=0.0, max_side=512, cpu_tiny_vae=TINY_VAE)),
    # FLUX.1-schnell: 1-4 steps, guidance-distilled (0), T5 prompt up to 256 tokens.
    (
        ("flux", "schnell"),
        FamilyDefaults(steps=4, guidance_scale=0.0, max_side=1024, call_kwargs={"max_sequence_length": 256}),
    ),
)
_OTHER = FamilyDefaults(steps=25, guidance_scale=7.0)


def family_defaults(model: str) -> FamilyDefaults:
    """Defaults for ``model`` (a hub id or a folder): turbo, FLUX.1-schnell, or a classic SD model."""
    name = model.lower()
    for needles, defaults in _FAMILIES:
        if all(n in name for n in needles):
            return defaults
    return _OTHER


def fit_size(width: int, height: int, multiple: int, max_side: int | None = None) -> tuple[int, int]:
    """Scale ``width x height`` down to ``max_side`` (keeping the aspect) and round to ``multiple``.

    Rounds to the nearest multiple (halves up), never below one multiple.
    """
    if width <= 0 or height <= 0:
        raise ConfigError(f"Image size {width}x{height} is not positive. Fix: ask for a width and height above 0.")
    w, h = float(width), float(height)
    if max_side and max(w, h) > max_side:
        scale = max_side / max(w, h)
        w, h = w * scale, h * scale

    def _round(x: float) -> int:
        return max(multiple, int(math.floor(x / multiple + 0.5)) * multiple)

    return _round(w), _round(h)


def auto_max_batch(free_bytes: int, width: int, height: int, cap: int = MAX_AUTO_BATCH) -> int:
    """Pictures of ``width x height`` one pipeline call can hold in ``free_bytes`` (1..``cap``)."""
    per_picture = BYTES_PER_MEGAPIXEL * (width * height) / 1e6
    return int(max(1, min(cap, (free_bytes * MEMORY_HEADROOM) // per_picture)))


def is_blank(image: PILImage | np.ndarray) -> bool:
    """True for a picture with a NaN/inf value or nothing brighter than ``BLANK_LEVEL`` (all black).

    Accepts a PIL image, a uint8 array (0..255) or a float array (0..1), as diffusers returns.
    """
    if isinstance(image, np.ndarray):
        arr = image
        if np.issubdtype(arr.dtype, np.integer):
            arr = arr.astype(np.float32) / 255.0
    else:
        arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if arr.size == 0 or not np.isfinite(arr).all():
        return True
    return float(arr.max()) <= BLANK_LEVEL


def _to_pil(array: np.ndarray) -> PILImage:
    from PIL import Image as PILModule

    if array.dtype != np.uint8:
        clean = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=0.0).clip(0.0, 1.0)
        array = (clean * 255).round().astype(np.uint8)
    return PILModule.fromarray(array).convert("RGB")


def to_uint8(images: Any) -> list[np.ndarray]:
    """A batch tensor (N, 3, H, W) in 0..1 as N (H, W, 3) uint8 arrays, converted where it lies (the GPU).

    A picture with any NaN or inf value comes back all black, so ``is_blank`` flags it.
    """
    import torch

    finite = torch.isfinite(images).flatten(1).all(dim=1)
    clean = torch.where(finite[:, None, None, None], images.float().clamp(0.0, 1.0), 0.0)
    return list((clean * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())


def _is_oom(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _one_line(exc: BaseException, limit: int = 240) -> str:
    text = " ".join(str(exc).split()) or "no details"
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _offline_note() -> str:
    from huggingface_hub import constants

    return " with the hub offline (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else ""


def _dtype_kwarg() -> str:
    """Recent diffusers take ``dtype`` (``torch_dtype`` is deprecated); older releases only ``torch_dtype``."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


def _size(request: ImageRequest) -> tuple[int, int]:
    """Requests of one size share a pipeline call."""
    return request.width, request.height


# --------------------------------------------------------------------------- the backend


class DiffusersImages(ImageBackend):
    """``diffusers:<model>``: text-to-image with any ``AutoPipelineForText2Image`` model.

    ``model`` is a hub id (``stabilityai/sd-turbo``) or a folder written by ``save_pretrained``.
    ``steps`` and ``guidance_scale`` default per family (see ``family_defaults``); explicit values win.
    ``tiny_vae`` names an ``AutoencoderTiny`` (e.g. ``madebyollin/taesd``) to decode faster; by default
    turbo models use TAESD on CPU and the full VAE on CUDA (``tiny_vae=""`` keeps the full VAE).
    ``max_batch`` caps the pictures per pipeline call: by default ``CPU_MAX_BATCH`` on CPU and, on
    CUDA, as many as the free GPU memory holds at load (``auto_max_batch``), so a lesson's scenes
    share one call. ``channels_last`` (default: on CUDA) stores the UNet and VAE convolutions in
    NHWC; ``compile=True`` (or ``LESSONFORGE_TORCH_COMPILE=1``) runs the UNet through ``torch.compile``
    (opt-in: its warm-up costs more than it saves on one lesson, see benchmarks/gpu.py).
    Returned pictures have the requested size rounded to a multiple of 8 (and of the VAE's scale
    factor), scaled down first for models trained at a smaller size (turbo models: 512 px).
    """

    local = True

    class Options(BackendOptions):
        """What ``diffusers:`` takes (see the class docstring)."""

        device: str | None = None
        steps: int | None = None
        guidance_scale: float | None = None
        max_batch: int | None = None
        batch_window_s: float = 0.05
        tiny_vae: str | None = None
        channels_last: bool | None = None
        compile: bool | None = None

    def __init__(
        self,
        model: str = DIFFUSERS_IMAGES,
        *,
        device: str | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        max_batch: int | None = None,
        batch_window_s: float = 0.05,
        tiny_vae: str | None = None,
        channels_last: bool | None = None,
        compile: bool | None = None,
    ) -> None:
        self.model = model or DIFFUSERS_IMAGES
        self.name = f"diffusers:{self.model}"
        self.family = family_defaults(self.model)
        self.steps = int(steps) if steps is not None else self.family.steps
        self.guidance_scale = float(guidance_scale) if guidance_scale is not None else self.family.guidance_scale
        if self.steps < 1:
            raise ConfigError(f"steps={self.steps} for {self.name}. Fix: pass steps of 1 or more.")
        if max_batch is not None and max_batch < 1:
            raise ConfigError(f"max_batch={max_batch} for {self.name}. Fix: pass max_batch of 1 or more.")
        self.max_batch = int(max_batch) if max_batch is not None else CPU_MAX_BATCH  # CUDA: sized at load
        self._auto_batch = max_batch is None
        self.channels_last = channels_last
        opted_in = os.environ.get(COMPILE_ENV, "").lower() in ("1", "true", "yes")
        self.compile = compile if compile is not None else opted_in
        self.batch_window_s = max(0.0, float(batch_window_s))
        self.tiny_vae = tiny_vae
        self.pipeline_calls = 0  # pipeline invocations so far (a batch of N prompts counts once)
        self._device = device
        self._pipe: Any = None
        self._accepts_negative = False
        self._load_lock = threading.Lock()
        self._pipe_lock = threading.Lock()
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MicroBatcher[ImageRequest, Image]] = (
            weakref.WeakKeyDictionary()
        )

    # ----------------------------------------------------------------- loading

    @property
    def device(self) -> str:
        """The torch device: as given, else "cuda" when available, else "cpu"."""
        if self._device is None:
            import torch

            self._device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._device

    @property
    def pipeline(self) -> Any:
        """The loaded diffusers pipeline (loads it on first use)."""
        self.load()
        return self._pipe

    def decoder(self) -> str | None:
        """The tiny VAE to decode with: as given ("" = the full VAE), else the family's choice on CPU."""
        if self.tiny_vae is not None:
            return self.tiny_vae
        return self.family.cpu_tiny_vae if self.device == "cpu" else None

    def downloads(self) -> list[Any]:
        """What loading fetches from the Hub on first use: the pipeline and its tiny decoder (not local folders);
        ConfigError naming the ``[local]`` extra when its packages are not installed."""
        extras.require(f"The image backend {self.name}", _PACKAGES, extras.LOCAL, _INSTEAD)
        return first_use((self.model, "diffusers"), (self.decoder() or "", "llm"))

    def load(self) -> None:
        """Load the pipeline once (thread-safe; later calls return at once)."""
        if self._pipe is not None:
            return
        with self._load_lock:
            if self._pipe is not None:
                return
            extras.require(f"The image backend {self.name}", _PACKAGES, extras.LOCAL, _INSTEAD)
            import torch

            dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
            self.tiny_vae = self.decoder()
            with quiet_progress():
                pipe = self._from_pretrained(dtype)
                if self.tiny_vae:
                    pipe.vae = self._load_tiny_vae(pipe, dtype)
            self._prepare(pipe)
            log.info("loaded %s on %s (%s)", self.name, self.device, dtype)

    @classmethod
    def from_pipeline(cls, pipe: Any, model: str, **options: Any) -> DiffusersImages:
        """A backend around a pipeline already built (e.g. from configs), named ``diffusers:<model>``.

        The pipeline is prepared as a loaded one is (device, channels-last, compile, batch size).
        """
        images = cls(model, **options)
        with images._load_lock:
            images._prepare(pipe)
        return images

    def _prepare(self, pipe: Any) -> None:
        """Move ``pipe`` to the device, apply the speed options, size the batch; then it is the pipeline."""
        import torch

        cuda = self.device.startswith("cuda")
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        if self.channels_last if self.channels_last is not None else cuda:
            for part in ("unet", "vae"):
                module = getattr(pipe, part, None)
                if isinstance(module, torch.nn.Module):
                    module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch takes it
        if self.compile and isinstance(getattr(pipe, "unet", None), torch.nn.Module):
            pipe.unet = torch.compile(pipe.unet)
        if self._auto_batch and cuda:
            free, _total = torch.cuda.mem_get_info(torch.device(self.device))
            side = self.family.max_side or 1024
            self.max_batch = auto_max_batch(free, side, side)
            log.info("%s: up to %d pictures per call (%.1f GiB free)", self.name, self.max_batch, free / 2**30)
        self._accepts_negative = "negative_prompt" in inspect.signature(pipe.__call__).parameters
        self._pipe = pipe

    def _from_pretrained(self, dtype: Any) -> Any:
        from diffusers import AutoPipelineForText2Image

        try:
            return AutoPipelineForText2Image.from_pretrained(self.model, cache_dir=str(hub_cache_dir()),
                                                             **{_dtype_kwarg(): dtype})
        except Exception as exc:
            raise ConfigError(
                f"Could not load image model {self.model!r}{_offline_note()} ({_one_line(exc)}). "
                f"Fix: check the model id or folder (e.g. {DIFFUSERS_IMAGES}); if it is a hub id, run "
                f"once online to download it, or set HF_HOME to the cache that holds it; or pass "
                f"--images none to make the lesson without illustrations."
            ) from exc

    def _load_tiny_vae(self, pipe: Any, dtype: Any) -> Any:
        from diffusers import AutoencoderTiny

        try:
            vae = AutoencoderTiny.from_pretrained(self.tiny_vae, cache_dir=str(hub_cache_dir()),
                                                  **{_dtype_kwarg(): dtype})
        except Exception as exc:
            raise ConfigError(
                f"Could not load the tiny VAE {self.tiny_vae!r} for {self.name} ({_one_line(exc)}). Fix: "
                f"check the id or folder (e.g. madebyollin/taesd for SD 1.x/2.x, madebyollin/taesdxl for "
                f"SDXL), run once online to download it, or drop the tiny_vae option."
            ) from exc
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        expected = getattr(pipe, "vae_scale_factor", factor)
        latent_in = getattr(getattr(pipe, "unet", None), "config", None)
        channels_ok = latent_in is None or latent_in.in_channels == vae.config.latent_channels
        if factor != expected or not channels_ok:
            raise ConfigError(
                f"The tiny VAE {self.tiny_vae!r} does not fit {self.model!r} (scale factor {factor} vs "
                f"{expected}, or a different number of latent channels). Fix: use the TAESD made for this "
                f"model family, or drop the tiny_vae option."
            )
        return vae

    def size_multiple(self) -> int:
        """Widths and heights are multiples of this: lcm(8, the pipeline's pixel-to-latent factor)."""
        pipe = self.pipeline
        processor = getattr(pipe, "image_processor", None)
        factor = getattr(getattr(processor, "config", None), "vae_scale_factor", None)
        factor = int(factor or getattr(pipe, "vae_scale_factor", SIZE_MULTIPLE) or SIZE_MULTIPLE)
        return math.lcm(SIZE_MULTIPLE, factor)

    # ----------------------------------------------------------------- generating

    async def generate(self, requests: Sequence[ImageRequest]) -> list[Image]:
        """One picture per request, in order. Concurrent calls share pipeline calls (see module doc)."""
        if not requests:
            return []
        if self._pipe is None:
            await asyncio.to_thread(self.load)
        multiple = self.size_multiple()
        batcher = self._batcher()
        futures = [batcher.submit(self._fit(r, multiple)) for r in requests]
        return list(await asyncio.gather(*futures))

    def _fit(self, request: ImageRequest, multiple: int) -> ImageRequest:
        width, height = fit_size(request.width, request.height, multiple, self.family.max_side)
        return replace(request, width=width, height=height)

    def _batcher(self) -> MicroBatcher[ImageRequest, Image]:
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = MicroBatcher(self._run_batch, max_batch=self.max_batch, window_s=self.batch_window_s, key=_size)
            self._batchers[loop] = batcher
        return batcher

    def _run_batch(self, requests: list[ImageRequest]) -> list[Image | LessonForgeError]:
        """Blocking: draw a batch (all the same size), redrawing blank pictures once with a new seed."""
        try:
            arrays = self._draw_splitting(requests)
            seeds = [r.seed for r in requests]
            blank = [i for i, a in enumerate(arrays) if is_blank(a)]
            if blank:
                log.warning("%d blank picture(s) from %s; drawing again with new seeds", len(blank), self.name)
                again = [replace(requests[i], seed=requests[i].seed + RESEED_OFFSET) for i in blank]
                for i, array in zip(blank, self._draw_splitting(again), strict=True):
                    arrays[i], seeds[i] = array, requests[i].seed + RESEED_OFFSET
        except LessonForgeError:
            raise
        except Exception as exc:
            raise ImageError(
                f"Image model {self.name} failed on a batch of {len(requests)} ({_one_line(exc)}). Fix: try "
                f"a smaller image size or fewer steps, check the model suits text-to-image, or pass "
                f"--images none."
            ) from exc
        results: list[Image | LessonForgeError] = []
        for request, array, seed in zip(requests, arrays, seeds, strict=True):
            if is_blank(array):
                results.append(
                    ImageError(
                        f"{self.name} drew a blank (black or NaN) picture for {request.prompt[:60]!r} with "
                        f"seeds {request.seed} and {seed}. Fix: reword the prompt (a safety checker blanks "
                        f"what it flags), or on a GPU try device='cpu' or a tiny_vae (fp16 VAEs can overflow)."
                    )
                )
            else:
                results.append(Image(image=_to_pil(array), prompt=request.prompt, seed=seed, model=self.name))
        return results

    def _draw_splitting(self, requests: list[ImageRequest]) -> list[np.ndarray]:
        """Draw a batch; on out-of-memory, draw each half separately, down to one at a time."""
        try:
            return self._draw(requests)
        except Exception as exc:
            if not _is_oom(exc):
                raise
            self._free_memory()
            if len(requests) == 1:
                raise ImageError(
                    f"{self.name} ran out of memory drawing one {requests[0].width}x{requests[0].height} "
                    f"picture on {self.device}. Fix: ask for a smaller size, close other programs using the "
                    f"GPU, use a tiny_vae, run with device='cpu', or pass --images none."
                ) from exc
            half = (len(requests) + 1) // 2
            log.warning("out of memory on a batch of %d; retrying in halves", len(requests))
            return self._draw_splitting(requests[:half]) + self._draw_splitting(requests[half:])

    def _draw(self, requests: list[ImageRequest]) -> list[np.ndarray]:
        """One pipeline call; images as uint8 arrays (H, W, 3), a NaN picture all black (``to_uint8``)."""
        import torch

        width, height = requests[0].width, requests[0].height
        kwargs: dict[str, Any] = {
            "prompt": [r.prompt for r in requests],
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "width": width,
            "height": height,
            # CPU generators: the same seed gives the same picture on any device and in any batch.
            "generator": [torch.Generator("cpu").manual_seed(r.seed) for r in requests],
            "output_type": "pt",  # converted to uint8 on the device: a quarter of the bytes to copy back
            **self.family.call_kwargs,
        }
        if self._accepts_negative and self.guidance_scale > 1.0 and any(r.negative_prompt for r in requests):
            kwargs["negative_prompt"] = [r.negative_prompt for r in requests]
        with self._pipe_lock, torch.inference_mode():
            self.pipeline_calls += 1
            log.debug("%s: pipeline call with %d prompt(s) at %dx%d", self.name, len(requests), width, height)
            output = self._pipe(**kwargs)
            return to_uint8(output.images[: len(requests)])

    def _free_memory(self) -> None:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
