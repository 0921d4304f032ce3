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
    """An LLM that answers from a script of canned replies, then from ``answer`` (the lesson's answers are
    lessonforge.agent.fakes.FakeLLM, the ``fake:`` LLM).

    Each scripted item is a pydantic object, a dict, a JSON string (possibly invalid, to exercise
    repairs) or a callable ``(messages, schema) -> any of those``.
    """

    class Options(BackendOptions):
        """What ``fake:`` LLMs take."""

        script: Sequence[Any] = ()
        max_repairs: int = 2

    def __init__(self, model: str = "", *, script: Sequence[Any] = (), max_repairs: int = 2,
                 answer: Responder | None = None) -> None:
        """``answer``: what replies once the script is used up (by default the schema's own answer)."""
        self.name = f"fake:{model}"
        self.model = model
        self.answer: Responder = answer or schema_answer
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
        return self.answer(messages, schema)


def schema_answer(messages: list[Message], schema: type[BaseModel]) -> BaseModel:
    """The answer a schema gives for itself (a ``fake_answer(messages)`` classmethod), for schemas that know
    what a plausible reply is (the eval judge's); LLMError for one that does not."""
    hook = getattr(schema, "fake_answer", None)
    if callable(hook):
        return hook(messages)
    raise LLMError(f"the fake LLM has no default answer for {schema.__name__}; script one")


# --------------------------------------------------------------------------- images


class FakeImages(ImageBackend):
    """Draws a deterministic picture per (prompt, seed); the prompt is kept in the PNG's info."""

    class Options(BackendOptions):
        """What ``fake:`` pictures take."""

        fail_seeds: Sequence[int] = ()
        fail_first: dict[str, int] | None = None

    def __init__(self, model: str = "", *, fail_seeds: Sequence[int] = (),
                 fail_first: dict[str, int] | None = None) -> None:
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
