"""The LLM judge: a rubric, and a quiz written from the topic alone and answered from the lesson alone.

Every judge output is a pydantic model requested as structured output from any `lessonforge.tools.base.LLM`
(the prompts are evals/prompts/*.md). The quiz runs in three calls:

    write   questions and reference answers, from the topic and audience only
    answer  the judge answers them from the lesson's narration and slide text only
    grade   the judge grades each answer against its reference (structured: correct yes/no + reason)

and scores the fraction graded correct.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field, model_validator

from lessonforge.evals import fakejudge, prompts
from lessonforge.tools.base import LLM, Message
from lessonforge.tools.contract import Contract, items, text


class _Strict(Contract):
    """Judge outputs follow the same contract as the lesson's: what the schema allows is accepted."""


class _Judged(_Strict):
    """A judge's output; with the fake LLM as judge (an offline dry run) it answers for itself."""

    @classmethod
    def fake_answer(cls, messages: Sequence[Any]) -> Any:
        return cls.model_validate(fakejudge.answer(cls.__name__, messages))


class Criterion(_Strict):
    score: int = Field(description="1 (poor) to 5 (excellent).", json_schema_extra={"minimum": 1, "maximum": 5})
    reason: str = text(300, "One sentence that points at something specific in the lesson.")

    @model_validator(mode="after")
    def _repair(self) -> Criterion:
        if not 1 <= self.score <= 5:  # a server that does not enforce the range: the nearest score counts
            self.note(f"score {self.score} is outside 1-5; counted as {min(5, max(1, self.score))}")
            object.__setattr__(self, "score", min(5, max(1, self.score)))
        self.fit_text("reason", 300)
        return self


class Rubric(_Judged):
    """A judge's review of one lesson."""

    accuracy: Criterion = Field(description="Every statement is correct; nothing important is wrong or misleading.")
    clarity: Criterion = Field(description="Terms defined on first use; short sentences that suit the audience.")
    logical_flow: Criterion = Field(description="Hook, objectives, one idea per scene in a sensible order, a recap.")
    engagement: Criterion = Field(description="Concrete examples, questions, conversational 'you'; holds attention.")

    def mean(self) -> float:
        return (self.accuracy.score + self.clarity.score + self.logical_flow.score + self.engagement.score) / 4


class QuizItem(_Strict):
    question: str = text(300, "One question about a core idea of the topic.")
    answer: str = text(300, "Its short reference answer: a word, a number or one sentence.")


class QuizQuestions(_Judged):
    """A quiz written from the topic alone."""

    questions: list[QuizItem] = items(1, 20, "The questions, as many as asked for.")


class QuizAnswer(_Strict):
    number: int = Field(description="The question's number.")
    answer: str = text(400, "The answer found in the lesson, or 'not covered'.")


class QuizAnswers(_Judged):
    """Answers taken from the lesson alone."""

    answers: list[QuizAnswer] = items(0, 20, "One answer per question, by number.")


class Grade(_Strict):
    number: int = Field(description="The question's number.")
    correct: bool = Field(description="True when the answer means the same as the reference answer.")
    reason: str = text(300, "One sentence: why it is right or wrong.")


class QuizGrades(_Judged):
    """Each answer graded against its reference."""

    grades: list[Grade] = items(0, 20, "One grade per question, by number.")


class QuizItemResult(BaseModel):
    question: str
    reference: str
    answer: str
    correct: bool
    reason: str


class QuizResult(BaseModel):
    items: list[QuizItemResult]
    score: float


# --------------------------------------------------------------------------- helpers


def lesson_text(scenes: Sequence[Any]) -> str:
    """The lesson as the judge reads it: per scene the slide's title and bullets, then the narration."""
    blocks = []
    for k, sc in enumerate(scenes, 1):
        bullets = " • ".join(sc.bullets) if sc.bullets else "(no bullets)"
        blocks.append(f"Scene {k}\nSlide: {sc.title} — {bullets}\nNarration: {sc.narration}")
    return "\n\n".join(blocks)


def quiz_score(grades: Mapping[int, bool], count: int) -> float:
    """Fraction of questions 1..count graded correct (an ungraded question counts as wrong)."""
    if count <= 0:
        raise ValueError("a quiz needs at least one question")
    return sum(1 for n in range(1, count + 1) if grades.get(n, False)) / count


async def _ask(llm: LLM, template: str, schema: type[BaseModel], **values: Any) -> Any:
    system, user = prompts.messages(template, **values)
    return await llm.structured([Message("system", system), Message("user", user)], schema)


# --------------------------------------------------------------------------- the judge


async def rubric(llm: LLM, *, topic: str, audience: str, language: str, minutes: float, lesson: str) -> Rubric:
    return await _ask(llm, "rubric", Rubric, topic=topic, audience=audience, language=language,
                      minutes=f"{minutes:g}", lesson=lesson)


async def quiz(llm: LLM, *, topic: str, audience: str, language: str, lesson: str, count: int = 5) -> QuizResult:
    written: QuizQuestions = await _ask(llm, "quiz_write", QuizQuestions, topic=topic, audience=audience,
                                        language=language, count=count)
    asked = written.questions[:count]
    numbered = "\n".join(f"{n}. {it.question}" for n, it in enumerate(asked, 1))
    answered: QuizAnswers = await _ask(llm, "quiz_answer", QuizAnswers, lesson=lesson, questions=numbered)
    answers = {a.number: a.answer.strip() for a in answered.answers}
    listing = "\n\n".join(
        f"Question {n}: {it.question}\nReference answer: {it.answer}\nGiven answer: {answers.get(n) or '(none)'}"
        for n, it in enumerate(asked, 1)
    )
    graded: QuizGrades = await _ask(llm, "quiz_grade", QuizGrades, items=listing)
    grades = {g.number: g for g in graded.grades}
    results = [
        QuizItemResult(
            question=it.question,
            reference=it.answer,
            answer=answers.get(n, ""),
            correct=bool(grades[n].correct) if n in grades and answers.get(n) else False,
            reason=grades[n].reason if n in grades else "not graded by the judge",
        )
        for n, it in enumerate(asked, 1)
    ]
    score = quiz_score({n: r.correct for n, r in enumerate(results, 1)}, len(results))
    return QuizResult(items=results, score=score)
