"""The narration track as AAC, built from per-scene pieces so an edit re-encodes one scene's audio.

AAC codes audio in frames of 1024 samples, each decoded together with the frame before it. A scene's
narration is encoded on its own (padded with silence to whole frames, plus one silent frame so its
last word decodes in full), the encoder's priming frame is dropped, and the frames are stored raw
(ADTS). The lesson's track is those pieces in order, each followed by ready-made frames of silence
up to where the next scene's slide begins, rounded to the nearest frame: a scene's speech starts at
most half a frame (about 21 ms at 24 kHz) from its slide, and the error never accumulates. Because
a piece depends only on its own narration, moving, lengthening or shortening one scene leaves every
other piece as it is; only the cheap silence between them changes.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lessonforge.tools.base import RenderError
from lessonforge.tools.cache import atomic_path
from lessonforge.tools.media.video import AUDIO_BITRATE, ffmpeg_exe

FRAME = 1024  # samples per AAC frame
SAMPLE_RATE = 24000
FADE = 120  # samples faded in and out at each piece's ends (5 ms), against clicks


def _read_mono(path: Path, rate: int) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, rate):
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(rate),
                           "-f", "s16le", "-"], capture_output=True, check=False)
    if proc.returncode != 0:
        raise RenderError(f"cannot read narration {path}: {proc.stderr.decode(errors='replace')[-300:]}")
    return np.frombuffer(proc.stdout, dtype="<i2").astype(np.int16)


def _encode_adts(samples: np.ndarray, rate: int) -> bytes:
    proc = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "-",
         "-c:a", "aac", "-aac_coder", "fast", "-b:a", AUDIO_BITRATE, "-f", "adts", "-"],
        input=samples.astype("<i2").tobytes(), capture_output=True, check=False,
    )
    if proc.returncode != 0:
        raise RenderError(f"ffmpeg could not encode AAC: {proc.stderr.decode(errors='replace')[-300:]}. "
                          "Fix: use an ffmpeg built with its aac encoder (pip install imageio-ffmpeg).")
    return proc.stdout


def adts_frames(data: bytes) -> list[bytes]:
    """Split an ADTS stream into its frames (each with its header)."""
    frames, i = [], 0
    while i + 7 <= len(data):
        if data[i] != 0xFF or (data[i + 1] & 0xF0) != 0xF0:
            raise RenderError("damaged AAC piece (no ADTS sync word); delete the project's cache entry and rerun")
        length = ((data[i + 3] & 0x03) << 11) | (data[i + 4] << 3) | (data[i + 5] >> 5)
        if length < 7 or i + length > len(data):
            raise RenderError("damaged AAC piece (truncated frame); delete the project's cache entry and rerun")
        frames.append(data[i : i + length])
        i += length
    return frames


def encode_piece(wav: Path, out: Path, *, rate: int = SAMPLE_RATE) -> int:
    """Encode one scene's narration as whole AAC frames (ADTS) at ``out``; returns the frame count."""
    samples = _read_mono(Path(wav), rate).astype(np.float64)
    n = min(FADE, len(samples) // 2)
    if n:
        ramp = np.linspace(0.0, 1.0, n)
        samples[:n] *= ramp
        samples[-n:] *= ramp[::-1]
    frames = -(-len(samples) // FRAME) + 1  # whole frames, and one of silence to finish the last word
    padded = np.zeros(frames * FRAME, dtype=np.int16)
    padded[: len(samples)] = np.round(samples).astype(np.int16)
    coded = adts_frames(_encode_adts(padded, rate))
    if len(coded) < frames + 1:
        raise RenderError(f"the AAC encoder returned {len(coded)} frames for {frames}; check the ffmpeg build")
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"".join(coded[1 : 1 + frames]))  # the first frame is the encoder's priming
    return frames


@functools.lru_cache(maxsize=4)
def silent_frame(rate: int = SAMPLE_RATE) -> bytes:
    """One AAC frame of digital silence, as the encoder codes it in steady state."""
    coded = adts_frames(_encode_adts(np.zeros(8 * FRAME, dtype=np.int16), rate))
    return coded[4]


def build_track(pieces: Sequence[tuple[Path, int]], starts: Sequence[float], total: float, out: Path, *,
                rate: int = SAMPLE_RATE) -> list[float]:
    """Join scene pieces into one ADTS track; piece k begins as near ``starts[k]`` seconds as a frame allows.

    Silence fills up to each next start and to ``total``. Returns where each piece really begins.
    """
    if len(pieces) != len(starts):
        raise RenderError(f"{len(pieces)} narration pieces for {len(starts)} scenes")
    silence = silent_frame(rate)
    placed: list[float] = []
    at = 0  # frames written
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        for k, ((piece, count), start) in enumerate(zip(pieces, starts, strict=True)):
            want = round(start * rate / FRAME)
            f.write(silence * max(0, want - at))
            at = max(at, want)
            placed.append(at * FRAME / rate)
            data = Path(piece).read_bytes()
            if len(adts_frames(data)) != count:
                raise RenderError(f"narration piece {k + 1} is damaged; delete it from the cache and rerun")
            f.write(data)
            at += count
        end = round(total * rate / FRAME)
        f.write(silence * max(0, end - at))
    return placed


def decode(path: Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The samples of an AAC track (for tests and checks)."""
    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "x.wav"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(rate), str(wav)],
                       check=True)
        return _read_mono(wav, rate)
