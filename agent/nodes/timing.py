"""The timing arithmetic of a lesson: word budgets, scene counts, holds, cards and tolerances."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from lessonforge.agent import voicestats
from lessonforge.agent.context import Context
from lessonforge.agent.state import (
    LessonRequest,
    SceneRecord,
)

_WORD = re.compile(r"\w[\w'’-]*", re.UNICODE)


def count_words(text: str) -> int:
    """Spoken words; CJK text (no spaces) counts about one word per 2.5 characters."""
    words = _WORD.findall(text)
    cjk = sum(1 for ch in text if "\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff")
    if cjk > len(text) / 3:
        return max(1, round(cjk / 2.5))
    return len(words)


def scene_count(seconds: float, scene_seconds: float) -> int:
    """Short scenes (segmenting principle): at least 3, about ``scene_seconds`` each."""
    return max(3, round(seconds / scene_seconds))


def reading_seconds(title: str, bullets: Sequence[str], wpm: float) -> float:
    """How long a viewer needs to read a slide's text (plus a second to find it)."""
    return 1.0 + 60.0 * count_words(" ".join([title, *bullets])) / wpm


def budget_wpm(ctx: Context, req: LessonRequest) -> float:
    """Words per minute to budget with: the voice's measured rate when known, else the setting."""
    voice = req.voice or ctx.speech.default_voice(req.language)
    return voicestats.words_per_minute(ctx.speech.name, voice) or ctx.settings.words_per_minute


def word_budgets(targets: Sequence[float], wpm: float, gap: float) -> list[int]:
    """Words each scene may have so that its narration plus the pause after it fills its time."""
    return [max(3, round(max(1.0, sec - gap) * wpm / 60)) for sec in targets]


def hold_seconds(record: SceneRecord, s: Any) -> float:
    """How long a scene's slide stays up, in whole frames."""
    assert record.speech is not None
    return hold_seconds_for(record.speech.duration, record.title, record.bullets, s)


def hold_seconds_for(speech_seconds: float, title: str, bullets: Sequence[str], s: Any) -> float:
    """How long a slide stays up: its narration and a pause, and at least the time its text takes to read."""
    need = max(speech_seconds + s.gap_seconds, reading_seconds(title, bullets, s.reading_wpm))
    return math.ceil(need * s.fps - 1e-6) / s.fps


# Words of text in a reply besides narration, for the progress estimate (lessonforge.tools.base.expecting).
OUTLINE_WORDS = 60  # title, hook, objectives, check question and answer


SECTION_WORDS = 18  # a section's title and key points


SCENE_EXTRA_WORDS = 40  # a scene's title, bullets and picture prompt


PROMPT_WORDS = 35  # a revised picture prompt and its reason


END_CARD_SECONDS = 2.5  # the closing card, silent, after the last scene


TITLE_CARD_SECONDS = 2.5  # the opening card, over the first seconds of the first scene


def end_seconds(settings: Any) -> float:
    return END_CARD_SECONDS if settings.cards else 0.0


def scenes_seconds(req: LessonRequest, settings: Any) -> float:
    """The time the scenes share: the lesson's target less its closing card."""
    return req.minutes * 60 - end_seconds(settings)


def even_targets(seconds: float, n: int) -> list[float]:
    return [round(seconds / n, 2)] * n


def duration_tolerance(target: float) -> float:
    """±5% of the target, or ±6 s for short lessons, whichever is larger."""
    return max(0.05 * target, 6.0)
