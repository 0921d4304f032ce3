"""What every node uses: progress events, asking the LLM for a schema, progress saved to lesson.json."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from langgraph.config import get_stream_writer
from pydantic import BaseModel

from lessonforge import prompts
from lessonforge.agent.context import Context
from lessonforge.agent.project import Manifest
from lessonforge.agent.state import (
    LessonRequest,
)
from lessonforge.tools.base import (
    ConfigError,
    Message,
    ProgressEvent,
    expecting,
)
from lessonforge.tools.cache import content_key


def derive_seed(base: int, prompt: str, attempt: int) -> int:
    """A reproducible seed per scene and attempt.

    It follows the scene's picture prompt, not its position, so moving or inserting scenes keeps
    every picture (and its cache entry) where it was.
    """
    h = int(content_key("seed", prompt), 16)
    return (base * 1_000_003 + h + attempt * 104_729) % (2**31 - 1)


def emit(stage: str, message: str = "", **kw: Any) -> None:
    """Send a progress event on the graph's custom stream (no-op outside a graph run)."""
    try:
        writer = get_stream_writer()
    except (RuntimeError, KeyError):
        return
    writer(dataclasses.asdict(ProgressEvent(stage=stage, message=message, **kw)))


async def ask(ctx: Context, template: str, schema: type[BaseModel], *, expect_words: int | None = None,
              **values: Any) -> Any:
    """Ask the LLM for ``schema`` with a prompt template; ``expect_words`` is about how many words of
    text the reply will hold (a local model's progress ETA comes from it)."""
    if ctx.llm is None:
        raise ConfigError(
            "this step needs an LLM but none is configured; pass --llm BACKEND:MODEL or set "
            "OPENAI_API_KEY / OPENAI_BASE_URL"
        )
    system, user = await asyncio.to_thread(prompts.messages, template, **values)  # read once, from disk
    with expecting(expect_words):
        return await ctx.llm.structured([Message("system", system), Message("user", user)], schema)


def style_line(req: LessonRequest) -> str:
    """The prompt's tone and style notes for the planner and the writer ('' adds nothing to their prompts)."""
    return f"Notes from the person who asked for this lesson, to follow: {req.style}" if req.style else ""


async def _save_progress(ctx: Context, request: Any, **fields: Any) -> None:
    """Keep lesson.json current as stages finish, so partial work is visible and resumable."""
    await asyncio.to_thread(_write_progress, ctx, request, **fields)


def _write_progress(ctx: Context, request: Any, **fields: Any) -> None:
    project = ctx.project
    manifest = project.load() if project.exists() else Manifest(request=request)
    if manifest.request != request:
        manifest = Manifest(request=request)
    if ctx.manifest is not None:  # this run's backends and settings, from its first step on
        manifest.backends, manifest.settings = ctx.manifest.backends, ctx.manifest.settings
    for k, v in fields.items():
        setattr(manifest, k, v)
    project.save(manifest)


def _load_rgb(path: Path) -> Any:
    """A picture from disk as RGB, keeping its text metadata (prompt, seed, model)."""
    from PIL import Image as PILImage

    with PILImage.open(path) as img:
        img.load()
        picture = img.convert("RGB")
        picture.info.update({k: v for k, v in img.info.items() if isinstance(v, str)})
    return picture
