"""`lessonforge batch`: one lesson per topic of a YAML file, on this machine or a Ray cluster.

    name: biology course
    topics:
      - photosynthesis                      # a bare topic takes the command's options
      - topic: the water cycle
        minutes: 3                          # any of make's lesson options, per topic
        audience: primary school
        language: fr

A topic set of `lessonforge eval` works as it is (its key concepts are not needed here). The
command's options (``--minutes``, ``--audience``, ...) are the defaults each topic may override.

    RUN/
      lessons/<slug>/        each lesson, as `lessonforge make` writes it
      results/<slug>.json    one BatchResult per topic, written atomically as it finishes
      batch.json             the summary: every result

Resumable like eval runs: a rerun skips topics done with the same request, settings and backends
(failed ones are tried again), and an unfinished lesson goes on from its last finished step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lessonforge.agent import topics
from lessonforge.agent.checkpoint import check_spec
from lessonforge.agent.config import Settings, describe_validation
from lessonforge.agent.executor import Executor, prepare
from lessonforge.agent.executor import create as create_executor
from lessonforge.agent.project import Project
from lessonforge.agent.request import LessonJob
from lessonforge.agent.state import LessonRequest
from lessonforge.tools.base import ConfigError, LessonForgeError
from lessonforge.tools.cache import atomic_write_json, content_key

EventSink = Callable[[dict[str, Any]], None]
RESULT_VERSION = 1


class BatchTopic(BaseModel):
    """One lesson of a batch: the topic and any lesson options that differ from the command's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(description="What the lesson teaches.")
    minutes: float | None = Field(None, description="Target length in minutes (default: the command's).")
    audience: str | None = Field(None, description="Who the lesson is for.")
    language: str | None = Field(None, description="BCP-47 code of the lesson's language.")
    aspect: str | None = Field(None, description="16:9, 9:16 or 1:1.")
    seed: int | None = Field(None, description="Base seed for pictures.")
    theme: str | None = Field(None, description="Slide theme.")
    voice: str | None = Field(None, description="Voice name.")
    key_concepts: tuple[str, ...] = Field((), description="Read from eval topic sets; not used by batch.")
    subject: str = Field("", description="Read from eval topic sets; not used by batch.")

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        return {"topic": value} if isinstance(value, str) else value

    def request(self, **defaults: Any) -> LessonRequest:
        """The lesson to make: the command's options, overridden by this topic's own."""
        own = self.model_dump(exclude={"key_concepts", "subject"}, exclude_none=True)
        return LessonRequest(**{**{k: v for k, v in defaults.items() if v is not None}, **own})


class BatchSet(topics.Dataset):
    topics: list[BatchTopic]


class BatchResult(BaseModel):
    slug: str
    index: int = Field(description="1-based position in the topic file")
    request: LessonRequest
    key: str = Field(description="hash of the request, settings and backends: a rerun with the same key skips it")
    status: Literal["done", "failed"]
    error: str = ""
    error_type: str = ""
    lesson_dir: str = Field(description="the lesson folder, relative to the run folder")
    title: str = ""
    duration: float | None = Field(None, description="seconds of video")
    seconds: float = 0.0
    finished: str = ""


class BatchReport(BaseModel):
    topics_file: str
    executor: str
    backends: dict[str, str]
    created: str
    seconds: float
    done: int
    failed: int
    resumed: list[str] = Field(default_factory=list, description="slugs finished by an earlier run and skipped")
    lessons: list[BatchResult]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TopicOutcome(Protocol):
    """What a batch and an eval run record of each topic alike (BatchResult, evals' TopicResult)."""

    key: str
    status: Literal["done", "failed"]
    error: str
    error_type: str
    seconds: float
    finished: str

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


R = TypeVar("R", bound=BaseModel)


def load_result(path: Path, model: type[R]) -> R | None:
    """A result an earlier run wrote, or None when the file is missing or unreadable (the topic is then redone)."""
    try:
        return model.model_validate_json(path.read_text("utf-8"))
    except (OSError, ValueError, ValidationError):
        return None


def done_before(path: Path, model: type[R], key: str) -> R | None:
    """The result at ``path`` when an earlier run finished that topic with the same key (request, settings,
    backends...), else None: failed topics and changed ones are made again."""
    old = load_result(path, model)
    if old is None or getattr(old, "status", None) != "done" or getattr(old, "key", None) != key:
        return None
    return old


def failed(result: TopicOutcome, err: BaseException) -> None:
    """Record on ``result`` why its topic failed; the run goes on with the others."""
    result.error = str(err) or repr(err)
    result.error_type = type(err).__name__


def finish(out: Path, slug: str, result: TopicOutcome, started: float, topic: str, base: dict[str, Any],
           emit: EventSink, **done: Any) -> None:
    """Time and stamp a topic's result, write it atomically to ``out``/results/``slug``.json (what a rerun
    resumes from), and report it: ``done`` is added to the event of a topic that is done."""
    result.seconds = round(time.perf_counter() - started, 3)
    result.finished = now_iso()
    atomic_write_json(out / "results" / f"{slug}.json", result.model_dump(mode="json"))
    if result.status == "done":
        emit({**base, "status": "done", **done, "seconds": result.seconds})
    else:
        emit({**base, "status": "failed", "level": "error", "message": f"{topic}: {result.error}",
              "error_type": result.error_type})


def load_requests(path: Path | str, defaults: dict[str, Any]) -> tuple[Path, BatchSet, list[LessonRequest]]:
    """The topic file and one validated request per topic; every problem is one ConfigError naming its entry."""
    file = topics.resolve(path)
    batch = topics.load(file, model=BatchSet)
    requests, problems = [], []
    for i, spec in enumerate(batch.topics, 1):
        try:
            requests.append(spec.request(**defaults))
        except ValidationError as err:
            problems.append(f"entry {i} ({spec.topic!r}): {describe_validation(err)}")
    if problems:
        raise ConfigError(f"{file}: " + "; ".join(problems) + "; fix the file or the command's options")
    return file, batch, requests


async def run_batch(
    topics_path: Path | str,
    out_dir: Path | str,
    *,
    defaults: dict[str, Any] | None = None,
    settings: Settings | None = None,
    jobs: int = 2,
    executor: Executor | str | None = None,
    checkpoint: bool | str | None = True,
    on_event: EventSink | None = None,
    **backends: Any,
) -> BatchReport:
    """Make a lesson per topic of ``topics_path`` into ``out_dir``/lessons; write batch.json.

    ``defaults`` are lesson options (minutes, audience, ...) a topic does not set itself;
    ``executor`` makes the lessons ("local", "ray", "ray:ADDRESS" or an Executor), ``jobs`` at once.
    Backends given as objects override the settings as in `lessonforge.agent.run.make`.
    """
    emit = on_event or (lambda e: None)
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    check_spec(checkpoint)
    file, batch, requests = load_requests(topics_path, defaults or {})
    settings = settings or Settings.load()
    runner = executor if executor is not None and not isinstance(executor, str) else create_executor(executor)
    out = Path(out_dir)
    project = Project(out)
    project.prepare()
    started = time.perf_counter()
    with project.lock():
        try:
            shared = await prepare(runner, settings, emit, **backends)
            try:
                results, resumed = await _run(out, batch, requests, settings, shared, runner, jobs, checkpoint, emit)
            finally:
                await shared.aclose()
        finally:
            await runner.close()
    report = BatchReport(
        topics_file=str(file), executor=runner.name, backends=shared.names, created=now_iso(),
        seconds=round(time.perf_counter() - started, 3), done=sum(r.status == "done" for r in results),
        failed=sum(r.status == "failed" for r in results), resumed=resumed, lessons=results,
    )
    atomic_write_json(out / "batch.json", report.model_dump(mode="json"))
    return report


async def _run(out: Path, batch: BatchSet, requests: list[LessonRequest], settings: Settings, shared: Any,
               executor: Executor, jobs: int, checkpoint: bool | str | None,
               emit: EventSink) -> tuple[list[BatchResult], list[str]]:
    fingerprint = [settings.model_dump(mode="json"), shared.names, RESULT_VERSION]
    slugs = batch.slugs()
    total = len(slugs)
    finished: dict[str, BatchResult] = {}
    resumed: list[str] = []
    gate = asyncio.Semaphore(jobs)

    async def one(i: int, slug: str, request: LessonRequest) -> None:
        key = content_key(request, fingerprint)
        old = done_before(out / "results" / f"{slug}.json", BatchResult, key)
        base = {"stage": "batch", "topic": slug, "index": i, "total": total}
        if old is not None and (out / old.lesson_dir / "lesson.json").exists():
            finished[slug] = old
            resumed.append(slug)
            emit({**base, "status": "skipped", "message": f"{request.topic}: done in an earlier run"})
            return
        async with gate:
            job = LessonJob(request, out / "lessons" / slug, shared.settings, checkpoint, slug)
            finished[slug] = await _one(out, i, slug, key, job, executor, shared.backends, base, emit)

    await asyncio.gather(*(one(i, slug, r) for i, (slug, r) in enumerate(zip(slugs, requests, strict=True), 1)))
    return [finished[s] for s in slugs], [s for s in slugs if s in resumed]


async def _one(out: Path, i: int, slug: str, key: str, job: LessonJob, executor: Executor, backends: dict[str, Any],
               base: dict[str, Any], emit: EventSink) -> BatchResult:
    emit({**base, "status": "start", "message": job.request.topic})
    result = BatchResult(slug=slug, index=i, request=job.request, key=key, status="failed",
                         lesson_dir=f"lessons/{slug}", duration=None)
    t = time.perf_counter()
    try:
        manifest = await executor.make(job, lambda e: emit({**e, "topic": slug}), **backends)
        result.status = "done"
        result.title = manifest.script.title if manifest.script else job.request.topic
        result.duration = manifest.video.duration if manifest.video else None
    except (LessonForgeError, OSError) as err:  # one topic's failure is a result; the batch goes on
        failed(result, err)
    finish(out, slug, result, t, job.request.topic, base, emit, message=result.title)
    return result
