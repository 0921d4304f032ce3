"""Render benchmark: LessonForge's renderer against naive moviepy, side by side in one run.

    python benchmarks/render.py            # 2-minute 12-scene and 10-minute 60-scene lessons, 1080p
    python benchmarks/render.py --quick    # 30-second 3-scene and 60-second 6-scene lessons, 1080p

Each lesson is built once (1080p slides from lessonforge.tools.media.slides.compose_slide with
lessonforge.tools.fakes.FakeImages pictures, and one narration WAV of tones per scene), then every measurement
runs in its own subprocess so that its peak memory is its own:

    ours       what lessonforge.agent.nodes.assemble does: video.encode_segment and a
               lessonforge.tools.media.aactrack piece per scene (one ffmpeg per core), the pieces joined into one
               AAC track, assemble by copy
    moviepy    the naive way: an ImageClip per slide with its duration, concatenate_videoclips, the
               same narration as audio, write_videofile at 24 fps with moviepy's defaults
    re-render  ours after one scene was rewritten (new slide, shorter narration): its segment and its
               AAC piece encoded again, the rest from the cache as in the agent, then assemble
    motion     ours with --motion: lessonforge.tools.media.motion.encode_motion_segment per scene (pan/zoom, fades)

Times are wall-clock seconds inside the worker (imports and lesson building excluded, the same
for both). Peak RSS is the largest resident set of any one process of the run (the worker or an
ffmpeg it started; ``wait4``), and "tree" the largest sum over the worker and its children at once
(sampled every 20 ms). The table comes last, with the issue's targets checked against it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FPS = 24
SR = 24000
PAUSE_S = 0.6  # silence after each scene's narration, as the agent holds each slide a little longer
MOVIEPY_LIMIT_S = 600.0


# --------------------------------------------------------------------------- building a lesson


def scene_seconds(total: float, n: int) -> list[float]:
    """n scene lengths around total/n (8-20 s scenes vary), summing to ``total``."""
    raw = [1.0 + 0.25 * math.sin(1.7 * i + 0.3) for i in range(n)]
    scale = total / sum(raw)
    return [r * scale for r in raw]


def write_tones(path: Path, seconds: float, seed: int) -> None:
    """Narration stand-in: soft tones, one per "word" (as lessonforge.tools.fakes.FakeSpeech writes)."""
    import numpy as np

    t = np.arange(round(seconds * SR)) / SR
    word = 0.4
    freq = 180 + 40 * ((np.floor(t / word) * 7 + seed) % 5)
    env = np.clip(np.sin(np.pi * (t % word) / word), 0, 1) ** 0.5
    x = (0.25 * 32767 * env * np.sin(2 * np.pi * freq * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(x.tobytes())


def compose(i: int, n: int, title: str, picture, out: Path) -> list[int]:
    from lessonforge.tools.media import slides

    r = slides.compose_slide(title=title, bullets=[f"Key idea {i}", "A concrete example", "Why it matters"],
                             illustration=picture, footer="Benchmark lesson", index=i, total=n)
    r.image.save(out)
    return list(r.boxes["picture"])


def build_lesson(folder: Path, seconds: float, n: int) -> dict:
    """Slides, narration parts and holds for an n-scene lesson of ``seconds`` seconds."""
    from lessonforge.tools.base import ImageRequest
    from lessonforge.tools.fakes import FakeImages
    from lessonforge.tools.media.video import quantize_durations

    folder.mkdir(parents=True, exist_ok=True)
    holds = quantize_durations(scene_seconds(seconds, n), FPS)
    images = FakeImages()
    pictures = asyncio.run(images.generate([ImageRequest(prompt=f"a diagram of idea {i}", seed=i, width=768,
                                                         height=768) for i in range(1, n + 1)]))
    scenes = []
    for i, (hold, pic) in enumerate(zip(holds, pictures, strict=True), 1):
        slide = folder / f"slide{i:02d}.png"
        box = compose(i, n, f"Scene {i}: an idea worth a slide", pic.image, slide)
        wav = folder / f"narration{i:02d}.wav"
        write_tones(wav, hold - PAUSE_S, i)
        scenes.append({"slide": str(slide), "wav": str(wav), "hold": hold, "gap": PAUSE_S,
                       "title": f"Scene {i}", "box": box})
    # the edited scene for the re-render: same picture, another title
    k = n // 2
    edited = folder / "edited.png"
    compose(k + 1, n, "Scene edited by hand: a new title", pictures[k].image, edited)
    edited_hold = max(2.0, holds[k] - 2.0)  # the rewritten narration is shorter
    edited_wav = folder / "edited.wav"
    write_tones(edited_wav, edited_hold - PAUSE_S, 1000 + k)
    spec = {"scenes": scenes, "edited_index": k, "edited_slide": str(edited), "edited_wav": str(edited_wav),
            "edited_hold": edited_hold, "seconds": sum(holds)}
    (folder / "lesson.json").write_text(json.dumps(spec, indent=1))
    return spec


# --------------------------------------------------------------------------- workers (subprocesses)


def _chapters(spec: dict) -> list[tuple[str, float, float]]:
    out, t = [], 0.0
    for s in spec["scenes"]:
        out.append((s["title"], t, t + s["hold"]))
        t += s["hold"]
    return out


def _starts(holds: list[float]) -> list[float]:
    out, t = [], 0.0
    for h in holds:
        out.append(t)
        t += h
    return out


def _piece(folder: Path, wav: str) -> tuple[Path, int]:
    """A scene's narration as AAC frames, cached by the narration file's name (as the agent caches by hash)."""
    from lessonforge.tools.media import aactrack

    out = folder / "cache" / (Path(wav).stem + ".aac")
    count = folder / "cache" / (Path(wav).stem + ".frames")
    if not out.is_file():
        count.write_text(str(aactrack.encode_piece(Path(wav), out)))
    return out, int(count.read_text())


def work_ours(folder: Path, spec: dict, *, motion: bool = False) -> None:
    """What lessonforge.agent.nodes.assemble does: per scene a video segment and an AAC piece, then one join by copy."""
    from concurrent.futures import ThreadPoolExecutor

    from lessonforge.tools.media import aactrack, video
    from lessonforge.tools.media import motion as mo

    scenes = spec["scenes"]
    holds = [s["hold"] for s in scenes]

    def encode(i: int, s: dict) -> Path:
        seg = folder / "cache" / f"{'motion' if motion else 'still'}{i:02d}.mp4"
        if motion:
            mo.encode_motion_segment(Path(s["slide"]), s["hold"], seg, fps=FPS, box=s["box"], motion=mo.motion_for(i))
        else:
            video.encode_segment(Path(s["slide"]), s["hold"], seg, fps=FPS)
        return seg

    # as lessonforge.agent.nodes.assemble does: ffmpeg runs for segments and AAC pieces, one per core at a time
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        seg_jobs = [pool.submit(encode, i, s) for i, s in enumerate(scenes, 1)]
        piece_jobs = [pool.submit(_piece, folder, s["wav"]) for s in scenes]
        segs = [j.result() for j in seg_jobs]
        pieces = [j.result() for j in piece_jobs]
    track = folder / "track.aac"
    aactrack.build_track(pieces, _starts(holds), sum(holds), track)
    video.assemble(segs, track, folder / ("motion.mp4" if motion else "ours.mp4"), chapters=_chapters(spec),
                   title="Benchmark lesson", fps=FPS, audio_length=sum(holds))


def work_rerender(folder: Path, spec: dict) -> None:
    """One scene rewritten (new title and a shorter narration): its segment and its AAC piece are encoded
    again; every other segment and piece comes from the full render's cache; joined by copy."""
    from lessonforge.tools.media import aactrack, video

    scenes = [dict(s) for s in spec["scenes"]]
    k = spec["edited_index"]
    segs = [folder / "cache" / f"still{i:02d}.mp4" for i in range(1, len(scenes) + 1)]
    if any(not s.is_file() for j, s in enumerate(segs) if j != k):
        raise SystemExit("run the full render first (the re-render reuses its segments)")
    scenes[k].update(wav=spec["edited_wav"], hold=spec["edited_hold"], title="Scene edited by hand")
    segs[k] = folder / "cache" / "edited.mp4"
    video.encode_segment(Path(spec["edited_slide"]), scenes[k]["hold"], segs[k], fps=FPS)
    pieces = [_piece(folder, s["wav"]) for s in scenes]
    holds = [s["hold"] for s in scenes]
    track = folder / "rerender.aac"
    aactrack.build_track(pieces, _starts(holds), sum(holds), track)
    video.assemble(segs, track, folder / "rerender.mp4", chapters=_chapters({"scenes": scenes}),
                   title="Benchmark lesson", fps=FPS, audio_length=sum(holds))


def work_moviepy(folder: Path, spec: dict) -> None:
    from moviepy import AudioFileClip, ImageClip, concatenate_videoclips

    from lessonforge.tools.media import video

    scenes = spec["scenes"]
    track = folder / "track-moviepy.wav"  # the same narration as ours, joined the same way
    video.concat_wavs([s["wav"] for s in scenes], track, gap_s=[s["gap"] for s in scenes])
    clips = [ImageClip(s["slide"], duration=s["hold"]) for s in scenes]
    movie = concatenate_videoclips(clips).with_audio(AudioFileClip(str(track)))
    movie.write_videofile(str(folder / "moviepy.mp4"), fps=FPS, logger=None)


WORKERS = {
    "ours": lambda f, s: work_ours(f, s),
    "motion": lambda f, s: work_ours(f, s, motion=True),
    "rerender": work_rerender,
    "moviepy": work_moviepy,
}


def worker_main(kind: str, folder: Path) -> None:
    spec = json.loads((folder / "lesson.json").read_text())
    import lessonforge.tools.media.motion  # noqa: F401 - imports are not part of the render (lessonforge.tools.media.video comes with it)

    if kind == "moviepy":
        import moviepy  # noqa: F401
    os.chdir(folder)  # moviepy writes its temporary audio file into the working directory
    t = time.perf_counter()
    WORKERS[kind](folder, spec)
    print(json.dumps({"seconds": time.perf_counter() - t}))


# --------------------------------------------------------------------------- measuring


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        pass
    return 0


def _tree_rss_kb(pid: int) -> int:
    """Resident KB of ``pid`` and all its descendants, now (from /proc/*/stat parent links)."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _rss_kb(p)
        todo.extend(parents.get(p, []))
    return total


@dataclass
class Run:
    seconds: float
    peak_mb: float  # the largest single process
    tree_mb: float  # the largest sampled sum over the process tree


def measure(kind: str, folder: Path) -> Run:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", kind, str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            peak_tree = max(peak_tree, _tree_rss_kb(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"the {kind} worker failed (exit {proc.returncode}):\n{err.decode(errors='replace')[-3000:]}")
    seconds = json.loads(out.decode().strip().splitlines()[-1])["seconds"]
    return Run(seconds, usage.ru_maxrss / 1024, peak_tree / 1024)


def _probe_seconds(path: Path) -> float:
    from lessonforge.tools.media import video

    return video.probe(path).duration


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small lessons (a smoke run of a minute or two)")
    ap.add_argument("--keep", type=Path, default=None, help="build the lessons in this folder and keep them")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "FOLDER"), help=argparse.SUPPRESS)
    ap.add_argument("--build", nargs=3, metavar=("FOLDER", "SECONDS", "SCENES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main(args.worker[0], Path(args.worker[1]))
        return 0
    if args.build:
        build_lesson(Path(args.build[0]), float(args.build[1]), int(args.build[2]))
        return 0

    cases = [("30 s, 3 scenes", 30.0, 3), ("60 s, 6 scenes", 60.0, 6)] if args.quick else \
        [("2 min, 12 scenes", 120.0, 12), ("10 min, 60 scenes", 600.0, 60)]
    base = args.keep or Path(tempfile.mkdtemp(prefix="lf-bench-"))
    print(f"LessonForge render benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"lessons in {base}", flush=True)
    rows: list[dict] = []
    try:
        for c, (name, seconds, n) in enumerate(cases):
            folder = base / f"case{c}"
            t = time.perf_counter()
            # built in a subprocess: this process stays small, so the workers it starts do not
            # inherit a large resident set (a forked child's peak RSS starts at its parent's)
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--build", str(folder), str(seconds),
                            str(n)], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            spec = json.loads((folder / "lesson.json").read_text())
            print(f"\n[{name}] built {n} slides and narration in {time.perf_counter() - t:.1f} s", flush=True)
            row: dict = {"case": name, "seconds": spec["seconds"]}
            row["ours"] = measure("ours", folder)
            print(f"  ours:      {row['ours'].seconds:7.1f} s  peak {row['ours'].peak_mb:6.0f} MB  "
                  f"(video lasts {_probe_seconds(folder / 'ours.mp4'):.2f} s)", flush=True)
            row["rerender"] = measure("rerender", folder)
            print(f"  re-render: {row['rerender'].seconds:7.1f} s  after one scene was rewritten", flush=True)
            first_moviepy = next((r["moviepy"] for r in rows if r.get("moviepy")), None)
            estimate = first_moviepy.seconds * spec["seconds"] / rows[0]["seconds"] if first_moviepy else 0.0
            if estimate > MOVIEPY_LIMIT_S:
                row["moviepy"] = None
                row["moviepy_note"] = (
                    f"skipped: estimated {estimate:.0f} s from the shorter lesson (> {MOVIEPY_LIMIT_S:.0f} s)"
                )
                print(f"  moviepy:   {row['moviepy_note']}", flush=True)
            else:
                row["moviepy"] = measure("moviepy", folder)
                print(f"  moviepy:   {row['moviepy'].seconds:7.1f} s  peak {row['moviepy'].peak_mb:6.0f} MB  "
                      f"(video lasts {_probe_seconds(folder / 'moviepy.mp4'):.2f} s)", flush=True)
            if c == 0:
                row["motion"] = measure("motion", folder)
                print(f"  motion:    {row['motion'].seconds:7.1f} s  peak {row['motion'].peak_mb:6.0f} MB", flush=True)
            rows.append(row)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)

    print("\n" + report(rows))
    return 0


def report(rows: list[dict]) -> str:
    head = (
        f"{'case':<34} {'ours (s)':>9} {'moviepy (s)':>12} {'ratio':>7} {'peak RSS ours':>14} {'peak RSS moviepy':>17}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        o, m = r["ours"], r.get("moviepy")
        ratio = f"{m.seconds / o.seconds:6.1f}x" if m else "    -"
        mp = f"{m.seconds:12.1f}" if m else f"{'skipped':>12}"
        mrss = f"{m.peak_mb:6.0f} ({m.tree_mb:.0f}) MB" if m else "-"
        lines.append(f"{r['case']:<34} {o.seconds:9.1f} {mp} {ratio:>7} "
                     f"{f'{o.peak_mb:.0f} ({o.tree_mb:.0f}) MB':>14} {mrss:>17}")
        rr = r["rerender"]
        lines.append(f"{'  re-render, one scene rewritten':<34} {rr.seconds:9.1f} {'':>12} {'':>7} "
                     f"{f'{rr.peak_mb:.0f} ({rr.tree_mb:.0f}) MB':>14} {'':>17}")
        if "motion" in r:
            mo = r["motion"]
            lines.append(f"{'  --motion (pan/zoom + fades)':<34} {mo.seconds:9.1f} {'':>12} {'':>7} "
                         f"{f'{mo.peak_mb:.0f} ({mo.tree_mb:.0f}) MB':>14} {'':>17}")
    lines.append("peak RSS: largest single process (largest sampled sum over the process tree)")
    for r in rows:
        if r.get("moviepy_note"):
            lines.append(f"moviepy {r['case']}: {r['moviepy_note']}")
    first, last = rows[0], rows[-1]
    checks = []
    if first.get("moviepy"):
        ratio = first["moviepy"].seconds / first["ours"].seconds
        checks.append((f"{first['case']}: ours {ratio:.1f}x faster than naive moviepy", ratio >= 10, ">= 10x"))
    mem = last["ours"].peak_mb / first["ours"].peak_mb
    checks.append((f"{last['case']} peak memory {mem:.2f}x the {first['case']}'s", mem <= 1.5, "<= 1.5x"))
    for r in rows:
        share = r["rerender"].seconds / r["ours"].seconds
        checks.append((f"{r['case']}: re-render after one scene was rewritten {100 * share:.0f}% of a full render",
                       share <= 0.20, "<= 20%"))
    if "motion" in first:
        cost = first["motion"].seconds / first["ours"].seconds
        checks.append((f"{first['case']}: --motion costs {cost:.1f}x a still render", True, "reported"))
    lines.append("")
    lines += [f"[{'ok' if ok else 'MISSED'}] {text} (target {target})" for text, ok, target in checks]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
