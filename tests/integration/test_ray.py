"""Batches on a local Ray (2 CPUs, no dashboard): a lost worker's lesson resumes, pictures are batched
across lessons by the shared deployments. One Ray instance serves the whole module."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import ray

from lessonforge.agent.batch import run_batch
from lessonforge.agent.config import Settings
from lessonforge.agent.executor_ray import EVENTS_LOG, RayExecutor
from lessonforge.tools import ray_serve
from lessonforge.tools.fakes import FakeSpeech

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=96 * 1024 * 1024, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()  # with Serve and its deployments


def topic_file(tmp_path: Path, *names: str) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text("name: course\ntopics:\n" + "".join(f"  - {n}\n" for n in names), "utf-8")
    return path


def events(lesson: Path) -> list[dict]:
    lines = (lesson / ".lessonforge" / EVENTS_LOG).read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


async def test_a_lesson_whose_worker_is_killed_is_retried_and_resumes_at_its_last_finished_step(local_ray, tmp_path):
    marker = tmp_path / "killed"
    settings = Settings(llm="fake:", images="fake:", critic="fake:", speech="fake:", fit_rounds=0)
    report = await run_batch(
        topic_file(tmp_path, "tides"), tmp_path / "run", defaults={"minutes": 0.5}, settings=settings,
        executor=RayExecutor(retries=2), speech=FakeSpeech(crash_once=marker),
    )

    assert marker.exists()  # the first narration killed its worker
    assert report.done == 1 and report.lessons[0].status == "done", report.lessons[0].error
    lesson = tmp_path / "run" / "lessons" / "01-tides"
    assert (lesson / "lesson.mp4").stat().st_size > 0
    log = events(lesson)
    starts = [e for e in log if e["stage"] == "worker"]
    assert len(starts) == 2 and starts[0]["pid"] != starts[1]["pid"]  # retried in a new worker process
    # plan, write and fit had finished before the kill: the retry went on from there, not from the start
    assert [e["stage"] for e in log].count("plan") == 1
    assert [e["stage"] for e in log].count("write") == 1
    resumed = [e for e in log if e["stage"] == "resume"]
    assert len(resumed) == 1 and resumed[0]["pid"] == starts[1]["pid"]
    assert resumed[0]["data"]["next"] and "plan" not in resumed[0]["data"]["next"]
    narrated = {e["scene"] for e in log if e["stage"] == "narrate" and e["pid"] == starts[1]["pid"]}
    assert narrated  # the scenes cut short were produced by the retry


async def test_pictures_of_concurrent_lessons_share_model_calls_of_one_served_model(local_ray, tmp_path):
    # a model spec of its own, so this deployment's counters start at zero
    settings = Settings(llm="fake:", images="fake:course", critic="fake:course", speech="fake:", fit_rounds=0)
    # four lessons at once on two CPUs; a long batch window so pictures of lessons that started a few
    # seconds apart (a loaded machine) still meet in one call
    executor = RayExecutor(lesson_cpus=0.5, batch_wait_s=4.0)
    report = await run_batch(
        topic_file(tmp_path, "tides", "volcanoes", "glaciers", "deserts"), tmp_path / "run",
        defaults={"minutes": 0.5}, settings=settings, jobs=4, executor=executor,
    )
    assert report.done == 4, [r.error for r in report.lessons]
    assert report.backends["images"] == "fake:course"  # named by the served model: same cache as a local run

    pictures = 0
    for r in report.lessons:
        manifest = json.loads((tmp_path / "run" / r.lesson_dir / "lesson.json").read_text("utf-8"))
        pictures += sum(len(s["attempts"]) for s in manifest["scenes"])
        assert manifest["backends"]["images"] == "fake:course"
    images = await ray_serve.stats("images", "fake:course")
    critic = await ray_serve.stats("critic", "fake:course")
    assert images["loads"] == 1 and critic["loads"] == 1  # one model for the four lessons
    assert images["items"] == pictures  # every picture of every lesson was drawn there
    # far fewer model calls than pictures (one per scene and attempt without batching), and at least
    # one call drew pictures for more than one lesson
    assert images["calls"] < pictures / 2
    assert max(images["callers_per_call"]) >= 2
    assert critic["items"] == pictures and critic["calls"] < pictures / 2
    assert max(critic["callers_per_call"]) >= 2


async def test_an_eval_run_makes_its_lessons_on_ray_and_scores_them_here(local_ray, tmp_path):
    from lessonforge.evals.runner import run_eval

    topics = tmp_path / "set.yaml"
    topics.write_text("name: mini\ntopics:\n  - {topic: tides, minutes: 0.5, audience: primary school, "
                      "key_concepts: [moon, water]}\n", "utf-8")
    settings = Settings(llm="fake:", images="fake:", critic="fake:", speech="fake:", fit_rounds=0)
    report = await run_eval(topics, tmp_path / "run", settings=settings, judge=False, executor=RayExecutor())
    [lesson] = report.lessons
    assert lesson.status == "done", lesson.error
    assert report.run.backends["images"] == "fake:" and report.run.backends["critic"] == "fake:"
    assert lesson.metrics is not None and lesson.metrics.delivery.duration_s > 0
    assert [e["stage"] for e in events(tmp_path / "run" / "lessons" / lesson.slug)].count("worker") == 1
