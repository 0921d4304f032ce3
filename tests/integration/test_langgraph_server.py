"""The agent in LangGraph's own server, as a LangGraph user runs it: `langgraph dev` (without
--allow-blocking, so any blocking call on the event loop fails the run), driven by langgraph_sdk."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("langgraph_api", reason="needs langgraph-cli[inmem] (the dev extra)")
from langgraph_sdk import get_client

ROOT = Path(__file__).resolve().parents[2]
FAKES = {"llm": "fake:", "images": "fake:", "speech": "fake:", "critic": "fake:"}
REQUEST = {"topic": "tides", "minutes": 0.5}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def openai_server():
    from tests.conftest import lesson_answers
    from tests.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(default=lesson_answers) as srv:
        yield srv


@pytest.fixture(scope="module")
def server(tmp_path_factory, openai_server):
    """`langgraph dev` on a free local port, serving this checkout's langgraph.json, its OpenAI backends
    pointed at the fake OpenAI server; stopped afterwards."""
    beside = Path(sys.executable).with_name("langgraph")  # this environment's own, before any on PATH
    langgraph = str(beside) if beside.exists() else shutil.which("langgraph") or str(beside)
    work = tmp_path_factory.mktemp("server")
    config = json.loads((ROOT / "langgraph.json").read_text())
    # the same graph file, named absolutely, so the server's own files (.langgraph_api/) stay out of the repo
    config["graphs"] = {k: str(ROOT / v.removeprefix("./")) for k, v in config["graphs"].items()}
    config["dependencies"] = [str(ROOT)]
    (work / "langgraph.json").write_text(json.dumps(config))
    lessons = work / "lessons"
    env = {**os.environ, "LESSONFORGE_LESSONS": str(lessons), "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), "LANGSMITH_TRACING": "false",
           "OPENAI_BASE_URL": openai_server.url, "OPENAI_API_KEY": "sk-test-000000"}
    env.pop("LANGGRAPH_ALLOW_BLOCKING", None)
    port = _free_port()
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [langgraph, "dev", "--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited ({proc.returncode}):\n{(work / 'server.log').read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
                if asyncio.run(get_client(url=url).assistants.search(graph_id="lessonforge")):
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not start:\n{(work / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, lessons, work / "server.log"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


async def _stream(url: str, context: dict | None, **input_extra):
    client = get_client(url=url)
    [assistant] = await client.assistants.search(graph_id="lessonforge")
    thread = await client.threads.create()
    parts = []
    async for part in client.runs.stream(thread["thread_id"], assistant["assistant_id"],
                                         input={**REQUEST, **input_extra}, context=context,
                                         stream_mode=["custom", "values"], stream_subgraphs=True):
        parts.append(part)
    return parts


@pytest.mark.slow
def test_the_server_publishes_the_graphs_schemas(server):
    url, _, _ = server

    async def schemas():
        client = get_client(url=url)
        [assistant] = await client.assistants.search(graph_id="lessonforge")
        return await client.assistants.get_schemas(assistant["assistant_id"])

    got = asyncio.run(schemas())
    given = got["input_schema"]
    assert {"topic", "minutes", "language", "aspect", "review"} <= set(given["properties"])  # the request's fields
    assert given["required"] == ["topic"]
    assert all(p.get("description") for p in given["properties"].values())
    context = got["context_schema"]
    assert context["required"] == ["out"]
    assert {"out", "llm", "images", "speech", "critic", "max_attempts", "device"} <= set(context["properties"])
    assert all(p.get("description") for p in context["properties"].values())  # Studio shows them as help
    assert {"lesson", "video", "scenes", "timings"} <= set(got["output_schema"]["properties"])


@pytest.mark.slow
def test_a_run_with_the_fakes_streams_progress_and_makes_the_same_lesson_as_the_cli(server, tmp_path):
    from lessonforge.agent import run
    from lessonforge.agent.config import Settings
    from lessonforge.agent.project import Project
    from lessonforge.tools.media import video

    url, lessons, log = server
    parts = asyncio.run(_stream(url, {"out": "tides", **FAKES}))

    errors = [p.data for p in parts if p.event == "error"]
    assert not errors, f"{errors}\n{log.read_text()[-3000:]}"
    stages = [p.data["stage"] for p in parts if p.event.startswith("custom")]
    assert {"plan", "write", "narrate", "illustrate", "compose", "assemble", "done"} <= set(stages)
    assert stages.count("narrate") == 3  # each scene's progress comes through, from inside the scene subgraph
    final = next(p.data for p in reversed(parts) if p.event.startswith("values"))
    folder = lessons / "tides"  # the relative "out" lies under $LESSONFORGE_LESSONS
    assert final["lesson"] == str(folder)
    served = Project(folder).load()
    assert served.status == "done" and len(served.scenes) == 3
    info = video.probe(folder / "lesson.mp4")
    assert abs(info.duration - served.video.duration) < 0.05 and info.width > 0

    # the same request through lessonforge make's code path records the same manifest
    made = asyncio.run(run.make(run.make_request(**REQUEST), Settings.load(**FAKES), tmp_path / "cli"))
    assert served.backends == made.backends and served.backends["llm"] == "fake:"
    assert served.settings == made.settings and served.settings["max_attempts"] == 3
    assert set(served.timings) == set(made.timings) >= {"plan", "write", "narrate", "compose", "assemble"}
    assert [s.title for s in served.scenes] == [s.title for s in made.scenes]
    assert Project(folder).versions()[-1].note == "make 'tides'"


def test_a_run_without_a_context_fails_at_once_naming_the_fields(server):
    url, lessons, _ = server
    started = time.monotonic()
    parts = asyncio.run(_stream(url, None))
    [error] = [p.data for p in parts if p.event == "error"]
    assert time.monotonic() - started < 15
    assert error["error"] == "ContextError"
    assert '"out"' in error["message"] and "context" in error["message"] and "client.runs.stream" in error["message"]
    assert not any(p.event.startswith("custom") for p in parts)  # nothing was checked, loaded or downloaded


def test_a_run_with_a_bad_context_names_the_problem(server):
    url, lessons, _ = server
    parts = asyncio.run(_stream(url, {"out": "bad", "llm": "nope:model"}))
    [error] = [p.data for p in parts if p.event == "error"]
    assert error["error"] == "ContextError"
    assert "'nope'" in error["message"] and "Known: fake, local, openai" in error["message"]
    parts = asyncio.run(_stream(url, {"out": "bad", **FAKES, "max_attempts": 99}))
    [error] = [p.data for p in parts if p.event == "error"]
    assert "max_attempts: Input should be less than or equal to 10" in error["message"]
    assert not (lessons / "bad").exists()


@pytest.mark.slow
def test_review_pauses_after_the_outline_and_a_resumed_run_finishes_the_lesson(server):
    url, lessons, _ = server
    context = {"out": "reviewed", **FAKES, "images": "none", "critic": "none"}

    async def review():
        client = get_client(url=url)
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "lessonforge", input={**REQUEST, "review": True},
                               context=context)
        state = await client.threads.get_state(thread["thread_id"])
        assert not (lessons / "reviewed" / "lesson.mp4").exists()  # nothing produced before the approval
        # a new run, with its own context built again, carries on from the checkpoint
        done = await client.runs.wait(thread["thread_id"], "lessonforge", command={"resume": {"approve": True}},
                                      context=context)
        return state, done

    paused, done = asyncio.run(review())
    assert paused["next"] == ["review"] and paused["interrupts"][0]["value"]["outline"]["title"]
    assert done["lesson"] == str(lessons / "reviewed")
    assert (lessons / "reviewed" / "lesson.mp4").stat().st_size > 0


@pytest.mark.slow
def test_a_run_with_an_openai_compatible_llm_and_espeak_makes_a_lesson(server, openai_server):
    """The real network clients (their set-up reads certificates) and a speech subprocess, under the server's
    check for blocking calls."""
    url, lessons, log = server
    asked = len(openai_server.chat_requests)
    parts = asyncio.run(_stream(url, {"out": "served-openai", "llm": "openai:gpt-4.1-mini", "speech": "espeak:",
                                      "images": "none", "critic": "none"}))
    errors = [p.data for p in parts if p.event == "error"]
    assert not errors, f"{errors}\n{log.read_text()[-3000:]}"
    assert len(openai_server.chat_requests) > asked
    from lessonforge.agent.project import Project

    manifest = Project(lessons / "served-openai").load()
    assert manifest.status == "done" and manifest.backends["llm"] == "openai:gpt-4.1-mini"
    assert {s.speech.backend for s in manifest.scenes} == {"espeak:"}
