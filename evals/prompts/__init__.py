"""The judge's prompt templates (evals/prompts/*.md), in the same ``{{var}}`` convention as prompts/."""

from __future__ import annotations

from lessonforge import prompts


def variables(name: str) -> set[str]:
    return prompts.variables(name, __package__)


def messages(name: str, **values: object) -> tuple[str, str]:
    """(system, user) for evals/prompts/NAME.md filled with ``values``."""
    return prompts.messages(name, __package__, **values)
