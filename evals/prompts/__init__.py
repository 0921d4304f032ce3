"""The judge's prompt templates (evals/prompts/*.md), in the same ``{{var}}`` convention as prompts/.

Rendering fails on a variable the caller did not give and on one the template never uses, exactly
as the agent's own prompts do; the part above the first line ``---`` is the system prompt.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from prompts import _VAR
from tools.base import ConfigError


@cache
def template(name: str) -> str:
    try:
        return resources.files(__package__).joinpath(f"{name}.md").read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"judge prompt template {name!r} is missing from evals/prompts; reinstall LessonForge") from None


def variables(name: str) -> set[str]:
    return set(_VAR.findall(template(name)))


def messages(name: str, **values: object) -> tuple[str, str]:
    """(system, user) for evals/prompts/NAME.md filled with ``values``."""
    needed = variables(name)
    if missing := needed - values.keys():
        raise KeyError(f"judge prompt {name!r} needs {sorted(missing)}")
    if extra := values.keys() - needed:
        raise KeyError(f"judge prompt {name!r} does not use {sorted(extra)}")
    text = _VAR.sub(lambda m: str(values[m.group(1)]), template(name))
    system, sep, user = text.partition("\n---\n")
    if not sep:
        raise KeyError(f"judge prompt {name!r} has no '---' line between its system and user parts")
    return system.strip(), user.strip()
