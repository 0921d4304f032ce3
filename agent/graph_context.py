"""The graph's context schema: plain JSON, as LangGraph's server, Studio and `graph.ainvoke` send it.

    {"out": "tides", "llm": "openai:gpt-6-luna", "images": "none", "speech": "edge:"}

``out`` is the lesson folder (required); a relative one lies under ``$LESSONFORGE_LESSONS``
(default ``~/lessonforge``), wherever the server was started. Every other field is a setting of
`lessonforge.agent.config.Settings` (backends as ``BACKEND:MODEL``, options); one left out follows the same
``LESSONFORGE_*`` environment variables and defaults as ``lessonforge make``.

The context is checked when the run starts, before any node runs or anything is downloaded. The
first node that asks (``await context.ready(request)``) builds the live `lessonforge.agent.context.Context` —
project folder, backends wrapped in the cache, models fetched and loaded — once for the whole run.

A served run holds its lesson folder as ``lessonforge make`` does (a second run on the same folder is
refused) until the lesson is recorded, or the run ends early: the served graph's nodes are
:func:`guarded`, so a failure is recorded in lesson.json (status "failed", what went wrong) and the folder
is let go, as it is when a review pauses the run or the client cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import get_runtime
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model

from lessonforge.agent.config import DEFAULT_LLM, Settings, describe_validation
from lessonforge.agent.context import Context, EventSink, close_backends, from_settings
from lessonforge.agent.prepare import preflight, start_manifest
from lessonforge.agent.project import Project
from lessonforge.agent.record import record_failure
from lessonforge.tools.base import ConfigError, LessonForgeError
from lessonforge.tools.cache import thread_to_end

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
    _hold: contextlib.ExitStack | None = PrivateAttr(None)  # the lesson folder's lock, while the run works
    _working: int = PrivateAttr(0)  # guarded nodes running now
    _ending: bool = PrivateAttr(False)  # a node raised: the run ends once the others have stopped

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
        fresh = not await asyncio.to_thread(project.root.exists)
        hold = contextlib.ExitStack()
        built: Context | None = None
        try:
            await asyncio.to_thread(hold.enter_context, project.lock())  # another run there: a ConfigError
            await asyncio.to_thread(project.prepare)
            built = await asyncio.to_thread(from_settings, settings, project, request.language, need_llm=True,
                                            emit=emit)
            await preflight(built, emit, request)
            manifest = await asyncio.to_thread(start_manifest, project, request, settings, built)
        except BaseException:
            if built is not None:
                await close_backends(*built.backends())
            await thread_to_end(_let_go, hold, project if fresh else None)
            raise
        self._hold = hold
        assert built is not None
        return replace(built, owned=True, note=f"make {request.topic!r}", manifest=manifest, release=hold.close)

    def _began(self) -> None:
        self._working += 1

    async def _left(self, err: BaseException | None) -> None:
        """A guarded node stopped. The first one that raised ends the run: a failure is recorded in
        lesson.json at once. Once no node runs any more (LangGraph cancels the others; their file work
        in threads finishes first), the folder is let go and the backends closed. The same happens when
        a review pauses the run or the client cancels it. Recording and letting go run to their end in a
        thread even when this task is cancelled, and in that order: a node counts as working until the
        failure it records is written."""
        try:
            if err is not None and not self._ending:
                self._ending = True
                live = self._live
                if live is not None and isinstance(err, LessonForgeError | OSError):
                    await thread_to_end(record_failure, live, err)
        finally:
            self._working -= 1
            if self._ending and self._working == 0:
                live, hold = self._live, self._hold
                self._live = self._hold = None
                try:
                    if hold is not None:
                        await thread_to_end(hold.close)
                finally:
                    if live is not None:
                        await close_backends(*live.backends())


def _let_go(hold: contextlib.ExitStack, fresh: Project | None) -> None:
    """Release a folder; one this run created and left empty (a start that failed) is removed."""
    hold.close()
    if fresh is not None:
        fresh.discard_if_unused()


def _served() -> _ContextBase | None:
    """The context of the served run this node belongs to (None outside one, or in the CLI's graph)."""
    try:
        context = get_runtime().context
    except Exception:  # outside a run
        return None
    return context if isinstance(context, _ContextBase) else None


def guarded(node: Callable[..., Any]) -> Callable[..., Any]:
    """A node of the served graph that ends the run well when it raises (see ``_ContextBase._left``).
    Its signature stays the node's, so LangGraph passes it what it passes the node; a plain function
    runs in a worker thread, as LangGraph runs one."""
    is_async = inspect.iscoroutinefunction(node)

    @functools.wraps(node)
    async def run(*args: Any, **kwargs: Any) -> Any:
        context = _served()
        if context is None:
            return await node(*args, **kwargs) if is_async else await asyncio.to_thread(node, *args, **kwargs)
        context._began()
        failure: BaseException | None = None
        try:
            return await node(*args, **kwargs) if is_async else await asyncio.to_thread(node, *args, **kwargs)
        except BaseException as err:
            failure = err
            raise
        finally:
            try:
                await context._left(failure)
            except Exception:  # ending well must never hide why the run ended
                if failure is None:
                    raise

    return run


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
