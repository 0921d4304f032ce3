"""Where a lesson's graph keeps its checkpoints, so a run cut short resumes at its last finished step.

A lesson made by `lessonforge batch` or an eval run may be cut short by a lost worker (a node of a
cluster gone, a process killed). With a checkpointer, every finished step of the graph is saved
before the next one starts (LangGraph durability "sync"); the same lesson started again finds its
thread unfinished and goes on from there instead of planning and writing again.

    checkpoint=True                         SQLite in the lesson's folder (.lessonforge/graph.sqlite)
    checkpoint="postgresql://USER@HOST/DB"  a Postgres database every worker of a cluster reaches
                                            (needs the [ray] extra: langgraph-checkpoint-postgres)

The thread is named by the graph's input (request, settings, script), so a changed request starts
a new thread while the same one resumes.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from lessonforge.agent.project import Project
from lessonforge.tools.base import ConfigError
from lessonforge.tools.cache import content_key

SQLITE_NAME = "graph.sqlite"
FORMAT = 1  # bump when the graph's nodes or state change, so old checkpoints are not resumed
POSTGRES_SCHEMES = ("postgres://", "postgresql://")


def is_postgres(spec: str) -> bool:
    return spec.startswith(POSTGRES_SCHEMES)


def redact(dsn: str) -> str:
    """A DSN fit to show: its password replaced by ***."""
    dsn = re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", dsn)
    return re.sub(r"(password=)\S+", r"\1***", dsn)


def check_spec(spec: bool | str | None) -> None:
    """Refuse a checkpoint spec that is neither on/off nor a Postgres DSN, before any work."""
    if isinstance(spec, str) and spec and not is_postgres(spec):
        raise ConfigError(
            f"--checkpoint-dsn must be a Postgres connection string such as postgresql://USER:PASSWORD@HOST:5432/DB, "
            f"got {redact(spec)!r}; leave it out to keep checkpoints in SQLite beside each lesson"
        )


STATE_MODULES = (
    "lessonforge.agent.request",
    "lessonforge.agent.state",
    "lessonforge.agent.schemas",
    "lessonforge.tools.media.diagrams",
)


def serializer() -> Any:
    """LangGraph's serializer, allowed to load back exactly the pydantic models the graph's state holds."""
    import importlib
    import inspect

    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    from pydantic import BaseModel

    allowed = []
    for name in STATE_MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseModel) and value.__module__ == name:
                allowed.append((name, attr))
    return JsonPlusSerializer(allowed_msgpack_modules=allowed)


def thread_id(graph_input: dict[str, Any], settings: Any) -> str:
    """One thread per distinct lesson input: the same command resumes it, another request starts anew."""
    return "make-" + content_key(FORMAT, graph_input, settings)


@contextlib.asynccontextmanager
async def open_saver(spec: bool | str | None, project: Project) -> AsyncIterator[Any]:
    """The checkpointer ``spec`` names (None when off), open for the duration of a run."""
    if not spec:
        yield None
        return
    check_spec(spec)
    if isinstance(spec, str):
        async with _postgres(spec) as saver:
            yield saver
        return
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    project.meta.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(str(project.meta / SQLITE_NAME)) as conn:
        yield AsyncSqliteSaver(conn, serde=serializer())


@contextlib.asynccontextmanager
async def _postgres(dsn: str) -> AsyncIterator[Any]:
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    except ImportError:
        raise ConfigError(
            "a Postgres checkpoint needs langgraph-checkpoint-postgres: pip install 'lessonforge[ray]' "
            "(or leave out --checkpoint-dsn to use SQLite beside each lesson)"
        ) from None
    try:
        manager = AsyncPostgresSaver.from_conn_string(dsn, serde=serializer())
        saver = await manager.__aenter__()
    except Exception as err:
        raise ConfigError(
            f"cannot reach the Postgres checkpoint database {redact(dsn)}: {_reason(err, dsn)}; check that the "
            "server runs and the DSN (host, port, user, password, database) is right"
        ) from None
    try:
        try:
            await saver.setup()  # creates its tables once; later runs find them
        except Exception as err:
            raise ConfigError(
                f"cannot prepare the checkpoint tables in {redact(dsn)}: {_reason(err, dsn)}; the user needs "
                "the right to create tables in that database"
            ) from None
        yield saver
    finally:
        await manager.__aexit__(None, None, None)


def _reason(err: BaseException, dsn: str) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return redact(text.replace(dsn, redact(dsn)))
