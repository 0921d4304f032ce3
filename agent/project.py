"""The on-disk project: folder layout, the manifest (`lesson.json`), a run lock, atomic writes.

    DIR/
      lesson.mp4  lesson.srt  lesson.vtt  lesson.json
      scenes/NN-slug/      narration.wav  illustration.png  slide.png  attempts/NN-seedS.png
      .lessonforge/assets/ content-addressed store (every asset, by the hash of its inputs)
      .lessonforge/lock    held while a run writes here
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import time
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lessonforge.agent.config import describe_validation
from lessonforge.agent.schemas import Outline, Quiz, Script
from lessonforge.agent.state import AssetRef, Duration, LessonRequest, SceneRecord
from lessonforge.agent.understand import Understanding
from lessonforge.tools.base import ConfigError
from lessonforge.tools.cache import AssetStore, atomic_write_json, atomic_write_text, file_hash

MANIFEST = "lesson.json"
FORMAT = 1


def slugify(text: str, max_len: int = 40, fallback: str = "lesson") -> str:
    """A safe folder name: ASCII letters, digits and dashes only, never empty, never a path."""
    norm = unicodedata.normalize("NFKD", text)
    ascii_text = norm.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")[:max_len].strip("-")
    return slug or fallback


class VideoRecord(BaseModel):
    file: AssetRef
    srt: AssetRef
    vtt: AssetRef
    duration: float
    video_duration: float
    audio_duration: float
    width: int
    height: int
    chapters: list[tuple[str, float, float]] = Field(default_factory=list)
    loudness: dict[str, Any] = Field(default_factory=dict)  # the narration's EBU R128 measurements
    burned_subtitles: bool = False
    storyboard: AssetRef | None = None  # storyboard.png: every slide with its role and layout
    credits: list[str] = Field(default_factory=list)  # licences of third-party assets shown (icon sets)


class Manifest(BaseModel):
    """`lesson.json`: the truth about a lesson. `render` rebuilds the video from it alone."""

    model_config = ConfigDict(extra="ignore")

    format: int = FORMAT
    status: Literal["planned", "written", "producing", "done", "failed"] = "planned"
    created: str = ""
    updated: str = ""
    request: LessonRequest
    understood: Understanding | None = None  # the one-shot prompt and how it was read
    backends: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    outline: Outline | None = None
    script: Script | None = None
    quiz: Quiz | None = None  # the learner questions (lessonforge.agent.quiz)
    targets: list[float] = Field(default_factory=list)
    scenes: list[SceneRecord] = Field(default_factory=list)
    video: VideoRecord | None = None
    duration: Duration | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    fallbacks: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    usage: dict[str, int] = Field(default_factory=dict)
    error: str = ""


class Project:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.meta = self.root / ".lessonforge"
        self.store = AssetStore(self.meta / "assets")
        self.manifest_path = self.root / MANIFEST

    # ------------------------------------------------------------------ layout

    def scene_dir(self, index: int, title: str) -> Path:
        return self.root / "scenes" / f"{index:02d}-{slugify(title, fallback='scene')}"

    def rel(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.root)).as_posix()

    def ref(self, path: Path, key: str = "") -> AssetRef:
        return AssetRef(path=self.rel(path), sha256=file_hash(path), key=key)

    def resolve(self, ref: AssetRef) -> Path:
        """The absolute path of a manifest reference, refusing anything outside the project."""
        path = (self.root / ref.path).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ConfigError(f"{MANIFEST} points outside the project folder: {ref.path!r}; fix or remove that path")
        return path

    def prune_scene_dirs(self, keep: set[Path]) -> None:
        """Remove scene folders no longer in the lesson (after scenes were removed or renamed)."""
        scenes = self.root / "scenes"
        if not scenes.is_dir():
            return
        for child in scenes.iterdir():
            if child.is_dir() and child not in keep:
                shutil.rmtree(child, ignore_errors=True)

    # ------------------------------------------------------------------ checks

    def prepare(self) -> None:
        """Create the folder and prove it is writable, before any work is done."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"--out {self.root} is a file, not a folder; choose a folder path")
        try:
            self.meta.mkdir(parents=True, exist_ok=True)
            probe = self.meta / f".probe-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as err:
            reason = os.strerror(err.errno) if err.errno else str(err)
            raise ConfigError(
                f"cannot write to the output folder {self.root} ({reason}); choose another with --out "
                "or fix its permissions"
            ) from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the project for one run; a second run on the same folder is refused clearly."""
        self.meta.mkdir(parents=True, exist_ok=True)
        path = self.meta / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                raise ConfigError(
                    f"another LessonForge run (pid {holder}) is working in {self.root}; wait for it to "
                    "finish or use another --out folder"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self.sweep_temp()
            yield
        finally:
            os.close(fd)

    def discard_if_unused(self) -> None:
        """Remove the folder when it holds nothing but the run lock (a run that stopped before any work),
        so a failed start leaves no empty lesson behind. Called after the lock is released."""
        if not self.root.is_dir():
            return
        files = [p for p in self.root.rglob("*") if not p.is_dir()]
        if all(p == self.meta / "lock" for p in files):
            shutil.rmtree(self.root, ignore_errors=True)

    def sweep_temp(self) -> None:
        """Remove temporary files a killed run left behind (only called while holding the lock)."""
        for path in self.root.rglob(".*.tmp*"):
            if path.is_file() and ".tmp" in path.name:
                with contextlib.suppress(OSError):
                    path.unlink()
            elif path.is_dir() and ".tmp" in path.name:  # scratch folders (caption layers)
                shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------------ manifest

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def load(self) -> Manifest:
        if not self.manifest_path.is_file():
            raise ConfigError(
                f"no {MANIFEST} in {self.root}; make a lesson there first with lessonforge make TOPIC --out {self.root}"
            )
        try:
            data = json.loads(self.manifest_path.read_text("utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"{self.manifest_path} is not valid JSON ({err}); fix the file or make the lesson again"
            ) from None
        try:
            return Manifest.model_validate(data)
        except ValidationError as err:
            raise ConfigError(
                f"{self.manifest_path} has invalid fields: {describe_validation(err)}; fix them and run again"
            ) from None

    # ------------------------------------------------------------------ versions

    @property
    def versions_dir(self) -> Path:
        return self.meta / "versions"

    def _version_path(self, n: int) -> Path:
        return self.versions_dir / f"{n:04d}.json"

    def current_version(self) -> int:
        try:
            return int((self.versions_dir / "current").read_text().strip())
        except (OSError, ValueError):
            return 0

    def add_version(self, manifest: Manifest, note: str) -> int:
        """Keep this manifest as a new version (after the current one; later ones, undone, are dropped)."""
        n = self.current_version() + 1
        for path in self.versions_dir.glob("*.json"):
            if path.stem.isdigit() and int(path.stem) >= n:
                path.unlink()
        created = datetime.now(UTC).isoformat(timespec="seconds")
        atomic_write_json(
            self._version_path(n), {"note": note, "created": created, "manifest": manifest.model_dump(mode="json")}
        )
        atomic_write_text(self.versions_dir / "current", str(n))
        return n

    def versions(self) -> list[Version]:
        current = self.current_version()
        out = []
        for path in sorted(self.versions_dir.glob("*.json")):
            if not path.stem.isdigit():
                continue
            try:
                data = json.loads(path.read_text("utf-8"))
                m = data["manifest"]
                out.append(
                    Version(
                        number=int(path.stem),
                        note=data.get("note", ""),
                        created=data.get("created", ""),
                        current=int(path.stem) == current,
                        duration=(m.get("video") or {}).get("duration", 0.0),
                        scenes=len(m.get("scenes", [])),
                    )
                )
            except (OSError, ValueError, KeyError):
                continue
        return out

    def version_manifest(self, n: int) -> Manifest:
        try:
            data = json.loads(self._version_path(n).read_text("utf-8"))
            return Manifest.model_validate(data["manifest"])
        except (OSError, ValueError, KeyError, ValidationError):
            raise ConfigError(
                f"version {n} of {self.root} is missing or damaged; see lessonforge history {self.root}"
            ) from None

    def set_current_version(self, n: int) -> None:
        atomic_write_text(self.versions_dir / "current", str(n))

    def save(self, manifest: Manifest) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        manifest.created = manifest.created or now
        manifest.updated = now
        atomic_write_json(self.manifest_path, manifest.model_dump(mode="json"))


class Version(BaseModel):
    number: int
    note: str
    created: str
    current: bool = False
    duration: float = 0.0
    scenes: int = 0


def now() -> float:
    return time.perf_counter()
