"""LLM backend that runs a Hugging Face causal LM locally with transformers (``local:MODEL``).

``local:Qwen/Qwen3-1.7B`` (the default) needs no API key: the model is downloaded once into the
standard Hugging Face cache (``HF_HOME``; ``lessonforge models pull`` fetches it ahead of time) and
runs on CUDA when present, else on the CPU (fp32; a 1.5B model writes about 3-4 tokens/s on two
cores, so a lesson script takes minutes). Progress is reported through ``on_tokens(tokens, rate,
expected)``: ``expected`` is the reply's likely length in tokens, from the words the caller expects
(``lessonforge.tools.base.expecting``) times this model's measured tokens per word for the schema, kept between
runs in ``$LESSONFORGE_CACHE_DIR/llm.json`` (:class:`ReplyLengths`); the ETA follows from the rate.

Output is constrained to the pydantic schema while decoding: the strict JSON schema (closed objects,
every property required; ``lessonforge.tools.llm.openai.strict_json_schema``) is compiled by llguidance into a
grammar with compact separators and no free whitespace, and a transformers ``LogitsProcessor`` masks
every token the grammar does not allow. Even a weak model therefore returns parseable JSON of the
right shape; strings and arrays get an upper bound (``max_string_chars``, ``max_items``) where the
schema sets none, so a model cannot pad until it runs out of tokens. The reply is then validated
with pydantic; a validator error is sent back once (``max_repairs``) as OpenAILLM does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lessonforge.tools import extras
from lessonforge.tools.base import ConfigError, LLMBackend, LLMError, Message, T, expected_words
from lessonforge.tools.cache import read_state, user_cache_dir, write_state
from lessonforge.tools.defaults import LOCAL_LLM, LOCAL_LLM_GPU, LOCAL_LLM_LIGHT
from lessonforge.tools.hub import first_use, hub_cache_dir, quiet_progress
from lessonforge.tools.llm.openai import UsageTotals, strict_json_schema, summarize_validation
from lessonforge.tools.registry import BackendOptions

log = logging.getLogger(__name__)

DEFAULT_MODEL = LOCAL_LLM
PULL_HINT = "lessonforge models pull"
# What loading imports (the [local] extra), and how to do without a local LLM.
_PACKAGES = ("torch", "transformers", "llguidance")
_INSTEAD = "set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (Ollama, vLLM, llama.cpp), or choose --llm openai:<model>"
NUMBER_LIMIT = 1_000_000_000
NUMBER_STEP = 0.001


class LocalLLM(LLMBackend):
    """Structured output from a local transformers causal LM, constrained by llguidance."""

    local = True  # loads the model on this machine

    class Options(BackendOptions):
        """What ``local:`` takes (see the constructor)."""

        device: str | None = None
        max_new_tokens: int = 2048
        max_repairs: int = 1
        on_tokens: Callable[[int, float, int | None], None] | None = None
        temperature: float = 0.0
        seed: int | None = None
        max_string_chars: int | None = 2000
        max_items: int | None = 40
        schema_in_prompt: bool = True

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        max_new_tokens: int = 2048,
        max_repairs: int = 1,
        on_tokens: Callable[[int, float, int | None], None] | None = None,
        temperature: float = 0.0,
        seed: int | None = None,
        max_string_chars: int | None = 2000,
        max_items: int | None = 40,
        schema_in_prompt: bool = True,
    ) -> None:
        """``temperature`` 0 decodes greedily; above 0 samples (seeded by ``seed`` when given).
        ``max_string_chars`` / ``max_items`` bound strings and arrays the schema leaves unbounded
        (None: no bound). ``schema_in_prompt`` adds the JSON schema (with its field descriptions)
        to the system message, which small models need to fill fields sensibly."""
        self.model = (model or "").strip() or DEFAULT_MODEL
        self.name = f"local:{self.model}"
        _check_int("max_new_tokens", max_new_tokens, 1)
        _check_int("max_repairs", max_repairs, 0)
        for name, value in (("max_string_chars", max_string_chars), ("max_items", max_items)):
            if value is not None:
                _check_int(name, value, 1)
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or temperature < 0:
            raise ConfigError(f"LocalLLM option temperature must be a number >= 0, got {temperature!r}.")
        self.device = (device or "").strip() or None
        self.max_new_tokens = int(max_new_tokens)
        self.max_repairs = int(max_repairs)
        self.on_tokens = on_tokens
        self.temperature = float(temperature)
        self.seed = seed
        self.max_string_chars = max_string_chars
        self.max_items = max_items
        self.schema_in_prompt = schema_in_prompt
        self.usage = UsageTotals()
        self.lengths = ReplyLengths()
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # one generation at a time: parallel decoding only thrashes
        self._loaded: tuple[Any, Any, Any] | None = None  # (tokenizer, model, llguidance tokenizer)
        self._grammars: dict[type, str] = {}

    def __repr__(self) -> str:
        return f"LocalLLM(model={self.model!r}, device={self.device!r})"

    # ----------------------------------------------------------------- loading

    def downloads(self) -> list[Any]:
        """What loading fetches from the Hub on first use (nothing for a local folder); ConfigError naming the
        ``[local]`` extra when its packages are not installed."""
        extras.require(f"The local LLM {self.name}", _PACKAGES, extras.LOCAL, _INSTEAD)
        return first_use((self.model, "llm"))

    def load(self) -> None:
        """Load the tokenizer and model once (thread-safe); ConfigError when they cannot be loaded."""
        if self._loaded is not None:
            return
        with self._load_lock:
            if self._loaded is None:
                self._loaded = self._load()

    def _load(self) -> tuple[Any, Any, Any]:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as err:
            raise ConfigError(
                f"The local LLM {self.name} needs torch and transformers ({err}). Install them with "
                f"`{extras.LOCAL}`, or choose another backend with --llm / LESSONFORGE_LLM."
            ) from None
        try:
            import llguidance.hf
        except ImportError:
            raise ConfigError(
                f"The local LLM {self.name} needs llguidance for schema-constrained decoding. Install it with "
                f"`{extras.LOCAL}`."
            ) from None
        self._check_available()
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            with quiet_progress():
                cache = str(hub_cache_dir())  # the environment's cache, read now (HF_HUB_CACHE, HF_HOME)
                tokenizer = AutoTokenizer.from_pretrained(self.model, cache_dir=cache)
                model = AutoModelForCausalLM.from_pretrained(self.model, dtype=dtype, cache_dir=cache)
            model.to(device)  # type: ignore[arg-type]  # transformers types .to oddly
        except OSError as err:
            raise ConfigError(
                f"Cannot load the local LLM {self.model!r}: {_short(err)}. Check the model id (a Hugging Face "
                f"repository or a local folder), run `{PULL_HINT}` while online, or choose another backend "
                "with --llm / LESSONFORGE_LLM."
            ) from None
        except (RuntimeError, ValueError) as err:
            raise ConfigError(
                f"Cannot load the local LLM {self.model!r} on {device}: {_short(err)}. Pick another device "
                f"(--device cpu) or a smaller model (local:{LOCAL_LLM_LIGHT})."
            ) from None
        model.eval()
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"{self.model!r} has no chat template, so it is not an instruct/chat model. Use one that is, "
                f"e.g. local:{LOCAL_LLM} or local:{LOCAL_LLM_LIGHT}."
            )
        eos = _eos_ids(model, tokenizer)
        if not eos:
            raise ConfigError(f"{self.model!r} declares no end-of-sequence token; use another model.")
        n_vocab = max(int(getattr(model.config, "vocab_size", 0) or 0), len(tokenizer))
        try:
            ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=n_vocab, eos_token=eos)  # type: ignore[arg-type]
        except ValueError as err:
            raise ConfigError(
                f"{self.model!r}'s tokenizer cannot drive constrained decoding ({err}); it needs a fast "
                "(tokenizer.json) tokenizer. Use another model."
            ) from None
        log.info("%s loaded on %s (%s, vocab %d)", self.name, device, dtype, n_vocab)
        return tokenizer, model, ll_tokenizer

    def _check_available(self) -> None:
        """ConfigError, saying exactly what is missing, when offline and the model is not cached."""
        if Path(self.model).expanduser().is_dir():
            return
        from lessonforge.tools.hub import hf_offline, is_cached

        if hf_offline() and not is_cached(self.model, ("config.json",)):
            raise ConfigError(
                f"The local LLM {self.model!r} is not in the Hugging Face cache "
                f"({os.environ.get('HF_HOME') or '~/.cache/huggingface'}) and HF_HUB_OFFLINE is set, so it "
                f"cannot be downloaded. Run `{PULL_HINT} {self.model}` while online, or unset HF_HUB_OFFLINE."
            )

    # ----------------------------------------------------------------- public API

    async def structured(self, messages: list[Message], schema: type[T]) -> T:
        """Generate a reply constrained to ``schema``; repair validator errors up to ``max_repairs`` times."""
        stop = threading.Event()
        try:
            return await asyncio.to_thread(self._structured_sync, list(messages), schema, stop)
        except asyncio.CancelledError:
            stop.set()  # the worker thread stops at its next token
            raise

    def grammar_schema(self, schema: type[T]) -> dict[str, Any]:
        """The JSON schema decoding is constrained to: strict, with bounded strings and arrays."""
        return bound_schema(strict_json_schema(schema), self.max_string_chars, self.max_items)

    # ----------------------------------------------------------------- internals

    def _structured_sync(self, messages: list[Message], schema: type[T], stop: threading.Event) -> T:
        self.load()
        target = self.grammar_schema(schema)
        grammar = self._grammar(schema, target, cache=True)
        convo = self._chat(messages, schema)
        words = expected_words()
        expected = self.lengths.estimate(self.model, schema.__name__, words)
        repairs = 0
        while True:
            text, complete, used = self._generate(convo, grammar, stop, expected)
            if stop.is_set():
                raise LLMError(f"{self.name}: generation of {schema.__name__} was cancelled.")
            if complete:
                try:
                    reply = schema.model_validate_json(text)
                    self.lengths.record(self.model, schema.__name__, words, used)
                    return reply
                except ValidationError as err:
                    error = summarize_validation(err)
                    if require_items(target, text, err):  # empty lists a validator rejected: forbid them now
                        grammar = self._grammar(schema, target, cache=False)
                ask = (f"Your reply is not a valid {schema.__name__} JSON object:\n{error}\n"
                       "Reply again with the corrected JSON object only.")
            else:
                error = f"the reply was cut off after {self.max_new_tokens} tokens"
                ask = ("Your reply was cut off at the output token limit. Answer again with the complete JSON "
                       "object, keeping every text field shorter.")
            if repairs >= self.max_repairs:
                raise LLMError(
                    f"{self.name} did not return a valid {schema.__name__} after {repairs + 1} attempt(s); last "
                    f"error:\n{error}\nUse a larger model (e.g. --llm local:{LOCAL_LLM_GPU}), raise "
                    "max_new_tokens, or ask for a shorter lesson."
                )
            repairs += 1
            log.info("%s: invalid %s reply, repair %d/%d:\n%s", self.name, schema.__name__, repairs,
                     self.max_repairs, error)
            convo = convo + [{"role": "assistant", "content": text}, {"role": "user", "content": ask}]

    def _grammar(self, schema: type[T], target: dict[str, Any], *, cache: bool) -> str:
        grammar = self._grammars.get(schema) if cache else None
        if grammar is None:
            from llguidance import LLMatcher

            tokenizer = self._loaded[2]  # type: ignore[index]
            grammar = LLMatcher.grammar_from_json_schema(
                target,
                overrides={"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"},
            )
            is_error, notes = LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
            if is_error:
                raise LLMError(
                    f"{schema.__name__}'s JSON schema cannot be compiled for constrained decoding: "
                    f"{'; '.join(notes)}. Use an OpenAI-compatible backend (--llm openai:...) for this schema."
                )
            if cache:
                self._grammars[schema] = grammar
        return grammar

    def _chat(self, messages: list[Message], schema: type[T]) -> list[dict[str, str]]:
        convo = [{"role": m.role, "content": _text(m.content)} for m in messages]
        if self.schema_in_prompt:
            note = ("Reply with one JSON object only, compact, matching this JSON schema:\n"
                    + json.dumps(self.grammar_schema(schema), separators=(",", ":")))
            if convo and convo[0]["role"] == "system":
                convo[0] = {"role": "system", "content": f"{convo[0]['content']}\n\n{note}"}
            else:
                convo.insert(0, {"role": "system", "content": note})
        return convo

    def _prompt_ids(self, convo: list[dict[str, str]]) -> list[int]:
        tokenizer = self._loaded[0]  # type: ignore[index]
        extra = {"enable_thinking": False} if "enable_thinking" in str(tokenizer.chat_template) else {}
        text = tokenizer.apply_chat_template(convo, tokenize=False, add_generation_prompt=True, **extra)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def _generate(self, convo: list[dict[str, str]], grammar: str, stop: threading.Event,
                  expected: int | None = None) -> tuple[str, bool, int]:
        """One constrained generation: (decoded text, whether the grammar was completed, tokens)."""
        import torch
        from llguidance import LLMatcher
        from transformers import (
            GenerationConfig,
            LogitsProcessorList,
            StoppingCriteriaList,
        )

        tokenizer, model, ll_tokenizer = self._loaded  # type: ignore[misc]
        ids = self._prompt_ids(convo)
        matcher = LLMatcher(ll_tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise LLMError(f"{self.name}: the output grammar failed: {matcher.get_error()}.")
        eos = list(ll_tokenizer.eos_tokens)
        if expected is not None:
            expected = min(expected, self.max_new_tokens)
        processor = GrammarProcessor(matcher, len(ids), self.on_tokens, stop, expected)
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=self.temperature > 0,
            temperature=self.temperature if self.temperature > 0 else None,
            top_p=None, top_k=None,
            eos_token_id=eos,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0],
        )
        input_ids = torch.tensor([ids], dtype=torch.long, device=model.device)
        with self._run_lock, torch.inference_mode():
            if self.seed is not None:
                torch.manual_seed(self.seed)
            out = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=config,
                logits_processor=LogitsProcessorList([processor]),
                stopping_criteria=StoppingCriteriaList([processor.stopping]),
            )
        new = out[0, len(ids):].tolist()
        processor.finish(new)
        if matcher.is_error():
            raise LLMError(f"{self.name}: constrained decoding failed: {matcher.get_error()}. Retry, or use "
                           "another model.")
        body = [t for t in new if t not in eos and t != config.pad_token_id]
        text = tokenizer.decode(body, skip_special_tokens=True)
        self.usage.prompt_tokens += len(ids)
        self.usage.completion_tokens += len(new)
        self.usage.calls += 1
        return text, matcher.is_accepting(), len(body)


class ReplyLengths:
    """How long a model's replies to a schema run, measured and kept between runs (``llm.json``).

    With the caller's expected word count the estimate is ``words * tokens_per_word``, where the
    ratio (JSON keys and punctuation included) is this model's measured one for the schema, or
    ``TOKENS_PER_WORD`` before the first reply; without it, the last replies' length. Each reply
    moves the figures halfway to what it measured, so they follow a changed prompt quickly.
    """

    TOKENS_PER_WORD = 1.8

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path or user_cache_dir() / "llm.json"

    def estimate(self, model: str, schema: str, words: int | None) -> int | None:
        entry = read_state(self.path).get(f"{model}|{schema}", {})
        if words:
            return max(1, round(words * float(entry.get("tokens_per_word", self.TOKENS_PER_WORD))))
        tokens = entry.get("tokens")
        return round(float(tokens)) if tokens else None

    def record(self, model: str, schema: str, words: int | None, tokens: int) -> None:
        """Add one finished reply (best effort: an unwritable cache never fails a lesson)."""
        if tokens <= 0:
            return
        data = read_state(self.path)
        entry = data.setdefault(f"{model}|{schema}", {})
        entry["tokens"] = _toward(entry.get("tokens"), float(tokens))
        if words:
            entry["tokens_per_word"] = _toward(entry.get("tokens_per_word"), tokens / words)
        write_state(self.path, data)


def _toward(old: float | None, new: float) -> float:
    return new if old is None else (float(old) + new) / 2


class GrammarProcessor:
    """A transformers logits processor that lets through only the tokens an llguidance matcher allows.

    It feeds each sampled token to the matcher (batch size 1), masks the next step's logits, reports
    progress (tokens so far, tokens per second, the expected total) and, through ``stopping``, ends
    generation when the caller cancels.
    """

    def __init__(self, matcher: Any, prompt_len: int, on_tokens: Callable[[int, float, int | None], None] | None,
                 stop: threading.Event, expected: int | None = None) -> None:
        self.matcher = matcher
        self.prompt_len = prompt_len
        self.on_tokens = on_tokens
        self.expected = expected
        self.stop = stop
        self.consumed = 0
        self.started = time.monotonic()
        self.first_step_at: float | None = None

    def _consume(self, token: int) -> None:
        if not self.matcher.is_stopped() and not self.matcher.consume_token(token):
            raise LLMError(f"constrained decoding: token {token} rejected ({self.matcher.get_error()}).")
        self.consumed += 1

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if input_ids.shape[0] != 1:
            raise LLMError("constrained decoding supports one sequence at a time (batch size 1).")
        generated = input_ids.shape[1] - self.prompt_len
        while self.consumed < generated:
            self._consume(int(input_ids[0, self.prompt_len + self.consumed]))
        now = time.monotonic()
        if generated == 0:
            self.first_step_at = now  # the prompt is processed: decoding starts here
        elif self.on_tokens is not None:
            elapsed = now - (self.first_step_at or self.started)
            self.on_tokens(generated, generated / elapsed if elapsed > 0 else 0.0, self.expected)
        bias = self.matcher.compute_logit_bias()
        if self.matcher.is_error():
            raise LLMError(f"constrained decoding failed: {self.matcher.get_error()}.")
        allowed = torch.frombuffer(bytearray(bias), dtype=torch.uint8).to(scores.device) > 0
        vocab = scores.shape[-1]
        if allowed.numel() < vocab:
            allowed = torch.cat([allowed, allowed.new_zeros(vocab - allowed.numel())])
        return scores.masked_fill(~allowed[:vocab].unsqueeze(0), float("-inf"))

    def stopping(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.stop.is_set(), dtype=torch.bool, device=input_ids.device)

    def finish(self, new_tokens: list[int]) -> None:
        """Feed the last sampled token(s), which no later logits call saw."""
        for token in new_tokens[self.consumed:]:
            if self.matcher.is_stopped():
                break
            self._consume(token)


# --------------------------------------------------------------------------- helpers


def bound_schema(schema: dict[str, Any], max_string_chars: int | None, max_items: int | None,
                 bound_numbers: bool = True) -> dict[str, Any]:
    """A copy of ``schema`` where strings without a length bound get ``maxLength``, arrays get at most
    ``maxItems`` items (None leaves that kind unbounded) and numbers get a range (+-1e9) and
    at most three decimals."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: walk(value) for key, value in node.items()}
        types = node.get("type")
        types = types if isinstance(types, list) else [types]
        free_text = not any(k in node for k in ("enum", "const", "pattern", "format"))
        if "string" in types and free_text and max_string_chars is not None:  # the tighter bound
            out["maxLength"] = min(int(node.get("maxLength", max_string_chars)), max_string_chars)
        if "array" in types and max_items is not None:  # the tighter of the schema's bound and ours
            bound = min(int(node.get("maxItems", max_items)), max_items)
            out["maxItems"] = max(bound, int(node.get("minItems", 0)))
        if ("number" in types or "integer" in types) and bound_numbers:
            # JSON allows endless digits; a weak model may repeat one until the budget runs out
            out.setdefault("minimum", -NUMBER_LIMIT)
            out.setdefault("maximum", NUMBER_LIMIT)
            if "number" in types and "multipleOf" not in node:
                out["multipleOf"] = NUMBER_STEP
        return out

    return walk(deepcopy(schema))


def require_items(schema: dict[str, Any], text: str, err: ValidationError) -> bool:
    """Add ``minItems: 1`` (in place) to each array of ``schema`` whose empty value in ``text`` a
    validator rejected; True when any was added. Weak models often leave lists empty, and the
    constraint makes the repair attempt unable to repeat that."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    changed = False
    for item in err.errors(include_url=False):
        node, value = schema, data
        try:
            for part in item.get("loc", ()):
                node = _array_or_object(schema, node)
                if isinstance(part, int):
                    node, value = node["items"], value[part]
                else:
                    node, value = node["properties"][part], value[part]
            node = _array_or_object(schema, node)
        except (KeyError, IndexError, TypeError):
            continue
        if value == [] and node.get("type") == "array" and not node.get("minItems"):
            node["minItems"] = 1
            if node.get("maxItems", 1) < 1:
                node["maxItems"] = 1
            changed = True
    return changed


def _array_or_object(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with ``$ref`` followed and a nullable ``anyOf`` narrowed to its non-null branch."""
    for _ in range(32):
        if "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        elif isinstance(node.get("anyOf"), list):
            branches = [b for b in node["anyOf"] if b.get("type") != "null"]
            if len(branches) != 1:
                return node
            node = branches[0]
        else:
            return node
    return node


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, int) and item not in ids:
                ids.append(item)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def _text(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    parts = [part.get("text", "") for part in content if part.get("type") == "text"]
    if len(parts) != len(content):
        raise ConfigError("The local LLM reads text only; this request includes images. Use --llm openai:... for it.")
    return "\n".join(parts)


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"LocalLLM option {name} must be an integer >= {minimum}, got {value!r}.")
