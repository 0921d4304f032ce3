"""Twenty lessons on Ray: each lesson loading its own image model and critic, against the shared,
batched Ray Serve deployments — model calls and wall time, measured side by side in one run.

    python benchmarks/scale.py [--lessons 20] [--cpus 2]

Both arms make the same lessons through `lessonforge batch`'s code on one local Ray, with a tiny
random-weight Stable Diffusion pipeline and CLIP critic (built here, so it runs on a CPU with no
download) and the shipped fakes for the LLM and speech. Per-lesson: every lesson task builds and
loads both models and draws only its own pictures (its scenes batched together). Shared: the models
are loaded once, as deployments, and pictures of concurrent lessons are drawn and judged together.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)

from lessonforge.agent.batch import run_batch  # noqa: E402
from lessonforge.agent.config import Settings  # noqa: E402
from lessonforge.agent.executor_ray import RayExecutor  # noqa: E402
from lessonforge.agent.project import Manifest  # noqa: E402
from lessonforge.agent.request import LessonJob  # noqa: E402

TOPICS = ["tides", "volcanoes", "glaciers", "deserts", "rainbows", "magnets", "bees", "clouds", "rivers", "seeds",
          "comets", "coral", "lightning", "fossils", "caves", "wind", "snow", "soil", "moss", "salt"]


def per_lesson_task(job: LessonJob) -> tuple[dict[str, Any], dict[str, int]]:
    """A lesson that builds and loads its own models (what each worker does without shared deployments)."""
    from lessonforge.agent import run
    from lessonforge.tools.critic.clip import ClipCritic
    from lessonforge.tools.images.diffusers import DiffusersImages

    class CountedClip(ClipCritic):
        calls = 0

        def scores(self, images: Any, prompts: Any) -> Any:
            CountedClip.calls += 1
            return super().scores(images, prompts)

    images = DiffusersImages(job.settings.images.partition(":")[2], device="cpu")
    critic = CountedClip(job.settings.critic.partition(":")[2], device="cpu", floor=0.0, margin=0.0)
    manifest = asyncio.run(run.make(job.request, job.settings, job.out, checkpoint=job.checkpoint,
                                    images=images, critic=critic))
    return manifest.model_dump(mode="json"), {"images": images.pipeline_calls, "critic": CountedClip.calls}


class PerLessonExecutor(RayExecutor):
    """Lessons as Ray tasks that each load their own models; counts their model calls."""

    def __init__(self, **options: Any) -> None:
        super().__init__(serve_models=False, **options)
        self.calls = {"images": 0, "critic": 0, "loads": 0}

    async def make(self, job: LessonJob, on_event: Any, **backends: Any) -> Manifest:
        import ray

        task = ray.remote(per_lesson_task).options(num_cpus=self.lesson_cpus, max_retries=self.retries)
        manifest, calls = await task.remote(job)
        self.calls["images"] += calls["images"]
        self.calls["critic"] += calls["critic"]
        self.calls["loads"] += 1
        return Manifest.model_validate(manifest)


async def arm(name: str, executor: RayExecutor, topics: Path, out: Path, settings: Settings, jobs: int) -> dict:
    t = time.perf_counter()
    report = await run_batch(topics, out, defaults={"minutes": 0.5}, settings=settings, jobs=jobs,
                             executor=executor)
    seconds = time.perf_counter() - t
    if report.failed:
        raise SystemExit(f"{name}: {report.failed} lesson(s) failed: {report.lessons[0].error}")
    pictures = sum(len(s.attempts) for r in report.lessons
                   for s in Manifest.model_validate_json((out / r.lesson_dir / "lesson.json").read_text()).scenes)
    if isinstance(executor, PerLessonExecutor):
        calls = executor.calls
    else:
        stats = await executor.stats()
        calls = {"images": stats["images"]["calls"], "critic": stats["critic"]["calls"],
                 "loads": stats["images"]["loads"]}
    return {"name": name, "seconds": seconds, "pictures": pictures, **calls}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", type=int, default=20)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()

    import ray

    from tests.tiny_models import build_tiny_clip, build_tiny_sd

    with tempfile.TemporaryDirectory(prefix="lf-scale-") as tmp:
        root = Path(tmp)
        os.environ["LESSONFORGE_CACHE_DIR"] = str(root / "cache")
        sd, clip = build_tiny_sd(root / "tiny-sd"), build_tiny_clip(root / "tiny-clip")
        topics = root / "topics.yaml"
        topics.write_text("".join(f"- {t}\n" for t in (TOPICS * 5)[: args.lessons]), "utf-8")
        settings = Settings(llm="fake:", speech="fake:", images=f"diffusers:{sd}", critic=f"clip:{clip}",
                            critic_floor=0.0, critic_margin=0.0, max_attempts=1, image_size=64, fit_rounds=0,
                            device="cpu")
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 object_store_memory=200 * 1024 * 1024)
        try:
            jobs = args.cpus * 2  # lessons at once: half a CPU each
            rows = [
                await arm("per-lesson loading", PerLessonExecutor(lesson_cpus=0.5), topics, root / "per-lesson",
                          settings, jobs),
                await arm("shared, batched (Ray Serve)", RayExecutor(lesson_cpus=0.5, batch_wait_s=2.0), topics,
                          root / "shared", settings, jobs),
            ]
        finally:
            ray.shutdown()  # with Serve and its deployments
    print(f"{args.lessons} lessons of 0.5 min (3 scenes), {args.cpus} CPUs, {jobs} lessons at once; tiny random-weight "
          "SD pipeline and CLIP on the CPU")
    print(f"{'arm':30} {'pictures':>8} {'model loads':>11} {'image calls':>11} {'critic calls':>12} {'wall (s)':>9}")
    for r in rows:
        print(f"{r['name']:30} {r['pictures']:8d} {r['loads']:11d} {r['images']:11d} {r['critic']:12d} "
              f"{r['seconds']:9.1f}")
    a, b = rows
    print(f"shared: {a['images'] / max(1, b['images']):.1f}x fewer image calls, "
          f"{a['critic'] / max(1, b['critic']):.1f}x fewer critic calls, {a['loads']}x fewer model loads, "
          f"wall time {b['seconds'] / a['seconds']:.2f}x the per-lesson arm's")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
