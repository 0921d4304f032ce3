"""Faults injected through the real code path of `lessonforge make`: each run finishes or explains itself.

Every test runs the real CLI (typer's CliRunner on lessonforge.agent.cli.app, or a real second process) with the
fault in one backend and fakes elsewhere, then judges the outcome with benchmarks.durability.judge:
finished (lesson.json "done", audio and video agree) or a clean error (exit 1/2, an ``error:`` line,
no traceback, no "unexpected" bug report); never a half-written or temporary file under the project,
never the planted API key in any output or file.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.durability import FAKES, PLANTED_KEY, Outcome, invoke, patch_backends
from lessonforge.agent.fakes import FakeLLM, default_answer
from lessonforge.tools.base import CriticError, ImageError, SpeechUnavailable
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech
from lessonforge.tools.llm.openai import OpenAILLM
from tests.conftest import lesson_answers
from tests.fake_openai import Error, FakeOpenAIServer, Hang, completion

pytestmark = pytest.mark.slow

OPENAI = ["--llm", "openai:gpt-4.1-mini", "--images", "fake:", "--speech", "fake:", "--critic", "fake:"]
TOPIC = ["make", "tides", "--minutes", "0.5"]


def _assert_ok(o: Outcome) -> None:
    assert o.ok, o.explain()


# --------------------------------------------------------------------------- LLM


@pytest.fixture
def server(monkeypatch):
    """A fake OpenAI server that checks the planted key, answers lessons by default; a quick client."""
    with FakeOpenAIServer(default=lesson_answers, api_key=PLANTED_KEY) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
        monkeypatch.setenv("OPENAI_API_KEY", PLANTED_KEY)
        patch_backends(monkeypatch, llm=lambda model: OpenAILLM(model or "gpt-4.1-mini", timeout_s=0.5, max_retries=2))
        yield srv


def test_llm_timeout_is_retried_then_finishes(tmp_path, server):
    server.script(Hang(5))
    o = invoke([*TOPIC, *OPENAI], tmp_path / "o")
    _assert_ok(o)
    assert o.finished
    assert len(server.chat_requests) >= 3  # the hung one, then outline and script


def test_llm_timeout_every_time_is_a_clean_error(tmp_path, server):
    server.script(Hang(5), Hang(5), Hang(5))
    o = invoke([*TOPIC, *OPENAI], tmp_path / "o")
    _assert_ok(o)
    assert o.code == 1 and "no reply within" in o.output
    assert o.manifest is not None and o.manifest["status"] == "failed"


def test_llm_connection_refused_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    o = invoke([*TOPIC, *OPENAI], tmp_path / "o")
    _assert_ok(o)
    assert o.code == 2 and "127.0.0.1:9" in " ".join(o.output.split())


def test_llm_429_retry_after_is_honoured(tmp_path, server):
    times: list[float] = []

    def limited(_req):
        times.append(time.monotonic())
        return Error(429, headers={"Retry-After": "1"})

    def ok(req):
        times.append(time.monotonic())
        return lesson_answers(req)

    server.script(limited, ok)
    o = invoke([*TOPIC, *OPENAI], tmp_path / "o")
    _assert_ok(o)
    assert o.finished
    assert times[1] - times[0] >= 0.9  # waited what the server asked


@pytest.mark.parametrize("statuses", [(503,), (500, 503)])
def test_llm_5xx_then_success_finishes(tmp_path, server, statuses):
    server.script(*[Error(s) for s in statuses])
    o = invoke([*TOPIC, *OPENAI], tmp_path / "o")
    _assert_ok(o)
    assert o.finished
    assert o.manifest["usage"]["prompt_tokens"] > 0


def test_llm_5xx_forever_is_a_clean_error_and_the_manifest_says_failed(tmp_path, server):
    server.script(*[Error(503)] * 3)
    o = invoke([*TOPIC, *OPENAI], tmp_path / "o")
    _assert_ok(o)
    assert o.code == 1 and "503" in o.output
    assert o.manifest["status"] == "failed" and "503" in o.manifest["error"]


@pytest.mark.parametrize(
    "reply",
    ['{"title": "Tides", "hook": ', '{"title": "Tides"}', ""],
    ids=["malformed", "schema-invalid", "empty"],
)
def test_llm_bad_reply_is_repaired(tmp_path, server, reply):
    server.script(reply)
    o = invoke([*TOPIC, *OPENAI], tmp_path / "o")
    _assert_ok(o)
    assert o.finished
    repair = server.chat_requests[1].json["messages"]
    assert repair[-1]["role"] == "user" and "not a valid Outline" in repair[-1]["content"]


def test_llm_refusal_is_a_clean_error(tmp_path, server):
    server.script(completion(None, refusal="I can't help with that."))
    o = invoke([*TOPIC, *OPENAI], tmp_path / "o")
    _assert_ok(o)
    assert o.code == 1 and "refused" in o.output and "Rephrase" in " ".join(o.output.split())


def test_llm_cut_off_by_the_token_limit_is_asked_again(tmp_path, server):
    server.script(completion('{"title": "Tid', finish_reason="length"))
    o = invoke([*TOPIC, *OPENAI], tmp_path / "o")
    _assert_ok(o)
    assert o.finished
    assert "cut off" in server.chat_requests[1].json["messages"][-1]["content"]


def test_llm_cut_off_twice_is_a_clean_error(tmp_path, server):
    server.script(*[completion('{"title": "Tid', finish_reason="length")] * 2)
    o = invoke([*TOPIC, *OPENAI], tmp_path / "o")
    _assert_ok(o)
    assert o.code == 1 and "output tokens" in o.output


# --------------------------------------------------------------------------- speech


class UnavailableSpeech(FakeSpeech):
    async def speak(self, text, voice, out):
        raise SpeechUnavailable("cannot resolve speech.platform.bing.com (DNS failure); check the network")


class ZeroByteSpeech(FakeSpeech):
    async def speak(self, text, voice, out):
        speech = await super().speak(text, voice, out)
        Path(out).write_bytes(b"")
        return speech


class TruncatedSpeech(FakeSpeech):
    async def speak(self, text, voice, out):
        speech = await super().speak(text, voice, out)
        data = Path(out).read_bytes()
        Path(out).write_bytes(data[: 44 + (len(data) - 44) // 3])  # the header says more than is there
        return speech


def test_speech_unavailable_falls_back_to_espeak_and_records_it(tmp_path, monkeypatch):
    patch_backends(monkeypatch, speech=lambda m: UnavailableSpeech(m))
    o = invoke([*TOPIC, *FAKES], tmp_path / "o")
    _assert_ok(o)
    assert o.finished
    assert o.manifest["fallbacks"] and "espeak" in o.manifest["fallbacks"][0]
    assert all(s["speech"]["backend"].startswith("espeak") for s in o.manifest["scenes"])


def test_speech_and_its_fallback_unavailable_is_a_clean_error(tmp_path, monkeypatch):
    from lessonforge.agent import context

    real = context.create
    monkeypatch.setattr(context, "create", lambda kind, spec, **kw: UnavailableSpeech(spec) if kind == "speech"
                        else real(kind, spec, **kw))
    o = invoke([*TOPIC, *FAKES], tmp_path / "o")
    _assert_ok(o)
    assert o.code == 1 and "DNS" in o.output


@pytest.mark.parametrize("broken", [ZeroByteSpeech, TruncatedSpeech], ids=["zero-byte", "truncated"])
def test_speech_broken_file_is_caught(tmp_path, monkeypatch, broken):
    patch_backends(monkeypatch, speech=lambda m: broken(m))
    o = invoke([*TOPIC, *FAKES], tmp_path / "o")
    _assert_ok(o)
    if o.finished:  # the broken audio was replaced by the fallback
        assert o.manifest["fallbacks"]
    else:
        assert "narration" in o.output.lower() or "audio" in o.output.lower()


# --------------------------------------------------------------------------- images and critic


class FailingImages(FakeImages):
    def __init__(self, model="", exc=None):
        super().__init__(model)
        self.exc = exc

    async def generate(self, requests):
        raise self.exc


def test_image_backend_error_is_clean(tmp_path, monkeypatch):
    patch_backends(monkeypatch, images=lambda m: FailingImages(m, ImageError("the GPU fell off the bus; restart it")))
    o = invoke([*TOPIC, *FAKES], tmp_path / "o")
    _assert_ok(o)
    # either the scenes went text-first (finished) or the error names the cause
    assert o.finished or "GPU fell off" in o.output


def test_image_backend_bug_is_not_a_traceback(tmp_path, monkeypatch):
    patch_backends(monkeypatch, images=lambda m: FailingImages(m, RuntimeError("CUDA error: device-side assert")))
    o = invoke([*TOPIC, *FAKES], tmp_path / "o")
    assert "Traceback" not in o.output and o.code != 99
    assert not o.corrupt and not o.leaks


class BrokenCritic(FakeCritic):
    async def judge(self, *args, **kwargs):
        raise CriticError("the critic server answered HTTP 500; retry later")

    def scores(self, *args, **kwargs):
        raise CriticError("the critic server answered HTTP 500; retry later")


def test_critic_failure_leaves_scenes_unjudged(tmp_path, monkeypatch):
    patch_backends(monkeypatch, critic=lambda m: BrokenCritic(m))
    o = invoke([*TOPIC, *FAKES], tmp_path / "o")
    _assert_ok(o)
    assert o.finished
    assert {s["critic"] for s in o.manifest["scenes"]} == {"unjudged"}


# --------------------------------------------------------------------------- render


def _scene_files(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_size for p in (out / "scenes").rglob("*") if p.is_file()}


def test_ffmpeg_missing_is_a_clean_error_and_scenes_stay(tmp_path, monkeypatch):
    from lessonforge.tools.media import video

    def missing():
        raise video.RenderError("ffmpeg was not found. Fix: install ffmpeg (apt install ffmpeg).")

    monkeypatch.setattr(video, "ffmpeg_exe", missing)
    out = tmp_path / "o"
    o = invoke([*TOPIC, *FAKES], out)
    _assert_ok(o)
    assert o.code == 1 and "ffmpeg was not found" in o.output
    assert any(k.endswith("narration.wav") for k in _scene_files(out))
    monkeypatch.undo()
    again = invoke([*TOPIC, *FAKES], out)
    _assert_ok(again)
    assert again.finished


def test_ffmpeg_crashing_is_a_clean_error(tmp_path, monkeypatch):
    from lessonforge.tools.media import video

    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'Segmentation fault (core dumped)' >&2\nexit 139\n")
    fake.chmod(0o755)
    monkeypatch.setattr(video, "ffmpeg_exe", lambda: str(fake))
    out = tmp_path / "o"
    o = invoke([*TOPIC, *FAKES], out)
    _assert_ok(o)
    assert o.code == 1 and "ffmpeg failed" in o.output and "Fix:" in o.output
    assert o.manifest["status"] == "failed"
    assert _scene_files(out)


# --------------------------------------------------------------------------- disk full


def _enospc_after(monkeypatch, n: int) -> list[int]:
    """os.fsync raises ENOSPC from the n-th call on (atomic_path fsyncs every file it finishes)."""
    calls = [0]
    real = os.fsync

    def fsync(fd):
        calls[0] += 1
        if calls[0] >= n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


@pytest.mark.parametrize("at", [1, 30])
def test_disk_full_leaves_no_half_written_file_and_resumes(tmp_path, monkeypatch, at):
    out = tmp_path / "o"
    _enospc_after(monkeypatch, at)
    o = invoke([*TOPIC, *FAKES], out)
    monkeypatch.undo()
    assert o.code == 1 and "No space left" in o.output and "Traceback" not in o.output
    assert not o.corrupt and not o.leaks, o.explain()
    again = invoke([*TOPIC, *FAKES], out)
    _assert_ok(again)
    assert again.finished


def test_disk_full_message_names_the_cause_and_fix(tmp_path, monkeypatch):
    out = tmp_path / "o"
    _enospc_after(monkeypatch, 5)
    o = invoke([*TOPIC, *FAKES], out)
    monkeypatch.undo()
    assert o.clean_error, o.explain()
    assert "free" in o.output.lower() and "space" in o.output.lower()
    again = invoke([*TOPIC, *FAKES], out)
    _assert_ok(again)
    assert again.finished


def _can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    if ok.returncode == 0:
        subprocess.run(["umount", str(where)], capture_output=True)
    return ok.returncode == 0


def test_disk_full_on_a_real_small_filesystem(tmp_path):
    mnt = tmp_path / "small"
    if not _can_mount_tmpfs(mnt):
        pytest.skip("needs root and tmpfs to mount a tiny filesystem")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)], check=True)
    try:
        out = mnt / "o"
        cmd = [sys.executable, "-m", "lessonforge.agent.cli", *TOPIC, *FAKES, "--out", str(out)]
        env = {**os.environ, "OPENAI_API_KEY": PLANTED_KEY}
        first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        from benchmarks.durability import judge

        o = judge(first.returncode, first.stdout + first.stderr, out)
        assert not o.corrupt and not o.leaks, o.explain()
        assert o.clean_error, o.explain()
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        again = judge(second.returncode, second.stdout + second.stderr, out)
        _assert_ok(again)
        assert again.finished
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# --------------------------------------------------------------------------- two runs at once


def test_second_run_on_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "o"
    cmd = [
        sys.executable,
        "-m",
        "lessonforge.agent.cli",
        "make",
        "tides",
        "--minutes",
        "1.5",
        "--json",
        *FAKES,
        "--out",
        str(out),
    ]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for line in first.stdout:
            if '"narrate"' in line or '"plan"' in line or '"write"' in line:
                break
        second = invoke(["make", "tides", "--minutes", "1.5", *FAKES], out)
        assert first.poll() is None, "the first run ended before the second started; slow it down"
        assert second.code == 2 and second.clean_error, second.explain()
        assert "another LessonForge run" in second.output and str(first.pid) in second.output
    finally:
        rest, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    from benchmarks.durability import judge

    _assert_ok(judge(0, err, out))


# --------------------------------------------------------------------------- secrets


def test_planted_key_never_leaks(tmp_path, monkeypatch):
    """Several failures with OPENAI_API_KEY planted: nothing printed, saved or logged contains it."""
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED_KEY)
    outcomes = []
    # 1. the server rejects the key and echoes it (as OpenAI's 401 does)
    with FakeOpenAIServer(default=lesson_answers, api_key="sk-the-right-one-000000") as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
        outcomes.append(invoke([*TOPIC, *OPENAI, "--json"], tmp_path / "401"))
        # 2. a failure mid-run whose body quotes the key
        srv.api_key = PLANTED_KEY
        srv.script(*[Error(400, body={"error": {"message": f"bad request from key {PLANTED_KEY}"}})] * 5)
        outcomes.append(invoke([*TOPIC, *OPENAI, "--json"], tmp_path / "400"))
    # 3. a finished run through the real client, with progress as JSON
    with FakeOpenAIServer(default=lesson_answers, api_key=PLANTED_KEY) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
        outcomes.append(invoke([*TOPIC, *OPENAI, "--json"], tmp_path / "ok"))
    # 4. an unexpected bug (a traceback saved to last-error.txt) whose message carries the key
    patch_backends(monkeypatch, images=lambda m: FailingImages(m, RuntimeError(f"boom {PLANTED_KEY}")))
    outcomes.append(invoke([*TOPIC, *FAKES], tmp_path / "bug"))
    # 5. refused connection
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://user:{PLANTED_KEY}@127.0.0.1:9/v1")
    outcomes.append(invoke([*TOPIC, *OPENAI], tmp_path / "refused"))
    for o in outcomes:
        assert not o.leaks, o.explain()
        assert not o.corrupt, o.explain()
    assert outcomes[0].code == 2 and "rejected the API key" in outcomes[0].output, outcomes[0].explain()
    assert outcomes[1].code == 1 and "bad request" in " ".join(outcomes[1].output.split()), outcomes[1].explain()
    assert outcomes[2].finished, outcomes[2].explain()


# --------------------------------------------------------------------------- paths


def _every_path(root: Path) -> set[Path]:
    return {p.resolve() for p in root.rglob("*")}


@pytest.mark.parametrize("topic", ["../../etc/x", "a\x00b/../../c", "line1\n../../x\r\n"])
def test_topic_never_becomes_a_path_outside(tmp_path, monkeypatch, topic):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    outside_before = _every_path(tmp_path) - _every_path(cwd)
    from typer.testing import CliRunner

    from lessonforge.agent.cli import app

    result = CliRunner().invoke(app, ["make", topic, "--minutes", "0.5", *FAKES], catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output and result.exit_code in (0, 2), result.output
    assert _every_path(tmp_path) - _every_path(cwd) == outside_before  # nothing written outside cwd
    made = [p for p in cwd.iterdir()]
    assert all(p.parent == cwd and p.name not in ("..", ".") for p in made)


def test_titles_from_the_llm_never_become_paths_outside(tmp_path, monkeypatch):
    from lessonforge.agent import schemas

    def evil(messages, schema):
        answer = default_answer(messages, schema)
        if issubclass(schema, schemas.Script):
            for i, scene in enumerate(answer.scenes):
                scene.title = ["../../../../tmp/evil", "/etc/passwd", "a\x00b", "..\\..\\x\n"][i % 4]
            answer.title = "../../escape"
        if schema is schemas.Outline:
            answer.title = "../../escape"
        return answer

    patch_backends(monkeypatch, llm=lambda m: FakeLLM(m, script=[evil] * 20))
    root = tmp_path / "root"
    out = root / "o"
    root.mkdir()
    before = _every_path(tmp_path) - _every_path(root)
    o = invoke([*TOPIC, *FAKES], out)
    _assert_ok(o)
    assert _every_path(tmp_path) - _every_path(root) == before
    for scene in (o.manifest or {}).get("scenes", []):
        folder = (out / "scenes" / scene["slug"]).resolve()
        assert folder.is_relative_to(out.resolve())
    assert not Path("/tmp/evil").exists()


def test_manifest_path_outside_the_project_is_refused_by_render(tmp_path):
    out = tmp_path / "o"
    o = invoke([*TOPIC, *FAKES], out)
    assert o.finished, o.explain()
    data = json.loads((out / "lesson.json").read_text())
    data["scenes"][0]["slide"]["path"] = "../../../etc/passwd"
    (out / "lesson.json").write_text(json.dumps(data))
    from typer.testing import CliRunner

    from lessonforge.agent.cli import app

    result = CliRunner().invoke(
        app, ["render", str(out), "--speech", "fake:", "--images", "fake:", "--critic", "fake:"]
    )
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        assert result.exit_code in (1, 2) and "error:" in result.output
    data = json.loads((out / "lesson.json").read_text())
    assert all(not s["slide"]["path"].startswith("..") for s in data["scenes"]) or result.exit_code != 0
