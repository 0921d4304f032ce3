"""Run a topic set: a lesson per topic through `lessonforge.agent.run.make` (bounded concurrency), then score it.

A topic that fails is recorded with its error and the run goes on. Each topic's result is written
atomically to ``RUN/results/<slug>.json`` as soon as it finishes, so a killed run resumes: a rerun
skips topics already done with the same topic, settings, backends and judge (failed ones are tried
again), and make's own content-addressed cache makes an unfinished lesson cheap to finish.

Progress is a stream of event dicts to ``on_event``: the runner's own (``stage="eval"``, with
``status`` start / skipped / scoring / done / failed) and every event of each lesson, each with
``topic`` (the slug) added.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lessonforge.agent import topics
from lessonforge.agent.batch import done_before, failed, finish, now_iso
from lessonforge.agent.checkpoint import check_spec as check_checkpoint
from lessonforge.agent.config import Settings
from lessonforge.agent.context import Context, close_backends, create
from lessonforge.agent.executor import Executor, prepare
from lessonforge.agent.executor import create as create_executor
from lessonforge.agent.prepare import preflight
from lessonforge.agent.project import Project
from lessonforge.agent.request import LessonJob
from lessonforge.evals import report as reporting
from lessonforge.evals.results import EvalReport, RunInfo, TopicResult, summarize
from lessonforge.evals.score import score_lesson
from lessonforge.tools.base import LLM, Backend, ConfigError
from lessonforge.tools.cache import content_key

EventSink = Callable[[dict[str, Any]], None]
SCORE_VERSION = 1  # bump when metrics change, so a rerun scores finished topics again


def _name(backend: Backend | str | None) -> str:
    if backend is None:
        return ""
    return backend if isinstance(backend, str) else backend.name


def _usage(llm: LLM | None) -> dict[str, int]:
    if llm is None:
        return {}
    return {k: int(v) for k, v in vars(llm.usage).items() if isinstance(v, int | float) and not isinstance(v, bool)}


async def run_eval(
    dataset_path: Path | str,
    out_dir: Path | str,
    *,
    jobs: int = 2,
    settings: Settings | None = None,
    llm: Any = None,
    images: Any = None,
    speech: Any = None,
    critic: Any = None,
    judge_llm: LLM | str | None = None,
    judge: bool = True,
    quiz_questions: int = 5,
    on_event: EventSink | None = None,
    executor: Executor | str | None = None,
    checkpoint: bool | str | None = True,
) -> EvalReport:
    """Make and score a lesson per topic of ``dataset_path`` into ``out_dir``; write report.json/.html.

    Backends (``llm``, ``images``, ``speech``, ``critic``) override the settings as in
    `lessonforge.agent.run.make`. The picture model and critic are built once and shared by every lesson;
    each lesson builds its own LLM client (so its manifest counts its own tokens) unless ``llm``
    is given. The judge is ``judge_llm`` (an LLM or a "backend:model" spec), else the lesson LLM;
    ``judge=False`` skips the rubric and the quiz. ``executor`` makes the lessons (`lessonforge.agent.executor`:
    "local", "ray", "ray:ADDRESS" or an Executor); ``checkpoint`` is where each lesson's graph keeps
    its finished steps (`lessonforge.agent.checkpoint`). Scoring runs here, on the lessons' files.
    """
    emit = on_event or (lambda e: None)
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    dataset_file = topics.resolve(dataset_path)
    dataset = topics.load(dataset_file)
    settings = settings or Settings.load()
    check_checkpoint(checkpoint)
    runner = executor if executor is not None and not isinstance(executor, str) else create_executor(executor)
    out = Path(out_dir)
    run_project = Project(out)
    run_project.prepare()
    started = time.perf_counter()
    owned: list[Any] = []  # LLM clients built here, closed at the end
    try:
        with run_project.lock():
            return await _run_locked(
                dataset, dataset_file, out, jobs, settings, llm, images, speech, critic, judge_llm, judge,
                quiz_questions, emit, owned, started, runner, checkpoint,
            )
    finally:
        await runner.close()
        await close_backends(*owned)


async def _run_locked(
    dataset: topics.Dataset,
    dataset_file: Path,
    out: Path,
    jobs: int,
    settings: Settings,
    llm: Any,
    images: Any,
    speech: Any,
    critic: Any,
    judge_llm: Any,
    judge: bool,
    quiz_questions: int,
    emit: EventSink,
    owned: list[Any],
    started: float,
    executor: Executor,
    checkpoint: bool | str | None,
) -> EvalReport:
    shared = await prepare(executor, settings, emit, llm=llm, images=images, speech=speech, critic=critic)
    owned.extend(shared.owned)
    judge_obj: Any = None
    if judge:
        judge_obj = judge_llm if judge_llm is not None else shared.llm
        if isinstance(judge_obj, str):
            judge_obj = create("llm", judge_obj)
            owned.append(judge_obj)
    if judge_obj is not None and judge_obj is not shared.llm:
        await preflight(Context(llm=judge_obj), emit)
    judge_before = _usage(judge_obj)
    backends, names, lesson_settings = shared.backends, shared.names, shared.settings
    fingerprint = [settings.model_dump(mode="json"), names, _name(judge_obj), quiz_questions, SCORE_VERSION]
    results_dir = out / "results"
    slugs = dataset.slugs()
    total = len(slugs)
    finished: dict[str, TopicResult] = {}
    resumed: list[str] = []
    pending: list[tuple[int, str, topics.TopicSpec, str]] = []
    for i, (slug, spec) in enumerate(zip(slugs, dataset.topics, strict=True), 1):
        key = content_key(spec, fingerprint)
        old = done_before(results_dir / f"{slug}.json", TopicResult, key)
        if old is not None:
            finished[slug] = old
            resumed.append(slug)
            emit({"stage": "eval", "status": "skipped", "topic": slug, "index": i, "total": total,
                  "message": f"{spec.topic}: done in an earlier run"})
        else:
            pending.append((i, slug, spec, key))

    gate = asyncio.Semaphore(jobs)

    async def one(i: int, slug: str, spec: topics.TopicSpec, key: str) -> None:
        async with gate:
            job = LessonJob(spec.request(), out / "lessons" / slug, lesson_settings, checkpoint, slug,
                            understood=spec.understanding())
            finished[slug] = await _run_topic(
                out, i, total, slug, spec, key, job, executor, backends, judge_obj, quiz_questions, emit
            )

    await asyncio.gather(*(one(*p) for p in pending))

    results = [finished[s] for s in slugs]
    info = RunInfo(
        dataset=dataset.name,
        dataset_path=str(dataset_file),
        created=now_iso(),
        settings=settings.model_dump(mode="json"),
        backends=names,
        judge=_name(judge_obj),
        judge_usage={k: v - judge_before.get(k, 0) for k, v in _usage(judge_obj).items()},
        jobs=jobs,
        seconds=round(time.perf_counter() - started, 3),
    )
    report = EvalReport(run=info, summary=summarize(results), lessons=results, resumed=resumed)
    emit({"stage": "eval", "status": "report", "message": f"writing {out / 'report.json'} and report.html"})
    reporting.write(report, out)
    return report


async def _run_topic(
    out: Path,
    i: int,
    total: int,
    slug: str,
    spec: topics.TopicSpec,
    key: str,
    job: LessonJob,
    executor: Executor,
    backends: dict[str, Any],
    judge: Any,
    quiz_questions: int,
    emit: EventSink,
) -> TopicResult:
    lesson_dir = job.out
    base = {"stage": "eval", "topic": slug, "index": i, "total": total}
    emit({**base, "status": "start", "message": spec.topic})

    def forward(event: dict[str, Any]) -> None:
        emit({**event, "topic": slug})

    t = time.perf_counter()
    result = TopicResult(
        slug=slug, index=i, spec=spec, key=key, status="failed", lesson_dir=f"lessons/{slug}"
    )
    try:
        manifest = await executor.make(job, forward, **backends)
        make_seconds = time.perf_counter() - t
        result.title = manifest.script.title if manifest.script else spec.topic
        result.slides = [
            f"lessons/{slug}/{s.slide.path}" for s in manifest.scenes if s.slide is not None
        ]
        emit({**base, "status": "scoring", "message": spec.topic})
        result.metrics = await score_lesson(
            lesson_dir, spec, judge=judge, make_seconds=make_seconds, quiz_questions=quiz_questions
        )
        result.status = "done"
    except Exception as err:
        failed(result, err)
    metrics = result.metrics.flat() if result.metrics is not None else {}
    finish(out, slug, result, t, spec.topic, base, emit, message=spec.topic,
           metrics={k: v for k, v in metrics.items() if v is not None})
    return result
