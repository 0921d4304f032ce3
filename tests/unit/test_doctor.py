"""`lessonforge doctor`: each finding names what is wrong and its fix; secrets are never shown."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from lessonforge.agent import doctor
from lessonforge.agent.cli import app
from lessonforge.agent.config import Settings
from tests.fake_openai import closed_port, fake_openai  # noqa: F401

SECRET = "sk-doctor-test-0123456789abcdef"
runner = CliRunner()


def _by_area(findings):
    return {f.area: f for f in findings}


def test_a_missing_program_fails_with_the_package_to_install(monkeypatch):
    import lessonforge.tools.media.video

    monkeypatch.setattr(lessonforge.tools.media.video, "ffprobe_exe", lambda: None)
    found = _by_area(doctor.programs())
    assert found["ffprobe"].status == "fail" and found["ffprobe"].fix == "sudo apt-get install -y ffmpeg"
    assert found["ffmpeg"].status == "ok" and "version" in found["ffmpeg"].found


def test_fonts_per_script_and_shaping(monkeypatch):
    import lessonforge.tools.media.slides

    found = _by_area(doctor.fonts())
    assert {f"font {script}" for script, *_ in doctor.SCRIPTS} <= set(found)
    assert found["font Latin"].status == "ok"  # DejaVu ships with matplotlib at the least
    real = lessonforge.tools.media.slides.choose_font

    def no_arabic(text, **kw):
        choice = real(text, **kw)
        return choice if choice.script != "arabic" else SimpleNamespace(path=choice.path, missing=text[:3])

    monkeypatch.setattr(lessonforge.tools.media.slides, "choose_font", no_arabic)
    monkeypatch.setattr(lessonforge.tools.media.slides, "raqm_available", lambda: False)
    found = _by_area(doctor.fonts())
    assert found["font Arabic"].status == "warn" and found["font Arabic"].fix.endswith("fonts-noto-core")
    assert found["libraqm"].status == "warn" and found["libraqm"].fix.endswith("libraqm0")


def test_model_cache_warns_only_for_what_the_settings_will_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    found = _by_area(doctor.model_cache(Settings.load(llm="local:Qwen/Qwen3-1.7B", images="none", critic="none")))
    assert found["model cache"].found.startswith(str(tmp_path / "empty-cache"))
    assert found["model Qwen/Qwen3-1.7B"].status == "warn"
    assert found["model Qwen/Qwen3-1.7B"].fix == "lessonforge models pull Qwen/Qwen3-1.7B"
    assert found["model stabilityai/sd-turbo"].status == "ok"  # --images none: not needed


def test_keys_are_named_never_shown():
    found = doctor.keys({"OPENAI_API_KEY": SECRET, "LESSONFORGE_SPEECH": "espeak:en-us"})
    text = " ".join(f"{f.area} {f.found} {f.fix}" for f in found)
    assert "OPENAI_API_KEY" in text and "set (value not shown)" in text and SECRET not in text
    assert "LESSONFORGE_SPEECH=espeak:en-us" in text


def test_an_unreachable_speech_service_is_a_warning_with_the_offline_voices():
    found = _by_area(doctor.services(Settings.load(llm="fake:", speech="edge:"), reach=lambda host, port: "refused"))
    edge = found["speech edge-tts"]
    assert edge.status == "warn" and "refused" in edge.found and "piper:" in edge.fix
    found = _by_area(doctor.services(Settings.load(llm="fake:", speech="edge:"), reach=lambda host, port: ""))
    assert found["speech edge-tts"].status == "ok"


def test_the_report_through_the_cli(fake_openai, monkeypatch):  # noqa: F811
    env = {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": fake_openai.url, "COLUMNS": "60"}
    result = runner.invoke(app, ["doctor", "--speech", "espeak:", "--images", "none", "--critic", "none"], env=env,
                           catch_exceptions=False)
    out = result.output
    assert SECRET not in out
    line = next(line for line in out.splitlines() if "LLM openai:" in line)
    assert line.startswith("ok") and fake_openai.url in line
    assert "checks:" in out and "ffmpeg" in out and "font Japanese" in out and "memory" in out

    env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{closed_port()}/v1"
    result = runner.invoke(app, ["doctor", "--speech", "espeak:", "--images", "none", "--critic", "none"], env=env,
                           catch_exceptions=False)
    assert result.exit_code == 1 and SECRET not in result.output
    line = next(line for line in result.output.splitlines() if "LLM openai:" in line)
    assert line.startswith("fail") and "-> fix:" in line  # one line: what, then the fix


@pytest.mark.parametrize("bad", [["--llm", "gpt:4"], ["--speech", "nope:"]])
def test_bad_backend_names_are_refused(bad):
    result = runner.invoke(app, ["doctor", *bad], catch_exceptions=False)
    assert result.exit_code == 2 and "Unknown" in result.output
