"""The `lessonforge` command. The only module that prints: progress (rich), results and errors."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from lessonforge.agent.config import DEFAULT_CRITIC, DEFAULT_IMAGES, DEFAULT_LLM
from lessonforge.tools.base import ConfigError, LessonForgeError
from lessonforge.tools.cache import atomic_write_text
from lessonforge.tools.defaults import VEO_CLIPS, VIDEOS_CLIPS
from lessonforge.tools.media.slides import THEMES
from lessonforge.tools.secrets import scrub_environment

# Only light modules are imported above (no torch, numpy, openai or langgraph): arguments are checked
# first, and a mistake is answered at once; each command imports the agent when it has work to do.


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("lessonforge")
        except PackageNotFoundError:
            found = "unknown (not installed; run scripts/setup.sh)"
        print(f"lessonforge {found}")
        raise typer.Exit()


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Turn a topic into a narrated slide lesson video (MP4 + subtitles + chapters). "
    '`lessonforge "a 2-minute video on tides for kids"` is short for `lessonforge make ...`.',
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    pass  # the app's help says what it does; this callback only adds --version


def _plain_flags() -> None:
    """Typer 0.2x prints a "<bool>" value placeholder after every flag in --help, as if a flag took a
    value; show nothing there, as for any flag (older Typer versions have no such method to mend)."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "plain_flags", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if self.is_flag and not self.count else shown(self, ctx)

    display_type_rich.plain_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_plain_flags()
console = Console(stderr=True)
out_console = Console()


def scrub(text: str) -> str:
    """Remove secrets from anything shown to the user."""
    return scrub_environment(text)


# --------------------------------------------------------------------------- progress


class Every:
    """Thins out a frequent line: each key's first and last (finished) lines pass, others once per ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.last: dict[str, float] = {}

    def due(self, key: str, now: float, finished: bool = False) -> bool:
        last = self.last.get(key)
        if last is not None and not finished and now - last < self.seconds:
            return False
        self.last[key] = now
        return True


class Progress:
    """Renders the agent's event stream: a live panel, plain lines (--quiet: warnings only) or JSON lines."""

    ICONS = {"narrate": "voice", "illustrate": "picture", "critique": "critic", "revise": "prompt",
             "compose": "slide", "encode": "encode", "scene_done": "done"}
    LINE_EVERY_S = 10.0

    def __init__(self, mode: str, title: str) -> None:
        self.mode = mode
        self.title = title
        self.start = time.monotonic()
        self.stage = "start"
        self.message = ""
        self.scenes: dict[int, dict[str, Any]] = {}
        self.total = 0
        self.warnings: list[str] = []
        self.shown: list[str] = []  # warnings already printed as lines (the summary does not repeat them)
        self.live: Live | None = None
        self.lines = Every(self.LINE_EVERY_S)  # plain lines of the frequent stages
        self.download: tuple[float, float] | None = None  # (done, total) of the download under way

    def __enter__(self) -> Progress:
        if self.mode == "live":
            self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(*exc)

    def __call__(self, event: dict[str, Any]) -> None:
        event = {k: (scrub(v) if isinstance(v, str) else v) for k, v in event.items()}
        elapsed = round(time.monotonic() - self.start, 2)
        if self.mode == "json":
            out_console.file.write(json.dumps({**event, "elapsed": elapsed}, ensure_ascii=False) + "\n")
            out_console.file.flush()
            return
        stage, scene = event.get("stage", ""), event.get("scene")
        level = event.get("level", "info")
        if level == "warning":
            self.warnings.append(event.get("message", ""))
        if scene is not None:
            self.total = event.get("total") or self.total
            row = self.scenes.setdefault(scene, {"title": "", "status": "", "attempt": None})
            if stage in ("narrate", "compose", "scene_done", "illustrate", "encode"):
                row["title"] = row["title"] or event.get("message", "")
            row["status"] = self.ICONS.get(stage, stage) if stage != "critique" else event.get("message", "")
            if event.get("attempt"):
                row["attempt"] = event["attempt"]
        else:
            self.stage, self.message = stage, event.get("message", "")
        if self.mode == "quiet":
            if level != "info":
                _say(f"[yellow]warning:[/] {escape(event.get('message', ''))}")
                self.shown.append(event.get("message", ""))
            return
        data = event.get("data") or {}
        if stage == "download" and data.get("total"):
            self.download = (float(data.get("done", 0)), float(data["total"]))
        if self.mode == "plain":
            # a local model reports every 16 tokens, a download every chunk: a line every 10 s is enough
            finished = bool(data.get("total")) and data.get("done") == data.get("total")
            if stage in ("llm", "download") and not self.lines.due(stage, elapsed, finished):
                return
            where = f" [{scene}/{self.total}]" if scene is not None else ""
            att = f" attempt {event['attempt']}" if event.get("attempt") else ""
            _say(f"{elapsed:7.1f}s {stage}{where}{att}: {escape(event.get('message', ''))}")
            if level != "info":
                self.shown.append(event.get("message", ""))
        elif self.live is not None:
            self.live.update(self._render())

    def _render(self) -> Group:
        elapsed = time.monotonic() - self.start
        head = Text.assemble(
            (f"{self.title}", "bold"), f"  {elapsed:5.0f}s  ", (self.stage, "cyan"), f"  {self.message}"
        )
        table = Table(box=None, pad_edge=False, show_header=bool(self.scenes))
        table.add_column("scene", justify="right")
        table.add_column("title", overflow="ellipsis", max_width=40)
        table.add_column("attempt", justify="right")
        table.add_column("status", overflow="ellipsis", max_width=50)
        done = sum(1 for r in self.scenes.values() if r["status"] == "done")
        for i in sorted(self.scenes):
            r = self.scenes[i]
            table.add_row(f"{i}/{self.total}", escape(r["title"]), str(r["attempt"] or ""), escape(r["status"]))
        footer = Text(f"{done}/{self.total or '?'} scenes done", style="dim")
        if self.stage == "download" and self.download is not None:
            bar = ProgressBar(total=max(self.download[1], 1.0), completed=self.download[0], width=50)
            return Group(head, bar, table, footer)
        return Group(head, table, footer)


def _mode(quiet: bool, as_json: bool) -> str:
    if as_json:
        return "json"
    if quiet:
        return "quiet"
    return "live" if console.is_terminal else "plain"


def _say(markup: str) -> None:
    """One message line on stderr. Never wrapped: its text (a path, a command to copy) is the same at
    any terminal width, in a pipe or a log."""
    console.print(markup, highlight=False, soft_wrap=True)


def _fail(err: BaseException, code: int) -> None:
    _say(f"[bold red]error:[/] {escape(scrub(str(err)))}")
    raise typer.Exit(code)


def _run(coro: Any, out: Path | None) -> Any:
    try:
        return asyncio.run(coro)
    except ConfigError as err:
        _fail(err, 2)
    except LessonForgeError as err:
        if out is not None and out.exists():
            _say(f"[dim]finished work is kept in {escape(str(out))}; run the same command again to resume[/]")
        _fail(err, 1)
    except KeyboardInterrupt:
        _say("[yellow]interrupted[/]: finished work is kept; run the same command again to resume")
        raise typer.Exit(130) from None
    except OSError as err:  # the disk, not the program: say what and how to go on
        where = f" ({err.filename})" if err.filename else ""
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            _fail(RuntimeError(f"{err.strerror or 'no space left'}: the disk holding {out or '.'} is full{where}; "
                               "free some space and run the same command again (finished work is kept)"), 1)
        _fail(RuntimeError(f"could not read or write a file{where}: {err.strerror or err}; check the folder's "
                           "permissions and free space, then run the same command again"), 1)
    except Exception as err:  # a bug: say so plainly, keep the traceback for the report
        log = Path(out or ".") / ".lessonforge" / "last-error.txt"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(log, scrub(traceback.format_exc()))
            where = f" (traceback in {log})"
        except OSError:
            where = ""
        _fail(RuntimeError(f"unexpected {type(err).__name__}: {err}{where}. Please report it."), 1)


def _summary(manifest: Any, out: Path, shown: Any = ()) -> None:
    """The result; a fallback already printed as a warning line (``shown``) is not repeated."""
    video = manifest.video
    title = manifest.script.title if manifest.script else manifest.request.topic
    table = Table(title=escape(title), show_header=False, box=None)
    table.add_column()
    table.add_column(overflow="fold")  # paths wrap whole rather than being cut off
    if video is not None:
        table.add_row("video", escape(f"{out / 'lesson.mp4'}  ({video.duration:.1f} s, {video.width}x{video.height})"))
        table.add_row("subtitles", escape(f"{out / 'lesson.srt'}, {out / 'lesson.vtt'}"))
        if video.storyboard is not None:
            table.add_row("storyboard", escape(str(out / video.storyboard.path)))
    table.add_row("manifest", escape(str(out / "lesson.json")))
    table.add_row("scenes", str(len(manifest.scenes)))
    below = [s.index for s in manifest.scenes if s.critic == "below_bar"]
    if below:
        table.add_row("below bar", ", ".join(map(str, below)))
    for fb in manifest.fallbacks:
        if scrub(fb) not in shown:
            table.add_row("fallback", escape(fb))
    console.print(table)


# --------------------------------------------------------------------------- commands


@app.command()
def make(
    topic: str = typer.Argument("", help='What the lesson teaches, or a prompt in plain words ("a 2-minute video '
                                'on photosynthesis for 9-year-olds, in French"); omit with --from.'),
    minutes: float | None = typer.Option(None, "--minutes", "-m", help="Target length in minutes (0.5-30; default 2)."),
    audience: str | None = typer.Option(None, help="Who it is for; sets vocabulary and depth."),
    language: str | None = typer.Option(None, help="Language code for narration, slides and subtitles (default en)."),
    aspect: str | None = typer.Option(None, metavar="16:9|9:16|1:1", help="Frame shape (default 16:9)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default: a slug of the topic)."),
    llm: str | None = typer.Option(None, help=f"LLM backend, e.g. {DEFAULT_LLM} (env LESSONFORGE_LLM)."),
    images: str | None = typer.Option(None, help=f"Image backend, e.g. {DEFAULT_IMAGES}, or none."),
    speech: str | None = typer.Option(None, help="Speech backend, e.g. edge:en-GB-SoniaNeural or espeak:en-us."),
    critic: str | None = typer.Option(None, help=f"Critic backend, e.g. {DEFAULT_CRITIC}, or none."),
    seed: int | None = typer.Option(None, help="Base seed for pictures (default 0)."),
    theme: str | None = typer.Option(None, metavar="|".join(THEMES),
                                        help=f"Slide theme: {', '.join(THEMES)} (default light)."),
    voice: str | None = typer.Option(None, help="Voice name (default: one that fits the language)."),
    max_attempts: int | None = typer.Option(None, help="Picture attempts per scene (default 3)."),
    device: str | None = typer.Option(None, help="Torch device for local models (default: cuda if present)."),
    lexicon: Path | None = typer.Option(None, help="Pronunciation lexicon (YAML/JSON/'term = spoken' lines), "
                                        "speech only."),
    burn_subtitles: bool = typer.Option(False, "--burn-subtitles", help="Draw captions into the video too."),
    motion: bool = typer.Option(False, "--motion", help="Gentle pan/zoom on pictures and fades (slower)."),
    builds: str = typer.Option("on", "--builds", metavar="on|off", help="on: key phrases appear as they are said, "
                               "the one being said highlighted, a question's answer after a pause; off: one still "
                               "per scene."),
    clips: str | None = typer.Option(None, help="Short motion clips for scenes that need motion, e.g. "
                                        f"veo:{VEO_CLIPS} or videos:{VIDEOS_CLIPS} (default none)."),
    clip_budget: float | None = typer.Option(None, help="Most dollars a lesson may spend on clips (default 2)."),
    clip_price: float | None = typer.Option(None, help="Dollars per second of clip for a model with no list price."),
    image_quality: str | None = typer.Option(None, help="Hosted picture quality: low, medium, high or auto."),
    script_file: Path | None = typer.Option(
        None, "--from", help="Use this script (JSON: a lesson.json, a Script, or {request, script}) instead of an "
        "LLM; what it records of the request (minutes, language...) is used unless given here."
    ),
    review: bool = typer.Option(False, "--review", help="Confirm or correct how the prompt was understood, "
                                "then approve the outline or give notes."),
    parse: str = typer.Option("auto", "--parse", metavar="auto|offline|llm", help="Reading the prompt: auto "
                              "(patterns; the LLM too when they are unsure and it is a server), offline (patterns "
                              "only) or llm (always)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only warnings, errors and the result."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON event per line."),
) -> None:
    """Make a lesson video about TOPIC (a topic, or a prompt such as "a 3-minute video on tides for kids")."""
    from lessonforge.agent.config import Settings
    from lessonforge.agent.request import make_request

    mode = _mode(quiet, as_json)
    understood = reader = None
    flags = {"minutes": minutes, "audience": audience, "language": language, "aspect": aspect, "voice": voice}
    try:  # the arguments are checked before the agent (torch, langgraph...) is imported: a mistake shows at once
        script, recorded = _load_script(script_file) if script_file is not None else (None, {})
        # what a script file records of its request fills what the flags leave open
        flags = {k: v if v is not None else recorded.get(k) for k, v in flags.items()}
        flags["voice"] = flags["voice"] or None
        seed = seed if seed is not None else recorded.get("seed", 0)
        theme = theme or recorded.get("theme", "light")
        as_topic = script is not None and not topic  # the script's own topic, taken as it is
        if as_topic and script is not None:
            topic = recorded.get("topic", "") or script.title
        if builds not in ("on", "off"):
            raise ConfigError(f"--builds must be on or off, got {builds!r}")
        if not topic.strip() and not _interactive():
            make_request(topic=topic)  # no one to ask: "the topic is empty"
        make_request(topic=topic if as_topic else "(the prompt)", seed=seed, theme=theme, **flags)  # the flags
        _check_theme(theme)
        settings = Settings.load(llm=llm, images=images, speech=speech, critic=critic, max_attempts=max_attempts,
                                 device=device, lexicon=str(lexicon.resolve()) if lexicon else None,
                                 burn_subtitles=burn_subtitles or None, motion=motion or None,
                                 builds=False if builds == "off" else None, clips=clips, clip_budget=clip_budget,
                                 clip_price=clip_price, image_quality=image_quality)
        from lessonforge.agent import run

        if script_file is not None and not out:
            out = run.default_out(topic)
        if as_topic:
            request = run.make_request(topic=topic, seed=seed, theme=theme, **flags)
        else:
            understood, reader = _understand(topic, flags, settings, parse, mode, review)
            request = understood.request.model_copy(update={"seed": seed, "theme": theme})
            understood = understood.model_copy(update={"request": request})
    except ConfigError as err:
        _fail(err, 2)
    target = out or run.default_out(request.topic)
    if review and mode == "live":  # questions and a live panel do not mix
        mode = "plain"
    backends = {"llm": reader} if reader is not None else {}
    with Progress(mode, request.topic) as progress:
        manifest = _run(run.make(request, settings, target, script=script, on_event=progress,
                                 on_review=_review_prompt if review else None, understood=understood, **backends),
                        target)
    if mode == "json":
        out_console.file.write(json.dumps({"stage": "result", "out": str(target), "status": manifest.status}) + "\n")
    else:
        _summary(manifest, target, progress.shown)


def _interactive() -> bool:
    """Questions can be asked (a person at a terminal)."""
    return sys.stdin.isatty()


def _understand(prompt: str, flags: dict[str, Any], settings: Any, parse: str, mode: str,
                review: bool) -> tuple[Any, Any]:
    """Read the prompt (asking for a missing topic when someone can answer), show what was understood and,
    with --review, take corrections. Returns the understanding and an LLM to reuse (or None)."""
    from lessonforge.agent import from_prompt
    from lessonforge.agent import understand as u

    ask = _interactive() and mode != "json"

    def missing(err: Any) -> str:
        if not ask:
            raise err
        console.print(f"[yellow]{escape(str(err))}[/]", highlight=False, soft_wrap=True)
        return console.input("[bold]What should the lesson teach?[/] ").strip()

    try:
        understood, reader = asyncio.run(from_prompt.understand_with(settings, prompt, flags, mode=parse,
                                                           on_missing=missing))
    except ConfigError:
        raise
    except LessonForgeError as err:
        _fail(err, 1)
    _show_understood(understood, mode)
    if review and ask:
        for _ in range(5):
            answer = console.input("[bold]Is that right?[/] [Y/n, or a correction: 'topic: tides', "
                                   "'in Spanish, 3 minutes'] ").strip()
            if answer.lower() in ("", "y", "yes", "ok"):
                break
            if answer.lower() in ("n", "no"):
                answer = console.input("[bold]What should change?[/] ").strip()
            try:
                understood = u.correct(understood, answer)
            except ConfigError as err:
                console.print(f"[yellow]{escape(str(err))}[/]", highlight=False, soft_wrap=True)
                continue
            _show_understood(understood, mode)
    return understood, reader


def _show_understood(understood: Any, mode: str) -> None:
    from lessonforge.agent.understand import understood_event

    if mode == "json":
        event = {**understood_event(understood), "elapsed": 0.0}  # before any work
        out_console.file.write(json.dumps(event, ensure_ascii=False) + "\n")
        out_console.file.flush()
        return
    via = " [dim](read by the LLM)[/]" if understood.via == "llm" else ""
    console.print(f"[bold]Understood:[/] {escape(understood.summary())}{via}", highlight=False, soft_wrap=True)
    for conflict in understood.conflicts:
        console.print(f"[yellow]flag wins:[/] {escape(conflict)}", highlight=False, soft_wrap=True)
    for note in understood.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if understood.unsure and understood.via == "offline" and mode != "quiet":
        console.print(f"[dim]note: {escape('; '.join(understood.unsure))}; check the reading above (--review "
                      "corrects it; an LLM server reads such prompts too)[/]", highlight=False, soft_wrap=True)


@app.command()
def render(
    folder: Path = typer.Argument(..., help="A lesson folder (with lesson.json)."),
    images: str | None = typer.Option(None, help="Override the image backend."),
    speech: str | None = typer.Option(None, help="Override the speech backend."),
    critic: str | None = typer.Option(None, help="Override the critic backend."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Rebuild a lesson's video from its lesson.json, with no LLM call (after hand edits, say)."""
    from lessonforge.agent import run

    try:
        settings = _settings_for(folder, images=images, speech=speech, critic=critic)
    except ConfigError as err:
        _fail(err, 2)
    mode = _mode(quiet, as_json)
    with Progress(mode, f"render {folder}") as progress:
        manifest = _run(run.render(folder, settings, on_event=progress), folder)
    if mode != "json":
        _summary(manifest, folder, progress.shown)


@app.command()
def batch(
    topics_file: str = typer.Argument(..., metavar="TOPICS",
                                      help="A YAML list of topics (an eval topic set works too)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run folder (default: batch-runs/<topic set>)."),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Lessons made at the same time."),
    executor: str = typer.Option("local", help="Where lessons are made: local, ray (a local Ray) or ray:ADDRESS."),
    retries: int = typer.Option(3, min=0, help="With --executor ray: tries again for a lesson whose worker was lost."),
    checkpoint_dsn: str | None = typer.Option(
        None, help="Postgres DSN for the lessons' finished steps (a cluster); default: SQLite in each lesson."),
    minutes: float | None = typer.Option(None, "--minutes", "-m", help="Target length of a topic that sets none (2)."),
    audience: str | None = typer.Option(None, help="Audience of a topic that sets none."),
    language: str | None = typer.Option(None, help="Language of a topic that sets none (en)."),
    aspect: str | None = typer.Option(None, help="16:9, 9:16 or 1:1."),
    seed: int | None = typer.Option(None, help="Base seed for pictures."),
    theme: str | None = typer.Option(None, help="Slide theme."),
    voice: str | None = typer.Option(None, help="Voice name."),
    llm: str | None = typer.Option(None, help=f"LLM backend, e.g. {DEFAULT_LLM} (env LESSONFORGE_LLM)."),
    images: str | None = typer.Option(None, help=f"Image backend, e.g. {DEFAULT_IMAGES}, or none."),
    speech: str | None = typer.Option(None, help="Speech backend, e.g. edge: or espeak:en-us."),
    critic: str | None = typer.Option(None, help=f"Critic backend, e.g. {DEFAULT_CRITIC}, or none."),
    max_attempts: int | None = typer.Option(None, help="Picture attempts per scene (default 3)."),
    device: str | None = typer.Option(None, help="Torch device for local models (default: cuda if present)."),
    lexicon: Path | None = typer.Option(None, help="Pronunciation lexicon, speech only."),
    burn_subtitles: bool = typer.Option(False, "--burn-subtitles", help="Draw captions into the videos too."),
    motion: bool = typer.Option(False, "--motion", help="Gentle pan/zoom on pictures and fades (slower)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only failures and the summary."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print every lesson's progress events."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON event per line."),
) -> None:
    """Make one lesson per topic of TOPICS (resumable: run the same command again to go on)."""
    from lessonforge.agent.batch import load_requests, run_batch
    from lessonforge.agent.config import Settings
    from lessonforge.agent.executor import create as create_executor
    from lessonforge.evals.cli import EvalProgress

    defaults = {"minutes": minutes, "audience": audience, "language": language, "aspect": aspect, "seed": seed,
                "theme": theme, "voice": voice}
    try:
        settings = Settings.load(llm=llm, images=images, speech=speech, critic=critic, max_attempts=max_attempts,
                                 device=device, lexicon=str(lexicon.resolve()) if lexicon else None,
                                 burn_subtitles=burn_subtitles or None, motion=motion or None)
        if theme:
            _check_theme(theme)
        _, topic_set, _ = load_requests(topics_file, defaults)
        runner = create_executor(executor, retries=retries)
    except ConfigError as err:
        _fail(err, 2)
    target = out or Path("batch-runs") / topic_set.name
    progress = EvalProgress("json" if as_json else "quiet" if quiet else "verbose" if verbose else "plain", "batch")
    report = _run(run_batch(topics_file, target, defaults=defaults, settings=settings, jobs=jobs, executor=runner,
                            checkpoint=checkpoint_dsn or True, on_event=progress), target)
    if as_json:
        out_console.file.write(json.dumps({"stage": "result", "out": str(target), "done": report.done,
                                           "failed": report.failed}) + "\n")
    else:
        for r in report.lessons:
            if r.status == "failed":
                console.print(
                    f"[red]failed[/] {escape(r.slug)}: {escape(scrub(r.error))}", highlight=False, soft_wrap=True
                )
        console.print(
            f"{report.done} of {len(report.lessons)} lessons done ({len(report.resumed)} from an earlier "
            f"run) in {report.seconds:.0f} s; {escape(str(target / 'batch.json'))}",
            highlight=False,
            soft_wrap=True,
        )
    if report.failed:
        raise typer.Exit(1)


def _settings_for(folder: Path, **overrides: Any) -> Any:
    from lessonforge.agent.service import settings_for

    return settings_for(folder, **overrides)


@app.command()
def edit(
    folder: Path = typer.Argument(..., help="A lesson folder."),
    instruction: str = typer.Argument(..., help='What to change, e.g. "make scene 3 simpler".'),
    llm: str | None = typer.Option(None, help="LLM backend for understanding the request."),
    speech: str | None = typer.Option(None, help="Override the speech backend."),
    images: str | None = typer.Option(None, help="Override the image backend."),
    critic: str | None = typer.Option(None, help="Override the critic backend."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One refinement turn: change the lesson as asked and re-render only what changed."""
    from lessonforge.agent import edit as editing

    try:
        settings = _settings_for(folder, llm=llm, speech=speech, images=images, critic=critic)
    except ConfigError as err:
        _fail(err, 2)
    mode = _mode(quiet, as_json)
    with Progress(mode, f"edit {folder}") as progress:
        result = _run(editing.edit(folder, instruction, settings, on_event=progress), folder)
    if mode == "json":
        out_console.file.write(json.dumps({"stage": "result", "action": result.action, "reply": result.reply,
                                           "changed": result.changed, "version": result.version}) + "\n")
    elif result.action != "refused":
        out_console.print(result.reply, highlight=False, markup=False, soft_wrap=True)
    if result.action == "refused":  # nothing was changed: say so on stderr and in the exit status
        if mode != "json":
            _fail(ConfigError(result.reply), 2)
        raise typer.Exit(2)


@app.command()
def history(folder: Path = typer.Argument(..., help="A lesson folder.")) -> None:
    """List the lesson's versions (* marks the current one)."""
    from lessonforge.agent.chat import history_lines
    from lessonforge.agent.project import Project

    project = Project(folder)
    if not project.exists():
        _fail(ConfigError(f"no lesson in {folder}; make one with lessonforge make TOPIC --out {folder}"), 2)
    out_console.print(history_lines(project), highlight=False, markup=False, soft_wrap=True)


@app.command()
def undo(
    folder: Path = typer.Argument(..., help="A lesson folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Go back to the previous version; lesson.mp4 is rebuilt from the cache."""
    from lessonforge.agent import edit as editing
    from lessonforge.agent.project import Project

    with Progress(_mode(quiet, False), f"undo {folder}") as progress:
        manifest = _run(editing.undo(folder, on_event=progress), folder)
    out_console.print(f"Back to version {Project(folder).current_version()}: {folder / 'lesson.mp4'} "
                      f"({manifest.video.duration:.0f} s)", highlight=False, soft_wrap=True)


@app.command()
def chat(
    folder: Path | None = typer.Argument(None, help="A lesson folder, or a prompt that starts a new lesson "
                                            "(omit to be asked)."),
    llm: str | None = typer.Option(None, help="LLM backend."),
    speech: str | None = typer.Option(None, help="Speech backend."),
    images: str | None = typer.Option(None, help="Image backend."),
    critic: str | None = typer.Option(None, help="Critic backend."),
    minutes: float | None = typer.Option(None, "--minutes", "-m", help="Length of a new lesson (default 2)."),
    review: bool = typer.Option(False, "--review", help="Pause after the outline of a new lesson for approval."),
) -> None:
    """Refine a lesson in conversation; the conversation is kept with the project."""
    from lessonforge.agent import chat as chatting
    from lessonforge.agent import run
    from lessonforge.agent.config import Settings

    first = ""
    if folder is not None and not folder.exists() and " " in str(folder):  # lessonforge chat "a video on tides"
        first, folder = str(folder), None
    if folder is None or not (folder / "lesson.json").exists():
        if not first:
            first = console.input("[bold]What lesson shall we make?[/] (a topic, or e.g. \"a 3-minute video on "
                                  "tides for kids\") ").strip()
        try:
            settings = Settings.load(llm=llm, images=images, speech=speech, critic=critic)
            understood, reader = _understand(first, {"minutes": minutes}, settings, "auto", "plain", review)
        except ConfigError as err:
            _fail(err, 2)
        request = understood.request
        folder = folder or run.default_out(request.topic)
        with Progress("plain" if review else _mode(False, False), request.topic) as progress:
            _run(run.make(request, settings, folder, on_event=progress, understood=understood,
                          on_review=_review_prompt if review else None,
                          **({"llm": reader} if reader is not None else {})), folder)
    try:
        settings = _settings_for(folder, llm=llm, speech=speech, images=images, critic=critic)
    except ConfigError as err:
        _fail(err, 2)

    async def loop() -> None:
        async with chatting.session(folder) as graph:
            past = await chatting.conversation(graph, folder)
            if past:
                console.print(f"[dim]{len(past) // 2} earlier turn(s) in this conversation; the last:[/]")
                for m in past[-2:]:
                    console.print(f"[dim]{m['role']}: {escape(scrub(m['content']))}[/]", highlight=False)
            console.print(f"[dim]{chatting.HELP}[/]")
            while True:
                try:
                    message = console.input("[bold cyan]you>[/] ").strip()
                except EOFError:
                    break
                if message in ("/quit", "/exit", "/q"):
                    break
                if not message:
                    continue
                with Progress("quiet", str(folder)) as progress:
                    try:
                        reply = await chatting.turn(graph, folder, message, settings, on_event=progress)
                    except ConfigError as err:
                        reply = f"error: {err}"
                    except LessonForgeError as err:
                        reply = f"error: {err} (finished work is kept; try again)"
                out_console.print(f"[bold green]lessonforge>[/] {escape(scrub(reply))}", highlight=False)

    _run(loop(), folder)


@app.command()
def ui(
    folder: Path = typer.Argument(Path("."), help="The folder of your lessons (made lessons go in subfolders)."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port (default: the first free from 7860)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; any but this machine's asks for a token."),
    token: str | None = typer.Option(None, envvar="LESSONFORGE_UI_TOKEN",
                                        help="Token the page asks for off this machine (default: a new one)."),
    llm: str | None = typer.Option(None, help="LLM backend."),
    speech: str | None = typer.Option(None, help="Speech backend."),
    images: str | None = typer.Option(None, help="Image backend."),
    critic: str | None = typer.Option(None, help="Critic backend."),
) -> None:
    """A web page for making lessons and refining them in conversation (needs Gradio: the ui extra)."""
    from lessonforge.agent import ui as page

    try:
        workspace = page.check_workspace(folder)
        token = page.check_host(host, token)
        options = page.Options(
            workspace,
            {k: v for k, v in {"llm": llm, "speech": speech, "images": images, "critic": critic}.items() if v},
        )
        demo = page.launch(options, host=host, port=port, token=token, block=False)
    except ConfigError as err:
        _fail(err, 2)
    except OSError as err:
        _fail(RuntimeError(f"cannot serve on {host}:{port or 7860} ({err.strerror or err}); choose another --port"), 2)
    console.print(
        f"LessonForge is serving {escape(str(workspace))} at [bold]{demo.local_url}[/]", highlight=False, soft_wrap=True
    )
    if token:
        console.print(
            f"Sign in with any name and the token [bold]{escape(token)}[/] as the password.",
            highlight=False,
            soft_wrap=True,
        )
    console.print("[dim]Ctrl+C stops it.[/]")
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass


@app.command()
def export(
    folder: Path = typer.Argument(..., help="A lesson folder."),
    to: list[str] | None = typer.Option(
        None, "--to", "-t", help="pptx, scorm, html or md; repeat or comma-separate for several (default: all)."),
) -> None:
    """Write the lesson as a PowerPoint deck, a SCORM 1.2 package, a web page or Markdown, under DIR/export/."""
    from lessonforge.agent import export as exporting

    try:
        formats = exporting.parse_formats(to)
        written = exporting.export(folder, formats)
    except LessonForgeError as err:
        _fail(err, 2)
    table = Table(show_header=False, box=None)
    table.add_column()
    table.add_column(overflow="fold")
    for fmt, path in written.items():
        table.add_row(fmt, escape(str(path)))
    out_console.print(table)


@app.command("import")
def import_deck(
    folder: Path = typer.Argument(..., help="A lesson folder."),
    deck: Path = typer.Argument(..., help="A deck made by lessonforge export (edited in PowerPoint, Keynote, "
                                          "LibreOffice)."),
    speech: str | None = typer.Option(None, help="Override the speech backend."),
    images: str | None = typer.Option(None, help="Override the image backend."),
    critic: str | None = typer.Option(None, help="Override the critic backend."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Read an edited deck's titles, bullets and notes back: a new version, only changed scenes re-rendered."""
    from lessonforge.agent.export.deck_import import import_deck as importing

    try:
        settings = _settings_for(folder, speech=speech, images=images, critic=critic)
    except ConfigError as err:
        _fail(err, 2)
    with Progress(_mode(quiet, False), f"import {deck}") as progress:
        result = _run(importing(folder, deck, settings, on_event=progress), folder)
    out_console.print(result.reply, highlight=False, markup=False)


def _review_prompt(outline: dict[str, Any]) -> dict[str, Any]:
    """Show the planned outline; approve it, or give notes for a new plan."""
    console.print(f"[bold]Outline:[/] {escape(str(outline.get('title', '')))}")
    for obj in outline.get("objectives", []):
        console.print(f"  objective: {obj}", highlight=False, markup=False)
    for i, sec in enumerate(outline.get("sections", []), 1):
        console.print(f"  {i}. {sec.get('title', '')} ({sec.get('seconds', 0):.0f} s)", highlight=False, markup=False)
    answer = console.input("[bold]Approve? [Y/n, or type notes for a new outline][/] ").strip()
    if answer.lower() in ("", "y", "yes", "ok"):
        return {"approve": True}
    if answer.lower() in ("n", "no"):
        answer = console.input("[bold]What should change?[/] ").strip()
    return {"approve": False, "feedback": answer}


@app.command()
def voices(
    language: str | None = typer.Option(None, "--language", "-l", help="Only voices for this language (fr, en-GB...)."),
    speech: str | None = typer.Option(None, help="Speech backend (default: edge, espeak-ng when offline)."),
) -> None:
    """List the voices you can pass to --voice."""
    from lessonforge.agent.prepare import voices

    try:
        found, note = asyncio.run(voices(language, speech))
    except LessonForgeError as err:
        _fail(err, 2)
    if note:
        _say(f"[yellow]note:[/] {escape(scrub(note))}")
    genders = any(v.gender for v in found)  # a column only where the backend says (eSpeak NG does not)
    table = Table("voice", "language", *(["gender"] if genders else []), box=None)
    for v in found:
        table.add_row(v.name, v.language, *([v.gender] if genders else []))
    out_console.print(table)
    if not found:
        console.print(
            f"no voices for language {language!r}; try a shorter code such as 'en' or 'fr'",
            markup=False,
            soft_wrap=True,
        )


@app.command()
def doctor(
    llm: str | None = typer.Option(None, help="Check this LLM backend instead of the configured one."),
    speech: str | None = typer.Option(None, help="Check this speech backend instead of the configured one."),
    images: str | None = typer.Option(None, help="Check this image backend instead of the configured one."),
    critic: str | None = typer.Option(None, help="Check this critic backend instead of the configured one."),
) -> None:
    """Check this machine: ffmpeg, eSpeak NG, fonts, GPU and memory, model cache, keys, services; each
    problem with its fix. Exits 1 when something needed is missing."""
    from lessonforge.agent import doctor as checks
    from lessonforge.agent.config import Settings

    try:
        settings = Settings.load(llm=llm, speech=speech, images=images, critic=critic)
    except ConfigError as err:
        _fail(err, 2)
    findings = checks.diagnose(settings)
    for f in findings:
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}[f.status]
        fix = f" -> fix: {f.fix}" if f.fix and f.status != "ok" else ""
        out_console.print(f"[{colour}]{f.status:<4}[/] {escape(f.area)}: {escape(scrub(f.found + fix))}",
                          highlight=False, soft_wrap=True)
    failed = sum(f.status == "fail" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    _say(f"{len(findings)} checks: {failed} failed, {warned} warnings")
    if failed:
        raise typer.Exit(1)


models_app = typer.Typer(help="The local models the defaults use: sizes, what is cached, downloading ahead.",
                         invoke_without_command=True)
app.add_typer(models_app, name="models")


@models_app.callback()
def models_list(ctx: typer.Context) -> None:
    """List each default model, its download size and whether it is already cached."""
    if ctx.invoked_subcommand is not None:
        return
    from lessonforge.tools import hub as models

    table = Table(box=None)
    table.add_column("model", no_wrap=True)  # ids are copied from here: never cut or folded
    table.add_column("used for", ratio=1, overflow="fold")
    table.add_column("size", no_wrap=True)
    table.add_column("cached", ratio=1, overflow="fold")
    for rec in models.model_records():
        missing = ", ".join(name.rsplit("/", 1)[-1] for name in rec.missing)
        table.add_row(escape(rec.id), escape(rec.info.purpose), rec.info.size_text,
                      "yes" if rec.cached else escape(f"no (missing {missing})"))
    out_console.print(table)
    offline = " (HF_HUB_OFFLINE is set: nothing will be downloaded)" if models.hf_offline() else ""
    console.print(f"cache: {models.hub_cache_dir()}{offline}; `lessonforge models pull` downloads them ahead of time",
                  markup=False, soft_wrap=True)


@models_app.command("pull")
def models_pull(ids: list[str] | None = typer.Argument(None, help="Model ids (default: all defaults).")) -> None:
    """Download models now, so the first lesson does not wait for them."""
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TransferSpeedColumn
    from rich.progress import Progress as Bars

    from lessonforge.tools import hub as models

    try:
        infos = [models.hub_model(i) for i in ids] if ids else list(models.MODELS)
        plan = models.plan_downloads(infos)
    except ConfigError as err:
        _fail(err, 2)
    if plan:
        console.print("Downloading " + ", ".join(f"{d.info.id} ({d.size_text})" for d in plan)
                      + f" into {models.hub_cache_dir()}", highlight=False, soft_wrap=True, markup=False)
    bars = Bars(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                console=console, disable=not console.is_terminal)
    tasks: dict[str, Any] = {}
    lines = Every(Progress.LINE_EVERY_S)

    def progress(model_id: str, done: float, total: float, unit: str) -> None:
        if console.is_terminal and unit == "bytes":
            if model_id not in tasks:
                tasks[model_id] = bars.add_task(model_id, total=total or None)
            bars.update(tasks[model_id], completed=done, total=total or None)
            return
        if lines.due(model_id, time.monotonic(), done >= total):
            console.print(f"{model_id}: {models.progress_text(done, total, unit)}", highlight=False, soft_wrap=True,
                          markup=False)

    try:
        with bars:
            paths = models.pull(infos, progress=progress)
    except ConfigError as err:
        _fail(err, 2)
    for p in paths:
        out_console.print(str(p), highlight=False, soft_wrap=True, markup=False)


def _check_theme(theme: str) -> None:
    if theme not in THEMES:
        raise ConfigError(f"unknown theme {theme!r}; choose one of {', '.join(sorted(THEMES))}")


def _load_script(path: Path) -> tuple[Any, dict[str, Any]]:
    """A script from a lesson.json, a ``{"request": ..., "script": ...}`` file or a bare Script JSON, and
    what the file records of the request (``{}`` for a bare Script)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--from {path}: no such file") from None
    except ValueError as err:
        raise ConfigError(f"--from {path} is not valid JSON ({err})") from None
    from pydantic import ValidationError

    from lessonforge.agent.config import describe_validation
    from lessonforge.agent.schemas import Script  # (imports the drawing code: only once there is a file to check)

    request = data.get("request") if isinstance(data, dict) else None
    request = request if isinstance(request, dict) else {}
    body = data.get("script", data) if isinstance(data, dict) else data
    try:
        return Script.model_validate(body), request
    except ValidationError as err:
        raise ConfigError(f"--from {path} is not a lesson script: {describe_validation(err)}") from None


def _mount_eval() -> None:
    from lessonforge.evals.cli import app as eval_app
    from lessonforge.evals.cli import shipped_sets

    app.add_typer(eval_app, name="eval",
                  short_help=f"Make and score lessons over a topic set (shipped: {shipped_sets()}); compare runs.")


_mount_eval()


def route(args: list[str]) -> list[str]:
    """`lessonforge PROMPT ...` is `lessonforge make PROMPT ...` (a first word that is no command, or an
    option of make's: `lessonforge --minutes 3 "tides"`)."""
    if not args or args[0] in ("--help", "-h", "--version"):
        return args
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    return args if args[0] in commands else ["make", *args]


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.argv[1:] = route(sys.argv[1:])
    try:
        app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]", soft_wrap=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
