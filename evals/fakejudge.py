"""The judge's answers when the judge is the fake LLM (`--judge fake:` or `--llm fake:`): an offline dry run.

The fake LLMs (`lessonforge.tools.fakes.FakeLLM`) ask a schema for its own answer (``fake_answer``);
the judge's schemas in `lessonforge.evals.judge` answer from here. The answers are worked out from the
prompt's text, so a dry run goes through every step of the rubric and the quiz and its scores still move with
the lesson:

- rubric: clarity from the narration's sentence length, flow from a recap at the end, engagement
  from questions and "you"; accuracy cannot be checked offline and gets the middle score, saying so.
- quiz: one question per significant word of the topic, the word quoted in it; the lesson "answers"
  with the word when it uses it, else "not covered"; the grade is whether the answer is the word. The
  score is the share of the topic's words the lesson uses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

OFFLINE = "Offline fake judge"


def _user(messages: Sequence[Any]) -> str:
    return "\n".join(str(m.content) for m in messages if m.role == "user")


def _field(text: str, label: str) -> str:
    m = re.search(rf"^{label}:\s*(.*)$", text, re.MULTILINE)
    return m.group(1).strip() if m else ""


def _narration(text: str) -> list[str]:
    return [m.strip() for m in re.findall(r"^Narration:\s*(.*)$", text, re.MULTILINE)]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def topic_words(topic: str) -> list[str]:
    """The words of a topic a quiz asks about (longer than three letters, each once)."""
    return list(dict.fromkeys(w for w in _words(topic) if len(w) > 3)) or _words(topic)[:1] or ["topic"]


def rubric(messages: Sequence[Any]) -> dict[str, Any]:
    text = _user(messages)
    narration = _narration(text)
    sentences = [s for n in narration for s in re.split(r"[.!?]+", n) if s.strip()]
    mean_len = sum(len(s.split()) for s in sentences) / max(1, len(sentences))
    clarity = 4 if mean_len <= 16 else 3 if mean_len <= 24 else 2
    scenes = len(narration)
    recap = any(w in " ".join(narration[-2:]).lower() for w in ("recap", "summary", "to sum up", "remember"))
    flow = 4 if scenes >= 3 and recap else 3 if scenes >= 3 else 2
    asks = sum(n.count("?") for n in narration)
    you = sum(_words(n).count("you") for n in narration)
    engagement = 4 if asks and you >= scenes else 3 if asks or you else 2

    def criterion(score: int, reason: str) -> dict[str, Any]:
        return {"score": score, "reason": f"{OFFLINE}: {reason}"}

    return {
        "accuracy": criterion(3, "facts cannot be checked offline; use a real judge LLM for accuracy."),
        "clarity": criterion(clarity, f"narration sentences average {mean_len:.0f} words."),
        "logical_flow": criterion(flow, f"{scenes} scenes, {'with' if recap else 'without'} a recap at the end."),
        "engagement": criterion(engagement, f"{asks} question(s) and {you} 'you' in the narration."),
    }


def quiz_questions(messages: Sequence[Any]) -> dict[str, Any]:
    text = _user(messages)
    m = re.search(r"Write exactly (\d+) questions", text)
    count = int(m.group(1)) if m else 5
    words = topic_words(_field(text, "Topic"))
    return {"questions": [
        {"question": f"Which idea of the topic is named by the word '{words[k % len(words)]}'?",
         "answer": words[k % len(words)]}
        for k in range(count)
    ]}


def quiz_answers(messages: Sequence[Any]) -> dict[str, Any]:
    text = _user(messages)
    lesson, _, questions = text.partition("Answer each question by its number:")
    used = set(_words(lesson))
    answers = []
    for n, word in re.findall(r"^(\d+)\.\s.*?'([^']+)'", questions, re.MULTILINE):
        answers.append({"number": int(n), "answer": word if word.lower() in used else "not covered"})
    return {"answers": answers}


def quiz_grades(messages: Sequence[Any]) -> dict[str, Any]:
    text = _user(messages)
    grades = []
    for n, reference, given in re.findall(
        r"Question (\d+):.*?\nReference answer: (.*?)\nGiven answer: (.*?)(?:\n|$)", text, re.DOTALL
    ):
        correct = given.strip().lower() == reference.strip().lower()
        grades.append({"number": int(n), "correct": correct,
                       "reason": f"{OFFLINE}: the answer {'is' if correct else 'is not'} the reference word."})
    return {"grades": grades}


ANSWERS = {"Rubric": rubric, "QuizQuestions": quiz_questions, "QuizAnswers": quiz_answers, "QuizGrades": quiz_grades}


def answer(schema: str, messages: Sequence[Any]) -> dict[str, Any]:
    """The fake judge's reply (as JSON data) for the judge schema named ``schema``."""
    return ANSWERS[schema](messages)
