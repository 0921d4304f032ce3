"""Tiny random-weight models, built from configs and saved like real checkpoints.

Each builder writes a folder with ``save_pretrained`` so the backends load it through the very
code path they use for a hub id (``from_pretrained(folder)``). Nothing here touches the network:
the CLIP tokenizer is built from a vocabulary written here (the byte-level alphabet, its ``</w>``
word-final variants and CLIP's two special tokens), exactly the shape of the real one.

The weights are random, so the pictures are noise and CLIP's scores are arbitrary; what the tests
check is the plumbing: loading, batching, seeding, sizes, shapes and the critic's decision logic.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MAX_TOKENS = 77  # CLIP's context length; real checkpoints say so in tokenizer_config.json


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def write_clip_vocab(folder: Path) -> tuple[Path, Path]:
    """Write a minimal CLIP ``vocab.json`` and ``merges.txt`` (no merges: one token per byte)."""
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet] + [BOS, EOS]
    vocab_file = folder / "vocab.json"
    merges_file = folder / "merges.txt"
    vocab_file.write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), "utf-8")
    merges_file.write_text("#version: 0.2\n", "utf-8")
    return vocab_file, merges_file


def build_tiny_tokenizer():
    """A ``CLIPTokenizer`` loaded from a vocabulary written to a temporary folder."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_clip_vocab(Path(tmp))
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=MAX_TOKENS)


def _text_config_kwargs(tokenizer) -> dict:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "max_position_embeddings": MAX_TOKENS,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "layer_norm_eps": 1e-5,
    }


def build_tiny_sd(path: Path, seed: int = 0) -> Path:
    """Save a tiny random ``StableDiffusionPipeline`` (Euler, trailing spacing, as SD-Turbo) to ``path``.

    The VAE downsamples by 2 (two blocks), so a 64x64 image runs a 32x32 UNet: well under a
    second per step on a small CPU.
    """
    import torch

    path = Path(path)
    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _save_tiny_sd(path, tokenizer)


def _save_tiny_sd(path: Path, tokenizer) -> Path:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(**_text_config_kwargs(tokenizer)))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    return path


def build_tiny_taesd(path: Path, seed: int = 0) -> Path:
    """Save a tiny random ``AutoencoderTiny`` (TAESD) whose scale factor (2) matches ``build_tiny_sd``."""
    import torch
    from diffusers import AutoencoderTiny

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vae = AutoencoderTiny(
            encoder_block_out_channels=(8, 8),
            decoder_block_out_channels=(8, 8),
            num_encoder_blocks=(1, 1),
            num_decoder_blocks=(1, 1),
            latent_channels=4,
        )
    vae.save_pretrained(path)
    return Path(path)


def build_tiny_clip(path: Path, seed: int = 0) -> Path:
    """Save a tiny random ``CLIPModel`` with its tokenizer and a PIL image processor (32x32 input)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    path = Path(path)
    tokenizer = build_tiny_tokenizer()
    config = CLIPConfig(
        text_config=_text_config_kwargs(tokenizer),
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
        },
        projection_dim=16,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CLIPModel(config)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    model.save_pretrained(path)
    return path
