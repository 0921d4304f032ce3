"""Lesson-level nodes: plan, review, write (and mend), fit to the duration, fan out, measure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Send, interrupt

from lessonforge.agent import voicestats
from lessonforge.agent.context import Context
from lessonforge.agent.graph_context import CONTEXT_HELP, ContextError
from lessonforge.agent.nodes.common import _save_progress, ask, emit, style_line
from lessonforge.agent.nodes.timing import (
    OUTLINE_WORDS,
    SCENE_EXTRA_WORDS,
    SECTION_WORDS,
    budget_wpm,
    count_words,
    duration_tolerance,
    end_seconds,
    even_targets,
    hold_seconds,
    scene_count,
    scenes_seconds,
    word_budgets,
)
from lessonforge.agent.project import now
from lessonforge.agent.schemas import (
    NarrationRewrite,
    Outline,
    SceneDraft,
    SceneReplacement,
    Script,
    sized_script,
    unsized,
)
from lessonforge.agent.state import (
    Duration,
    LessonInput,
    LessonRequest,
    LessonState,
    SceneState,
    make_request,
)
from lessonforge.tools.base import (
    LessonForgeError,
)


def begin(given: LessonInput) -> dict[str, Any]:
    """The server's graph starts here: LangGraph has checked the input against `LessonInput` (the request's
    fields, as Studio's form shows them); the lesson state holds the request as one value."""
    return given.state()


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
        scenes = await rewrite_to_budget(ctx, req, scenes, off, budgets, targets, wpm)
    new_script = script.model_copy(update={"scenes": scenes})
    if new_script != script:
        await _save_progress(ctx, req, outline=state.get("outline"), script=new_script, targets=targets,
                             status="written")
    return {"script": new_script, "timings": {"fit": now() - t}}


SHORTER = "Make it shorter: keep the key idea and its example, cut the rest."
LONGER = "Make it longer: add a concrete example or a short explanation."


async def rewrite_to_budget(ctx: Context, req: LessonRequest, drafts: Sequence[SceneDraft], which: Sequence[int],
                            budgets: Sequence[int], targets: Sequence[float], wpm: float, *,
                            shorter: bool | None = None) -> list[SceneDraft]:
    """``drafts`` with the narration of each scene in ``which`` rewritten toward its word budget (LLM, one
    request per scene, concurrently); the other scenes as they were. Each is asked to be shorter when it
    has more words than its budget, or, when ``shorter`` is given, all in that direction (the measured
    lesson as a whole runs long or short)."""

    async def one(i: int) -> SceneDraft:
        draft, words = drafts[i], count_words(drafts[i].narration)
        cut = words > budgets[i] if shorter is None else shorter
        reply: NarrationRewrite = await ask(
            ctx, "fit", NarrationRewrite, expect_words=budgets[i], language=req.language, words=words,
            budget=budgets[i], wpm=round(wpm), seconds=round(targets[i]), direction=SHORTER if cut else LONGER,
            title=draft.title, narration=draft.narration)
        return draft.model_copy(update={"narration": reply.narration})

    out = list(drafts)
    for i, new in zip(which, await asyncio.gather(*(one(i) for i in which)), strict=True):
        out[i] = new
    return out


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
        drafts = await rewrite_to_budget(ctx, req, [r.draft() for r in records], off, budgets, targets, wpm,
                                         shorter=scale < 1)
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
