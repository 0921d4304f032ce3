"""A scene's motion clip (--clips): made, judged, placed on the slide.

For a scene whose visual is a ``clip``, ``illustrate`` asks the clip generator once (under the
lesson's cost cap, lessonforge.tools.clips); the critic judges frames sampled from it, contrastively against
the other scenes as it judges pictures. A clip that fails, is refused (the cap, the service) or
times out, or that the critic rejects, leaves the scene to pictures (its prompt becomes the
picture prompt), with a warning; a rejected clip is still shown when no picture could be drawn.

On the slide the clip plays in the picture's box, below the title band: where the layout sets
text over the picture (the full-bleed hook), the box stops above the text. It is looped or
trimmed to the scene's length when the segment is encoded (lessonforge.tools.media.motion).
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lessonforge.agent.context import Context
from lessonforge.agent.state import ClipRecord, SceneState
from lessonforge.tools.base import ClipError, LessonForgeError
from lessonforge.tools.cache import content_key
from lessonforge.tools.clips import ClipRequest, sample_frames

FRAMES = 3  # frames the critic sees of each clip
TEXT_BOXES = ("title", "bullets", "footer", "answer_card", "answer")
MIN_SIDE = 64  # a box smaller than this shows no clip


async def make(ctx: Context, state: SceneState, folder: Path) -> tuple[ClipRecord | None, str]:
    """The scene's clip (cached by prompt, length, shape and model), or None and why not."""
    req, draft = state["request"], state["draft"]
    visual = draft.visual
    request = ClipRequest(prompt=visual.prompt, seconds=visual.seconds, aspect=req.aspect, seed=req.seed)
    key = content_key("clip", ctx.clips.name, request.prompt, request.seconds, request.aspect)

    async def generate(path: Path) -> dict[str, Any]:
        made = await ctx.clips.generate(request, path)
        return {"model": made.model, "seconds": made.seconds, "cost": made.cost}

    try:  # paid for once: a rerun or an edit finds it in the store
        placed, meta = await ctx.project.store.aproduce(key, ".mp4", generate, place=folder / "clip.mp4")
    except ClipError as err:
        return None, str(err)
    ref = await asyncio.to_thread(ctx.project.ref, placed, key)
    return ClipRecord(file=ref, model=str(meta["model"]), prompt=request.prompt, seconds=float(meta["seconds"]),
                      cost=float(meta["cost"])), ""


async def judge(ctx: Context, state: SceneState, clip: ClipRecord) -> ClipRecord:
    """The clip with the critic's verdict on ``FRAMES`` frames sampled through it (the majority decides)."""
    i = state["index"]
    prompts = list(state["prompts"])
    prompts[i - 1] = clip.prompt
    try:
        frames = await asyncio.to_thread(sample_frames, ctx.project.resolve(clip.file), FRAMES)
    except LessonForgeError as err:
        return clip.model_copy(update={"accepted": False, "reason": f"its frames cannot be read: {err}"})
    verdicts = await asyncio.gather(*(ctx.critic.judge_one(f, prompts, i - 1) for f in frames))
    passed = sum(v.accepted for v in verdicts)
    score = round(statistics.fmean(v.score for v in verdicts), 4)
    reasons = "; ".join(dict.fromkeys(v.reason for v in verdicts if v.reason))
    return clip.model_copy(update={"score": score, "accepted": passed * 2 > len(verdicts),
                                   "reason": f"{passed} of {len(verdicts)} frames accepted" + (
                                       f": {reasons}" if reasons else "")})


def still(path: Path) -> Any:
    """The frame the slide is composed with (the middle of the clip)."""
    [frame] = sample_frames(path, 1)
    return frame


def clip_box(boxes: Mapping[str, Any]) -> tuple[int, int, int, int] | None:
    """Where the clip plays: the tallest band of the picture's box that no text laid over it crosses."""
    if boxes.get("picture") is None:
        return None
    x0, y0, x1, y1 = (int(v) for v in boxes["picture"])
    spans = sorted((int(b[1]), int(b[3])) for name, b in boxes.items()
                   if b is not None and name.startswith(TEXT_BOXES) and int(b[0]) < x1 and int(b[2]) > x0
                   and int(b[1]) < y1 and int(b[3]) > y0)
    bands, top = [], y0
    for start, end in spans:
        bands.append((top, min(start, y1)))
        top = max(top, end)
    bands.append((top, y1))
    top, bottom = max(bands, key=lambda b: b[1] - b[0])
    if x1 - x0 < MIN_SIDE or bottom - top < MIN_SIDE:
        return None
    return x0, top, x1, bottom
