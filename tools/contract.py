"""The base of every LLM-facing model: the JSON schema is the contract.

A reply that is valid under the schema sent to the model is accepted, full stop. So validators never
reject what the schema allows; limits the schema carries only as a hint for some backends (string
lengths: OpenAI's strict subset has no ``maxLength``; list lengths a server may not enforce) are
*repaired* here instead of sent back for a round trip, and every repair is recorded
(:attr:`Contract.repairs`, kept in ``lesson.json``):

- whitespace is tidied (runs of spaces and line breaks become one space, ends stripped);
- a string over its length is cut at the last word boundary that fits (no ellipsis: it is typeset
  as words, and a cut-off glyph may not exist in the font);
- a list over its item count keeps its first items; empty items are dropped.

Limits are declared with :func:`text` and :func:`items`, which put them in the JSON schema
(``maxLength``, ``maxItems``) without pydantic enforcing them; a minimum is enforced
(``minItems``): a reply below it is outside the schema, and there is nothing to repair it with.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

_SPACE = re.compile(r"\s+")


def text(limit: int, description: str, **kw: Any) -> Any:
    """A string field whose schema says ``maxLength: limit`` (repaired, not rejected, when longer)."""
    return Field(description=description, json_schema_extra={"maxLength": limit}, **kw)


def items(lo: int | None, hi: int | None, description: str, **kw: Any) -> Any:
    """A list field with ``minItems``/``maxItems`` in its schema: too few items is rejected (nothing to
    repair it with), too many is repaired by the model's validator (extra items cut and recorded)."""
    extra: dict[str, Any] = {"maxItems": hi} if hi is not None else {}
    if lo:
        kw["min_length"] = lo
    return Field(description=description, json_schema_extra=extra, **kw)


def tidy(value: str) -> str:
    return _SPACE.sub(" ", value).strip()


def cut_at_word(value: str, limit: int) -> str:
    """``value`` shortened to at most ``limit`` characters, ending at a word boundary where there is one."""
    if len(value) <= limit:
        return value
    head = value[:limit]
    space = head.rfind(" ")
    if value[limit] != " " and space > 0:  # the limit falls inside a word: end before it
        head = head[:space]
    return head.rstrip(" ,;:-–—") or value[:limit]  # one long word (or CJK without spaces): cut it


class Contract(BaseModel):
    """Closed objects (no extra keys) that repair what they can and record each repair."""

    model_config = ConfigDict(extra="forbid")
    _repairs: list[str] = PrivateAttr(default_factory=list)

    @property
    def repairs(self) -> list[str]:
        """What was repaired in this object and the objects inside it, in words."""
        out = list(self._repairs)
        for name in type(self).model_fields:
            value = getattr(self, name)
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, Contract):
                    out.extend(v.repairs)
        return out

    def note(self, what: str) -> None:
        self._repairs.append(what)

    def fit_text(self, name: str, limit: int) -> None:
        """Tidy the string field ``name`` and cut it to ``limit`` characters, recording a cut."""
        raw = getattr(self, name)
        value = tidy(raw)
        if len(value) > limit:
            cut = cut_at_word(value, limit)
            self.note(f"{name} cut from {len(value)} to {len(cut)} characters: {cut!r}")
            value = cut
        if value != raw:
            object.__setattr__(self, name, value)

    def fit_list(self, name: str, hi: int, limit: int | None = None) -> None:
        """Tidy the list of strings ``name``: drop empty items, cut each to ``limit``, keep ``hi`` items."""
        raw: list[str] = getattr(self, name)
        values = [tidy(v) for v in raw]
        kept = [v for v in values if v]
        if len(kept) < len(values):
            self.note(f"{name}: {len(values) - len(kept)} empty item(s) dropped")
        if limit is not None:
            for k, v in enumerate(kept):
                if len(v) > limit:
                    kept[k] = cut_at_word(v, limit)
                    self.note(f"{name}[{k}] cut from {len(v)} to {len(kept[k])} characters: {kept[k]!r}")
        if len(kept) > hi:
            self.note(f"{name}: kept the first {hi} of {len(kept)} items")
            kept = kept[:hi]
        if kept != raw:
            object.__setattr__(self, name, kept)
