"""The web page's API, driven through Gradio's own client: edits stream progress and end in the new
lesson, two clients on one lesson are serialised and see each other's result, undo and version
switches, files only from the workspace, a token off this machine."""

import asyncio
import re
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import httpx
import pytest

from lessonforge.agent import service
from lessonforge.agent.project import Project
from lessonforge.tools.cache import file_hash

gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("gradio")

from lessonforge.agent import ui  # noqa: E402

pytestmark = pytest.mark.slow

FAKES = {"llm": "fake:", "images": "fake:", "speech": "fake:", "critic": "fake:"}
# the outputs of /load, /open, /refresh (the page's view) and of the job endpoints (the view, progress, message box)
LESSON, CHAT, VIDEO, STRIP, VERSIONS, FILES = range(6)
PROGRESS = 6  # layout blocks (the New lesson box) are not part of the API


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """One lesson made with the fakes; each test works on its own copy."""
    from typer.testing import CliRunner

    from lessonforge.agent.cli import app

    folder = tmp_path_factory.mktemp("made") / "tides"
    flags = [x for k, v in FAKES.items() for x in (f"--{k}", v)]
    result = CliRunner().invoke(app, ["make", "tides", "--minutes", "1", "--out", str(folder), "--quiet", *flags])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("workspace")
    port = free_port()
    demo = ui.launch(ui.Options(workspace, FAKES), port=port, block=False)
    yield workspace, f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture
def lesson(server, template, request) -> Path:
    workspace, _ = server
    folder = workspace / request.node.name.replace("[", "-").replace("]", "")
    shutil.copytree(template, folder)
    return folder


def client(url: str, **kw):
    return gradio_client.Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix="lf-ui-"), **kw)


def opened(url: str, folder: Path):
    c = client(url)
    c.predict(api_name="/load")  # what the page does first: it lists the lessons
    view = c.predict(str(folder), api_name="/open")
    return c, view


def finished(job):
    """The last outputs of a streaming job, once it ends."""
    job.result()
    return job.outputs()[-1]


def versions_of(view) -> tuple[list[int], int]:
    radio = view[VERSIONS]
    return [n for _, n in radio["choices"]], radio["value"]


def slides(view) -> list[str]:
    return [file_hash(Path(item["image"])) for item in view[STRIP]]


def texts(chat: list[dict]) -> list[str]:
    out = []
    for m in chat:
        content = m["content"]
        out.append(" ".join(c.get("text", "") for c in content) if isinstance(content, list) else str(content))
    return out


def test_an_edit_streams_progress_into_the_chat_then_shows_the_new_video_and_strip(server, lesson):
    _, url = server
    c, before = opened(url, lesson)
    assert versions_of(before) == ([1], 1)
    assert len(before[STRIP]) == 4 and before[VIDEO]["value"] is not None
    assert [Path(f).name for f in before[FILES]] == ["lesson.mp4", "lesson.srt", "lesson.vtt"]

    job = c.submit('rename scene 2 to "Why the Moon pulls"', before[CHAT], api_name="/send")
    updates = list(job)
    final = job.outputs()[-1]
    streaming = updates[:-1]
    assert len(streaming) >= 5
    # while it works: a pending "Working" message grows with the stages, the bar shows stage and share
    assert any(u[CHAT][-1].get("metadata", {}).get("status") == "pending"
               and "scene_done [2/4]" in texts(u[CHAT])[-1] for u in streaming)
    bars = [u[PROGRESS] for u in streaming if u[PROGRESS]]
    assert any("narrate" in b for b in bars) and any("left" in b for b in bars)
    shares = [int(b.split('aria-valuenow="')[1].split('"')[0]) for b in bars]
    assert shares == sorted(shares) and shares[-1] == 100
    # the current video stays: no update sets it while the edit works
    assert all(not isinstance(u[VIDEO], dict) or "value" not in u[VIDEO] for u in streaming)

    assert versions_of(final) == ([1, 2], 2)
    asked, answered = texts(final[CHAT])[-2:]
    assert asked == 'rename scene 2 to "Why the Moon pulls"' and "Renamed scene 2" in answered
    assert [item["caption"] for item in final[STRIP]][1] == "2. Why the Moon pulls"
    changed = [a != b for a, b in zip(slides(before), slides(final), strict=True)]
    assert changed == [False, True, False, False]
    assert file_hash(Path(final[VIDEO]["value"])) == file_hash(lesson / "lesson.mp4") != file_hash(
        Path(before[VIDEO]["value"]))
    assert final[PROGRESS] == ""
    # the conversation is the project's own, kept where `lessonforge chat` keeps it
    assert asyncio.run(service.conversation(lesson))[-1]["content"] == answered


def test_two_tabs_on_one_lesson_are_serialised_and_each_sees_the_other(server, lesson):
    _, url = server
    (a, view_a), (b, view_b) = opened(url, lesson), opened(url, lesson)
    results: dict[str, list] = {}

    def run(name, c, view, text):
        job = c.submit(text, view[CHAT], api_name="/send")
        results[name] = list(job) + [job.outputs()[-1]]

    threads = [threading.Thread(target=run, args=("a", a, view_a, "make scene 2 simpler")),
               threading.Thread(target=run, args=("b", b, view_b, "make scene 3 simpler"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert set(results) == {"a", "b"}
    project = Project(lesson)
    assert [v.number for v in project.versions()] == [1, 2, 3] and project.current_version() == 3
    m1, m3 = project.version_manifest(1), project.load()
    # the later edit started from the earlier one's result: both scenes are simpler in the end
    assert all(len(m3.scenes[i].narration.split()) < len(m1.scenes[i].narration.split()) for i in (1, 2))
    waited = [name for name, ups in results.items() if any("wait" in (u[PROGRESS] or "") for u in ups)]
    assert len(waited) == 1
    first = "a" if waited == ["b"] else "b"
    # the tab that finished first sees the other's result when it checks for changes
    view = (a if first == "a" else b).predict(api_name="/refresh")
    assert versions_of(view) == ([1, 2, 3], 3)
    said = texts(view[CHAT])
    assert "make scene 2 simpler" in said and "make scene 3 simpler" in said


def test_undo_and_switch_between_versions(server, lesson):
    _, url = server
    c, view = opened(url, lesson)
    first_video = file_hash(lesson / "lesson.mp4")
    view = finished(c.submit("make scene 2 simpler", view[CHAT], api_name="/send"))
    second_video = file_hash(lesson / "lesson.mp4")
    assert versions_of(view) == ([1, 2], 2) and second_video != first_video

    view = finished(c.submit(view[CHAT], api_name="/undo"))
    assert versions_of(view) == ([1, 2], 1)  # the undone version stays, to switch back to
    assert file_hash(lesson / "lesson.mp4") == first_video
    assert "Back to version 1" in texts(view[CHAT])[-1]

    view = finished(c.submit(2, view[CHAT], api_name="/switch"))
    assert versions_of(view) == ([1, 2], 2)
    assert file_hash(lesson / "lesson.mp4") == second_video
    assert "Version 2 is current again" in texts(view[CHAT])[-1]

    async def events():  # a version that is not there (the page offers only those that are)
        return [e async for e in service.switch(lesson, 7, **FAKES)]

    assert asyncio.run(events())[-1] == {"stage": "error", "message": f"{lesson} has no version 7 (versions: 1-2); "
                                                                     f"see lessonforge history {lesson}"}
    assert Project(lesson).current_version() == 2


def test_a_bad_topic_is_answered_in_the_chat(server):
    _, url = server
    view = finished(client(url).submit("   ", 1, "pupils", "en", "16:9", "light", [], api_name="/make"))
    assert "the topic is empty" in texts(view[1])[-1]


def test_files_are_served_only_from_the_workspace(server, lesson, tmp_path):
    workspace, url = server
    (lesson / "export").mkdir()
    (lesson / "export" / "lesson.md").write_text("# Tides\n")
    c, view = opened(url, lesson)
    assert [Path(f).name for f in view[FILES]] == ["lesson.mp4", "lesson.srt", "lesson.vtt", "lesson.md"]
    assert Path(view[FILES][-1]).read_text() == "# Tides\n"  # exports are offered where present
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the page")
    base = url + "gradio_api/file="
    with httpx.Client(timeout=10) as http:
        assert http.get(base + str(lesson / "lesson.vtt")).status_code == 200
        for path in ("/etc/passwd", str(outside), str(Path(ui.__file__).resolve())):
            assert http.get(base + path).status_code == 403, path
    cache = workspace / ui.CACHE
    assert cache.is_dir() and any(p.name == "lesson.mp4" for p in cache.rglob("*"))  # Gradio's copies stay inside


def test_off_this_machine_the_page_asks_for_a_token(template, tmp_path):
    workspace = tmp_path / "ws"
    shutil.copytree(template, workspace / "tides")
    token = ui.check_host("0.0.0.0", None)
    assert token and len(token) >= 20 and ui.check_host("0.0.0.0", None) != token
    assert ui.check_host("127.0.0.1", None) is None
    port = free_port()
    demo = ui.launch(ui.Options(workspace, FAKES), host="0.0.0.0", port=port, token=token, block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        with httpx.Client(timeout=10) as http:
            assert http.get(url + "gradio_api/file=" + str(workspace / "tides" / "lesson.vtt")).status_code == 401
        with pytest.raises(Exception, match="(?i)unauthori|login|401"):
            client(url, auth=("me", "wrong")).predict(api_name="/load")
        view = client(url, auth=("me", token)).predict(api_name="/load")
        assert versions_of(view) == ([1], 1)
    finally:
        demo.close()


def test_the_page_names_nothing_from_elsewhere(server):
    import gradio

    _, url = server
    with httpx.Client(timeout=10) as http:
        page = http.get(url).text
        css = http.get(url + "theme.css").text
    assert "googleapis" not in page + css and "@import" not in css
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "system-ui" in css  # the theme's fonts are the system's
    assert gradio.analytics.analytics_enabled() is False


def test_the_page_will_not_serve_the_home_folder_or_the_root(tmp_path):
    from lessonforge.tools.base import ConfigError

    for folder in (Path.home(), Path("/")):
        with pytest.raises(ConfigError, match="give it a folder for your lessons"):
            ui.check_workspace(folder)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        ui.check_workspace(tmp_path / "file")
    assert ui.check_workspace(tmp_path / "new" / "lessons").is_dir()
