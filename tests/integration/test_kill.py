"""kill -9 in the middle of a run: the same command finishes, reusing what was finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from PIL import Image

from lessonforge.tools.media import video

pytestmark = pytest.mark.slow

FAKES = ["--llm", "fake:", "--images", "fake:", "--speech", "fake:", "--critic", "fake:"]


def _cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "lessonforge.agent.cli", "make", "how bridges stand", "--minutes", "1.5",
            "--out", str(out), "--json", *FAKES]


def _assets(out: Path) -> dict[Path, int]:
    root = out / ".lessonforge" / "assets"
    return {p.relative_to(root): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _temp(path: Path) -> bool:
    """A producer's temp file or anything inside its temp folder (path relative to the store)."""
    return any(".tmp" in part for part in path.parts)


def _valid(path: Path) -> bool:
    if path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".wav":
        with wave.open(str(path)) as w:
            assert w.getnframes() > 0
    elif path.suffix == ".png":
        with Image.open(path) as img:
            img.load()
    return path.stat().st_size > 0


@pytest.mark.parametrize("after_scenes", [1, 3])
def test_kill_9_then_rerun(tmp_path, after_scenes):
    out = tmp_path / "bridges"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cmd(out), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    done = 0
    for line in proc.stdout:
        if '"scene_done"' in line:
            done += 1
            if done >= after_scenes:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    before = _assets(out)
    # nothing under a final name is half-written
    assert all(_valid(out / ".lessonforge" / "assets" / p) for p in before if not _temp(p))
    assert len({p for p in before if p.suffix == ".wav" and not _temp(p)}) >= after_scenes

    rerun = subprocess.run(_cmd(out), capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    after = _assets(out)
    for p, mtime in before.items():
        if not _temp(p):
            assert after.get(p) == mtime, f"{p.name} was produced again"
    assert not any(_temp(p) for p in after)  # the killed run's temp files are gone
    manifest = json.loads((out / "lesson.json").read_text())
    assert manifest["status"] == "done" and len(manifest["scenes"]) == 6
    info = video.probe(out / "lesson.mp4")
    assert abs(info.video_duration - info.audio_duration) <= 0.2
