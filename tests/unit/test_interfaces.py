"""The interfaces are the ones called: every backend derives from the base of its capability, the
wrappers (cache, batcher, fallback voice, cost cap) forward that interface, and the agent calls it
without probing."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import re
import time
from pathlib import Path
from typing import Any, Protocol

import pytest

from lessonforge.agent import prepare
from lessonforge.agent.context import Context
from lessonforge.agent.fakes import FakeLLM
from lessonforge.agent.request import make_request
from lessonforge.tools import registry
from lessonforge.tools.base import (
    CAPABILITY_BASES,
    LLM,
    ClipBackend,
    ConfigError,
    Critic,
    CriticBackend,
    ImageBackend,
    ImageGenerator,
    LLMBackend,
    SceneCritic,
    Speech,
    SpeechBackend,
    SpeechError,
    SpeechSynth,
    require_backend,
)
from lessonforge.tools.batching import BatchedCritic, MicroBatcher
from lessonforge.tools.cache import AssetStore
from lessonforge.tools.cached import CachedImages, CachedLLM, CachedSpeech
from lessonforge.tools.clips import BudgetedClips, ClipBudget, ClipGenerator
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech
from lessonforge.tools.speech.fallback import FallbackSpeech

PROTOCOLS: dict[str, Any] = {"llm": LLM, "images": ImageGenerator, "speech": SpeechSynth, "critic": Critic,
                             "clips": ClipGenerator}
ROOT = Path(__file__).resolve().parents[2]


def members(proto: type) -> set[str]:
    """The names a Protocol holds (its own and those of the Protocols it extends)."""
    out: set[str] = set()
    for klass in proto.__mro__:
        if klass in (object, Protocol) or not getattr(klass, "_is_protocol", False):
            continue
        out |= {n for n in vars(klass) if not n.startswith("_")} | set(getattr(klass, "__annotations__", {}))
    return out


def builtin_classes() -> list[tuple[str, str, type]]:
    """Every backend LessonForge registers in its entry-point table (plugins are not installed here)."""
    return [(kind, prefix, registry.resolve(kind, prefix)) for kind in registry.KINDS
            for prefix in registry.prefixes(kind) if prefix != "none"]


@pytest.mark.parametrize(("kind", "prefix", "cls"), builtin_classes(),
                         ids=lambda v: v.__name__ if isinstance(v, type) else v)
def test_every_registered_backend_derives_from_its_base_and_holds_its_protocol(kind, prefix, cls):
    assert issubclass(cls, CAPABILITY_BASES[kind]), f"{kind}:{prefix} -> {cls.__qualname__}"
    missing = {m for m in members(PROTOCOLS[kind]) if not hasattr(cls, m)}
    assert not missing, f"{cls.__qualname__} lacks {sorted(missing)}"
    if kind == "speech":  # one way to list voices: a coroutine everywhere (edge-tts asks a service)
        assert inspect.iscoroutinefunction(cls.voices)
    for name in ("check", "aclose"):
        assert inspect.iscoroutinefunction(getattr(cls, name)), f"{cls.__qualname__}.{name} is not async"


def test_the_objects_a_run_holds_satisfy_the_protocols_the_agent_calls(tmp_path):
    store = AssetStore(tmp_path)
    speech = FallbackSpeech(CachedSpeech(FakeSpeech(), store), CachedSpeech(FakeSpeech("b"), store), language="en")
    held = {
        LLM: [FakeLLM(), CachedLLM(FakeLLM(), store)],
        ImageGenerator: [FakeImages(), CachedImages(FakeImages(), store)],
        SpeechSynth: [FakeSpeech(), CachedSpeech(FakeSpeech(), store), speech],
        Critic: [FakeCritic(), BatchedCritic(FakeCritic(), store)],
        SceneCritic: [BatchedCritic(FakeCritic(), store)],
    }
    for proto, objects in held.items():
        for obj in objects:
            assert isinstance(obj, proto), f"{type(obj).__qualname__} is no {proto.__name__}"
    assert not isinstance(FakeCritic(), SceneCritic)  # scenes are given the batcher, never the bare critic


class Recorder:
    """Records the lifecycle calls a wrapper forwards."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, Any]] = []
        self.found: list[Any] = []  # nothing to fetch: the Hub is never asked here

    def downloads(self, *voice: str) -> list[Any]:
        self.calls.append(("downloads", voice))
        return self.found

    def load(self) -> None:
        self.calls.append(("load", None))

    async def check(self) -> None:
        self.calls.append(("check", None))

    async def aclose(self) -> None:
        self.calls.append(("aclose", None))


class RecLLM(Recorder, LLMBackend):
    local, service = True, True


class RecImages(Recorder, ImageBackend):
    shaped = True


class RecCritic(Recorder, CriticBackend):
    judges = "slide"


class RecClips(Recorder, ClipBackend):
    price_per_second = 0.25


class RecSpeech(Recorder, SpeechBackend):
    local = True
    voices_note = "notes"

    def __init__(self, name: str, *, fails: bool = False, refuses: str = "") -> None:
        super().__init__(name)
        self.fails, self.refuses = fails, refuses

    def default_voice(self, language: str) -> str:
        return f"{self.name}-{language}"

    async def voices(self, language: str | None = None) -> list[Any]:
        return [self.name]

    def prepare(self, voice: str = "") -> None:
        self.calls.append(("prepare", voice))

    def check_language(self, language: str) -> None:
        self.calls.append(("check_language", language))
        if language == self.refuses:
            raise ConfigError(f"{self.name} cannot speak {language!r}")

    async def speak(self, text: str, voice: str, out: Path) -> Speech:
        if self.fails:
            raise SpeechError(f"{self.name} is down")
        return Speech(out, 1.0, (), voice, self.name)


@pytest.mark.parametrize(("wrap", "cls"), [
    (lambda inner, store: CachedLLM(inner, store), RecLLM),
    (lambda inner, store: CachedImages(inner, store), RecImages),
    (lambda inner, store: BatchedCritic(inner, store), RecCritic),
    (lambda inner, store: BudgetedClips(inner, ClipBudget(1.0)), RecClips),
], ids=["cached-llm", "cached-images", "batched-critic", "budgeted-clips"])
def test_a_wrapper_forwards_the_lifecycle_of_what_it_wraps(tmp_path, wrap, cls):
    inner = cls("x:y")
    wrapper = wrap(inner, AssetStore(tmp_path))
    assert isinstance(wrapper, CAPABILITY_BASES[{RecLLM: "llm", RecImages: "images", RecCritic: "critic",
                                                 RecClips: "clips"}[cls]])
    assert wrapper.name == "x:y"
    assert wrapper.downloads() is inner.found
    wrapper.load()
    asyncio.run(wrapper.check())
    asyncio.run(wrapper.aclose())
    assert [c for c, _ in inner.calls] == ["downloads", "load", "check", "aclose"]
    assert (wrapper.local, wrapper.service) == (inner.local, inner.service)


def test_wrappers_forward_the_attributes_the_agent_reads(tmp_path):
    store = AssetStore(tmp_path)
    assert CachedImages(RecImages("i:"), store).shaped is True
    assert CachedImages(FakeImages(), store).shaped is False
    batched = BatchedCritic(RecCritic("c:"), store)
    assert batched.judges == "slide" and batched.scoring is False
    assert BatchedCritic(FakeCritic(floor=0.7, margin=0.1), store).scoring is True
    assert (BatchedCritic(FakeCritic(floor=0.7, margin=0.1), store).floor,
            BatchedCritic(FakeCritic(floor=0.7, margin=0.1), store).margin) == (0.7, 0.1)
    assert BudgetedClips(RecClips("v:"), ClipBudget(1.0)).price_per_second == 0.25
    llm = FakeLLM()
    assert CachedLLM(llm, store).usage is llm.usage


def test_cached_speech_forwards_the_voice_interface(tmp_path):
    inner = RecSpeech("s:")
    speech = CachedSpeech(inner, AssetStore(tmp_path))
    assert speech.downloads("v1") is inner.found
    speech.prepare("v1")
    speech.check_language("fr")
    speech.load()
    asyncio.run(speech.check())
    asyncio.run(speech.aclose())
    assert inner.calls == [("downloads", ("v1",)), ("prepare", "v1"), ("check_language", "fr"), ("load", None),
                           ("check", None), ("aclose", None)]
    assert speech.voices_note == "notes" and speech.local is True
    assert asyncio.run(speech.voices("en")) == ["s:"] and speech.default_voice("en") == "s:-en"


def test_a_fallback_voice_is_made_ready_only_when_it_is_needed(tmp_path):
    primary, fallback = RecSpeech("edge:", fails=True), RecSpeech("espeak:")
    speech = FallbackSpeech(primary, fallback, language="fr")
    request = make_request(topic="tides", language="fr")
    asyncio.run(prepare.preflight(Context(speech=speech), lambda e: None, request))
    assert ("prepare", "edge:-fr") in primary.calls and ("check_language", "fr") in primary.calls
    assert fallback.calls == []  # neither fetched, loaded nor asked before the primary fails
    asyncio.run(speech.speak("bonjour", "edge:-fr", tmp_path / "a.wav"))
    assert ("check_language", "fr") in fallback.calls and speech.using_fallback
    asyncio.run(speech.aclose())
    assert ("aclose", None) in primary.calls and ("aclose", None) in fallback.calls


def test_a_fallback_that_cannot_speak_the_language_is_no_fallback(tmp_path):
    speech = FallbackSpeech(RecSpeech("edge:", fails=True), RecSpeech("espeak:", refuses="ja"), language="ja")
    with pytest.raises(SpeechError, match="no fallback: espeak: cannot speak 'ja'"):
        asyncio.run(speech.speak("こんにちは", "v", tmp_path / "a.wav"))
    assert not speech.using_fallback


def test_preflight_loads_and_reaches_every_backend_through_its_wrapper(tmp_path):
    store = AssetStore(tmp_path)
    llm, images, critic = RecLLM("local:m"), RecImages("diffusers:m"), RecCritic("openai:v")
    speech = RecSpeech("piper:")
    ctx = Context(llm=CachedLLM(llm, store), images=CachedImages(images, store), critic=BatchedCritic(critic, store),
                  speech=CachedSpeech(speech, store))
    events: list[dict[str, Any]] = []
    asyncio.run(prepare.preflight(ctx, events.append, make_request(topic="tides", language="de")))
    assert [c for c, _ in llm.calls] == ["downloads", "check", "load"]
    assert [c for c, _ in images.calls] == ["downloads", "load"]
    assert [c for c, _ in critic.calls] == ["downloads", "load", "check"]
    assert ("prepare", "piper:-de") in speech.calls and ("downloads", ("piper:-de",)) in speech.calls
    said = [e["message"] for e in events]
    assert "Loading the local LLM local:m" in said and "Reaching the LLM local:m" in said
    assert "Loading the voice piper:-de (piper:)" in said
    assert not any("critic" in m for m in said)  # neither local nor behind a service: nothing to announce


def test_a_model_that_fails_to_load_names_the_way_around_it():
    class Missing(RecLLM):
        def load(self) -> None:
            raise ConfigError("the model org/m is not in the cache.")

    with pytest.raises(ConfigError, match="not in the cache. To use an OpenAI-compatible server instead"):
        asyncio.run(prepare.preflight(Context(llm=Missing("local:org/m")), lambda e: None))


def test_a_plugin_that_does_not_derive_from_the_base_is_a_config_error_naming_the_fix():
    class OldClips:
        name = "old:v"

        async def generate(self, request, out):
            raise AssertionError("never called")

    with pytest.raises(ConfigError, match=r"does not derive from lessonforge.tools.base.ClipBackend.*"
                                          r"class OldClips\(ClipBackend\)"):
        require_backend("clips", OldClips())
    assert require_backend("speech", FakeSpeech()) is not None


def test_the_context_is_built_once_and_never_changed():
    ctx = Context(llm=FakeLLM())
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.llm = None  # type: ignore[misc]
    assert asyncio.run(ctx.ready(None)) is ctx


def test_the_graph_builds_its_context_once_for_every_node_that_asks(tmp_path):
    from lessonforge.agent.graph_context import LessonContext

    context = LessonContext(out=str(tmp_path / "lesson"), llm="fake:", images="none", speech="fake:")
    request = make_request(topic="tides", minutes=0.5)

    async def go() -> list[Context]:
        return await asyncio.gather(*(context.ready(request) for _ in range(4)))

    built = asyncio.run(go())
    assert all(c is built[0] for c in built)
    assert built[0].owned and built[0].manifest is not None and built[0].note == "make 'tides'"


# --------------------------------------------------------------------------- one micro-batcher


def test_the_micro_batcher_runs_requests_of_one_key_together_and_a_full_batch_at_once():
    batches: list[list[tuple[str, int]]] = []

    def run_batch(items: list[tuple[str, int]]) -> list[Any]:
        batches.append(items)
        return [ValueError(f"bad {n}") if n < 0 else f"{k}{n}" for k, n in items]

    async def go() -> tuple[list[Any], float]:
        batcher: MicroBatcher[tuple[str, int], str] = MicroBatcher(run_batch, max_batch=2, window_s=5.0,
                                                                   key=lambda item: item[0])
        start = time.monotonic()
        got = await asyncio.gather(*(batcher.submit(i) for i in [("a", 1), ("b", 1), ("a", 2), ("b", -1)]),
                                   return_exceptions=True)
        return got, time.monotonic() - start

    got, took = asyncio.run(go())
    assert got[:3] == ["a1", "b1", "a2"] and isinstance(got[3], ValueError) and str(got[3]) == "bad -1"
    assert sorted(map(sorted, batches)) == [[("a", 1), ("a", 2)], [("b", -1), ("b", 1)]]
    assert took < 4.0  # full batches ran at once, not after the 5 s window


def test_the_image_model_and_the_critic_batch_through_the_one_micro_batcher():
    from lessonforge.tools.images import diffusers

    source = inspect.getsource(diffusers)
    assert "MicroBatcher(" in source and "class _Batcher" not in source
    assert "MicroBatcher(" in inspect.getsource(BatchedCritic)


# --------------------------------------------------------------------------- no probing


AGENT_FILES = ["agent/run.py", "agent/prepare.py", "agent/context.py", "agent/graph_context.py", "agent/doctor.py",
               "agent/executor.py", "agent/record.py", "evals/runner.py",
               *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "agent" / "nodes").glob("*.py"))]
PROBE = re.compile(r"getattr\((ctx|backend|inner|llm|speech|images|critic|clips|client|fallback|voice)\b|\b_inner\(")


@pytest.mark.parametrize("path", AGENT_FILES)
def test_the_agent_never_probes_a_backend(path):
    found = [line.strip() for line in (ROOT / path).read_text(encoding="utf-8").splitlines() if PROBE.search(line)]
    assert not found, f"{path} probes backends: {found}"


@pytest.mark.parametrize("path", ["tools/cached.py", "tools/batching.py", "tools/speech/fallback.py",
                                  "tools/clips/__init__.py", "tools/clips/veo.py", "tools/clips/openai.py",
                                  "tools/ray_serve.py"])
def test_no_wrapper_passes_attributes_through_unseen(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    assert "__getattr__" not in text and not PROBE.search(text)
