"""``backend:model`` strings -> backend objects.

Built-in backends are listed here as import paths so nothing heavy is imported until used.
Plugins add prefixes through the entry-point group ``lessonforge.backends``; an entry point
named ``KIND.PREFIX`` (for instance ``speech.piper``) points at a class or factory called as
``factory(model, **options)``.

Every backend class takes the model (the part after the first colon, possibly empty) as its
first argument and exposes ``name``, the full spec.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from lessonforge.tools.base import ConfigError
from lessonforge.tools.defaults import OPENAI_LLM

Kind = Literal["llm", "images", "speech", "critic", "clips"]
KINDS: tuple[Kind, ...] = ("llm", "images", "speech", "critic", "clips")

_BUILTIN: dict[Kind, dict[str, str]] = {
    "llm": {
        "openai": "lessonforge.tools.llm.openai:OpenAILLM",
        "local": "lessonforge.tools.llm.local:LocalLLM",
        "fake": "lessonforge.tools.fakes:FakeLLM",
    },
    "images": {
        "diffusers": "lessonforge.tools.images.diffusers:DiffusersImages",
        "openai": "lessonforge.tools.images.openai:OpenAIImages",
        "fake": "lessonforge.tools.fakes:FakeImages",
        "ray": "lessonforge.tools.ray_serve:ServedImages",
    },
    "speech": {
        "edge": "lessonforge.tools.speech.edge:EdgeSpeech",
        "espeak": "lessonforge.tools.speech.espeak:EspeakSpeech",
        "openai": "lessonforge.tools.speech.openai:OpenAISpeech",
        "piper": "lessonforge.tools.speech.piper:PiperSpeech",
        "kokoro": "lessonforge.tools.speech.kokoro:KokoroSpeech",
        "fake": "lessonforge.tools.fakes:FakeSpeech",
    },
    "critic": {
        "clip": "lessonforge.tools.critic.clip:ClipCritic",
        "openai": "lessonforge.tools.critic.openai:OpenAICritic",
        "fake": "lessonforge.tools.fakes:FakeCritic",
        "ray": "lessonforge.tools.ray_serve:ServedCritic",
    },
    "clips": {
        "veo": "lessonforge.tools.clips:VeoClips",
        "videos": "lessonforge.tools.clips:OpenAIVideoClips",
    },
}

# "none" switches a capability off where that is meaningful.
_OPTIONAL: set[Kind] = {"images", "critic", "clips"}


@dataclass(frozen=True)
class Spec:
    kind: Kind
    backend: str
    model: str

    def __str__(self) -> str:
        return f"{self.backend}:{self.model}" if self.model else f"{self.backend}:"


def _plugins(kind: Kind) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for ep in entry_points(group="lessonforge.backends"):
        k, _, prefix = ep.name.partition(".")
        if k == kind and prefix:
            found[prefix] = ep
    return found


def prefixes(kind: Kind) -> list[str]:
    names = set(_BUILTIN[kind]) | set(_plugins(kind))
    if kind in _OPTIONAL:
        names.add("none")
    return sorted(names)


def parse(kind: Kind, spec: str) -> Spec | None:
    """Check a spec's syntax and prefix; ``None`` for "none" (capability switched off)."""
    text = (spec or "").strip()
    if text in ("none", "none:") and kind in _OPTIONAL:
        return None
    backend, sep, model = text.partition(":")
    backend = backend.strip().lower()
    if not backend:
        raise ConfigError(
            f"Empty {kind} backend. Name one as BACKEND:MODEL, e.g. --{_flag(kind)} "
            f"{_example(kind)} (known backends: {', '.join(prefixes(kind))})."
        )
    if backend not in _BUILTIN[kind] and backend not in _plugins(kind):
        raise ConfigError(
            f"Unknown {kind} backend {backend!r} in {text!r}. Known: {', '.join(prefixes(kind))}. "
            f"Write it as BACKEND:MODEL, e.g. --{_flag(kind)} {_example(kind)}."
        )
    return Spec(kind, backend, model.strip() if sep else "")


def _resolve(kind: Kind, backend: str) -> Callable[..., Any]:
    path = _BUILTIN[kind].get(backend)
    if path is not None:
        module, _, attr = path.partition(":")
        return getattr(importlib.import_module(module), attr)
    return _plugins(kind)[backend].load()


def create(kind: Kind, spec: str, **options: Any) -> Any | None:
    """Build the backend a spec names (``None`` for "none")."""
    parsed = parse(kind, spec)
    if parsed is None:
        return None
    factory = _resolve(kind, parsed.backend)
    return factory(parsed.model, **options)


def _flag(kind: Kind) -> str:
    return kind


def _example(kind: Kind) -> str:
    return {
        "llm": f"openai:{OPENAI_LLM}",
        "images": "diffusers:stabilityai/sd-turbo",
        "speech": "espeak:en-us",
        "critic": "clip:openai/clip-vit-base-patch32",
        "clips": "veo:veo-3.1-generate-preview",
    }[kind]
