"""What an eval run records: one TopicResult per topic (persisted as it finishes) and the EvalReport.

    RUN/
      lessons/<slug>/        each lesson, as `lessonforge make` writes it
      results/<slug>.json    one TopicResult per finished topic (written atomically)
      report.json            EvalReport: run info, summary, every TopicResult
      report.html            the same, self-contained, with slide thumbnails and plots
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from lessonforge.agent.topics import TopicSpec
from lessonforge.evals.metrics import METRICS, LessonMetrics, mean

FORMAT = 1


class TopicResult(BaseModel):
    slug: str
    index: int = Field(description="1-based position in the topic set")
    spec: TopicSpec
    key: str = Field(description="hash of the topic, settings, backends and judge: a rerun with the same key skips it")
    status: Literal["done", "failed"]
    error: str = ""
    error_type: str = ""
    lesson_dir: str = Field(description="the lesson folder, relative to the run folder")
    title: str = ""
    slides: list[str] = Field(default_factory=list, description="slide images, relative to the run folder")
    metrics: LessonMetrics | None = None
    seconds: float = 0.0
    finished: str = ""


class RunInfo(BaseModel):
    dataset: str
    dataset_path: str
    created: str
    settings: dict[str, Any] = Field(default_factory=dict)
    backends: dict[str, str] = Field(default_factory=dict)
    judge: str = ""
    judge_usage: dict[str, int] = Field(default_factory=dict)
    jobs: int = 1
    seconds: float = 0.0


class MetricSummary(BaseModel):
    key: str
    label: str
    better: str
    n: int
    mean: float | None = None
    min: float | None = None
    max: float | None = None


class Summary(BaseModel):
    topics: int
    done: int
    failed: int
    success_rate: float
    metrics: list[MetricSummary]
    total_tokens: int = 0
    price_usd: float | None = None
    make_seconds: float = 0.0


class EvalReport(BaseModel):
    format: int = FORMAT
    run: RunInfo
    summary: Summary
    lessons: list[TopicResult]
    resumed: list[str] = Field(default_factory=list, description="slugs finished by an earlier run and skipped")


def summarize(results: list[TopicResult]) -> Summary:
    done = [r for r in results if r.status == "done" and r.metrics is not None]
    rows = []
    for metric in METRICS:
        values = [v for r in done if (v := r.metrics.value(metric.key)) is not None]  # type: ignore[union-attr]
        rows.append(
            MetricSummary(
                key=metric.key,
                label=metric.label,
                better=metric.better,
                n=len(values),
                mean=mean(values),
                min=min(values) if values else None,
                max=max(values) if values else None,
            )
        )
    prices = [r.metrics.cost.price_usd for r in done]  # type: ignore[union-attr]
    return Summary(
        topics=len(results),
        done=len(done),
        failed=sum(1 for r in results if r.status == "failed"),
        success_rate=len(done) / len(results) if results else 0.0,
        metrics=rows,
        total_tokens=sum(r.metrics.cost.total_tokens for r in done),  # type: ignore[union-attr]
        price_usd=round(sum(p for p in prices if p is not None), 6) if any(p is not None for p in prices) else None,
        make_seconds=round(sum(r.metrics.cost.make_seconds for r in done), 3),  # type: ignore[union-attr]
    )
