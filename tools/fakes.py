"""Fast, deterministic fakes of every interface, for tests and dry runs (``--llm fake:`` etc.).

They are registered like any other backend, so a dry run exercises the same graph, cache and
renderer as a real one:

    lessonforge make "photosynthesis" --llm fake: --images fake: --speech fake: --critic fake:

FakeLLM answers each schema from the prompt it is sent (it reads the scene count and word budgets
the prompts ask for) or from a script of canned answers. FakeImages draws a picture whose look
follows the prompt and seed and remembers the prompt in the PNG; FakeCritic scores word overlap
between that remembered prompt and each candidate prompt, so the contrastive logic behaves as it
would with CLIP. FakeSpeech writes a WAV of soft tones, one per word, at a fixed speaking rate.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import signal
import struct
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from lessonforge.tools.base import (
    CriticBackend,
    Image,
    ImageBackend,
    ImageRequest,
    LLMBackend,
    LLMError,
    Message,
    Speech,
    SpeechBackend,
    T,
    Usage,
    Verdict,
    Voice,
    WordTiming,
)
from lessonforge.tools.cache import atomic_path, thread_to_end
from lessonforge.tools.registry import BackendOptions

Responder = Callable[[list[Message], type[BaseModel]], BaseModel | str | dict]

_WORD = re.compile(r"\w[\w'’-]*", re.UNICODE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _seeded(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


# --------------------------------------------------------------------------- LLM


class FakeLLM(LLMBackend):
    """An LLM that answers from a script of canned replies, then from built-in generators.

    Each scripted item is a pydantic object, a dict, a JSON string (possibly invalid, to exercise
    repairs) or a callable ``(messages, schema) -> any of those``.
    """

    class Options(BackendOptions):
        """What ``fake:`` LLMs take."""

        script: Sequence[Any] = ()
        max_repairs: int = 2

    def __init__(self, model: str = "", *, script: Sequence[Any] = (), max_repairs: int = 2) -> None:
        self.name = f"fake:{model}"
        self.model = model
        self.script: list[Any] = list(script)
        self.max_repairs = max_repairs
        self.calls: list[tuple[list[Message], type[BaseModel]]] = []
        self.usage = Usage()

    async def structured(self, messages: list[Message], schema: type[T]) -> T:
        convo = list(messages)
        last_error = ""
        for _ in range(self.max_repairs + 1):
            self.calls.append((convo, schema))
            reply = self._next(convo, schema)
            try:
                if isinstance(reply, schema):
                    return reply
                if isinstance(reply, BaseModel):
                    reply = reply.model_dump()
                if isinstance(reply, dict):
                    return schema.model_validate(reply)
                return schema.model_validate_json(str(reply))
            except ValidationError as err:
                last_error = str(err)
                convo = [
                    *convo,
                    Message("assistant", str(reply)),
                    Message(
                        "user", f"Your JSON did not match the schema: {last_error}. Reply with corrected JSON only."
                    ),
                ]
        raise LLMError(f"fake LLM gave no valid {schema.__name__} after {self.max_repairs} repairs: {last_error}")

    def _next(self, messages: list[Message], schema: type[BaseModel]) -> Any:
        if self.script:
            item = self.script.pop(0)
            return item(messages, schema) if callable(item) and not isinstance(item, BaseModel) else item
        return default_answer(messages, schema)


def default_answer(messages: list[Message], schema: type[BaseModel]) -> BaseModel:
    """A plausible answer for each of LessonForge's schemas, shaped by what the prompt asks."""
    from lessonforge.agent import schemas as s  # the fakes answer the agent's own schemas

    hook = getattr(schema, "fake_answer", None)  # other packages' schemas answer for themselves
    if callable(hook):
        return hook(messages)
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
    raise LLMError(f"the fake LLM has no default answer for {schema.__name__}; script one")


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


# --------------------------------------------------------------------------- images


class FakeImages(ImageBackend):
    """Draws a deterministic picture per (prompt, seed); the prompt is kept in the PNG's info."""

    class Options(BackendOptions):
        """What ``fake:`` pictures take."""

        fail_seeds: Sequence[int] = ()
        fail_first: dict[str, int] | None = None

    def __init__(self, model: str = "", *, fail_seeds: Sequence[int] = (), fail_first: dict[str, int] | None = None) -> None:
        """``fail_seeds``: seeds whose picture shows something unrelated. ``fail_first``: for each key,
        the first N pictures of prompts containing it show something unrelated."""
        self.name = f"fake:{model}"
        self.model = model
        self.calls = 0
        self.fail_seeds = set(fail_seeds)
        self.fail_first = dict(fail_first or {})

    def load(self) -> None:
        return None

    async def generate(self, requests: Sequence[ImageRequest]) -> list[Image]:
        from PIL import Image as PILImage
        from PIL import ImageDraw

        await asyncio.sleep(0)  # a real backend yields here; count only calls that went on to draw
        self.calls += 1
        out = []
        for req in requests:
            rnd = _seeded(req.prompt, req.seed)
            bg = ((rnd >> 0) & 0xFF, (rnd >> 8) & 0xFF, (rnd >> 16) & 0xFF)
            img = PILImage.new("RGB", (req.width, req.height), bg)
            draw = ImageDraw.Draw(img)
            for k in range(6):
                r = _seeded(req.prompt, req.seed, k)
                x, y = r % req.width, (r >> 16) % req.height
                size = 10 + (r >> 32) % max(11, req.width // 3)
                colour = ((r >> 40) & 0xFF, (r >> 48) & 0xFF, (r >> 56) & 0xFF)
                draw.ellipse([x - size, y - size, x + size, y + size], fill=colour)
            # what the picture "shows": the prompt, unless this seed is scripted to draw something else
            unrelated = req.seed in self.fail_seeds
            for key, left in self.fail_first.items():
                if left > 0 and key in req.prompt:
                    self.fail_first[key] = left - 1
                    unrelated = True
            img.info["prompt"] = "unrelated noise" if unrelated else req.prompt
            out.append(Image(image=img, prompt=req.prompt, seed=req.seed, model=self.name))
        return out


# --------------------------------------------------------------------------- speech


class FakeSpeech(SpeechBackend):
    """Writes soft tones, one per word, at ``wpm`` words per minute; timings are exact by construction."""

    SAMPLE_RATE = 16000

    class Options(BackendOptions):
        """What ``fake:`` speech takes."""

        wpm: float = 150.0
        crash_once: str | Path | None = None

    def __init__(self, model: str = "", *, wpm: float = 150.0, crash_once: str | Path | None = None) -> None:
        """``crash_once``: a marker file; the first speak anywhere while it is absent creates it and kills
        its own process at once (SIGKILL), as a lost worker would be: a run must resume after it."""
        self.name = f"fake:{model}"
        self.model = model
        self.wpm = wpm
        self.crash_once = Path(crash_once) if crash_once is not None else None
        self.calls = 0

    def default_voice(self, language: str) -> str:
        return f"fake-{language}-{self.wpm:g}wpm"  # a voice per speaking rate, as real voices differ

    async def voices(self, language: str | None = None) -> list[Voice]:
        return [Voice(name=self.default_voice(language or "en"), language=language or "en", backend="fake")]

    async def speak(self, text: str, voice: str, out: Path) -> Speech:
        if self.crash_once is not None:
            try:
                fd = os.open(self.crash_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        self.calls += 1
        return await thread_to_end(self._speak, text, voice, Path(out))  # file work off the event loop

    def _speak(self, text: str, voice: str, out: Path) -> Speech:
        words = _words(text) or ["…"]
        per = 60.0 / self.wpm
        rate = self.SAMPLE_RATE
        frames = bytearray()
        timings = []
        for i, w in enumerate(words):
            start = i * per
            n_voiced = int(per * 0.8 * rate)
            freq = 180 + (_seeded(w) % 120)
            for k in range(int(per * rate)):
                env = math.sin(math.pi * k / n_voiced) if k < n_voiced else 0.0
                frames += struct.pack("<h", int(3000 * env * math.sin(2 * math.pi * freq * k / rate)))
            timings.append(WordTiming(w, round(start, 3), round(start + per * 0.8, 3)))
        with atomic_path(out) as tmp, wave.open(str(tmp), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(bytes(frames))
        duration = len(frames) / 2 / rate
        return Speech(
            path=out,
            duration=duration,
            words=tuple(timings),
            voice=voice or self.default_voice("en"),
            backend=self.name,
        )


# --------------------------------------------------------------------------- critic


class FakeCritic(CriticBackend):
    """Scores word overlap between what a fake picture shows and each prompt (CLIPScore-like range)."""

    scoring = True

    class Options(BackendOptions):
        """What ``fake:`` critics take."""

        floor: float = 0.5
        margin: float = 0.05

    def __init__(self, model: str = "", *, floor: float = 0.5, margin: float = 0.05) -> None:
        self.name = f"fake:{model}"
        self.model = model
        self.floor = floor
        self.margin = margin
        self.calls = 0
        self.score_calls = 0

    def load(self) -> None:
        return None

    def scores(self, images: Sequence[Any], prompts: Sequence[str]) -> list[list[float]]:
        self.score_calls += 1
        rows = []
        for img in images:
            shown = set(w.lower() for w in _words(getattr(img, "info", {}).get("prompt", "")))
            row = []
            for p in prompts:
                want = set(w.lower() for w in _words(p))
                overlap = len(shown & want) / max(1, len(shown | want))
                row.append(round(2.5 * overlap * 0.4, 4))  # 0..1 like real CLIPScores
            rows.append(row)
        return rows

    def judge(self, images: Sequence[Any], prompts: Sequence[str],
              targets: Sequence[int] | None = None) -> list[Verdict]:
        from lessonforge.tools.critic.clip import decide  # the same decision rule as the CLIP critic

        self.calls += 1
        targets = list(targets) if targets is not None else list(range(len(images)))
        rows = self.scores(images, prompts)
        return [decide(row, t, self.floor, self.margin) for row, t in zip(rows, targets, strict=True)]


def json_reply(model: BaseModel) -> str:
    """A model's JSON as an LLM would send it (handy in scripts)."""
    return json.dumps(model.model_dump(mode="json"))
