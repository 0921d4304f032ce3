"""Prompt templates, one Markdown file per LLM task.

A template names its variables as ``{{name}}``; rendering fails on a variable the caller did not give
(and on one it gave that the template never uses), so a renamed variable cannot slip through silently.
The part above the first line ``---`` is the system prompt. Other packages keep their own templates
(the eval judge's live in ``lessonforge.evals.prompts``) and load them by passing ``package=``.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from lessonforge.tools.base import ConfigError

_VAR = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@cache
def template(name: str, package: str = __package__) -> str:
    try:
        return resources.files(package).joinpath(f"{name}.md").read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"prompt template {name!r} is missing from {package}; reinstall LessonForge") from None


def variables(name: str, package: str = __package__) -> set[str]:
    return set(_VAR.findall(template(name, package)))


def render(name: str, package: str = __package__, **values: object) -> str:
    """Fill template ``name`` (PACKAGE/NAME.md)."""
    needed = variables(name, package)
    missing = needed - values.keys()
    if missing:
        raise KeyError(f"prompt {name!r} needs {sorted(missing)}")
    extra = values.keys() - needed
    if extra:
        raise KeyError(f"prompt {name!r} does not use {sorted(extra)}")
    return _VAR.sub(lambda m: str(values[m.group(1)]), template(name, package))


def messages(name: str, package: str = __package__, **values: object) -> tuple[str, str]:
    """(system, user) for template ``name``: the part above the first line '---' is the system prompt."""
    text = render(name, package, **values)
    system, sep, user = text.partition("\n---\n")
    if not sep:
        raise KeyError(f"prompt {name!r} has no '---' line between its system and user parts")
    return system.strip(), user.strip()
