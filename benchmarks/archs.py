"""Real-size model architectures with random weights, built from the published configs (no hub).

``benchmarks/configs/*.json`` hold the config values of SD-Turbo (SD 2.1 UNet, VAE, OpenCLIP
ViT-H text encoder), SDXL-Turbo (SDXL UNet, VAE, CLIP ViT-L and OpenCLIP ViT-bigG text encoders)
and CLIP ViT-B/32, plus the TAESD decoder. The models built from them do the same computation
as the released weights (same layers, same shapes), so their speed and memory are the real
ones; their pictures are grey noise.

Two deliberate differences from a download:
  * the tokenizer is the byte-level CLIP tokenizer of ``tests.tiny_models`` (no merges). The
    pipelines pad every prompt to CLIP's 77 tokens and the critic's prompts are a few words,
    so the encoders see the same sequence lengths;
  * weights are drawn with a small spread (normal, std ``WEIGHT_STD``) so that fp16 activations
    stay finite through 2.6B random parameters; a picture that came out NaN would be drawn twice
    (the backend's blank-picture rule) and skew the timings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parent / "configs"
WEIGHT_STD = 0.02
PIPELINES = ("sd_turbo", "sdxl_turbo")


def load_config(name: str) -> dict[str, Any]:
    """The config named ``name`` (``sd_turbo``, ``sdxl_turbo``, ``clip_vit_b32``)."""
    path = CONFIGS / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.json")))
        raise ValueError(f"No architecture config {name!r}. Fix: use one of {known}.")
    return json.loads(path.read_text("utf-8"))


def tame(module: Any) -> Any:
    """Redraw every weight matrix/kernel from N(0, WEIGHT_STD) and zero the biases (see module doc)."""
    import torch

    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.dim() > 1:
                param.normal_(0.0, WEIGHT_STD)
            elif name.endswith("bias"):
                param.zero_()
    return module


def _text_encoder(spec: dict[str, Any], tokenizer: Any) -> Any:
    import transformers

    spec = dict(spec)
    cls = getattr(transformers, spec.pop("class"))
    config = transformers.CLIPTextConfig(
        **spec, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config._attn_implementation = "sdpa"
    return cls(config)


def _scheduler(spec: dict[str, Any]) -> Any:
    import diffusers

    spec = dict(spec)
    return getattr(diffusers, spec.pop("class"))(**spec)


def _on(device: str, dtype: Any, build: Any) -> Any:
    """``build()`` with its parameters created on ``device`` (fast random init on a GPU), then cast."""
    import torch

    with torch.device(device):
        module = build()
    if device == "meta":
        return module
    return tame(module).to(dtype=dtype).eval()


def build_pipeline(name: str, *, device: str = "cuda", dtype: Any = None) -> tuple[Any, Any]:
    """(pipeline, tiny VAE) for ``sd_turbo`` or ``sdxl_turbo`` at real size, random weights, on ``device``.

    ``device="meta"`` allocates nothing (for counting parameters). The pipeline keeps its full VAE;
    the TAESD decoder is returned beside it for the caller to swap in.
    """
    import diffusers
    import torch

    from tests.tiny_models import build_tiny_tokenizer

    if name not in PIPELINES:
        raise ValueError(f"No pipeline {name!r}. Fix: use one of {', '.join(PIPELINES)}.")
    dtype = dtype or torch.float16
    cfg = load_config(name)
    tokenizer = build_tiny_tokenizer()
    parts: dict[str, Any] = {
        "unet": _on(device, dtype, lambda: diffusers.UNet2DConditionModel(**cfg["unet"])),
        "vae": _on(device, dtype, lambda: diffusers.AutoencoderKL(**cfg["vae"])),
        "text_encoder": _on(device, dtype, lambda: _text_encoder(cfg["text_encoder"], tokenizer)),
        "tokenizer": tokenizer,
        "scheduler": _scheduler(cfg["scheduler"]),
    }
    if "text_encoder_2" in cfg:
        parts["text_encoder_2"] = _on(device, dtype, lambda: _text_encoder(cfg["text_encoder_2"], tokenizer))
        parts["tokenizer_2"] = tokenizer
    else:
        parts.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe = getattr(diffusers, cfg["pipeline"])(**parts)
    taesd = _on(device, dtype, lambda: diffusers.AutoencoderTiny(**cfg["tiny_vae"]))
    return pipe, taesd


def build_clip(*, device: str = "cuda", dtype: Any = None) -> tuple[Any, Any, Any]:
    """(CLIPModel, tokenizer, image processor) of ViT-B/32 at real size, random weights, SDPA attention."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    from lessonforge.tools.critic.clip import _image_processor_class
    from tests.tiny_models import build_tiny_tokenizer

    dtype = dtype or torch.float16
    cfg = load_config("clip_vit_b32")
    tokenizer = build_tiny_tokenizer()
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    config = CLIPConfig(text_config={**cfg["text_config"], **ids}, vision_config=cfg["vision_config"],
                        projection_dim=cfg["projection_dim"], logit_scale_init_value=cfg["logit_scale_init_value"])
    config._attn_implementation = "sdpa"
    model = _on(device, dtype, lambda: CLIPModel(config))
    size = cfg["vision_config"]["image_size"]
    processor = _image_processor_class()(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return model, tokenizer, processor


def parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())
