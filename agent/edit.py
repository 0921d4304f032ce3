"""Refining a lesson: a message becomes a structured edit plan, the plan a new script, the script a video.

Only what an edit changes is produced again: every asset is cached by the hash of its inputs, and
picture seeds follow a scene's prompt, not its position, so inserting, deleting or moving scenes
keeps the others' pictures. Every produced edit is a new version; undo goes back one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lessonforge import prompts
from lessonforge.agent.config import Settings, describe_validation
from lessonforge.agent.context import EventSink, create
from lessonforge.agent.nodes import SCENE_EXTRA_WORDS, count_words
from lessonforge.agent.project import Manifest, Project
from lessonforge.agent.quiz import QuizError, apply_changes, question_lines, renumber
from lessonforge.agent.run import close_backends, produce
from lessonforge.agent.schemas import EditPlan, SceneDraft, Script
from lessonforge.agent.state import LessonRequest
from lessonforge.tools.base import ConfigError, Message, expecting
from lessonforge.tools.cache import atomic_write_text

HISTORY_TURNS = 6  # earlier messages shown to the LLM with each new one
EDIT_PLAN_WORDS = 120  # a typical edit plan's text (reply, changed fields), for a local model's ETA


class PlanError(ConfigError):
    """An edit plan that cannot be applied (a scene that does not exist, say)."""


@dataclass
class EditResult:
    reply: str
    action: str  # edit | clarify | answer | none | refused (the plan names what does not exist)
    changed: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    version: int = 0


def describe(manifest: Manifest) -> str:
    """The lesson as the LLM sees it when editing: numbered scenes with their text."""
    lines = []
    for n, s in enumerate(manifest.scenes, 1):
        lines.append(json.dumps({"scene": n, "role": s.role, "title": s.title, "bullets": s.bullets,
                                 "narration": s.narration, "key": s.key, "answer": s.answer,
                                 "visual": s.visual.model_dump(mode="json")}, ensure_ascii=False))
    return "\n".join(lines)


def current_script(manifest: Manifest) -> Script:
    title = manifest.script.title if manifest.script else manifest.request.topic
    return Script(title=title, scenes=[r.draft() for r in manifest.scenes])


def apply_plan(manifest: Manifest, plan: EditPlan) -> tuple[LessonRequest, Script, list[str]]:
    """The request and script after ``plan``, and a list of what changed (for the reply).

    Scene numbers are the current ones. Edits apply first; inserted scenes follow the scene they are
    inserted after; deletes remove current scenes; ``order`` lists the remaining current scenes.
    """
    scenes = list(current_script(manifest).scenes)
    n = len(scenes)
    named = [e.scene for e in plan.scene_edits] + plan.deletes + [i.after for i in plan.inserts if i.after != 0]
    named += plan.order or []
    missing = sorted({k for k in named if not 1 <= k <= n})
    if missing:
        raise PlanError(
            f"there is no scene {', '.join(map(str, missing))}: this lesson has {n} scenes (1-{n})"
        )
    changed: list[str] = []
    for e in plan.scene_edits:
        update = e.changes()
        new = scenes[e.scene - 1].model_copy(update=update)
        try:
            new = SceneDraft.model_validate(new.model_dump(mode="json"))
        except ValidationError as err:
            raise PlanError(f"scene {e.scene}: {describe_validation(err)}") from None
        if new != scenes[e.scene - 1]:
            scenes[e.scene - 1] = new
            changed.append(f"scene {e.scene} ({', '.join(update)})")
    if len(set(plan.deletes)) >= n and not plan.inserts:
        raise PlanError("that would delete every scene; a lesson needs at least one")
    keep = [k for k in range(1, n + 1) if k not in set(plan.deletes)]
    if plan.order:
        if sorted(plan.order) != keep:
            raise PlanError(f"the new order must list each remaining scene once: {keep}")
        if plan.order != keep:
            changed.append("scene order")
    result = [scenes[k - 1] if isinstance(k, int) else k for k in arrangement(plan, n)]
    changed += [f"deleted scene {k}" for k in sorted(set(plan.deletes))]
    changed += [f"new scene after {i.after}" for i in plan.inserts]
    lesson = {k: v for k, v in plan.lesson.model_dump().items() if v is not None}
    request = manifest.request
    if lesson:
        try:
            request = LessonRequest.model_validate({**request.model_dump(), **lesson})
        except ValidationError as err:
            raise PlanError(describe_validation(err)) from None
        changed += [f"{k} -> {v}" for k, v in lesson.items() if getattr(manifest.request, k) != getattr(request, k)]
    return request, Script(title=manifest.script.title if manifest.script else request.topic, scenes=result), changed


def arrangement(plan: EditPlan, n: int) -> list[int | SceneDraft]:
    """The scenes after ``plan`` in their new order: kept scenes by their current number, new ones as drafts."""
    keep = list(plan.order) if plan.order else [k for k in range(1, n + 1) if k not in set(plan.deletes)]
    result: list[int | SceneDraft] = [i.scene for i in plan.inserts if i.after == 0]
    for k in keep:
        result.append(k)
        result += [i.scene for i in plan.inserts if i.after == k]
    for k in range(1, n + 1):  # inserts after a deleted scene still go in, where it was
        if k not in keep:
            anchor = next((j for j in range(k - 1, 0, -1) if j in keep), 0)
            at = result.index(anchor) + 1 if anchor else 0
            result[at:at] = [i.scene for i in plan.inserts if i.after == k]
    return result


def moved_scenes(plan: EditPlan, n: int) -> dict[int, int]:
    """Each kept scene's current number -> its number after ``plan``."""
    return {k: i for i, k in enumerate(arrangement(plan, n), 1) if isinstance(k, int)}


def apply_quiz(manifest: Manifest, plan: EditPlan, request: LessonRequest, script: Script) -> tuple[Any, list[str]]:
    """The quiz after ``plan``: its own changes, then questions follow their scenes; a new language or
    audience leaves none, so the quiz step writes them again."""
    if request.language != manifest.request.language or request.audience != manifest.request.audience:
        return None, ["questions written again"] if manifest.quiz is not None else []
    quiz, notes = renumber(manifest.quiz, moved_scenes(plan, len(manifest.scenes)))
    try:
        quiz, changed = apply_changes(quiz, plan.quiz, len(script.scenes))
    except QuizError as err:
        raise PlanError(str(err)) from None
    return quiz, notes + changed


async def edit(
    folder: Path | str,
    message: str,
    settings: Settings | None = None,
    *,
    history: list[dict[str, str]] | None = None,
    on_event: EventSink | None = None,
    **backends: Any,
) -> EditResult:
    """One turn: interpret ``message``, apply the plan, produce the changed scenes, assemble."""
    emit = on_event or (lambda e: None)
    project = Project(folder)
    manifest = project.load()
    if not manifest.scenes:
        raise ConfigError(f"{folder} has no finished lesson to edit; run lessonforge make first")
    if not message.strip():
        return EditResult(reply="Tell me what to change, e.g. \"make scene 2 simpler\".", action="none")
    if settings is None:
        settings = Settings.load(**{k: v for k, v in manifest.settings.items() if k in Settings.model_fields})
    llm = backends.pop("llm", None) or create("llm", settings.llm_spec())
    speech_spec = settings.speech
    req = manifest.request
    system, user = prompts.messages(
        "edit",
        speech=speech_spec,
        voice_examples=_voice_examples(speech_spec),
        language=req.language, audience=req.audience, minutes=f"{req.minutes:g}", theme=req.theme,
        aspect=req.aspect, voice=req.voice or "(default)",
        scenes=describe(manifest),
        questions=question_lines(manifest.quiz),
        history="\n".join(f"{m['role']}: {m['content']}" for m in (history or [])[-HISTORY_TURNS:]) or "(none)",
        message=message.strip(),
    )
    emit({"stage": "edit", "message": "Understanding the request"})
    try:
        with expecting(EDIT_PLAN_WORDS):
            plan: EditPlan = await llm.structured([Message("system", system), Message("user", user)], EditPlan)
    except BaseException:
        await close_backends(llm)
        raise
    early = None
    if plan.action != "edit":
        early = EditResult(reply=plan.reply, action=plan.action)
    else:
        try:
            request, script, changed = apply_plan(manifest, plan)
            quiz, quiz_changed = apply_quiz(manifest, plan, request, script)
            changed += quiz_changed
            if not changed and quiz is None:  # a lesson left without questions: any turn writes them
                changed = ["questions written"]
            if not changed:
                early = EditResult(reply="That leaves the lesson as it is; nothing to change.", action="none")
        except PlanError as err:
            early = EditResult(reply=f"I can't do that: {err}.", action="refused")
    if early is not None:
        await close_backends(llm)
        return early
    relang = request.language != req.language or request.audience != req.audience
    if relang and not _all_scenes_rewritten(plan, len(script.scenes)):
        emit({"stage": "edit", "message": f"Rewriting the lesson for {request.audience} in {request.language}"})
        script = await _restyle(llm, script, request)
    manifest = await produce(
        project, manifest.model_copy(update={"quiz": quiz}), request, script, settings,
        note=f"edit: {message.strip()}", fit_duration=request.minutes != req.minutes,
        on_event=on_event, llm=llm, **backends,
    )
    video = project.root / "lesson.mp4"
    reply = f"{plan.reply} Changed: {'; '.join(changed)}. New video: {video} ({manifest.video.duration:.0f} s)."
    return EditResult(reply=reply, action="edit", changed=changed, manifest=manifest, version=project.current_version())


def _all_scenes_rewritten(plan: EditPlan, n: int) -> bool:
    return len({e.scene for e in plan.scene_edits if e.narration}) >= n


async def _restyle(llm: Any, script: Script, request: LessonRequest) -> Script:
    """The same lesson for another audience or in another language (same scenes, same order)."""
    system, user = prompts.messages(
        "restyle", language=request.language, audience=request.audience,
        script=script.model_dump_json(indent=1), scenes=len(script.scenes),
    )
    words = sum(count_words(sc.narration) + SCENE_EXTRA_WORDS for sc in script.scenes)
    with expecting(words):
        new: Script = await llm.structured([Message("system", system), Message("user", user)], Script)
    if len(new.scenes) != len(script.scenes):
        raise ConfigError(
            f"the rewritten lesson has {len(new.scenes)} scenes instead of {len(script.scenes)}; try the edit again"
        )
    return new


def _voice_examples(spec: str) -> str:
    backend = spec.partition(":")[0]
    return {
        "edge": "en-GB-SoniaNeural (British), en-US-AriaNeural (American), fr-FR-DeniseNeural",
        "espeak": "en (British English), en-us (American English), fr, de",
        "openai": "alloy, coral, sage",
    }.get(backend, "a voice name from lessonforge voices")


async def undo(folder: Path | str, settings: Settings | None = None, *, on_event: EventSink | None = None,
               **backends: Any) -> Manifest:
    """Go back one version: its manifest becomes current and lesson.mp4 is rebuilt (from the cache)."""
    project = Project(folder)
    current = project.current_version()
    if current <= 1:
        raise ConfigError(f"{folder} is at its first version; there is nothing to undo (see lessonforge history)")
    return await _restore(project, current - 1, settings, f"undo to version {current - 1}", on_event, backends)


async def switch(folder: Path | str, number: int, settings: Settings | None = None, *,
                 on_event: EventSink | None = None, **backends: Any) -> Manifest:
    """Make version ``number`` current again (lesson.mp4 rebuilt from the cache), keeping every version.

    The later versions stay, so one can switch back to them; the next edit continues from ``number``
    and, like any edit after an undo, replaces them.
    """
    project = Project(folder)
    known = [v.number for v in project.versions()]
    if number not in known:
        have = f"{known[0]}-{known[-1]}" if known else "none"
        raise ConfigError(f"{folder} has no version {number} (versions: {have}); see lessonforge history {folder}")
    return await _restore(project, number, settings, f"switch to version {number}", on_event, backends)


async def _restore(project: Project, number: int, settings: Settings | None, note: str,
                   on_event: EventSink | None, backends: dict[str, Any]) -> Manifest:
    """Produce version ``number`` again and point the history at it, leaving the list of versions as it was."""
    current = project.current_version()
    later = {path: path.read_text("utf-8") for path in _versions_after(project, current)}
    kept = project.version_manifest(number)
    manifest = await produce(project, kept, kept.request, current_script(kept), settings, note=note,
                             on_event=on_event, **backends)
    # produce added a version after the current one (dropping any later ones): put the history back
    for path in _versions_after(project, current):
        path.unlink()
    for path, text in later.items():
        atomic_write_text(path, text)
    project.set_current_version(number)
    return manifest


def _versions_after(project: Project, number: int) -> list[Path]:
    return [p for p in project.versions_dir.glob("*.json") if p.stem.isdigit() and int(p.stem) > number]
