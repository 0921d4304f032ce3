"""LocalLLM on a tiny random-weight Qwen2 model with a tokenizer trained in the test (tests/tiny_lm.py)."""

from __future__ import annotations

import asyncio
import json
from itertools import pairwise
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from lessonforge.agent.schemas import Outline
from lessonforge.tools.base import ConfigError, LLMError, Message, expecting
from lessonforge.tools.llm.local import LocalLLM, ReplyLengths, bound_schema, require_items
from lessonforge.tools.llm.openai import strict_json_schema
from tests.tiny_lm import build_tiny_lm

PROMPT = [Message("system", "You plan short lessons."), Message("user", "Plan a lesson on photosynthesis.")]
BUDGET = 400


class MiniScene(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    bullets: list[str]
    narration: str
    visual: Literal["illustration", "text"]


class MiniScript(BaseModel):
    """A reduced Script (no diagrams): the same shape of scenes with titles, bullets and narration."""

    model_config = ConfigDict(extra="forbid")
    title: str
    scenes: list[MiniScene]

    @field_validator("scenes")
    @classmethod
    def _scenes(cls, v: list[MiniScene]) -> list[MiniScene]:
        if not v:
            raise ValueError("give at least one scene")
        return v


class Never(BaseModel):
    model_config = ConfigDict(extra="forbid")
    word: str

    @field_validator("word")
    @classmethod
    def _never(cls, v: str) -> str:
        raise ValueError("this word is never right")


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return str(build_tiny_lm(tmp_path_factory.mktemp("tiny-lm")))


def _llm(path: str, **options) -> LocalLLM:
    options = {"max_new_tokens": BUDGET, "max_string_chars": 24, "max_items": 3, "temperature": 1.0} | options
    return LocalLLM(path, device="cpu", **options)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_constrained_outline_is_valid_for_every_seed(tiny_lm, seed):
    progress: list[tuple[int, float]] = []
    llm = _llm(tiny_lm, seed=seed, on_tokens=lambda n, rate, expected: progress.append((n, rate)))
    outline = asyncio.run(llm.structured(PROMPT, Outline))
    assert isinstance(outline, Outline)
    assert 1 <= len(outline.objectives) <= 3 and 1 <= len(outline.sections) <= 3
    assert 1 <= llm.usage.calls <= 2
    assert 0 < llm.usage.completion_tokens <= BUDGET * llm.usage.calls
    assert llm.usage.prompt_tokens > 0
    counts = [n for n, _ in progress]
    assert counts[0] == 1 and max(counts) >= 10
    assert all(b == a + 1 or b == 1 for a, b in pairwise(counts))  # one count per generation
    assert counts.count(1) == llm.usage.calls
    assert all(rate > 0 for _, rate in progress)


def test_progress_expects_a_length_and_learns_the_model_s_rate(tiny_lm, tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONFORGE_CACHE_DIR", str(tmp_path))
    expected: list[int | None] = []
    llm = _llm(tiny_lm, seed=0, on_tokens=lambda n, rate, total: expected.append(total))
    asyncio.run(llm.structured(PROMPT, Outline))
    assert set(expected) == {None}  # no hint and nothing measured yet: no ETA is invented

    expected.clear()
    with expecting(50):
        asyncio.run(llm.structured(PROMPT, Outline))
    assert set(expected) == {round(50 * ReplyLengths.TOKENS_PER_WORD)}  # before any measurement with a hint
    entry = json.loads((tmp_path / "llm.json").read_text())[f"{tiny_lm}|Outline"]
    assert 0 < entry["tokens"] <= llm.usage.completion_tokens
    assert entry["tokens_per_word"] > 0

    # The next reply is expected at this model's measured tokens per word, kept across instances.
    expected.clear()
    again = _llm(tiny_lm, seed=1, on_tokens=lambda n, rate, total: expected.append(total))
    with expecting(100):
        asyncio.run(again.structured(PROMPT, Outline))
    assert set(expected) == {min(BUDGET, round(100 * entry["tokens_per_word"]))}


def test_reply_lengths_move_halfway_to_each_measurement(tmp_path):
    lengths = ReplyLengths(tmp_path / "llm.json")
    assert lengths.estimate("m", "Script", 200) == 360 and lengths.estimate("m", "Script", None) is None
    lengths.record("m", "Script", 200, 500)
    assert lengths.estimate("m", "Script", 200) == 500 and lengths.estimate("m", "Script", None) == 500
    lengths.record("m", "Script", 100, 150)  # 1.5 tokens a word, halfway from 2.5
    assert lengths.estimate("m", "Script", 100) == 200 and lengths.estimate("m", "Script", None) == 325
    assert lengths.estimate("other-model", "Script", 100) == 180  # each model keeps its own figures
    (tmp_path / "llm.json").write_text("{not json")
    assert lengths.estimate("m", "Script", 100) == 180  # a damaged file is ignored, never fatal


def test_greedy_outline_is_valid(tiny_lm):
    llm = _llm(tiny_lm, temperature=0.0)
    assert isinstance(asyncio.run(llm.structured(PROMPT, Outline)), Outline)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constrained_small_script_is_valid(tiny_lm, seed):
    llm = _llm(tiny_lm, seed=seed)
    script = asyncio.run(llm.structured([Message("user", "Write the lesson script.")], MiniScript))
    assert isinstance(script, MiniScript) and script.scenes
    assert all(len(s.title) <= 24 and len(s.bullets) <= 3 for s in script.scenes)


def test_unconstrained_output_of_the_same_model_is_not_valid(tiny_lm):
    import torch

    llm = _llm(tiny_lm)
    llm.load()
    tokenizer, model, _ = llm._loaded
    ids = torch.tensor([llm._prompt_ids(llm._chat(PROMPT, Outline))])
    for seed in range(4):
        torch.manual_seed(seed)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=BUDGET,
                             do_sample=True, temperature=1.0, top_k=None, top_p=None)
        text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        with pytest.raises(ValidationError):
            Outline.model_validate_json(text)


def test_validator_error_is_repaired_once_then_reported(tiny_lm):
    llm = _llm(tiny_lm, seed=0, max_repairs=1)
    with pytest.raises(LLMError, match=r"(?s)after 2 attempt\(s\).*never right"):
        asyncio.run(llm.structured([Message("user", "Say a word.")], Never))
    assert llm.usage.calls == 2


def test_cut_off_reply_is_an_error_naming_the_budget(tiny_lm):
    llm = _llm(tiny_lm, seed=0, max_new_tokens=5, max_repairs=0)
    with pytest.raises(LLMError, match="cut off after 5 tokens"):
        asyncio.run(llm.structured(PROMPT, Outline))


def test_name_and_option_checks():
    assert LocalLLM().name == "local:Qwen/Qwen3-1.7B"
    assert LocalLLM("Qwen/Qwen2.5-1.5B-Instruct").name == "local:Qwen/Qwen2.5-1.5B-Instruct"
    with pytest.raises(ConfigError, match="max_new_tokens"):
        LocalLLM(max_new_tokens=0)
    with pytest.raises(ConfigError, match="temperature"):
        LocalLLM(temperature=-1)


def test_offline_and_not_cached_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"Qwen/Qwen3-1\.7B.*not in the Hugging Face cache.*lessonforge models pull"):
        LocalLLM("Qwen/Qwen3-1.7B").load()


def test_bound_schema_closes_strings_arrays_and_numbers():
    schema = bound_schema(strict_json_schema(Outline), 50, 4)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["title"]["maxLength"] == 50
    assert schema["properties"]["objectives"]["maxItems"] == 4
    section = schema["$defs"]["OutlineSection"]
    assert section["properties"]["seconds"]["maximum"] == 1_000_000_000
    assert "maxLength" not in bound_schema({"type": "string", "enum": ["a"]}, 5, 5)


def test_require_items_forbids_the_empty_list_a_validator_rejected():
    schema = strict_json_schema(Outline)
    assert schema["properties"]["objectives"]["minItems"] == 1  # the schema itself carries the bound now
    for name in ("objectives", "sections"):  # a schema without it: the repair adds it
        schema["properties"][name].pop("minItems")
    text = '{"title":"t","hook":"h","objectives":[],"sections":[],"check_question":"q","check_answer":"a"}'
    with pytest.raises(ValidationError) as info:
        Outline.model_validate_json(text)
    assert require_items(schema, text, info.value)
    assert schema["properties"]["objectives"]["minItems"] == 1
    assert schema["properties"]["sections"]["minItems"] == 1
