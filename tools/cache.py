"""Content-addressed asset store and atomic writes.

Every artifact is named by a hash of what produced it (inputs, backend, parameters), so a rerun
after a crash, and an edit, reuse everything unchanged. Every write goes to a temporary file in
the same folder and is renamed over its final name, so no file under a final name is ever
half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import functools
import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

_umask = os.umask(0)
os.umask(_umask)
_FILE_MODE = 0o666 & ~_umask

HASH_LEN = 16  # hex characters kept in names: 64 bits, ample for one project's assets


def user_cache_dir() -> Path:
    """Per-user state kept between runs (measured voice and model rates): ``$LESSONFORGE_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/lessonforge``, else ``~/.cache/lessonforge``. Read at call time."""
    root = os.environ.get("LESSONFORGE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lessonforge"
    )
    return Path(root)


def read_state(path: Path) -> dict[str, Any]:
    """A per-user state file (JSON object); empty when it is missing or damaged, which is never fatal."""
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Write a per-user state file atomically; best effort: an unwritable cache never fails a lesson."""
    with contextlib.suppress(OSError):
        atomic_write_json(path, data)


def _canonical(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    return value


def content_key(*parts: Any) -> str:
    """A stable hash of JSON-able parts (pydantic models, dicts, lists, str, numbers, bytes)."""
    blob = json.dumps([_canonical(p) for p in parts], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:HASH_LEN]


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success it is fsynced and renamed onto ``final``.

    On any error the temporary file is removed and ``final`` is untouched. The temporary name keeps
    the final suffix so tools that guess formats from extensions (ffmpeg, Pillow) still work.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; finished files are ordinary 0644 (less umask)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(final: Path | str, data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def atomic_write_text(final: Path | str, text: str) -> Path:
    return atomic_write_bytes(final, text.encode("utf-8"))


def atomic_write_json(final: Path | str, value: Any) -> Path:
    return atomic_write_text(final, json.dumps(_canonical(value), indent=2, ensure_ascii=False) + "\n")


def _in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
    """What ``asyncio.to_thread`` runs, as a plain future: not a task, so shutting the loop down does not
    cancel it (it ends when the thread does)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    future = asyncio.get_running_loop().run_in_executor(None, call)
    # a caller cancelled meanwhile is gone: what the thread raised then is not logged as "never retrieved"
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


async def _wait_out(work: asyncio.Future[Any]) -> bool:
    """Wait until a thread's work is done, however often the caller is cancelled meanwhile (LangGraph
    cancels a run's other nodes, then ``asyncio.run`` cancels what is left); True if it was."""
    cancelled = False
    while not work.done():
        try:
            await asyncio.wait([work])
        except asyncio.CancelledError:
            cancelled = True
    return cancelled


async def thread_to_end(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``asyncio.to_thread``, except that a caller cancelled meanwhile still waits for the thread, which
    cannot be stopped, and is cancelled once it has finished: a file it is writing is complete (or gone)
    before the caller cleans up after it, and how a run ends (its failure recorded, its folder let go) is
    never cut short. The work is handed to the thread at once, before the first await."""
    work = _in_thread(fn, *args, **kwargs)
    if await _wait_out(work):
        raise asyncio.CancelledError
    return work.result()


class AssetStore:
    """Files named by content key under ``root`` (``root/ab/abcdef....ext``)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, key: str, suffix: str) -> Path:
        return self.root / key[:2] / f"{key}{suffix}"

    def get(self, key: str, suffix: str) -> Path | None:
        p = self.path(key, suffix)
        return p if p.is_file() and p.stat().st_size > 0 else None

    @contextlib.contextmanager
    def put(self, key: str, suffix: str) -> Iterator[Path]:
        """Write an asset: ``with store.put(key, ".wav") as tmp: write(tmp)``."""
        with atomic_path(self.path(key, suffix)) as tmp:
            yield tmp

    def put_bytes(self, key: str, suffix: str, data: bytes) -> Path:
        return atomic_write_bytes(self.path(key, suffix), data)

    def get_json(self, key: str) -> Any | None:
        p = self.get(key, ".json")
        if p is None:
            return None
        try:
            return json.loads(p.read_text("utf-8"))
        except (OSError, ValueError):
            return None

    def put_json(self, key: str, value: Any) -> Path:
        return atomic_write_json(self.path(key, ".json"), value)

    def pair_dir(self, key: str) -> Path:
        """Where an asset produced with its metadata lives: ``root/ab/KEY.pair/{asset.EXT, meta.json}``."""
        return self.root / key[:2] / f"{key}.pair"

    def lookup(self, key: str, suffix: str) -> tuple[Path, Any] | None:
        """A finished asset and its metadata (from :meth:`pair`), or None."""
        folder = self.pair_dir(key)
        path, meta = folder / f"asset{suffix}", folder / "meta.json"
        if not (path.is_file() and path.stat().st_size > 0):
            return None
        try:
            return path, json.loads(meta.read_text("utf-8"))
        except (OSError, ValueError):
            return None

    @contextlib.contextmanager
    def pair(self, key: str, suffix: str) -> Iterator[Pending]:
        """Produce an asset and its metadata as one step::

            with store.pair(key, ".wav") as out:
                make(out.path)          # sync or awaited: written into a temporary folder
                out.meta = {...}

        Both are written into a temporary folder that is renamed into place in one step, so the pair is
        atomic: a run killed at any moment leaves either both or neither under the final name (and a
        temporary folder that the next run sweeps away).
        """
        final = self.pair_dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=final.parent))
        try:
            out = Pending(scratch / f"asset{suffix}")
            yield out
            if out.meta is None:
                raise ValueError(f"no metadata was given for asset {key}{suffix}")
            meta = scratch / "meta.json"
            meta.write_text(json.dumps(_canonical(out.meta), ensure_ascii=False), "utf-8")
            for f in (out.path, meta):
                with open(f, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.chmod(f, _FILE_MODE)
            os.chmod(scratch, 0o777 & ~_umask)
            # The swap holds the shard's lock: a pair another producer (thread or process) finished
            # meanwhile stands, and ours is dropped; only an incomplete leftover is ever replaced.
            with _flock(final.parent):
                if self.lookup(key, suffix) is not None:
                    shutil.rmtree(scratch, ignore_errors=True)
                else:
                    if final.exists():  # an incomplete leftover of a run killed mid-write
                        shutil.rmtree(final, ignore_errors=True)
                    os.rename(scratch, final)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise

    def produce(self, key: str, suffix: str, make: Callable[[Path], Any], *,
                finish: Callable[[Pending], None] | None = None, place: Path | None = None) -> tuple[Path, Any]:
        """The asset ``key`` and its metadata, made first when missing: ``make(path)`` writes the file and
        returns the metadata, ``finish(out)`` (when given) checks them, and both land as one step
        (:meth:`pair`). With ``place`` the asset is also linked (or copied) there, and that path returned.
        Blocking: run it in a worker thread, or use :meth:`aproduce`."""
        found = self.lookup(key, suffix)
        if found is None:
            with self.pair(key, suffix) as out:
                out.meta = make(out.path)
                if inspect.iscoroutine(out.meta):  # an async make given to the blocking form
                    out.meta.close()
                    raise TypeError(f"make for asset {key}{suffix} returned an awaitable: pass an async function "
                                    "to aproduce")
                if finish is not None:
                    finish(out)
            found = self._made(key, suffix)
        return (link_or_copy(found[0], place), found[1]) if place is not None else found

    async def aproduce(self, key: str, suffix: str, make: Callable[[Path], Any], *,
                       finish: Callable[[Pending], None] | None = None, place: Path | None = None
                       ) -> tuple[Path, Any]:
        """:meth:`produce` for async code; the event loop never waits on the disk.

        ``make`` is an async function, awaited (a synthesis, a request), or a plain one, run with the rest
        in a worker thread. Once ``make`` is done, the check (``finish``) and the keeping run in one thread
        call: an asset that was made is kept even if the run is cancelled meanwhile, and a run cancelled
        earlier leaves nothing behind.
        """
        if not inspect.iscoroutinefunction(make):
            return await thread_to_end(self.produce, key, suffix, make, finish=finish, place=place)
        found = await asyncio.to_thread(self.lookup, key, suffix)
        if found is None:
            async with self._apair(key, suffix, finish=finish) as out:
                out.meta = await make(out.path)
            found = await asyncio.to_thread(self._made, key, suffix)
        if place is not None:
            return await asyncio.to_thread(link_or_copy, found[0], place), found[1]
        return found

    def _made(self, key: str, suffix: str) -> tuple[Path, Any]:
        found = self.lookup(key, suffix)
        if found is None:  # only when something outside removed it at once
            raise FileNotFoundError(f"asset {key}{suffix} was made but is gone from {self.pair_dir(key)}")
        return found

    @contextlib.asynccontextmanager
    async def _apair(self, key: str, suffix: str, *, finish: Callable[[Pending], None] | None = None
                     ) -> AsyncIterator[Pending]:
        """:meth:`pair` with its file work in threads; ``finish(out)`` runs in the thread call that keeps it."""
        pending = self.pair(key, suffix)
        entering = _in_thread(pending.__enter__)
        if await _wait_out(entering):  # its temporary file may exist by now: leave nothing behind
            if not entering.cancelled() and entering.exception() is None:
                stop = asyncio.CancelledError()
                await thread_to_end(pending.__exit__, type(stop), stop, None)
            raise asyncio.CancelledError
        out = entering.result()
        try:
            yield out
        except BaseException as err:
            if not await asyncio.to_thread(pending.__exit__, type(err), err, err.__traceback__):
                raise
        else:
            await asyncio.to_thread(_keep, pending, out, finish)


@contextlib.contextmanager
def _flock(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``folder`` itself (no lock file left behind), between threads and processes."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _keep(pending: contextlib.AbstractContextManager[Pending], out: Pending,
          finish: Callable[[Pending], None] | None) -> None:
    try:
        if finish is not None:
            finish(out)
    except BaseException as err:
        if not pending.__exit__(type(err), err, err.__traceback__):
            raise
    else:
        pending.__exit__(None, None, None)


class Pending:
    """An asset being produced by :meth:`AssetStore.pair`: where to write it, and its metadata."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta: Any = None


def link_or_copy(src: Path, dst: Path) -> Path:
    """Place ``src`` at ``dst`` (hard link when possible, else a copy), atomically."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and dst.stat().st_size == src.stat().st_size and file_hash(dst) == file_hash(src):
        return dst
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    return dst
