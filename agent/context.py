"""The live objects a run works with: the project, the settings and the backends.

Nodes receive backends through the graph's runtime context (LangGraph `Runtime`), never by importing
a concrete class, so a test or a dry run swaps in fakes without touching the graph. Each node asks
``await runtime.context.ready(request)`` for this `Context`:

- `lessonforge.agent.run` passes a `Context` it built and checked itself (``ready`` returns it as it is);
- LangGraph's server, Studio and ``graph.ainvoke(..., context={...})`` pass the plain JSON of
  `lessonforge.agent.graph_context.LessonContext`, which builds a `Context` once per run.

A `Context` is frozen: its backends (typed as the interfaces of `lessonforge.tools.base`, wrapped in the
cache) are fixed when it is built, and no node changes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lessonforge.agent.config import Settings
from lessonforge.agent.project import Manifest, Project
from lessonforge.tools import registry
from lessonforge.tools.base import LLM, ImageGenerator, SceneCritic, SpeechSynth, require_backend
from lessonforge.tools.batching import BatchedCritic
from lessonforge.tools.cached import CachedImages, CachedLLM, CachedSpeech
from lessonforge.tools.speech.fallback import FallbackSpeech
from lessonforge.tools.speech.lexicon import Lexicon

if TYPE_CHECKING:
    from lessonforge.tools.clips import ClipGenerator

EventSink = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Context:
    project: Project | None = None
    settings: Settings | None = None
    speech: SpeechSynth | None = None
    llm: LLM | None = None  # None: no LLM may be called (render)
    images: ImageGenerator | None = None  # None: text-first slides
    critic: SceneCritic | None = None  # None: pictures are not judged
    lexicon: Lexicon | None = None  # pronunciations, applied to speech only
    clips: ClipGenerator | None = None  # under the lesson's cost cap (lessonforge.tools.clips); None: clips are off
    fallbacks: list[str] = field(default_factory=list)  # filled by the fallback voice as it takes over
    manifest: Manifest | None = None  # lesson.json as the run began; the graph's last node completes it on disk
    note: str = ""  # what the finished lesson's version is called ("make 'tides'", "render lesson.json")
    owned: bool = False  # built by the graph itself, which closes the backends when the lesson is recorded
    release: Callable[[], None] | None = None  # the served graph's hold on the folder, let go once recorded

    def backends(self) -> tuple[Any, ...]:
        """Every backend the run holds (None where a capability is off), for closing."""
        return self.llm, self.speech, self.images, self.critic, self.clips

    async def ready(self, request: Any) -> Context:
        """This context: built and checked before the run."""
        return self


def create(kind: registry.Kind, spec: str, **options: Any) -> Any:
    """Build a backend from the run's settings. ``device`` and ``on_tokens`` go to the backends whose options
    declare them (local models); any other option that is set (not None or "") must be one the backend takes."""
    offered = {name: options.pop(name) for name in ("device", "on_tokens") if name in options}
    chosen = {name: value for name, value in options.items() if value not in (None, "")}
    return registry.create(kind, spec, offered=offered, **chosen)


def create_images(settings: Settings) -> Any:
    """The picture backend the settings name, at their device and picture quality (None for ``none``)."""
    return create("images", settings.images, device=settings.device,
                  quality=None if settings.image_quality == "auto" else settings.image_quality)


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
    through ``emit``). Nothing is loaded or contacted here; `lessonforge.agent.prepare.preflight` does that.
    """
    emit = emit or (lambda e: None)
    store = project.store
    fallbacks: list[str] = []
    if need_llm:
        llm = llm or create("llm", settings.llm_spec(), device=settings.device, on_tokens=_token_progress(emit))
        llm = CachedLLM(require_backend("llm", llm), store)
    else:
        llm = None
    if images is None:
        images = create_images(settings)
    if critic is None and images is not None:
        critic = create_critic(settings)
    speech_out: SpeechSynth
    if speech is None:
        primary = CachedSpeech(require_backend("speech", create("speech", settings.speech)), store)
        fb_spec = settings.speech_fallback
        fb = registry.parse("speech", fb_spec) if fb_spec else None
        if fb is not None and fb.backend != registry.parse("speech", settings.speech).backend:

            def on_fallback(message: str) -> None:
                fallbacks.append(message)
                emit({"stage": "narrate", "message": message, "level": "warning"})

            fallback = CachedSpeech(require_backend("speech", create("speech", fb_spec)), store)
            speech_out = FallbackSpeech(primary, fallback, language=language, on_fallback=on_fallback)
        else:
            speech_out = primary
    else:
        speech_out = CachedSpeech(require_backend("speech", speech), store)
    return Context(
        project=project,
        settings=settings,
        lexicon=Lexicon.load(settings.lexicon) if settings.lexicon else None,
        speech=speech_out,
        llm=llm,
        images=CachedImages(require_backend("images", images), store) if images is not None else None,
        critic=BatchedCritic(require_backend("critic", critic), store) if critic is not None else None,
        fallbacks=fallbacks,
        clips=create_clips(settings),
    )


def create_clips(settings: Settings) -> ClipGenerator | None:
    """The clip generator --clips names, under a fresh per-lesson cost cap (None when clips are off)."""
    from lessonforge.tools.clips import BudgetedClips, ClipBudget

    clips = create("clips", settings.clips, price_per_second=settings.clip_price)
    if clips is None:
        return None
    return BudgetedClips(require_backend("clips", clips), ClipBudget(settings.clip_budget))


async def close_backends(*backends: Any) -> None:
    """Close network clients while their event loop still runs (else they complain when collected)."""
    for backend in backends:
        if backend is not None:
            try:
                await backend.aclose()
            except Exception:
                pass
