"""Learner questions: the LLM step that writes them, and how edits and imports carry them along.

The quiz is written once the lesson's scenes are final (a node after assemble) and stored in
`lesson.json`. An edit, an import or an undo hands the current quiz to the graph; it is kept as long
as every question still points at a scene of the lesson, and only written again when there is none
(the first make, a new language or audience, every question's scene deleted).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from langgraph.runtime import Runtime
from pydantic import Field, ValidationError, create_model

from lessonforge.agent.config import describe_validation
from lessonforge.agent.context import Context
from lessonforge.agent.nodes import ask, emit
from lessonforge.agent.project import now
from lessonforge.agent.schemas import Question, Quiz, QuizChange, SceneDraft
from lessonforge.agent.state import LessonState
from lessonforge.tools.base import ConfigError, LLMError
from lessonforge.tools.contract import items

MIN_QUESTIONS, MAX_QUESTIONS = 3, 5
QUESTION_WORDS = 45  # a question's stem, options and explanation, for a local model's ETA


class QuizError(ConfigError):
    """A quiz change that cannot be applied (a question that does not exist, say)."""


@cache
def quiz_model(scenes: int) -> type[Quiz]:
    """The Quiz schema the LLM fills for a lesson of ``scenes`` scenes: 3-5 questions, scene numbers in range.

    The limits are part of the JSON schema (the contract), so constrained decoding keeps to them; a
    backend that does not enforce them is repaired after (questions on no scene are left out).
    """
    question = create_model(
        "Question", __base__=Question,
        scene=(int, Field(description=f"The number of the scene this question checks (1-{scenes}).",
                          json_schema_extra={"minimum": 1, "maximum": scenes})),
    )
    return create_model(
        "Quiz", __base__=Quiz,
        # a model made at run time is no type to a checker
        questions=(list[question],  # type: ignore[valid-type]
                   items(MIN_QUESTIONS, MAX_QUESTIONS, Quiz.model_fields["questions"].description)),
    )


def question_count(scenes: int) -> int:
    """How many questions to ask for: about one per two scenes, 3 to 5."""
    return max(MIN_QUESTIONS, min(MAX_QUESTIONS, scenes // 2))


def fits(quiz: Quiz | None, scenes: int) -> bool:
    return quiz is not None and bool(quiz.questions) and all(1 <= q.scene <= scenes for q in quiz.questions)


def scene_lines(scenes: list[SceneDraft] | list[Any]) -> str:
    """The scenes as the quiz writer sees them: one JSON line each."""
    return "\n".join(
        json.dumps({"scene": n, "title": s.title, "bullets": list(s.bullets), "narration": s.narration},
                   ensure_ascii=False)
        for n, s in enumerate(scenes, 1)
    )


def question_lines(quiz: Quiz | None) -> str:
    """The questions as the editor sees them: one JSON line each, numbered from 1."""
    if quiz is None or not quiz.questions:
        return "(no questions)"
    return "\n".join(json.dumps({"question": n, **q.model_dump()}, ensure_ascii=False)
                     for n, q in enumerate(quiz.questions, 1))


async def write_quiz(state: LessonState, runtime: Runtime[Context]) -> dict[str, Any]:
    """LLM: 3-5 multiple-choice questions on the finished scenes (kept when the lesson already has them)."""
    req = state["request"]
    ctx = await runtime.context.ready(req)
    records = [state["scenes"][k] for k in sorted(state.get("scenes", {}))]
    quiz = state.get("quiz")
    if fits(quiz, len(records)) or not records:
        return {}
    if ctx.llm is None:  # render and import ask no LLM: a lesson without questions stays without
        return {"quiz": None}
    count = question_count(len(records))
    emit("quiz", f"Writing {count} questions for the learner")
    t = now()
    outline = state.get("outline")
    try:
        written: Quiz = await ask(
            ctx, "quiz", quiz_model(len(records)), expect_words=QUESTION_WORDS * count,
            topic=req.topic, audience=req.audience, language=req.language,
            objectives="; ".join(outline.objectives) if outline is not None else "(none given)",
            scenes=scene_lines(records), count=count, total=len(records),
        )
    except LLMError as err:  # the video is made: a lesson without questions is kept, and says why
        return _without_questions(ctx, str(err), t)
    kept = [q for q in written.questions if 1 <= q.scene <= len(records)]
    notes = [*written.repairs, *(f"question on scene {q.scene} left out: there is no such scene"
                                 for q in written.questions if q not in kept)]
    if len(kept) > MAX_QUESTIONS:
        notes.append(f"kept the first {MAX_QUESTIONS} of {len(kept)} questions")
        kept = kept[:MAX_QUESTIONS]
    if not kept:
        return _without_questions(ctx, "; ".join(notes) or "the reply held none", t)
    return {"quiz": Quiz(questions=[Question.model_validate(q.model_dump()) for q in kept]),
            "warnings": [f"learner questions: {n}" for n in notes], "timings": {"quiz": now() - t}}


def _without_questions(ctx: Context, why: str, started: float) -> dict[str, Any]:
    """The video is made: a lesson without questions is kept, and says why and how to ask again."""
    note = f"no learner questions: {why}; lessonforge edit {ctx.project.root} \"write the questions\" asks again"
    emit("quiz", note, level="warning")
    return {"quiz": None, "warnings": [note], "timings": {"quiz": now() - started}}


def apply_changes(quiz: Quiz | None, change: QuizChange, scenes: int) -> tuple[Quiz | None, list[str]]:
    """The quiz after ``change`` (question numbers are the current ones) and what changed.

    Raises QuizError naming the problem (a question or scene that does not exist, an option
    number out of range) so the reply can say what to ask instead.
    """
    questions = list(quiz.questions) if quiz is not None else []
    n = len(questions)
    named = sorted({k for k in [e.question for e in change.edits] + change.delete if not 1 <= k <= n})
    if named:
        have = f"this lesson has {n} question{'s' * (n != 1)}" + (f" (1-{n})" if n else "")
        raise QuizError(f"there is no question {', '.join(map(str, named))}: {have}")
    changed: list[str] = []
    for e in change.edits:
        update = e.changes()
        try:
            new = Question.model_validate({**questions[e.question - 1].model_dump(), **update})
        except ValidationError as err:
            raise QuizError(f"question {e.question}: {describe_validation(err)}") from None
        if new.broken:
            raise QuizError(f"question {e.question}: {new.broken}")
        if new != questions[e.question - 1]:
            questions[e.question - 1] = new
            changed.append(f"question {e.question} ({', '.join(update)})")
    gone = set(change.delete)
    questions = [q for k, q in enumerate(questions, 1) if k not in gone]
    changed += [f"deleted question {k}" for k in sorted(gone)]
    broken = [q.broken for q in change.add if q.broken]
    if broken:
        raise QuizError(f"a new question cannot be asked: {broken[0]}")
    questions += change.add
    changed += [f"new question {len(questions) - len(change.add) + i}" for i in range(1, len(change.add) + 1)]
    wrong = sorted({q.scene for q in questions if not 1 <= q.scene <= scenes})
    if wrong:
        raise QuizError(f"there is no scene {', '.join(map(str, wrong))}: this lesson has {scenes} scenes (1-{scenes})")
    if changed and not questions:
        raise QuizError("that would delete every question; keep at least one, or ask for new ones")
    return (Quiz(questions=questions) if questions else None), changed


def renumber(quiz: Quiz | None, moved: dict[int, int]) -> tuple[Quiz | None, list[str]]:
    """Point each question at its scene's new number after scenes moved; questions whose scene was
    deleted are dropped (an empty quiz becomes None, to be written again)."""
    if quiz is None:
        return None, []
    kept, notes = [], []
    for k, q in enumerate(quiz.questions, 1):
        if q.scene in moved:
            kept.append(q if moved[q.scene] == q.scene else q.model_copy(update={"scene": moved[q.scene]}))
        else:
            notes.append(f"dropped question {k} (its scene {q.scene} was deleted)")
    return (Quiz(questions=kept) if kept else None), notes
