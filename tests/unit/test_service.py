"""lessonforge.agent.service without a web page: jobs on one project never overlap, events arrive as they happen,
errors end a stream plainly, and the progress tracker's share and time left."""

import asyncio

import pytest

from lessonforge.agent import service
from lessonforge.tools.base import ConfigError, SpeechError


async def _collect(stream):
    return [e async for e in stream]


async def test_jobs_on_one_project_run_one_after_the_other(tmp_path):
    log: list[str] = []

    def job(name: str):
        async def run(emit):
            log.append(f"{name} start")
            emit({"stage": "narrate", "message": name})
            await asyncio.sleep(0.05)
            log.append(f"{name} end")
            return {"reply": name}
        return run

    a, b = await asyncio.gather(_collect(service.stream(tmp_path, job("a"))),
                                _collect(service.stream(tmp_path / "x" / "..", job("b"))))
    assert log == ["a start", "a end", "b start", "b end"]
    assert a == [{"stage": "narrate", "message": "a"}, {"stage": "result", "reply": "a"}]
    assert b[0]["stage"] == "wait"
    assert b[1:] == [{"stage": "narrate", "message": "b"}, {"stage": "result", "reply": "b"}]


async def test_jobs_on_different_projects_overlap(tmp_path):
    started = asyncio.Event()

    async def first(emit):
        started.set()
        await asyncio.sleep(0.2)
        return {"reply": "first"}

    async def second(emit):
        assert started.is_set()
        return {"reply": "second"}

    async def later():
        await started.wait()
        return await _collect(service.stream(tmp_path / "b", second))

    one, two = await asyncio.gather(_collect(service.stream(tmp_path / "a", first)), later())
    assert two == [{"stage": "result", "reply": "second"}]  # no wait: another project's lock
    assert one[-1]["reply"] == "first"


async def test_an_error_ends_the_stream_with_its_message_and_frees_the_project(tmp_path):
    async def broken(emit):
        emit({"stage": "narrate", "message": "scene 1"})
        raise SpeechError("the voice service refused the request; try again later")

    events = await _collect(service.stream(tmp_path, broken))
    assert events[-1] == {"stage": "error", "message": "the voice service refused the request; try again later"}
    assert not service.project_lock(tmp_path).locked()

    async def bug(emit):
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await _collect(service.stream(tmp_path, bug))
    assert not service.project_lock(tmp_path).locked()


async def test_events_arrive_while_the_job_runs(tmp_path):
    gate = asyncio.Event()

    async def job(emit):
        emit({"stage": "plan", "message": "planning"})
        await gate.wait()
        return {"reply": "done"}

    stream = service.stream(tmp_path, job)
    first = await asyncio.wait_for(stream.__anext__(), 5)
    assert first == {"stage": "plan", "message": "planning"}
    gate.set()
    assert [e async for e in stream] == [{"stage": "result", "reply": "done"}]


def test_the_tracker_counts_scenes_then_encoding_and_estimates_the_time_left():
    now = [0.0]
    t = service.Tracker(clock=lambda: now[0])
    assert t.update({"stage": "plan", "message": "Planning"}).eta_s is None
    t.update({"stage": "write"})
    s = t.update({"stage": "llm", "message": "40 of ~100 tokens", "data": {"eta_s": 30.0}})
    assert s.stage == "write" and s.eta_s == 30.0  # a local model's own estimate while it writes
    now[0] = 10.0
    s = t.update({"stage": "narrate", "scene": 1, "total": 4})
    assert s.done == pytest.approx(0.2)
    for k in (1, 2):
        s = t.update({"stage": "scene_done", "scene": k, "total": 4})
    assert s.done == pytest.approx(0.5) and s.eta_s == pytest.approx(10.0)  # half done in 10 s
    for k in (3, 4):
        t.update({"stage": "scene_done", "scene": k, "total": 4})
    s = t.update({"stage": "encode", "scene": 1, "total": 4})
    assert s.done == pytest.approx(0.85)
    s = t.update({"stage": "done", "message": "lesson.mp4 (60.0 s)"})
    assert (s.done, s.eta_s) == (1.0, 0.0)


def test_a_new_lesson_never_lands_in_a_folder_that_holds_one(tmp_path):
    assert service.new_lesson_folder(tmp_path, "Tides & waves") == tmp_path / "tides-waves"
    (tmp_path / "tides-waves").mkdir()
    (tmp_path / "tides-waves" / "lesson.json").write_text("{}")
    assert service.new_lesson_folder(tmp_path, "Tides & waves") == tmp_path / "tides-waves-2"
    assert service.lessons(tmp_path) == [tmp_path / "tides-waves"]


def test_settings_of_a_folder_without_a_lesson_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="make a lesson there first"):
        service.settings_for(tmp_path)


def test_without_gradio_the_page_names_the_extra_to_install(monkeypatch, tmp_path):
    import sys

    from lessonforge.agent import ui

    for key in [*ui.PRIVATE_ENV, "GRADIO_TEMP_DIR", "GRADIO_EXAMPLES_CACHE"]:
        monkeypatch.setenv(key, "")  # restored after the test
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'lessonforge\[ui\]'"):
        ui.gradio(tmp_path)


def test_what_the_page_says_never_shows_an_api_key(monkeypatch):
    from lessonforge.agent import ui

    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-0123456789")
    said = ui.say("error: the server refused the key sk-planted-0123456789 (401)")
    assert said == {"role": "assistant", "content": "error: the server refused the key *** (401)"}
