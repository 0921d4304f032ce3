"""Chat-style refinement: a conversation about one lesson, kept across sessions.

Each project has one conversation thread in a LangGraph SQLite checkpointer
(`.lessonforge/chat.sqlite`): quit, come back, and the conversation is there. A turn is one run of
a small graph whose node hands the message (and the recent conversation) to `lessonforge.agent.edit`.

Commands inside a chat: /undo (back one version), /history (the versions), /help.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from lessonforge.agent.config import Settings
from lessonforge.agent.context import EventSink
from lessonforge.agent.edit import edit, undo
from lessonforge.agent.project import Project
from lessonforge.agent.state import extend

HELP = "Say what to change (\"make scene 3 simpler\", \"use a British voice\"), or /undo, /history, /quit."


class ChatState(TypedDict, total=False):
    messages: Annotated[list[dict[str, str]], extend]


@dataclass
class ChatContext:
    folder: str = ""
    settings: Settings | None = None
    backends: dict[str, Any] = field(default_factory=dict)
    emit: EventSink | None = None


def history_lines(project: Project) -> str:
    lines = []
    for v in project.versions():
        mark = "*" if v.current else " "
        lines.append(f"{mark} {v.number}: {v.note} ({v.scenes} scenes, {v.duration:.0f} s, {v.created})")
    return "\n".join(lines) or "no versions yet"


async def respond(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    ctx = runtime.context
    text = state["messages"][-1]["content"].strip()
    project = Project(ctx.folder)
    if text in ("/help", "/?"):
        reply = HELP
    elif text == "/history":
        reply = history_lines(project)
    elif text == "/undo":
        manifest = await undo(ctx.folder, ctx.settings, on_event=ctx.emit, **_media(ctx.backends))
        reply = (f"Back to version {project.current_version()} ({len(manifest.scenes)} scenes, "
                 f"{manifest.video.duration:.0f} s). Video: {project.root / 'lesson.mp4'}")
    else:
        result = await edit(ctx.folder, text, ctx.settings, history=state["messages"][:-1], on_event=ctx.emit,
                            **ctx.backends)
        reply = result.reply
    return {"messages": [{"role": "assistant", "content": reply}]}


def _media(backends: dict[str, Any]) -> dict[str, Any]:
    """Undo needs no LLM: pass on only the media backends."""
    return {k: v for k, v in backends.items() if k != "llm"}


def build_chat_graph(checkpointer: Any) -> Any:
    g = StateGraph(ChatState, context_schema=ChatContext)
    g.add_node("respond", respond)
    g.add_edge(START, "respond")
    g.add_edge("respond", END)
    return g.compile(checkpointer=checkpointer, name="lessonforge-chat")


@contextlib.asynccontextmanager
async def session(folder: Path | str) -> AsyncIterator[Any]:
    """The project's chat graph, bound to its SQLite checkpointer."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    project = Project(folder)
    project.meta.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(project.meta / "chat.sqlite")) as saver:
        yield build_chat_graph(saver)


def _thread(folder: Path | str) -> dict[str, Any]:
    return {"configurable": {"thread_id": str(Path(folder).resolve())}}


async def turn(graph: Any, folder: Path | str, message: str, settings: Settings | None = None, *,
               on_event: EventSink | None = None, **backends: Any) -> str:
    """One message in, the reply out; the conversation is checkpointed before this returns."""
    out = await graph.ainvoke(
        {"messages": [{"role": "user", "content": message}]},
        _thread(folder),
        context=ChatContext(folder=str(folder), settings=settings, backends=backends, emit=on_event),
        durability="sync",
    )
    return out["messages"][-1]["content"]


async def conversation(graph: Any, folder: Path | str) -> list[dict[str, str]]:
    """The conversation so far (empty for a new project)."""
    snapshot = await graph.aget_state(_thread(folder))
    return list(snapshot.values.get("messages", [])) if snapshot and snapshot.values else []
