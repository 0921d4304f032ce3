"""The graph's context schema: plain JSON, as LangGraph's server, Studio and `graph.ainvoke` send it.

    {"out": "tides", "llm": "openai:gpt-6-luna", "images": "none", "speech": "edge:"}

``out`` is the lesson folder (required); a relative one lies under ``$LESSONFORGE_LESSONS``
(default ``~/lessonforge``), wherever the server was started. Every other field is a setting of
`lessonforge.agent.config.Settings` (backends as ``BACKEND:MODEL``, options); one left out follows the same
``LESSONFORGE_*`` environment variables and defaults as ``lessonforge make``.

The context is checked when the run starts, before any node runs or anything is downloaded. The
first node that asks (``await context.ready(request)``) builds the live `lessonforge.agent.context.Context` —
project folder, backends wrapped in the cache, models fetched and loaded — once for the whole run.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from langgraph.config import get_stream_writer
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model

from lessonforge.agent.config import DEFAULT_LLM, Settings, describe_validation
from lessonforge.agent.context import Context, EventSink, close_backends, from_settings
from lessonforge.agent.prepare import preflight, start_manifest
from lessonforge.agent.project import Project
from lessonforge.tools.base import ConfigError

LESSONS_ENV = "LESSONFORGE_LESSONS"

CONTEXT_HELP = (
    f'Pass the run a context such as {{"out": "tides", "llm": "{DEFAULT_LLM}", "images": "none"}}: "out" '
    f"(required) is the lesson folder, relative ones under ${LESSONS_ENV} (default ~/lessonforge); "
    '"llm", "images", "speech" and "critic" name backends as BACKEND:MODEL, the other fields are options. '
    "In LangGraph Studio set it in the assistant's Context; with langgraph_sdk pass context={...} to "
    "client.runs.stream or client.runs.wait; in Python pass graph.ainvoke(input, context={...})."
)


class ContextError(ConfigError, ValueError):
    """The run's context is missing or wrong. Also a ValueError: LangGraph's server passes the message of
    those on to the client (of other errors it sends only the type)."""


def lessons_base() -> Path:
    """Where a relative ``out`` of a graph run goes: ``$LESSONFORGE_LESSONS``, else ``~/lessonforge``."""
    return Path(os.environ.get(LESSONS_ENV) or "~/lessonforge").expanduser().absolute()


def resolve_out(out: str) -> Path:
    """The absolute lesson folder a context's ``out`` names."""
    path = Path(out).expanduser()
    return path if path.is_absolute() else lessons_base() / path


def _stream_emit() -> EventSink:
    """Progress events of building the context (downloads, model loads) on the run's custom stream."""
    try:
        writer = get_stream_writer()
    except (RuntimeError, KeyError):  # outside a graph run
        return lambda event: None
    return writer


class _ContextBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out: str = Field(
        description=f"Lesson folder (lesson.mp4, lesson.json, ...); a relative one lies under ${LESSONS_ENV} "
        "(default ~/lessonforge).",
        min_length=1,
    )
    _live: Context | None = PrivateAttr(None)
    _lock: asyncio.Lock | None = PrivateAttr(None)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
            Settings(**self.options())  # backend names and option ranges, checked before any work
        except ValidationError as err:
            raise ContextError(
                f"The run's context is missing or wrong ({describe_validation(err)}). {CONTEXT_HELP}"
            ) from None
        except ConfigError as err:
            raise ContextError(f"The run's context is wrong ({str(err).rstrip('.')}). {CONTEXT_HELP}") from None

    def options(self) -> dict[str, Any]:
        """The settings this context sets (the rest follow the environment and the defaults)."""
        return {k: v for k, v in self if k != "out" and v is not None}

    async def ready(self, request: Any) -> Context:
        """The run's live context, built by the first node that asks; the others wait for it."""
        if self._live is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._live is None:
                    self._live = await self._build(request)
        return self._live

    async def _build(self, request: Any) -> Context:
        emit = _stream_emit()
        settings = await asyncio.to_thread(Settings.load, **self.options())
        project = Project(await asyncio.to_thread(resolve_out, self.out))
        await asyncio.to_thread(project.prepare)
        built = await asyncio.to_thread(from_settings, settings, project, request.language, need_llm=True, emit=emit)
        try:
            await preflight(built, emit, request)
            manifest = await asyncio.to_thread(start_manifest, project, request, settings, built)
        except BaseException:
            await close_backends(*built.backends())
            raise
        return replace(built, owned=True, note=f"make {request.topic!r}", manifest=manifest)


# One optional field per setting, with the setting's own description: Studio shows them as a form.
_FIELDS: dict[str, Any] = {
    name: (field.annotation | None, Field(None, description=field.description))
    for name, field in Settings.model_fields.items()
}
LessonContext = create_model(
    "LessonContext",
    __base__=_ContextBase,
    __doc__="The graph's context: the lesson folder, the backends and options of a run (plain JSON).",
    **_FIELDS,
)
