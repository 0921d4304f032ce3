"""The graph's runtime context: the backends and the project a run works with.

Nodes receive backends through this context (LangGraph `Runtime[Context]`), never by importing a
concrete class, so a test or a dry run swaps in fakes without touching the graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tools.base import LLM, Critic, ImageGenerator, SpeechSynth

from .config import Settings
from .project import Project


@dataclass
class Context:
    project: Project
    settings: Settings
    speech: SpeechSynth
    llm: LLM | None = None  # None: no LLM may be called (render)
    images: ImageGenerator | None = None  # None: text-first slides
    critic: Critic | None = None  # None: pictures are not judged
    fallbacks: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
