"""The product's entry points: make a lesson, render one again from its manifest.

Both check everything they can before any work (input, output folder, backends), run the graph,
stream progress events to a callback, and leave `lesson.json` describing what exists on disk —
also when they fail, so a rerun resumes instead of starting over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from lessonforge.agent import checkpoint as checkpoints
from lessonforge.agent.config import Settings
from lessonforge.agent.context import Context, EventSink, close_backends, from_settings
from lessonforge.agent.graph import build_graph
from lessonforge.agent.nodes import even_targets, scenes_seconds
from lessonforge.agent.project import Manifest, Project, slugify
from lessonforge.agent.schemas import Script
from lessonforge.agent.state import LessonRequest, make_request  # noqa: F401  (re-exported)
from lessonforge.agent.understand import Understanding
from lessonforge.tools.base import LLM, ConfigError, LessonForgeError


def default_out(topic: str) -> Path:
    return Path(slugify(topic))


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
    from lessonforge.tools import hub as models

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


async def build_context(
    settings: Settings, project: Project, request: LessonRequest, *, need_llm: bool, emit: EventSink, **backends: Any
) -> Context:
    ctx = from_settings(settings, project, request.language, need_llm=need_llm, emit=emit, **backends)
    await preflight(ctx, emit, request)
    return ctx


ReviewHook = Callable[[dict[str, Any]], dict[str, Any]]


async def _run(graph_input: dict[str, Any], ctx: Context, manifest: Manifest, emit: EventSink, note: str,
               on_review: ReviewHook | None = None, checkpoint: bool | str | None = None) -> Manifest:
    """Run the graph; its last node (lessonforge.agent.record) completes ``manifest`` as lesson.json."""
    ctx = replace(ctx, manifest=manifest, note=note)
    try:
        async with checkpoints.open_saver(checkpoint, ctx.project) as saver:
            return await _run_graph(graph_input, ctx, manifest, emit, on_review, saver)
    finally:
        await close_backends(*ctx.backends())


async def _run_graph(graph_input: dict[str, Any], ctx: Context, manifest: Manifest, emit: EventSink,
                     on_review: ReviewHook | None, saver: Any = None) -> Manifest:
    project = ctx.project
    # a review pauses the graph (LangGraph interrupt), which needs a checkpointer to resume from
    graph = build_graph(checkpointer=saver or (InMemorySaver() if on_review is not None else None))
    step: Any = {**graph_input, "review": on_review is not None}
    thread = checkpoints.thread_id(step, ctx.settings) if saver is not None else "make"
    config: dict[str, Any] = {"recursion_limit": 50 + 4 * ctx.settings.max_attempts,
                              "configurable": {"thread_id": thread}}
    options: dict[str, Any] = {}
    if saver is not None:  # every finished step is saved before the next starts; a cut-short run resumes
        options["durability"] = "sync"
        snapshot = await graph.aget_state(config)
        if snapshot.next:
            step = None
            emit({"stage": "resume", "message": f"Resuming at {', '.join(sorted(set(snapshot.next)))}; "
                  "finished steps are kept", "data": {"next": list(snapshot.next)}})
    try:
        while True:
            async for _ns, chunk in graph.astream(step, config, context=ctx, stream_mode="custom", subgraphs=True,
                                                  **options):
                emit(chunk)
            if on_review is None:
                break
            snapshot = await graph.aget_state(config)
            if not snapshot.interrupts:
                break
            emit({"stage": "review", "message": "Waiting for your review of the outline"})
            answer = await asyncio.to_thread(on_review, snapshot.interrupts[0].value["outline"])
            step = Command(resume=answer)
    except (LessonForgeError, OSError) as err:
        try:  # record the failure (the disk may still be full: then lesson.json stays as it was)
            manifest = project.load() if project.exists() else manifest
            manifest.status, manifest.error = "failed", str(err)
            manifest.fallbacks = list(ctx.fallbacks)
            project.save(manifest)
        except (OSError, LessonForgeError):
            pass
        raise
    recorded = project.load()  # lesson.json as the graph's last node completed it
    assert recorded.status == "done", "the graph ended without recording the lesson"
    return recorded


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
    manifest.backends = _backends(settings, ctx)
    manifest.settings = settings.model_dump()
    return manifest


def _backends(settings: Settings, ctx: Context) -> dict[str, str]:
    return {
        "llm": ctx.llm.name if ctx.llm is not None else "",
        "images": ctx.images.name if ctx.images is not None else "none",
        "speech": ctx.speech.name,
        "speech_fallback": settings.speech_fallback,
        "critic": ctx.critic.name if ctx.critic is not None else "none",
    } | ({"clips": ctx.clips.name} if ctx.clips is not None else {})


async def make(
    request: LessonRequest,
    settings: Settings,
    out: Path | str | None = None,
    *,
    script: Script | None = None,
    on_event: EventSink | None = None,
    on_review: ReviewHook | None = None,
    understood: Understanding | None = None,
    checkpoint: bool | str | None = None,
    **backends: Any,
) -> Manifest:
    """Topic -> lesson. With ``script`` the LLM is not asked to plan or write (it may still fit).

    ``on_review`` (for --review) is shown the outline before anything is produced; it returns
    ``{"approve": True}`` or ``{"approve": False, "feedback": "..."}`` for a new outline.
    ``understood`` (a one-shot prompt and how it was read) is recorded in lesson.json.
    ``checkpoint`` (True: SQLite in the project; a Postgres DSN) saves every finished step of the
    graph, so the same lesson started again after its process was lost resumes where it stopped
    (`lessonforge.agent.checkpoint`).
    """
    emit = on_event or (lambda e: None)
    project = Project(out if out is not None else default_out(request.topic))
    fresh = not project.root.exists()
    project.prepare()
    try:
        return await _make(project, request, settings, script, emit, on_review, understood, checkpoint, **backends)
    except BaseException:
        if fresh:  # a start that failed before any work (no LLM, a model missing...) leaves no folder
            project.discard_if_unused()
        raise


async def _make(project: Project, request: LessonRequest, settings: Settings, script: Script | None,
                emit: EventSink, on_review: ReviewHook | None, understood: Understanding | None,
                checkpoint: bool | str | None, **backends: Any) -> Manifest:
    with project.lock():
        ctx = await build_context(
            settings, project, request, need_llm=script is None or "llm" in backends, emit=emit, **backends
        )
        manifest = start_manifest(project, request, settings, ctx, understood=understood)
        graph_input: dict[str, Any] = {"request": request, "fit_duration": True}
        if script is not None:
            graph_input["script"] = script
        return await _run(graph_input, ctx, manifest, emit, f"make {request.topic!r}",
                          on_review=on_review if script is None else None, checkpoint=checkpoint)


async def render(
    out: Path | str,
    settings: Settings | None = None,
    *,
    on_event: EventSink | None = None,
    **backends: Any,
) -> Manifest:
    """Rebuild the video from `lesson.json` with no LLM call; hand edits to scenes are honoured."""
    project = Project(out)
    manifest = project.load()
    if manifest.script is None and not manifest.scenes:
        raise ConfigError(
            f"{project.manifest_path} has no script yet (status {manifest.status!r}); "
            "run lessonforge make again to finish it"
        )
    script = manifest.script
    if manifest.scenes:  # the per-scene records are what a user edits by hand
        title = script.title if script else manifest.request.topic
        script = Script(title=title, scenes=[r.draft() for r in manifest.scenes])
    assert script is not None
    return await produce(project, manifest, manifest.request, script, settings, note="render lesson.json",
                         on_event=on_event, **backends)


async def produce(
    project: Project,
    manifest: Manifest,
    request: LessonRequest,
    script: Script,
    settings: Settings | None = None,
    *,
    note: str,
    fit_duration: bool = False,
    on_event: EventSink | None = None,
    **backends: Any,
) -> Manifest:
    """Produce a given script (after an edit, an undo or a hand edit): only what changed is made again.

    No LLM is needed unless ``fit_duration`` asks for narration to be refitted to a new length.
    """
    emit = on_event or (lambda e: None)
    if settings is None:
        settings = Settings.load(**{k: v for k, v in manifest.settings.items() if k in Settings.model_fields})
    project.prepare()
    with project.lock():
        need_llm = fit_duration or "llm" in backends
        ctx = await build_context(settings, project, request, need_llm=need_llm, emit=emit, **backends)
        manifest = manifest.model_copy(deep=True)
        manifest.request = request
        manifest.backends = _backends(settings, ctx)
        manifest.settings = settings.model_dump()
        targets = manifest.targets if len(manifest.targets) == len(script.scenes) else []
        if fit_duration or not targets:
            targets = even_targets(scenes_seconds(request, settings), len(script.scenes))
        graph_input = {
            "request": request,
            "outline": manifest.outline,
            "quiz": manifest.quiz,
            "script": script,
            "targets": targets,
            "tempo": 1.0 if fit_duration else (manifest.duration.tempo if manifest.duration else 1.0),
            "fit_duration": fit_duration,
        }
        return await _run({k: v for k, v in graph_input.items() if v is not None}, ctx, manifest, emit, note)


async def voices(language: str | None = None, speech: str | None = None) -> tuple[list[Any], str]:
    """Voices of the speech backend (the edge list when online, espeak-ng's offline) and a note."""
    from lessonforge.agent.context import create
    from lessonforge.tools.base import SpeechError, require_backend

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
