"""A new user's first ten minutes, through the real CLI: errors at once and on one line, help that says
what to type, the example lesson on time, and nothing left behind by a failed start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lessonforge.agent.cli import app
from lessonforge.tools import hub as models
from lessonforge.tools.base import SpeechBackend, SpeechUnavailable
from tests.plugins import write_plugin

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "photosynthesis.json"
FAKES = ["--llm", "fake:", "--images", "fake:", "--speech", "fake:", "--critic", "fake:"]
HEAVY = ("torch", "numpy", "openai", "langgraph", "transformers", "matplotlib", "diffusers")
runner = CliRunner()


def _run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, args, env=env, catch_exceptions=False)
    return result.exit_code, result.output


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "40"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300, check=False)


def test_an_error_is_one_line_at_any_terminal_width(tmp_path):
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4) / "and-another-one-below-it"
    deep.mkdir(parents=True)
    blocker = deep / "file"
    blocker.write_text("x")
    for columns in ("40", "80", "200"):
        code, out = _run(["make", "tides", "--out", str(blocker), *FAKES], env={"COLUMNS": columns})
        assert code == 2
        line = next(line for line in out.splitlines() if line.startswith("error:"))
        assert f"--out {blocker} is a file, not a folder" in line  # the whole message, path unbroken


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["make", ""], "topic is empty"),
        (["make", "x", "--minutes", "45"], "between 0.5 and 30"),
        (["make", "x", "--aspect", "4:3"], "aspect"),
        (["make", "x", "--theme", "neon"], "unknown theme"),
        (["make", "x", "--llm", "gpt:4"], "Unknown llm backend"),
        (["make", "--from", "no-such-file.json"], "no such file"),
    ],
)
def test_argument_errors_come_before_the_heavy_imports(args, needle):
    # in a fresh interpreter (the test session has imported everything already)
    done = _python(
        "import sys; from typer.testing import CliRunner; from lessonforge.agent.cli import app; "
        "r = CliRunner().invoke(app, sys.argv[1:]); "
        f"print(r.exit_code, [m for m in {HEAVY!r} if m in sys.modules]); print(r.output)",
        *args,
    )
    first, _, output = done.stdout.partition("\n")
    assert first == "2 []", done.stdout + done.stderr
    assert needle in output


def test_version():
    code, out = _run(["--version"])
    assert code == 0 and out.startswith("lessonforge ") and len(out.split()) >= 2


def test_help_shows_flags_plainly_and_lists_choices():
    code, out = _run(["make", "--help"], env={"COLUMNS": "200"})
    assert code == 0
    assert "<bool>" not in out  # flags take no value
    assert "--burn-subtitles" in out and "--help" in out
    assert "light|dark|chalk" in out and "16:9|9:16|1:1" in out
    code, out = _run(["eval", "--help"], env={"COLUMNS": "200"})
    assert code == 0 and "smoke (3 topics)" in out and "core (" in out and "<bool>" not in out
    code, out = _run(["--help"], env={"COLUMNS": "200"})
    assert "smoke" in out and "doctor" in out


def test_models_lists_whole_ids_in_a_narrow_pipe():
    code, out = _run(["models"], env={"COLUMNS": "60"})
    assert code == 0
    for rec in models.model_records():
        assert rec.id in out.split(), rec.id  # whole, on one line, ready to copy


def test_espeak_voices_claim_no_gender():
    pytest.importorskip("lessonforge.tools.speech.espeak")
    code, out = _run(["voices", "--speech", "espeak:", "--language", "en"])
    assert code == 0, out
    assert "en-us" in out.split()
    assert "male" not in out  # eSpeak NG reports its default for every voice, not the voice's own
    assert "en-us+f3" in out  # how to get another sound instead


@pytest.mark.slow
def test_edit_naming_a_missing_scene_fails_and_changes_nothing(tmp_path):
    folder = tmp_path / "lesson"
    code, out = _run(["make", "rainbows", "--minutes", "0.5", "--out", str(folder), "--quiet", *FAKES])
    assert code == 0, out
    before = (folder / "lesson.json").read_text()
    code, out = _run(["edit", str(folder), "make scene 99 shorter", "--llm", "fake:", "--quiet"])
    assert code == 2
    assert "there is no scene 99" in out and "error:" in out
    assert (folder / "lesson.json").read_text() == before
    code, out = _run(["edit", str(folder), "make scene 1 shorter", *FAKES, "--quiet"])
    assert code == 0, out


def test_a_failed_start_leaves_no_folder(tmp_path):
    out_dir = tmp_path / "tides"
    # no LLM: no key, no server, the local model not cached (HF_HUB_OFFLINE): stops before any work
    code, out = _run(["make", "tides", "--out", str(out_dir), "--images", "none", "--speech", "fake:"])
    assert code == 2 and "OPENAI_API_KEY" in out
    assert not out_dir.exists()
    kept = tmp_path / "mine"
    (kept / "notes").mkdir(parents=True)  # a folder the user made is never removed
    code, out = _run(["make", "tides", "--out", str(kept), "--images", "none", "--speech", "fake:"])
    assert code == 2 and (kept / "notes").is_dir()


class DownSpeech(SpeechBackend):
    """A speech service that cannot be reached (as edge-tts offline)."""

    def __init__(self, model: str = "") -> None:
        self.name = f"down:{model}"

    def default_voice(self, language: str) -> str:
        return "down-voice"

    async def speak(self, text, voice, out):
        raise SpeechUnavailable("cannot reach the speech service (down for the test)")


@pytest.mark.slow
def test_the_speech_fallback_notice_prints_once(tmp_path):
    # a fresh interpreter: Python's last-resort log handler is active there, as for a user (not under pytest)
    plugins = write_plugin(tmp_path / "plugins", "speech-down",
                           {"speech.down": "tests.integration.test_first_use:DownSpeech"})
    done = _python(
        f"import sys; sys.path.insert(0, {str(plugins)!r}); "
        "from lessonforge.agent.cli import main; sys.argv = ['lessonforge', *sys.argv[1:]]; main()",
        "make", "rainbows", "--minutes", "0.5", "--out", str(tmp_path / "l"), "--llm", "fake:", "--images", "none",
        "--speech", "down:", "--critic", "none",
    )
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert text.count("cannot reach the speech service") == 1, text
    manifest = json.loads((tmp_path / "l" / "lesson.json").read_text())
    assert manifest["fallbacks"] and "down:" in manifest["fallbacks"][0]  # still recorded


@pytest.mark.slow
def test_the_example_lesson_lands_within_its_own_target(tmp_path):
    out_dir = tmp_path / "photosynthesis"
    code, out = _run(["make", "--from", str(EXAMPLE), "--out", str(out_dir), "--images", "none", "--critic", "none",
                      "--speech", "fake:", "--quiet"])
    assert code == 0, out
    manifest = json.loads((out_dir / "lesson.json").read_text())
    recorded = json.loads(EXAMPLE.read_text())["request"]
    assert manifest["request"]["minutes"] == recorded["minutes"] == 1.5  # "in the next minute and a half"
    duration = manifest["duration"]
    assert duration["target"] == 90 and duration["within"], duration
    assert abs(manifest["video"]["duration"] - 90) <= duration["tolerance"]
    # no LLM was used: none is recorded as the lesson's LLM, neither as a backend nor as a setting
    assert manifest["backends"]["llm"] == "" and manifest["settings"]["llm"] == ""
    code, out = _run(["make", "--from", str(EXAMPLE), "--out", str(tmp_path / "short"), "--minutes", "1",
                      "--images", "none", "--critic", "none", "--speech", "fake:", "--quiet"])
    assert code == 0, out  # a flag still wins over what the file records
    assert json.loads((tmp_path / "short" / "lesson.json").read_text())["request"]["minutes"] == 1
