"""The graph's last node: lesson.json completed from the run's final state and kept as a new version.

It runs inside the graph, so a lesson made by ``lessonforge make``, by ``langgraph dev`` (Studio) or
by ``graph.ainvoke`` records the same manifest: backends, settings, timings and all.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from lessonforge.agent.context import Context, close_backends
from lessonforge.agent.project import Manifest, VideoRecord
from lessonforge.agent.schemas import Script
from lessonforge.agent.state import LessonState
from lessonforge.tools.base import LessonForgeError
from lessonforge.tools.cache import thread_to_end


def finish_manifest(ctx: Context, final: dict[str, Any]) -> Manifest:
    """Write the finished lesson.json (status "done") and keep it as a new version."""
    project = ctx.project
    manifest = (ctx.manifest or Manifest(request=final["request"])).model_copy(deep=True)
    scenes = [final["scenes"][k] for k in sorted(final.get("scenes", {}))]
    script: Script = final["script"]
    # the scene records are the lesson as produced; keep the script in step with them
    script = script.model_copy(update={"scenes": [r.draft() for r in scenes]})
    manifest.outline = final.get("outline") or manifest.outline
    manifest.quiz = final.get("quiz")
    manifest.script = script
    manifest.targets = list(final.get("targets", []))
    manifest.scenes = scenes
    manifest.duration = final.get("duration")
    manifest.video = VideoRecord.model_validate(final["video"]) if final.get("video") else None
    manifest.timings = {k: round(v, 3) for k, v in final.get("timings", {}).items()}
    manifest.warnings = list(final.get("warnings", []))
    manifest.fallbacks = list(ctx.fallbacks)
    usage = ctx.llm.usage if ctx.llm is not None else None
    if usage is not None:
        manifest.usage = {k: int(v) for k, v in vars(usage).items() if isinstance(v, int | float)}
    manifest.status, manifest.error = "done", ""
    project.save(manifest)
    project.add_version(manifest, ctx.note or f"make {manifest.request.topic!r}")
    return manifest


def record_failure(ctx: Context, err: BaseException) -> None:
    """lesson.json says the run failed, and why; what was made stays for a rerun to resume. (The disk
    may be full: then lesson.json stays as it was.)"""
    project = ctx.project
    try:
        manifest = project.load() if project.exists() else ctx.manifest
        if manifest is None:
            return
        manifest.status, manifest.error = "failed", str(err)
        manifest.fallbacks = list(ctx.fallbacks)
        project.save(manifest)
    except (OSError, LessonForgeError):
        pass


async def record(state: LessonState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Complete lesson.json; a context the graph built itself has its backends closed here."""
    ctx = await runtime.context.ready(state["request"])
    await asyncio.to_thread(finish_manifest, ctx, dict(state))  # the caller reads it back from lesson.json
    if ctx.owned:
        await close_backends(*ctx.backends())
    if ctx.release is not None:  # the served graph's hold on the lesson folder
        await thread_to_end(ctx.release)
    folder = await asyncio.to_thread(ctx.project.root.resolve)
    return {"lesson": str(folder)}
