"""Content-addressed caching around any backend.

Each wrapper keys a result by the backend's full name and every input that shapes it, and keeps it
in the project's AssetStore. A rerun after a crash, or an edit, asks the backend again only for
what changed. The wrappers derive from the same bases as the backends and forward the interface (lifecycle
included) explicitly, so the agent cannot tell them from the backends.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from lessonforge.tools.base import (
    LLM,
    Image,
    ImageBackend,
    ImageGenerator,
    ImageRequest,
    LLMBackend,
    Message,
    Speech,
    SpeechError,
    SpeechSynth,
    SpeechWrapper,
    T,
    WordTiming,
    Wrapper,
)
from lessonforge.tools.cache import AssetStore, Pending, atomic_path, content_key, link_or_copy
from lessonforge.tools.media.audio import check_audio

V = TypeVar("V")



class PerLoop(Generic[V]):
    """One object per running event loop, made by ``factory`` on first use there: asyncio semaphores and
    HTTP connection pools are bound to the loop they are first used in. Dropped with their loop."""

    def __init__(self, factory: Callable[[], V]) -> None:
        self.factory = factory
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, V] = weakref.WeakKeyDictionary()

    def get(self) -> V:
        loop = asyncio.get_running_loop()
        value = self._by_loop.get(loop)
        if value is None:
            value = self._by_loop[loop] = self.factory()
        return value

    async def aget(self) -> V:
        """``get`` for a factory that blocks (an HTTP client reads its CA certificates): made in a thread, so the
        event loop never waits on it. Two first users at once may both make one; the first made is kept."""
        loop = asyncio.get_running_loop()
        value = self._by_loop.get(loop)
        if value is None:
            value = self._by_loop.setdefault(loop, await asyncio.to_thread(self.factory))
        return value

    def pop(self) -> V | None:
        """This loop's object, forgotten (None when it has none or no loop runs)."""
        try:
            return self._by_loop.pop(asyncio.get_running_loop(), None)
        except RuntimeError:
            return None

class CachedLLM(Wrapper, LLMBackend):
    inner: LLM

    def __init__(self, inner: LLM, store: AssetStore) -> None:
        super().__init__(inner)
        self.store = store
        self.hits = 0

    @property
    def usage(self) -> Any:
        return self.inner.usage

    async def structured(self, messages: list[Message], schema: type[T]) -> T:
        key = content_key("llm", self.name, [m.as_dict() for m in messages], schema.model_json_schema())
        cached = await asyncio.to_thread(self.store.get_json, key)
        if cached is not None:
            try:
                result = schema.model_validate(cached)
                self.hits += 1
                return result
            except ValueError:
                pass  # an older schema: ask again
        result = await self.inner.structured(messages, schema)
        await asyncio.to_thread(self.store.put_json, key, result.model_dump(mode="json"))
        return result


INFLIGHT_GRACE_S = 60.0  # how long closing waits for narrations in flight


class CachedSpeech(SpeechWrapper):
    def __init__(self, inner: SpeechSynth, store: AssetStore) -> None:
        super().__init__(inner)
        self.store = store
        self.hits = 0
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def key(self, text: str, voice: str) -> str:
        return content_key("speech", self.name, voice, text)

    async def _produce(self, key: str, text: str, voice: str) -> dict[str, Any]:
        # the file and its metadata land as one step; the check and the keeping, in one thread call as soon as
        # the speech is back, so a narration that was finished is kept even if the run is cancelled then
        async def make(path: Path) -> dict[str, Any]:
            speech = await self.inner.speak(text, voice, path)
            return {
                "duration": speech.duration,
                "voice": speech.voice,
                "backend": speech.backend,
                "words": [[w.word, w.start, w.end] for w in speech.words],
            }

        _, meta = await self.store.aproduce(key, ".wav", make, finish=self._check)
        return meta

    def _check(self, out: Pending) -> None:
        """A 0-byte, truncated or empty file is never accepted as narration."""
        try:
            real = check_audio(out.path)
        except SpeechError as err:
            raise SpeechError(f"{self.name} returned a broken audio file ({err})") from None
        if abs(real - out.meta["duration"]) > 0.05:
            raise SpeechError(f"{self.name} returned {real:.2f} s of audio but reported {out.meta['duration']:.2f} s; "
                              "the file is incomplete")

    async def speak(self, text: str, voice: str, out: Path) -> Speech:
        key = self.key(text, voice)
        found = await asyncio.to_thread(self.store.lookup, key, ".wav")
        if found is None:
            # scenes that say the same words at the same time share one synthesis
            task = self._inflight.get(key)
            if task is None:
                task = asyncio.ensure_future(self._produce(key, text, voice))
                self._inflight[key] = task
                task.add_done_callback(functools.partial(self._forget, key))
                # when every scene waiting for it was cancelled, its failure is not logged as never retrieved
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
            else:
                self.hits += 1
            await asyncio.shield(task)
            found = await asyncio.to_thread(self.store.lookup, key, ".wav")
            if found is None:
                raise SpeechError(f"{self.name}: the narration for this text was not stored; run again")
        else:
            self.hits += 1
        audio, meta = found
        await asyncio.to_thread(link_or_copy, audio, Path(out))
        return Speech(
            path=Path(out),
            duration=float(meta["duration"]),
            words=tuple(WordTiming(w, float(s), float(e)) for w, s, e in meta["words"]),
            voice=meta["voice"],
            backend=meta["backend"],
        )

    def _forget(self, key: str, _task: object) -> None:
        self._inflight.pop(key, None)

    async def aclose(self) -> None:
        """Let narrations already being spoken land (with their metadata) before the voice is closed: a
        run that stops on another scene's error keeps them, and leaves no half-written file behind."""
        pending = [t for t in self._inflight.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=INFLIGHT_GRACE_S)
        await self.inner.aclose()


class CachedImages(Wrapper, ImageBackend):
    inner: ImageGenerator

    def __init__(self, inner: ImageGenerator, store: AssetStore) -> None:
        super().__init__(inner)
        self.store = store
        self.hits = 0

    @property
    def shaped(self) -> bool:
        return self.inner.shaped

    def key(self, req: ImageRequest) -> str:
        return content_key("image", self.name, req.prompt, req.negative_prompt, req.seed, req.width, req.height)

    async def generate(self, requests: Sequence[ImageRequest]) -> list[Image]:
        results: list[Image | None] = await asyncio.to_thread(lambda: [self._cached(req) for req in requests])
        misses = [i for i, r in enumerate(results) if r is None]
        self.hits += len(requests) - len(misses)
        if misses:
            made = await self.inner.generate([requests[i] for i in misses])
            for i, img in zip(misses, made, strict=True):
                await asyncio.to_thread(save_png, img.image, self.store.path(self.key(requests[i]), ".png"))
                results[i] = img
        return [r for r in results if r is not None]

    def _cached(self, req: ImageRequest) -> Image | None:
        from PIL import Image as PILImage

        path = self.store.get(self.key(req), ".png")
        if path is None:
            return None
        with PILImage.open(path) as img:
            img.load()
            pic = img.convert("RGB")
            pic.info.update({k: v for k, v in img.info.items() if isinstance(v, str)})
        return Image(image=pic, prompt=req.prompt, seed=req.seed, model=self.name)


def save_png(img: Any, out: Path, **meta: str) -> Path:
    """Save a picture atomically, keeping its text metadata (and ``meta``) as PNG text chunks."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in {**img.info, **meta}.items():
        if isinstance(v, str):
            info.add_text(k, v)
    with atomic_path(out) as tmp:
        img.save(tmp, format="PNG", pnginfo=info)
    return out


__all__ = ["CachedImages", "CachedLLM", "CachedSpeech", "save_png"]
