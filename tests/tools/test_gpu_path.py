"""The GPU path's pieces, checked on a CPU: batch sizing, on-device conversions, speed options, and the
real-size architectures built from their published configs (on the meta device: no memory, no hub)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILModule

from lessonforge.tools.base import ImageRequest
from lessonforge.tools.critic.clip import ClipCritic, _image_processor_class, preprocess_on_device
from lessonforge.tools.images.diffusers import (
    CPU_MAX_BATCH,
    MAX_AUTO_BATCH,
    DiffusersImages,
    auto_max_batch,
    is_blank,
    to_uint8,
)
from tests.tiny_models import build_tiny_clip

GIB = 2**30


def test_auto_max_batch_grows_with_free_memory_and_shrinks_with_picture_size() -> None:
    assert auto_max_batch(0, 512, 512) == 1  # never below one picture
    small_gpu = auto_max_batch(8 * GIB, 512, 512)
    assert 1 < small_gpu < auto_max_batch(24 * GIB, 512, 512)
    assert auto_max_batch(24 * GIB, 1024, 1024) < auto_max_batch(24 * GIB, 512, 512)
    assert auto_max_batch(140 * GIB, 512, 512) == MAX_AUTO_BATCH  # capped
    assert auto_max_batch(140 * GIB, 512, 512) >= 12  # a 12-scene lesson is one call on a large GPU


def test_to_uint8_converts_a_batch_and_blacks_out_nan_pictures() -> None:
    batch = torch.rand(3, 3, 4, 5)
    batch[1, 2, 0, 0] = float("nan")
    batch[2] = 1.5  # out of range: clipped
    out = to_uint8(batch)
    assert [a.shape for a in out] == [(4, 5, 3)] * 3 and out[0].dtype == np.uint8
    expected = (batch[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(out[0], expected)
    assert is_blank(out[1]) and not out[1].any()
    assert (out[2] == 255).all()


def _tiny_pipe(tiny_sd: Path):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(tiny_sd)


async def test_from_pipeline_prepares_a_built_pipeline_like_a_loaded_one(tiny_sd: Path) -> None:
    images = DiffusersImages.from_pipeline(_tiny_pipe(tiny_sd), "tiny/sd-turbo", device="cpu", channels_last=True)
    unet = images.pipeline.unet
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert (images.steps, images.max_batch) == (1, CPU_MAX_BATCH)  # the family's steps, the CPU setting
    request = ImageRequest("a red circle", seed=7, width=64, height=64)
    [fast] = await images.generate([request])
    [plain] = await DiffusersImages(str(tiny_sd), steps=1, guidance_scale=0.0, tiny_vae="").generate([request])
    assert fast.image.size == (64, 64)
    # channels-last changes the memory layout, not the picture
    assert np.abs(np.asarray(fast.image, np.int16) - np.asarray(plain.image, np.int16)).max() <= 2


@pytest.mark.slow
def test_compile_is_opt_in_and_wraps_the_unet(tiny_sd: Path, monkeypatch) -> None:
    plain = DiffusersImages.from_pipeline(_tiny_pipe(tiny_sd), "tiny/sd-turbo", device="cpu")
    assert not isinstance(plain.pipeline.unet, torch._dynamo.eval_frame.OptimizedModule)
    assert not plain.pipeline.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)  # CPU default
    compiled = DiffusersImages.from_pipeline(_tiny_pipe(tiny_sd), "tiny/sd-turbo", device="cpu", compile=True)
    assert isinstance(compiled.pipeline.unet, torch._dynamo.eval_frame.OptimizedModule)
    monkeypatch.setenv("LESSONFORGE_TORCH_COMPILE", "1")
    assert DiffusersImages(str(tiny_sd)).compile and not DiffusersImages(str(tiny_sd), compile=False).compile


# --------------------------------------------------------------------------- the critic


def test_critic_runs_in_half_precision_on_cuda_only() -> None:
    assert ClipCritic(device="cuda")._dtype() == torch.float16
    assert ClipCritic(device="cpu")._dtype() == torch.float32


def _pictures(n: int, size=(96, 64)) -> list:
    rng = np.random.default_rng(3)
    return [PILModule.fromarray((rng.random((4, 4, 3)) * 255).astype(np.uint8)).resize(size, PILModule.BICUBIC)
            for _ in range(n)]


def test_preprocessing_on_the_device_matches_the_pil_processor() -> None:
    processor = _image_processor_class()(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    pictures = _pictures(2, (512, 512)) + _pictures(1, (640, 480)) + _pictures(1, (300, 500))
    reference = processor(images=pictures, return_tensors="pt")["pixel_values"]
    ours = preprocess_on_device(pictures, processor, "cpu", torch.float32)
    assert ours.shape == reference.shape == (4, 3, 224, 224)
    assert float((ours - reference).abs().max()) < 0.03  # within about two 8-bit levels


def test_critic_from_parts_scores_as_the_loaded_one_with_either_preprocessing(tmp_path: Path) -> None:
    from transformers import CLIPModel, CLIPTokenizer

    folder = build_tiny_clip(tmp_path / "clip")
    loaded = ClipCritic(str(folder), device="cpu")
    built = ClipCritic.from_parts(CLIPModel.from_pretrained(folder), CLIPTokenizer.from_pretrained(folder),
                                  _image_processor_class().from_pretrained(folder), "tiny-clip", device="cpu",
                                  device_preprocess=True)
    pictures, prompts = _pictures(3), ["a red circle", "a blue square", "a green line"]
    expected = loaded.scores(pictures, prompts)
    got = built.scores(pictures, prompts)
    assert got.shape == expected.shape == (3, 3)
    assert np.abs(got - expected).max() < 0.02
    assert built.name == "clip:tiny-clip"


# --------------------------------------------------------------------------- real-size architectures


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # parameter counts of the released checkpoints
        ("sd_turbo", {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840}),
        ("sdxl_turbo", {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480,
                        "text_encoder_2": 694_659_840}),
    ],
)
def test_real_size_pipelines_have_the_released_models_parameters(name: str, expected: dict) -> None:
    from benchmarks import archs

    pipe, taesd = archs.build_pipeline(name, device="meta")
    assert {part: archs.parameters(getattr(pipe, part)) for part in expected} == expected
    assert archs.parameters(taesd) == 2_445_063  # TAESD
    processors = {type(p).__name__ for p in pipe.unet.attn_processors.values()}
    assert processors == {"AttnProcessor2_0"}  # scaled-dot-product attention


def test_real_size_clip_is_vit_b32_with_sdpa() -> None:
    from benchmarks import archs

    model, _tokenizer, processor = archs.build_clip(device="meta")
    assert archs.parameters(model) == 151_277_313
    assert model.config._attn_implementation == "sdpa"
    assert model.config.vision_config.patch_size == 32


def test_unknown_architecture_names_the_known_ones() -> None:
    from benchmarks import archs

    with pytest.raises(ValueError, match="sd_turbo"):
        archs.load_config("sd_3")
