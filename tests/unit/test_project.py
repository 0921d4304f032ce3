from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lessonforge.agent.project import Manifest, Project, slugify
from lessonforge.agent.state import AssetRef, LessonRequest
from lessonforge.tools.base import ConfigError


@pytest.mark.parametrize(
    ("text", "slug"),
    [("Photosynthesis", "photosynthesis"), ("../../etc/passwd", "etc-passwd"), ("Ça va? Über!", "ca-va-uber"),
     ("光合作用", "lesson"), ("", "lesson")],
)
def test_slugify_is_path_safe(text, slug):
    assert slugify(text) == slug


def test_manifest_refs_cannot_leave_the_project(tmp_path):
    p = Project(tmp_path / "p")
    p.prepare()
    with pytest.raises(ConfigError, match="outside"):
        p.resolve(AssetRef(path="../../secret", sha256="0"))


def test_unwritable_out_dir_is_clear(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        Project(f).prepare()
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(ConfigError, match="cannot write"):
            Project(ro / "lesson").prepare()


def test_hand_broken_manifest_names_the_field(tmp_path):
    p = Project(tmp_path)
    p.save(Manifest(request=LessonRequest(topic="x")))
    data = json.loads(p.manifest_path.read_text())
    data["request"]["minutes"] = "lots"
    p.manifest_path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="request.minutes"):
        p.load()
    p.manifest_path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        p.load()


def test_second_run_on_same_folder_is_refused(tmp_path):
    p = Project(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import sys,time; sys.path.insert(0, {os.getcwd()!r}); from lessonforge.agent.project import Project\n"
         f"with Project({str(tmp_path)!r}).lock():\n    print('locked', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"pid {holder.pid}"):
            with p.lock():
                pass
    finally:
        holder.kill()
        holder.wait()
    with p.lock():  # free again once the other run is gone
        pass


def test_a_run_sweeps_what_a_killed_run_left_half_written(tmp_path):
    project = Project(tmp_path / "lesson")
    assets = project.root / ".lessonforge" / "assets" / "ab"
    (assets / ".captions-x1.tmp").mkdir(parents=True)
    (assets / ".captions-x1.tmp" / "caption-0.png").write_bytes(b"png")
    (assets / ".seg.mp4.tmp123").write_bytes(b"half")
    (assets / "seg.mp4").write_bytes(b"done")
    with project.lock():
        pass
    assert sorted(p.name for p in assets.iterdir()) == ["seg.mp4"]  # finished files stay


def test_how_a_run_ends_is_not_cut_short_by_a_cancel(tmp_path):
    """A failure being recorded (or the folder being let go) when the run is cancelled, as LangGraph
    cancels a run's other nodes once one raises: the work finishes, then the cancel goes through."""
    import asyncio
    import threading

    from lessonforge.agent.record import in_thread_to_the_end

    folder = tmp_path / "l"
    started, go_on, written = threading.Event(), threading.Event(), threading.Event()

    def record() -> str:
        started.set()
        go_on.wait(10)
        folder.mkdir()
        written.set()
        return "recorded"

    async def run() -> None:
        task = asyncio.create_task(in_thread_to_the_end(record))
        await asyncio.to_thread(started.wait, 10)  # the work is in its thread
        task.cancel()
        asyncio.get_running_loop().call_later(0.2, go_on.set)
        with pytest.raises(asyncio.CancelledError):
            await task
        assert written.is_set() and folder.is_dir()  # finished before the cancel went through
        assert await in_thread_to_the_end(str.upper, "ok") == "OK"

    asyncio.run(run())

    async def cancelled_at_once() -> None:  # asyncio.run cancels what is left the moment its main task ends
        asyncio.create_task(in_thread_to_the_end(record))
        await asyncio.sleep(0)

    folder.rmdir()
    written.clear()
    asyncio.run(cancelled_at_once())
    assert written.is_set()


def test_an_error_in_the_thread_reaches_the_caller():
    import asyncio

    from lessonforge.agent.record import in_thread_to_the_end

    with pytest.raises(ConfigError, match="full"):
        asyncio.run(in_thread_to_the_end(_fail, "the disk is full"))


def _fail(message: str) -> None:
    raise ConfigError(message)
