"""Per-scene nodes: narrate, illustrate, critique, choose and compose one scene."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from langgraph.runtime import Runtime

from lessonforge.agent import scene_clips
from lessonforge.agent.context import Context
from lessonforge.agent.nodes.common import _load_rgb, ask, derive_seed, emit
from lessonforge.agent.nodes.timing import PROMPT_WORDS, budget_wpm, hold_seconds_for, word_budgets
from lessonforge.agent.project import now
from lessonforge.agent.schemas import (
    Pictogram,
    PromptRevision,
    SceneDraft,
    TextOnly,
)
from lessonforge.agent.state import (
    Attempt,
    BuildRecord,
    SceneRecord,
    SceneState,
    SpeechRecord,
)
from lessonforge.tools.base import (
    ImageRequest,
    LessonForgeError,
    RenderError,
    Speech,
    SpeechError,
    WordTiming,
)
from lessonforge.tools.cache import content_key, link_or_copy, thread_to_end
from lessonforge.tools.cached import save_png
from lessonforge.tools.media import (
    audio,
    builds,
    layouts,
    loudness,
    pictograms,
    video,
)

SLIDE_LAYOUT_VERSION = 2  # bump when the typesetter's output changes, so cached slides are redrawn


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

        def retime(path: Path, src: Path = speech.path) -> dict[str, Any]:
            audio.to_wav(src, path, audio.wav_rate(src), tempo=tempo)
            return {"duration": audio.wav_duration(path)}

        _, timed = await ctx.project.store.aproduce(key, ".wav", retime, place=out)
        duration = float(timed["duration"])
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
    _, meta = store.produce(key, ".wav", lambda p: {"answer_at": video.concat_wavs(
        [question.path, spoken.path], p, gap_s=[pause, 0.0], sample_rate=rate)[1]}, place=out)
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

    _, report = store.produce(key, ".wav", make, place=wav)
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
        emit("revise", "Rewriting the picture prompt from the critic's feedback", scene=i, total=state["total"],
             attempt=attempt)
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
    width, height = await _picture_shape(ctx, state, size) if ctx.images.shaped else (size, size)
    [image] = await ctx.images.generate([ImageRequest(prompt=prompt, seed=seed, width=width, height=height)])
    path = _scene_dir(ctx, state) / "attempts" / f"{attempt:02d}-seed{seed}.png"
    meta = {"lessonforge:prompt": prompt, "lessonforge:seed": str(image.seed), "lessonforge:model": image.model}
    await asyncio.to_thread(save_png, image.image, path, **meta)
    cost = image.image.info.get("lessonforge:cost")  # a hosted picture's price (lessonforge.tools.images.openai)
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
        if ctx.critic.judges == "slide":  # judged as the viewer will see it
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
        note = (f"no picture passed the critic in {len(attempts)} attempt(s); kept the best "
                f"(score {attempts[best].score:.2f})")
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
    layout: dict[str, Any] = dict(
        role=draft.role, title=draft.title, bullets=draft.bullets, key=draft.key, answer=draft.answer, picture=picture,
        icon=icon, diagram=diagram, footer=footer, index=i, total=state["total"], aspect=req.aspect, theme=req.theme,
        language=req.language)

    async def draw(path: Path) -> dict[str, Any]:
        failed = ""
        try:  # a diagram is drawn crisply at the centre of a diagram layout
            result = await asyncio.to_thread(layouts.compose_scene, **layout)
        except RenderError as err:
            if layout["diagram"] is None:
                raise
            # one scene's diagram never sinks the lesson: its text stands alone (and builds without it)
            failed = f"the {layout['diagram'].kind} diagram could not be drawn ({err}); shown as a text slide"
            layout["diagram"] = None
            result = await asyncio.to_thread(layouts.compose_scene, **layout)
        box = result.boxes.get("picture") if picture is not None or layout["diagram"] is not None or icon else None
        await thread_to_end(save_png, result.image, path)
        return {"overflow": result.overflow, "notes": list(result.notes), "min_font_px": result.min_font_px,
                "picture_box": list(box) if box else None, "degraded": failed or degraded, "layout": result.layout,
                **({"clip_box": scene_clips.clip_box(result.boxes)} if clip is not None else {})}

    slide_path, meta = await project.store.aproduce(key, ".png", draw, place=folder / "slide.png")
    overflow, notes, min_font = bool(meta.get("overflow")), list(meta.get("notes", [])), meta.get("min_font_px")
    picture_box = tuple(meta["picture_box"]) if meta.get("picture_box") else None
    if clip is not None:
        clip = clip.model_copy(update={"box": tuple(meta["clip_box"]) if meta.get("clip_box") else None})
    if meta.get("degraded") and meta["degraded"] != degraded:  # its diagram failed when the slide was drawn
        layout["diagram"] = None
    degraded = meta.get("degraded") or degraded
    slide_ref = await asyncio.to_thread(project.ref, slide_path, key)
    wpm = await asyncio.to_thread(budget_wpm, ctx, req)  # reads the measured voice rates
    steps: list[BuildRecord] = []
    speech = state["speech"]
    if (ctx.settings.builds and not ctx.settings.motion and clip is None
            and (draft.bullets or speech.answer_at is not None)):
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
    """The slide's build states (lessonforge.tools.media.builds): each drawn once (cached) and kept as build-NN.png.

    Phrases appear as the narration reaches them, the one being said highlighted; a question's answer
    appears when it is spoken. Times are from the scene's start; the last state is the full slide."""
    hold = hold_seconds_for(speech.duration, draft.title, draft.bullets, ctx.settings)
    states = builds.plan(draft.bullets, speech.words, speech_end=speech.duration, hold=hold,
                         answer_at=speech.answer_at)
    project, out = ctx.project, []
    await asyncio.to_thread(_remove, folder.glob("build-*.png"))  # an earlier version's states
    for n, step in enumerate(states, 1):
        state_key = content_key("build", key, step.shown, step.highlight, step.reveal_answer)

        def draw(path: Path, step: builds.Step = step) -> dict[str, Any]:
            result = layouts.compose_scene(**layout, shown=step.shown, highlight=step.highlight,
                                           reveal_answer=step.reveal_answer)
            save_png(result.image, path)
            return {"overflow": result.overflow}

        png, _ = await project.store.aproduce(state_key, ".png", draw, place=folder / f"build-{n:02d}.png")
        ref = await asyncio.to_thread(project.ref, png, state_key)
        out.append(BuildRecord(start=round(step.start, 3), shown=step.shown, highlight=step.highlight,
                               reveal_answer=step.reveal_answer, slide=ref))
    return out


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
