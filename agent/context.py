"""The graph's runtime context: the backends and the project a run works with.

Nodes receive backends through this context (LangGraph `Runtime[Context]`), never by importing a
concrete class, so a test or a dry run swaps in fakes without touching the graph.

`agent.run` builds a ready context (and checks every backend before any work). A context can also
arrive as plain JSON, as `langgraph dev` sends it — `{"out": "lessons/tides", "llm": "fake:"}`:
strings name backends as `backend:model`, and `ready()` builds what is missing from the settings.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tools import registry
from tools.base import LLM, Critic, ImageGenerator, SpeechSynth
from tools.batching import BatchedCritic
from tools.cached import CachedImages, CachedLLM, CachedSpeech
from tools.lexicon import Lexicon
from tools.speech_fallback import FallbackSpeech

from .config import Settings
from .project import Project, slugify

EventSink = Callable[[dict[str, Any]], None]


@dataclass
class Context:
    project: Project | None = None
    settings: Settings | None = None
    speech: SpeechSynth | str | None = None
    llm: LLM | str | None = None  # None in a ready context: no LLM may be called (render)
    images: ImageGenerator | str | None = None  # None: text-first slides
    critic: Critic | str | None = None  # None: pictures are not judged
    lexicon: Lexicon | None = None  # pronunciations, applied to speech only
    clips: Any = None  # a clip generator under the lesson's cost cap (tools.clips); None: clips are off
    out: str = ""  # output folder, for a context given as JSON
    fallbacks: list[str] = field(default_factory=list)
    is_ready: bool = False

    def ready(self, request: Any) -> Context:
        """This context with every backend built (once), for a context that arrived as JSON."""
        if self.is_ready:
            return self
        specs = {k: v for k, v in (("llm", self.llm), ("images", self.images), ("speech", self.speech),
                                   ("critic", self.critic)) if isinstance(v, str)}
        settings = self.settings or Settings.load(**specs)
        project = self.project or Project(self.out or slugify(request.topic))
        project.prepare()
        objects = {k: v for k, v in (("llm", self.llm), ("images", self.images), ("speech", self.speech),
                                     ("critic", self.critic)) if v is not None and not isinstance(v, str)}
        built = from_settings(settings, project, request.language, need_llm=True, **objects)
        for name in ("project", "settings", "speech", "llm", "images", "critic", "lexicon", "fallbacks", "clips"):
            setattr(self, name, getattr(built, name))
        self.is_ready = True
        return self


def create(kind: registry.Kind, spec: str, **options: Any) -> Any:
    """Build a backend, passing only the options its constructor accepts."""
    parsed = registry.parse(kind, spec)
    if parsed is None:
        return None
    factory = registry._resolve(kind, parsed.backend)
    try:
        params = inspect.signature(factory).parameters
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        options = {k: v for k, v in options.items() if v not in (None, "") and (accepts_any or k in params)}
    except (TypeError, ValueError):
        options = {}
    return factory(parsed.model, **options)


def create_critic(settings: Settings) -> Any:
    """The critic the settings name, with their acceptance floor and margin (None for ``none``)."""
    return create("critic", settings.critic, device=settings.device, floor=settings.critic_floor,
                  margin=settings.critic_margin)


def _token_progress(emit: EventSink) -> Callable[[int, float, int | None], None]:
    """Progress for a local LLM that writes a few tokens a second: every 16 tokens, with the rate and,
    when the reply's length can be estimated, the time left."""

    def on_tokens(n: int, rate: float, expected: int | None = None) -> None:
        if n % 16:
            return
        message = f"{n} tokens, {rate:.1f} tokens/s"
        left = None
        if expected and rate > 0:
            left = max(0, expected - n) / rate
            message = f"{n} of ~{expected} tokens, {rate:.1f} tokens/s, " + (
                f"about {_clock(left)} left" if n < expected else "finishing"
            )
        emit({"stage": "llm", "message": message,
              "data": {"tokens": n, "rate": rate, "expected": expected, "eta_s": left}})

    return on_tokens


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def from_settings(
    settings: Settings,
    project: Project,
    language: str,
    *,
    need_llm: bool,
    emit: EventSink | None = None,
    llm: Any = None,
    images: Any = None,
    speech: Any = None,
    critic: Any = None,
) -> Context:
    """Create the backends the settings name (or take the given ones) and wrap them in the cache.

    The speech service gets the offline fallback (recorded in ``Context.fallbacks`` and announced
    through ``emit``). Nothing is loaded or contacted here; `agent.run.preflight` does that.
    """
    emit = emit or (lambda e: None)
    store = project.store
    fallbacks: list[str] = []
    if need_llm:
        llm = CachedLLM(llm or create("llm", settings.llm_spec(), device=settings.device, on_tokens=_token_progress(emit)),
                        store)
    else:
        llm = None
    if images is None:
        images = create("images", settings.images, device=settings.device, quality=settings.image_quality)
    if critic is None and images is not None:
        critic = create_critic(settings)
    if speech is None:
        primary = CachedSpeech(create("speech", settings.speech), store)
        fb_spec = settings.speech_fallback
        fb = registry.parse("speech", fb_spec) if fb_spec else None
        if fb is not None and fb.backend != registry.parse("speech", settings.speech).backend:

            def on_fallback(message: str) -> None:
                fallbacks.append(message)
                emit({"stage": "narrate", "message": message, "level": "warning"})

            speech = FallbackSpeech(
                primary, CachedSpeech(create("speech", fb_spec), store), language=language, on_fallback=on_fallback
            )
        else:
            speech = primary
    else:
        speech = CachedSpeech(speech, store)
    return Context(
        project=project,
        settings=settings,
        lexicon=Lexicon.load(settings.lexicon) if settings.lexicon else None,
        speech=speech,
        llm=llm,
        images=CachedImages(images, store) if images is not None else None,
        critic=BatchedCritic(critic, store) if critic is not None else None,
        fallbacks=fallbacks,
        clips=create_clips(settings),
        is_ready=True,
    )


def create_clips(settings: Settings) -> Any:
    """The clip generator --clips names, under a fresh per-lesson cost cap (None when clips are off)."""
    from tools.clips import BudgetedClips, ClipBudget

    clips = create("clips", settings.clips, price_per_second=settings.clip_price)
    return BudgetedClips(clips, ClipBudget(settings.clip_budget)) if clips is not None else None
