"""`lessonforge batch` on this machine with the shipped fakes: topic files, resuming, checkpoints, executors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lessonforge.agent import checkpoint
from lessonforge.agent.batch import load_requests, run_batch
from lessonforge.agent.cli import app
from lessonforge.agent.config import Settings
from lessonforge.agent.executor import LocalExecutor
from lessonforge.agent.executor import create as create_executor
from lessonforge.agent.fakes import FakeLLM
from lessonforge.agent.project import Project
from lessonforge.tools.base import ConfigError, SpeechError
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech

SETTINGS = Settings(llm="fake:", images="fake:", critic="fake:", speech="fake:", fit_rounds=0)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(text, "utf-8")
    return path


def test_topics_take_the_commands_options_unless_they_set_their_own(tmp_path):
    path = write(tmp_path, "name: course\ntopics:\n  - tides\n  - {topic: volcanoes, minutes: 1, language: fr}\n")
    _, batch, requests = load_requests(path, {"minutes": 0.5, "audience": "primary school"})
    assert batch.slugs() == ["01-tides", "02-volcanoes"]
    assert (requests[0].minutes, requests[0].language, requests[0].audience) == (0.5, "en", "primary school")
    assert (requests[1].minutes, requests[1].language, requests[1].audience) == (1.0, "fr", "primary school")


def test_a_bad_topic_file_names_the_entry_and_field(tmp_path):
    path = write(tmp_path, "topics:\n  - tides\n  - {topic: volcanoes, minutes: 90}\n  - {topic: x, colour: red}\n")
    with pytest.raises(ConfigError) as err:
        load_requests(path, {})
    text = str(err.value)
    assert "entry 3 ('x'), field colour" in text and "fix the file" in text
    path = write(tmp_path, "topics:\n  - tides\n  - {topic: volcanoes, minutes: 90}\n")
    with pytest.raises(ConfigError, match=r"entry 2 \('volcanoes'\).*minutes"):
        load_requests(path, {})
    with pytest.raises(ConfigError, match=r"entry 1 \('tides'\).*language"):
        load_requests(write(tmp_path, "- tides\n"), {"language": "not a language"})


def test_executor_names(tmp_path):
    assert isinstance(create_executor(None), LocalExecutor)
    assert isinstance(create_executor("local"), LocalExecutor)
    with pytest.raises(ConfigError, match="unknown executor 'spark'.*local, ray or ray:ADDRESS"):
        create_executor("spark")
    with pytest.raises(ConfigError, match="needs an address after the colon"):
        create_executor("ray:")


class FailOn(FakeSpeech):
    """Speech that fails for one topic's narration (the batch must go on)."""

    def __init__(self, word: str, **kw) -> None:
        super().__init__(**kw)
        self.word = word

    async def speak(self, text, voice, out):
        if self.word in text:
            raise SpeechError(f"the voice service refused {self.word!r}")
        return await super().speak(text, voice, out)


@pytest.mark.slow
async def test_a_batch_makes_each_lesson_records_failures_and_a_rerun_skips_what_is_done(tmp_path):
    topics = write(tmp_path, "name: course\ntopics: [tides, volcanoes]\n")
    run = tmp_path / "run"
    events: list[dict] = []
    report = await run_batch(topics, run, defaults={"minutes": 0.5}, settings=SETTINGS, on_event=events.append,
                             llm=FakeLLM(), images=FakeImages(), critic=FakeCritic(), speech=FailOn("volcanoes"))
    assert (report.done, report.failed) == (1, 1)
    done, failed = report.lessons
    assert done.status == "done" and (run / "lessons" / "01-tides" / "lesson.mp4").exists()
    assert failed.error_type == "SpeechError" and "refused 'volcanoes'" in failed.error
    assert json.loads((run / "batch.json").read_text())["failed"] == 1
    assert {e["status"] for e in events if e.get("stage") == "batch"} >= {"start", "done", "failed"}

    mp4 = (run / "lessons" / "01-tides" / "lesson.mp4").stat().st_mtime_ns
    events.clear()
    images = FakeImages()
    report = await run_batch(topics, run, defaults={"minutes": 0.5}, settings=SETTINGS, on_event=events.append,
                             llm=FakeLLM(), images=images, critic=FakeCritic(), speech=FakeSpeech())
    assert (report.done, report.failed, report.resumed) == (2, 0, ["01-tides"])
    assert (run / "lessons" / "01-tides" / "lesson.mp4").stat().st_mtime_ns == mp4  # not made again
    starts = [e["topic"] for e in events if e.get("stage") == "batch" and e["status"] == "start"]
    assert starts == ["02-volcanoes"]
    # the failed lesson had its plan and script before speech failed: the rerun resumed after them
    assert not [e for e in events if e.get("topic") == "02-volcanoes" and e.get("stage") in ("plan", "write")]
    assert [e for e in events if e.get("topic") == "02-volcanoes" and e.get("stage") == "resume"]

    # other options are another lesson: made again, from the start
    report = await run_batch(topics, run, defaults={"minutes": 0.5, "theme": "dark"}, settings=SETTINGS,
                             llm=FakeLLM(), images=FakeImages(), critic=FakeCritic(), speech=FakeSpeech())
    assert report.resumed == [] and report.done == 2


@pytest.mark.slow
def test_batch_command(tmp_path):
    topics = write(tmp_path, "- tides\n")
    run = tmp_path / "run"
    args = ["batch", str(topics), "--out", str(run), "--minutes", "0.5", "--llm", "fake:", "--images", "fake:",
            "--speech", "fake:", "--critic", "fake:"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 of 1 lessons done (0 from an earlier run)" in result.output
    assert Project(run / "lessons" / "01-tides").load().status == "done"
    result = CliRunner().invoke(app, args)
    assert "1 of 1 lessons done (1 from an earlier run)" in result.output
    result = CliRunner().invoke(app, [*args, "--executor", "spark"])
    assert result.exit_code == 2 and "unknown executor" in result.output
    result = CliRunner().invoke(app, ["eval", "smoke", "--executor", "ray:", "--llm", "fake:"])
    assert result.exit_code == 2 and "needs an address after the colon" in result.output


def test_a_checkpoint_dsn_must_be_postgres():
    with pytest.raises(ConfigError, match="must be a Postgres connection string"):
        checkpoint.check_spec("mysql://u:secret@db/x")


async def test_an_unreachable_postgres_checkpoint_is_a_clear_error_that_hides_the_password(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dsn = f"postgresql://lessons:s3cret@127.0.0.1:{port}/lessons?connect_timeout=3"
    with pytest.raises(ConfigError) as err:
        async with checkpoint.open_saver(dsn, Project(tmp_path)):
            pass
    text = str(err.value)
    assert f"cannot reach the Postgres checkpoint database postgresql://lessons:***@127.0.0.1:{port}" in text
    assert "check that the server runs" in text and "s3cret" not in text
