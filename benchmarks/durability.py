"""Shared checks for the fault tests and benchmarks/durability.py: run the real CLI with a fault, judge the outcome.

An outcome is acceptable when the run finished (lesson.json "done", an MP4 whose audio and video
agree) or stopped with exit code 1/2 and an ``error:`` line, no traceback and no "unexpected" bug
report; in both cases no file under a final name is half-written, no temporary file is left and
the planted API key appears nowhere.
"""

from __future__ import annotations

import json
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

PLANTED_KEY = "sk-test-PLANTED-7f3a9c2e5b1d4f60a8e2"
FAKES = ["--llm", "fake:", "--images", "fake:", "--speech", "fake:", "--critic", "fake:"]


@dataclass
class Outcome:
    code: int
    output: str
    out: Path
    finished: bool = False
    clean_error: bool = False
    corrupt: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return (self.finished or self.clean_error) and not self.corrupt and not self.leaks

    def explain(self) -> str:
        return (f"exit {self.code}, finished={self.finished}, clean_error={self.clean_error}, "
                f"corrupt={self.corrupt}, leaks={self.leaks}\n--- output ---\n{self.output[-3000:]}")


def valid_file(path: Path) -> str | None:
    """Why ``path`` is not a complete file of its kind, or None when it is."""
    try:
        if path.stat().st_size == 0:
            return "empty"
        suffix = path.suffix.lower()
        if suffix == ".json":
            json.loads(path.read_text("utf-8"))
        elif suffix == ".wav":
            with wave.open(str(path)) as w:
                frames = w.getnframes()
                data = w.readframes(frames)
                if frames == 0 or len(data) < frames * w.getsampwidth() * w.getnchannels():
                    return "truncated WAV"
        elif suffix == ".png":
            with PILImage.open(path) as img:
                img.load()
        elif suffix == ".mp4":
            from tools import video

            info = video.probe(path)
            if not (info.video_duration or info.audio_duration):  # scene segments are video-only
                return "MP4 without a readable stream"
    except Exception as err:  # noqa: BLE001 - any failure to read it is what we report
        return f"{type(err).__name__}: {err}"
    return None


def scan_tree(root: Path, secret: str = PLANTED_KEY) -> tuple[list[str], list[str]]:
    """(corrupt or temporary files, files containing ``secret``) under ``root``."""
    corrupt: list[str] = []
    leaks: list[str] = []
    if not root.exists():
        return corrupt, leaks
    needle = secret.encode()
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        if rel == ".lessonforge/lock":
            continue
        if ".tmp" in path.name:
            corrupt.append(f"{rel}: temporary file left behind")
            continue
        why = valid_file(path)
        if why is not None:
            corrupt.append(f"{rel}: {why}")
        if needle in path.read_bytes():
            leaks.append(rel)
    return corrupt, leaks


def judge(code: int, output: str, out: Path, secret: str = PLANTED_KEY) -> Outcome:
    result = Outcome(code, output, out)
    manifest_path = out / "lesson.json"
    if manifest_path.is_file():
        try:
            result.manifest = json.loads(manifest_path.read_text("utf-8"))
        except ValueError:
            result.manifest = None
    if code == 0:
        m = result.manifest or {}
        result.finished = m.get("status") == "done" and (out / "lesson.mp4").is_file()
        if result.finished:
            from tools import video

            info = video.probe(out / "lesson.mp4")
            result.finished = abs(info.video_duration - info.audio_duration) <= 0.25
    elif code in (1, 2):
        lowered = output.lower()
        result.clean_error = (
            "error:" in lowered and "traceback" not in lowered and "unexpected" not in lowered
            and "please report it" not in lowered
        )
    result.corrupt, result.leaks = scan_tree(out, secret)
    if secret in output:
        result.leaks.append("<cli output>")
    return result


def invoke(args: list[str], out: Path, *, env: dict[str, str] | None = None) -> Outcome:
    """Run ``lessonforge ARGS --out OUT`` in this process (typer's CliRunner) and judge it."""
    from typer.testing import CliRunner

    from agent.cli import app

    runner = CliRunner()
    result = runner.invoke(app, [*args, "--out", str(out)], env=env, catch_exceptions=True)
    output = result.output
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        import traceback

        output += "\nTraceback (escaped the CLI):\n" + "".join(traceback.format_exception(exc))
        return judge(99, output, out)
    return judge(result.exit_code, output, out)


Factory = Callable[[str], Any]


def patch_backends(monkeypatch: Any, **factories: Factory) -> None:
    """Make ``agent.context.create`` build ``factories[kind](model)`` for the kinds given."""
    from agent import context

    real = context.create

    def create(kind: str, spec: str, **options: Any) -> Any:
        if kind in factories and spec.partition(":")[0] in ("fake", "openai"):
            return factories[kind](spec.partition(":")[2])
        return real(kind, spec, **options)

    monkeypatch.setattr(context, "create", create)
