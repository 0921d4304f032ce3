"""Durability: the fault matrix and a kill -9 loop through the real CLI, and a table of outcomes.

    python benchmarks/durability.py                 # every fault class 3 times, 20 kill -9 runs
    python benchmarks/durability.py --rounds 1 --kills 5

The checks live here too (tests/integration/test_faults.py uses them): run the real CLI with a fault, judge it.

An outcome is acceptable when the run finished (lesson.json "done", an MP4 whose audio and video
agree) or stopped with exit code 1/2 and an ``error:`` line, no traceback and no "unexpected" bug
report; in both cases no file under a final name is half-written, no temporary file is left and
the planted API key appears nowhere.
"""

from __future__ import annotations

import json
import random
import sys
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
            from lessonforge.tools.media import video

            info = video.probe(path)
            if not (info.video_duration or info.audio_duration):  # scene segments are video-only
                return "MP4 without a readable stream"
    except Exception as err:
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
            from lessonforge.tools.media import video

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

    from lessonforge.agent.cli import app

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
    """Make ``lessonforge.agent.context.create`` build ``factories[kind](model)`` for the kinds given."""
    from lessonforge.agent import context

    real = context.create

    def create(kind: str, spec: str, **options: Any) -> Any:
        if kind in factories and spec.partition(":")[0] in ("fake", "openai"):
            return factories[kind](spec.partition(":")[2])
        return real(kind, spec, **options)

    monkeypatch.setattr(context, "create", create)


# --------------------------------------------------------------------------- the benchmark

CMD = [sys.executable, "-m", "lessonforge.agent.cli", "make", "how bridges stand", "--minutes", "1.0", "--json", *FAKES]


def _fault_matrix(rounds: int, work: Path) -> list[tuple[str, list[Outcome]]]:
    """Each fault class of tests/integration/test_faults.py, ``rounds`` times, through the real CLI."""
    import errno
    import os

    from _pytest.monkeypatch import MonkeyPatch

    from lessonforge.tools.llm.openai import OpenAILLM
    from lessonforge.tools.media import video
    from tests.conftest import lesson_answers
    from tests.fake_openai import Error, FakeOpenAIServer, Hang, completion
    from tests.integration import test_faults as tf

    topic = ["make", "tides", "--minutes", "0.5"]
    results: list[tuple[str, list[Outcome]]] = []

    def llm_case(name: str, *items: Any) -> None:
        got = []
        for r in range(rounds):
            mp = MonkeyPatch()
            with FakeOpenAIServer(default=lesson_answers, api_key=PLANTED_KEY) as srv:
                mp.setenv("OPENAI_BASE_URL", srv.url)
                mp.setenv("OPENAI_API_KEY", PLANTED_KEY)
                patch_backends(mp, llm=lambda m: OpenAILLM(m or "gpt-4.1-mini", timeout_s=0.5, max_retries=2))
                srv.script(*items)
                got.append(invoke([*topic, *tf.OPENAI], work / f"{name}-{r}"))
            mp.undo()
        results.append((name, got))

    def patched_case(name: str, setup: Callable[[Any], None], args: list[str] = FAKES) -> None:
        got = []
        for r in range(rounds):
            mp = MonkeyPatch()
            mp.setenv("OPENAI_API_KEY", PLANTED_KEY)
            setup(mp)
            got.append(invoke([*topic, *args], work / f"{name}-{r}"))
            mp.undo()
        results.append((name, got))

    llm_case("llm timeout once", Hang(5))
    llm_case("llm timeout always", Hang(5), Hang(5), Hang(5))
    llm_case("llm 429 Retry-After", Error(429, headers={"Retry-After": "1"}))
    llm_case("llm 500/503", Error(500), Error(503))
    llm_case("llm malformed JSON", '{"title": ')
    llm_case("llm schema-invalid", '{"title": "x"}')
    llm_case("llm empty content", "")
    llm_case("llm refusal", completion(None, refusal="no"))
    llm_case("llm cut off (length)", completion('{"t', finish_reason="length"))
    patched_case("llm refused connection",
                 lambda mp: mp.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"), tf.OPENAI)
    patched_case("speech unavailable", lambda mp: patch_backends(mp, speech=lambda m: tf.UnavailableSpeech(m)))
    patched_case("speech 0-byte file", lambda mp: patch_backends(mp, speech=lambda m: tf.ZeroByteSpeech(m)))
    patched_case("speech truncated file", lambda mp: patch_backends(mp, speech=lambda m: tf.TruncatedSpeech(m)))
    patched_case("image backend error", lambda mp: patch_backends(
        mp, images=lambda m: tf.FailingImages(m, tf.ImageError("GPU lost; restart it"))))
    patched_case("critic failure", lambda mp: patch_backends(mp, critic=lambda m: tf.BrokenCritic(m)))

    def no_ffmpeg(mp: Any) -> None:
        def missing() -> str:
            raise video.RenderError("ffmpeg was not found. Fix: install ffmpeg.")
        mp.setattr(video, "ffmpeg_exe", missing)

    patched_case("ffmpeg missing", no_ffmpeg)

    def enospc(mp: Any) -> None:
        real, calls = os.fsync, [0]

        def fsync(fd: int) -> None:
            calls[0] += 1
            if calls[0] >= 3 + random.randrange(30):
                raise OSError(errno.ENOSPC, "No space left on device")
            real(fd)
        mp.setattr(os, "fsync", fsync)

    patched_case("disk full (ENOSPC)", enospc)
    return results


def _kill_loop(runs: int, work: Path) -> list[Outcome]:
    """Start a make, kill -9 it at a random moment, rerun; the rerun must pass the uninterrupted checks."""
    import os
    import signal
    import subprocess
    import time

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENAI_API_KEY": PLANTED_KEY}
    got = []
    for r in range(runs):
        out = work / f"kill-{r}"
        proc = subprocess.Popen(
            [*CMD, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        time.sleep(random.uniform(0.3, 5.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # what the killed run left: nothing half-written under a final name (temp files are swept by the rerun)
        corrupt, _ = scan_tree(out)
        corrupt = [c for c in corrupt if "temporary file" not in c]
        rerun = subprocess.run([*CMD, "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
        o = judge(rerun.returncode, rerun.stdout + rerun.stderr, out)
        o.corrupt += corrupt
        if o.finished and len((o.manifest or {}).get("scenes", [])) != 4:
            o.finished = False
        got.append(o)
    return got


def main() -> None:
    import argparse
    import os
    import shutil
    import tempfile

    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:  # run as a script: the repository's packages (tests, agent, tools)
        sys.path.insert(0, root)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="runs per fault class")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    work = Path(tempfile.mkdtemp(prefix="lf-durability-"))
    os.environ["LESSONFORGE_CACHE_DIR"] = str(work / "cache")
    try:
        rows = _fault_matrix(args.rounds, work)
        rows.append(("kill -9 then rerun", _kill_loop(args.kills, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = f"{'fault class':<24} {'injected':>8} {'finished':>8} {'clean err':>9} {'corrupt':>7} {'leaked':>6}"
    print(head)
    print("-" * len(head))
    tot = [0, 0, 0, 0, 0]
    for name, outs in rows:
        vals = [len(outs), sum(o.finished for o in outs), sum(o.clean_error for o in outs),
                sum(bool(o.corrupt) for o in outs), sum(bool(o.leaks) for o in outs)]
        tot = [a + b for a, b in zip(tot, vals)]
        print(f"{name:<24} {vals[0]:>8} {vals[1]:>8} {vals[2]:>9} {vals[3]:>7} {vals[4]:>6}")
    print("-" * len(head))
    print(f"{'total':<24} {tot[0]:>8} {tot[1]:>8} {tot[2]:>9} {tot[3]:>7} {tot[4]:>6}")
    share = (tot[1] + tot[2]) / tot[0] if tot[0] else 0.0
    print(f"finished-or-clean-error {share:.0%} (goal 100%), corrupt {tot[3]} (goal 0), leaked {tot[4]} (goal 0)")
    for name, outs in rows:  # what went wrong, where a run neither finished nor failed cleanly
        for o in outs:
            if not (o.finished or o.clean_error) or o.corrupt or o.leaks:
                print(f"\n--- {name}: exit {o.code}\n{o.explain()[-1500:]}")


if __name__ == "__main__":
    main()
