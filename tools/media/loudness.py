"""Loudness normalisation to EBU R128 (-16 LUFS integrated by default) with ffmpeg's ``loudnorm``.

Two passes, as ffmpeg's documentation recommends for files:

1. ``loudnorm=...:print_format=json`` measures the input (integrated loudness, true peak,
   loudness range, gating threshold);
2. the same filter with those ``measured_*`` values and ``linear=true`` writes the output. When a
   plain gain reaches the target without the true peak passing its limit, that is what is
   applied ("linear"); otherwise loudnorm compresses gently ("dynamic"), which lands a few tenths
   of a LU short of the target, so one more pass then retargets by the measured shortfall.

loudnorm works at 192 kHz internally; the output is written back at the input's rate as 16-bit
PCM WAV with the input's channels, through a temporary file renamed over ``dst``.

Silence (nothing above the -70 LUFS absolute gate) cannot be normalised: it is copied unchanged
and reported with ``normalization_type == "silent"`` and ``output_i == -inf``.

``measure`` uses ffmpeg's separate ``ebur128`` filter, so a normalised file can be checked by an
implementation other than the one that normalised it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

from lessonforge.tools.base import RenderError
from lessonforge.tools.cache import atomic_path
from lessonforge.tools.media.audio import ffmpeg_exe

log = logging.getLogger(__name__)

_TIMEOUT_S = 1800
_RETARGET_ABOVE_LU = 0.5  # a dynamic pass further than this from the target gets one more pass
_MAX_RETARGET_LU = 3.0


@dataclass(frozen=True)
class LoudnessReport:
    """What ``normalize_loudness`` measured and did; loudness in LUFS, peaks in dBTP, ranges in LU."""

    input_i: float
    input_tp: float
    input_lra: float
    input_thresh: float
    output_i: float
    output_tp: float
    output_lra: float
    target_i: float
    normalization_type: str  # "linear", "dynamic" or "silent"
    passes: int  # ffmpeg passes over the audio, measurement included


@dataclass(frozen=True)
class Loudness:
    """A file's loudness as ffmpeg's ebur128 filter measures it (-inf for silence)."""

    integrated: float  # LUFS
    true_peak: float  # dBTP
    lra: float  # LU


def _check_targets(target_lufs: float, true_peak: float, lra: float) -> None:
    # loudnorm's own ranges: I -70..-5, TP -9..0, LRA 1..50 (ffmpeg 5.1+ accepts up to 50)
    for name, value, lo, hi in (("target_lufs", target_lufs, -70.0, -5.0), ("true_peak", true_peak, -9.0, 0.0),
                                ("lra", lra, 1.0, 50.0)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise RenderError(f"loudness option {name}={value!r} is outside {lo:g}..{hi:g}. Fix: pass a value in range "
                              "(-16 LUFS, -1.5 dBTP and 11 LU suit speech).")


def _wav_format(path: Path) -> tuple[int, int]:
    if not path.is_file():
        raise RenderError(f"audio file {path} does not exist. Fix: produce the narration before normalising it.")
    try:
        with wave.open(str(path), "rb") as w:
            return w.getframerate(), w.getnchannels()
    except (wave.Error, EOFError, OSError) as err:
        raise RenderError(f"{path} is not a readable PCM WAV file ({err}). Fix: convert it with "
                          "lessonforge.tools.media.audio.to_wav or produce it again.") from err


def _ffmpeg(args: list[str], what: str) -> str:
    """Run ffmpeg with ``args``; its stderr (where filters print their reports)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-y", *args]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise RenderError(
            f"ffmpeg took over {_TIMEOUT_S} s to {what}. Fix: check the file; it may be damaged."
        ) from err
    except OSError as err:
        raise RenderError(f"could not start ffmpeg to {what}: {err}. Fix: install ffmpeg (pip install "
                          "imageio-ffmpeg, or apt-get install ffmpeg).") from err
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-6:]) or "(no message)"
        raise RenderError(f"ffmpeg failed to {what} (exit {proc.returncode}):\n{tail}\nFix: check that the input "
                          "is a readable WAV file and the output folder is writable.")
    return proc.stderr


def _loudnorm_json(stderr: str, what: str) -> dict[str, float | str]:
    """The JSON block loudnorm prints at the end of a pass, values as floats (±inf kept)."""
    start, end = stderr.rfind("{"), stderr.rfind("}")
    if start < 0 or end < start:
        raise RenderError(f"ffmpeg's loudnorm printed no measurement while trying to {what}. Fix: use ffmpeg 4.4 "
                          "or newer (pip install -U imageio-ffmpeg).")
    try:
        raw = json.loads(stderr[start : end + 1])
    except ValueError as err:
        raise RenderError(f"could not read loudnorm's measurement ({err}) while trying to {what}. Fix: use ffmpeg "
                          "4.4 or newer.") from err
    out: dict[str, float | str] = {}
    for key, value in raw.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            out[key] = str(value)
    return out


def _num(data: dict[str, float | str], key: str) -> float:
    value = data.get(key)
    return float(value) if isinstance(value, float) else math.nan


def normalize_loudness(src: Path, dst: Path, *, target_lufs: float = -16.0, true_peak: float = -1.5,
                       lra: float = 11.0) -> LoudnessReport:
    """Normalise the WAV ``src`` to ``target_lufs`` integrated, true peak at most ``true_peak``, into ``dst``.

    See the module docstring for the method. ``dst`` may be ``src`` (it is replaced atomically).
    """
    src, dst = Path(src), Path(dst)
    _check_targets(target_lufs, true_peak, lra)
    rate, channels = _wav_format(src)
    base = f"I={target_lufs:.2f}:TP={true_peak:.2f}:LRA={lra:.2f}"
    first = _loudnorm_json(_ffmpeg(["-i", str(src), "-vn", "-af", f"loudnorm={base}:print_format=json", "-f", "null",
                                    "-"], f"measure the loudness of {src.name}"), f"measure {src.name}")
    m_i, m_tp, m_lra, m_th = (_num(first, k) for k in ("input_i", "input_tp", "input_lra", "input_thresh"))
    if not math.isfinite(m_i) or m_i < -70.0:  # all of it below the absolute gate: silence
        log.info("%s is silent (%s LUFS): copied without normalising", src.name, m_i)
        if src.resolve() != dst.resolve():
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
        return LoudnessReport(m_i, m_tp, m_lra, m_th, -math.inf, m_tp, m_lra, target_lufs, "silent", 1)

    measured = (f"measured_I={m_i:.2f}:measured_TP={m_tp:.2f}:measured_LRA={m_lra:.2f}:"
                f"measured_thresh={m_th:.2f}:offset={_num(first, 'target_offset'):.2f}")
    passes = 1
    aim = target_lufs
    result: dict[str, float | str] = {}
    with atomic_path(dst) as tmp:
        for _ in range(2):
            passes += 1
            result = _loudnorm_json(
                _ffmpeg(
                    [
                        "-i",
                        str(src),
                        "-vn",
                        "-af",
                        f"loudnorm=I={aim:.2f}:TP={true_peak:.2f}:LRA={lra:.2f}:{measured}:linear=true:print_format=json",
                        "-ar",
                        str(rate),
                        "-ac",
                        str(channels),
                        "-c:a",
                        "pcm_s16le",
                        "-f",
                        "wav",
                        str(tmp),
                    ],
                    f"normalise the loudness of {src.name}",
                ),
                f"normalise {src.name}",
            )
            short = target_lufs - _num(result, "output_i")
            if result.get("normalization_type") != "dynamic" or not abs(short) > _RETARGET_ABOVE_LU:
                break
            aim = min(-5.0, target_lufs + max(-_MAX_RETARGET_LU, min(_MAX_RETARGET_LU, short)))
            log.debug("loudnorm landed %.2f LU short of %.1f LUFS: one more pass aiming at %.2f", short,
                      target_lufs, aim)
    return LoudnessReport(
        input_i=m_i, input_tp=m_tp, input_lra=m_lra, input_thresh=m_th,
        output_i=_num(result, "output_i"), output_tp=_num(result, "output_tp"), output_lra=_num(result, "output_lra"),
        target_i=target_lufs, normalization_type=str(result.get("normalization_type", "")), passes=passes,
    )


_EBUR128 = {
    "integrated": re.compile(r"Integrated loudness:\s*I:\s*(-?inf|-?[\d.]+)\s*LUFS", re.DOTALL),
    "lra": re.compile(r"Loudness range:\s*LRA:\s*(-?inf|-?[\d.]+)\s*LU", re.DOTALL),
    "true_peak": re.compile(r"True peak:\s*Peak:\s*(-?inf|-?[\d.]+)\s*dBFS", re.DOTALL),
}


def measure(path: Path) -> Loudness:
    """Integrated loudness, true peak and loudness range of an audio file (ffmpeg's ebur128 filter)."""
    path = Path(path)
    if not path.is_file():
        raise RenderError(f"audio file {path} does not exist. Fix: produce it before measuring it.")
    err = _ffmpeg(["-i", str(path), "-vn", "-af", "ebur128=peak=true:framelog=quiet", "-f", "null", "-"],
                  f"measure the loudness of {path.name}")
    summary = err[err.rfind("Summary:"):] if "Summary:" in err else err
    values: dict[str, float] = {}
    for key, pattern in _EBUR128.items():
        m = pattern.search(summary)
        if m is None:
            raise RenderError(f"ffmpeg's ebur128 filter printed no {key} for {path.name}. Fix: use ffmpeg 4.4 or newer "
                              "(pip install -U imageio-ffmpeg).")
        values[key] = float(m.group(1))
    if values["integrated"] <= -70.0:  # ebur128 reports -70 for a fully gated (silent) signal
        values["integrated"] = -math.inf
    return Loudness(**values)


def measure_loudness(path: Path) -> float:
    """Integrated loudness of an audio file in LUFS (-inf for silence)."""
    return measure(path).integrated
