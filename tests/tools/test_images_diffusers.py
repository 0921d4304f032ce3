"""DiffusersImages with a tiny random Stable Diffusion pipeline saved to disk (CPU, offline).

The ``tiny_sd`` fixture (tests/conftest.py) is the folder ``tests.tiny_models.build_tiny_sd`` writes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILModule

from lessonforge.tools.base import ConfigError, ImageError, ImageRequest
from lessonforge.tools.images.diffusers import (
    RESEED_OFFSET,
    DiffusersImages,
    family_defaults,
    fit_size,
    is_blank,
)
from tests.tiny_models import build_tiny_taesd


def _images(tiny_sd: Path, **options) -> DiffusersImages:
    options.setdefault("steps", 2)
    return DiffusersImages(str(tiny_sd), **options)


def _pixels(img) -> np.ndarray:
    return np.asarray(img.image, dtype=np.int16)


class _Wrapped:
    """Wraps the real pipeline to record calls and to inject a failure, leaving the rest real."""

    def __init__(self, pipe, before=None, after=None) -> None:
        self.pipe, self.before, self.after, self.batch_sizes = pipe, before, after, []

    def __getattr__(self, name: str):
        return getattr(self.pipe, name)

    def __call__(self, **kwargs):
        self.batch_sizes.append(len(kwargs["prompt"]))
        if self.before:
            self.before(kwargs)
        out = self.pipe(**kwargs)
        if self.after:
            self.after(kwargs, out)
        return out


# --------------------------------------------------------------------------- pure helpers


def test_family_defaults_follow_the_model_id() -> None:
    turbo = family_defaults("stabilityai/sd-turbo")
    assert (turbo.steps, turbo.guidance_scale, turbo.max_side) == (1, 0.0, 512)
    assert family_defaults("stabilityai/sdxl-turbo").steps == 1
    schnell = family_defaults("black-forest-labs/FLUX.1-schnell")
    assert (schnell.steps, schnell.guidance_scale) == (4, 0.0)
    assert schnell.call_kwargs["max_sequence_length"] == 256
    other = family_defaults("runwayml/stable-diffusion-v1-5")
    assert (other.steps, other.guidance_scale) == (25, 7.0)


def test_explicit_arguments_win_over_family_defaults() -> None:
    images = DiffusersImages("stabilityai/sd-turbo", steps=3, guidance_scale=1.5)
    assert (images.steps, images.guidance_scale) == (3, 1.5)
    assert images.name == "diffusers:stabilityai/sd-turbo"
    default = DiffusersImages("stabilityai/sd-turbo")
    assert (default.steps, default.guidance_scale) == (1, 0.0)


def test_fit_size_rounds_to_the_multiple_and_caps_the_longest_side() -> None:
    assert fit_size(64, 48, 8) == (64, 48)
    assert fit_size(61, 45, 8) == (64, 48)  # nearest multiple
    assert fit_size(3, 3, 8) == (8, 8)  # never below one multiple
    assert fit_size(1024, 768, 8, max_side=512) == (512, 384)  # aspect kept
    assert fit_size(1920, 1080, 16, max_side=1024) == (1024, 576)
    with pytest.raises(ConfigError, match="width and height"):
        fit_size(0, 64, 8)


def test_is_blank_flags_black_and_nan_pictures_only() -> None:
    assert is_blank(np.zeros((8, 8, 3), dtype=np.float32))
    nan = np.full((8, 8, 3), 0.5, dtype=np.float32)
    nan[2, 3, 1] = np.nan
    assert is_blank(nan)
    assert is_blank(PILModule.new("RGB", (8, 8), (0, 0, 0)))
    assert not is_blank(PILModule.new("RGB", (8, 8), (0, 0, 40)))
    assert not is_blank(np.full((8, 8, 3), 200, dtype=np.uint8))
    assert not is_blank(np.random.default_rng(0).random((8, 8, 3)).astype(np.float32))


# --------------------------------------------------------------------------- loading


def test_loads_from_a_saved_folder_once(tiny_sd: Path) -> None:
    images = _images(tiny_sd)
    images.load()
    pipe = images.pipeline
    images.load()
    assert images.pipeline is pipe  # idempotent
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert images.device == "cpu"
    assert next(pipe.unet.parameters()).dtype.is_floating_point
    assert str(next(pipe.unet.parameters()).dtype) == "torch.float32"
    assert images.size_multiple() == 8


def test_missing_model_offline_fails_at_once_naming_the_model() -> None:
    images = DiffusersImages("lessonforge-test/no-such-model-xyz", steps=1)
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        images.load()
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "lessonforge-test/no-such-model-xyz" in message
    assert "--images none" in message and "HF_HOME" in message and "offline" in message
    assert "\n" not in message


async def test_generate_raises_the_load_error(tmp_path: Path) -> None:
    images = DiffusersImages(str(tmp_path / "missing-folder"), steps=1)
    with pytest.raises(ConfigError, match="missing-folder"):
        await images.generate([ImageRequest("a cat", seed=1, width=64, height=64)])


# --------------------------------------------------------------------------- generating


async def test_same_seed_same_pixels_other_seed_other_pixels(tiny_sd: Path) -> None:
    images = _images(tiny_sd)
    [a] = await images.generate([ImageRequest("a red circle", seed=7, width=64, height=64)])
    [b] = await images.generate([ImageRequest("a red circle", seed=7, width=64, height=64)])
    [c] = await images.generate([ImageRequest("a red circle", seed=8, width=64, height=64)])
    assert np.array_equal(_pixels(a), _pixels(b))
    assert np.abs(_pixels(a) - _pixels(c)).mean() > 1.0
    assert (a.seed, a.prompt, a.model) == (7, "a red circle", images.name)
    assert a.image.mode == "RGB"


async def test_image_size_is_honoured_and_rounded(tiny_sd: Path) -> None:
    images = _images(tiny_sd)
    out = await images.generate(
        [
            ImageRequest("wide", seed=1, width=64, height=48),
            ImageRequest("odd", seed=2, width=61, height=45),
            ImageRequest("tall", seed=3, width=32, height=56),
        ]
    )
    assert [o.image.size for o in out] == [(64, 48), (64, 48), (32, 56)]
    assert [o.prompt for o in out] == ["wide", "odd", "tall"]


async def test_concurrent_calls_share_one_pipeline_call(tiny_sd: Path) -> None:
    images = _images(tiny_sd, max_batch=4, batch_window_s=30.0)
    images.load()
    wrapped = images._pipe = _Wrapped(images.pipeline)
    requests = [ImageRequest(f"scene {i}", seed=100 + i, width=64, height=64) for i in range(4)]
    start = time.monotonic()
    batched = await asyncio.gather(*(images.generate([r]) for r in requests))
    assert time.monotonic() - start < 15.0  # a full batch goes at once, without waiting out the window
    assert images.pipeline_calls == 1 and wrapped.batch_sizes == [4]
    assert [b[0].prompt for b in batched] == [r.prompt for r in requests]
    # Each picture depends on its own seed only: drawn alone, it is the same picture.
    single = _images(tiny_sd, max_batch=1, batch_window_s=0.0)
    for request, (image,) in zip(requests, batched, strict=True):
        [alone] = await single.generate([request])
        assert np.abs(_pixels(alone) - _pixels(image)).max() <= 2


async def test_batches_group_by_size_and_respect_max_batch(tiny_sd: Path) -> None:
    images = _images(tiny_sd, max_batch=2, batch_window_s=0.2)
    images.load()
    wrapped = images._pipe = _Wrapped(images.pipeline)
    sizes = [(64, 64), (32, 32), (64, 64), (64, 64)]
    out = await asyncio.gather(
        *(images.generate([ImageRequest(f"p{i}", seed=i, width=w, height=h)]) for i, (w, h) in enumerate(sizes))
    )
    assert [o[0].image.size for o in out] == sizes
    assert sorted(wrapped.batch_sizes) == [1, 1, 2]
    assert images.pipeline_calls == 3


async def test_generation_does_not_block_the_event_loop(tiny_sd: Path) -> None:
    images = _images(tiny_sd, batch_window_s=0.0)
    images.load()
    images._pipe = _Wrapped(images.pipeline, before=lambda kwargs: time.sleep(0.5))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    await images.generate([ImageRequest("slow", seed=1, width=32, height=32)])
    task.cancel()
    assert ticks >= 10


async def test_blank_picture_is_drawn_again_with_a_new_seed(tiny_sd: Path) -> None:
    images = _images(tiny_sd)
    images.load()

    def blank_seed_5(kwargs, out) -> None:
        for i, gen in enumerate(kwargs["generator"]):
            if gen.initial_seed() == 5:
                out.images[i] = 0.0

    wrapped = images._pipe = _Wrapped(images.pipeline, after=blank_seed_5)
    ok, redrawn = await images.generate(
        [ImageRequest("fine", seed=4, width=32, height=32), ImageRequest("blanked", seed=5, width=32, height=32)]
    )
    assert ok.seed == 4 and redrawn.seed == 5 + RESEED_OFFSET
    assert not is_blank(redrawn.image)
    assert wrapped.batch_sizes == [2, 1]  # only the blank one is drawn again


async def test_picture_blank_twice_raises_image_error(tiny_sd: Path) -> None:
    images = _images(tiny_sd)
    images.load()

    def all_nan(kwargs, out) -> None:
        out.images[:] = np.nan

    images._pipe = _Wrapped(images.pipeline, after=all_nan)
    with pytest.raises(ImageError, match="blank"):
        await images.generate([ImageRequest("always black", seed=9, width=32, height=32)])


@pytest.mark.slow
async def test_out_of_memory_halves_the_batch_then_goes_one_by_one(tiny_sd: Path) -> None:
    import torch

    images = _images(tiny_sd, max_batch=4, batch_window_s=0.5)
    images.load()

    def oom_above_one(kwargs) -> None:
        if len(kwargs["prompt"]) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    wrapped = images._pipe = _Wrapped(images.pipeline, before=oom_above_one)
    requests = [ImageRequest(f"s{i}", seed=i, width=32, height=32) for i in range(4)]
    out = await images.generate(requests)
    assert [o.seed for o in out] == [0, 1, 2, 3]
    assert wrapped.batch_sizes == [4, 2, 1, 1, 2, 1, 1]

    def always_oom(kwargs) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory.")

    images._pipe = _Wrapped(images.pipeline.pipe, before=always_oom)
    with pytest.raises(ImageError, match="out of memory"):
        await images.generate([ImageRequest("big", seed=1, width=32, height=32)])


async def test_tiny_vae_replaces_the_decoder(tiny_sd: Path, tmp_path: Path) -> None:
    taesd = build_tiny_taesd(tmp_path / "taesd")
    images = _images(tiny_sd, tiny_vae=str(taesd))
    images.load()
    assert type(images.pipeline.vae).__name__ == "AutoencoderTiny"
    [out] = await images.generate([ImageRequest("fast decode", seed=3, width=48, height=32)])
    assert out.image.size == (48, 32)

    with pytest.raises(ConfigError, match="tiny VAE"):
        _images(tiny_sd, tiny_vae=str(tmp_path / "no-taesd")).load()


async def test_negative_prompts_are_passed_only_when_guidance_uses_them(tiny_sd: Path) -> None:
    seen: list[dict] = []
    for guidance in (7.0, 0.0):
        images = _images(tiny_sd, guidance_scale=guidance, steps=1)
        images.load()
        images._pipe = _Wrapped(images.pipeline, before=seen.append)
        await images.generate(
            [
                ImageRequest("a map", seed=1, width=32, height=32, negative_prompt="text, letters"),
                ImageRequest("a tree", seed=2, width=32, height=32),
            ]
        )
    assert seen[0]["negative_prompt"] == ["text, letters", ""] and seen[0]["guidance_scale"] == 7.0
    assert "negative_prompt" not in seen[1] and seen[1]["guidance_scale"] == 0.0
    assert [g.initial_seed() for g in seen[0]["generator"]] == [1, 2]


def test_turbo_models_decode_with_taesd_on_cpu_and_the_full_vae_on_cuda():
    from lessonforge.tools.images.diffusers import DiffusersImages, family_defaults

    assert family_defaults("stabilityai/sd-turbo").cpu_tiny_vae == "madebyollin/taesd"
    assert family_defaults("stabilityai/sdxl-turbo").cpu_tiny_vae == "madebyollin/taesdxl"
    assert family_defaults("runwayml/stable-diffusion-v1-5").cpu_tiny_vae is None
    assert DiffusersImages("stabilityai/sd-turbo", device="cpu").decoder() == "madebyollin/taesd"
    assert DiffusersImages("stabilityai/sd-turbo", device="cuda").decoder() is None
    assert DiffusersImages("stabilityai/sd-turbo", device="cpu", tiny_vae="").decoder() == ""  # full VAE
    assert DiffusersImages("stabilityai/sd-turbo", device="cuda", tiny_vae="x/taesd").decoder() == "x/taesd"
