"""Assembly: the narration track, the title and end cards, segments, subtitles and the video."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from lessonforge.agent.context import Context
from lessonforge.agent.nodes.common import emit
from lessonforge.agent.nodes.scene import SLIDE_LAYOUT_VERSION
from lessonforge.agent.nodes.timing import END_CARD_SECONDS, TITLE_CARD_SECONDS, end_seconds, hold_seconds
from lessonforge.agent.project import VideoRecord, now
from lessonforge.agent.schemas import (
    Pictogram,
)
from lessonforge.agent.state import (
    BuildRecord,
    LessonState,
    SceneRecord,
)
from lessonforge.tools.base import (
    RenderError,
    WordTiming,
)
from lessonforge.tools.cache import atomic_write_text, content_key, file_hash
from lessonforge.tools.cached import save_png
from lessonforge.tools.media import (
    aactrack,
    builds,
    captions,
    layouts,
    motion,
    pictograms,
    storyboard,
    subtitles,
    video,
)
from lessonforge.tools.speech import lexicon


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

    (track, offsets), segments = await asyncio.gather(
        _narration_track(ctx, records, starts, length, workers),
        asyncio.gather(*(segment(r, h, c) for r, h, c in zip(records, holds, scene_cues, strict=True))),
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
            for at, st, h, sc in zip(offsets, starts, holds, scene_cues, strict=True) for c in sc]
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

    Pieces are encoded per scene and cached (lessonforge.tools.media.aactrack), so an edit encodes only the scenes
    whose narration changed; joining them is a copy. Returns the track and where each piece begins.
    """
    store = ctx.project.store

    async def piece(r: SceneRecord) -> tuple[Path, int]:
        key = content_key("aac-piece", r.speech.audio.sha256, aactrack.SAMPLE_RATE, video.AUDIO_BITRATE)
        found = await asyncio.to_thread(store.lookup, key, ".aac")
        if found is None:
            wav = await asyncio.to_thread(ctx.project.resolve, r.speech.audio)
            async with workers:  # only misses wait for a worker
                found = await store.aproduce(key, ".aac", lambda p: {"frames": aactrack.encode_piece(wav, p)})
        return found[0], int(found[1]["frames"])

    pieces = list(await asyncio.gather(*(piece(r) for r in records)))
    key = content_key("aac-track", [str(p) for p, _ in pieces], starts, total)
    track, meta = await store.aproduce(key, ".aac",
                                       lambda p: {"placed": aactrack.build_track(pieces, starts, total, p)})
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
    every scene is encoded as moving segments are, without builds (lessonforge.tools.media.motion: they join only each
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
        box = clip.box if clip else r.picture_box if moving else None
        clip_file = await asyncio.to_thread(project.resolve, clip.file) if clip else None
        await asyncio.to_thread(_encode_moving, slide, hold, seg, s.fps, box, moving or motion.MOTIONS[0], cues, aspect,
                                style, clip=clip_file, fades=moving is not None)
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
