"""Per-lesson metrics: small pure functions, the models that hold their results, and the catalogue
that says for each metric which direction is better and how much change is noise.

    delivery  duration error against the target, audio/video agreement, subtitle validity,
              narration words per minute, readability grade against the audience's grade band
    visuals   critic (CLIP) scores of the pictures used, attempts, below-bar scenes,
              slide text contrast (WCAG), smallest font size, text overflow
    content   key-concept coverage, an LLM-judge rubric, a quiz check (see evals/judge.py)
    cost      tokens, an estimated price (PRICES), wall time per stage

`evals/score.py` reads a lesson folder and calls these; nothing here touches the disk.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, Field

from lessonforge.evals.judge import QuizResult, Rubric

# --------------------------------------------------------------------------- delivery


def duration_error(actual_s: float, target_s: float) -> float:
    """Signed relative error of the lesson's length: +0.1 means 10 % too long."""
    if target_s <= 0:
        raise ValueError(f"target duration must be positive, got {target_s}")
    return (actual_s - target_s) / target_s


def av_gap(video_s: float | None, audio_s: float | None) -> float | None:
    """How far the video and audio streams' lengths disagree, in seconds (None: a stream is missing)."""
    if video_s is None or audio_s is None:
        return None
    return abs(video_s - audio_s)


class SubtitleCheck(BaseModel):
    valid: bool
    cues: int
    problems: list[str] = Field(default_factory=list)


def check_subtitles(text: str, duration_s: float | None = None, *, tolerance_s: float = 0.05) -> SubtitleCheck:
    """Parse SRT (the `srt` package) and check numbering, order, overlaps, empty cues and bounds."""
    import srt

    try:
        cues = list(srt.parse(text))
    except (srt.SRTParseError, ValueError) as err:
        return SubtitleCheck(valid=False, cues=0, problems=[f"not valid SRT: {err}"])
    problems: list[str] = []
    if not cues:
        problems.append("no cues")
    prev_start = prev_end = None
    for k, cue in enumerate(cues, 1):
        start, end = _seconds(cue.start), _seconds(cue.end)
        if cue.index != k:
            problems.append(f"cue {k} is numbered {cue.index}")
        if start < 0:
            problems.append(f"cue {k} starts before 0")
        if end <= start:
            problems.append(f"cue {k} ends ({end:.3f} s) before it starts ({start:.3f} s)")
        if not cue.content.strip():
            problems.append(f"cue {k} is empty")
        if prev_start is not None and start < prev_start:
            problems.append(f"cue {k} starts before cue {k - 1}")
        elif prev_end is not None and start < prev_end - 1e-3:
            problems.append(f"cue {k} overlaps cue {k - 1} by {prev_end - start:.3f} s")
        if duration_s is not None and end > duration_s + tolerance_s:
            problems.append(f"cue {k} ends at {end:.3f} s, after the video ({duration_s:.3f} s)")
        prev_start, prev_end = start, end
    return SubtitleCheck(valid=not problems, cues=len(cues), problems=problems)


def _seconds(td: timedelta) -> float:
    return td.total_seconds()


def words_per_minute(words: int, seconds: float) -> float | None:
    return 60.0 * words / seconds if seconds > 0 else None


# readability ----------------------------------------------------------------

# Flesch (1948): reading-ease bands and the school grade each suits, taken at the bands' midpoints.
_EASE_GRADE: tuple[tuple[float, float], ...] = (
    (95, 5), (85, 6), (75, 7), (65, 8.5), (55, 11), (40, 14), (15, 17),
)


def ease_to_grade(ease: float) -> float:
    """A Flesch reading-ease score (0 hard .. 100 easy) as a US school grade, interpolated."""
    if ease >= _EASE_GRADE[0][0]:
        return _EASE_GRADE[0][1]
    if ease <= _EASE_GRADE[-1][0]:
        return _EASE_GRADE[-1][1]
    for (e_hi, g_hi), (e_lo, g_lo) in pairwise(_EASE_GRADE):
        if e_lo <= ease <= e_hi:
            return g_hi + (g_lo - g_hi) * (e_hi - ease) / (e_hi - e_lo)
    raise AssertionError("unreachable")


_textstat_lock = threading.Lock()  # textstat keeps its language in module state
# languages whose Flesch reading ease textstat adapts (its own constants; syllables from pyphen)
_FLESCH_LANGS = ("fr", "es", "it", "nl", "ru")


def readability(text: str, language: str) -> tuple[float | None, str]:
    """(grade, formula) of ``text``; (None, reason) where no formula fits the language.

    English: Coleman-Liau (letters and sentences only: no syllable dictionary to download);
    German: Wiener Sachtextformel 1 (a school grade); French, Spanish, Italian, Dutch, Russian:
    that language's Flesch reading ease (textstat's constants) through `ease_to_grade`.
    """
    import textstat

    lang = language.split("-")[0].lower()
    if not text.strip():
        return None, "no text"
    with _textstat_lock:
        try:
            if lang == "en":
                textstat.set_lang("en")
                return round(float(textstat.coleman_liau_index(text)), 2), "coleman-liau"
            if lang == "de":
                textstat.set_lang("de")
                return round(float(textstat.wiener_sachtextformel(text, 1)), 2), "wiener-sachtextformel"
            if lang in _FLESCH_LANGS:
                textstat.set_lang(lang)
                ease = float(textstat.flesch_reading_ease(text))
                return round(ease_to_grade(ease), 2), f"flesch-{lang}"
        finally:
            textstat.set_lang("en")
    return None, f"no readability formula for {language!r}"


# (patterns, grade band) in the order they are tried; the first match wins
_AUDIENCE_BANDS: tuple[tuple[tuple[str, ...], tuple[float, float]], ...] = (
    (
        ("postgraduate", "graduate student", "phd", "doctoral", "master's", "researcher", "expert", "professional"),
        (13.0, 18.0),
    ),
    (
        (
            "undergraduate",
            "universit",
            "universidad",
            "college",
            "bachelor",
            "first-year",
            "first year",
            "hochschule",
            "studium",
            "大学",
        ),
        (11.0, 16.0),
    ),
    (
        (
            "upper secondary",
            "high school",
            "high-school",
            "lycée",
            "lycee",
            "oberstufe",
            "bachillerato",
            "a-level",
            "sixth form",
            "高校",
            "高等学校",
        ),
        (8.0, 12.0),
    ),
    (("lower secondary", "middle school", "collège", "mittelstufe", "ks3", "中学"), (5.0, 9.0)),
    (("secondary", "secundaria", "gymnasium", "gcse", "teen"), (6.0, 10.0)),
    (("primary", "elementary", "primaire", "grundschule", "primaria", "kid", "child", "小学"), (1.0, 6.0)),
    (
        ("general audience", "adult", "beginner", "learner", "public", "curious", "everyone", "grand public"),
        (6.0, 11.0),
    ),
)
_AGES = re.compile(
    r"(?:aged?|ages|âge|alter|edad)\s*(\d{1,2})(?:\s*(?:-|–|to|à|bis|a)\s*(\d{1,2}))?"
    r"|(\d{1,2})(?:\s*(?:-|–|to|à|bis|a)\s*(\d{1,2}))?\s*(?:-\s*)?(?:years?|ans|jahre|años|歳)"
)
_GRADE = re.compile(r"(?:grade|year|klasse|classe|curso)\s*(\d{1,2})\b|(\d{1,2})(?:st|nd|rd|th)\s+grade")


def grade_band(audience: str) -> tuple[float, float] | None:
    """The school grades (US scale) a lesson for ``audience`` should read at; None if unknown.

    An explicit grade ("grade 7", "Klasse 8") or age ("children aged 8 to 10", "12-14 ans") wins;
    then keywords from university down to primary school, in several languages.
    """
    text = audience.lower()
    if m := _GRADE.search(text):
        g = int(m.group(1) or m.group(2))
        return (max(0.0, g - 2.0), g + 1.0)
    if m := _AGES.search(text):
        lo = int(m.group(1) or m.group(3))
        hi = int(m.group(2) or m.group(4) or lo)
        lo, hi = min(lo, hi), max(lo, hi)
        return (max(0.0, lo - 7.0), max(1.0, hi - 5.0))
    for patterns, band in _AUDIENCE_BANDS:
        if any(p in text for p in patterns):
            return band
    return None


def grade_gap(grade: float | None, band: tuple[float, float] | None) -> float | None:
    """Grades outside the band: positive when harder than the audience reads, negative when easier."""
    if grade is None or band is None:
        return None
    lo, hi = band
    if grade > hi:
        return grade - hi
    if grade < lo:
        return grade - lo
    return 0.0


# --------------------------------------------------------------------------- visuals


@dataclass(frozen=True)
class PictureStats:
    scenes: int
    illustrated: int
    scores: tuple[float, ...]  # the critic's score of the picture each illustrated scene uses
    attempts: int
    below_bar: int
    first_try: int


def picture_stats(scenes: Sequence[Any]) -> PictureStats:
    """From manifest scene records: the used picture's score per scene, attempts, below-bar scenes.

    The picture a scene uses is the attempt whose image hash matches the scene's illustration
    (the agent links the chosen attempt); failing that, the best-scored attempt.
    """
    scores: list[float] = []
    attempts = below = first = illustrated = 0
    for sc in scenes:
        tries = list(sc.attempts)
        attempts += len(tries)
        if sc.critic == "below_bar":
            below += 1
        if sc.illustration is None:
            continue
        illustrated += 1
        used = next((a for a in tries if a.image.sha256 == sc.illustration.sha256), None)
        if used is None and tries:
            used = max(tries, key=lambda a: a.score if a.score is not None else float("-inf"))
        if used is not None and used.score is not None:
            scores.append(float(used.score))
        if sc.critic == "accepted" and len(tries) == 1:
            first += 1
    return PictureStats(len(scenes), illustrated, tuple(scores), attempts, below, first)


def theme_contrast(theme: str) -> dict[str, float]:
    """WCAG contrast ratio of each text colour of a slide theme against its background."""
    from lessonforge.tools.media.slides import THEMES, contrast_ratio

    th = THEMES.get(theme)
    if th is None:
        return {}
    return {
        role: round(contrast_ratio(getattr(th, role), th.background), 2)
        for role in ("title", "text", "accent", "muted")
    }


# --------------------------------------------------------------------------- content

_SNOWBALL = {
    "en": "english", "fr": "french", "de": "german", "es": "spanish", "it": "italian", "pt": "portuguese",
    "nl": "dutch", "ru": "russian", "ar": "arabic", "sv": "swedish", "da": "danish", "no": "norwegian",
    "nb": "norwegian", "fi": "finnish", "hu": "hungarian", "ro": "romanian",
}
_TOKEN = re.compile(r"\w+", re.UNICODE)


@cache
def _stemmer(language: str) -> Any:
    from nltk.stem.snowball import SnowballStemmer

    name = _SNOWBALL.get(language.split("-")[0].lower())
    return SnowballStemmer(name) if name else None


def _fold(text: str) -> str:
    """Casefolded, without accents or Arabic diacritics (NFKD, combining marks dropped)."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def _stems(text: str, language: str) -> list[str]:
    stemmer = _stemmer(language)
    out = []
    for tok in _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold()):
        out.append(_fold(stemmer.stem(tok) if stemmer is not None else tok))
    return out


def _unspaced(text: str) -> bool:
    """Text written without spaces between words (Chinese, Japanese, Thai)."""
    return any(
        "\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" or "\u0e00" <= ch <= "\u0e7f" for ch in text
    )


def concept_found(concept: str, text_stems: Sequence[str], folded_text: str, language: str) -> bool:
    """A concept is found when its word stems appear in order, side by side, in the text.

    Text without spaces (Japanese, Chinese) is searched as a plain (case-folded) substring.
    """
    if _unspaced(concept):
        return _fold(concept).replace(" ", "") in folded_text.replace(" ", "")
    want = _stems(concept, language)
    if not want:
        return False
    n = len(want)
    return any(list(text_stems[i : i + n]) == want for i in range(len(text_stems) - n + 1))


def concept_coverage(concepts: Sequence[str], texts: Iterable[str],
                     language: str) -> tuple[float, list[str], list[str]]:
    """(fraction found, found, missing) of ``concepts`` in ``texts``, case-, accent- and stem-insensitive."""
    body = "\n".join(texts)
    stems, folded = _stems(body, language), _fold(body)
    found = [c for c in concepts if concept_found(c, stems, folded, language)]
    missing = [c for c in concepts if c not in found]
    return (len(found) / len(concepts) if concepts else 0.0), found, missing


# --------------------------------------------------------------------------- cost

# USD per million tokens (input, output), OpenAI list prices for standard (non-batch) requests as
# published in 2025 (the gpt-6 rows: OpenAI's model pages, November 2026). Dated snapshots match by
# prefix ("gpt-4.1-mini-2025-04-14"). A model that is not listed (a local server, a fake) gets no price
# rather than a guess.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-6-luna": (0.10, 0.50),
    "gpt-6.1-terra": (1.00, 5.00),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
}


def price_of(model: str) -> tuple[float, float] | None:
    """The price row of a model id or "backend:model" spec (longest matching prefix), if listed."""
    name = model.split(":", 1)[1] if ":" in model else model
    name = name.rsplit("/", 1)[-1].lower()
    best = max((k for k in PRICES if name == k or name.startswith(k + "-")), key=len, default=None)
    return PRICES[best] if best is not None else None


def estimate_price(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    row = price_of(model)
    if row is None:
        return None
    return round((prompt_tokens * row[0] + completion_tokens * row[1]) / 1e6, 6)


# --------------------------------------------------------------------------- results


class Delivery(BaseModel):
    target_s: float
    duration_s: float | None = None
    duration_error: float | None = Field(None, description="(actual - target) / target")
    duration_abs_error: float | None = None
    av_gap_s: float | None = None
    subtitles_valid: bool | None = None
    subtitle_cues: int | None = None
    subtitle_problems: list[str] = Field(default_factory=list)
    words: int = 0
    narration_s: float = 0.0
    wpm: float | None = None
    wpm_target: float | None = None
    wpm_deviation: float | None = Field(None, description="|wpm - target| / target")
    readability_grade: float | None = None
    readability_formula: str = ""
    grade_band: tuple[float, float] | None = None
    grade_gap: float | None = Field(None, description="grades above (+) or below (-) the audience's band")
    grade_gap_abs: float | None = None


class Visuals(BaseModel):
    scenes: int = 0
    illustrated: int = 0
    clip_mean: float | None = None
    clip_min: float | None = None
    attempts: int = 0
    attempts_per_scene: float | None = None
    below_bar: int = 0
    below_bar_share: float | None = None
    first_try_share: float | None = None
    contrast: dict[str, float] = Field(default_factory=dict)
    min_contrast: float | None = None
    min_font_px: int | None = None
    overflow: int = 0
    overflow_share: float | None = None


class Content(BaseModel):
    concept_coverage: float | None = None
    concepts_found: list[str] = Field(default_factory=list)
    concepts_missing: list[str] = Field(default_factory=list)
    rubric: Rubric | None = None
    rubric_mean: float | None = None
    quiz: QuizResult | None = None
    quiz_score: float | None = None


class Cost(BaseModel):
    llm: str = ""
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    price_usd: float | None = None
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    make_seconds: float = 0.0
    score_seconds: float = 0.0


class LessonMetrics(BaseModel):
    delivery: Delivery
    visuals: Visuals = Field(default_factory=Visuals)
    content: Content = Field(default_factory=Content)
    cost: Cost = Field(default_factory=Cost)
    errors: list[str] = Field(default_factory=list, description="metrics that could not be measured, and why")

    def value(self, key: str) -> float | None:
        """A metric by its catalogue key ("content.quiz_score"), as a float (booleans 0/1)."""
        obj: Any = self
        for part in key.split("."):
            obj = obj.get(part) if isinstance(obj, Mapping) else getattr(obj, part, None)
            if obj is None:
                return None
        if isinstance(obj, bool):
            return 1.0 if obj else 0.0
        return float(obj) if isinstance(obj, int | float) else None

    def flat(self) -> dict[str, float | None]:
        return {m.key: self.value(m.key) for m in METRICS}


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Metric:
    """A metric's key, label, which direction is better, and the change that counts as a regression.

    ``tolerance`` is absolute, or a fraction of the baseline's value when ``relative``. A metric
    that is "neither" better higher nor lower (words per minute: its deviation is judged) is shown,
    never flagged.
    """

    key: str
    label: str
    better: Literal["higher", "lower", "neither"]
    tolerance: float
    relative: bool = False
    fmt: str = "{:.2f}"
    per_lesson: bool = True  # flag a single lesson's change too (wall time: only the mean, it is noisy)

    def worse(self, a: float, b: float) -> bool:
        """True when going from ``a`` to ``b`` is worse by more than the tolerance."""
        if self.better == "neither":
            return False
        tol = self.tolerance * abs(a) if self.relative else self.tolerance
        delta = b - a
        return delta < -tol - 1e-12 if self.better == "higher" else delta > tol + 1e-12

    def better_than(self, a: float, b: float) -> bool:
        return self.worse(b, a)


METRICS: tuple[Metric, ...] = (
    Metric("delivery.duration_abs_error", "duration error vs target", "lower", 0.05, fmt="{:.1%}"),
    Metric("delivery.av_gap_s", "audio/video length gap (s)", "lower", 0.05, fmt="{:.3f}"),
    Metric("delivery.subtitles_valid", "valid subtitles", "higher", 0.0, fmt="{:.0%}"),
    Metric("delivery.wpm", "narration words per minute", "neither", 0.0, fmt="{:.0f}"),
    Metric("delivery.wpm_deviation", "speaking-rate deviation", "lower", 0.05, fmt="{:.1%}"),
    Metric("delivery.readability_grade", "readability grade", "neither", 0.0, fmt="{:.1f}"),
    Metric("delivery.grade_gap_abs", "grades outside the audience band", "lower", 1.0, fmt="{:.1f}"),
    Metric("visuals.clip_mean", "critic score, mean", "higher", 0.02, fmt="{:.3f}"),
    Metric("visuals.clip_min", "critic score, min", "higher", 0.03, fmt="{:.3f}"),
    Metric("visuals.attempts_per_scene", "picture attempts per scene", "lower", 0.25),
    Metric("visuals.below_bar_share", "below-bar scenes", "lower", 0.05, fmt="{:.0%}"),
    Metric("visuals.min_contrast", "min text contrast (WCAG)", "higher", 0.1, fmt="{:.1f}"),
    Metric("visuals.min_font_px", "smallest font (px)", "higher", 1.0, fmt="{:.0f}"),
    Metric("visuals.overflow_share", "slides with cut text", "lower", 0.05, fmt="{:.0%}"),
    Metric("content.concept_coverage", "key-concept coverage", "higher", 0.05, fmt="{:.0%}"),
    Metric("content.rubric_mean", "judge rubric, mean (1-5)", "higher", 0.25),
    Metric("content.rubric.accuracy.score", "judge: accuracy", "higher", 0.5, fmt="{:.1f}"),
    Metric("content.rubric.clarity.score", "judge: clarity", "higher", 0.5, fmt="{:.1f}"),
    Metric("content.rubric.logical_flow.score", "judge: logical flow", "higher", 0.5, fmt="{:.1f}"),
    Metric("content.rubric.engagement.score", "judge: engagement", "higher", 0.5, fmt="{:.1f}"),
    Metric("content.quiz_score", "quiz answered from the lesson", "higher", 0.1, fmt="{:.0%}"),
    Metric("cost.total_tokens", "LLM tokens", "lower", 0.10, relative=True, fmt="{:.0f}"),
    Metric("cost.price_usd", "estimated price (USD)", "lower", 0.10, relative=True, fmt="{:.4f}"),
    Metric("cost.make_seconds", "wall time to make (s)", "lower", 0.25, relative=True, fmt="{:.1f}", per_lesson=False),
)
METRIC_BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}


def mean(values: Iterable[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None
