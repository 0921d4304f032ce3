"""A tiny random-weight Kokoro model: hexgrad/Kokoro-82M's config keys and vocabulary, shrunk.

Its weights file is an empty state dict, so every module keeps its seeded random init; voices are
random style tensors. It speaks noise, but the durations it predicts are real model output.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

# The vocabulary of hexgrad/Kokoro-82M's config.json (misaki's phoneme symbols and punctuation).
VOCAB = {
    ";": 1, ":": 2, ",": 3, ".": 4, "!": 5, "?": 6, "—": 9, "…": 10, '"': 11, "(": 12, ")": 13, "“": 14,
    "”": 15, " ": 16, "\u0303": 17, "ʣ": 18, "ʥ": 19, "ʦ": 20, "ʨ": 21, "ᵝ": 22, "\uab67": 23, "A": 24,
    "I": 25, "O": 31, "Q": 33, "S": 35, "T": 36, "W": 39, "Y": 41, "ᵊ": 42, "a": 43, "b": 44, "c": 45,
    "d": 46, "e": 47, "f": 48, "h": 50, "i": 51, "j": 52, "k": 53, "l": 54, "m": 55, "n": 56, "o": 57,
    "p": 58, "q": 59, "r": 60, "s": 61, "t": 62, "u": 63, "v": 64, "w": 65, "x": 66, "y": 67, "z": 68,
    "ɑ": 69, "ɐ": 70, "ɒ": 71, "æ": 72, "β": 75, "ɔ": 76, "ɕ": 77, "ç": 78, "ɖ": 80, "ð": 81, "ʤ": 82,
    "ə": 83, "ɚ": 85, "ɛ": 86, "ɜ": 87, "ɟ": 90, "ɡ": 92, "ɥ": 99, "ɨ": 101, "ɪ": 102, "ʝ": 103,
    "ɯ": 110, "ɰ": 111, "ŋ": 112, "ɳ": 113, "ɲ": 114, "ɴ": 115, "ø": 116, "ɸ": 118, "θ": 119, "œ": 120,
    "ɹ": 123, "ɾ": 125, "ɻ": 126, "ʁ": 128, "ɽ": 129, "ʂ": 130, "ʃ": 131, "ʈ": 132, "ʧ": 133, "ʊ": 135,
    "ʋ": 136, "ʌ": 138, "ɣ": 139, "ɤ": 140, "χ": 142, "ʎ": 143, "ʒ": 147, "ʔ": 148, "ˈ": 156, "ˌ": 157,
    "ː": 158, "ʰ": 162, "ʲ": 164, "↓": 169, "→": 171, "↗": 172, "↘": 173, "ᵻ": 177,
}  # fmt: skip

# hexgrad/Kokoro-82M's config.json, shrunk. The decoder's widths (1024/512 channels, 128-wide styles)
# are fixed in kokoro's code, so hidden_dim and style_dim keep their real values; the rest is small.
# One 6x upsampling with an iSTFT hop of 50 makes the same 600 samples per frame as the real
# [10, 6] upsampling with hop 5 (2 x 6 x 50 = 2 x 10 x 6 x 5 = 600), at a fraction of the cost.
# 128 positions make chunks of at most 126 phonemes, so longer texts exercise the chunking.
TINY_CONFIG = {
    "istftnet": {
        "upsample_kernel_sizes": [12], "upsample_rates": [6], "gen_istft_hop_size": 50, "gen_istft_n_fft": 100,
        "resblock_dilation_sizes": [[1, 3, 5]], "resblock_kernel_sizes": [3], "upsample_initial_channel": 512,
    },
    "dim_in": 64, "dropout": 0.2, "hidden_dim": 512, "max_conv_dim": 512, "max_dur": 5, "multispeaker": True,
    "n_layer": 1, "n_mels": 80, "n_token": 178, "style_dim": 128, "text_encoder_kernel_size": 5,
    "plbert": {
        "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128,
        "num_hidden_layers": 1, "dropout": 0.1,
    },
    "vocab": VOCAB,
}  # fmt: skip


def write_kokoro(folder: Path, voices: tuple[str, ...] = ("af_heart",), weights: str = "kokoro-v1_0.pth") -> Path:
    (folder / "voices").mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG, ensure_ascii=False), encoding="utf-8")
    torch.save({}, folder / weights)  # no trained weights: every module keeps its seeded random init
    generator = torch.Generator().manual_seed(7)
    for voice in voices:
        torch.save(0.3 * torch.randn(510, 1, 256, generator=generator), folder / "voices" / f"{voice}.pt")
    return folder
