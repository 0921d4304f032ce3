"""The fake LLM judges offline (`lessonforge eval ... --llm fake:`): the rubric and the quiz run every
step and their scores follow the lesson, instead of stopping with "no default answer"."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lessonforge.agent.fakes import FakeLLM
from lessonforge.evals import judge


def _lesson(*narrations: str) -> str:
    scenes = [
        SimpleNamespace(title=f"Scene {k}", bullets=["a point"], narration=n) for k, n in enumerate(narrations, 1)
    ]
    return judge.lesson_text(scenes)


GOOD = _lesson(
    "Have you ever wondered how a leaf eats? You will see it uses sunlight.",
    "Sunlight, water and carbon dioxide go in. You get sugar and oxygen out.",
    "To recap: photosynthesis turns light into sugar. Can you name what goes in?",
)
POOR = _lesson(
    "Energy conversion processes in autotrophic organisms involve a long chain of reactions that take place "
    "within specialised organelles over an extended series of intermediate steps and products.",
)


async def test_the_rubric_follows_the_lesson():
    kwargs = {"topic": "photosynthesis", "audience": "primary school", "language": "en", "minutes": 1}
    good = await judge.rubric(FakeLLM(), lesson=GOOD, **kwargs)
    poor = await judge.rubric(FakeLLM(), lesson=POOR, **kwargs)
    assert good.mean() > poor.mean()
    assert good.clarity.score > poor.clarity.score and good.engagement.score > poor.engagement.score
    assert good.logical_flow.score > poor.logical_flow.score
    assert all(c.reason.startswith("Offline fake judge") for c in (good.accuracy, good.clarity))
    assert "cannot be checked offline" in good.accuracy.reason


@pytest.mark.parametrize(("lesson", "score"), [(GOOD, 1.0), (POOR, 0.0)])
async def test_the_quiz_scores_the_topic_words_the_lesson_uses(lesson, score):
    result = await judge.quiz(FakeLLM(), topic="photosynthesis and sunlight", audience="primary school",
                              language="en", lesson=lesson, count=4)
    assert len(result.items) == 4
    assert result.score == score
    assert all(item.reason.startswith("Offline fake judge") for item in result.items)
