"""The ``fake:`` LLM of a lesson: it answers the agent's own schemas from the prompts it is sent (the scene
count and word budgets they ask for), for dry runs and tests:

    lessonforge make "photosynthesis" --llm fake: --images fake: --speech fake: --critic fake:

The other fakes (pictures, speech, critic) know nothing of lessons and live in lessonforge.tools.fakes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from lessonforge.agent import schemas as s
from lessonforge.tools import fakes
from lessonforge.tools.base import Message


class FakeLLM(fakes.FakeLLM):
    """Scripted replies first (see :class:`lessonforge.tools.fakes.FakeLLM`), then the lesson's answers."""

    def __init__(self, model: str = "", *, script: Sequence[Any] = (), max_repairs: int = 2) -> None:
        super().__init__(model, script=script, max_repairs=max_repairs, answer=default_answer)


def default_answer(messages: list[Message], schema: type[BaseModel]) -> BaseModel:
    """A plausible answer for each of the lesson's schemas, shaped by what the prompt asks; other schemas
    answer for themselves (:func:`lessonforge.tools.fakes.schema_answer`)."""
    prompt = "\n".join(str(m.content) for m in messages if m.role == "user")
    topic = _field(prompt, "Topic") or "the topic"
    if schema is s.Outline:
        seconds = float(_number(prompt, r"Total narration time: ([\d.]+) seconds") or 60)
        n = int(_number(prompt, r"Sections: about (\d+)") or 4)
        per = round(seconds / n, 1)
        return s.Outline(
            title=topic.title()[:60],
            hook=f"Have you ever wondered how {topic} works?",
            objectives=[f"Explain what {topic} is", f"Describe the main parts of {topic}"],
            sections=[
                s.OutlineSection(title=f"{topic.title()}: part {i + 1}", key_points=[f"idea {i + 1}"], seconds=per)
                for i in range(n)
            ],
            check_question=f"What is the first step of {topic}?",
            check_answer=f"The first step of {topic} is the one we met in part one.",
        )
    if issubclass(schema, s.Script):  # sized to the request (schemas.sized_script)
        n = int(_number(prompt, r"Write exactly (\d+) scenes") or 3)
        found = re.search(r"Word budgets[^:]*:\s*([\d,\s]+)", prompt)
        budgets = [int(b) for b in re.findall(r"\d+", found.group(1))] if found else []
        budgets = (budgets + [30] * n)[:n]
        subjects = ["leaf", "sunlight", "water", "roots", "sugar", "oxygen", "cell", "river", "mountain", "engine"]
        scenes = [_scene(s, i, n, subjects[i % len(subjects)], topic, budgets[i]) for i in range(n)]
        return s.Script(title=topic.title()[:60], scenes=scenes)
    if schema is s.SceneReplacement:
        k = int(_number(prompt, r"^Scene (\d+) of the lesson") or 1)
        budget = int(_number(prompt, r"about (\d+)\s+words") or 30)
        return s.SceneReplacement(scene=_scene(s, k - 1, k + 1, "cell", topic, budget))
    if schema is s.NarrationRewrite:
        budget = int(_number(prompt, r"must have about (\d+) words") or 30)
        title = _field(prompt, "Scene title") or topic
        return s.NarrationRewrite(narration=_sentence_block(f"Here is {title} in short.", budget))
    if schema is s.PromptRevision:
        old = _field(prompt, "Prompt used") or "an illustration"
        return s.PromptRevision(prompt=f"{old}, shown up close", reason="Made the subject more prominent.")
    if schema is s.EditPlan:
        return _edit_plan(s, _field(prompt, "The person says"), prompt)
    if issubclass(schema, s.Quiz):  # lessonforge.agent.quiz asks for a subclass with the lesson's scene range
        return _quiz(s, schema, prompt)
    return fakes.schema_answer(messages, schema)


def _json_lines(prompt: str, key: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in prompt.splitlines() if line.startswith(f'{{"{key}"')]


def _quiz(s: Any, schema: type[BaseModel], prompt: str) -> BaseModel:
    """Questions that each ask which scene covers one of its key phrases; the answer's place rotates."""
    scenes = _json_lines(prompt, "scene")
    count = int(_number(prompt, r"Write (\d+) questions") or 3)
    titles = list(dict.fromkeys(sc["title"] for sc in scenes))
    questions = []
    for i in range(count):
        sc: dict[str, Any] = (scenes[round(i * (len(scenes) - 1) / max(1, count - 1))] if scenes
                              else {"scene": 1, "title": "the lesson"})
        others = [t for t in titles if t != sc["title"]][:3]
        others += [f"Not covered: idea {k}" for k in range(1, 3 - len(others) + 1)]
        at = i % (len(others) + 1)
        options = [*others[:at], sc["title"], *others[at:]]
        phrase = (sc.get("bullets") or [sc["title"]])[0]
        questions.append(dict(stem=f"Which part of the lesson covers {phrase.lower()!r}?", options=options,
                              answer=at + 1, explanation=f"Scene {sc['scene']}, {sc['title']!r}, covers it.",
                              scene=sc["scene"]))
    return schema.model_validate({"questions": questions})


def _question_plan(s: Any, n: int, text: str, prompt: str, plan: dict[str, Any]) -> Any:
    """Harder or easier question N (a longer or shorter stem, one more or one less option), or remove it."""
    questions = _json_lines(prompt, "question")
    if not 1 <= n <= len(questions):  # named as asked: the agent answers that it does not exist
        edit = s.QuestionEdit(question=n, stem=None, options=None, answer=None, explanation=None, scene=None)
        change = s.QuizChange(edits=[edit], add=[], delete=[])
        return s.EditPlan(action="edit", reply=f"Changed question {n}.", **{**plan, "quiz": change})
    old = questions[n - 1]
    if any(w in text for w in ("delete", "remove", "drop")):
        change = s.QuizChange(edits=[], add=[], delete=[n])
        return s.EditPlan(action="edit", reply=f"Removed question {n}.", **{**plan, "quiz": change})
    options, answer = list(old["options"]), old["answer"]
    if "harder" in text:
        stem = f"{old['stem'].rstrip('?')}, and why does it matter?"
        if len(options) < 5:
            options.append(f"A part that sounds close: {options[answer - 1].lower()} again")
    else:
        stem = old["stem"]
        if len(options) > 3:
            options.pop(next(k for k in range(len(options) - 1, -1, -1) if k != answer - 1))
            answer = options.index(old["options"][answer - 1]) + 1
    edit = s.QuestionEdit(question=n, stem=stem, options=options, answer=answer, explanation=None, scene=None)
    change = s.QuizChange(edits=[edit], add=[], delete=[])
    word = "harder" if "harder" in text else "easier"
    return s.EditPlan(action="edit", reply=f"Made question {n} {word}.", **{**plan, "quiz": change})


def _edit_plan(s: Any, message: str, prompt: str) -> Any:
    """A rule-following editor for dry runs: understands a few plain requests, asks about the rest."""
    lesson = s.LessonChange(voice=None, language=None, audience=None, minutes=None, theme=None, aspect=None)
    plan = {"scene_edits": [], "inserts": [], "deletes": [], "order": None, "lesson": lesson}
    text = message.lower()
    scenes = _json_lines(prompt, "scene")
    if "questions" in text and "(no questions)" in prompt:  # they are written when the lesson is made again
        return s.EditPlan(action="edit", reply="Writing the questions.", **plan)
    q = re.search(r"question (\d+)", text)
    if q and any(w in text for w in ("harder", "easier", "simpler", "delete", "remove", "drop")):
        return _question_plan(s, int(q.group(1)), text, prompt, plan)
    m = re.search(r"scene (\d+)", text)
    n = int(m.group(1)) if m else None
    if "voice" in text and "british" in text:
        plan["lesson"] = lesson.model_copy(update={"voice": "en-GB"})
        return s.EditPlan(action="edit", reply="Switched to a British voice.", **plan)
    if n is not None and any(w in text for w in ("delete", "remove", "drop")):
        return s.EditPlan(action="edit", reply=f"Removed scene {n}.", **{**plan, "deletes": [n]})
    renamed = re.search(r"\b(?:rename|retitle) scene \d+ (?:to|as) [\"']?([^\"']+?)[\"']?\.?\s*$", message, re.I)
    if n is not None and renamed:
        edit = s.SceneEdit(scene=n, role=None, title=renamed.group(1), bullets=None, narration=None, key=None,
                           answer=None, visual=None)
        return s.EditPlan(action="edit", reply=f"Renamed scene {n}.", **{**plan, "scene_edits": [edit]})
    if n is not None and any(w in text for w in ("simpler", "shorter", "easier")):
        old = next((sc for sc in scenes if sc["scene"] == n), None)
        if old is None:  # let the plan name it: the agent answers that it does not exist
            narration = "Short and simple."
        else:
            words = old["narration"].split()
            narration = " ".join(words[: max(6, len(words) * 2 // 3)]).rstrip(".,;") + "."
        edit = s.SceneEdit(scene=n, role=None, title=None, bullets=None, narration=narration, key=None, answer=None,
                           visual=None)
        return s.EditPlan(action="edit", reply=f"Made scene {n} simpler.", **{**plan, "scene_edits": [edit]})
    if "theme" in text and "dark" in text:
        plan["lesson"] = lesson.model_copy(update={"theme": "dark"})
        return s.EditPlan(action="edit", reply="Switched to the dark theme.", **plan)
    return s.EditPlan(action="clarify", reply="Which scene do you mean, and what should change?", **plan)


def _scene(s: Any, i: int, n: int, subject: str, topic: str, words: int) -> Any:
    """Scene ``i`` of ``n`` of a fake script: a hook first, then concepts, each with a picture."""
    return s.SceneDraft(
        role="hook" if i == 0 else "concept",
        title=f"Part {i + 1}: the {subject}",
        bullets=[f"The {subject}", f"Step {i + 1} of {topic}"],
        narration=_sentence_block(f"Scene {i + 1} is about the {subject} in {topic}.", words),
        key="",
        answer="",
        visual=s.Picture(kind="picture", prompt=f"a clear flat illustration of a {subject}, scene {i + 1}"),
    )


def _field(text: str, label: str) -> str:
    m = re.search(rf"^{label}:\s*(.*)$", text, re.MULTILINE)
    return m.group(1).strip() if m else ""


def _number(text: str, pattern: str) -> str | None:
    m = re.search(pattern, text)
    return m.group(1) if m else None


def _sentence_block(first: str, words: int) -> str:
    filler = [
        "You",
        "can",
        "see",
        "how",
        "each",
        "part",
        "connects",
        "to",
        "the",
        "next",
        "one",
        "in",
        "a",
        "simple",
        "way.",
    ]
    out = first.split()
    i = 0
    while len(out) < words:
        out.append(filler[i % len(filler)])
        i += 1
    text = " ".join(out[: max(words, 3)])
    return text.rstrip(".") + "."
