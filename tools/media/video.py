"""The renderer: still slides + narration -> MP4 (H.264/yuv420p + AAC, faststart, chapters).

Each slide is encoded once, on its own, as a short video-only segment; the lesson is the segments
joined without re-encoding (concat demuxer, ``-c:v copy``) and muxed with the full narration.
An edit that changes one scene re-encodes one segment.

A segment is variable-frame-rate: two frames, the slide at 0 and the same slide one frame before
the end, with timestamps on the ``fps`` grid. It lasts exactly ``round(duration * fps)`` frames,
costs the encoder two frames instead of ``duration * fps`` (measured here: 0.16 s against 0.8 s
with ``-loop 1 -preset ultrafast`` and 1.8 s with ``veryfast`` for a 15 s 1080p slide, at a tenth
of ultrafast's size), every segment starts with a key frame (chapters seek exactly), and all
segments share codec parameters and time base, so they join with ``-c copy``.

ffmpeg runs as a subprocess with an argument list (never a shell); every output is written to a
temporary file and renamed (``lessonforge.tools.cache.atomic_path``); a failure raises RenderError with
ffmpeg's last stderr lines and a fix.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import struct
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lessonforge.tools.base import RenderError
from lessonforge.tools.cache import atomic_path

log = logging.getLogger(__name__)

FADE_S = 0.005  # fade at every join of narration parts, against clicks
AUDIO_BITRATE = "128k"
# Every segment (still, captioned or moving) is encoded with exactly these settings, so any mix of
# them joins by copy. No B-frames: a segment then has no reordering delay, whatever its frame count,
# and the joined video is as long as the sum of its segments.
VIDEO_CODEC_ARGS = (
    "-c:v", "libx264", "-preset", "medium", "-tune", "stillimage", "-crf", "18", "-bf", "0",
    "-pix_fmt", "yuv420p", "-profile:v", "high",
    "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
)
_INSTALL = "install ffmpeg: `pip install imageio-ffmpeg` (bundles one with libx264) or `apt-get install ffmpeg`"


# --------------------------------------------------------------------------- executables


def ffmpeg_exe() -> str:
    """imageio-ffmpeg's binary (built with libx264 and aac) if installed, else ``ffmpeg`` on PATH."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        if exe and Path(exe).is_file():
            return str(exe)
    except (ImportError, RuntimeError, OSError) as exc:
        log.debug("imageio-ffmpeg unavailable: %s", exc)
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    raise RenderError(f"ffmpeg was not found. Fix: {_INSTALL}.")


def ffprobe_exe() -> str | None:
    """``ffprobe`` on PATH, or None (``probe`` then parses ``ffmpeg -i`` and the MP4 boxes)."""
    return shutil.which("ffprobe")


def _fix_for(stderr: str) -> str:
    low = stderr.lower()
    if "no such file" in low or "does not exist" in low:
        return "check that every input file exists (an earlier step may have failed or been skipped)"
    if "unknown encoder" in low or "encoder not found" in low:
        return f"use an ffmpeg built with libx264 and aac: {_INSTALL}"
    if "no space left" in low:
        return "free disk space in the output folder"
    if "permission denied" in low:
        return "make the output folder writable"
    if "unrecognized option" in low or "option not found" in low:
        return f"use ffmpeg 5.1 or newer: {_INSTALL}"
    if "invalid data" in low or "could not find codec" in low or "error opening input" in low:
        return "the input is damaged or not a media file: delete it so it is produced again"
    return "read ffmpeg's message above; rerun with the same inputs to reproduce"


def run_ffmpeg(args: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run ffmpeg (``args`` without the executable); RenderError naming ``what`` on failure."""
    exe = ffmpeg_exe()
    cmd = [exe, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args]
    log.debug("ffmpeg %s", " ".join(args))
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise RenderError(f"could not start ffmpeg ({exe}) to {what}: {exc}. Fix: {_INSTALL}.") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:]) or "(no message)"
        raise RenderError(
            f"ffmpeg failed to {what} (exit {proc.returncode}):\n{tail}\nFix: {_fix_for(proc.stderr)}."
        )
    return proc


# --------------------------------------------------------------------------- segments


def frames_for(duration: float, fps: int) -> int:
    """Frames a segment of ``duration`` seconds gets (at least one)."""
    return max(1, int(round(duration * fps)))


def quantize_durations(durations: Sequence[float], fps: int = 24) -> list[float]:
    """Durations on the frame grid whose running sums stay within half a frame of the originals.

    Rounding each duration alone lets errors add up over many scenes; this rounds the cumulative
    end times instead, so the video ends with the narration.
    """
    out: list[float] = []
    total = 0.0
    prev = 0
    for d in durations:
        total += d
        edge = max(prev + 1, int(round(total * fps)))
        out.append((edge - prev) / fps)
        prev = edge
    return out


def check_segment(slide_png: Path, duration: float, fps: int) -> None:
    """RenderError, naming the fix, for a segment that cannot be encoded."""
    if not Path(slide_png).is_file():
        raise RenderError(f"slide image {slide_png} does not exist. Fix: compose the slide before encoding it.")
    if not (duration > 0 and math.isfinite(duration)):
        raise RenderError(f"segment duration must be positive, got {duration!r}. Fix: check the scene's audio.")
    if fps <= 0:
        raise RenderError(f"fps must be positive, got {fps}")


def encode_segment(slide_png: Path, duration: float, out: Path, *, fps: int = 24) -> Path:
    """A video-only H.264 (yuv420p, BT.709) MP4 showing ``slide_png`` for ``duration`` seconds.

    The length is ``round(duration * fps)`` frames exactly (see the module docstring).
    """
    slide_png, out = Path(slide_png), Path(out)
    check_segment(slide_png, duration, fps)
    n = frames_for(duration, fps)
    pick = f"eq(n\\,0)+eq(n\\,{n - 1})" if n > 1 else "eq(n\\,0)"
    vf = ",".join([
        "scale=w=trunc(iw/2)*2:h=trunc(ih/2)*2:out_color_matrix=bt709:out_range=tv:flags=lanczos",
        "format=yuv420p",
        "setsar=1",
        f"loop=loop={n - 1}:size=1:start=0",  # clones of one decoded frame: cheap
        "setpts=N",
        f"select={pick}",
    ])
    with atomic_path(out) as tmp:
        run_ffmpeg([
            "-framerate", str(fps), "-i", str(slide_png),
            "-vf", vf,
            "-fps_mode", "passthrough", "-enc_time_base", f"1/{fps}",
            *VIDEO_CODEC_ARGS,
            "-video_track_timescale", str(fps * 1000),
            "-an", "-f", "mp4", str(tmp),
        ], f"encode the slide {slide_png.name}")
    return out


# --------------------------------------------------------------------------- narration


def _wav_duration(path: Path) -> float | None:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (wave.Error, EOFError, OSError, RuntimeError, ValueError):  # wave raises all of these
        return None


def _read_mono16(path: Path, sample_rate: int, scratch: Path) -> np.ndarray:
    """Samples of ``path`` as mono int16 at ``sample_rate`` (ffmpeg converts anything else)."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() == 2 and w.getframerate() == sample_rate and w.getcomptype() == "NONE":
                data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
                ch = w.getnchannels()
                if ch > 1:
                    data = data[: len(data) // ch * ch].reshape(-1, ch).mean(axis=1).round().astype("<i2")
                return data
    except (wave.Error, EOFError, RuntimeError, ValueError):
        pass  # not plain PCM: ffmpeg converts it below
    except OSError as exc:
        raise RenderError(f"cannot read narration {path}: {exc}. Fix: synthesise the scene again.") from exc
    if not path.is_file():
        raise RenderError(f"narration part {path} does not exist. Fix: synthesise the scene again.")
    conv = scratch / f"part{len(list(scratch.iterdir()))}.wav"
    run_ffmpeg(["-i", str(path), "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_s16le", "-f", "wav", str(conv)],
         f"convert the narration {path.name} to {sample_rate} Hz mono")
    with wave.open(str(conv), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def _fade(samples: np.ndarray, n: int) -> np.ndarray:
    n = min(n, len(samples) // 2)
    if n <= 0:
        return samples
    out = samples.astype(np.float32)
    ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return np.clip(np.round(out), -32768, 32767).astype("<i2")


def concat_wavs(
    parts: Sequence[Path], out: Path, *, gap_s: float | Sequence[float] = 0.0, sample_rate: int = 24000
) -> list[float]:
    """Join narration WAVs into one mono 16-bit WAV with ``gap_s`` of silence after each part.

    ``gap_s`` is one pause for every part or one per part (so each scene can be held as long as
    its slide). Parts at another rate or format are converted; each part fades in and out over 5 ms
    so the joins do not click. Returns each part's start time in ``out`` (seconds, sample-exact).
    """
    if not parts:
        raise RenderError("no narration to join. Fix: pass at least one WAV file.")
    gaps = [float(gap_s)] * len(parts) if isinstance(gap_s, int | float) else [float(g) for g in gap_s]
    if len(gaps) != len(parts):
        raise RenderError(f"{len(gaps)} pauses for {len(parts)} narration parts; give one per part")
    if any(g < 0 for g in gaps):
        raise RenderError(f"pauses must be >= 0, got {min(gaps)}")
    fade_n = int(round(FADE_S * sample_rate))
    chunks: list[np.ndarray] = []
    starts: list[float] = []
    pos = 0
    with tempfile.TemporaryDirectory(prefix="lf-wav-") as scratch:
        for part, g in zip(parts, gaps, strict=True):
            samples = _fade(_read_mono16(Path(part), sample_rate, Path(scratch)), fade_n)
            gap = np.zeros(int(round(g * sample_rate)), dtype="<i2")
            starts.append(pos / sample_rate)
            chunks.extend([samples, gap])
            pos += len(samples) + len(gap)
    with atomic_path(out) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        for c in chunks:
            w.writeframes(c.astype("<i2").tobytes())
    return starts


# --------------------------------------------------------------------------- assembly


def concat_entry(path: Path) -> str:
    """A ``file`` line of ffmpeg's concat script; the path single-quoted, quotes as '\\''."""
    text = str(Path(path).resolve())
    if "\n" in text or "\r" in text:
        raise RenderError(f"cannot concatenate {text!r}: a newline in a file name. Fix: rename the folder.")
    return "file '" + text.replace("'", "'\\''") + "'"


def _meta_escape(text: str) -> str:
    """FFMETADATA escaping: '=', ';', '#', '\\' and newlines get a backslash."""
    return re.sub(r"([=;#\\\n])", r"\\\1", text.replace("\r\n", "\n").replace("\r", "\n"))


def ffmetadata(title: str, chapters: Sequence[tuple[str, float, float]]) -> str:
    """An FFMETADATA1 document with the title and one chapter per (title, start, end) in seconds."""
    lines = [";FFMETADATA1"]
    if title:
        lines.append(f"title={_meta_escape(title)}")
    for name, start, end in chapters:
        lines += ["", "[CHAPTER]", "TIMEBASE=1/1000", f"START={int(round(start * 1000))}",
                  f"END={int(round(end * 1000))}", f"title={_meta_escape(name)}"]
    return "\n".join(lines) + "\n"


def _check_chapters(chapters: Sequence[tuple[str, float, float]], length: float) -> list[tuple[str, float, float]]:
    out = []
    prev_end = 0.0
    for i, (name, start, end) in enumerate(chapters, 1):
        start, end = max(0.0, float(start)), min(float(end), length)
        if end <= start:
            raise RenderError(f"chapter {i} ({name!r}) ends at {end:.3f} s, not after its start {start:.3f} s "
                              f"(narration lasts {length:.3f} s). Fix: pass chapter times from the narration.")
        if start < prev_end - 1e-3:
            raise RenderError(f"chapter {i} ({name!r}) starts at {start:.3f} s, before chapter {i - 1} ends "
                              f"({prev_end:.3f} s). Fix: pass chapters in order, without overlap.")
        out.append((str(name), start, end))
        prev_end = end
    return out


def _segment_duration(path: Path) -> float:
    tracks = _mp4_tracks(path)
    for t in tracks:
        if t.handler == "vide" and t.media_duration is not None:
            return t.media_duration
    info = probe(path)
    if info.video_duration is None:
        raise RenderError(f"{path} has no video stream. Fix: encode it with encode_segment.")
    return info.video_duration


def _retimed(segment: Path, duration: float, scratch: Path, fps: int) -> Path:
    """``segment``'s picture encoded again to last ``duration`` seconds."""
    still = scratch / "last.png"
    run_ffmpeg(["-i", str(segment), "-frames:v", "1", "-f", "image2", "-c:v", "png", str(still)],
         f"read the picture of {segment.name}")
    return encode_segment(still, duration, scratch / "last.mp4", fps=fps)


def assemble(segments: Sequence[Path], audio: Path, out: Path, *, chapters: Sequence[tuple[str, float, float]],
             title: str = "", fps: int = 24, audio_length: float | None = None) -> Path:
    """Join video ``segments`` (from ``encode_segment``), add ``audio``, chapters and title.

    ``audio`` is a WAV (encoded to AAC here) or raw AAC (``.aac``) from ``lessonforge.tools.media.aactrack``
    (copied; pass ``audio_length``, the lesson's exact length, with it). The result lasts as long as the
    narration: when the segments end early or late by more than half a frame, the last one is
    re-encoded to take up the difference.
    """
    segments = [Path(s) for s in segments]
    audio, out = Path(audio), Path(out)
    if not segments:
        raise RenderError("no video segments to assemble. Fix: encode at least one slide.")
    for p in [*segments, audio]:
        if not p.is_file():
            raise RenderError(f"{p} does not exist. Fix: produce it again (rerun the lesson; cached steps are reused).")
    length = audio_length or _wav_duration(audio)
    if length is None:
        length = probe(audio).audio_duration
    if not length:
        raise RenderError(f"{audio} has no audio. Fix: synthesise the narration again.")
    chapters = _check_chapters(chapters, length)

    with tempfile.TemporaryDirectory(prefix="lf-assemble-") as scratch_dir:
        scratch = Path(scratch_dir)
        durations = [_segment_duration(s) for s in segments]
        missing = length - sum(durations)
        if abs(missing) > 0.5 / fps:
            new_last = durations[-1] + missing
            if new_last < 0.5 / fps:
                raise RenderError(
                    f"the slides last {sum(durations):.3f} s but the narration only {length:.3f} s. Fix: encode "
                    "each slide for its scene's narration time (see quantize_durations)."
                )
            if abs(missing) > 1.0:
                log.warning("slides last %.3f s, narration %.3f s: last slide retimed", sum(durations), length)
            segments = [*segments[:-1], _retimed(segments[-1], new_last, scratch, fps)]
        listing = scratch / "segments.ffconcat"
        listing.write_text("ffconcat version 1.0\n" + "\n".join(concat_entry(s) for s in segments) + "\n",
                           encoding="utf-8")
        meta = scratch / "metadata.txt"
        meta.write_text(ffmetadata(title, chapters), encoding="utf-8")
        with atomic_path(out) as tmp:
            run_ffmpeg([
                "-f", "concat", "-safe", "0", "-i", str(listing),
                "-i", str(audio),
                "-f", "ffmetadata", "-i", str(meta),
                "-map", "0:v:0", "-map", "1:a:0", "-map_metadata", "2", "-map_chapters", "2",
                "-c:v", "copy",
                *(["-c:a", "copy"] if audio.suffix == ".aac" else ["-c:a", "aac", "-b:a", AUDIO_BITRATE]),
                "-t", f"{length:.6f}",
                "-movflags", "+faststart", "-f", "mp4", str(tmp),
            ], f"assemble {out.name}")
    return out


# --------------------------------------------------------------------------- probing


@dataclass
class MediaInfo:
    """What a media file holds; durations in seconds, None where the file has no such stream."""

    duration: float
    video_duration: float | None = None
    audio_duration: float | None = None
    video_codec: str | None = None
    pix_fmt: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    chapters: list[tuple[str, float, float]] = field(default_factory=list)
    faststart: bool = False
    title: str = ""


@dataclass
class _Track:
    handler: str
    duration: float | None  # presentation (tkhd, after edit lists)
    media_duration: float | None  # samples (mdhd)


def _boxes(f, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """(type, payload offset, box end) of the ISO-BMFF boxes between ``start`` and ``end``."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        payload = pos + 8
        if size == 1:
            big = f.read(8)
            if len(big) < 8:
                return
            size = struct.unpack(">Q", big)[0]
            payload = pos + 16
        elif size == 0:
            size = end - pos
        if size < payload - pos:
            return
        yield kind.decode("latin-1"), payload, min(pos + size, end)
        pos += size


def _file_size(f) -> int:
    f.seek(0, 2)
    return f.tell()


def mp4_is_faststart(path: Path) -> bool:
    """Whether the ``moov`` box comes before ``mdat`` (playback can start while downloading)."""
    try:
        with open(path, "rb") as f:
            for kind, _, _ in _boxes(f, 0, _file_size(f)):
                if kind == "moov":
                    return True
                if kind == "mdat":
                    return False
    except OSError:
        pass
    return False


def _full_box_times(f, payload: int, *, with_track_id: bool) -> tuple[int | None, int]:
    """(timescale or None, duration) from an mvhd/mdhd (timescale) or tkhd (no timescale) box."""
    f.seek(payload)
    version = f.read(4)[0]
    if with_track_id:  # tkhd: times, track id, reserved, duration
        f.seek(payload + 4 + (16 if version == 1 else 8) + 8)
        dur = struct.unpack(">Q" if version == 1 else ">I", f.read(8 if version == 1 else 4))[0]
        return None, dur
    f.seek(payload + 4 + (16 if version == 1 else 8))
    scale = struct.unpack(">I", f.read(4))[0]
    dur = struct.unpack(">Q" if version == 1 else ">I", f.read(8 if version == 1 else 4))[0]
    return scale, dur


def _mp4_tracks(path: Path) -> list[_Track]:
    """Tracks of an MP4/MOV file from its boxes; [] when it is not one."""
    tracks: list[_Track] = []
    try:
        with open(path, "rb") as f:
            size = _file_size(f)
            moov = next(((p, e) for k, p, e in _boxes(f, 0, size) if k == "moov"), None)
            if moov is None:
                return []
            movie_scale = None
            for kind, p, e in list(_boxes(f, *moov)):
                if kind == "mvhd":
                    movie_scale, _ = _full_box_times(f, p, with_track_id=False)
                elif kind == "trak":
                    tracks.append(_read_trak(f, p, e, movie_scale))
    except (OSError, struct.error, IndexError):
        return []
    return tracks


def _read_trak(f, start: int, end: int, movie_scale: int | None) -> _Track:
    handler, tk_dur, media = "", None, None
    for kind, p, e in list(_boxes(f, start, end)):
        if kind == "tkhd":
            _, d = _full_box_times(f, p, with_track_id=True)
            tk_dur = d / movie_scale if movie_scale else None
        elif kind == "mdia":
            for k2, p2, _e2 in list(_boxes(f, p, e)):
                if k2 == "mdhd":
                    scale, d = _full_box_times(f, p2, with_track_id=False)
                    media = d / scale if scale else None
                elif k2 == "hdlr":
                    f.seek(p2 + 8)
                    handler = f.read(4).decode("latin-1")
    return _Track(handler, tk_dur, media)


def _num(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _probe_ffprobe(exe: str, path: Path) -> MediaInfo:
    cmd = [exe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "-show_chapters", str(path)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RenderError(f"ffprobe cannot read {path}:\n{tail}\nFix: {_fix_for(proc.stderr)}.")
    data = json.loads(proc.stdout or "{}")
    fmt = data.get("format", {})
    total = _num(fmt.get("duration")) or 0.0
    info = MediaInfo(duration=total, title=(fmt.get("tags") or {}).get("title", ""))
    for s in data.get("streams", []):
        kind = s.get("codec_type")
        dur = _num(s.get("duration"))
        if kind == "video" and info.video_codec is None and not (s.get("disposition") or {}).get("attached_pic"):
            info.video_codec, info.pix_fmt = s.get("codec_name"), s.get("pix_fmt")
            info.width, info.height = s.get("width"), s.get("height")
            info.video_duration = dur if dur is not None else total
        elif kind == "audio" and info.audio_codec is None:
            info.audio_codec = s.get("codec_name")
            info.audio_duration = dur if dur is not None else total
    for c in data.get("chapters", []):
        info.chapters.append(((c.get("tags") or {}).get("title", ""), _num(c.get("start_time")) or 0.0,
                              _num(c.get("end_time")) or 0.0))
    return info


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses/brackets."""
    parts, depth, buf = [], 0, ""
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(buf.strip())
            buf = ""
        else:
            buf += ch
    return parts + [buf.strip()]


def _hms(text: str) -> float | None:
    m = re.match(r"(\d+):(\d+):(\d+(?:\.\d+)?)", text)
    return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None


def _probe_ffmpeg(path: Path) -> MediaInfo:
    """Parse ``ffmpeg -i`` (for systems without ffprobe); MP4 stream durations come from the boxes."""
    exe = ffmpeg_exe()
    proc = subprocess.run([exe, "-hide_banner", "-nostdin", "-i", str(path)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, errors="replace")
    err = proc.stderr
    if "Input #0" not in err:
        tail = "\n".join(err.strip().splitlines()[-5:])
        raise RenderError(f"ffmpeg cannot read {path}:\n{tail}\nFix: {_fix_for(err)}.")
    m = re.search(r"Duration: ([0-9:.]+)", err)
    total = _hms(m[1]) if m else None
    info = MediaInfo(duration=total or 0.0)
    lines = err.splitlines()
    section, key = "", ""
    chapter: list | None = None
    for line in lines:
        stripped = line.strip()
        if m := re.match(r"\s*Chapter #\d+:\d+: start (-?[\d.]+), end (-?[\d.]+)", line):
            chapter = ["", float(m[1]), float(m[2])]
            info.chapters.append(chapter)  # type: ignore[arg-type]
            section = "chapter"
            continue
        if m := re.match(r"\s*Stream #\d+:\d+.*?: (Video|Audio): (.*)", line):
            section = "stream"
            fields = _split_top(m[2])
            codec = fields[0].split()[0]
            if m[1] == "Video" and info.video_codec is None:
                info.video_codec = codec
                if len(fields) > 1:
                    info.pix_fmt = re.sub(r"\(.*", "", fields[1]).strip() or None
                for fld in fields[1:]:
                    if dm := re.match(r"(\d+)x(\d+)", fld):
                        info.width, info.height = int(dm[1]), int(dm[2])
                        break
            elif m[1] == "Audio" and info.audio_codec is None:
                info.audio_codec = codec
            continue
        if stripped.startswith("Duration:"):
            section = "duration"
            continue
        if m := re.match(r"\s*(\w+)\s*: (.*)$", line):
            key, value = m[1], m[2]
            if key == "title" and section == "" and not info.title:
                info.title, key = value, "title!"
            elif key == "title" and section == "chapter" and chapter is not None:
                chapter[0], key = value, "ctitle!"
        elif (m := re.match(r"\s*: (.*)$", line)) and key in ("title!", "ctitle!"):
            if key == "title!":
                info.title += "\n" + m[1]
            elif chapter is not None:
                chapter[0] += "\n" + m[1]
    info.chapters = [tuple(c) for c in info.chapters]  # type: ignore[misc]
    tracks = _mp4_tracks(path)
    for t in tracks:
        if t.handler == "vide" and info.video_codec and info.video_duration is None:
            info.video_duration = t.duration if t.duration is not None else t.media_duration
        elif t.handler == "soun" and info.audio_codec and info.audio_duration is None:
            info.audio_duration = t.duration if t.duration is not None else t.media_duration
    if info.video_codec and info.video_duration is None:
        info.video_duration = total
    if info.audio_codec and info.audio_duration is None:
        info.audio_duration = total
    return info


def probe(path: Path) -> MediaInfo:
    """Durations, codecs, size, chapters, title and faststart of a media file."""
    path = Path(path)
    if not path.is_file():
        raise RenderError(f"{path} does not exist. Fix: render it first.")
    exe = ffprobe_exe()
    info = _probe_ffprobe(exe, path) if exe else _probe_ffmpeg(path)
    info.faststart = mp4_is_faststart(path)
    return info
