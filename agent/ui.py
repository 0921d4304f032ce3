"""`lessonforge ui`: a web page for making and refining lessons (Gradio Blocks, the optional `[ui]` extra).

The page is a view over `lessonforge.agent.service`: every button and message runs the service's make, chat turn
or version switch, and the page renders the events those stream (progress in the chat, a bar with the
stage and the time left) and, when a run ends, the new video, storyboard strip, versions and files.
No lesson logic lives here.

Private by construction: analytics and Hugging Face telemetry are off, there are no share links, the
theme uses the system's fonts (no font or script from elsewhere), Gradio's file cache lives in the
workspace, and only files under the workspace are served. It binds to 127.0.0.1; any other address
needs a token (the login page's password).
"""


import html
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lessonforge.agent import service
from lessonforge.agent.config import Settings
from lessonforge.agent.project import Project
from lessonforge.agent.state import ASPECTS, make_request
from lessonforge.tools.base import ConfigError
from lessonforge.tools.llm.openai import scrub_environment

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
PRIVATE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_SHARE": "False",
    "GRADIO_SSR_MODE": "False",
    "GRADIO_MCP_SERVER": "False",
    "GRADIO_RUN_HISTORY": "False",
}
CACHE = ".lessonforge-ui"  # Gradio's copies of the files it serves, inside the workspace
POLL_S = 2.0  # how often a page checks whether another page changed its lesson
PROGRESS_LINES = 8  # progress lines shown in the chat while a run works
FONTS = ("system-ui", "-apple-system", "Segoe UI", "Noto Sans", "DejaVu Sans", "sans-serif")
MONO = ("ui-monospace", "DejaVu Sans Mono", "monospace")
THEMES = ("light", "dark", "chalk")

CSS = """
.lf-progress {height: 10px; border-radius: 5px; background: var(--neutral-200); overflow: hidden}
.lf-progress > div {height: 100%; background: var(--color-accent); transition: width .3s}
.lf-status {font-size: var(--text-sm); color: var(--body-text-color-subdued); margin-top: 4px}
#lf-strip .thumbnail-item {cursor: pointer}
"""


@dataclass
class Options:
    """What `lessonforge ui` was started with: the workspace and the backends to use."""

    workspace: Path
    backends: dict[str, str] = field(default_factory=dict)  # llm/images/speech/critic overrides


def private_environment(workspace: Path) -> None:
    """Switch off everything that would reach beyond this machine, and keep Gradio's files in the workspace.

    Must run before gradio is imported (some flags are read at import).
    """
    for key, value in PRIVATE_ENV.items():
        os.environ[key] = value
    cache = (workspace / CACHE).resolve()
    os.environ["GRADIO_TEMP_DIR"] = str(cache)
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(cache / "examples")


def gradio(workspace: Path) -> Any:
    """Gradio, imported in the private environment, or a clear error naming the extra to install."""
    private_environment(workspace)
    try:
        import gradio as gr
    except ImportError:
        raise ConfigError("the web page needs Gradio: pip install 'lessonforge[ui]'") from None
    return gr


def check_workspace(workspace: Path) -> Path:
    """The workspace, resolved and created; never the file system's root or the home folder itself."""
    root = workspace.expanduser().resolve()
    if root == Path(root.anchor) or root == Path.home().resolve():
        raise ConfigError(f"lessonforge ui serves the files of its folder, and {root} holds far more than lessons; "
                          "give it a folder for your lessons, e.g. lessonforge ui ~/lessons")
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is a file; give lessonforge ui a folder for your lessons")
    root.mkdir(parents=True, exist_ok=True)
    return root


def check_host(host: str, token: str | None) -> str | None:
    """The token the page asks for: none on this machine only, else the given one or a new random one."""
    if host in LOCAL_HOSTS:
        return token or None
    return token or secrets.token_urlsafe(18)


# --------------------------------------------------------------------------- rendering


def progress_html(status: service.Status | None) -> str:
    if status is None:
        return ""
    pct = round(status.done * 100)
    parts = [html.escape(status.stage)]
    if status.message:
        parts.append(html.escape(status.message[:120]))
    parts.append(f"{pct}%")
    if status.eta_s is not None and status.done < 1.0:
        parts.append(f"about {_clock(status.eta_s)} left")
    return (f'<div class="lf-progress" role="progressbar" aria-valuenow="{pct}" aria-valuemin="0" '
            f'aria-valuemax="100"><div style="width:{pct}%"></div></div>'
            f'<div class="lf-status" id="lf-status">{" · ".join(parts)}</div>')


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds} s"


def event_line(event: dict[str, Any]) -> str:
    where = f" [{event['scene']}/{event['total']}]" if event.get("scene") is not None and event.get("total") else ""
    return f"{event.get('stage', '')}{where}: {event.get('message', '')}"


def say(text: str) -> dict[str, Any]:
    """An assistant message, with any API key in it masked."""
    return {"role": "assistant", "content": scrub_environment(text)}


def working(lines: list[str]) -> dict[str, Any]:
    """The assistant message that shows a run's progress while it works."""
    return {"role": "assistant", "content": "\n".join(lines[-PROGRESS_LINES:]) or "Starting",
            "metadata": {"title": "Working", "status": "pending"}}


def version_choices(folder: str) -> tuple[list[tuple[str, int]], int | None]:
    versions = Project(folder).versions()
    choices = [(f"{v.number}{' (current)' if v.current else ''}: {v.note} - {v.scenes} scenes, {v.duration:.0f} s",
                v.number) for v in versions]
    current = next((v.number for v in versions if v.current), None)
    return choices, current


# --------------------------------------------------------------------------- the page


def build(options: Options) -> Any:
    """The page (a gr.Blocks); `launch` serves it."""
    gr = gradio(options.workspace)
    workspace = options.workspace

    def lesson_choices() -> list[tuple[str, str]]:
        out = []
        for folder in service.lessons(workspace):
            try:
                m = Project(folder).load()
                title = m.script.title if m.script else m.request.topic
            except ConfigError:
                title = folder.name
            out.append((f"{title} ({folder.name})", str(folder)))
        return out

    with gr.Blocks(title="LessonForge", analytics_enabled=False, fill_width=True) as demo:
        folder = gr.State("")
        seen = gr.State("")  # the lesson's stamp when this page last showed it
        busy = gr.State(False)  # this page runs a job: the poll leaves the page alone

        with gr.Row():
            gr.Markdown("## LessonForge")
            lesson = gr.Dropdown(label="Lesson", choices=[], value=None, interactive=True, scale=3,
                                 elem_id="lf-lesson")
        with gr.Accordion("New lesson", open=False, elem_id="lf-new") as new_box:
            with gr.Row():
                topic = gr.Textbox(label="Topic", placeholder="photosynthesis", scale=3, elem_id="lf-topic")
                minutes = gr.Number(label="Minutes", value=2.0, minimum=0.5, maximum=30, step=0.5, scale=1)
            with gr.Row():
                audience = gr.Textbox(label="Audience", value="a general audience")
                language = gr.Textbox(label="Language", value="en")
                aspect = gr.Radio(label="Frame", choices=list(ASPECTS), value="16:9")
                theme = gr.Dropdown(label="Theme", choices=list(THEMES), value="light")
            make_btn = gr.Button("Make the lesson", variant="primary", elem_id="lf-make")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                chatbot = gr.Chatbot(label="Conversation", height=460, elem_id="lf-chat",
                                     buttons=["copy", "copy_all"],
                                     placeholder="Make a lesson, then say what to change.")
                with gr.Row():
                    message = gr.Textbox(show_label=False, placeholder="make scene 2 simpler", scale=5,
                                         elem_id="lf-message", submit_btn=False)
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="lf-send")
                progress = gr.HTML("", elem_id="lf-progress")
            with gr.Column(scale=6):
                video = gr.Video(label="Current video", interactive=False, elem_id="lf-video", height=360,
                                 buttons=["download"])
                strip = gr.Gallery(label="Storyboard (click a scene to talk about it)", columns=6, height=150,
                                   allow_preview=False, object_fit="contain", elem_id="lf-strip", buttons=[])
                with gr.Row():
                    versions = gr.Radio(label="Versions", choices=[], elem_id="lf-versions", scale=4)
                    with gr.Column(scale=1, min_width=120):
                        switch_btn = gr.Button("Switch to this version", size="sm", elem_id="lf-switch")
                        undo_btn = gr.Button("Undo", size="sm", elem_id="lf-undo")
                files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="lf-files")
        timer = gr.Timer(POLL_S)

        async def view(target: str) -> dict[Any, Any]:
            """Everything the page shows of the lesson in ``target`` (nothing when there is none)."""
            if not target or not Project(target).exists():
                return {folder: target, seen: "", chatbot: [], video: None, strip: [],
                        versions: gr.Radio(choices=[], value=None), files: None, new_box: gr.Accordion(open=True)}
            mp4, vtt = Path(target) / "lesson.mp4", Path(target) / "lesson.vtt"
            try:
                choices, current = version_choices(target)
                tiles = service.storyboard(target)
                said = [{"role": m["role"], "content": scrub_environment(m["content"])}
                        for m in await service.conversation(target)]
            except ConfigError as err:  # a damaged lesson.json: the message names the file and the fix
                return {folder: target, seen: service.stamp(target), chatbot: [say(f"error: {err}")]}
            return {
                folder: target,
                seen: service.stamp(target),
                lesson: gr.Dropdown(choices=lesson_choices(), value=target),
                chatbot: said,
                video: gr.Video(value=str(mp4) if mp4.is_file() else None,
                                subtitles=str(vtt) if mp4.is_file() and vtt.is_file() else None),
                strip: [(str(t.slide), f"{t.index}. {t.title}") for t in tiles if t.slide is not None],
                versions: gr.Radio(choices=choices, value=current),
                files: [str(p) for p in service.downloads(target)] or None,
                new_box: gr.Accordion(open=False),
            }

        async def drive(target: str, events: AsyncIterator[dict[str, Any]], shown: list[dict[str, Any]],
                        extra: dict[Any, Any] | None = None) -> AsyncIterator[dict[Any, Any]]:
            """Stream a job's progress into the chat and the bar; show the lesson again when it ends."""
            tracker = service.Tracker()
            lines: list[str] = []
            yield {busy: True, chatbot: shown + [working(lines)], progress: progress_html(tracker.status()),
                   **(extra or {})}
            outcome: dict[str, Any] = {}
            try:
                async for event in events:
                    if event.get("stage") in ("result", "error"):
                        outcome = event
                        break
                    status = tracker.update(event)
                    lines.append(scrub_environment(event_line(event)))
                    yield {chatbot: shown + [working(lines)], progress: progress_html(status)}
            except Exception as err:  # a bug: say so where the user looks, leave the page usable, then report it
                said = f"error: unexpected {type(err).__name__}: {err}. Please report it."
                yield {chatbot: shown + [say(said)], busy: False, progress: ""}
                raise
            target = outcome.get("folder", target)
            final = await view(target)
            after = final.get(chatbot) or []
            if outcome.get("stage") == "error":
                after = shown + [say(f"error: {outcome.get('message', '')}")]
            elif not after or after[-1].get("content") != scrub_environment(outcome.get("reply", "")):
                after = after + [say(outcome.get("reply", ""))]  # not a chat turn: the reply is shown, not kept
            yield {**final, chatbot: after, busy: False, progress: ""}

        async def on_load() -> dict[Any, Any]:
            found = service.lessons(workspace)
            latest = max(found, key=lambda p: (p / "lesson.json").stat().st_mtime_ns, default=None)
            return {lesson: gr.Dropdown(choices=lesson_choices(), value=str(latest) if latest else None),
                    **await view(str(latest) if latest else "")}

        unchanged = {seen: gr.skip()}  # a handler that changes nothing still names one output

        async def on_pick(target: str | None) -> dict[Any, Any]:
            return await view(target) if target else unchanged

        async def on_make(text: str, mins: float, aud: str, lang: str, asp: str, thm: str,
                          shown: list[dict[str, Any]]) -> AsyncIterator[dict[Any, Any]]:
            try:
                request = make_request(topic=text, minutes=float(mins or 2.0), audience=aud or "a general audience",
                                       language=lang or "en", aspect=asp, theme=thm)
                settings = Settings.load(**options.backends)
                out = service.new_lesson_folder(workspace, request.topic)
            except ConfigError as err:
                yield {chatbot: shown + [say(f"error: {err}")]}
                return
            asked = [{"role": "user", "content": f"Make a {request.minutes:g}-minute lesson on {request.topic}"}]
            async for update in drive(str(out), service.make(request, settings, out), asked):
                yield update

        async def on_send(text: str, target: str, shown: list[dict[str, Any]]) -> AsyncIterator[dict[Any, Any]]:
            text = (text or "").strip()
            if not text:
                yield unchanged
                return
            if not target:
                yield {chatbot: shown + [say("Make a lesson first (New lesson, above).")]}
                return
            asked = shown + [{"role": "user", "content": text}]
            async for update in drive(target, service.say(target, text, **options.backends), asked,
                                      {message: ""}):
                yield update

        async def on_undo(target: str, shown: list[dict[str, Any]]) -> AsyncIterator[dict[Any, Any]]:
            async for update in on_send("/undo", target, shown):
                yield update

        async def on_switch(number: int | None, target: str,
                            shown: list[dict[str, Any]]) -> AsyncIterator[dict[Any, Any]]:
            if not target or number is None:
                yield unchanged
                return
            async for update in drive(target, service.switch(target, int(number), **options.backends), shown):
                yield update

        def on_pick_scene(evt: gr.SelectData) -> str:  # type: ignore[name-defined]  # gradio passes the event by it
            caption = evt.value.get("caption") if isinstance(evt.value, dict) else None
            title = caption.split(". ", 1)[-1] if caption else ""
            return f"Scene {evt.index + 1} ({title}): " if title else f"Scene {evt.index + 1}: "

        async def on_tick(target: str, last: str, running: bool) -> dict[Any, Any]:
            if running or not target or not Project(target).exists() or service.stamp(target) == last:
                return unchanged
            return await view(target)

        shows = [folder, seen, lesson, chatbot, video, strip, versions, files, new_box]
        streams = shows + [busy, progress, message]
        job = dict(show_progress="hidden", concurrency_limit=None)
        demo.load(on_load, None, shows, show_progress="hidden", api_name="load")
        lesson.input(on_pick, lesson, shows, show_progress="hidden", api_name="open")
        make_btn.click(on_make, [topic, minutes, audience, language, aspect, theme, chatbot], streams,
                       api_name="make", **job)
        send.click(on_send, [message, folder, chatbot], streams, api_name="send", **job)
        message.submit(on_send, [message, folder, chatbot], streams, api_visibility="private", **job)
        undo_btn.click(on_undo, [folder, chatbot], streams, api_name="undo", **job)
        switch_btn.click(on_switch, [versions, folder, chatbot], streams, api_name="switch", **job)
        strip.select(on_pick_scene, None, message, show_progress="hidden", api_visibility="private")
        timer.tick(on_tick, [folder, seen, busy], shows, show_progress="hidden", concurrency_limit=None,
                   api_name="refresh")
    return demo


def launch(options: Options, *, host: str = "127.0.0.1", port: int | None = None, token: str | None = None,
           block: bool = True) -> Any:
    """Serve the page; returns the Blocks (already serving when ``block`` is False)."""
    demo = build(options)
    gr = gradio(options.workspace)
    workspace = options.workspace
    blocked = [str(p / ".lessonforge") for p in service.lessons(workspace)]
    auth = None
    if token:
        def auth(_user: str, password: str) -> bool:
            return secrets.compare_digest(password.encode(), token.encode())
    theme = gr.themes.Default(font=list(FONTS), font_mono=list(MONO))
    demo.queue(default_concurrency_limit=None)
    demo.launch(
        server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=not block,
        allowed_paths=[str(workspace)], blocked_paths=blocked, auth=auth,
        auth_message="Enter any name, and the token lessonforge ui printed as the password.",
        theme=theme, css=CSS, footer_links=["api", "settings"], quiet=True, show_error=False,
        enable_monitoring=False, ssr_mode=False, pwa=False, mcp_server=False, run_history=False,
    )
    return demo
