"""Interfaces, result types and the error tree shared by every backend.

One interface per capability, each one method (or two):

    LLM.structured(messages, schema)      -> a validated pydantic object
    ImageGenerator.generate(requests)     -> one picture per request (batched)
    SpeechSynth.speak(text, voice, out)   -> audio file, duration, word timings
    Critic.judge(images, prompts, targets)-> one verdict per image

Every backend derives from :class:`Backend` (through the base of its capability: `LLMBackend`,
`ImageBackend`, `SpeechBackend`, `CriticBackend`, `ClipBackend`), which declares the lifecycle the
agent calls (``downloads``, ``load``, ``check``, ``aclose``) and every attribute it reads, each with
its default; the Protocols below hold exactly what the agent calls, so wrappers (cache, batcher,
fallback voice) forward those and nothing is probed.

Errors, all raised with a message that names the cause and the fix:

    LessonForgeError
     ├── ConfigError            bad input or settings, found before any work is done
     ├── ProviderError          a backend failed after its own retries
     │    ├── LLMError
     │    ├── ImageError
     │    ├── SpeechError
     │    │    └── SpeechUnavailable   the service cannot be reached (a fallback may take over)
     │    ├── CriticError
     │    └── ClipError            a motion clip failed, was refused or timed out (the scene gets a picture)
     └── RenderError            ffmpeg or the typesetter failed
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:  # Pillow is imported lazily by the backends that draw.
    from PIL.Image import Image as PILImage

T = TypeVar("T", bound=BaseModel)


# --------------------------------------------------------------------------- errors


class LessonForgeError(Exception):
    """Base of every error LessonForge raises on purpose. ``str(err)`` is for the user."""


class ConfigError(LessonForgeError):
    """Bad input or settings; raised before any work starts."""


class ProviderError(LessonForgeError):
    """A backend (LLM, images, speech, critic) failed after its own retries."""


class LLMError(ProviderError):
    pass


class ImageError(ProviderError):
    pass


class SpeechError(ProviderError):
    pass


class SpeechUnavailable(SpeechError):
    """The speech service cannot be reached at all (DNS, refused, 403, repeated 503)."""


class CriticError(ProviderError):
    pass


class ClipError(ProviderError):
    """A motion clip could not be had (failed, refused by the cost cap or the service, timed out)."""


class RenderError(LessonForgeError):
    pass


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str | list[dict[str, Any]]  # text, or content parts (text and image_url) for vision models

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Usage:
    """Tokens spent by one LLM call (0 when the backend cannot tell)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    seed: int
    width: int = 512
    height: int = 512
    negative_prompt: str = ""


@dataclass
class Image:
    """A generated picture and what produced it."""

    image: PILImage
    prompt: str
    seed: int
    model: str


@dataclass(frozen=True)
class WordTiming:
    """One spoken word; times in seconds from the start of the audio file."""

    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Speech:
    """A narration audio file (WAV, mono PCM) with its measured duration and word timings."""

    path: Path
    duration: float
    words: tuple[WordTiming, ...]
    voice: str
    backend: str  # the full "backend:model" spec that spoke it


@dataclass(frozen=True)
class Verdict:
    """A critic's judgement of one image.

    ``score`` is the image's score against its own prompt; ``scores`` holds its score against
    every prompt passed to ``judge`` (same order), so a report can show which scene it resembled.
    CLIP critics use CLIPScore (2.5 * max(cos, 0), range 0..2.5).
    """

    accepted: bool
    score: float
    scores: tuple[float, ...] = ()
    rank: int = 1  # 1 = its own prompt is the best match among all prompts
    reason: str = ""


@dataclass
class Voice:
    name: str
    language: str
    gender: str = ""
    backend: str = ""


@dataclass
class ProgressEvent:
    """One item of the progress stream (LangGraph custom stream), rendered by the CLI."""

    stage: str
    message: str = ""
    scene: int | None = None  # 1-based
    total: int | None = None
    attempt: int | None = None
    level: Literal["info", "warning", "error"] = "info"
    data: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- interfaces


_EXPECTED_WORDS: ContextVar[int | None] = ContextVar("lessonforge_expected_words", default=None)


@contextlib.contextmanager
def expecting(words: int | None) -> Iterator[None]:
    """For the LLM calls inside: about how many words of text the reply will hold.

    A hint for progress (a local model's ETA), never a limit; backends that do not report
    progress ignore it. It follows the call into worker threads (``asyncio.to_thread``).
    """
    token = _EXPECTED_WORDS.set(words if words and words > 0 else None)
    try:
        yield
    finally:
        _EXPECTED_WORDS.reset(token)


def expected_words() -> int | None:
    """The hint set by the innermost :func:`expecting`, if any."""
    return _EXPECTED_WORDS.get()


# --------------------------------------------------------------------------- the backend base


class Backend:
    """What every backend has besides its capability: a name and a lifecycle, each a no-op by default.

    ``downloads()`` lists what a first use fetches (`lessonforge.tools.hub.ModelInfo`), ``load()`` (blocking,
    run in a worker thread) loads a local model or raises ConfigError naming the fix, ``check()`` reaches a
    service before any work, ``aclose()`` closes network clients while their event loop runs.
    """

    name: str = ""  # the full "backend:model" spec
    local: bool = False  # runs a model on this machine: load() (prepare() for a voice) fetches and loads it
    service: bool = False  # works through a service: check() reaches it before any work

    def downloads(self) -> list[Any]:
        """What a first use downloads from the Hub (cached ones included: the caller plans the fetch)."""
        return []

    def load(self) -> None:
        """Load what the backend needs now (blocking), so a lesson does not fail at its first call."""
        return None

    async def check(self) -> None:
        """Reach the service behind the backend (ConfigError naming the fix when it cannot be)."""
        return None

    async def aclose(self) -> None:
        """Close network clients (while their event loop still runs)."""
        return None


class LLMBackend(Backend):
    usage: Any = None  # token totals (prompt_tokens, completion_tokens, calls); None: not counted


class ImageBackend(Backend):
    shaped: bool = False  # True: draws the picture in the shape the slide layout gives it (else a square)


class SpeechBackend(Backend):
    voices_note: str = ""  # shown under the voice list (what the voice names mean)

    def downloads(self, voice: str = "") -> list[Any]:
        """What speaking with ``voice`` (default: the backend's own) downloads on first use."""
        return []

    def prepare(self, voice: str = "") -> None:
        """Fetch and load ``voice`` now (blocking), so a lesson does not fail at its first narration."""
        return None

    def check_language(self, language: str) -> None:
        """ConfigError when the backend cannot speak ``language`` (a voice that would garble it)."""
        return None


class CriticBackend(Backend):
    judges: Literal["picture", "slide"] = "picture"  # "slide": judged as composed, as the viewer sees it
    scoring: bool = False  # True: ``scores`` gives the image x prompt matrix and the shared rule decides
    floor: float | None = None  # the acceptance floor (its scale is the critic's)
    margin: float | None = None  # how far its own prompt must beat the others

    def scores(self, images: Sequence[PILImage], prompts: Sequence[str]) -> Any:
        """The score of every image against every prompt (rows: images); only for a scoring critic."""
        raise CriticError(f"the critic {self.name} judges pictures without a score matrix; call judge()")


class ClipBackend(Backend):
    price_per_second: float = 0.0  # US dollars per second of clip, reserved under the lesson's cost cap


class Wrapper(Backend):
    """A backend around another (a cache, a batcher, a cost cap): its lifecycle is the inner backend's.

    Subclasses forward the capability's methods and attributes explicitly, so a wrapper holds the same
    interface as what it wraps and nothing reaches the inner backend unseen.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name

    @property
    def local(self) -> bool:  # type: ignore[override]
        return self.inner.local

    @property
    def service(self) -> bool:  # type: ignore[override]
        return self.inner.service

    def downloads(self) -> list[Any]:
        return self.inner.downloads()

    def load(self) -> None:
        self.inner.load()

    async def check(self) -> None:
        await self.inner.check()

    async def aclose(self) -> None:
        await self.inner.aclose()


class SpeechWrapper(Wrapper, SpeechBackend):
    """A voice around another (the cache, the fallback voice): the voice interface is the inner voice's."""

    inner: SpeechSynth

    @property
    def voices_note(self) -> str:  # type: ignore[override]
        return self.inner.voices_note

    def default_voice(self, language: str) -> str:
        return self.inner.default_voice(language)

    async def voices(self, language: str | None = None) -> list[Voice]:
        return await self.inner.voices(language)

    def downloads(self, voice: str = "") -> list[Any]:
        return self.inner.downloads(voice)

    def prepare(self, voice: str = "") -> None:
        self.inner.prepare(voice)

    def check_language(self, language: str) -> None:
        self.inner.check_language(language)


# --------------------------------------------------------------------------- what the agent calls


@runtime_checkable
class Lifecycle(Protocol):
    name: str
    local: bool
    service: bool

    def downloads(self) -> list[Any]: ...

    def load(self) -> None: ...

    async def check(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class LLM(Lifecycle, Protocol):
    usage: Any

    async def structured(self, messages: list[Message], schema: type[T]) -> T: ...


@runtime_checkable
class ImageGenerator(Lifecycle, Protocol):
    shaped: bool

    async def generate(self, requests: Sequence[ImageRequest]) -> list[Image]: ...


@runtime_checkable
class SpeechSynth(Protocol):
    name: str
    local: bool
    service: bool
    voices_note: str

    async def speak(self, text: str, voice: str, out: Path) -> Speech:
        """Speak ``text`` into the WAV file ``out`` (written atomically) and return its timings."""
        ...

    def default_voice(self, language: str) -> str:
        """A voice of this backend that fits ``language`` (a BCP-47 code such as "en" or "fr-FR")."""
        ...

    async def voices(self, language: str | None = None) -> list[Voice]: ...

    def downloads(self, voice: str = "") -> list[Any]: ...

    def load(self) -> None: ...

    def prepare(self, voice: str = "") -> None: ...

    def check_language(self, language: str) -> None: ...

    async def check(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Critic(Lifecycle, Protocol):
    judges: Literal["picture", "slide"]
    scoring: bool
    floor: float | None
    margin: float | None

    def scores(self, images: Sequence[PILImage], prompts: Sequence[str]) -> Any: ...

    def judge(
        self,
        images: Sequence[PILImage],
        prompts: Sequence[str],
        targets: Sequence[int] | None = None,
    ) -> list[Verdict]:
        """Judge ``images[i]`` against ``prompts[targets[i]]`` (default: ``prompts[i]``).

        Every other prompt is a contrast: a frame that matches another scene's prompt as well as
        its own does not show its own scene.
        """
        ...


@runtime_checkable
class SceneCritic(Critic, Protocol):
    """The critic as a scene calls it (`lessonforge.tools.batching.BatchedCritic` around a `Critic`):
    one picture at a time, batched with the other scenes' and cached behind."""

    async def judge_one(self, image: PILImage, prompts: Sequence[str], target: int) -> Verdict: ...


CAPABILITY_BASES: dict[str, type[Backend]] = {
    "llm": LLMBackend,
    "images": ImageBackend,
    "speech": SpeechBackend,
    "critic": CriticBackend,
    "clips": ClipBackend,
}


def require_backend(kind: str, backend: Any) -> Any:
    """``backend`` itself when it derives from its capability's base, else a ConfigError naming the fix
    (a plugin written before the base existed)."""
    base = CAPABILITY_BASES[kind]
    if not isinstance(backend, base):
        raise ConfigError(
            f"the {kind} backend {getattr(backend, 'name', type(backend).__name__)!r} ({type(backend).__qualname__}) "
            f"does not derive from lessonforge.tools.base.{base.__name__}; make its class "
            f"`class {type(backend).__name__}({base.__name__})`, which declares what LessonForge calls besides "
            f"the capability itself (downloads, load, check, aclose), each a no-op by default"
        )
    return backend
