"""Before the graph runs: every backend checked (the LLM reached, first-use models fetched with progress,
local models and the voice loaded), the lesson's manifest started, and the voices a speech backend offers.

The entry points (lessonforge.agent.run), the server's context (lessonforge.agent.graph_context) and the batch
executor all prepare through here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lessonforge.agent.config import Settings
from lessonforge.agent.context import Context, EventSink, create
from lessonforge.agent.project import Manifest, Project
from lessonforge.agent.state import LessonRequest
from lessonforge.tools import hub as models
from lessonforge.tools.base import LLM, ConfigError, SpeechError, require_backend


async def preflight(ctx: Context, emit: EventSink, request: LessonRequest | None = None) -> None:
    """Check every backend can work before any work is done (reach the LLM, fetch the local models a
    first use needs, load them and the local voice that will speak ``request``).

    Each backend (or its wrapper: the cache, the batcher, the fallback voice, which makes ready only the
    primary voice) answers for itself; one with nothing to fetch, load or reach does nothing."""
    await fetch_models(ctx, emit, request)
    await check_service(ctx.llm, emit)
    if ctx.llm is not None:  # a local model: loaded (or found missing) before any work
        if ctx.llm.local:
            emit({"stage": "check", "message": f"Loading the local LLM {ctx.llm.name}"})
        try:
            await asyncio.to_thread(ctx.llm.load)
        except ConfigError as err:
            raise ConfigError(
                f"{err} To use an OpenAI-compatible server instead, set OPENAI_API_KEY (OpenAI) or "
                "OPENAI_BASE_URL (Ollama, vLLM, llama.cpp, LM Studio), or pass --llm."
            ) from None
    for backend, what in ((ctx.images, "image model"), (ctx.critic, "critic")):
        if backend is not None:
            if backend.local:
                emit({"stage": "check", "message": f"Loading the {what} {backend.name}"})
            await asyncio.to_thread(backend.load)  # raises ConfigError naming the model and the fix
    if ctx.critic is not None:  # a critic behind a service (a vision LLM) must be reachable
        if ctx.critic.service:
            emit({"stage": "check", "message": f"Reaching the critic {ctx.critic.name}"})
        await ctx.critic.check()
    if ctx.speech is not None and request is not None:
        ctx.speech.check_language(request.language)  # a voice that cannot speak it is refused now
        if ctx.speech.local:  # a local voice: fetched and loaded before any work
            voice = request.voice or ctx.speech.default_voice(request.language)
            emit({"stage": "check", "message": f"Loading the voice {voice} ({ctx.speech.name})"})
            await asyncio.to_thread(ctx.speech.prepare, voice)


async def check_service(llm: LLM | None, emit: EventSink) -> None:
    """Reach an LLM service before any work (a local model is neither fetched nor loaded here)."""
    if llm is not None:
        if llm.service:
            emit({"stage": "check", "message": f"Reaching the LLM {llm.name}"})
        await llm.check()


NO_LOCAL_LLM = "set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (Ollama, vLLM, llama.cpp) for the LLM"


async def fetch_models(ctx: Context, emit: EventSink, request: LessonRequest | None = None) -> None:
    """Download, with progress, the Hub models the backends load that are not cached yet (first use).

    The user is told first what will be fetched and its size; later runs find them in the cache.
    """
    wanted: list[Any] = []
    instead: dict[str, str] = {}  # model id -> how to do without it
    for backend, alternative in ((ctx.llm, NO_LOCAL_LLM), (ctx.images, "--images none"), (ctx.critic, "--critic none")):
        if backend is not None:
            found = backend.downloads()
            wanted += found
            instead.update({info.id: alternative for info in found})
    if ctx.speech is not None and ctx.speech.local and request is not None:
        found = ctx.speech.downloads(request.voice or ctx.speech.default_voice(request.language))
        wanted += found
        instead.update({info.id: "--speech edge: or espeak:" for info in found})
    if not wanted:
        return
    plan = await asyncio.to_thread(models.plan_downloads, wanted)
    if not plan:
        return
    unreachable = [d for d in plan if not d.reachable]
    if unreachable:
        fixes = list(dict.fromkeys(instead[d.info.id] for d in unreachable))
        raise ConfigError(
            f"The Hugging Face Hub cannot be reached (or refused access), and these models are not in the cache "
            f"({models.hub_cache_dir()}): {', '.join(f'{d.info.id} ({d.size_text})' for d in unreachable)}. "
            f"Connect to the internet (or set HF_ENDPOINT to a mirror), or do without them: {'; '.join(fixes)}."
        )
    sizes = [d.size for d in plan]
    total = f", {models.human_size(sum(s or 0 for s in sizes) / 1e6)} in all" if len(plan) > 1 and all(sizes) else ""
    emit({"stage": "download",
          "message": (f"First use: downloading {', '.join(f'{d.info.id} ({d.size_text})' for d in plan)}{total} "
                      f"into {models.hub_cache_dir()}; later runs use the cached copy"),
          "data": {"models": [d.info.id for d in plan], "bytes": [d.size for d in plan]}})

    def progress(model_id: str, done: float, size: float, unit: str) -> None:
        emit({"stage": "download", "message": f"{model_id}: {models.progress_text(done, size, unit)}",
              "data": {"model": model_id, "done": done, "total": size, "unit": unit}})

    await asyncio.to_thread(models.pull, [d.info for d in plan], progress)


def start_manifest(project: Project, request: LessonRequest, settings: Settings, ctx: Context,
                   understood: Any = None) -> Manifest:
    """lesson.json for a new make: the request, the backends and the settings (written with the run's first
    progress, so a run that fails later records them too); a remake of the same request keeps its creation time."""
    previous = project.load() if project.exists() else None
    manifest = Manifest(request=request, understood=understood)
    if previous is not None and previous.request == request:
        manifest.created = previous.created
    if understood is not None:  # saved now, so the progress saves (which load this file) keep it
        if previous is not None and previous.request == request:
            if previous.understood != understood:
                project.save(previous.model_copy(update={"understood": understood}))
        else:
            project.save(manifest)
    manifest.backends = backend_names(settings, ctx)
    manifest.settings = settings.model_dump()
    return manifest


def backend_names(settings: Settings, ctx: Context) -> dict[str, str]:
    return {
        "llm": ctx.llm.name if ctx.llm is not None else "",
        "images": ctx.images.name if ctx.images is not None else "none",
        "speech": ctx.speech.name,
        "speech_fallback": settings.speech_fallback,
        "critic": ctx.critic.name if ctx.critic is not None else "none",
    } | ({"clips": ctx.clips.name} if ctx.clips is not None else {})


async def voices(language: str | None = None, speech: str | None = None) -> tuple[list[Any], str]:
    """Voices of the speech backend (the edge list when online, espeak-ng's offline) and a note."""
    settings = Settings.load(speech=speech)
    backend = require_backend("speech", create("speech", settings.speech))
    try:
        listed = await backend.voices(language)
        note = backend.voices_note
    except SpeechError as err:
        if not settings.speech_fallback:
            raise
        fallback = require_backend("speech", create("speech", settings.speech_fallback))
        note = f"{backend.name} is unreachable ({err}); these are the offline {fallback.name} voices"
        note += f". {fallback.voices_note}" if fallback.voices_note else ""
        listed = await fallback.voices(language)
    return list(listed), note
