"""Slides that build with the voice: when each key phrase appears, from the narration's word times.

A scene's slide is shown in steps. Step 0 holds the title (and any phrase the narrator reaches in
the first moments); each later step adds the next key phrase at the moment the narration first says
one of its words, and highlights it while it is being talked about (Mayer's signalling); the last
step shows every phrase plainly. A question card shows the question, holds through the thinking
pause, and reveals the answer as the narrator starts to say it.

Each step is one more still picture held for a whole number of frames, so the renderer stays a
still-frame renderer. Steps shorter than ``min_step`` are merged into their neighbour: nothing
flickers.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

MIN_STEP = 0.8  # seconds: a state shorter than this is merged with the next
_WORD = re.compile(r"\w[\w'’-]*", re.UNICODE)
_SHORT = 3  # words this short ("the", "of") do not mark where a phrase is said


@dataclass(frozen=True)
class Step:
    """One state of a slide: from ``start`` (seconds into the scene), ``shown`` phrases visible, the one
    at ``highlight`` (0-based) highlighted, and the question's answer shown or not."""

    start: float
    shown: int
    highlight: int | None = None
    reveal_answer: bool = True


def _norm(word: str) -> str:
    word = unicodedata.normalize("NFKC", word).casefold().strip("'’-")
    return word[:-1] if len(word) > 4 and word.endswith("s") else word  # plurals meet their singulars


def _content(text: str) -> list[str]:
    words = [_norm(w) for w in _WORD.findall(text)]
    strong = [w for w in words if len(w) > _SHORT]
    return strong or words


def phrase_times(phrases: Sequence[str], words: Sequence[tuple[str, float, float]], duration: float) -> list[float]:
    """When the narration reaches each phrase: the start of the first spoken word of the phrase that
    comes after the previous phrase's moment. A phrase never said is placed evenly between its
    neighbours (and spread over the narration when none is said), so the order always holds."""
    spoken = [(_norm(w), s) for w, s, _ in words]
    found: list[float | None] = []
    after = -1.0
    for phrase in phrases:
        want = set(_content(phrase))
        hit = next((s for w, s in spoken if s > after and w in want), None)
        found.append(hit)
        if hit is not None:
            after = hit
    n = len(phrases)
    known = [(k, t) for k, t in enumerate(found) if t is not None]
    out: list[float] = []
    for k, t in enumerate(found):
        if t is not None:
            out.append(t)
            continue
        before = max(((j, u) for j, u in known if j < k), default=(-1, 0.0))
        nxt = min(((j, u) for j, u in known if j > k), default=(n, max(duration, before[1])))
        out.append(before[1] + (nxt[1] - before[1]) * (k - before[0]) / (nxt[0] - before[0]))
    return [max(0.0, min(t, duration)) for t in out]


def plan(phrases: Sequence[str], words: Sequence[tuple[str, float, float]], *, speech_end: float, hold: float,
         answer_at: float | None = None, min_step: float = MIN_STEP) -> list[Step]:
    """The steps of one slide, in order, the first at 0. ``speech_end``: when the narration ends;
    ``hold``: how long the slide stays up; ``answer_at``: when a question's answer starts (None: no
    reveal)."""
    if not math.isfinite(hold) or hold <= 0:
        raise ValueError(f"hold must be a positive number of seconds, got {hold}")
    reveal = answer_at is None
    n = len(phrases)
    steps = [Step(0.0, 0, None, reveal)]
    for k, t in enumerate(phrase_times(phrases, words, speech_end)):
        steps.append(Step(t, k + 1, k, reveal))
    if n:
        steps.append(Step(speech_end, n, None, reveal))  # the narration is over: every phrase, plainly
    if answer_at is not None:
        steps = [s for s in steps if s.start < answer_at]
        steps.append(Step(answer_at, n, None, True))
    return _merge(steps, hold, min_step)


def _merge(steps: list[Step], hold: float, min_step: float) -> list[Step]:
    """Steps at least ``min_step`` apart. A step too close to the one before takes its place and its start
    (the later state wins, so a phrase is never shown highlighted for a blink); a last step too near
    the end to be seen is dropped, or folded into the one before when it shows something new."""
    out: list[Step] = []
    for s in sorted(steps, key=lambda x: x.start):
        if out and s.start - out[-1].start < min_step:
            s = Step(out.pop().start, s.shown, s.highlight, s.reveal_answer)
        out.append(s)
    while len(out) > 1 and hold - out[-1].start < min_step:  # too near the end to be seen
        last = out.pop()
        if last.shown > out[-1].shown or last.reveal_answer and not out[-1].reveal_answer:  # it must still appear
            prev = out.pop()
            out.append(Step(prev.start, last.shown, last.highlight, last.reveal_answer))
    first = out[0]
    out[0] = Step(0.0, first.shown, first.highlight, first.reveal_answer)
    return out


def durations(starts: Sequence[float], hold: float, fps: int) -> list[float]:
    """How long each step (by its start) is held, in whole frames, adding up to ``hold`` (in frames)."""
    total = round(hold * fps)
    marks = [min(total, round(t * fps)) for t in starts] + [total]
    frames = [max(0, b - a) for a, b in zip(marks, marks[1:], strict=False)]
    return [f / fps for f in frames]
