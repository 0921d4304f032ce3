"""``backend:model`` strings -> backend objects, built-ins and plugins through one entry-point table.

Every backend, built-in or plugin, is an entry point of the group ``lessonforge.backends`` named
``KIND.PREFIX`` (for instance ``speech.piper``); LessonForge's own are listed in its pyproject.toml.
Only the names are read until a backend is used, so nothing heavy is imported to list or check specs.
A plugin cannot take a built-in's name: two packages registering one name is a `ConfigError`.

An entry point names a class (or factory) called as ``factory(model, **options)``, where ``model`` is
the part after the first colon (possibly empty). It declares the options it takes as a pydantic model,
its ``Options`` attribute (a `BackendOptions`); one without takes none. An option it does not declare
is a `ConfigError` naming the options it does take. The object exposes ``name``, the full spec.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from lessonforge.tools import defaults
from lessonforge.tools.base import ConfigError

GROUP = "lessonforge.backends"

Kind = Literal["llm", "images", "speech", "critic", "clips"]
KINDS: tuple[Kind, ...] = ("llm", "images", "speech", "critic", "clips")

# "none" switches a capability off where that is meaningful.
_OPTIONAL: set[Kind] = {"images", "critic", "clips"}


class BackendOptions(BaseModel):
    """The options a backend takes (its ``Options``): one field per keyword of its constructor that a
    caller may set, with the constructor's default. Unknown options are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


@dataclass(frozen=True)
class Spec:
    kind: Kind
    backend: str
    model: str

    def __str__(self) -> str:
        return f"{self.backend}:{self.model}" if self.model else f"{self.backend}:"


@functools.cache
def _table() -> dict[str, dict[str, tuple[EntryPoint, ...]]]:
    """kind -> prefix -> the entry points registering it (more than one is a conflict)."""
    table: dict[str, dict[str, tuple[EntryPoint, ...]]] = {kind: {} for kind in KINDS}
    for ep in entry_points(group=GROUP):
        kind, _, prefix = ep.name.partition(".")
        prefix = prefix.strip().lower()
        if kind in table and prefix:
            table[kind][prefix] = (*table[kind].get(prefix, ()), ep)
    return table


def refresh() -> None:
    """Read the entry-point table again (after a plugin was installed into the running interpreter)."""
    _table.cache_clear()


def prefixes(kind: Kind) -> list[str]:
    names = set(_table()[kind])
    if kind in _OPTIONAL:
        names.add("none")
    return sorted(names)


def _entry(kind: Kind, backend: str) -> EntryPoint:
    found = _table()[kind][backend]
    if len(found) > 1:
        who = " and ".join(f"{_package(ep)} ({ep.value})" for ep in found)
        raise ConfigError(
            f"The {kind} backend {backend!r} is registered twice, by {who}. A plugin cannot replace a backend "
            f"of the same name: uninstall one of these packages, or register the plugin under another name "
            f"(entry point {kind}.NEWNAME in the group {GROUP})."
        )
    return found[0]


def _package(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.name) if dist is not None else "an unnamed package"


def parse(kind: Kind, spec: str) -> Spec | None:
    """Check a spec's syntax and prefix; ``None`` for "none" (capability switched off)."""
    text = (spec or "").strip()
    if text in ("none", "none:") and kind in _OPTIONAL:
        return None
    backend, sep, model = text.partition(":")
    backend = backend.strip().lower()
    if not backend:
        raise ConfigError(
            f"Empty {kind} backend. Name one as BACKEND:MODEL, e.g. --{kind} "
            f"{_example(kind)} (known backends: {', '.join(prefixes(kind))})."
        )
    if not any(_table().values()):
        raise ConfigError(
            f"No backends are registered: the entry-point group {GROUP} is empty, so LessonForge's installed "
            "metadata is missing or stale. Reinstall it (pip install lessonforge, or pip install -e . in a checkout)."
        )
    if backend not in _table()[kind]:
        raise ConfigError(
            f"Unknown {kind} backend {backend!r} in {text!r}. Known: {', '.join(prefixes(kind))}. "
            f"Write it as BACKEND:MODEL, e.g. --{kind} {_example(kind)}."
        )
    _entry(kind, backend)  # two packages claiming the name: refused here, before any work
    return Spec(kind, backend, model.strip() if sep else "")


def resolve(kind: Kind, backend: str) -> Callable[..., Any]:
    """The class or factory registered as ``KIND.BACKEND`` (its module is imported now)."""
    try:
        return _entry(kind, backend).load()
    except KeyError:
        raise ConfigError(f"Unknown {kind} backend {backend!r}. Known: {', '.join(prefixes(kind))}.") from None


def options_of(factory: Callable[..., Any]) -> type[BaseModel]:
    """The options model a backend declares (none declared: it takes no options)."""
    model = getattr(factory, "Options", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else BackendOptions


def check_options(kind: Kind, backend: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` validated against the backend's options model; an unknown or ill-typed one is a ConfigError."""
    model = options_of(factory)
    takes = list(model.model_fields)
    for name in options:
        if name not in model.model_fields:
            raise ConfigError(
                f"The {kind} backend {backend!r} does not take the option {name!r}; it takes "
                + (f"{', '.join(takes)}." if takes else "no options.")
                + " Leave the option out or choose a backend that takes it."
            )
    try:
        checked = model.model_validate(dict(options))
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"Bad option for the {kind} backend {backend!r}: {problems}.") from None
    return {name: getattr(checked, name) for name in options}


def create(kind: Kind, spec: str, *, offered: Mapping[str, Any] | None = None, **options: Any) -> Any | None:
    """Build the backend a spec names (``None`` for "none").

    ``options`` must each be one the backend takes. ``offered`` holds run-wide settings (the torch device,
    a progress callback) that a backend receives only when its options model declares them: ``--device``
    concerns the local models of a run, not its hosted ones. Offered values of ``None`` or ``""`` are unset.
    """
    parsed = parse(kind, spec)
    if parsed is None:
        return None
    factory = resolve(kind, parsed.backend)
    declared = options_of(factory).model_fields
    given = {k: v for k, v in (offered or {}).items() if k in declared and v not in (None, "")}
    given.update(options)
    return factory(parsed.model, **check_options(kind, parsed.backend, factory, given))


def _example(kind: Kind) -> str:
    return {
        "llm": f"openai:{defaults.OPENAI_LLM}",
        "images": f"diffusers:{defaults.DIFFUSERS_IMAGES}",
        "speech": "espeak:en-us",
        "critic": f"clip:{defaults.CLIP_CRITIC}",
        "clips": f"veo:{defaults.VEO_CLIPS}",
    }[kind]
