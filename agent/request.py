"""What the user asks for: the LessonRequest (the graph's input), checked before any work.

Light on purpose (pydantic only): the CLI validates a request before it imports the agent, so a bad
argument is answered at once. `lessonforge.agent.state` re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lessonforge.agent.config import Settings, describe_validation
from lessonforge.tools.base import ConfigError

Aspect = Literal["16:9", "9:16", "1:1"]
ASPECTS: tuple[str, ...] = ("16:9", "9:16", "1:1")
MIN_MINUTES, MAX_MINUTES = 0.5, 30.0


class LessonRequest(BaseModel):
    """What the user asked for: the graph's input."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(description="What the lesson teaches.")
    minutes: float = Field(2.0, description=f"Target length, {MIN_MINUTES}-{MAX_MINUTES} minutes.")
    audience: str = Field("a general audience", description="Who the lesson is for; sets vocabulary and depth.")
    language: str = Field("en", description="BCP-47 language code for everything read or heard.")
    aspect: Aspect = Field("16:9", description="Frame shape: 16:9, 9:16 or 1:1.")
    seed: int = Field(0, description="Base seed for pictures; each scene and attempt derives its own.")
    theme: str = Field("light", description="Slide theme.")
    voice: str = Field("", description="Voice name; empty picks one that fits the language.")
    style: str = Field("", description="Notes for the writer on tone and style, from the prompt ('tone: playful').")

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            raise ValueError('the topic is empty; give one, e.g. lessonforge make "photosynthesis"')
        if len(v) > 500:
            raise ValueError(f"the topic is {len(v)} characters long; keep it under 500 (a phrase, not a text)")
        return v

    @field_validator("minutes")
    @classmethod
    def _minutes(cls, v: float) -> float:
        if not (math.isfinite(v) and MIN_MINUTES <= v <= MAX_MINUTES):
            raise ValueError(f"--minutes must be between {MIN_MINUTES} and {MAX_MINUTES}, got {v}")
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        v = v.strip().replace("_", "-")
        parts = v.split("-")
        if not (2 <= len(parts[0]) <= 3 and parts[0].isalpha() and all(p.isalnum() for p in parts)):
            raise ValueError(f"--language must be a code such as en, fr, de-DE or pt-BR, got {v!r}")
        return v


def make_request(**fields: Any) -> LessonRequest:
    """A LessonRequest from user input; bad values become one ConfigError naming each problem."""
    try:
        return LessonRequest(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as err:
        raise ConfigError(describe_validation(err)) from None


@dataclass(frozen=True)
class LessonJob:
    """One lesson to make: what, where, how, and where its checkpoints live."""

    request: LessonRequest
    out: Path
    settings: Settings
    checkpoint: bool | str | None = True  # True: SQLite beside the lesson; a Postgres DSN; None: off
    label: str = ""  # the topic's slug, for progress
    understood: Any = None  # lessonforge.agent.understand.Understanding when the topic was given as a prompt
