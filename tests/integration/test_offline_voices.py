"""The example lesson renders offline with an optional neural voice, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lessonforge.agent.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "photosynthesis.json"


def check_spoken(out: Path, backend: str, voice: str | None = None) -> None:
    """Every scene spoken by ``backend`` with a timing for (nearly) every word, subtitles and a video made."""
    manifest = json.loads((out / "lesson.json").read_text())
    assert manifest["status"] == "done" and not manifest["fallbacks"]
    scenes = manifest["scenes"].values() if isinstance(manifest["scenes"], dict) else manifest["scenes"]
    for scene in scenes:
        speech = scene["speech"]
        assert speech["backend"] == backend and (voice is None or speech["voice"] == voice)
        assert len(speech["words"]) >= len(scene["narration"].split()) - 3
        assert all(0 <= start <= end <= speech["duration"] + 0.05 for _, start, end in speech["words"])
    cues = (out / "lesson.srt").read_text().strip().split("\n\n")
    assert len(cues) >= len(manifest["scenes"])
    assert (out / "lesson.mp4").stat().st_size > 10_000


@pytest.mark.slow
def test_example_lesson_with_a_piper_voice(tmp_path):
    pytest.importorskip("piper")
    pytest.importorskip("onnx")
    from tests.tiny_piper import make_piper_voice

    voice = make_piper_voice(tmp_path / "voices")
    out = tmp_path / "lesson"
    result = CliRunner().invoke(app, ["make", "--from", str(EXAMPLE), "--out", str(out), "--images", "none",
                                      "--critic", "none", "--speech", f"piper:{voice}", "--quiet"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    check_spoken(out, f"piper:{voice}")


def test_a_voice_that_is_not_cached_stops_before_any_work(tmp_path):
    pytest.importorskip("piper")
    out = tmp_path / "lesson"
    result = CliRunner().invoke(app, ["make", "tides", "--out", str(out), "--llm", "fake:", "--images", "none",
                                      "--critic", "none", "--speech", "piper:en_US-absent-medium", "--quiet"],
                                catch_exceptions=False)
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "en/en_US/absent/medium/en_US-absent-medium.onnx" in text
    assert "lessonforge models pull piper:en_US-absent-medium" in text
    assert not (out / "scenes").exists() and not (out / "lesson.mp4").exists()  # no step ran


@pytest.mark.slow
def test_example_lesson_with_a_kokoro_voice(tmp_path, monkeypatch):
    pytest.importorskip("kokoro")
    from tests.tiny_kokoro import write_kokoro

    folder = write_kokoro(tmp_path / "kokoro", voices=("bf_emma",))
    out = tmp_path / "lesson"
    result = CliRunner().invoke(app, ["make", "--from", str(EXAMPLE), "--out", str(out), "--images", "none",
                                      "--critic", "none", "--speech", f"kokoro:{folder}", "--voice", "bf_emma",
                                      "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    check_spoken(out, f"kokoro:{folder}", voice="bf_emma")
