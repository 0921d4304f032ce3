"""The graph as `langgraph dev` loads it: from the file langgraph.json names, with a JSON context."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_graph():
    spec_text = json.loads((ROOT / "langgraph.json").read_text())["graphs"]["lessonforge"]
    path, _, attr = spec_text.rpartition(":")
    spec = importlib.util.spec_from_file_location("lessonforge_graph_file", ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attr)


def test_graph_file_loads_and_has_the_designed_shape():
    graph = _load_graph()
    nodes = set(graph.get_graph().nodes)
    assert {"plan", "write", "fit", "scene", "assemble"} <= nodes
    scene = graph.get_graph(xray=True).nodes
    assert {"scene:narrate", "scene:illustrate", "scene:critique", "scene:choose", "scene:compose"} <= set(scene)


@pytest.mark.slow
def test_graph_runs_with_a_json_context(tmp_path):
    graph = _load_graph()
    context = {"out": str(tmp_path / "l"), "llm": "fake:", "images": "fake:", "speech": "fake:", "critic": "fake:"}
    state = asyncio.run(graph.ainvoke({"topic": "tides", "minutes": 0.5}, context=context))
    assert len(state["scenes"]) == 3
    assert (tmp_path / "l" / "lesson.mp4").stat().st_size > 0


def test_the_served_graph_takes_the_requests_fields_and_checks_them(tmp_path):
    from pydantic import ValidationError

    graph = _load_graph()
    schema = graph.get_input_jsonschema()
    assert schema["required"] == ["topic"] and {"minutes", "audience", "review"} <= set(schema["properties"])
    context = {"out": str(tmp_path / "l"), "llm": "fake:", "images": "fake:", "speech": "fake:", "critic": "fake:"}
    with pytest.raises(ValidationError, match=r"minutes must be between 0.5 and 30"):
        asyncio.run(graph.ainvoke({"topic": "tides", "minutes": 99}, context=context))
    with pytest.raises(ValidationError, match=r"topic\n\s+Field required"):
        asyncio.run(graph.ainvoke({"minutes": 1}, context=context))
    assert not (tmp_path / "l").exists()  # nothing was made


def test_graph_without_a_context_says_what_to_pass():
    from lessonforge.tools.base import ConfigError

    with pytest.raises(ConfigError, match='"out"'):
        asyncio.run(_load_graph().ainvoke({"topic": "tides"}))


@pytest.mark.slow
@pytest.mark.parametrize("images", ["fake:", "none"])
def test_no_node_blocks_the_event_loop(tmp_path, images):
    """Every check blockbuster has (stricter than `langgraph dev`, which lets file reads and stat through):
    file and process work runs in threads. A first run loads the lazily imported modules (imports read
    files, also in the server); the second, in a new folder, does all the work again under the checks."""
    blockbuster = pytest.importorskip("blockbuster")
    graph = _load_graph()
    context = {"llm": "fake:", "images": images, "speech": "fake:", "critic": "fake:"}
    request = {"topic": "tides", "minutes": 0.5}
    asyncio.run(graph.ainvoke(request, context={**context, "out": str(tmp_path / "warm")}))

    async def checked():
        with blockbuster.blockbuster_ctx():
            return await graph.ainvoke(request, context={**context, "out": str(tmp_path / "checked")})

    state = asyncio.run(checked())
    assert state["lesson"] == str(tmp_path / "checked")
    assert (tmp_path / "checked" / "lesson.mp4").stat().st_size > 0


FAKE_CONTEXT = {"llm": "fake:", "images": "none", "speech": "fake:", "critic": "none"}


def test_a_served_run_is_refused_while_another_run_holds_the_folder(tmp_path):
    from lessonforge.agent.project import Project
    from lessonforge.tools.base import ConfigError

    folder = tmp_path / "l"
    with Project(folder).lock():
        with pytest.raises(ConfigError, match="another LessonForge run .* is working in"):
            asyncio.run(_load_graph().ainvoke({"topic": "tides", "minutes": 0.5},
                                              context={**FAKE_CONTEXT, "out": str(folder)}))
    assert not (folder / "lesson.json").exists()


@pytest.mark.slow
def test_a_served_run_that_fails_says_so_in_lesson_json_and_lets_the_folder_go(tmp_path, monkeypatch):
    from lessonforge.agent.project import Project
    from lessonforge.tools.base import SpeechError
    from lessonforge.tools.fakes import FakeSpeech

    speak = FakeSpeech.speak

    async def refused(self, text, voice, out):
        raise SpeechError("the voice service refused the text")

    graph, context = _load_graph(), {**FAKE_CONTEXT, "out": str(tmp_path / "l"), "speech_fallback": "none"}
    monkeypatch.setattr(FakeSpeech, "speak", refused)
    with pytest.raises(SpeechError):
        asyncio.run(graph.ainvoke({"topic": "tides", "minutes": 0.5}, context=context))
    failed = Project(tmp_path / "l").load()
    assert failed.status == "failed" and "refused the text" in failed.error
    assert failed.script is not None  # what was made stays, for the rerun

    monkeypatch.setattr(FakeSpeech, "speak", speak)
    state = asyncio.run(graph.ainvoke({"topic": "tides", "minutes": 0.5}, context=context))  # not refused: let go
    assert Project(tmp_path / "l").load().status == "done" and len(state["scenes"]) == 3
