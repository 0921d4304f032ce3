"""Reports of an eval run (report.json, a self-contained report.html) and the comparison of two runs.

The HTML has no outside references: inline CSS, slide thumbnails as base64 JPEG, plots drawn with
matplotlib (the object API, no pyplot state) as base64 PNG.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from lessonforge.agent.config import describe_validation
from lessonforge.evals.metrics import METRIC_BY_KEY, METRICS, Metric, mean
from lessonforge.evals.results import EvalReport, TopicResult
from lessonforge.tools.base import ConfigError
from lessonforge.tools.cache import atomic_write_json, atomic_write_text

THUMB_WIDTH = 224
SUCCESS = Metric("run.success_rate", "lessons done", "higher", 0.0, fmt="{:.0%}")


# --------------------------------------------------------------------------- files


def write(report: EvalReport, out: Path | str) -> tuple[Path, Path]:
    out = Path(out)
    j = atomic_write_json(out / "report.json", report.model_dump(mode="json"))
    h = atomic_write_text(out / "report.html", render_html(report, out))
    return j, h


def load(run: Path | str) -> EvalReport:
    """The report of a run folder (or a report.json path)."""
    path = Path(run)
    if path.is_dir():
        path = path / "report.json"
    try:
        return EvalReport.model_validate(json.loads(path.read_text("utf-8")))
    except FileNotFoundError:
        raise ConfigError(
            f"no eval report at {path}; give a run folder of lessonforge eval (or its report.json)"
        ) from None
    except ValueError as err:
        detail = describe_validation(err) if isinstance(err, ValidationError) else str(err)
        raise ConfigError(
            f"{path} is not an eval report ({detail}); run lessonforge eval again to rewrite it"
        ) from None


# --------------------------------------------------------------------------- html


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1280px;color:#1d2330;
padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde1e8;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 4px}.muted{color:#5c6675}.small{font-size:12px}
table{border-collapse:collapse;margin:8px 0}
th,td{padding:4px 10px;border-bottom:1px solid #e6e9ef;text-align:right;vertical-align:top}
th{background:#f4f6f9;font-weight:600}td.l,th.l{text-align:left}
.ok{color:#17663a}.bad{color:#a3212a;font-weight:600}.warn{color:#8a5a00}
.strip{display:flex;gap:6px;overflow-x:auto;padding:4px 0}
.strip img{height:126px;border:1px solid #d5dae3;border-radius:3px}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots img{max-width:100%;border:1px solid #e6e9ef}
.lesson{border:1px solid #e6e9ef;border-radius:6px;padding:8px 14px;margin:12px 0}
code{background:#f4f6f9;padding:1px 4px;border-radius:3px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def fmt(metric: Metric | None, value: float | None) -> str:
    if value is None:
        return "–"
    try:
        return (metric.fmt if metric else "{:.2f}").format(value)
    except (ValueError, TypeError):
        return f"{value:.3g}"


def _arrow(better: str) -> str:
    return {"higher": "↑", "lower": "↓"}.get(better, "")


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail(path: Path, width: int = THUMB_WIDTH) -> str | None:
    """A slide as a small base64 JPEG, or None when the file is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((width, width * 4))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=72, optimize=True)
    except (OSError, UnidentifiedImageError):
        return None
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plots(lessons: Sequence[TopicResult]) -> list[tuple[str, str]]:
    """(title, base64 PNG) per plot, from the lessons that finished."""
    from matplotlib.figure import Figure

    done = [r for r in lessons if r.status == "done" and r.metrics is not None]
    if not done:
        return []
    labels = [r.slug.split("-", 1)[0] for r in done]  # the topic's number: always ASCII, always short
    out: list[tuple[str, str]] = []

    fig = Figure(figsize=(5.2, 4))
    ax = fig.add_subplot()
    targets = [r.metrics.delivery.target_s for r in done]
    actual = [r.metrics.delivery.duration_s for r in done]
    pts = [(t, a, lab) for t, a, lab in zip(targets, actual, labels) if a is not None]
    if pts:
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color="#005fb8")
        for t, a, lab in pts:
            ax.annotate(lab, (t, a), textcoords="offset points", xytext=(4, 3), fontsize=7)
        hi = max(max(p[0] for p in pts), max(p[1] for p in pts)) * 1.1
        ax.plot([0, hi], [0, hi], color="#888", linestyle="--", linewidth=1, label="on target")
        ax.set_xlim(0, hi)
        ax.set_ylim(0, hi)
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("target length (s)")
    ax.set_ylabel("video length (s)")
    ax.set_title("Length against target")
    out.append(("Length against target", _png(fig)))

    fig = Figure(figsize=(max(5.2, 0.45 * len(done) + 2), 4))
    ax = fig.add_subplot()
    x = list(range(len(done)))
    series = [("content.concept_coverage", "key concepts", "#005fb8"), ("content.quiz_score", "quiz", "#e08a00")]
    width = 0.38
    for k, (key, name, colour) in enumerate(series):
        vals = [r.metrics.value(key) for r in done]
        ax.bar(
            [i + (k - 0.5) * width for i in x],
            [v if v is not None else 0 for v in vals],
            width,
            label=name,
            color=colour,
        )
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction")
    ax.set_xlabel("topic")
    ax.set_title("Key-concept coverage and quiz score")
    ax.legend(fontsize=8)
    out.append(("Coverage and quiz", _png(fig)))

    criteria = ["accuracy", "clarity", "logical_flow", "engagement"]
    means = [mean(r.metrics.value(f"content.rubric.{c}.score") for r in done) for c in criteria]
    if any(v is not None for v in means):
        fig = Figure(figsize=(5.2, 4))
        ax = fig.add_subplot()
        ax.bar([c.replace("_", " ") for c in criteria], [v or 0 for v in means], color="#2e8b57")
        ax.set_ylim(0, 5.2)
        ax.set_ylabel("mean score (1-5)")
        ax.set_title("Judge rubric")
        out.append(("Judge rubric", _png(fig)))

    clip = [(lab, r.metrics.visuals.clip_mean, r.metrics.visuals.clip_min) for lab, r in zip(labels, done)]
    clip = [c for c in clip if c[1] is not None]
    if clip:
        fig = Figure(figsize=(max(5.2, 0.45 * len(clip) + 2), 4))
        ax = fig.add_subplot()
        xs = list(range(len(clip)))
        ax.bar(xs, [c[1] for c in clip], color="#7a5cc2", label="mean")
        ax.scatter(xs, [c[2] for c in clip], color="#1d2330", zorder=3, label="min", s=14)
        ax.set_xticks(xs, [c[0] for c in clip], fontsize=8)
        ax.set_ylabel("critic score")
        ax.set_xlabel("topic")
        ax.set_title("Pictures: critic scores")
        ax.legend(fontsize=8)
        out.append(("Critic scores", _png(fig)))
    return out


def _summary_table(report: EvalReport) -> str:
    rows = []
    for s in report.summary.metrics:
        m = METRIC_BY_KEY.get(s.key)
        rows.append(
            f"<tr><td class=l>{_e(s.label)} <span class=muted>{_arrow(s.better)}</span></td>"
            f"<td>{fmt(m, s.mean)}</td><td>{fmt(m, s.min)}</td><td>{fmt(m, s.max)}</td><td>{s.n}</td></tr>"
        )
    return (
        "<table class=summary><thead><tr><th class=l>metric</th><th>mean</th><th>min</th><th>max</th><th>n</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


_LESSON_COLUMNS = (
    "delivery.duration_abs_error", "delivery.subtitles_valid", "delivery.wpm", "delivery.grade_gap_abs",
    "visuals.clip_mean", "visuals.below_bar_share", "content.concept_coverage", "content.rubric_mean",
    "content.quiz_score", "cost.total_tokens", "cost.make_seconds",
)


def _lessons_table(lessons: Sequence[TopicResult]) -> str:
    head = "".join(f"<th>{_e(METRIC_BY_KEY[k].label)}</th>" for k in _LESSON_COLUMNS)
    rows = []
    for r in lessons:
        spec = r.spec
        status = '<span class=ok>done</span>' if r.status == "done" else '<span class=bad>failed</span>'
        cells = "".join(
            f"<td>{fmt(METRIC_BY_KEY[k], r.metrics.value(k) if r.metrics else None)}</td>" for k in _LESSON_COLUMNS
        )
        rows.append(
            f"<tr><td class=l><a href='#{_e(r.slug)}'>{_e(r.slug)}</a></td><td class=l>{_e(spec.topic)}</td>"
            f"<td class=l>{_e(spec.language)}</td><td class=l>{_e(spec.audience)}</td><td>{spec.minutes:g}</td>"
            f"<td class=l>{status}</td>{cells}</tr>"
        )
    return (
        "<table class=lessons><thead><tr><th class=l>lesson</th><th class=l>topic</th><th class=l>lang</th>"
        f"<th class=l>audience</th><th>min</th><th class=l>status</th>{head}</tr></thead><tbody>"
        + "".join(rows) + "</tbody></table>"
    )


def _lesson_section(r: TopicResult, root: Path) -> str:
    parts = [f"<div class=lesson id='{_e(r.slug)}'><h3>{_e(r.slug)} — {_e(r.title or r.spec.topic)}</h3>"]
    spec = r.spec
    parts.append(
        f"<div class=muted>{_e(spec.subject or 'topic')} · {_e(spec.language)} · {_e(spec.audience)} · "
        f"{spec.minutes:g} min · {r.seconds:.1f} s</div>"
    )
    understood = spec.understanding()
    if understood is not None:
        parts.append(f"<div class=muted>prompt “{_e(spec.prompt)}” → understood: {_e(understood.summary())}"
                     + "".join(f"; {_e(c)}" for c in understood.conflicts) + "</div>")
    if r.status == "failed":
        parts.append(f"<p class=bad>failed ({_e(r.error_type)}): {_e(r.error)}</p>")
    thumbs = [t for p in r.slides if (t := thumbnail(root / p)) is not None]
    if thumbs:
        parts.append("<div class=strip>" + "".join(
            f"<img alt='slide {k}' src='data:image/jpeg;base64,{t}'>" for k, t in enumerate(thumbs, 1)
        ) + "</div>")
    m = r.metrics
    if m is not None:
        d, c = m.delivery, m.content
        facts = [
            f"length {d.duration_s if d.duration_s is not None else '–'} s for {d.target_s:g} s",
            f"{d.words} words at {d.wpm if d.wpm is not None else '–'} wpm",
            (f"readability {d.readability_grade if d.readability_grade is not None else '–'} "
             f"({_e(d.readability_formula)}; band {d.grade_band or '–'})"),
            f"{m.visuals.attempts} picture attempts, {m.visuals.below_bar} below bar",
        ]
        parts.append("<p class=small>" + " · ".join(facts) + "</p>")
        if c.concepts_missing:
            parts.append(
                f"<p class=small>missing concepts: <span class=warn>{_e(', '.join(c.concepts_missing))}</span></p>"
            )
        if d.subtitle_problems:
            parts.append(f"<p class=small>subtitles: <span class=bad>{_e('; '.join(d.subtitle_problems))}</span></p>")
        if c.rubric is not None:
            items = "".join(
                f"<li><b>{name.replace('_', ' ')} {getattr(c.rubric, name).score}/5</b>: "
                f"{_e(getattr(c.rubric, name).reason)}</li>"
                for name in ("accuracy", "clarity", "logical_flow", "engagement")
            )
            parts.append(f"<ul class=small>{items}</ul>")
        if c.quiz is not None:
            wrong = [q for q in c.quiz.items if not q.correct]
            if wrong:
                parts.append("<p class=small>quiz questions the lesson did not answer: " + "; ".join(
                    f"<i>{_e(q.question)}</i> (expected {_e(q.reference)}, got {_e(q.answer or '–')})" for q in wrong
                ) + "</p>")
        for err in m.errors:
            parts.append(f"<p class='small warn'>{_e(err)}</p>")
    parts.append("</div>")
    return "".join(parts)


def render_html(report: EvalReport, root: Path | str) -> str:
    """The report as one HTML page; slide paths are resolved against the run folder ``root``."""
    root = Path(root)
    run, s = report.run, report.summary
    backends = ", ".join(f"{k} <code>{_e(v)}</code>" for k, v in run.backends.items())
    price = f"${s.price_usd:.4f}" if s.price_usd is not None else "no price (unlisted model)"
    plot_html = "".join(f"<img alt='{_e(t)}' src='data:image/png;base64,{p}'>" for t, p in plots(report.lessons))
    failed = [r for r in report.lessons if r.status == "failed"]
    body = [
        f"<h1>LessonForge eval: {_e(run.dataset)}</h1>",
        f"<div class=muted>{_e(run.created)} · {_e(run.dataset_path)} · {run.jobs} job(s) · {run.seconds:.0f} s</div>",
        f"<p>{s.done} of {s.topics} lessons done"
        + (f", <span class=bad>{s.failed} failed</span>" if s.failed else "")
        + (f" ({len(report.resumed)} from an earlier run)" if report.resumed else "")
        + f". Tokens {s.total_tokens}, {price}. Backends: {backends}; "
        f"judge <code>{_e(run.judge or 'none')}</code>.</p>",
        "<h2>Summary</h2>",
        _summary_table(report),
        "<h2>Plots</h2>",
        f"<div class=plots>{plot_html}</div>" if plot_html else "<p class=muted>no finished lessons to plot</p>",
        "<h2>Lessons</h2>",
        _lessons_table(report.lessons),
    ]
    if failed:
        body.append("<h2>Failures</h2><ul>" + "".join(
            f"<li><a href='#{_e(r.slug)}'>{_e(r.slug)}</a>: {_e(r.error_type)}: {_e(r.error)}</li>" for r in failed
        ) + "</ul>")
    body.append("<h2>Each lesson</h2>")
    body += [_lesson_section(r, root) for r in report.lessons]
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>LessonForge eval: {_e(run.dataset)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body) + "</body></html>\n"
    )


# --------------------------------------------------------------------------- compare


class MetricDelta(BaseModel):
    key: str
    label: str
    better: str
    a: float | None = None
    b: float | None = None
    delta: float | None = None
    regression: bool = False
    improvement: bool = False


class LessonComparison(BaseModel):
    topic: str
    language: str
    slug_a: str
    slug_b: str
    status_a: str
    status_b: str
    deltas: list[MetricDelta] = Field(default_factory=list)
    regressions: list[str] = Field(default_factory=list)


class Comparison(BaseModel):
    """Run B against run A (the baseline). Summary deltas are paired: means over the lessons done in both."""

    run_a: str
    run_b: str
    paired: int = 0
    success_rate: MetricDelta
    metrics: list[MetricDelta]
    lessons: list[LessonComparison]
    only_in_a: list[str] = Field(default_factory=list)
    only_in_b: list[str] = Field(default_factory=list)
    regressions: list[str] = Field(default_factory=list)

    @property
    def has_regressions(self) -> bool:
        return bool(self.regressions)


def delta(metric: Metric, a: float | None, b: float | None) -> MetricDelta:
    out = MetricDelta(key=metric.key, label=metric.label, better=metric.better, a=a, b=b)
    if a is not None and b is not None:
        out.delta = b - a
        out.regression = metric.worse(a, b)
        out.improvement = metric.better_than(a, b)
    return out


def _match(a: Sequence[TopicResult],
           b: Sequence[TopicResult]) -> tuple[list[tuple[TopicResult, TopicResult]], list[str], list[str]]:
    """Pair lessons by (topic, language, audience, minutes), in order among equals."""
    def ident(r: TopicResult) -> tuple:
        return (r.spec.topic, r.spec.language, r.spec.audience, r.spec.minutes)

    pool: dict[tuple, list[TopicResult]] = {}
    for r in b:
        pool.setdefault(ident(r), []).append(r)
    pairs, only_a = [], []
    for r in a:
        bucket = pool.get(ident(r))
        if bucket:
            pairs.append((r, bucket.pop(0)))
        else:
            only_a.append(r.slug)
    only_b = [r.slug for rs in pool.values() for r in rs]
    return pairs, only_a, only_b


def compare(run_a: Path | str | EvalReport, run_b: Path | str | EvalReport) -> Comparison:
    """Deltas of run B against baseline run A, per metric and per lesson, with regressions flagged.

    A metric regresses when it moves in its worse direction by more than its tolerance
    (`lessonforge.evals.metrics.METRICS`); a lesson that was done in A and failed in B is a regression too.
    """
    ra = run_a if isinstance(run_a, EvalReport) else load(run_a)
    rb = run_b if isinstance(run_b, EvalReport) else load(run_b)
    pairs, only_a, only_b = _match(ra.lessons, rb.lessons)
    regressions: list[str] = []
    lessons: list[LessonComparison] = []
    both_done = []
    for a, b in pairs:
        lc = LessonComparison(topic=a.spec.topic, language=a.spec.language, slug_a=a.slug, slug_b=b.slug,
                              status_a=a.status, status_b=b.status)
        if a.status == "done" and b.status == "failed":
            lc.regressions.append(f"failed: {b.error}")
        if a.metrics is not None and b.metrics is not None and a.status == b.status == "done":
            both_done.append((a, b))
            for metric in METRICS:
                d = delta(metric, a.metrics.value(metric.key), b.metrics.value(metric.key))
                lc.deltas.append(d)
                if d.regression and metric.per_lesson:
                    lc.regressions.append(f"{metric.label}: {fmt(metric, d.a)} -> {fmt(metric, d.b)}")
        regressions += [f"{b.slug}: {text}" for text in lc.regressions]
        lessons.append(lc)
    metrics = []
    for metric in METRICS:
        d = delta(
            metric,
            mean(a.metrics.value(metric.key) for a, _ in both_done),
            mean(b.metrics.value(metric.key) for _, b in both_done),
        )
        metrics.append(d)
        if d.regression:
            regressions.insert(0, f"mean {metric.label}: {fmt(metric, d.a)} -> {fmt(metric, d.b)}")
    success = delta(SUCCESS, ra.summary.success_rate, rb.summary.success_rate)
    if success.regression:
        regressions.insert(
            0, f"lessons done: {ra.summary.done}/{ra.summary.topics} -> {rb.summary.done}/{rb.summary.topics}"
        )
    return Comparison(
        run_a=ra.run.dataset_path if isinstance(run_a, EvalReport) else str(run_a),
        run_b=rb.run.dataset_path if isinstance(run_b, EvalReport) else str(run_b),
        paired=len(both_done),
        success_rate=success,
        metrics=metrics,
        lessons=lessons,
        only_in_a=only_a,
        only_in_b=only_b,
        regressions=regressions,
    )
