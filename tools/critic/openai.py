"""``openai:<model>``: a vision model judges a picture (or a composed slide) as a viewer would.

Where the CLIP critic measures embedding similarity, this one asks an OpenAI-compatible vision model
(``gpt-6-luna`` by default, `lessonforge.tools.defaults`; any server that takes ``image_url`` content parts and
json_schema output: vLLM, Ollama with a vision model, LM Studio) three questions a learner would: does the
picture show what this scene says, can its text (if any) be read, and could it just as well belong
to another scene of the lesson. The answer is a strict-JSON-schema :class:`VisionVerdict`, mapped to
a :class:`~lessonforge.tools.base.Verdict` on the CLIPScore-like 0..2.5 scale so attempts judged by either
critic compare.

The chat call is :meth:`lessonforge.tools.llm.openai.OpenAILLM.structured` — key and base-URL handling, the
strict schema, the repair loop on invalid JSON, refusal and length handling, error mapping and
secret scrubbing are that backend's, not copied. ``judge`` is synchronous (the agent calls it from a
worker thread); it runs one short event loop per call with its own ``OpenAILLM`` and HTTP client, so
concurrent calls from several threads share nothing but the usage totals.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import io
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from lessonforge.tools.base import ConfigError, CriticBackend, CriticError, Message, Verdict
from lessonforge.tools.critic.clip import check_targets
from lessonforge.tools.defaults import OPENAI_CRITIC as DEFAULT_MODEL
from lessonforge.tools.llm.openai import OpenAILLM, ServiceOptions, UsageTotals, display_url

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

log = logging.getLogger(__name__)

R = TypeVar("R")

SCALE = 2.5  # Verdict.score = matches_narration / 5 * SCALE: the CLIPScore range of the CLIP critic
MAX_SIDE = 768  # pictures are sent no larger than this (detail "low" looks at 512 px anyway)
DETAIL: Literal["low"] = "low"  # a small fixed token cost a picture; enough to judge content and legibility
# Both 1-5 ratings must reach the floor. 3.5 means "4 or better": 3 is the model's "partly/somewhat"
# (it shows the topic but not this scene's idea, or its text takes effort to read), which is exactly
# the picture a retry should replace; with 4 demanded, "mostly shows it, one small flaw" still passes.
DEFAULT_FLOOR = 3.5
_PROMPT_CHARS = 400  # each scene's text is cut to this in the request (other scenes are context only)
_REASON_CHARS = 600

Rating = Literal[1, 2, 3, 4, 5]  # an enum, so strict schema mode accepts it (no numeric bounds there)


class VisionVerdict(BaseModel):
    """What a vision model says about one picture of a narrated lesson."""

    model_config = ConfigDict(extra="forbid")

    matches_narration: Rating = Field(
        description="How clearly the picture shows what THIS scene's text says: 5 = unmistakably this idea; "
        "4 = clearly, with a small flaw; 3 = the general topic but not this scene's specific idea; "
        "2 = barely related; 1 = unrelated, blank or broken."
    )
    legible: Rating = Field(
        description="How easily a viewer reads it at a glance: 5 = every word crisp and correctly spelled, or no "
        "text and a clear, recognisable picture; 3 = readable with effort, or a cluttered picture; "
        "1 = garbled pseudo-letters, unreadable text or an unrecognisable picture."
    )
    resembles_other_scene: int | None = Field(
        description="The number of ANOTHER scene listed in the request that this picture would illustrate as well "
        "as or better than its own scene; null when it clearly belongs to its own scene."
    )
    problems: list[str] = Field(
        description="What is wrong, one short phrase each (what is shown instead, what is missing, unreadable "
        "text); an empty list when nothing is."
    )
    suggestion: str = Field(
        description="One sentence: how to change the picture prompt so the next picture shows this scene's idea "
        "unmistakably (the subject, setting or viewpoint to draw). Empty when nothing needs changing."
    )


SYSTEM = (
    "You review the pictures of a narrated lesson video the way an attentive learner would see them. Judge "
    "only what is visible in the image: does it show the idea its scene talks about, can any text on it be "
    "read, and could it be mistaken for the picture of another scene. Be strict: a generic, decorative or "
    "merely on-topic picture does not show a specific idea. Reply with JSON only, matching the schema."
)


def request_text(prompts: Sequence[str], target: int) -> str:
    """The user message's text part for judging a picture of scene ``target`` (0-based)."""
    own = _clip_text(prompts[target])
    lines = [
        f"This picture belongs to scene {target + 1} of {len(prompts)}. What it should show (the scene's "
        f"narration or picture prompt):",
        f'"""{own}"""',
    ]
    others = [(j, p) for j, p in enumerate(prompts) if j != target]
    if others:
        lines.append("The other scenes of the same lesson; the picture must not look like one of these:")
        lines += [f"- scene {j + 1}: {_clip_text(p)}" for j, p in others]
    else:
        lines.append("It is the only scene; resembles_other_scene must be null.")
    lines.append(
        f"Rate the attached picture for scene {target + 1}: matches_narration and legible from 1 to 5, "
        "resembles_other_scene (another scene's number, or null), problems, and a suggestion for the picture prompt."
    )
    return "\n".join(lines)


def to_verdict(answer: VisionVerdict, n_prompts: int, target: int, floor: float = DEFAULT_FLOOR) -> Verdict:
    """Map the model's answer for a picture of scene ``target`` (0-based) to a :class:`Verdict`.

    ``score`` = matches_narration / 5 * 2.5. ``scores`` has the own score at ``target`` and 0.0 at
    every other scene — except a rival the model names, which gets the own score too (the model
    said "as well or better"), with ``rank`` 2. A rival number that is not another listed scene
    (its own number, out of range) is ignored. Accepted when both ratings reach ``floor`` and no
    rival is named.
    """
    score = answer.matches_narration / 5 * SCALE
    rival = answer.resembles_other_scene
    if rival is not None and not (1 <= rival <= n_prompts and rival != target + 1):
        log.info("vision critic named scene %s as a rival of scene %d (of %d); ignored", rival, target + 1, n_prompts)
        rival = None
    scores = [0.0] * n_prompts
    scores[target] = score
    if rival is not None:
        scores[rival - 1] = score
    accepted = answer.matches_narration >= floor and answer.legible >= floor and rival is None
    parts = [f"narration match {answer.matches_narration}/5, legibility {answer.legible}/5 (floor {floor:g})"]
    if rival is not None:
        parts.append(f"it could illustrate scene {rival} as well as its own")
    problems = [" ".join(p.split()).rstrip(".;") for p in answer.problems]
    parts += [p for p in problems if p]
    suggestion = " ".join(answer.suggestion.split()).rstrip(".")
    reason = "; ".join(parts) + (f"; suggestion: {suggestion}" if suggestion else "") + "."
    if len(reason) > _REASON_CHARS:
        reason = reason[: _REASON_CHARS - 1] + "…"
    return Verdict(accepted=accepted, score=score, scores=tuple(scores), rank=2 if rival is not None else 1,
                   reason=reason)


def png_data_url(image: PILImage, max_side: int = MAX_SIDE) -> str:
    """The picture as an RGB PNG ``data:`` URL, scaled down (aspect kept) so no side exceeds ``max_side``."""
    from PIL import Image as PILImageModule

    picture = image.convert("RGB")  # a copy; also flattens palette/alpha pictures
    if max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side), PILImageModule.Resampling.LANCZOS)
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass(frozen=True)
class _Options:
    model: str
    api_key: str | None
    base_url: str | None
    timeout_s: float
    max_retries: int
    max_repairs: int


class OpenAICritic(CriticBackend):
    """Judges pictures with an OpenAI-compatible vision model (see the module docstring)."""

    service = True  # check() reaches the server

    class Options(ServiceOptions):
        """What ``openai:`` critics take (see the constructor)."""

        floor: float = DEFAULT_FLOOR
        max_repairs: int = 2

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        floor: float = DEFAULT_FLOOR,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        max_repairs: int = 2,
        device: str | None = None,
    ) -> None:
        """``device`` is accepted (and ignored) because the agent passes it to every critic."""
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not 1.0 <= float(floor) <= 5.0:
            raise ConfigError(
                f"Vision critic floor {floor!r} is off its 1-5 rating scale. Fix: pass a floor between 1 and 5 "
                f"(default {DEFAULT_FLOOR}: both ratings must be 4 or better)."
            )
        self.floor = float(floor)
        # it judges the composed slide (picture, title and key words) as a viewer sees it, against
        # the scene's narration; CLIP critics judge the picture against its prompt
        self.judges = "slide"
        self._options = _Options((model or "").strip() or DEFAULT_MODEL, api_key, base_url, timeout_s,
                                 max_retries, max_repairs)
        engine = self._engine()  # validates the key/base URL and the numbers now, before any work
        self.model = engine.model
        self.name = engine.name
        self.base_url = engine.base_url
        self.usage = UsageTotals()
        self._usage_lock = threading.Lock()

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAICritic(model={self.model!r}, base_url={display_url(self.base_url)!r}, floor={self.floor:g})"

    # ----------------------------------------------------------------- public API

    def load(self) -> None:
        """Nothing to load; checks the settings again (the environment may have changed)."""
        self._engine()

    async def check(self) -> None:
        """Fail fast (ConfigError) when no server answers at the base URL or the key is rejected.

        The same check as :meth:`OpenAILLM.check` (GET /models, short timeout, no retries), in a worker thread.
        """
        await asyncio.to_thread(self._run, lambda engine: engine.check())

    def judge(
        self,
        images: Sequence[PILImage],
        prompts: Sequence[str],
        targets: Sequence[int] | None = None,
    ) -> list[Verdict]:
        """Judge ``images[i]`` against ``prompts[targets[i]]`` (default ``prompts[i]``); the other prompts
        are the scenes it must not resemble. One chat request per picture, sent concurrently."""
        targets = check_targets(len(images), len(prompts), targets)
        if not images:
            return []
        try:
            urls = [png_data_url(im) for im in images]
        except Exception as exc:
            raise CriticError(
                f"Critic {self.name} could not encode a picture as PNG ({type(exc).__name__}: {exc}). Fix: pass "
                "decoded PIL images."
            ) from exc

        async def judge_all(engine: OpenAILLM) -> list[Verdict]:
            return list(await asyncio.gather(*(
                self._judge_one(engine, url, prompts, t) for url, t in zip(urls, targets, strict=True))))

        return self._run(judge_all)

    # ----------------------------------------------------------------- internals

    async def _judge_one(self, engine: OpenAILLM, url: str, prompts: Sequence[str], target: int) -> Verdict:
        content: list[dict[str, Any]] = [
            {"type": "text", "text": request_text(prompts, target)},
            {"type": "image_url", "image_url": {"url": url, "detail": DETAIL}},
        ]
        # OpenAILLM.structured sends Message.as_dict(); a list of content parts goes through as is.
        messages = [Message("system", SYSTEM), Message("user", content)]
        answer = await engine.structured(messages, VisionVerdict)
        return to_verdict(answer, len(prompts), target, self.floor)

    def _engine(self) -> OpenAILLM:
        """A fresh chat backend with this critic's settings (its HTTP client belongs to one event loop)."""
        o = self._options
        return OpenAILLM(o.model, api_key=o.api_key, base_url=o.base_url, timeout_s=o.timeout_s,
                         max_retries=o.max_retries, max_repairs=o.max_repairs,
                         role="vision critic", flag="--critic", error=CriticError)

    def _run(self, work: Callable[[OpenAILLM], Awaitable[R]]) -> R:
        """Run ``work`` on a fresh engine in an event loop of its own, close its client, add its usage."""
        engine = self._engine()

        async def main() -> R:
            try:
                return await work(engine)
            finally:
                await engine.aclose()
                with self._usage_lock:
                    self.usage.calls += engine.usage.calls
                    self.usage.prompt_tokens += engine.usage.prompt_tokens
                    self.usage.completion_tokens += engine.usage.completion_tokens

        return _run_sync(main())  # errors: ConfigError or CriticError, worded for the critic by OpenAILLM


def _run_sync(coro: Coroutine[Any, Any, R]) -> R:
    """``asyncio.run`` — in a helper thread when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vision-critic") as pool:
        return pool.submit(asyncio.run, coro).result()


def _clip_text(text: str, limit: int = _PROMPT_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
