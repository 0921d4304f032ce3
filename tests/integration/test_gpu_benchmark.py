"""benchmarks/gpu.py in its tiny mode: every row runs through the real backends on a CPU, offline."""

from __future__ import annotations

import pytest

from benchmarks import gpu
from lessonforge.tools.images.diffusers import CPU_MAX_BATCH


@pytest.mark.slow
def test_tiny_run_measures_every_row_and_the_batching_shows() -> None:
    result = gpu.run(real=False, device="cpu", repeats=1)
    throughput = {row["label"]: row for row in result["throughput"]}
    assert list(throughput) == ["batch 1", "batch 4", "batch 12"]
    assert all(row["extra"]["pictures_per_s"] > 0 and row["peak_bytes"] > 0 for row in throughput.values())
    rows = {row["label"]: row for row in result["lesson"]}
    defaults = rows["defaults"]
    # On a CPU the batch is the CPU setting: 12 scenes in ceil(12 / 4) pipeline calls, not 12
    assert defaults["image_calls"] == -(-gpu.SCENES // CPU_MAX_BATCH)
    assert rows["one picture per pipeline call"]["image_calls"] == gpu.SCENES
    assert 1 <= defaults["critic_passes"] <= defaults["image_calls"]  # pictures judged as they come, in groups
    assert rows["critic: one picture per pass"]["critic_passes"] == gpu.SCENES
    for label in ("channels-last on", "full VAE", "critic: preprocessing in torch",
                  "no batch windows (requests already waiting)"):
        assert rows[label]["seconds"] > 0 and rows[label]["peak_bytes"] > 0
    text = "\n".join(result["lines"])
    assert "pictures/s" in text and "peak RSS" in text and "tiny configs" in text
    assert all(label in text for label in rows)


def test_real_sizes_need_a_gpu_and_say_so() -> None:
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        gpu.run(real=True, device="cpu")
