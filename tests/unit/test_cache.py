from __future__ import annotations

import os

import pytest

from tools.cache import AssetStore, atomic_path, atomic_write_bytes, content_key, link_or_copy


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
