"""One-shot prompts end to end: the LLM reading step through the real openai client (fake server), the CLI's
"Understood:" line, flags over the prompt, questions for a missing topic, --review corrections, the bare
`lessonforge PROMPT`, chat's first message, and lesson.json recording the prompt and its reading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lessonforge.agent import cli
from lessonforge.agent.config import Settings
from lessonforge.agent.fakes import FakeLLM
from lessonforge.agent.from_prompt import start
from lessonforge.agent.project import Project
from lessonforge.agent.understand import understand
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech
from lessonforge.tools.llm.openai import OpenAILLM
from tests.fake_openai import Error

runner = CliRunner()
FAKES = ["--llm", "fake:", "--images", "fake:", "--speech", "fake:", "--critic", "fake:"]
ODD = "so my daughter keeps asking me why the sky is blue and I never know what to say, can you help, short please"
READING = {"topic": "why the sky is blue", "minutes": None, "audience": "a curious child", "language": None,
           "aspect": None, "voice": "", "tone": "gentle", "style": "answer a child's question"}


def _cli(args, env=None, input=None):
    result = runner.invoke(cli.app, args, env=env, input=input, catch_exceptions=False)
    return result.exit_code, " ".join(result.output.split())


# --------------------------------------------------------------------------- the LLM step


async def test_an_unsure_prompt_is_read_by_the_llm_through_the_real_client(fake_openai):
    fake_openai.script(json.dumps(READING))
    llm = OpenAILLM("gpt-4.1-mini", base_url=fake_openai.url)
    u = await understand(ODD, llm=llm)
    await llm.aclose()
    assert u.via == "llm"
    sent = fake_openai.chat_requests[0].json
    assert sent["response_format"]["type"] == "json_schema"
    schema = sent["response_format"]["json_schema"]["schema"]
    assert set(schema["properties"]) >= {"topic", "minutes", "audience", "language", "aspect", "style"}
    assert all(p.get("description") for p in schema["properties"].values())
    assert ODD in sent["messages"][-1]["content"]
    # the patterns' exact finds (the 'short' -> 1 minute) stand; the LLM gives the topic and the rest
    assert (u.request.topic, u.request.minutes, u.request.audience) == ("why the sky is blue", 1.0, "a curious child")
    assert "gentle" in u.request.style and "child's question" in u.request.style


async def test_a_sure_prompt_never_reaches_the_llm(fake_openai):
    llm = OpenAILLM("gpt-4.1-mini", base_url=fake_openai.url)
    u = await understand("a 3-minute video on tides for kids", llm=llm)
    await llm.aclose()
    assert u.via == "offline" and fake_openai.chat_requests == []


async def test_the_llm_failing_leaves_the_offline_reading_with_a_note(fake_openai):
    fake_openai.script(Error(400, {"error": {"message": "model not found", "type": "invalid_request_error"}}))
    llm = OpenAILLM("gpt-4.1-mini", base_url=fake_openai.url, max_repairs=0)
    u = await understand(ODD, llm=llm)
    await llm.aclose()
    assert u.via == "offline" and any("the LLM could not read the prompt" in r for r in u.unsure)
    fake_openai.script(Error(400, {"error": {"message": "model not found", "type": "invalid_request_error"}}))
    from lessonforge.tools.base import LLMError

    llm = OpenAILLM("gpt-4.1-mini", base_url=fake_openai.url, max_repairs=0)
    with pytest.raises(LLMError):
        await understand(ODD, llm=llm, mode="llm")  # asked for outright: its failure is the answer
    await llm.aclose()


# --------------------------------------------------------------------------- prompt -> lesson


@pytest.mark.slow
async def test_start_makes_the_lesson_and_lesson_json_records_the_prompt(tmp_path):
    llm = FakeLLM()
    prompt = "a square 30-second video on rainbows for kids, in a playful tone, with everyday examples"
    seen = []
    u, manifest = await start(
        prompt,
        Settings.load(llm="fake:"),
        tmp_path / "l",
        on_understood=lambda x: seen.append(x) or x,
        llm=llm,
        images=FakeImages(),
        speech=FakeSpeech(),
        critic=FakeCritic(),
    )
    assert seen and seen[0].summary().startswith("rainbows · 0.5 min · kids · en · 1:1")
    assert (manifest.video.width, manifest.video.height) == (1080, 1080)
    saved = Project(tmp_path / "l").load()
    assert saved.understood.prompt == prompt
    assert saved.understood.reading.topic == "rainbows" and saved.understood.reading.tone == "playful"
    assert saved.request.style == "tone: playful; with everyday examples"
    writer = next(msgs for msgs, schema in llm.calls if schema.__name__ == "Script")
    assert "Notes from the person who asked for this lesson, to follow: tone: playful; with everyday examples" in (
        writer[-1].content)
    planner = next(msgs for msgs, schema in llm.calls if schema.__name__ == "Outline")
    assert "Topic: rainbows" in planner[-1].content
    assert planner[-1].content.endswith("to follow: tone: playful; with everyday examples")


# --------------------------------------------------------------------------- the CLI


def test_the_cli_shows_what_it_understood_and_which_flags_won(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # the run stops at the output folder, after the reading is shown
    code, out = _cli(["make", "a 3-minute vertical video on tides for kids in French", "--minutes", "1",
                      "--out", str(blocker), *FAKES])
    assert code == 2 and "is a file" in out
    assert "Understood: tides · 1 min · kids · fr · 9:16" in out
    assert "flag wins: --minutes 1 wins over the prompt's 3 min" in out


def test_a_prompt_without_a_topic_is_an_error_naming_it_when_no_one_can_answer(tmp_path):
    code, out = _cli(["make", "make a 2 minute video for kids", "--out", str(tmp_path / "o"), *FAKES])
    assert code == 2
    assert "does not say what the lesson should teach" in out and "2 min · kids" in out
    assert "Understood" not in out and not (tmp_path / "o").exists()


def test_a_prompt_without_a_topic_gets_a_question_at_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_interactive", lambda: True)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = _cli(["make", "make a 2 minute video for kids", "--out", str(blocker), *FAKES], input="tides\n")
    assert "What should the lesson teach?" in out
    assert "Understood: tides · 2 min · kids · en · 16:9" in out


def test_review_corrects_the_reading_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_interactive", lambda: True)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = _cli(["make", "a 3 minute video on tides", "--review", "--out", str(blocker), *FAKES],
                     input="in Spanish, for beginners\ntopic: ocean tides\n\n")
    assert "Understood: tides · 3 min · a general audience · en · 16:9" in out
    assert "Understood: tides · 3 min · beginners · es · 16:9" in out
    assert out.rstrip().count("Understood:") == 3
    assert "Understood: ocean tides · 3 min · beginners · es · 16:9" in out


def test_an_llm_server_reads_an_odd_prompt_for_the_cli(tmp_path, fake_openai):
    fake_openai.script(json.dumps(READING))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = _cli(["make", ODD, "--out", str(blocker), "--images", "none", "--speech", "fake:"],
                     env={"OPENAI_BASE_URL": fake_openai.url, "LESSONFORGE_LLM": ""})
    assert "Understood: why the sky is blue · 1 min · a curious child" in out and "(read by the LLM)" in out
    code, out = _cli(["make", ODD, "--parse", "offline", "--out", str(blocker), "--images", "none",
                      "--speech", "fake:"], env={"OPENAI_BASE_URL": fake_openai.url, "LESSONFORGE_LLM": ""})
    assert "read by the LLM" not in out and "note:" in out  # the patterns alone, unsure, say so
    assert len(fake_openai.chat_requests) == 1


@pytest.mark.slow
def test_bare_prompt_routes_to_make():
    assert cli.route(["a 2-minute video on tides"]) == ["make", "a 2-minute video on tides"]
    assert cli.route(["edit", "x", "y"]) == ["edit", "x", "y"]
    assert cli.route(["--help"]) == ["--help"] and cli.route([]) == []
    assert cli.route(["--minutes", "3", "tides"]) == ["make", "--minutes", "3", "tides"]
    proc = subprocess.run(
        [sys.executable, "-m", "lessonforge.agent.cli", "make a video please", *FAKES],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert proc.returncode == 2
    assert "does not say what the lesson should teach" in " ".join(proc.stderr.split())


@pytest.mark.slow
def test_chat_takes_a_prompt_as_its_first_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = _cli(["chat", *FAKES], input="a 30-second video on rainbows for kids\n/quit\n")
    assert code == 0, out
    assert "Understood: rainbows · 0.5 min · kids · en · 16:9" in out
    manifest = Project(tmp_path / "rainbows").load()
    assert manifest.understood.prompt == "a 30-second video on rainbows for kids"
    assert manifest.request.minutes == 0.5 and manifest.video is not None


def test_a_voice_hint_that_cannot_be_honoured_is_said(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = _cli(["make", "tides in 2 minutes with a female voice", "--out", str(blocker), *FAKES])
    assert "Understood: tides · 2 min · a general audience · en · 16:9 · voice: female" in out
    assert "note: no female voice for en in fake:" in out


async def test_what_the_llm_gets_wrong_is_repaired_and_noted(fake_openai):
    fake_openai.script(json.dumps({**READING, "minutes": -3, "language": "French!!"}))
    llm = OpenAILLM("gpt-4.1-mini", base_url=fake_openai.url)
    u = await understand(ODD, llm=llm, mode="llm")
    await llm.aclose()
    assert (u.request.minutes, u.request.language) == (1.0, "en")  # the patterns' 'short'; no language said
    assert any("minutes -3" in n for n in u.notes) and any("'French!!'" in n for n in u.notes)
