"""Interfaces, result types and the error tree shared by every backend.

One interface per capability, each one method (or two):

    LLM.structured(messages, schema)      -> a validated pydantic object
    ImageGenerator.generate(requests)     -> one picture per request (batched)
    SpeechSynth.speak(text, voice, out)   -> audio file, duration, word timings
    Critic.judge(images, prompts, targets)-> one verdict per image

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


@runtime_checkable
class LLM(Protocol):
    name: str  # "openai:gpt-4.1-mini"

    async def structured(self, messages: list[Message], schema: type[T]) -> T: ...


@runtime_checkable
class ImageGenerator(Protocol):
    name: str

    async def generate(self, requests: Sequence[ImageRequest]) -> list[Image]: ...


@runtime_checkable
class SpeechSynth(Protocol):
    name: str

    async def speak(self, text: str, voice: str, out: Path) -> Speech:
        """Speak ``text`` into the WAV file ``out`` (written atomically) and return its timings."""
        ...

    def default_voice(self, language: str) -> str:
        """A voice of this backend that fits ``language`` (a BCP-47 code such as "en" or "fr-FR")."""
        ...


@runtime_checkable
class Critic(Protocol):
    name: str

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
