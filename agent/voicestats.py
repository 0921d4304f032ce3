"""Measured speaking rates per voice, kept between runs so word budgets fit the voice that speaks.

Every finished narration adds its words and seconds to its voice's totals in
``$LESSONFORGE_CACHE_DIR/voices.json`` (default ``~/.cache/lessonforge``); the planner then budgets
words with that voice's measured words per minute instead of a generic figure.
"""

from __future__ import annotations

from pathlib import Path

from lessonforge.tools.cache import read_state, user_cache_dir, write_state

MIN_SECONDS = 20.0  # below this much measured speech a figure is too noisy to use


def _path() -> Path:
    return user_cache_dir() / "voices.json"


def _load() -> dict[str, dict[str, float]]:
    return read_state(_path())


def words_per_minute(backend: str, voice: str) -> float | None:
    entry = _load().get(f"{backend}|{voice}")
    if not entry or entry.get("seconds", 0) < MIN_SECONDS:
        return None
    return 60.0 * entry["words"] / entry["seconds"]


def record(backend: str, voice: str, words: int, seconds: float) -> None:
    """Add one measurement (best effort: an unwritable cache never fails a lesson)."""
    if words <= 0 or seconds <= 0:
        return
    data = _load()
    entry = data.setdefault(f"{backend}|{voice}", {"words": 0, "seconds": 0.0})
    # keep the most recent ~10 minutes of speech so a changed voice or engine is followed
    scale = min(1.0, 600.0 / max(1.0, entry["seconds"] + seconds))
    entry["words"] = (entry["words"] + words) * scale
    entry["seconds"] = (entry["seconds"] + seconds) * scale
    write_state(_path(), data)
