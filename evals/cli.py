"""`lessonforge eval`: run a topic set and score it, or compare two runs. This module prints (rich).

    lessonforge eval TOPICS.yaml [--out DIR] [--jobs N] [--llm ...] [--images ...] [--speech ...] [--critic ...]
    lessonforge eval smoke                      # a topic set shipped in evals/datasets/
    lessonforge eval compare RUN_A RUN_B        # deltas of B against baseline A, regressions flagged

Mounted on the main app with ``app.add_typer(eval_app, name="eval")``. `run` is the default
command: ``lessonforge eval TOPICS.yaml`` means ``lessonforge eval run TOPICS.yaml``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from lessonforge.agent.config import DEFAULT_CRITIC, DEFAULT_IMAGES, DEFAULT_LLM
from lessonforge.tools import extras
from lessonforge.tools.base import ConfigError, LessonForgeError
from lessonforge.tools.secrets import scrub_environment

EXECUTOR_HELP = ("Where lessons are made: local (this machine), ray (a local Ray) or ray:ADDRESS (a Ray cluster; "
                 "needs lessonforge[ray])")
# What the metrics import beyond the core install (the [eval] extra).
METRIC_PACKAGES = ("textstat", "nltk")
CHECKPOINT_HELP = ("Postgres DSN where lessons keep their finished steps (for a cluster); default: SQLite in each "
                   "lesson's folder")


class DefaultRunGroup(TyperGroup):
    """A group whose first argument, when it names no command, goes to the default command `run`."""

    default_command = "run"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def shipped_sets() -> str:
    """The topic sets shipped in evals/datasets with their sizes, e.g. "smoke (3 topics), core (33 topics)"."""
    found = []
    for path in sorted((Path(__file__).parent / "datasets").glob("*.yaml")):
        count = len(re.findall(r"^\s*- topic:", path.read_text("utf-8"), re.MULTILINE))
        found.append(f"{path.stem} ({count} topics)")
    return ", ".join(found)


app = typer.Typer(
    cls=DefaultRunGroup,
    add_completion=False,
    no_args_is_help=True,
    help=(
        "Make and score a lesson per topic of a topic set (`lessonforge eval TOPICS` runs the `run` "
        f"command), or compare two eval runs. TOPICS is a topic-set YAML file or a shipped set: {shipped_sets()}; "
        "e.g. `lessonforge eval smoke --out eval-runs/a`."
    ),
)
console = Console(stderr=True)
out_console = Console()


def scrub(text: str) -> str:
    """Remove secrets from anything shown to the user."""
    return scrub_environment(text)


def _fail(err: BaseException, code: int) -> None:
    console.print(f"[bold red]error:[/] {scrub(str(err))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class EvalProgress:
    """One line per topic as it starts and ends (or JSON lines); lesson events only in --verbose.

    ``stage`` is the stage of the run's own events ("eval"; "batch" for `lessonforge batch`)."""

    def __init__(self, mode: str, stage: str = "eval") -> None:
        self.mode = mode
        self.stage = stage
        self.start = time.monotonic()

    def __call__(self, event: dict[str, Any]) -> None:
        event = {k: (scrub(v) if isinstance(v, str) else v) for k, v in event.items()}
        elapsed = time.monotonic() - self.start
        if self.mode == "json":
            out_console.file.write(
                json.dumps({**event, "elapsed": round(elapsed, 2)}, ensure_ascii=False, default=str) + "\n"
            )
            out_console.file.flush()
            return
        if event.get("stage") != self.stage:
            if self.mode == "verbose" or (event.get("level") == "warning" and self.mode != "quiet"):
                scene = f" scene {event['scene']}" if event.get("scene") else ""
                console.print(f"[dim]{elapsed:7.1f}s {event.get('topic', '')} {event.get('stage', '')}{scene}: "
                              f"{event.get('message', '')}[/]", highlight=False, soft_wrap=True)
            return
        status = event.get("status", "")
        where = f"[{event['index']}/{event['total']}] " if event.get("index") else ""
        topic = event.get("topic", "")
        if status == "failed":
            console.print(f"{elapsed:7.1f}s {where}[bold red]failed[/] {topic}: {event.get('message', '')}",
                          highlight=False, soft_wrap=True)
        elif self.mode == "quiet":
            return
        elif status == "done":
            m = event.get("metrics", {})
            bits = [f"{label} {m[key]:{fmt}}" for key, label, fmt in (
                ("delivery.duration_abs_error", "length off", ".0%"), ("content.concept_coverage", "concepts", ".0%"),
                ("content.quiz_score", "quiz", ".0%"), ("content.rubric_mean", "rubric", ".2f"),
            ) if key in m]
            console.print(f"{elapsed:7.1f}s {where}[green]done[/] {topic} in {event.get('seconds', 0):.1f} s"
                          + (f" ({', '.join(bits)})" if bits else ""), highlight=False, soft_wrap=True)
        elif status in ("start", "skipped", "report"):
            label = {"start": "start", "skipped": "[cyan]resumed[/]", "report": "report"}[status]
            console.print(f"{elapsed:7.1f}s {where}{label} {topic} {event.get('message', '')}", highlight=False,
                          soft_wrap=True)


def _mode(quiet: bool, verbose: bool, as_json: bool) -> str:
    return "json" if as_json else "quiet" if quiet else "verbose" if verbose else "plain"


def _summary(report: Any, out: Path) -> None:
    from lessonforge.evals.metrics import METRIC_BY_KEY
    from lessonforge.evals.report import fmt

    s = report.summary
    table = Table(title=f"{report.run.dataset}: {s.done}/{s.topics} lessons done", title_justify="left")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    table.add_column("n", justify="right")
    for row in s.metrics:
        if row.n == 0:
            continue
        m = METRIC_BY_KEY.get(row.key)
        arrow = {"higher": " ↑", "lower": " ↓"}.get(row.better, "")
        table.add_row(row.label + arrow, fmt(m, row.mean), fmt(m, row.min), fmt(m, row.max), str(row.n))
    console.print(table)
    for r in report.lessons:
        if r.status == "failed":
            console.print(f"[red]failed[/] {r.slug}: {scrub(r.error)}", highlight=False, soft_wrap=True)
    unmeasured: dict[str, list[str]] = {}
    for r in report.lessons:
        for err in r.metrics.errors if r.metrics else []:
            unmeasured.setdefault(err, []).append(r.slug.split("-", 1)[0])
    for err, where in unmeasured.items():
        console.print(
            f"[yellow]not measured[/] (lessons {', '.join(where)}): {scrub(err)}", highlight=False, soft_wrap=True
        )
    price = f", about ${s.price_usd:.4f}" if s.price_usd is not None else ""
    console.print(f"tokens {s.total_tokens}{price}; reports: {out / 'report.json'}, {out / 'report.html'}",
                  highlight=False, soft_wrap=True)


@app.command("run")
def run_cmd(
    topics_file: str = typer.Argument(..., metavar="TOPICS",
                                      help="A topic-set YAML file, or a shipped set: smoke, core."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run folder (default: eval-runs/<topic set>)."),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Lessons made at the same time."),
    llm: str | None = typer.Option(None, help=f"LLM backend, e.g. {DEFAULT_LLM} (env LESSONFORGE_LLM)."),
    images: str | None = typer.Option(None, help=f"Image backend, e.g. {DEFAULT_IMAGES}, or none."),
    speech: str | None = typer.Option(None, help="Speech backend, e.g. edge: or espeak:en-us."),
    critic: str | None = typer.Option(None, help=f"Critic backend, e.g. {DEFAULT_CRITIC}, or none."),
    judge: str | None = typer.Option(None, help="Judge LLM for the rubric and quiz (default: the --llm one)."),
    no_judge: bool = typer.Option(False, "--no-judge", help="Skip the LLM-judged metrics (rubric, quiz)."),
    quiz_questions: int = typer.Option(5, min=1, max=20, help="Quiz questions per lesson."),
    max_attempts: int | None = typer.Option(None, help="Picture attempts per scene (default 3)."),
    device: str | None = typer.Option(None, help="Torch device for local models (default: cuda if present)."),
    executor: str = typer.Option("local", help=EXECUTOR_HELP),
    retries: int = typer.Option(3, min=0, help="With --executor ray: tries again for a lesson whose worker was lost."),
    checkpoint_dsn: str | None = typer.Option(None, help=CHECKPOINT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only failures and the summary."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print every lesson's progress events."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON event per line."),
) -> None:
    """Make a lesson per topic of TOPICS, score each, and write report.json and report.html."""
    from lessonforge.agent import topics
    from lessonforge.agent.config import Settings
    from lessonforge.agent.executor import create as create_executor
    from lessonforge.evals.runner import run_eval

    try:
        extras.require("lessonforge eval (its readability and overlap metrics)", METRIC_PACKAGES, extras.EVAL)
        dataset_file = topics.resolve(topics_file)
        dataset = topics.load(dataset_file)
        settings = Settings.load(llm=llm, images=images, speech=speech, critic=critic, max_attempts=max_attempts,
                                 device=device)
        if judge:
            Settings.load(llm=judge)  # the same check of the backend name as --llm gets
        runner = create_executor(executor, retries=retries)
    except ConfigError as err:
        _fail(err, 2)
    target = out or Path("eval-runs") / dataset.name
    mode = _mode(quiet, verbose, as_json)
    progress = EvalProgress(mode)
    try:
        report = asyncio.run(run_eval(
            dataset_file, target, jobs=jobs, settings=settings, judge_llm=judge, judge=not no_judge,
            quiz_questions=quiz_questions, on_event=progress, executor=runner, checkpoint=checkpoint_dsn or True,
        ))
    except ConfigError as err:
        _fail(err, 2)
    except LessonForgeError as err:
        _fail(err, 1)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: finished topics are kept in {target}; run the same command to resume",
                      soft_wrap=True)
        raise typer.Exit(130) from None
    if mode == "json":
        out_console.file.write(json.dumps({"stage": "result", "out": str(target), "done": report.summary.done,
                                           "failed": report.summary.failed}) + "\n")
    else:
        _summary(report, target)
    if report.summary.done == 0:
        raise typer.Exit(1)


@app.command("compare")
def compare_cmd(
    run_a: Path = typer.Argument(..., metavar="RUN_A", help="Baseline run folder (or its report.json)."),
    run_b: Path = typer.Argument(..., metavar="RUN_B", help="Run folder to compare against the baseline."),
    all_metrics: bool = typer.Option(False, "--all", help="Also list every lesson's deltas."),
    fail_on_regression: bool = typer.Option(False, "--fail-on-regression",
                                            help="Exit with status 1 when anything regressed."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Show B's metrics against baseline A, with regressions (worse by more than a tolerance) flagged."""
    from lessonforge.evals.metrics import METRIC_BY_KEY
    from lessonforge.evals.report import SUCCESS, compare, fmt

    try:
        cmp = compare(run_a, run_b)
    except ConfigError as err:
        _fail(err, 2)
    if as_json:
        out_console.file.write(cmp.model_dump_json(indent=2) + "\n")
    else:
        table = Table(title=f"{run_b} against {run_a} ({cmp.paired} lessons done in both)", title_justify="left")
        for col, just in (("metric", "left"), ("A", "right"), ("B", "right"), ("delta", "right"), ("", "left")):
            table.add_column(col, justify=just)  # type: ignore[arg-type]
        for d in [cmp.success_rate, *cmp.metrics]:
            if d.a is None and d.b is None:
                continue
            m = METRIC_BY_KEY.get(d.key, SUCCESS)
            flag = "[bold red]regressed[/]" if d.regression else "[green]improved[/]" if d.improvement else ""
            change = "–" if d.delta is None else ("+" if d.delta > 0 else "") + fmt(m, d.delta)
            arrow = {"higher": " ↑", "lower": " ↓"}.get(d.better, "")
            table.add_row(d.label + arrow, fmt(m, d.a), fmt(m, d.b), change, flag)
        out_console.print(table)
        if all_metrics:
            for lc in cmp.lessons:
                changed = [d for d in lc.deltas if d.regression or d.improvement]
                if changed or lc.status_a != lc.status_b:
                    out_console.print(
                        f"{lc.slug_b} ({lc.status_a} -> {lc.status_b}): "
                        + ", ".join(
                            f"{d.label} {fmt(METRIC_BY_KEY[d.key], d.a)} -> {fmt(METRIC_BY_KEY[d.key], d.b)}"
                            for d in changed
                        ),
                        highlight=False,
                        soft_wrap=True,
                    )
        for name, only in (("A", cmp.only_in_a), ("B", cmp.only_in_b)):
            if only:
                out_console.print(f"only in {name}: {', '.join(only)}", highlight=False, soft_wrap=True)
        if cmp.regressions:
            out_console.print(f"[bold red]{len(cmp.regressions)} regression(s):[/]", soft_wrap=True)
            for line in cmp.regressions:
                out_console.print(f"  {line}", highlight=False, soft_wrap=True)
        else:
            out_console.print("[green]no regressions[/]", soft_wrap=True)
    if fail_on_regression and cmp.has_regressions:
        raise typer.Exit(1)
