"""Default model table, HF cache detection against a fake cache, offline pull, LLM auto-selection."""

from __future__ import annotations

import pytest

from lessonforge.tools import hub as models
from lessonforge.tools.base import ConfigError

SHA = "0123456789abcdef0123456789abcdef01234567"


def fake_cache(hub, repo_id: str, files: dict[str, bytes]) -> None:
    """Lay out one model repo the way huggingface_hub does: blobs, a snapshot of symlinks, refs/main."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SHA)
    for i, (name, data) in enumerate(files.items()):
        blob = repo / "blobs" / f"blob{i}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / SHA / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)


@pytest.mark.parametrize(
    ("env", "cuda", "expected"),
    [
        ({}, False, "local:Qwen/Qwen3-1.7B"),
        ({}, True, "local:Qwen/Qwen3-4B-Instruct-2507"),
        ({"OPENAI_API_KEY": "sk-test"}, False, "openai:gpt-6-luna"),
        ({"OPENAI_BASE_URL": "http://localhost:11434/v1"}, True, "openai:gpt-6-luna"),
        ({"OPENAI_API_KEY": "  "}, False, "local:Qwen/Qwen3-1.7B"),
        ({"LESSONFORGE_LLM": "local:Qwen/Qwen2.5-1.5B-Instruct", "OPENAI_API_KEY": "sk-test"}, False,
         "local:Qwen/Qwen2.5-1.5B-Instruct"),
        ({"LESSONFORGE_LLM": "openai:gpt-4.1"}, True, "openai:gpt-4.1"),
    ],
)
def test_default_llm_spec(env, cuda, expected):
    assert models.default_llm_spec(env, cuda=cuda) == expected


def test_default_llm_spec_reads_os_environ(monkeypatch):
    for name in ("LESSONFORGE_LLM", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert models.default_llm_spec(cuda=False) == "local:Qwen/Qwen3-1.7B"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert models.default_llm_spec(cuda=False) == "openai:gpt-6-luna"


def test_hub_cache_dir_follows_the_environment(tmp_path):
    assert models.hub_cache_dir({"HF_HOME": str(tmp_path)}) == tmp_path / "hub"
    assert models.hub_cache_dir({"HF_HOME": "/x", "HF_HUB_CACHE": str(tmp_path / "c")}) == tmp_path / "c"
    assert models.hub_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "huggingface" / "hub"
    assert models.hf_offline({"HF_HUB_OFFLINE": "1"}) and not models.hf_offline({"HF_HUB_OFFLINE": "0"})


def test_table_lists_every_default_with_a_size():
    ids = [m.id for m in models.MODELS]
    assert ids == ["Qwen/Qwen3-1.7B", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen3-4B-Instruct-2507",
                   "stabilityai/sd-turbo", "madebyollin/taesd", "openai/clip-vit-base-patch32"]
    assert all(m.size_mb > 0 and m.purpose and m.allow_patterns for m in models.MODELS)
    assert models.find("Qwen/Qwen3-1.7B").size_text == "4.1 GB"
    assert models.find("madebyollin/taesd").size_text == "10 MB"


def test_cache_detection_against_a_fake_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    hub = tmp_path / "hub"
    fake_cache(hub, "Qwen/Qwen3-1.7B", {"config.json": b"{}", "tokenizer.json": b"{}", "model.safetensors": b"x" * 100})
    fake_cache(hub, "madebyollin/taesd", {"diffusion_pytorch_model.safetensors": b"w"})  # no config.json
    records = {r.id: r for r in models.model_records()}
    assert records["Qwen/Qwen3-1.7B"].cached and records["Qwen/Qwen3-1.7B"].missing == ()
    assert not records["madebyollin/taesd"].cached and records["madebyollin/taesd"].missing == ("config.json",)
    assert not records["stabilityai/sd-turbo"].cached
    assert models.is_cached("Qwen/Qwen3-1.7B", ("config.json",))
    sizes = models.cached_repos()
    assert set(sizes) == {"Qwen/Qwen3-1.7B", "madebyollin/taesd"} and sizes["Qwen/Qwen3-1.7B"] >= 104
    assert models.cached_repos({"HF_HOME": str(tmp_path / "empty")}) == {}


def test_pull_offline_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"Qwen/Qwen3-1\.7B \(4\.1 GB\).*Unset HF_HUB_OFFLINE"):
        models.pull(["Qwen/Qwen3-1.7B"])
    with pytest.raises(ConfigError, match="some/other-model"):
        models.pull(["some/other-model"])


def test_pull_offline_of_a_cached_model_returns_its_snapshot(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_cache(tmp_path / "hub", "madebyollin/taesd",
               {"config.json": b"{}", "diffusion_pytorch_model.safetensors": b"w"})
    [folder] = models.pull(["madebyollin/taesd"])
    assert (folder / "config.json").exists() and folder.name == SHA


def test_pull_fetches_with_byte_progress_and_knows_the_size_first(fake_hub):
    weights = bytes(range(256)) * 12_000  # 3 MB
    fake_hub.repos["org/tiny-lm"] = {"config.json": b'{"model_type": "x"}', "tokenizer.json": b"{}",
                                     "model.safetensors": weights, "README.md": b"not needed"}
    [download] = models.plan_downloads([models.hub_model("org/tiny-lm")])
    assert download.size == len(weights) + 19 + 2  # the files the backend loads, README left out
    assert download.size_text == "3 MB"

    seen = []
    [folder] = models.pull(["org/tiny-lm"], progress=lambda *event: seen.append(event))
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (folder / "model.safetensors").read_bytes() == weights
    assert seen and {(m, unit) for m, _, _, unit in seen} == {("org/tiny-lm", "bytes")}
    done = [d for _, d, _, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][2] == download.size
    assert not any(path.endswith("README.md") for _, path in fake_hub.requests)
    assert models.plan_downloads([models.hub_model("org/tiny-lm")]) == []  # cached now: nothing to fetch
