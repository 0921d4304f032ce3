"""A tiny random-weight causal LM with a tokenizer trained here, saved like a real checkpoint.

``build_tiny_lm(folder)`` trains a byte-level BPE tokenizer (``tokenizers``' BpeTrainer) on a few KB
of lesson-like text and JSON, wraps it as a ``PreTrainedTokenizerFast`` with a ChatML chat template
(the Qwen one, which knows ``enable_thinking``), builds a 2-layer ``Qwen2ForCausalLM`` with hidden
size 32 and saves both with ``save_pretrained``. The local LLM backend then loads the folder through
the very ``from_pretrained`` path it uses for a hub id. Nothing touches the network.

Byte level means every byte has a token, so the model can spell any JSON character; the weights are
random, so whatever it writes unconstrained is noise.
"""

from __future__ import annotations

import json
from pathlib import Path

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|endoftext|>"

# ChatML, as Qwen's templates write it; ``enable_thinking=False`` adds an empty think block.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)


def training_text() -> str:
    """A few KB of prose and compact JSON: the corpus the tokenizer's merges are learned from."""
    prose = (
        "Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen. "
        "The leaf takes in light with chlorophyll. Roots bring water; the air brings carbon dioxide. "
        "You can think of a leaf as a small kitchen powered by the sun. Explain the light reactions, "
        "name the Calvin cycle, and compare day and night. What gas do plants release? Oxygen. "
        "The water cycle moves water between the sea, the air and the land: evaporation, "
        "condensation, precipitation and collection. Fractions name parts of a whole: one half, "
        "two thirds, three quarters. Gravity pulls objects toward each other; the heavier the mass, "
        "the stronger the pull. "
    )
    sample = {
        "title": "How Plants Make Food",
        "hook": "Did you know a tree is built mostly from air?",
        "objectives": ["Explain photosynthesis", "Name its inputs"],
        "sections": [{"title": "Light", "key_points": ["chlorophyll", "energy"], "seconds": 20.5}],
        "check_question": "What do plants release?",
        "check_answer": "Oxygen.",
        "scenes": [{"role": "concept", "title": "Light", "bullets": ["sun"], "narration": "Plants use light.",
                    "key": "", "answer": "", "visual": {"kind": "text"}}],
    }
    compact = json.dumps(sample, separators=(",", ":"))
    return (prose * 6) + "\n" + (compact + "\n") * 8 + "0123456789 .,:;!?-+eE{}[]\"\\/\n"


def build_tiny_tokenizer(vocab_size: int = 600):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``training_text()``, with ChatML tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator([training_text()], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=IM_END, pad_token=PAD, bos_token=None
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_lm(path: Path, seed: int = 0, vocab_size: int = 600) -> Path:
    """Save a tiny random ``Qwen2ForCausalLM`` and its trained tokenizer to ``path``; return ``path``."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
