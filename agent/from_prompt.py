"""A lesson from one sentence: the prompt read (lessonforge.agent.understand), a voice chosen for its hints,
then the lesson made (lessonforge.agent.run). Above both, so the reading stays free of the graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lessonforge.agent import prepare, run
from lessonforge.agent.context import create
from lessonforge.agent.understand import (
    MissingTopic,
    OnMissing,
    OnUnderstood,
    ParseMode,
    Understanding,
    hinted_gender,
    pick_voice,
    resolve,
    understand,
    understood_event,
)
from lessonforge.tools import registry
from lessonforge.tools.base import LessonForgeError


async def honour_voice_hint(understanding: Understanding, settings: Any) -> Understanding:
    """Choose a voice of the gender the prompt asked for ('with a female voice') when no voice was named,
    from the speech backend's list; what cannot be honoured becomes a note."""
    request = understanding.request
    gender = hinted_gender(understanding.reading.voice)
    if request is None or request.voice or not gender:
        return understanding
    try:
        listed, _ = await prepare.voices(request.language, settings.speech)
    except LessonForgeError as err:
        note = f"no {gender} voice chosen: the voices could not be listed ({err}); --voice NAME picks one"
        return understanding.model_copy(update={"notes": [*understanding.notes, note]})
    name = pick_voice(listed, request.language, gender)
    if not name:
        note = (f"no {gender} voice for {request.language} in {settings.speech}; the default voice speaks "
                f"(lessonforge voices --language {request.language} lists them)")
        return understanding.model_copy(update={"notes": [*understanding.notes, note]})
    return understanding.model_copy(update={"request": request.model_copy(update={"voice": name})})


async def _maybe(value: Any) -> Any:
    import inspect

    return await value if inspect.isawaitable(value) else value


async def understand_with(settings: Any, prompt: str, flags: dict[str, Any] | None = None, *,
                          mode: ParseMode = "auto", llm: Any = None,
                          on_missing: OnMissing | None = None) -> tuple[Understanding, Any]:
    """Read ``prompt`` with the LLM the settings name where that helps (see :func:`understanding_llm`).

    Returns the understanding and the LLM to reuse for the lesson (a model loaded for ``mode='llm'``),
    or None. A prompt with no topic asks ``on_missing`` for one, or raises MissingTopic without it.
    """
    made_here = llm is None and mode != "offline"
    if made_here:
        llm = understanding_llm(settings, mode)
    keep = None
    try:
        try:
            understanding = await understand(prompt, flags, llm=llm, mode=mode)
        except MissingTopic as err:
            if on_missing is None:
                raise
            topic = " ".join(str(await _maybe(on_missing(err))).split())
            if not topic:
                raise
            u = err.understanding
            understanding = resolve(prompt, u.reading, {**u.flags, "topic": topic}, via=u.via, unsure=u.unsure)
        understanding = await honour_voice_hint(understanding, settings)
        keep = llm if made_here and mode == "llm" else None
    finally:
        if made_here and llm is not None and keep is None:
            await run.close_backends(llm)
    return understanding, keep


async def start(
    prompt: str,
    settings: Any,
    out: Any = None,
    *,
    flags: dict[str, Any] | None = None,
    mode: ParseMode = "auto",
    on_understood: OnUnderstood | None = None,
    on_missing: OnMissing | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    on_review: Any = None,
    **backends: Any,
) -> tuple[Understanding, Any]:
    """A lesson from a one-shot prompt (for a chat's or a web page's first message): understand it, let
    ``on_understood`` see (or correct) the reading, then make the lesson with ``lessonforge.agent.run.make``;
    lesson.json records the prompt and its reading. An ``understood`` event carries the reading.

    The LLM step runs when the patterns are unsure and the LLM is a service (``openai:``, or an LLM
    object in ``backends``); a local model is not loaded just to read a prompt unless ``mode='llm'``.
    A prompt with no topic asks ``on_missing`` for one, or raises MissingTopic (a ConfigError)
    before any work.
    """
    emit = on_event or (lambda e: None)
    understanding, llm = await understand_with(settings, prompt, flags, mode=mode, llm=backends.get("llm"),
                                               on_missing=on_missing)
    if llm is not None:
        backends["llm"] = llm  # a model loaded to read the prompt also writes the lesson
    emit(understood_event(understanding))
    if on_understood is not None:
        understanding = await _maybe(on_understood(understanding))
    assert understanding.request is not None
    out = out if out is not None else run.default_out(understanding.request.topic)
    manifest = await run.make(understanding.request, settings, out, on_event=on_event, on_review=on_review,
                              understood=understanding, **backends)
    return understanding, manifest


def understanding_llm(settings: Any, mode: ParseMode) -> Any:
    """The LLM backend that reads prompts: the settings' LLM in 'llm' mode; in 'auto' mode only a service
    (``openai:``), since a local model would be loaded (or downloaded) just to read a sentence."""
    spec = settings.llm_spec()
    parsed = registry.parse("llm", spec)
    if parsed is None or (mode == "auto" and parsed.backend != "openai"):
        return None
    return create("llm", spec, device=settings.device)
