"""The node functions of the lesson graph and of its per-scene subgraph.

plan -> write -> fit -> (per scene: narrate ∥ illustrate ⇄ critique -> choose -> compose) -> assemble

The nodes live by their job: lesson (plan .. measure), scene (narrate .. compose), assembly; with
timing (the arithmetic) and common (asking the LLM, progress).
"""

from __future__ import annotations

from lessonforge.agent.nodes.assembly import assemble
from lessonforge.agent.nodes.common import ask, derive_seed, emit, style_line
from lessonforge.agent.nodes.lesson import (
    MAX_REVIEWS,
    after_measure,
    after_review,
    begin,
    fan_out,
    fit,
    measure,
    mend_script,
    plan,
    review,
    write,
)
from lessonforge.agent.nodes.scene import (
    SLIDE_LAYOUT_VERSION,
    after_critique,
    choose,
    compose,
    critique,
    illustrate,
    narrate,
)
from lessonforge.agent.nodes.timing import (
    END_CARD_SECONDS,
    OUTLINE_WORDS,
    PROMPT_WORDS,
    SCENE_EXTRA_WORDS,
    SECTION_WORDS,
    TITLE_CARD_SECONDS,
    budget_wpm,
    count_words,
    duration_tolerance,
    end_seconds,
    even_targets,
    hold_seconds,
    hold_seconds_for,
    reading_seconds,
    scene_count,
    scenes_seconds,
    word_budgets,
)

__all__ = [
    "assemble",
    "ask",
    "derive_seed",
    "emit",
    "style_line",
    "MAX_REVIEWS",
    "after_measure",
    "after_review",
    "begin",
    "fan_out",
    "fit",
    "measure",
    "mend_script",
    "plan",
    "review",
    "write",
    "SLIDE_LAYOUT_VERSION",
    "after_critique",
    "choose",
    "compose",
    "critique",
    "illustrate",
    "narrate",
    "END_CARD_SECONDS",
    "OUTLINE_WORDS",
    "PROMPT_WORDS",
    "SCENE_EXTRA_WORDS",
    "SECTION_WORDS",
    "TITLE_CARD_SECONDS",
    "budget_wpm",
    "count_words",
    "duration_tolerance",
    "end_seconds",
    "even_targets",
    "hold_seconds",
    "hold_seconds_for",
    "reading_seconds",
    "scene_count",
    "scenes_seconds",
    "word_budgets",
]
