"""The real CLI: bad input is refused before any work with a message that names the fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lessonforge.agent.cli import app

runner = CliRunner()

FAKES = ["--llm", "fake:", "--images", "fake:", "--speech", "fake:", "--critic", "fake:"]


def _run(args, env=None):
    result = runner.invoke(app, args, env=env, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["make", ""], "topic is empty"),
        (["make", "x", "--minutes", "45"], "between 0.5 and 30"),
        (["make", "x", "--aspect", "4:3"], "aspect"),
        (["make", "x", "--llm", "gpt:4"], "Unknown llm backend 'gpt'"),
        (["make", "x", "--images", "sdxl"], "Unknown images backend"),
        (["make", "x", "--theme", "neon"], "unknown theme"),
    ],
)
def test_bad_input_is_refused_before_any_work(tmp_path, args, needle):
    code, out = _run([*args, "--out", str(tmp_path / "o")])
    assert code == 2
    assert needle in out
    assert "Traceback" not in out
    assert not (tmp_path / "o").exists()  # nothing was started


@pytest.mark.slow
def test_no_llm_configured_names_the_env_vars(tmp_path):
    code, out = _run(["make", "tides", "--out", str(tmp_path / "o"), "--images", "none", "--speech", "fake:"])
    assert code == 2
    assert "OPENAI_API_KEY" in out and "OPENAI_BASE_URL" in out and "--llm" in out


def test_unreachable_llm_is_named(tmp_path):
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}  # nothing listens on the discard port
    code, out = _run(["make", "tides", "--out", str(tmp_path / "o"), "--images", "none", "--speech", "fake:"], env)
    assert code == 2 and "127.0.0.1:9" in " ".join(out.split())


@pytest.mark.slow
def test_model_that_fails_to_load_is_named(tmp_path):
    code, out = _run(["make", "tides", "--out", str(tmp_path / "o"), "--llm", "fake:", "--speech", "fake:",
                      "--images", "diffusers:no-such-org/no-such-model"])
    assert code == 2
    assert "no-such-org/no-such-model" in " ".join(out.split())


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = _run(["make", "tides", "--out", str(blocker), *FAKES])
    assert code == 2 and "is a file" in " ".join(out.split())


@pytest.mark.slow
def test_make_json_events_and_render(tmp_path):
    out_dir = tmp_path / "lesson"
    code, out = _run(["make", "rainbows", "--minutes", "0.5", "--out", str(out_dir), "--json", *FAKES])
    assert code == 0, out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert {"plan", "write", "narrate", "compose", "assemble"} <= {e["stage"] for e in events}
    assert all("elapsed" in e for e in events if e["stage"] != "result")
    assert (out_dir / "lesson.mp4").stat().st_size > 0
    code, out = _run(["render", str(out_dir), "--quiet", "--speech", "fake:", "--images", "fake:", "--critic", "fake:"])
    assert code == 0, out


def test_secret_never_printed(tmp_path):
    key = "sk-test-PLANTED-SECRET-42"
    env = {"OPENAI_API_KEY": key, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    code, out = _run(["make", "tides", "--out", str(tmp_path / "o"), "--images", "none", "--speech", "fake:"], env)
    assert code != 0
    assert key not in out
    for root, _, files in os.walk(tmp_path):
        for f in files:
            assert key not in Path(root, f).read_text(errors="ignore")


def test_models_pull_names_the_size_then_shows_progress(fake_hub):
    fake_hub.repos["org/tiny"] = {"config.json": b"{}", "model.safetensors": b"\0" * 50_000}
    code, out = _run(["models", "pull", "org/tiny"])
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("Downloading org/tiny (50 kB) into ")
    assert "org/tiny: 50 kB of 50 kB" in lines
    assert lines[-1].endswith("models--org--tiny/snapshots/" + fake_hub.sha("org/tiny"))
    code, out = _run(["models", "pull", "org/tiny"])  # cached: nothing to download, the folder again
    assert code == 0 and "Downloading" not in out


def test_models_the_hub_cannot_deliver_stop_make_with_the_alternatives(fake_hub, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens: no connection
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", "http://127.0.0.1:9/{repo_id}/resolve/{revision}/{filename}")
    code, out = _run(["make", "tides", "--out", str(tmp_path / "o"), "--llm", "local:org/tiny-lm",
                      "--images", "diffusers:org/tiny-sd", "--critic", "none", "--speech", "fake:"])
    text = " ".join(out.split())
    assert code == 2, out
    assert "Hugging Face Hub cannot be reached" in text and "org/tiny-lm" in text and "org/tiny-sd" in text
    assert "OPENAI_API_KEY" in text and "--images none" in text
    assert not (tmp_path / "o" / "scenes").exists()


@pytest.mark.slow
def test_output_keeps_its_square_brackets(tmp_path):
    """Paths and messages are printed as written: "[draft]" is not taken for a style."""
    out = tmp_path / "tides [draft]"
    code, text = _run(["make", "tides", "--minutes", "0.5", "--out", str(out), "--quiet", *FAKES])
    assert code == 0, text
    assert "tides[draft]/lesson.mp4" in "".join(text.split())  # wrapped, not cut off


def test_a_voice_that_cannot_speak_the_language_is_refused_before_any_work(tmp_path):
    code, out = _run(["make", "tides", "--language", "ja", "--out", str(tmp_path / "o"), "--llm", "fake:",
                      "--images", "none", "--critic", "none", "--speech", "espeak:"])
    flat = " ".join(out.split())
    assert code == 2 and "cannot narrate 'ja'" in flat and "--speech edge:" in flat and "kokoro" in flat
    assert not (tmp_path / "o" / "lesson.json").exists()


def test_a_fallback_voice_that_cannot_speak_the_language_is_not_used():
    import asyncio

    from lessonforge.tools.base import SpeechBackend, SpeechError
    from lessonforge.tools.speech.espeak import EspeakSpeech
    from lessonforge.tools.speech.fallback import FallbackSpeech

    class Down(SpeechBackend):
        name = "edge:"

        def default_voice(self, language):
            return "ja-JP-NanamiNeural"

        async def speak(self, text, voice, out):
            raise SpeechError("the service is unreachable")

    speech = FallbackSpeech(Down(), EspeakSpeech(), language="ja")
    with pytest.raises(SpeechError, match="no fallback: espeak-ng cannot narrate 'ja'"):
        asyncio.run(speech.speak("こんにちは", "ja-JP-NanamiNeural", __import__("pathlib").Path("/tmp/x.wav")))
    assert not speech.using_fallback
