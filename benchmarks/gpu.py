"""Pictures and critic on the GPU path: throughput, one lesson's wall time and peak memory, with and
without each optimisation, side by side in one run.

    python benchmarks/gpu.py                    # tiny random models (CPU or GPU): a plumbing check, seconds
    python benchmarks/gpu.py --real             # SD-Turbo 512² + CLIP ViT-B/32 at real size, fp16, on CUDA
    python benchmarks/gpu.py --real --model sdxl_turbo --compile --json out.json

Real sizes come from benchmarks/configs (benchmarks/archs.py: published configs, random weights, no
download); tiny ones from tests/tiny_models.py, loaded from disk as a hub folder is. Every picture goes
through lessonforge.tools.images.diffusers.DiffusersImages and every verdict through
lessonforge.tools.batching.BatchedCritic over lessonforge.tools.critic.clip.ClipCritic, as in a lesson.

    throughput   pictures/s for one pipeline call of 1, 4 and 12 pictures
    lesson       12 scenes at once, each asking for its picture and then its verdict (as lessonforge.agent.nodes
                 does): wall time from the first request to the last verdict; the backend's defaults
                 first, then one option changed per row
    peak memory  torch.cuda.max_memory_allocated on CUDA; peak RSS (VmHWM, reset per row) on CPU

Times are medians of ``--repeats`` runs after one warm-up run (the torch.compile row reports its
warm-up separately, and whether it pays for itself on one lesson).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCENES = 12
BATCHES = (1, 4, 12)
GOAL_S = 0.5  # the goal on an H200: 12 SD-Turbo 512² pictures plus the critic
MODEL_IDS = {"sd_turbo": "stabilityai/sd-turbo", "sdxl_turbo": "stabilityai/sdxl-turbo"}
PROMPTS = [f"a clear diagram of idea {i}: {topic}" for i, topic in enumerate(
    ["tides", "volcanoes", "glaciers", "deserts", "rainbows", "magnets", "bees", "clouds", "rivers", "seeds",
     "comets", "coral"], start=1)]


# --------------------------------------------------------------------------- memory


class Peak:
    """Peak memory over a block: CUDA allocations on a GPU, resident set (VmHWM) on a CPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.bytes = 0

    def __enter__(self) -> Peak:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            try:  # "5" resets the high-water mark of this process (Linux 4.0+)
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass  # then VmHWM is the peak since the process started
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated()
        else:
            self.bytes = _vm_hwm()


def _vm_hwm() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# --------------------------------------------------------------------------- the models


@dataclass
class Models:
    """One pipeline's parts (built once) and the critic; every row wraps them anew."""

    pipe: Any
    taesd: Any
    clip: tuple[Any, Any, Any]
    model_id: str
    size: int
    device: str
    dtype: Any

    def pipeline(self, tiny_vae: bool) -> Any:
        """A pipeline over the shared parts, decoding with TAESD or the full VAE."""
        parts = dict(self.pipe.components)
        if tiny_vae:
            parts["vae"] = self.taesd
        if "safety_checker" in parts:  # SD pipelines: built without one, as the backend's pictures are
            parts["requires_safety_checker"] = False
        return type(self.pipe)(**parts)


def build(real: bool, name: str, device: str, workdir: Path) -> Models:
    import torch

    if real:
        from benchmarks import archs

        dtype = torch.float16
        pipe, taesd = archs.build_pipeline(name, device=device, dtype=dtype)
        clip = archs.build_clip(device=device, dtype=dtype)
        return Models(pipe, taesd, clip, MODEL_IDS[name], 512, device, dtype)
    from diffusers import AutoencoderTiny, StableDiffusionPipeline
    from transformers import CLIPModel, CLIPTokenizer

    from lessonforge.tools.critic.clip import _image_processor_class
    from tests.tiny_models import build_tiny_clip, build_tiny_sd, build_tiny_taesd

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    sd = build_tiny_sd(workdir / "sd")
    taesd_dir = build_tiny_taesd(workdir / "taesd")
    clip_dir = build_tiny_clip(workdir / "clip")
    pipe = StableDiffusionPipeline.from_pretrained(sd, torch_dtype=dtype)
    taesd = AutoencoderTiny.from_pretrained(taesd_dir, torch_dtype=dtype)
    clip = (CLIPModel.from_pretrained(clip_dir, attn_implementation="sdpa"),
            CLIPTokenizer.from_pretrained(clip_dir), _image_processor_class().from_pretrained(clip_dir))
    return Models(pipe, taesd, clip, "tiny/sd-turbo", 64, device, dtype)


# --------------------------------------------------------------------------- one configuration


@dataclass
class Option:
    """One row: the backend's options (None = its default on this device) and the critic's batch."""

    label: str
    tiny_vae: bool
    max_batch: int | None = None
    channels_last: bool | None = None
    compile: bool = False
    critic_batch: int = 32
    critic_on_device: bool | None = None
    window_s: float = 0.05
    fp32: bool = False


@dataclass
class Row:
    label: str
    seconds: float
    peak_bytes: int
    image_calls: int
    critic_passes: int
    warmup_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def backends(models: Models, option: Option) -> tuple[Any, Any]:
    from lessonforge.tools.batching import BatchedCritic
    from lessonforge.tools.critic.clip import ClipCritic
    from lessonforge.tools.images.diffusers import DiffusersImages

    pipe = models.pipeline(option.tiny_vae)
    images = DiffusersImages.from_pipeline(
        pipe, models.model_id, device=models.device, max_batch=option.max_batch, batch_window_s=option.window_s,
        channels_last=option.channels_last, compile=option.compile, tiny_vae="taesd" if option.tiny_vae else "")
    clip, tokenizer, processor = models.clip
    critic = ClipCritic.from_parts(clip, tokenizer, processor, "clip-vit-base-patch32", device=models.device,
                                 device_preprocess=option.critic_on_device)
    return images, BatchedCritic(critic, None, window_s=option.window_s, max_batch=option.critic_batch)


async def lesson(images: Any, critic: Any, size: int, seed: int) -> None:
    """Twelve scenes at once: each draws its picture, then asks for its verdict against every prompt."""
    from lessonforge.tools.base import ImageRequest

    async def scene(i: int) -> None:
        [image] = await images.generate([ImageRequest(prompt=PROMPTS[i], seed=seed + i, width=size, height=size)])
        await critic.judge_one(image.image, PROMPTS, i)

    await asyncio.gather(*(scene(i) for i in range(SCENES)))


def measure_lesson(models: Models, option: Option, repeats: int) -> Row:
    images, critic = backends(models, option)
    started = time.perf_counter()
    asyncio.run(lesson(images, critic, models.size, seed=1))  # warm-up (compiles when compile=True)
    _sync(models.device)
    warmup = time.perf_counter() - started
    calls, passes = images.pipeline_calls, critic.passes
    times = []
    with Peak(models.device) as peak:
        for r in range(repeats):
            started = time.perf_counter()
            asyncio.run(lesson(images, critic, models.size, seed=100 * (r + 2)))
            _sync(models.device)
            times.append(time.perf_counter() - started)
    return Row(option.label, statistics.median(times), peak.bytes, (images.pipeline_calls - calls) // repeats,
               (critic.passes - passes) // repeats, warmup)


def measure_throughput(models: Models, batch: int, repeats: int) -> Row:
    from lessonforge.tools.base import ImageRequest

    images, _ = backends(models, Option(f"batch {batch}", tiny_vae=models.device == "cpu", max_batch=batch))

    def draw(seed: int) -> None:
        requests = [ImageRequest(prompt=PROMPTS[i % SCENES], seed=seed + i, width=models.size, height=models.size)
                    for i in range(batch)]
        asyncio.run(images.generate(requests))
        _sync(models.device)

    draw(0)
    times = []
    with Peak(models.device) as peak:
        for r in range(repeats):
            started = time.perf_counter()
            draw(1000 * (r + 1))
            times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    return Row(f"batch {batch}", seconds, peak.bytes, 1, 0, extra={"pictures_per_s": batch / seconds})


def options(device: str, with_compile: bool) -> list[Option]:
    """The defaults first, then each optimisation turned the other way."""
    cuda = device.startswith("cuda")
    default_taesd = not cuda  # the backend's default: TAESD on CPU, the full VAE on CUDA
    rows = [
        Option("defaults", tiny_vae=default_taesd),
        Option("one picture per pipeline call", tiny_vae=default_taesd, max_batch=1),
        Option("critic: one picture per pass", tiny_vae=default_taesd, critic_batch=1),
        Option("critic: preprocessing " + ("in PIL on the CPU" if cuda else "in torch"), tiny_vae=default_taesd,
               critic_on_device=not cuda),
        Option("channels-last " + ("off" if cuda else "on"), tiny_vae=default_taesd, channels_last=not cuda),
        Option("full VAE" if default_taesd else "TAESD decode", tiny_vae=not default_taesd),
        Option("no batch windows (requests already waiting)", tiny_vae=default_taesd, window_s=0.0),
    ]
    if cuda:
        rows.append(Option("pictures in fp32 instead of fp16", tiny_vae=default_taesd, fp32=True))
    if with_compile:
        rows.append(Option("torch.compile (UNet)", tiny_vae=default_taesd, compile=True))
    return rows


def run_option(models: Models, option: Option, repeats: int) -> Row:
    if not option.fp32:
        return measure_lesson(models, option, repeats)
    import torch

    parts = [models.pipe, models.taesd, models.clip[0]]
    for part in parts:
        part.to(dtype=torch.float32)
    try:
        return measure_lesson(models, option, repeats)
    finally:
        for part in parts:
            part.to(dtype=models.dtype)


# --------------------------------------------------------------------------- the report


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def report(config: dict[str, Any], throughput: list[Row], rows: list[Row]) -> list[str]:
    mem = "peak GPU memory" if config["device"].startswith("cuda") else "peak RSS"
    lines = [f"{config['model']} {config['size']}x{config['size']} + {config['critic']} on {config['device']} "
             f"({config['dtype']}, {'real sizes' if config['real'] else 'tiny configs'}), "
             f"medians of {config['repeats']}"]
    lines += ["", f"{'pipeline call':<14}{'pictures/s':>12}{'seconds':>10}{mem:>18}"]
    for row in throughput:
        rate = row.extra["pictures_per_s"]
        lines.append(f"{row.label:<14}{rate:>12.2f}{row.seconds:>10.3f}{_mib(row.peak_bytes):>18}")
    base = rows[0].seconds
    lines += ["", f"{SCENES} pictures + critic, one lesson",
              f"{'configuration':<46}{'wall s':>9}{'vs defaults':>12}{'image calls':>12}{'critic passes':>14}{mem:>18}"]
    for row in rows:
        lines.append(f"{row.label:<46}{row.seconds:>9.3f}{row.seconds / base:>11.2f}x{row.image_calls:>12d}"
                     f"{row.critic_passes:>14d}{_mib(row.peak_bytes):>18}")
    for row in rows:
        if row.label.startswith("torch.compile"):
            saved = base - row.seconds
            verdict = "pays for itself" if saved > 0 and row.warmup_s - rows[0].warmup_s < saved else "does not pay"
            lines.append(f"torch.compile: warm-up {row.warmup_s:.1f} s (defaults {rows[0].warmup_s:.1f} s), "
                         f"saves {saved:.3f} s per lesson: {verdict} on one lesson")
    if config["real"] and config["model"] == MODEL_IDS["sd_turbo"] and config["device"].startswith("cuda"):
        best = min(r.seconds for r in rows)
        lines.append(f"goal: {SCENES} SD-Turbo 512² pictures + critic under {GOAL_S} s: defaults {base:.3f} s, "
                     f"best row {best:.3f} s ({'met' if best < GOAL_S else 'not met'})")
    return lines


def run(real: bool = False, model: str = "sd_turbo", device: str | None = None, repeats: int = 3,
        with_compile: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build the models, measure every row, and return the configuration, rows and report lines."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if real and not device.startswith("cuda"):
        raise SystemExit("--real builds SD-Turbo/SDXL-Turbo at full size in fp16: it needs a CUDA GPU. "
                         "Fix: run it on a GPU machine, or drop --real for the tiny configs.")
    note = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory() as tmp:
        note("building models")
        models = build(real, model, device, Path(tmp))
        config = {"model": models.model_id, "size": models.size, "critic": "CLIP ViT-B/32" if real else "tiny CLIP",
                  "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
                  "dtype": str(models.dtype).removeprefix("torch."), "real": real, "repeats": repeats,
                  "torch": torch.__version__}
        throughput = []
        for batch in BATCHES:
            note(f"throughput, batch {batch}")
            throughput.append(measure_throughput(models, batch, repeats))
        rows = []
        for option in options(device, with_compile):
            note(option.label)
            rows.append(run_option(models, option, repeats))
    return {"config": config, "throughput": [asdict(r) for r in throughput], "lesson": [asdict(r) for r in rows],
            "lines": report(config, throughput, rows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="real-size models in fp16 (needs CUDA)")
    parser.add_argument("--model", choices=sorted(MODEL_IDS), default="sd_turbo", help="with --real")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="add the torch.compile row (slow warm-up)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()  # casts and the safety-checker notice: expected here
    transformers_logging.set_verbosity_error()
    result = run(args.real, args.model, args.device, max(1, args.repeats), args.compile,
                 progress=lambda msg: print(f"... {msg}", file=sys.stderr, flush=True))
    print("\n".join(result["lines"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
