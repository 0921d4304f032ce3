"""A refinement turn against a full make: editing one scene of 12 must cost <= 25% of making the lesson.

    python benchmarks/refine.py

Both run in this process with the shipped fakes (fast, deterministic backends), so the numbers measure
LessonForge's own work: the graph, the cache, typesetting and encoding. Prints a table and the ratio.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.edit import edit
from lessonforge.agent.fakes import FakeLLM
from lessonforge.agent.state import make_request
from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech

TARGET = 0.25


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (folder / "scenes").rglob("*") if p.is_file()}


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lf-refine-") as tmp:
        out = Path(tmp) / "lesson"
        os.environ["LESSONFORGE_CACHE_DIR"] = str(Path(tmp) / "cache")
        backends = dict(images=FakeImages(), speech=FakeSpeech(), critic=FakeCritic())
        t0 = time.perf_counter()
        manifest = await run.make(make_request(topic="how vaccines work", minutes=3.0), Settings.load(), out,
                                  llm=FakeLLM(), **backends)
        full = time.perf_counter() - t0
        n = len(manifest.scenes)
        before = _hashes(out)
        t0 = time.perf_counter()
        result = await edit(out, "make scene 5 simpler", llm=FakeLLM(), **backends)
        turn = time.perf_counter() - t0
        after = _hashes(out)
        changed = sorted({k.split("/")[1] for k in after if after[k] != before.get(k)})
        untouched = all(after.get(k) == v for k, v in before.items() if not k.startswith("scenes/05-"))
    ratio = turn / full
    print(f"{'case':<34}{'seconds':>9}")
    print(f"{f'make, {n} scenes':<34}{full:>9.2f}")
    print(f"{'edit one scene (' + result.action + ')':<34}{turn:>9.2f}")
    print(f"scenes produced again: {', '.join(changed) or 'none'}; other scenes byte-identical: {untouched}")
    ok = ratio <= TARGET and untouched and changed == [c for c in changed if c.startswith("05-")]
    print(f"[{'ok' if ok else 'MISSED'}] edit / make = {ratio:.1%} (target <= {TARGET:.0%})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
