from __future__ import annotations

import asyncio
import os
import threading

import pytest

from lessonforge.tools.cache import (
    AssetStore,
    atomic_path,
    atomic_write_bytes,
    content_key,
    link_or_copy,
    thread_to_end,
)


def test_content_key_is_stable_and_sensitive():
    a = content_key("speech", "edge:", "hello", {"b": 1, "a": 2})
    assert a == content_key("speech", "edge:", "hello", {"a": 2, "b": 1})
    assert a != content_key("speech", "edge:", "hello!", {"a": 2, "b": 1})


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "out.bin"
    atomic_write_bytes(final, b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert final.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]


def test_store_round_trip_and_links(tmp_path):
    store = AssetStore(tmp_path / "store")
    key = content_key("x")
    assert store.get(key, ".txt") is None
    with store.put(key, ".txt") as tmp:
        tmp.write_text("data")
    got = store.get(key, ".txt")
    assert got is not None and got.read_text() == "data"
    dst = link_or_copy(got, tmp_path / "scene" / "file.txt")
    assert dst.read_text() == "data"
    store.put_json(key, {"a": 1})
    assert store.get_json(key) == {"a": 1}


def test_same_words_spoken_at_once_share_one_synthesis(tmp_path):
    from lessonforge.tools.cached import CachedSpeech
    from lessonforge.tools.fakes import FakeSpeech

    inner = FakeSpeech()
    speech = CachedSpeech(inner, AssetStore(tmp_path / "store"))

    async def go():
        return await asyncio.gather(*(speech.speak("the same words", "v", tmp_path / f"s{i}.wav") for i in range(3)))

    results = asyncio.run(go())
    assert inner.calls == 1
    assert len({r.duration for r in results}) == 1
    assert len({(tmp_path / f"s{i}.wav").read_bytes() for i in range(3)}) == 1


def test_an_asset_and_its_metadata_land_as_one_step(tmp_path):
    from lessonforge.tools.cache import AssetStore

    store = AssetStore(tmp_path)
    key = "ab" * 8
    with pytest.raises(KeyboardInterrupt):  # killed after the file and its metadata, before they land
        with store.pair(key, ".bin") as out:
            out.path.write_bytes(b"half")
            out.meta = {"n": 1}
            raise KeyboardInterrupt
    assert store.lookup(key, ".bin") is None and not list(tmp_path.rglob("*.bin"))
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.tmp*"))
    with store.pair(key, ".bin") as out:
        out.path.write_bytes(b"whole")
        out.meta = {"n": 2}
    path, meta = store.lookup(key, ".bin")
    assert path.read_bytes() == b"whole" and meta == {"n": 2} and path.parent == store.pair_dir(key)
    calls = []
    assert store.produce(key, ".bin", lambda p: calls.append(p))[1] == {"n": 2} and calls == []  # reused
    with pytest.raises(ValueError, match="no metadata"), store.pair("cd" * 8, ".bin") as out:
        out.path.write_bytes(b"x")
    assert store.lookup("cd" * 8, ".bin") is None and not store.pair_dir("cd" * 8).exists()


def test_a_pair_finished_by_another_producer_stands_while_it_is_read(tmp_path):
    """Two producers of the same asset at once (two scenes with the same narration): the one that lands
    second keeps the first's pair, which its caller may be reading, and leaves no scratch folder."""
    store = AssetStore(tmp_path)
    key = "ef" * 8
    with store.pair(key, ".wav") as late:
        late.path.write_bytes(b"second")
        late.meta = {"n": 2}
        first, meta = store.produce(key, ".wav", lambda p: (p.write_bytes(b"first"), {"n": 1})[1])
        inode = first.stat().st_ino
    path, meta = store.lookup(key, ".wav")
    assert path == first and path.stat().st_ino == inode and path.read_bytes() == b"first" and meta == {"n": 1}
    assert not list(tmp_path.rglob("*.tmp*"))
    # an incomplete leftover (its metadata lost) is still replaced
    (store.pair_dir(key) / "meta.json").unlink()
    with store.pair(key, ".wav") as out:
        out.path.write_bytes(b"again")
        out.meta = {"n": 3}
    assert store.lookup(key, ".wav")[1] == {"n": 3}



def test_aproduce_keeps_a_finished_asset_even_when_cancelled_while_it_is_kept(tmp_path):
    """The async form: the asset is kept (after ``finish`` checks it) in one thread call, so cancelling the
    task once ``make`` is done cannot lose it; a failing check or ``make`` keeps nothing."""

    store = AssetStore(tmp_path)
    checking, release = threading.Event(), threading.Event()

    def slow_check(out):
        checking.set()
        release.wait(5)
        assert out.path.read_bytes() == b"audio" and out.meta == {"duration": 1.0}

    async def speak(path):
        await asyncio.to_thread(path.write_bytes, b"audio")
        return {"duration": 1.0}

    async def cancel_while_keeping():
        task = asyncio.create_task(store.aproduce("ab" * 8, ".wav", speak, finish=slow_check))
        await asyncio.to_thread(checking.wait, 5)
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_while_keeping())  # asyncio.run waits for the thread that keeps it
    path, meta = store.lookup("ab" * 8, ".wav")
    assert path.read_bytes() == b"audio" and meta == {"duration": 1.0}

    def reject(out):
        raise ValueError("broken audio")

    async def write_x(path):
        path.write_bytes(b"x")
        return {}

    with pytest.raises(ValueError, match="broken audio"):
        asyncio.run(store.aproduce("cd" * 8, ".wav", write_x, finish=reject))

    async def failing(path):
        path.write_bytes(b"x")
        raise RuntimeError("synthesis failed")

    with pytest.raises(RuntimeError, match="synthesis failed"):
        asyncio.run(store.aproduce("ef" * 8, ".wav", failing))
    assert store.lookup("cd" * 8, ".wav") is None and store.lookup("ef" * 8, ".wav") is None
    assert not [p for p in tmp_path.rglob("*.tmp*")]


def test_aproduce_cancelled_while_making_leaves_nothing(tmp_path):
    store = AssetStore(tmp_path)

    async def slow(path):
        path.write_bytes(b"half")
        await asyncio.sleep(30)
        return {}

    async def cancel_while_making():
        task = asyncio.create_task(store.aproduce("ab" * 8, ".mp4", slow))
        while not list(tmp_path.rglob("*.mp4")):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_while_making())
    assert store.lookup("ab" * 8, ".mp4") is None and not list(tmp_path.rglob("*.mp4"))


def test_produce_makes_once_and_places_the_asset_where_asked(tmp_path):
    """Look up, else make the file and its metadata, then link it into a scene folder: sync or async, and
    a plain ``make`` given to ``aproduce`` runs in a thread."""

    store = AssetStore(tmp_path / "store")
    threads = []

    def draw(path):
        threads.append(threading.current_thread())
        path.write_bytes(b"slide")
        return {"overflow": False}

    placed, meta = asyncio.run(store.aproduce("ab" * 8, ".png", draw, place=tmp_path / "s1" / "slide.png"))
    assert placed == tmp_path / "s1" / "slide.png" and placed.read_bytes() == b"slide" and meta == {"overflow": False}
    assert threads and threads[0] is not threading.main_thread()
    again, meta = store.produce("ab" * 8, ".png", draw, place=tmp_path / "s2" / "slide.png")
    assert len(threads) == 1 and again.read_bytes() == b"slide" and meta == {"overflow": False}  # found, not redrawn
    stored, _ = store.lookup("ab" * 8, ".png")
    assert again.stat().st_size == stored.stat().st_size and again != stored

    async def speak(path):
        path.write_bytes(b"wav")
        return {"duration": 0.5}

    with pytest.raises(TypeError, match="aproduce"):  # an async make needs the async form
        store.produce("cd" * 8, ".wav", speak)
    assert store.lookup("cd" * 8, ".wav") is None
    assert asyncio.run(store.aproduce("cd" * 8, ".wav", speak))[1] == {"duration": 0.5}


def test_how_a_run_ends_is_not_cut_short_by_a_cancel(tmp_path):
    """A failure being recorded (or the folder being let go) when the run is cancelled, as LangGraph
    cancels a run's other nodes once one raises: the work finishes, then the cancel goes through."""
    folder = tmp_path / "l"
    started, go_on, written = threading.Event(), threading.Event(), threading.Event()

    def record() -> str:
        started.set()
        go_on.wait(10)
        folder.mkdir()
        written.set()
        return "recorded"

    async def run() -> None:
        task = asyncio.create_task(thread_to_end(record))
        await asyncio.to_thread(started.wait, 10)  # the work is in its thread
        asyncio.get_running_loop().call_later(0.3, go_on.set)
        task.cancel()
        await asyncio.sleep(0.05)
        task.cancel()  # and again, as asyncio.run cancels what LangGraph already cancelled
        with pytest.raises(asyncio.CancelledError):
            await task
        assert written.is_set() and folder.is_dir()  # finished before the cancel went through
        assert await thread_to_end(str.upper, "ok") == "OK"

    asyncio.run(run())

    async def cancelled_at_once() -> None:  # asyncio.run cancels what is left the moment its main task ends
        asyncio.create_task(thread_to_end(record))
        await asyncio.sleep(0)

    folder.rmdir()
    written.clear()
    asyncio.run(cancelled_at_once())
    assert written.is_set()


def test_an_error_in_the_thread_reaches_the_caller():
    with pytest.raises(OSError, match="full"):
        asyncio.run(thread_to_end(_fail, "the disk is full"))


def _fail(message: str) -> None:
    raise OSError(message)
