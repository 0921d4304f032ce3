"""Small audio helpers shared by the speech backends and the renderer.

Narration is stored as mono 16-bit PCM WAV: the standard library reads it (``wave``), ffmpeg
muxes it without guessing, and its duration is exact. Anything else (the MP3 that edge-tts
streams) is decoded once with ffmpeg, run as an argument list, never through a shell.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

from lessonforge.tools.base import RenderError, SpeechError
from lessonforge.tools.cache import atomic_path

_FFMPEG_TIMEOUT_S = 300


def ffmpeg_exe() -> str:
    """Path of an ffmpeg binary: imageio-ffmpeg's bundled one first, else ``ffmpeg`` on PATH."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        if exe and Path(exe).is_file():
            return str(exe)
    except (ImportError, RuntimeError, OSError):
        pass
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    raise RenderError(
        "ffmpeg was not found. Install it with `pip install imageio-ffmpeg` (bundles a binary) "
        "or your system package manager (e.g. `apt install ffmpeg`)."
    )


def wav_duration(path: Path | str) -> float:
    """Duration in seconds of a PCM WAV file, from its header and data size."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            frames = w.getnframes()
    except FileNotFoundError as err:
        raise SpeechError(f"Audio file {path} does not exist. Run the narration step again.") from err
    except (wave.Error, EOFError, OSError) as err:
        raise SpeechError(
            f"Audio file {path} is not a readable PCM WAV ({err}). Delete it and run again."
        ) from err
    if rate <= 0:
        raise SpeechError(f"Audio file {path} has an invalid sample rate {rate}. Delete it and run again.")
    return frames / rate


def wav_rate(path: Path | str) -> int:
    """The sample rate of a WAV file."""
    with wave.open(str(path), "rb") as w:
        return w.getframerate()


def write_wav(path: Path | str, pcm: bytes, rate: int) -> Path:
    """Write mono 16-bit little-endian PCM samples to ``path`` as a WAV file, atomically."""
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    if len(pcm) % 2:
        raise ValueError("16-bit PCM data must have an even number of bytes")
    with atomic_path(path) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm)
    return Path(path)


def read_wav_pcm(path: Path | str) -> tuple[bytes, int]:
    """The raw 16-bit samples and the sample rate of a mono PCM WAV file."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise SpeechError(
                    f"Audio file {path} is not mono 16-bit PCM "
                    f"({w.getnchannels()} channels, {8 * w.getsampwidth()} bits). Convert it with to_wav()."
                )
            return w.readframes(w.getnframes()), w.getframerate()
    except (wave.Error, EOFError, OSError) as err:
        raise SpeechError(f"Audio file {path} is not a readable PCM WAV ({err}). Delete it and run again.") from err


def to_wav(src: Path | str, dst: Path | str, sample_rate: int = 24000, *, tempo: float = 1.0) -> Path:
    """Decode any audio ffmpeg reads (MP3, OGG, WAV...) into mono 16-bit PCM WAV at ``dst``, atomically.

    ``tempo`` speeds speech up (> 1) or slows it down (< 1) without changing its pitch (ffmpeg atempo,
    0.5-2.0); the duration becomes ``duration / tempo``.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file() or src.stat().st_size == 0:
        raise SpeechError(f"Audio file {src} is missing or empty; there is nothing to decode. Synthesize it again.")
    if not 0.5 <= tempo <= 2.0:
        raise SpeechError(f"tempo {tempo} is outside 0.5-2.0; speech cannot be retimed that far")
    with atomic_path(dst) as tmp:
        cmd = [
            ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-i", str(src), "-vn", "-ac", "1", "-ar", str(sample_rate),
            *(["-af", f"atempo={tempo:.6f}"] if abs(tempo - 1.0) > 1e-6 else []),
            "-c:a", "pcm_s16le", "-f", "wav", str(tmp),
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=_FFMPEG_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as err:
            raise SpeechError(
                f"ffmpeg took over {_FFMPEG_TIMEOUT_S} s to decode {src}; the file is likely damaged. "
                "Synthesize it again."
            ) from err
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip()[-400:]
            raise SpeechError(
                f"Could not decode audio {src} (ffmpeg exit {proc.returncode}: {tail or 'no message'}). "
                "The file is damaged or not audio; synthesize it again."
            )
        _check_wav(tmp, label=str(src))
    return dst


def check_audio(path: Path | str) -> float:
    """Check that ``path`` is a complete, decodable, non-empty WAV file; return its duration.

    Raises SpeechError for a missing, 0-byte, truncated (data shorter than the header says) or
    undecodable file: such a file must never be accepted as narration.
    """
    return _check_wav(Path(path), label=str(path))


def _check_wav(path: Path, *, label: str) -> float:
    if not path.is_file():
        raise SpeechError(f"Audio file {label} does not exist. Run the narration step again.")
    size = path.stat().st_size
    if size == 0:
        raise SpeechError(f"Audio file {label} is empty (0 bytes). Delete it and run the narration again.")
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            data = w.readframes(frames)
    except (wave.Error, EOFError, OSError) as err:
        raise SpeechError(f"Audio file {label} cannot be decoded as WAV ({err}). Delete it and run again.") from err
    if rate <= 0 or channels <= 0 or width <= 0:
        raise SpeechError(f"Audio file {label} has an invalid WAV header. Delete it and run again.")
    expected = frames * channels * width
    if len(data) < expected:
        raise SpeechError(
            f"Audio file {label} is truncated ({len(data)} of {expected} bytes of samples). "
            "Delete it and run the narration again."
        )
    if frames == 0:
        raise SpeechError(f"Audio file {label} holds no samples. Synthesize it again.")
    return frames / rate
