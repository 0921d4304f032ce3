"""--motion: pan/zoom inside the picture box only, fades inside each segment, exact lengths, joinable by copy."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lessonforge.tools.base import RenderError
from lessonforge.tools.media import motion, video
from lessonforge.tools.media.motion import encode_motion_segment

FPS = 24
SIZE = (480, 270)
BOX = (250, 40, 460, 240)  # where the "picture" is
BG = (240, 240, 235)


def make_slide(path: Path, seed: int = 0) -> Path:
    """A slide: flat background, dark "text" bars on the left, a detailed picture in BOX."""
    a = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    a[:] = BG
    a[40:60, 20:200] = (30, 30, 40)
    a[100:112, 20:160] = (30, 30, 40)
    rng = np.random.default_rng(seed)
    h, w = BOX[3] - BOX[1], BOX[2] - BOX[0]
    yy, xx = np.mgrid[0:h, 0:w]
    pic = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx // 12 + yy // 12) % 2) * 200], -1)
    pic = np.clip(pic + rng.integers(-20, 20, pic.shape), 0, 255)
    a[BOX[1]:BOX[3], BOX[0]:BOX[2]] = pic.astype(np.uint8)
    Image.fromarray(a).save(path)
    return path


def frames(path: Path, *, cfr: bool = False) -> np.ndarray:
    """Every decoded frame as (n, h, w, 3) RGB; ``cfr`` fills held frames of a variable-rate file."""
    args = [video.ffmpeg_exe(), "-v", "error", "-i", str(path)]
    args += ["-vf", f"fps={FPS}"] if cfr else ["-fps_mode", "passthrough"]
    args += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(args, capture_output=True, check=True).stdout
    w, h = SIZE[0] // 2 * 2, SIZE[1] // 2 * 2
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3).astype(np.int16)


def region(f: np.ndarray, box) -> np.ndarray:
    return f[box[1]:box[3], box[0]:box[2]]


def outside_mask(shape) -> np.ndarray:
    m = np.ones(shape[:2], bool)
    m[BOX[1] - 2:BOX[3] + 2, BOX[0] - 2:BOX[2] + 2] = False
    return m


def distance_to_bg(f: np.ndarray) -> float:
    return float(np.abs(f - np.array(BG)).mean())


@pytest.fixture(scope="module")
def slide(tmp_path_factory) -> Path:
    return make_slide(tmp_path_factory.mktemp("motion") / "slide.png")


@pytest.fixture(scope="module")
def moving(slide) -> Path:
    return encode_motion_segment(slide, 2.0, slide.parent / "moving.mp4", fps=FPS, box=BOX, motion="zoom_in")


def test_a_moving_segment_lasts_exactly_its_frames(slide, moving, tmp_path):
    assert video.probe(moving).video_duration == pytest.approx(48 / FPS, abs=1e-3)
    assert len(frames(moving)) == 48
    for seconds, n in ((1.01, 24), (0.52, 12)):
        seg = encode_motion_segment(slide, seconds, tmp_path / f"{n}.mp4", fps=FPS, box=BOX, motion="pan_left")
        assert video.probe(seg).video_duration == pytest.approx(n / FPS, abs=1e-3)
        assert len(frames(seg)) == n


def test_only_the_picture_moves(moving):
    f = frames(moving)
    k = round(motion.FADE_S * FPS)
    early, late = f[k + 1], f[len(f) - k - 2]  # after the fade in, before the fade out
    inside = np.abs(region(early, BOX) - region(late, BOX)).mean()
    out = outside_mask(early.shape)
    still = np.abs(early - late)[out].mean()
    assert inside > 4.0
    assert still < 0.3
    # and the motion is gradual: neighbouring frames differ less than frames far apart
    step = np.abs(region(f[20], BOX) - region(f[21], BOX)).mean()
    assert 0 < step < inside / 3


def test_the_picture_zooms_in(moving):
    f = frames(moving)
    k = round(motion.FADE_S * FPS)
    # zooming in about the centre: the picture's colour gradient spans fewer levels later
    span = [np.ptp(region(f[i], BOX)[..., 0].mean(axis=0)) for i in (k + 1, len(f) - k - 2)]
    assert span[1] < span[0] - 5


def test_fades_blend_to_the_background_near_the_boundaries(moving):
    f = frames(moving)
    k = round(motion.FADE_S * FPS)
    d = [distance_to_bg(x) for x in f]
    middle = d[len(f) // 2]
    assert d[0] < 0.1 * middle  # the first frame is (nearly) the background colour
    assert d[-1] < 0.25 * middle  # the last frame has nearly faded out
    assert d[0] < d[k // 2] < d[k + 1]  # blending in
    assert d[len(f) - k // 2 - 1] < d[len(f) - k - 2]  # blending out


def test_fades_can_be_switched_off_per_side(slide, tmp_path):
    seg = encode_motion_segment(slide, 1.0, tmp_path / "nofade.mp4", fps=FPS, box=BOX, fade_in=False, fade_out=True)
    f = frames(seg)
    d = [distance_to_bg(x) for x in f]
    assert d[0] > 0.8 * d[len(f) // 2]
    assert d[-1] < 0.25 * d[len(f) // 2]


def test_neighbouring_scenes_move_differently(slide, tmp_path):
    assert [motion.motion_for(i) for i in range(1, 6)] == ["zoom_in", "zoom_out", "pan_right", "pan_left", "zoom_in"]
    a = frames(encode_motion_segment(slide, 1.0, tmp_path / "a.mp4", box=BOX, motion="pan_right", fade_in=False,
                                     fade_out=False))
    b = frames(encode_motion_segment(slide, 1.0, tmp_path / "b.mp4", box=BOX, motion="pan_left", fade_in=False,
                                     fade_out=False))
    assert np.abs(region(a[-1], BOX) - region(b[-1], BOX)).mean() > 4.0


def test_a_slide_without_a_picture_encodes_only_its_fade_frames(slide, tmp_path):
    seg = encode_motion_segment(slide, 3.0, tmp_path / "text.mp4", fps=FPS, box=None)
    k = round(motion.FADE_S * FPS)
    assert video.probe(seg).video_duration == pytest.approx(3.0, abs=1e-3)
    assert len(frames(seg)) == 2 * k + 1  # fade in, one held frame, fade out: variable frame rate
    full = frames(seg, cfr=True)
    assert len(full) == 72
    d = [distance_to_bg(x) for x in full]
    assert d[0] < 0.1 * d[36] and abs(d[20] - d[50]) < 0.5  # faded in, then held still


def test_no_motion_and_no_fade_is_a_still_with_the_same_stream_structure(slide, tmp_path):
    seg = encode_motion_segment(slide, 1.5, tmp_path / "plain.mp4", box=None, fade_in=False, fade_out=False)
    assert len(frames(seg)) == 6 and video.probe(seg).video_duration == pytest.approx(1.5, abs=1e-3)
    full = frames(seg, cfr=True)
    assert len(full) == 36 and np.abs(full[0] - full[-1]).mean() < 0.5


def _extradata(path: Path) -> str:
    exe = video.ffprobe_exe()
    if exe is None:
        pytest.skip("ffprobe is not installed (apt-get install ffmpeg)")
    out = subprocess.run([exe, "-v", "error", "-select_streams", "v", "-show_streams", "-show_data", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return out.split("extradata=", 1)[1].split("extradata_size", 1)[0]


def _silence(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(np.zeros(round(seconds * 24000), "<i2").tobytes())
    return path


def _decodes_cleanly(path: Path) -> bool:
    check = subprocess.run([video.ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "null", "-"],
                           capture_output=True, text=True, check=False)
    return check.returncode == 0 and check.stderr.strip() == ""


@pytest.fixture(scope="module")
def parts(slide, moving):
    folder = slide.parent
    other = make_slide(folder / "other.png", seed=1)
    return {
        "moving": moving,  # 2 s
        "text": encode_motion_segment(other, 1.0, folder / "text.mp4", fps=FPS, box=None),
        "plain": encode_motion_segment(other, 1.0, folder / "plain.mp4", fps=FPS, box=None, fade_in=False,
                                       fade_out=False),
        "still": video.encode_segment(other, 1.0, folder / "still.mp4", fps=FPS),
    }


def test_moving_and_still_segments_share_codec_parameters(parts):
    assert len({_extradata(p) for p in parts.values()}) == 1


def test_a_motion_lesson_joins_by_copy_to_the_exact_length(parts, tmp_path):
    order = ["text", "moving", "plain", "moving", "still"]  # an encode_segment still may follow
    segs = [parts[k] for k in order]
    seconds = sum(2.0 if k == "moving" else 1.0 for k in order)
    out = video.assemble(segs, _silence(tmp_path / "a.wav", seconds), tmp_path / "lesson.mp4",
                         chapters=[], fps=FPS)
    assert _decodes_cleanly(out)
    assert video.probe(out).video_duration == pytest.approx(seconds, abs=1e-3)
    f = frames(out, cfr=True)
    assert len(f) == round(seconds * FPS)
    mid = frames(parts["moving"])[24]
    assert np.abs(f[24 + 24] - mid).mean() < 1.0  # the moving segment's frames, in place
    assert np.abs(f[24 + 48 + 24 + 24] - mid).mean() < 1.0


def test_a_moving_segment_right_after_an_encode_segment_still_keeps_its_length(parts, tmp_path):
    out = video.assemble([parts["still"], parts["moving"]], _silence(tmp_path / "a.wav", 3.0),
                         tmp_path / "lesson.mp4", chapters=[], fps=FPS)
    assert video.probe(out).video_duration == pytest.approx(3.0, abs=1e-3)


def test_bad_inputs_raise_render_error(slide, tmp_path):
    with pytest.raises(RenderError, match="does not exist"):
        encode_motion_segment(tmp_path / "nope.png", 1.0, tmp_path / "x.mp4", box=BOX)
    with pytest.raises(RenderError, match="positive"):
        encode_motion_segment(slide, 0.0, tmp_path / "x.mp4", box=BOX)
    with pytest.raises(RenderError, match="unknown motion"):
        encode_motion_segment(slide, 1.0, tmp_path / "x.mp4", box=BOX, motion="spin")  # type: ignore[arg-type]
    with pytest.raises(RenderError, match="gentle"):
        encode_motion_segment(slide, 1.0, tmp_path / "x.mp4", box=BOX, zoom=3.0)
    assert not (tmp_path / "x.mp4").exists()


def test_background_is_the_commonest_top_row_colour():
    img = Image.new("RGB", (100, 20), (10, 20, 30))
    img.paste((200, 0, 0), (0, 0, 12, 20))  # an accent band on the left edge
    assert motion.background_of(img) == (10, 20, 30)


def test_captions_lie_still_over_a_moving_slide_for_their_frames(slide, moving, tmp_path):
    from lessonforge.tools.media.captions import caption_overlay

    layer, area = caption_overlay(SIZE, "Leaves catch the light", aspect="16:9")
    png = tmp_path / "caption.png"
    layer.save(png)
    out = encode_motion_segment(slide, 2.0, tmp_path / "captioned.mp4", fps=FPS, box=BOX, motion="zoom_in",
                                captions=[(png, area[:2], 0.5, 1.25)])  # frames 12 to 29
    plain, captioned = frames(moving), frames(out)
    assert len(captioned) == 48 and video.probe(out).video_duration == pytest.approx(2.0, abs=1e-3)
    ink = np.asarray(layer)[..., 3] > 200  # where the caption is opaque
    for i in range(48):
        differs = np.abs(region(captioned[i], area)[ink] - region(plain[i], area)[ink]).mean()
        assert (differs > 20) == (12 <= i <= 29), (i, differs)  # shown exactly on its frames
    # Outside the caption the frames are the moving slide's own: the picture still moves under it.
    rest = np.ones(captioned.shape[1:3], bool)
    rest[area[1]:area[3], area[0]:area[2]] = False
    assert np.abs(captioned[20][rest] - plain[20][rest]).mean() < 1.0
    assert np.abs(region(captioned[40], BOX) - region(captioned[8], BOX)).mean() > 3  # moved
