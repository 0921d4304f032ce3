"""The lesson as Markdown: objectives, a transcript with each scene's time, the questions and their answers."""

from __future__ import annotations

from pathlib import Path

from lessonforge.agent.export.common import clock, lesson_title
from lessonforge.agent.project import Manifest, Project
from lessonforge.tools.cache import atomic_write_text

LETTERS = "ABCDEFGHIJ"


def render_markdown(manifest: Manifest) -> str:
    req = manifest.request
    duration = manifest.video.duration if manifest.video else sum(s.hold_seconds for s in manifest.scenes)
    lines = [
        f"# {lesson_title(manifest)}",
        "",
        f"{req.topic} · for {req.audience} · {clock(duration)} · {len(manifest.scenes)} scenes "
        f"· language {req.language}",
        "",
    ]
    if manifest.outline is not None:
        lines += ["## Objectives", "", *[f"- {o}" for o in manifest.outline.objectives], ""]
    lines += ["## Transcript", ""]
    for s in manifest.scenes:
        lines += [f"### {s.index}. {s.title} ({clock(s.start)}–{clock(s.end)})", ""]
        if s.bullets:
            lines += [f"*On screen:* {' · '.join(s.bullets)}", ""]
        lines += [s.narration, ""]
    quiz = manifest.quiz
    if quiz is not None and quiz.questions:
        lines += ["## Questions", ""]
        for n, q in enumerate(quiz.questions, 1):
            lines += [f"{n}. {q.stem}", ""]
            lines += [f"   - {LETTERS[k]}. {o}" for k, o in enumerate(q.options)]
            lines += [""]
        lines += ["## Answers", ""]
        for n, q in enumerate(quiz.questions, 1):
            title = manifest.scenes[q.scene - 1].title if q.scene <= len(manifest.scenes) else ""
            lines += [f"{n}. **{LETTERS[q.answer - 1]}** ({q.options[q.answer - 1]}): {q.explanation} "
                      f"(scene {q.scene}{f', {title}' if title else ''})"]
        lines += [""]
    return "\n".join(lines)


def write_markdown(project: Project, manifest: Manifest, out: Path) -> Path:
    return atomic_write_text(out / "lesson.md", render_markdown(manifest))
