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
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from lessonforge.agent import checkpoint as checkpoints
from lessonforge.agent.config import Settings
from lessonforge.agent.context import Context, EventSink, close_backends, from_settings
from lessonforge.agent.graph import build_graph
from lessonforge.agent.nodes import even_targets, scenes_seconds
from lessonforge.agent.prepare import backend_names, preflight, start_manifest
from lessonforge.agent.project import Manifest, Project, slugify
from lessonforge.agent.record import record_failure
from lessonforge.agent.schemas import Script
from lessonforge.agent.state import LessonRequest, make_request  # noqa: F401  (re-exported)
from lessonforge.tools.base import ConfigError, LessonForgeError
from lessonforge.tools.cache import thread_to_end

if TYPE_CHECKING:
    from lessonforge.agent.understand import Understanding


def default_out(topic: str) -> Path:
    return Path(slugify(topic))


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
            return await _run_graph(graph_input, ctx, emit, on_review, saver)
    finally:
        await close_backends(*ctx.backends())


async def _run_graph(graph_input: dict[str, Any], ctx: Context, emit: EventSink,
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
        await thread_to_end(record_failure, ctx, err)
        raise
    recorded = project.load()  # lesson.json as the graph's last node completed it
    assert recorded.status == "done", "the graph ended without recording the lesson"
    return recorded


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
        manifest.backends = backend_names(settings, ctx)
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
