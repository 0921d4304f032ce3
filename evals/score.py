"""Score one finished lesson folder: read its manifest and files, then apply evals/metrics.py.

A metric that cannot be measured (no video, a judge that fails) is left empty and the reason is
kept in ``LessonMetrics.errors``; scoring itself never fails a topic.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from lessonforge.agent.nodes import count_words
from lessonforge.agent.project import Manifest, Project
from lessonforge.agent.topics import TopicSpec
from lessonforge.evals import judge as judging
from lessonforge.evals import metrics as m
from lessonforge.tools.base import LLM

DEFAULT_WPM = 150.0


def delivery(manifest: Manifest, project: Project, spec: TopicSpec, errors: list[str]) -> m.Delivery:
    target = spec.minutes * 60
    d = m.Delivery(target_s=target)
    scenes = manifest.scenes
    d.words = sum(count_words(s.narration) for s in scenes)
    d.narration_s = round(sum(s.speech.duration for s in scenes if s.speech is not None), 3)
    d.wpm = _r(m.words_per_minute(d.words, d.narration_s), 1)
    d.wpm_target = float(manifest.settings.get("words_per_minute") or DEFAULT_WPM)
    if d.wpm is not None:
        d.wpm_deviation = round(abs(d.wpm - d.wpm_target) / d.wpm_target, 4)
    d.readability_grade, d.readability_formula = m.readability(
        "\n".join(s.narration for s in scenes), manifest.request.language
    )
    d.grade_band = m.grade_band(manifest.request.audience)
    d.grade_gap = _r(m.grade_gap(d.readability_grade, d.grade_band), 2)
    d.grade_gap_abs = abs(d.grade_gap) if d.grade_gap is not None else None
    if manifest.video is None:
        errors.append("delivery: the lesson has no video")
        return d
    try:
        from lessonforge.tools.media import video

        info = video.probe(project.resolve(manifest.video.file))
        d.duration_s = round(info.duration, 3)
        d.duration_error = round(m.duration_error(info.duration, target), 4)
        d.duration_abs_error = abs(d.duration_error)
        d.av_gap_s = _r(m.av_gap(info.video_duration, info.audio_duration), 3)
    except Exception as err:
        errors.append(f"delivery: cannot probe the video: {err}")
    try:
        srt_text = project.resolve(manifest.video.srt).read_text("utf-8")
        check = m.check_subtitles(srt_text, d.duration_s)
        d.subtitles_valid, d.subtitle_cues, d.subtitle_problems = check.valid, check.cues, check.problems[:10]
    except OSError as err:
        errors.append(f"delivery: cannot read the subtitles: {err}")
    return d


def visuals(manifest: Manifest, raw: dict[str, Any]) -> m.Visuals:
    stats = m.picture_stats(manifest.scenes)
    v = m.Visuals(
        scenes=stats.scenes, illustrated=stats.illustrated, attempts=stats.attempts, below_bar=stats.below_bar
    )
    if stats.scores:
        v.clip_mean = round(sum(stats.scores) / len(stats.scores), 4)
        v.clip_min = round(min(stats.scores), 4)
    if stats.illustrated:
        v.attempts_per_scene = round(stats.attempts / stats.illustrated, 3)
        v.below_bar_share = round(stats.below_bar / stats.illustrated, 4)
        v.first_try_share = round(stats.first_try / stats.illustrated, 4)
    v.contrast = m.theme_contrast(manifest.request.theme)
    text_roles = [v.contrast[r] for r in ("title", "text", "muted") if r in v.contrast]  # accent marks graphics
    v.min_contrast = min(text_roles) if text_roles else None
    # the smallest font size is read when the manifest records it per scene ("min_font_px")
    recorded = [s.get("min_font_px") for s in raw.get("scenes", []) if isinstance(s, dict)]
    sizes = [int(x) for x in recorded if isinstance(x, int | float)]
    v.min_font_px = min(sizes) if sizes else None
    v.overflow = sum(1 for s in manifest.scenes if s.slide_overflow)
    v.overflow_share = round(v.overflow / stats.scenes, 4) if stats.scenes else None
    return v


def cost(manifest: Manifest, make_seconds: float) -> m.Cost:
    usage = manifest.usage
    c = m.Cost(
        llm=manifest.backends.get("llm", ""),
        llm_calls=int(usage.get("calls", 0)),
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        stage_seconds=dict(manifest.timings),
        make_seconds=round(make_seconds, 3),
    )
    c.total_tokens = c.prompt_tokens + c.completion_tokens
    c.price_usd = m.estimate_price(c.llm, c.prompt_tokens, c.completion_tokens) if c.llm else None
    return c


async def content(
    manifest: Manifest, spec: TopicSpec, judge: LLM | None, errors: list[str], *, quiz_questions: int = 5
) -> m.Content:
    scenes = manifest.scenes
    texts = [t for s in scenes for t in (s.title, *s.bullets, s.narration)]
    coverage, found, missing = m.concept_coverage(spec.key_concepts, texts, spec.language)
    c = m.Content(concept_coverage=round(coverage, 4), concepts_found=found, concepts_missing=missing)
    if judge is None:
        return c
    lesson = judging.lesson_text(scenes)
    req = manifest.request
    rubric: judging.Rubric | BaseException
    quiz: judging.QuizResult | BaseException
    rubric, quiz = await asyncio.gather(
        judging.rubric(judge, topic=req.topic, audience=req.audience, language=req.language,
                       minutes=req.minutes, lesson=lesson),
        judging.quiz(judge, topic=req.topic, audience=req.audience, language=req.language,
                     lesson=lesson, count=quiz_questions),
        return_exceptions=True,
    )
    if isinstance(rubric, BaseException):
        _reraise_fatal(rubric)
        errors.append(f"content: judge rubric failed: {rubric}")
    else:
        c.rubric, c.rubric_mean = rubric, round(rubric.mean(), 3)
    if isinstance(quiz, BaseException):
        _reraise_fatal(quiz)
        errors.append(f"content: quiz check failed: {quiz}")
    else:
        c.quiz, c.quiz_score = quiz, round(quiz.score, 4)
    return c


def _reraise_fatal(err: BaseException) -> None:
    if not isinstance(err, Exception):  # cancellation, KeyboardInterrupt
        raise err


async def score_lesson(
    folder: Path | str,
    spec: TopicSpec,
    *,
    judge: LLM | None = None,
    make_seconds: float = 0.0,
    quiz_questions: int = 5,
) -> m.LessonMetrics:
    """Every metric of the lesson in ``folder`` (made from ``spec``)."""
    t = time.perf_counter()
    project = Project(folder)
    manifest = project.load()
    raw = json.loads(project.manifest_path.read_text("utf-8"))
    errors: list[str] = []
    d = await asyncio.to_thread(delivery, manifest, project, spec, errors)
    result = m.LessonMetrics(
        delivery=d,
        visuals=visuals(manifest, raw),
        content=await content(manifest, spec, judge, errors, quiz_questions=quiz_questions),
        cost=cost(manifest, make_seconds),
        errors=errors,
    )
    result.cost.score_seconds = round(time.perf_counter() - t, 3)
    return result


def _r(x: float | None, nd: int) -> float | None:
    return round(x, nd) if x is not None else None
