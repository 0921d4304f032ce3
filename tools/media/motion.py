"""``--motion``: a gentle pan/zoom (Ken Burns) on the illustration, and soft transitions between scenes.

Only the picture moves. The slide is decoded once; its picture box is cut out, moved with
ffmpeg's ``perspective`` filter (sub-pixel sampling, evaluated per frame, so the zoom glides
instead of stepping a pixel at a time as ``zoompan`` does) and laid back over the still slide, so
titles, bullets and footer never move and stay sharp. The motion follows a smoothstep curve (it
eases in and out) and varies from scene to scene: zoom in, zoom out, pan right, pan left.

Transitions: each segment fades in from and out to the slide's background colour over its own
first and last ``fade_s`` seconds ("dip to background"). A true crossfade would overlap
neighbouring scenes, shortening the video by the overlap and tying each segment to its
neighbours' pictures. Fading inside each segment instead keeps every length unchanged (the video
still ends with the narration, chapters stay where they were), keeps each segment a function of
its own slide only (so the content-addressed cache and the join without re-encoding both keep
working), and needs nothing from the audio. The narration of neighbouring scenes is already
separated by a pause, which the fade covers.

Segments share every codec parameter with ``video.encode_segment`` (libx264 high profile, the same
preset/tune/CRF, yuv420p BT.709 limited range, time base 1/fps, track timescale fps*1000), so
still and moving segments mix in one lesson and are joined by ``video.assemble`` with ``-c copy``.
A segment without a picture box is a still with fades: only the fade frames and three frames at
each end are encoded (variable frame rate, as ``encode_segment`` does), so it costs little more than
a still.

Joining, one caveat: x264 (with B-frames, as ``encode_segment`` configures it) gives a stream of
three or more frames a two-frame reordering delay (its first decode time is two frames before
zero); ``encode_segment``'s two-frame stills have none. Segments from this module all have the
delay and join with each other, and with such stills after them, exactly; a segment with the delay
right after one without comes out two frames short in the joined MP4. A --motion lesson therefore
encodes every scene here (stills included, which cost next to nothing).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from PIL import Image

from lessonforge.tools.base import RenderError
from lessonforge.tools.cache import atomic_path
from lessonforge.tools.media import video

Motion = Literal["zoom_in", "zoom_out", "pan_right", "pan_left"]
MOTIONS: tuple[Motion, ...] = ("zoom_in", "zoom_out", "pan_right", "pan_left")

ZOOM = 1.08  # the largest scale reached: gentle
FADE_S = 0.3  # each side of a scene boundary; a transition is 2 x FADE_S from picture to picture

Box = tuple[int, int, int, int]


Caption = tuple[Path, tuple[int, int], float, float]  # (RGBA png, (x, y), start s, end s)


def motion_for(index: int) -> Motion:
    """A different movement for neighbouring scenes (1-based ``index``)."""
    return MOTIONS[(index - 1) % len(MOTIONS)]


def background_of(slide: Image.Image) -> tuple[int, int, int]:
    """The slide's background colour: the commonest colour of its top row."""
    row = slide.convert("RGB").crop((0, 0, slide.width, 1))
    (colour, _), = Counter(row.getdata()).most_common(1)
    return colour


def _even_box(box: Sequence[int], size: tuple[int, int]) -> Box:
    """``box`` clipped to the frame, with even corners (chroma planes line up; sizes stay exact)."""
    W, H = size
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, y0 = max(0, x0) // 2 * 2, max(0, y0) // 2 * 2
    x1, y1 = min(W, x1) // 2 * 2, min(H, y1) // 2 * 2
    return x0, y0, x1, y1


def _corners(motion: Motion, n: int, zoom: float) -> dict[str, str]:
    """perspective's source corners as per-frame expressions of ``on`` (the output frame number).

    The source rectangle (the part of the picture shown) is ``W/z`` x ``H/z``, centred at ``cx``;
    its corners are sent to the output's corners, so a smaller rectangle is a closer view.
    """
    p = f"(on/{max(1, n - 1)})"
    e = f"({p}*{p}*(3-2*{p}))"  # smoothstep: starts and stops gently
    zf = f"{zoom:.6f}"
    if motion == "zoom_in":
        z, cx = f"(1+({zf}-1)*{e})", "(W/2)"
    elif motion == "zoom_out":
        z, cx = f"({zf}-({zf}-1)*{e})", "(W/2)"
    else:
        z = f"({zf})"
        d = f"((W-W/{zf})/2*(2*{e}-1))"  # from one edge of the zoomed view to the other
        cx = f"(W/2+{d})" if motion == "pan_right" else f"(W/2-{d})"
    hw, hh = f"(W/(2*{z}))", f"(H/(2*{z}))"
    left, right = f"({cx}-{hw})", f"({cx}+{hw})"
    top, bottom = f"(H/2-{hh})", f"(H/2+{hh})"
    return {"x0": left, "y0": top, "x1": right, "y1": top, "x2": left, "y2": bottom, "x3": right, "y3": bottom}


def _hex(rgb: Sequence[int]) -> str:
    return "0x{:02X}{:02X}{:02X}".format(*(int(c) for c in rgb[:3]))


def encode_motion_segment(slide_png: Path, duration: float, out: Path, *, fps: int = 24,
                          box: Sequence[int] | None = None, motion: Motion = "zoom_in", zoom: float = ZOOM,
                          fade_in: bool = True, fade_out: bool = True, fade_s: float = FADE_S,
                          background: Sequence[int] | None = None,
                          captions: Sequence[Caption] = (), clip: Path | None = None) -> Path:
    """A video-only segment like ``video.encode_segment``'s, with the picture in ``box`` moving gently.

    ``box`` (left, top, right, bottom; ``SlideResult.boxes["picture"]``) is the only region that
    moves; None animates nothing. ``fade_in``/``fade_out`` fade from/to ``background`` (default: the
    slide's own background) over ``fade_s`` seconds inside the segment, so its length is still
    ``round(duration * fps)`` frames. Without a box only the fade frames and three frames at each
    end are encoded (see the module docstring).

    ``captions`` are laid over the frames, still while the picture moves: each is a transparent
    PNG (``lessonforge.tools.media.captions.caption_overlay``), where its top-left corner goes, and the seconds from
    the segment's start when it shows and stops showing (rounded to frames); they fade with the slide.

    ``clip`` (a video file, --clips) plays in ``box`` instead of the still picture moving: scaled to
    cover the box (centre-cropped), looped when shorter than the segment and cut when longer.
    """
    slide_png, out = Path(slide_png), Path(out)
    video.check_segment(slide_png, duration, fps)
    if motion not in MOTIONS:
        raise RenderError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")
    if not 1.0 <= zoom <= 1.5:
        raise RenderError(f"zoom must be between 1.0 and 1.5 (gentle), got {zoom}")
    try:
        with Image.open(slide_png) as im:
            size = im.size
            bg = tuple(background) if background is not None else background_of(im)
    except OSError as exc:
        raise RenderError(f"cannot read the slide {slide_png}: {exc}. Fix: compose the slide again.") from exc

    n = video.frames_for(duration, fps)
    k = min(n // 2, max(0, round(fade_s * fps)))  # fade frames on each side
    kin, kout = (k if fade_in else 0), (k if fade_out else 0)
    moving = None
    if box is not None:
        moving = _even_box(box, size)
        if moving[2] - moving[0] < 16 or moving[3] - moving[1] < 16:
            moving = None  # too small to move visibly
    if clip is not None and (moving is None or not Path(clip).is_file()):
        raise RenderError(f"the clip {clip} needs a picture box of at least 16x16 pixels and a readable file. "
                          "Fix: compose the slide again, or make the clip again.")
    colour = _hex(bg)
    for png, _, start, end in captions:
        if not (0 <= start < end) or not Path(png).is_file():
            raise RenderError(f"bad caption {png} ({start}-{end} s). Fix: draw the caption again.")
    chain = [  # converted once, as encode_segment converts it, then cloned: still areas match a still
        "[0:v]scale=w=trunc(iw/2)*2:h=trunc(ih/2)*2:out_color_matrix=bt709:out_range=tv:flags=lanczos",
        "format=yuv420p",
        "setsar=1",
        f"loop=loop={n - 1}:size=1:start=0",
        "setpts=N",
    ]
    graph: list[str] = []
    if clip is not None and moving is not None:
        x0, y0, x1, y1 = moving
        w, h = x1 - x0, y1 - y0
        graph.append(",".join(chain) + "[base]")
        graph.append(f"[{len(captions) + 1}:v]fps={fps},scale=w={w}:h={h}:force_original_aspect_ratio=increase:"
                     f"flags=bicubic,crop={w}:{h},scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,setsar=1,"
                     f"trim=end_frame={n},setpts=N[clip]")
        head = f"[base][clip]overlay=x={x0}:y={y0}:format=yuv420:eval=init:eof_action=repeat"
    elif moving is not None:
        x0, y0, x1, y1 = moving
        corners = _corners(motion, n, zoom)
        persp = ":".join(f"{key}='{expr}'" for key, expr in corners.items())
        graph.append(",".join(chain) + ",split=2[base][pic]")
        graph.append(f"[pic]crop=w={x1 - x0}:h={y1 - y0}:x={x0}:y={y0},"
                     f"perspective={persp}:interpolation=cubic:sense=source:eval=frame[moved]")
        head = f"[base][moved]overlay=x={x0}:y={y0}:format=yuv420:eval=init"
    else:
        head = ",".join(chain)
    tail: list[str] = []
    if kin:
        tail.append(f"fade=t=in:s=0:n={kin}:c={colour}")
    if kout:
        tail.append(f"fade=t=out:s={n - kout}:n={kout}:c={colour}")
    if captions:  # each caption converted as the slide is, then laid over from its first to its last frame
        graph.append(head + "[m0]")
        for j, (_, (x, y), start, end) in enumerate(captions):
            first, last = round(start * fps), min(n, round(end * fps)) - 1
            graph.append(f"[{j + 1}:v]scale=out_color_matrix=bt709:out_range=tv,format=yuva420p[c{j}]")
            graph.append(f"[m{j}][c{j}]overlay=x={int(x)}:y={int(y)}:format=yuv420:eval=init:"
                         f"enable='between(n,{first},{last})'[m{j + 1}]")
        head = f"[m{len(captions)}]null"
    if moving is None and n > 6 and not captions:
        # Still between the fades: encode only the fade frames and three frames at each end. x264
        # gives the stream a two-frame reordering delay (B-frames), so three dense frames at the head
        # make these segments start like moving ones (they join any others exactly), and three at the
        # tail keep the last decoded frame the last shown (the MP4 track lasts all n frames).
        head_n, tail_n = max(kin + 1, 3), max(kout, 3)
        tail.append(f"select=lt(n\\,{head_n})+gte(n\\,{n - tail_n})")
    graph.append(head + "".join("," + f for f in tail) + "[v]")
    with atomic_path(out) as tmp:
        video.run_ffmpeg([
            "-framerate", str(fps), "-i", str(slide_png),
            *[arg for png, *_ in captions for arg in ("-i", str(png))],
            *(["-stream_loop", "-1", "-i", str(clip)] if clip is not None else []),
            "-filter_complex", ";".join(graph), "-map", "[v]",
            "-fps_mode", "passthrough", "-enc_time_base", f"1/{fps}",
            *video_codec_args(),
            "-video_track_timescale", str(fps * 1000),
            "-an", "-f", "mp4", str(tmp),
        ], f"encode the moving slide {slide_png.name}")
    return out


def video_codec_args() -> list[str]:
    """The encoder settings of ``video.encode_segment``: segments must match them to join by copy."""
    return list(video.VIDEO_CODEC_ARGS)
