"""The node functions of the lesson graph and of its per-scene subgraph.

plan -> write -> fit -> (per scene: narrate ∥ illustrate ⇄ critique -> choose -> compose) -> assemble
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Send, interrupt
from pydantic import BaseModel

import prompts
from tools import (
    aactrack,
    audio,
    builds,
    captions,
    layouts,
    lexicon,
    loudness,
    motion,
    pictograms,
    storyboard,
    subtitles,
    video,
)
from tools.base import (
    ConfigError,
    ImageRequest,
    LessonForgeError,
    Message,
    ProgressEvent,
    RenderError,
    Speech,
    SpeechError,
    WordTiming,
    expecting,
)
from tools.cache import atomic_write_text, content_key, file_hash, link_or_copy, thread_to_end
from tools.cached import save_png

from . import scene_clips, voicestats
from .context import Context
from .graph_context import CONTEXT_HELP, ContextError
from .project import Manifest, VideoRecord, now
from .schemas import (
    NarrationRewrite,
    Outline,
    Pictogram,
    PromptRevision,
    SceneDraft,
    SceneReplacement,
    Script,
    TextOnly,
    sized_script,
    unsized,
)
from .state import (
    Attempt,
    BuildRecord,
    Duration,
    LessonRequest,
    LessonState,
    SceneRecord,
    SceneState,
    SpeechRecord,
    make_request,
)

SLIDE_LAYOUT_VERSION = 2  # bump when the typesetter's output changes, so cached slides are redrawn
_WORD = re.compile(r"\w[\w'’-]*", re.UNICODE)


# --------------------------------------------------------------------------- helpers


def count_words(text: str) -> int:
    """Spoken words; CJK text (no spaces) counts about one word per 2.5 characters."""
    words = _WORD.findall(text)
    cjk = sum(1 for ch in text if "\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff")
    if cjk > len(text) / 3:
        return max(1, round(cjk / 2.5))
    return len(words)


def scene_count(seconds: float, scene_seconds: float) -> int:
    """Short scenes (segmenting principle): at least 3, about ``scene_seconds`` each."""
    return max(3, round(seconds / scene_seconds))


def derive_seed(base: int, prompt: str, attempt: int) -> int:
    """A reproducible seed per scene and attempt.

    It follows the scene's picture prompt, not its position, so moving or inserting scenes keeps
    every picture (and its cache entry) where it was.
    """
    h = int(content_key("seed", prompt), 16)
    return (base * 1_000_003 + h + attempt * 104_729) % (2**31 - 1)


def reading_seconds(title: str, bullets: Sequence[str], wpm: float) -> float:
    """How long a viewer needs to read a slide's text (plus a second to find it)."""
    return 1.0 + 60.0 * count_words(" ".join([title, *bullets])) / wpm


def budget_wpm(ctx: Context, req: LessonRequest) -> float:
    """Words per minute to budget with: the voice's measured rate when known, else the setting."""
    voice = req.voice or ctx.speech.default_voice(req.language)
    return voicestats.words_per_minute(ctx.speech.name, voice) or ctx.settings.words_per_minute


def word_budgets(targets: Sequence[float], wpm: float, gap: float) -> list[int]:
    """Words each scene may have so that its narration plus the pause after it fills its time."""
    return [max(3, round(max(1.0, sec - gap) * wpm / 60)) for sec in targets]


def hold_seconds(record: SceneRecord, s: Any) -> float:
    """How long a scene's slide stays up, in whole frames."""
    assert record.speech is not None
    return hold_seconds_for(record.speech.duration, record.title, record.bullets, s)


def hold_seconds_for(speech_seconds: float, title: str, bullets: Sequence[str], s: Any) -> float:
    """How long a slide stays up: its narration and a pause, and at least the time its text takes to read."""
    need = max(speech_seconds + s.gap_seconds, reading_seconds(title, bullets, s.reading_wpm))
    return math.ceil(need * s.fps - 1e-6) / s.fps


# Words of text in a reply besides narration, for the progress estimate (tools.base.expecting).
OUTLINE_WORDS = 60  # title, hook, objectives, check question and answer
SECTION_WORDS = 18  # a section's title and key points
SCENE_EXTRA_WORDS = 40  # a scene's title, bullets and picture prompt
PROMPT_WORDS = 35  # a revised picture prompt and its reason


def emit(stage: str, message: str = "", **kw: Any) -> None:
    """Send a progress event on the graph's custom stream (no-op outside a graph run)."""
    try:
        writer = get_stream_writer()
    except (RuntimeError, KeyError):
        return
    writer(dataclasses.asdict(ProgressEvent(stage=stage, message=message, **kw)))


async def ask(ctx: Context, template: str, schema: type[BaseModel], *, expect_words: int | None = None,
              **values: Any) -> Any:
    """Ask the LLM for ``schema`` with a prompt template; ``expect_words`` is about how many words of
    text the reply will hold (a local model's progress ETA comes from it)."""
    if ctx.llm is None:
        raise ConfigError(
            "this step needs an LLM but none is configured; pass --llm BACKEND:MODEL or set "
            "OPENAI_API_KEY / OPENAI_BASE_URL"
        )
    system, user = await asyncio.to_thread(prompts.messages, template, **values)  # read once, from disk
    with expecting(expect_words):
        return await ctx.llm.structured([Message("system", system), Message("user", user)], schema)


def style_line(req: LessonRequest) -> str:
    """The prompt's tone and style notes for the planner and the writer ('' adds nothing to their prompts)."""
    return f"Notes from the person who asked for this lesson, to follow: {req.style}" if req.style else ""


async def _save_progress(ctx: Context, request: Any, **fields: Any) -> None:
    """Keep lesson.json current as stages finish, so partial work is visible and resumable."""
    await asyncio.to_thread(_write_progress, ctx, request, **fields)


def _write_progress(ctx: Context, request: Any, **fields: Any) -> None:
    project = ctx.project
    manifest = project.load() if project.exists() else Manifest(request=request)
    if manifest.request != request:
        manifest = Manifest(request=request)
    if ctx.manifest is not None:  # this run's backends and settings, from its first step on
        manifest.backends, manifest.settings = ctx.manifest.backends, ctx.manifest.settings
    for k, v in fields.items():
        setattr(manifest, k, v)
    project.save(manifest)


def _load_rgb(path: Path) -> Any:
    """A picture from disk as RGB, keeping its text metadata (prompt, seed, model)."""
    from PIL import Image as PILImage

    with PILImage.open(path) as img:
        img.load()
        picture = img.convert("RGB")
        picture.info.update({k: v for k, v in img.info.items() if isinstance(v, str)})
    return picture


# --------------------------------------------------------------------------- lesson nodes


async def plan(state: LessonState, runtime: Runtime[Context]) -> dict[str, Any]:
    """LLM: learning objectives, sections and a time budget per section."""
    req = state["request"]
    if not isinstance(req, LessonRequest):  # input sent as JSON (langgraph dev)
        req = make_request(**req)
    if runtime.context is None:
        raise ContextError(f"this graph needs a context. {CONTEXT_HELP}")
    feedback = state.get("feedback", "")
    if (state.get("outline") is not None and not feedback) or state.get("script") is not None:
        return {"request": req}
    ctx = await runtime.context.ready(req)
    seconds = req.minutes * 60
    n = scene_count(seconds, ctx.settings.scene_seconds)
    emit("plan", f"Planning a {req.minutes:g}-minute lesson on {req.topic!r}")
    t = now()
    outline: Outline = await ask(
        ctx,
        "plan",
        Outline,
        expect_words=OUTLINE_WORDS + SECTION_WORDS * max(2, n - 2),
        topic=req.topic,
        audience=req.audience,
        language=req.language,
        seconds=round(seconds),
        words=round(seconds * ctx.settings.words_per_minute / 60),
        sections=max(2, n - 2),
        feedback=(f"Notes on an earlier outline, to follow: {feedback}\nEarlier outline: "
                  f"{state['outline'].model_dump_json()}" if feedback and state.get("outline") else "(none)"),
        style=style_line(req),
    )
    await _save_progress(ctx, req, outline=outline, status="planned")
    return {"request": req, "outline": outline, "feedback": "", "timings": {"plan": now() - t}}


MAX_REVIEWS = 5


def review(state: LessonState) -> dict[str, Any]:
    """--review: pause (LangGraph interrupt) until the user approves the outline or gives notes.

    A node of its own, because interrupt() runs its node again from the start on resume.
    """
    if not state.get("review") or state.get("reviews", 0) >= MAX_REVIEWS:
        return {}
    answer = interrupt({"outline": state["outline"].model_dump(mode="json")})
    notes = "" if not isinstance(answer, dict) or answer.get("approve", True) else str(answer.get("feedback", ""))
    return {"feedback": notes.strip(), "reviews": state.get("reviews", 0) + 1}


def after_review(state: LessonState) -> Literal["plan", "write"]:
    return "plan" if state.get("feedback") else "write"


async def write(state: LessonState, runtime: Runtime[Context]) -> dict[str, Any]:
    """LLM: the scenes (title, bullets, narration, illustration prompt, visual kind)."""
    req = state["request"]
    ctx = await runtime.context.ready(req)
    if state.get("script") is not None:
        targets = state.get("targets") or []
        if len(targets) != len(state["script"].scenes):
            targets = even_targets(scenes_seconds(req, ctx.settings), len(state["script"].scenes))
        return {"targets": targets}
    seconds = scenes_seconds(req, ctx.settings)
    n = scene_count(seconds, ctx.settings.scene_seconds)
    wpm = await asyncio.to_thread(budget_wpm, ctx, req)  # reads the measured voice rates
    targets = even_targets(seconds, n)
    emit("write", f"Writing {n} scenes")
    t = now()
    budgets = word_budgets(targets, wpm, ctx.settings.gap_seconds)
    script: Script = await ask(
        ctx,
        "write",
        sized_script(n, max(budgets), ctx.clips is not None),
        expect_words=sum(budgets) + SCENE_EXTRA_WORDS * n,
        topic=req.topic,
        audience=req.audience,
        language=req.language,
        outline=state["outline"].model_dump_json(indent=1),
        scenes=n,
        wpm=round(wpm),
        budgets=", ".join(str(b) for b in budgets),
        style=style_line(req),
    )
    script, notes = await mend_script(ctx, req, unsized(script), budgets)
    if len(script.scenes) != n:  # the model chose another count: share the time among its scenes
        targets = even_targets(seconds, len(script.scenes))
    await _save_progress(ctx, req, outline=state["outline"], script=script, targets=targets, status="written")
    return {"script": script, "targets": targets, "timings": {"write": now() - t}, "warnings": notes}


async def mend_script(ctx: Context, req: LessonRequest, script: Script, budgets: Sequence[int]
                      ) -> tuple[Script, list[str]]:
    """Ask again, each alone with its neighbours as context, for the scenes the reply got wrong: a
    malformed visual (kept as text until then) or a scene that could not be read at all. One request
    per scene; a scene still wrong keeps its text-only visual, and an unreadable one is left out, with
    a warning. Returns the mended script and the warnings."""
    slots: list[SceneDraft | None] = list(script.scenes)
    why: dict[int, str] = {}
    for pos, problem in script.dropped:  # ascending: each goes back where it was
        slots.insert(pos - 1, None)
        why[pos - 1] = problem
    for k, sc in enumerate(slots):
        if sc is not None and sc.degraded:
            why[k] = f"its visual is malformed ({sc.degraded})"
    if not why or ctx.llm is None:
        return script, [f"scene {k + 1} could not be read and was left out ({w})" for k, w in why.items()
                        if slots[k] is None]

    def around(k: int) -> str:
        sc = slots[k] if 0 <= k < len(slots) else None
        return f"{sc.title}: {sc.narration}" if sc is not None else "(none)"

    async def again(k: int) -> SceneDraft | None:
        emit("write", f"Writing scene {k + 1} again: {why[k]}", scene=k + 1, total=len(slots))
        sc = slots[k]
        try:
            reply: SceneReplacement = await ask(
                ctx, "rescene", SceneReplacement, expect_words=budgets[min(k, len(budgets) - 1)] + SCENE_EXTRA_WORDS,
                language=req.language, position=k + 1, title=script.title, problem=why[k],
                draft=(sc.model_dump_json() if sc is not None else "(nothing readable)")
                + (f"\nIts visual as written: {sc.raw_visual!r}" if sc is not None and sc.raw_visual else ""),
                before=around(k - 1), after=around(k + 1), budget=budgets[min(k, len(budgets) - 1)])
        except LessonForgeError:
            return None
        return None if reply.scene.degraded else reply.scene

    fixed = await asyncio.gather(*(again(k) for k in why))
    notes: list[str] = []
    for k, new in zip(why, fixed, strict=True):
        if new is not None:
            slots[k] = new
        elif slots[k] is None:
            notes.append(f"scene {k + 1} could not be written and was left out ({why[k]})")
    kept = [sc for sc in slots if sc is not None]
    return script.model_copy(update={"scenes": kept}), notes


END_CARD_SECONDS = 2.5  # the closing card, silent, after the last scene
TITLE_CARD_SECONDS = 2.5  # the opening card, over the first seconds of the first scene


def end_seconds(settings: Any) -> float:
    return END_CARD_SECONDS if settings.cards else 0.0


def scenes_seconds(req: LessonRequest, settings: Any) -> float:
    """The time the scenes share: the lesson's target less its closing card."""
    return req.minutes * 60 - end_seconds(settings)


def even_targets(seconds: float, n: int) -> list[float]:
    return [round(seconds / n, 2)] * n


async def fit(state: LessonState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Narration is the clock: rewrite scenes whose word count is off their budget (bounded)."""
    req = state["request"]
    ctx = await runtime.context.ready(req)
    s = ctx.settings
    script, targets = state["script"], state["targets"]
    if ctx.llm is None or s.fit_rounds == 0 or not state.get("fit_duration", True):
        return {}
    scenes = list(script.scenes)
    wpm = await asyncio.to_thread(budget_wpm, ctx, req)  # reads the measured voice rates
    t = now()
    for round_no in range(1, s.fit_rounds + 1):
        budgets = word_budgets(targets, wpm, s.gap_seconds)
        off = [
            i for i, sc in enumerate(scenes)
            if abs(count_words(sc.narration) - budgets[i]) > s.fit_tolerance * budgets[i]
        ]
        if not off:
            break
        emit("fit", f"Rewriting {len(off)} scene(s) to fit their time", attempt=round_no)
        rewrites = await asyncio.gather(
            *(
                ask(
                    ctx,
                    "fit",
                    NarrationRewrite,
                    expect_words=budgets[i],
                    language=req.language,
                    words=count_words(scenes[i].narration),
                    budget=budgets[i],
                    wpm=round(wpm),
                    seconds=round(targets[i]),
                    direction=(
                        "Make it shorter: keep the key idea and its example, cut the rest."
                        if count_words(scenes[i].narration) > budgets[i]
                        else "Make it longer: add a concrete example or a short explanation."
                    ),
                    title=scenes[i].title,
                    narration=scenes[i].narration,
                )
                for i in off
            )
        )
        for i, r in zip(off, rewrites, strict=True):
            scenes[i] = scenes[i].model_copy(update={"narration": r.narration})
    new_script = script.model_copy(update={"scenes": scenes})
    if new_script != script:
        await _save_progress(ctx, req, outline=state.get("outline"), script=new_script, targets=targets, status="written")
    return {"script": new_script, "timings": {"fit": now() - t}}


def fan_out(state: LessonState) -> list[Send]:
    """One branch per scene; scenes run concurrently."""
    script = state["script"]
    prompts_all = [sc.subject for sc in script.scenes]
    total = len(script.scenes)
    return [
        Send(
            "scene",
            SceneState(
                request=state["request"],
                lesson_title=script.title,
                index=i + 1,
                total=total,
                draft=sc,
                target_seconds=state["targets"][i],
                tempo=state.get("tempo", 1.0),
                prompts=prompts_all,
                narrations=[x.narration for x in script.scenes],
                attempt=0,
                prompt=sc.picture_prompt,
                attempts=[],
                revised=0,
                chosen=None,
                critic="no_critic",
                critic_note="",
            ),
        )
        for i, sc in enumerate(script.scenes)
    ]


# --------------------------------------------------------------------------- scene nodes


def _scene_dir(ctx: Context, state: SceneState):
    return ctx.project.scene_dir(state["index"], state["draft"].title)


async def narrate(state: SceneState, runtime: Runtime[Context]) -> dict[str, Any]:
    """TTS: narration audio and word timings."""
    req, i = state["request"], state["index"]
    ctx = await runtime.context.ready(req)
    voice = req.voice or ctx.speech.default_voice(req.language)
    out = _scene_dir(ctx, state) / "narration.wav"
    emit("narrate", state["draft"].title, scene=i, total=state["total"])
    t = now()
    draft = state["draft"]
    answer_at: float | None = None
    try:
        speech = await ctx.speech.speak(_spoken(ctx, draft.narration), voice, out)
        if draft.role == "question" and draft.answer:  # the question, a thinking pause, then the answer
            speech, answer_at = await _with_answer(ctx, speech, _spoken(ctx, draft.answer), voice, out)
    except SpeechError as err:
        raise type(err)(f"scene {i} ({draft.title!r}): {err}") from err
    tempo = state.get("tempo", 1.0)
    duration, words = speech.duration, [(w.word, w.start, w.end) for w in speech.words]
    if answer_at is not None:
        answer_at = round(answer_at / tempo, 3)
    if abs(tempo - 1.0) > 1e-3:  # sped up or slowed down to fit the lesson's length
        key = content_key("tempo", (await asyncio.to_thread(ctx.project.ref, speech.path)).sha256, round(tempo, 4))
        timed = await asyncio.to_thread(ctx.project.store.get, key, ".wav")
        if timed is None:
            timed = await asyncio.to_thread(lambda: audio.to_wav(speech.path, ctx.project.store.path(key, ".wav"),
                                                                 audio.wav_rate(speech.path), tempo=tempo))
        await asyncio.to_thread(link_or_copy, timed, out)
        duration = await asyncio.to_thread(audio.wav_duration, out)
        words = [(w, round(a / tempo, 3), round(b / tempo, 3)) for w, a, b in words]
    level: dict[str, Any] = {}
    if ctx.settings.loudness_lufs is not None:  # per scene, so an edit re-measures only its own scene
        level = await asyncio.to_thread(_normalise, ctx, out, ctx.settings.loudness_lufs)
        duration = await asyncio.to_thread(audio.wav_duration, out)
    record = SpeechRecord(
        audio=await asyncio.to_thread(ctx.project.ref, out),
        duration=duration,
        voice=speech.voice,
        backend=speech.backend,
        tempo=tempo,
        words=words,
        loudness=level,
        answer_at=answer_at,
    )
    return {"speech": record, "timings": {"narrate": now() - t}}


def _spoken(ctx: Context, text: str) -> str:
    """Text as the voice should say it: the pronunciation lexicon applies to speech only."""
    return ctx.lexicon.apply(text) if ctx.lexicon is not None else text


async def _with_answer(ctx: Context, question: Speech, answer: str, voice: str, out: Path) -> tuple[Speech, float]:
    """The question's narration, ``answer_pause`` seconds of silence, then the answer spoken: one WAV at
    ``out``, with the answer's word times moved to where it starts. Returns it and that start."""
    spoken = await ctx.speech.speak(answer, voice, out.with_name("answer.wav"))
    return await asyncio.to_thread(_join_answer, ctx, question, spoken, out)


def _join_answer(ctx: Context, question: Speech, spoken: Speech, out: Path) -> tuple[Speech, float]:
    """The question and its answer joined with the pause between; cached. (File work: in a thread.)"""
    store, pause = ctx.project.store, ctx.settings.answer_pause
    key = content_key("question+answer", ctx.project.ref(question.path).sha256, ctx.project.ref(spoken.path).sha256,
                      pause)
    rate = audio.wav_rate(question.path)
    joined, meta = store.produce(key, ".wav", lambda p: {"answer_at": video.concat_wavs(
        [question.path, spoken.path], p, gap_s=[pause, 0.0], sample_rate=rate)[1]})
    link_or_copy(joined, out)
    at = float(meta["answer_at"])
    words = (*question.words, *(WordTiming(w.word, w.start + at, w.end + at) for w in spoken.words))
    return Speech(path=out, duration=audio.wav_duration(out), words=words, voice=question.voice,
                  backend=question.backend), at


def _normalise(ctx: Context, wav: Path, lufs: float) -> dict[str, Any]:
    """Bring one narration to ``lufs`` integrated loudness (EBU R128), in place; cached. (File work: in a thread.)"""
    store = ctx.project.store
    key = content_key("loudness", ctx.project.ref(wav).sha256, lufs)

    def make(path: Path) -> dict[str, Any]:
        result = loudness.normalize_loudness(wav, path, target_lufs=lufs)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in dataclasses.asdict(result).items() if isinstance(v, int | float | str)}

    done, report = store.produce(key, ".wav", make)
    link_or_copy(done, wav)
    return report


async def illustrate(state: SceneState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Draw one picture: first the scene's prompt, then a new seed, then an LLM-revised prompt."""
    req, i = state["request"], state["index"]
    ctx = await runtime.context.ready(req)
    draft = state["draft"]
    fallback: dict[str, Any] = {}
    if draft.kind == "clip" and ctx.clips is not None and not state.get("clip_tried"):
        emit("illustrate", f"{draft.title} (a {draft.visual.seconds} s clip)", scene=i, total=state["total"])
        clip, why = await scene_clips.make(ctx, state, _scene_dir(ctx, state))
        if clip is not None:
            return {"clip": clip, "clip_tried": True}
        note = f"no clip ({why}); a picture is drawn instead"
        emit("illustrate", note, scene=i, total=state["total"], level="warning")
        fallback = {"clip_tried": True, "warnings": [f"scene {i}: {note}"]}
    if ctx.images is None or draft.kind not in ("picture", "clip"):
        return fallback | {"critic": "no_image"}
    attempt = state["attempt"] + 1
    prompt = state["prompt"]
    revised = state["revised"]
    t = now()
    if attempt >= 3 and ctx.llm is not None and state["attempts"]:
        last = state["attempts"][-1]
        others = [p for j, p in enumerate(state["prompts"]) if j != i - 1]
        emit("revise", "Rewriting the picture prompt from the critic's feedback", scene=i, total=state["total"], attempt=attempt)
        revision: PromptRevision = await ask(
            ctx,
            "revise_prompt",
            PromptRevision,
            expect_words=PROMPT_WORDS,
            title=draft.title,
            narration=draft.narration,
            prompt=prompt,
            feedback=last.reason or "the picture did not match",
            others="; ".join(others) or "(none)",
        )
        prompt, revised = revision.prompt, revised + 1
    seed = derive_seed(req.seed, draft.picture_prompt, attempt)
    emit("illustrate", draft.title, scene=i, total=state["total"], attempt=attempt)
    size = ctx.settings.image_size
    width, height = await _picture_shape(ctx, state, size) if getattr(ctx.images, "shaped", False) else (size, size)
    [image] = await ctx.images.generate([ImageRequest(prompt=prompt, seed=seed, width=width, height=height)])
    path = _scene_dir(ctx, state) / "attempts" / f"{attempt:02d}-seed{seed}.png"
    meta = {"lessonforge:prompt": prompt, "lessonforge:seed": str(image.seed), "lessonforge:model": image.model}
    await asyncio.to_thread(save_png, image.image, path, **meta)
    cost = image.image.info.get("lessonforge:cost")  # a hosted picture's price (tools.images_openai)
    ref = await asyncio.to_thread(ctx.project.ref, path)
    record = Attempt(n=attempt, prompt=prompt, seed=image.seed, image=ref, seconds=round(now() - t, 3),
                     cost=float(cost) if cost else None)
    return fallback | {
        "attempt": attempt,
        "prompt": prompt,
        "revised": revised,
        "attempts": [*state["attempts"], record],
        "timings": {"illustrate": now() - t},
    }


async def _picture_shape(ctx: Context, state: SceneState, size: int) -> tuple[int, int]:
    """The shape the slide's layout gives the picture, ``size`` on its long side (for a backend that draws
    to shape, such as a hosted gpt-image model)."""
    from PIL import Image as PILImage

    req, draft = state["request"], state["draft"]
    probe = await asyncio.to_thread(
        layouts.compose_scene, role=draft.role, title=draft.title, bullets=draft.bullets, key=draft.key,
        answer=draft.answer, picture=PILImage.new("RGB", (size, size)), footer=state["lesson_title"],
        index=state["index"], total=state["total"], aspect=req.aspect, theme=req.theme, language=req.language)
    x0, y0, x1, y1 = probe.boxes.get("picture") or (0, 0, size, size)
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    return (size, max(64, round(size * h / w))) if w >= h else (max(64, round(size * w / h)), size)


async def critique(state: SceneState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Judge the newest picture against its own prompt and, contrastively, every other scene's."""
    i = state["index"]
    ctx = await runtime.context.ready(state["request"])
    clip = state.get("clip")
    if clip is not None and clip.accepted is None and not state["attempts"]:  # frames sampled from the clip
        if ctx.critic is None:
            return {"critic": "no_critic"}
        judged = await scene_clips.judge(ctx, state, clip)
        emit("critique", f"clip {'accepted' if judged.accepted else 'rejected'} ({judged.reason})", scene=i,
             total=state["total"])
        out: dict[str, Any] = {"clip": judged, "critic": "accepted" if judged.accepted else "below_bar"}
        if not judged.accepted:
            out["warnings"] = [f"scene {i}: the critic rejected the clip ({judged.reason}); pictures are tried"]
        return out
    if state.get("critic") == "no_image" or not state["attempts"]:
        return {}
    if ctx.critic is None:
        return {"critic": "no_critic"}
    last = state["attempts"][-1]
    prompts_all = list(state["prompts"])
    prompts_all[i - 1] = last.prompt
    t = now()
    try:
        picture = await asyncio.to_thread(lambda: _load_rgb(ctx.project.resolve(last.image)))
        if getattr(ctx.critic, "judges", "picture") == "slide":  # judged as the viewer will see it
            req, draft = state["request"], state["draft"]
            preview = await asyncio.to_thread(
                layouts.compose_scene, role=draft.role, title=draft.title, bullets=draft.bullets, key=draft.key,
                answer=draft.answer, picture=picture, footer=state["lesson_title"], index=i, total=state["total"],
                aspect=req.aspect, theme=req.theme, language=req.language)
            picture, prompts_all = preview.image, list(state.get("narrations") or prompts_all)
        verdict = await ctx.critic.judge_one(picture, prompts_all, i - 1)  # batched with other scenes
    except LessonForgeError as err:
        note = f"critic failed, picture used unjudged: {err}"
        emit("critique", note, scene=i, total=state["total"], level="warning")
        return {"critic": "unjudged", "critic_note": note, "warnings": [f"scene {i}: {note}"]}
    judged = last.model_copy(
        update={
            "score": round(verdict.score, 4),
            "scores": [round(x, 4) for x in verdict.scores],
            "rank": verdict.rank,
            "accepted": verdict.accepted,
            "reason": verdict.reason,
        }
    )
    emit(
        "critique",
        f"{'accepted' if verdict.accepted else 'rejected'} (score {verdict.score:.2f}, rank {verdict.rank})",
        scene=i,
        total=state["total"],
        attempt=last.n,
    )
    return {
        "attempts": [*state["attempts"][:-1], judged],
        "critic": "accepted" if verdict.accepted else "below_bar",
        "timings": {"critique": now() - t},
    }


async def after_critique(state: SceneState, runtime: Runtime[Context]) -> Literal["illustrate", "choose"]:
    """Loop until accepted or the attempt counter (kept in state) reaches --max-attempts."""
    ctx = await runtime.context.ready(state["request"])
    if state.get("critic") == "below_bar" and state["attempt"] < ctx.settings.max_attempts:
        return "illustrate"
    return "choose"


def choose(state: SceneState) -> dict[str, Any]:
    """Pick the accepted picture, or the best-scoring one when none passed ("below bar")."""
    attempts = state["attempts"]
    if not attempts:
        return {"chosen": None}
    accepted = [k for k, a in enumerate(attempts) if a.accepted]
    if accepted:
        return {"chosen": accepted[0]}
    best = max(range(len(attempts)), key=lambda k: (attempts[k].score or 0.0, -k))
    out: dict[str, Any] = {"chosen": best}
    if state.get("critic") == "below_bar":
        note = f"no picture passed the critic in {len(attempts)} attempt(s); kept the best (score {attempts[best].score:.2f})"
        emit("critique", note, scene=state["index"], total=state["total"], level="warning")
        out |= {"critic_note": note, "warnings": [f"scene {state['index']}: {note}"]}
    return out


async def compose(state: SceneState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Typeset the slide (title, bullets, picture) and record the finished scene."""
    req, i = state["request"], state["index"]
    ctx = await runtime.context.ready(req)
    draft, project = state["draft"], ctx.project
    folder = _scene_dir(ctx, state)
    t = now()
    illustration_ref = None
    picture = None
    chosen = state.get("chosen")
    clip = state.get("clip")
    if clip is not None and clip.accepted is False and chosen is not None:
        clip = None  # the critic rejected it and a picture was drawn instead
    if clip is not None:  # the slide is composed with a frame of the clip; the clip plays there
        picture = await asyncio.to_thread(lambda: scene_clips.still(project.resolve(clip.file)))
    elif chosen is not None:
        src = await asyncio.to_thread(project.resolve, state["attempts"][chosen].image)
        dst = await asyncio.to_thread(link_or_copy, src, folder / "illustration.png")
        illustration_ref = await asyncio.to_thread(project.ref, dst)
        picture = await asyncio.to_thread(_load_rgb, dst)
    if chosen is None:
        await asyncio.to_thread((folder / "illustration.png").unlink, missing_ok=True)
    footer = state["lesson_title"]
    diagram = draft.diagram
    icon = draft.visual.icon if isinstance(draft.visual, Pictogram) else None
    if picture is None and draft.kind in ("picture", "clip"):  # nothing was drawn: a pictogram keeps an anchor
        icon = pictograms.suggest(draft.picture_prompt, title=draft.title)
    degraded = draft.degraded
    warnings: list[str] = []
    key = content_key(
        "slide", SLIDE_LAYOUT_VERSION, draft.title, draft.bullets,
        illustration_ref.sha256 if illustration_ref else ("clip", clip.file.sha256) if clip else None,
        diagram.model_dump() if diagram else None, icon, footer, i, state["total"], req.aspect, req.theme,
        req.language, draft.role, draft.key, draft.answer,
    )
    emit("compose", draft.title, scene=i, total=state["total"])
    found = await asyncio.to_thread(project.store.lookup, key, ".png")
    if found is None:
        layout = dict(role=draft.role, title=draft.title, bullets=draft.bullets, key=draft.key, answer=draft.answer,
                      picture=picture, icon=icon, footer=footer, index=i, total=state["total"], aspect=req.aspect,
                      theme=req.theme, language=req.language)
        result = None
        if diagram is not None:  # drawn crisply at the centre of a diagram layout
            try:
                result = await asyncio.to_thread(layouts.compose_scene, diagram=diagram, **layout)
            except RenderError as err:  # one scene's diagram never sinks the lesson: its text stands alone
                degraded = f"the {diagram.kind} diagram could not be drawn ({err}); shown as a text slide"
                diagram = None
        if result is None:
            result = await asyncio.to_thread(layouts.compose_scene, **layout)
        box = result.boxes.get("picture") if picture is not None or diagram is not None or icon else None
        async with project.store.apair(key, ".png") as out:
            await thread_to_end(save_png, result.image, out.path)
            out.meta = {"overflow": result.overflow, "notes": list(result.notes), "min_font_px": result.min_font_px,
                        "picture_box": list(box) if box else None, "degraded": degraded, "layout": result.layout}
            if clip is not None:
                out.meta["clip_box"] = scene_clips.clip_box(result.boxes)
        found = await asyncio.to_thread(project.store.lookup, key, ".png")
    cached, meta = found
    overflow, notes, min_font = bool(meta.get("overflow")), list(meta.get("notes", [])), meta.get("min_font_px")
    picture_box = tuple(meta["picture_box"]) if meta.get("picture_box") else None
    if clip is not None:
        clip = clip.model_copy(update={"box": tuple(meta["clip_box"]) if meta.get("clip_box") else None})
    degraded = degraded or meta.get("degraded", "")
    slide_path = await asyncio.to_thread(link_or_copy, cached, folder / "slide.png")
    slide_ref = await asyncio.to_thread(project.ref, slide_path, key)
    wpm = await asyncio.to_thread(budget_wpm, ctx, req)  # reads the measured voice rates
    steps: list[BuildRecord] = []
    speech = state["speech"]
    if (ctx.settings.builds and not ctx.settings.motion and clip is None
            and (draft.bullets or speech.answer_at is not None)):
        layout = dict(role=draft.role, title=draft.title, bullets=draft.bullets, key=draft.key, answer=draft.answer,
                      picture=picture, icon=icon, diagram=diagram, footer=footer, index=i, total=state["total"],
                      aspect=req.aspect, theme=req.theme, language=req.language)
        steps = await _build_steps(ctx, folder, key, layout, draft, speech)
    if overflow:
        warnings.append(f"scene {i}: too much text for the slide ({'; '.join(notes) or 'truncated'})")
    if degraded:
        emit("compose", f"visual left out: {degraded}", scene=i, total=state["total"], level="warning")
        warnings.append(f"scene {i}: visual left out: {degraded}")
    record = SceneRecord(
        index=i,
        slug=folder.name,
        role=draft.role,
        title=draft.title,
        bullets=list(draft.bullets),
        narration=draft.narration,
        key=draft.key,
        answer=draft.answer,
        visual=draft.visual if not degraded else TextOnly(kind="text"),
        repairs=draft.repairs,
        degraded=degraded,
        target_seconds=state["target_seconds"],
        planned_words=word_budgets([state["target_seconds"]], wpm, ctx.settings.gap_seconds)[0],
        speech=state["speech"],
        illustration=illustration_ref,
        final_prompt=state["attempts"][chosen].prompt if chosen is not None else "",
        attempts=state["attempts"],
        critic=state.get("critic", "no_critic") if chosen is not None else "no_image",
        critic_note=state.get("critic_note", ""),
        slide=slide_ref,
        slide_overflow=overflow,
        min_font_px=min_font,
        picture_box=picture_box,
        layout=meta.get("layout", ""),
        pictogram=icon or "",
        builds=steps,
        clip=clip,
    )
    emit("scene_done", draft.title, scene=i, total=state["total"])
    return {"scenes": {i: record}, "timings": {"compose": now() - t}, "warnings": warnings}


async def _build_steps(ctx: Context, folder: Path, key: str, layout: dict[str, Any], draft: SceneDraft,
                       speech: SpeechRecord) -> list[BuildRecord]:
    """The slide's build states (tools.builds): each drawn once (cached) and kept as build-NN.png.

    Phrases appear as the narration reaches them, the one being said highlighted; a question's answer
    appears when it is spoken. Times are from the scene's start; the last state is the full slide."""
    hold = hold_seconds_for(speech.duration, draft.title, draft.bullets, ctx.settings)
    states = builds.plan(draft.bullets, speech.words, speech_end=speech.duration, hold=hold,
                         answer_at=speech.answer_at)
    project, out = ctx.project, []
    await asyncio.to_thread(lambda: [p.unlink() for p in folder.glob("build-*.png")])  # an earlier version's states
    for n, step in enumerate(states, 1):
        state_key = content_key("build", key, step.shown, step.highlight, step.reveal_answer)

        def draw(path: Path, step: builds.Step = step) -> dict[str, Any]:
            result = layouts.compose_scene(**layout, shown=step.shown, highlight=step.highlight,
                                           reveal_answer=step.reveal_answer)
            save_png(result.image, path)
            return {"overflow": result.overflow}

        png, _ = await asyncio.to_thread(project.store.produce, state_key, ".png", draw)
        ref = await asyncio.to_thread(lambda: project.ref(link_or_copy(png, folder / f"build-{n:02d}.png"), state_key))
        out.append(BuildRecord(start=round(step.start, 3), shown=step.shown, highlight=step.highlight,
                               reveal_answer=step.reveal_answer, slide=ref))
    return out


# --------------------------------------------------------------------------- measure


def duration_tolerance(target: float) -> float:
    """±5% of the target, or ±6 s for short lessons, whichever is larger."""
    return max(0.05 * target, 6.0)


async def measure(state: LessonState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Narration is the clock: measure the real length and, if it is off, rewrite or retime.

    First the scenes furthest from their time are rewritten with budgets from the voice's measured
    rate (bounded rounds, LLM); what is still off is closed by speaking faster or slower, within
    ±10%. Only changed scenes are produced again: everything else comes from the cache.
    """
    req = state["request"]
    ctx = await runtime.context.ready(req)
    s = ctx.settings
    records = [state["scenes"][k] for k in sorted(state["scenes"])]
    target = req.minutes * 60
    tol = duration_tolerance(target)
    holds = [hold_seconds(r, s) for r in records]
    actual = round(sum(holds) + end_seconds(s), 3)
    tempo = state.get("tempo", 1.0)
    refits = state.get("refits", 0)
    talk = [r for r in records if r.speech and r.speech.answer_at is None]  # no thinking pause inside
    spoken = sum(r.speech.duration for r in talk) * tempo  # as spoken at tempo 1
    words = sum(count_words(r.narration) for r in talk)
    wpm = 60.0 * words / spoken if spoken > 0 else s.words_per_minute
    await asyncio.to_thread(lambda: [
        voicestats.record(r.speech.backend, r.speech.voice, count_words(r.narration), r.speech.duration)
        for r in talk if abs(tempo - 1.0) < 1e-3])
    planned = sum(state.get("targets") or [])
    duration = Duration(target=target, tolerance=tol, planned=round(planned, 2), actual=actual,
                        words_per_minute=round(wpm, 1), tempo=tempo, rewrites=refits,
                        within=abs(actual - target) <= tol)
    out: dict[str, Any] = {"duration": duration}
    if duration.within or not state.get("fit_duration", True):
        return out
    emit("measure", f"{actual:.0f} s against a target of {target:.0f} s (±{tol:.0f} s)")
    targets = state["targets"]
    # 1. rewrite the scenes furthest off their time, with budgets from the measured rate
    if ctx.llm is not None and refits < s.fit_rounds:
        scale = target / actual
        off = [i for i, h in enumerate(holds) if abs(h - targets[i]) > s.fit_tolerance * targets[i]]
        if not off:  # each scene is near its share, but together they are off: move them all
            off = list(range(len(records)))
        budgets = word_budgets(targets, wpm, s.gap_seconds)
        emit("fit", f"Rewriting {len(off)} scene(s) to bring the lesson to {target:.0f} s", attempt=refits + 1)
        drafts = [r.draft() for r in records]
        rewrites = await asyncio.gather(*(
            ask(ctx, "fit", NarrationRewrite, language=req.language, words=count_words(drafts[i].narration),
                budget=budgets[i], wpm=round(wpm), seconds=round(targets[i]),
                direction=("Make it shorter: keep the key idea and its example, cut the rest." if scale < 1
                           else "Make it longer: add a concrete example or a short explanation."),
                title=drafts[i].title, narration=drafts[i].narration)
            for i in off
        ))
        for i, r in zip(off, rewrites, strict=True):
            drafts[i] = drafts[i].model_copy(update={"narration": r.narration})
        script = state["script"].model_copy(update={"scenes": drafts})
        return out | {"script": script, "refits": refits + 1}
    # 2. speak faster or slower, within ±10%, to close what is left; what tempo does not scale is fixed
    # (gaps, reading time, the end card, and a scene with a thinking pause, which `spoken` leaves out too)
    scaled = {id(r) for r in talk}
    fixed = sum(h - (r.speech.duration if id(r) in scaled else 0.0) for h, r in zip(holds, records, strict=True))
    fixed += end_seconds(s)
    want = max(1.0, target - fixed)
    new_tempo = min(1.1, max(0.9, spoken / want))
    if abs(new_tempo - tempo) > 0.005 and not state.get("retimed"):
        emit("fit", f"Speaking at {new_tempo:.0%} speed to fit {target:.0f} s")
        return out | {"tempo": round(new_tempo, 4), "retimed": True}
    note = (f"the lesson runs {actual:.0f} s against a target of {target:.0f} s (±{tol:.0f} s) after "
            f"{refits} rewrite round(s) and speaking at {tempo:.0%}")
    emit("measure", note, level="warning")
    return out | {"warnings": [note]}


def after_measure(state: LessonState) -> list[Send] | Literal["assemble"]:
    """Produce the scenes again after a rewrite or a new tempo; otherwise assemble."""
    d = state.get("duration")
    records = state.get("scenes", {})
    changed_script = any(
        records[k].narration != sc.narration for k, sc in zip(sorted(records), state["script"].scenes, strict=False)
    )
    tempo_changed = any(r.speech and abs(r.speech.tempo - state.get("tempo", 1.0)) > 1e-3 for r in records.values())
    if d is not None and not d.within and (changed_script or tempo_changed):
        return fan_out(state)
    return "assemble"


# --------------------------------------------------------------------------- assemble


async def assemble(state: LessonState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Slides + narration -> lesson.mp4 (chapters, faststart), lesson.srt/.vtt."""
    ctx = await runtime.context.ready(state["request"])
    project, s, req = ctx.project, ctx.settings, state["request"]
    records = [state["scenes"][k] for k in sorted(state["scenes"])]
    t = now()
    emit("assemble", f"Assembling {len(records)} scenes")
    # each slide stays up for its narration plus a pause, and at least as long as its text takes to
    # read; holds are whole frames, and the narration track is padded to match them exactly, so one
    # scene's change never shifts another scene's segment
    holds = [hold_seconds(r, s) for r in records]
    starts = [0.0]
    for h in holds[:-1]:
        starts.append(round(starts[-1] + h, 3))
    scene_cues = await asyncio.to_thread(lambda: [_scene_cues(ctx, r) for r in records])
    workers = asyncio.Semaphore(os.cpu_count() or 2)  # ffmpeg runs: one per core
    with_clips = any(r.clip is not None and r.clip.box for r in records)

    title = state["script"].title
    opening, closing = (await _cards(ctx, state, records, title)) if s.cards else (None, None)
    length = round(sum(holds) + end_seconds(s), 6)

    async def segment(r: SceneRecord, hold: float, cues: list[subtitles.Cue]) -> Path:
        async with workers:
            return await _segment(ctx, r, hold, cues if s.burn_subtitles else [], req.aspect, req.language,
                                  total=len(records), lead=opening if r is records[0] else None,
                                  with_clips=with_clips)

    (track, placed), *segments = await asyncio.gather(
        _narration_track(ctx, records, starts, length, workers),
        *(segment(r, h, c) for r, h, c in zip(records, holds, scene_cues, strict=True)),
    )
    if closing is not None:
        segments.append(await _still_segment(ctx, closing, END_CARD_SECONDS))
    chapters = [(r.title, st, st + h) for r, st, h in zip(records, starts, holds, strict=True)]
    if closing is not None:  # the last chapter runs to the end of the closing card
        chapters[-1] = (chapters[-1][0], chapters[-1][1], round(length, 3))
    out_mp4 = project.root / "lesson.mp4"
    await asyncio.to_thread(video.assemble, segments, track, out_mp4, chapters=chapters, title=title, fps=s.fps,
                            audio_length=length)
    # cues follow the speech, which starts where its piece of the AAC track was placed
    cues = [subtitles.Cue(round(c.start + at, 3), round(min(c.end + at, st + h), 3), c.text)
            for at, st, h, sc in zip(placed, starts, holds, scene_cues, strict=True) for c in sc]
    srt = await asyncio.to_thread(atomic_write_text, project.root / "lesson.srt", subtitles.to_srt(cues))
    vtt = await asyncio.to_thread(atomic_write_text, project.root / "lesson.vtt", subtitles.to_vtt(cues))
    info = await asyncio.to_thread(video.probe, out_mp4)
    if abs(info.video_duration - info.audio_duration) > 0.2:
        raise RenderError(
            f"the video ({info.video_duration:.2f} s) and audio ({info.audio_duration:.2f} s) of {out_mp4} disagree; "
            "this is a bug in the renderer, please report it with lesson.json"
        )
    placed = [r.model_copy(update={"hold_seconds": h, "start": st, "end": round(st + h, 3)})
              for r, st, h in zip(records, starts, holds, strict=True)]
    await asyncio.to_thread(project.prune_scene_dirs, {project.root / "scenes" / r.slug for r in placed})
    board = await asyncio.to_thread(lambda: storyboard.contact_sheet(
        [storyboard.Frame(project.resolve(r.slide), f"{r.index} · {r.role.replace('_', ' ')} · {r.layout or r.kind}")
         for r in placed if r.slide is not None], project.root / "storyboard.png", theme=req.theme))
    refs = await asyncio.to_thread(lambda: [project.ref(p) for p in (out_mp4, srt, board, vtt)])
    record = VideoRecord(
        file=refs[0],
        srt=refs[1],
        storyboard=refs[2],
        credits=[pictograms.LICENCE] if any(r.pictogram for r in placed) else [],
        vtt=refs[3],
        duration=round(info.duration, 3),
        video_duration=round(info.video_duration, 3),
        audio_duration=round(info.audio_duration, 3),
        width=info.width,
        height=info.height,
        chapters=chapters,
        loudness=({"target_i": s.loudness_lufs,
                   "scenes_output_i": [r.speech.loudness.get("output_i") for r in records if r.speech]}
                  if s.loudness_lufs is not None else {}),
        burned_subtitles=s.burn_subtitles,
    )
    emit("done", f"{out_mp4} ({info.duration:.1f} s)")
    return {"video": record.model_dump(), "scenes": {r.index: r for r in placed}, "timings": {"assemble": now() - t}}


async def _narration_track(
    ctx: Context, records: list[SceneRecord], starts: list[float], total: float, workers: asyncio.Semaphore
) -> tuple[Path, list[float]]:
    """The lesson's AAC narration track, each scene's piece placed where its slide begins.

    Pieces are encoded per scene and cached (tools.aactrack), so an edit encodes only the scenes
    whose narration changed; joining them is a copy. Returns the track and where each piece begins.
    """
    store = ctx.project.store

    async def piece(r: SceneRecord) -> tuple[Path, int]:
        key = content_key("aac-piece", r.speech.audio.sha256, aactrack.SAMPLE_RATE, video.AUDIO_BITRATE)
        found = await asyncio.to_thread(store.lookup, key, ".aac")
        if found is None:
            wav = await asyncio.to_thread(ctx.project.resolve, r.speech.audio)
            async with workers:
                found = await asyncio.to_thread(store.produce, key, ".aac",
                                                lambda p: {"frames": aactrack.encode_piece(wav, p)})
        return found[0], int(found[1]["frames"])

    pieces = list(await asyncio.gather(*(piece(r) for r in records)))
    key = content_key("aac-track", [str(p) for p, _ in pieces], starts, total)
    track, meta = await asyncio.to_thread(
        store.produce, key, ".aac", lambda p: {"placed": aactrack.build_track(pieces, starts, total, p)})
    return track, list(meta["placed"])


def _scene_cues(ctx: Context, r: SceneRecord) -> list[subtitles.Cue]:
    """Subtitle cues of one scene, in the scene's own time, spelled as written (not as spoken); cached."""
    assert r.speech is not None
    text = r.spoken_text
    lex = ctx.lexicon if ctx.lexicon is not None and ctx.lexicon.apply(text) != text else None
    key = content_key("cues", text, r.speech.words, r.speech.duration, lex.apply(text) if lex else None)
    cached = ctx.project.store.get_json(key)
    if cached is not None:
        return [subtitles.Cue(*c) for c in cached]
    timed = [WordTiming(*w) for w in r.speech.words]
    if lex is not None:
        words = lexicon.restore_written(text, timed, lex)
    else:
        words = subtitles.with_punctuation(text, timed)
    cues = subtitles.cues_from_words(words, audio_end=r.speech.duration)
    ctx.project.store.put_json(key, [[c.start, c.end, c.text] for c in cues])
    return cues


def _encode_moving(slide: Path, hold: float, seg: Path, fps: int, box: Any, moving: Any,
                   cues: list[subtitles.Cue], aspect: str, style: captions.CaptionStyle, *,
                   clip: Path | None = None, fades: bool = True) -> None:
    """A moving slide's segment, with its captions drawn as layers over the motion."""
    import tempfile

    from PIL import Image as PILImage

    with PILImage.open(slide) as img:
        size = img.size
    seg.parent.mkdir(parents=True, exist_ok=True)
    # ".*.tmp*": a run killed here leaves a folder the next run's Project.sweep_temp removes
    with tempfile.TemporaryDirectory(dir=seg.parent, prefix=".captions-", suffix=".tmp") as scratch:
        layers: list[motion.Caption] = []
        drawn: dict[str, tuple[Path, tuple[int, int]]] = {}
        for k, (start, end, text) in enumerate(captions.caption_spans(cues, 0.0, hold)):
            if text not in drawn:
                overlay, region = captions.caption_overlay(size, text, aspect=aspect, style=style)
                png = Path(scratch) / f"caption-{k}.png"
                overlay.save(png)
                drawn[text] = (png, (region[0], region[1]))
            layers.append((*drawn[text], start, end))
        motion.encode_motion_segment(slide, hold, seg, fps=fps, box=box, motion=moving, captions=layers, clip=clip,
                                     fade_in=fades, fade_out=fades)


def _encode_builds(project: Any, steps: Sequence[BuildRecord], hold: float, seg: Path, fps: int,
                   cues: list[subtitles.Cue], aspect: str, style: captions.CaptionStyle) -> None:
    """One segment of still pieces: each build state for its time (whole frames), with captions if burned."""
    from PIL import Image as PILImage

    times = builds.durations([b.start for b in steps], hold, fps)
    pieces: list[tuple[Any, float]] = []
    for b, seconds in zip(steps, times, strict=True):
        if seconds <= 0:
            continue
        with PILImage.open(project.resolve(b.slide)) as img:
            picture = img.convert("RGB")
        if cues:
            pieces += captions.caption_frames(picture, cues, b.start, seconds, aspect=aspect, style=style)
        else:
            pieces.append((picture, seconds))
    captions.encode_captioned_segment(pieces, seg, fps=fps)


async def _cards(ctx: Context, state: LessonState, records: list[SceneRecord], title: str) -> tuple[Path, Path]:
    """The opening and closing cards (cached): the title with the objectives, and the title with the recap."""
    req, store = state["request"], ctx.project.store
    outline = state.get("outline")
    objectives = list(outline.objectives) if outline is not None else []
    recap = next((r.bullets for r in reversed(records) if r.role == "recap" and r.bullets), objectives)
    first = records[0]  # the cards share the opening scene's pictogram
    icon = first.visual.icon if isinstance(first.visual, Pictogram) else pictograms.suggest(
        first.illustration_prompt, title=first.title)
    look = dict(aspect=req.aspect, theme=req.theme, language=req.language)

    def card(draw: Any, **fields: Any) -> Path:
        def make(path: Path) -> dict[str, Any]:
            result = draw(**fields, **look)
            save_png(result.image, path)
            return {"overflow": result.overflow}

        path, _ = store.produce(content_key("card", SLIDE_LAYOUT_VERSION, draw.__name__, fields, look), ".png", make)
        return path

    return await asyncio.gather(
        asyncio.to_thread(card, layouts.title_card, title=title, lines=objectives, icon=icon),
        asyncio.to_thread(card, layouts.end_card, title=title, lines=recap, icon=icon),
    )


async def _still_segment(ctx: Context, png: Path, seconds: float) -> Path:
    """A segment showing one picture for ``seconds`` (cached)."""
    store, fps = ctx.project.store, ctx.settings.fps
    key = content_key("still", await asyncio.to_thread(file_hash, png), seconds, fps, video.VIDEO_CODEC_ARGS)
    seg = await asyncio.to_thread(store.get, key, ".mp4")
    if seg is None:
        seg = await asyncio.to_thread(video.encode_segment, png, seconds, store.path(key, ".mp4"), fps=fps)
    return seg


async def _segment(ctx: Context, r: SceneRecord, hold: float, cues: list[subtitles.Cue], aspect: str,
                   language: str, *, total: int, lead: Path | None = None, with_clips: bool = False) -> Path:
    """The scene's video segment (cached): its slide held for ``hold``, with burned captions if asked.

    A scene with a clip plays it (looped or trimmed to ``hold``) in its box; in a lesson with clips
    every scene is encoded as moving segments are, without builds (tools.motion: they join only each
    other exactly).
    """
    project, s = ctx.project, ctx.settings
    assert r.slide is not None
    style = captions.CaptionStyle(language=language)
    moving = motion.motion_for(r.index) if s.motion else None
    clip = r.clip if r.clip is not None and r.clip.box else None
    as_moving = moving is not None or with_clips
    steps = [] if as_moving else r.builds
    if lead is not None and not as_moving:  # the opening card, over the first seconds of the first scene
        first = steps or [BuildRecord(start=0.0, shown=len(r.bullets), slide=r.slide)]
        until = first[1].start if len(first) > 1 else hold
        span = min(TITLE_CARD_SECONDS, until - 0.5)
        if span >= 1.0:
            card = BuildRecord(start=0.0, shown=0, slide=await asyncio.to_thread(ctx.project.ref, lead))
            steps = [card, first[0].model_copy(update={"start": span}), *first[1:]]
    key = content_key("segment", r.slide.sha256, hold, s.fps, video.VIDEO_CODEC_ARGS,
                      [dataclasses.astuple(c) for c in cues], dataclasses.asdict(style) if cues else None,
                      moving, r.picture_box if moving else None, [(b.start, b.slide.sha256) for b in steps],
                      *([("clip", clip.file.sha256, clip.box)] if clip else [("as-moving",)] if with_clips else []))
    seg = await asyncio.to_thread(project.store.get, key, ".mp4")
    if seg is not None:
        return seg
    emit("encode", r.title, scene=r.index, total=total)
    seg = project.store.path(key, ".mp4")
    slide = await asyncio.to_thread(project.resolve, r.slide)
    if clip is not None or with_clips:  # the clip plays in its box; other scenes encoded to join it
        await asyncio.to_thread(_encode_moving, slide, hold, seg, s.fps, clip.box if clip else r.picture_box if moving
                                else None, moving or motion.MOTIONS[0], cues, aspect, style,
                                clip=await asyncio.to_thread(project.resolve, clip.file) if clip else None, fades=moving is not None)
        return seg
    if moving is not None:  # pan/zoom inside the picture, fades at both ends; text and captions stay still
        await asyncio.to_thread(_encode_moving, slide, hold, seg, s.fps, r.picture_box, moving, cues, aspect, style)
        return seg
    if steps:  # the slide builds: each state held until the next, captions drawn over each
        await asyncio.to_thread(_encode_builds, project, steps, hold, seg, s.fps, cues, aspect, style)
        return seg
    if not cues:
        await asyncio.to_thread(video.encode_segment, slide, hold, seg, fps=s.fps)
        return seg

    def burn() -> None:
        from PIL import Image as PILImage

        with PILImage.open(slide) as img:
            picture = img.convert("RGB")
        pieces = captions.caption_frames(picture, cues, 0.0, hold, aspect=aspect, style=style)
        captions.encode_captioned_segment(pieces, seg, fps=s.fps)

    await asyncio.to_thread(burn)
    return seg
