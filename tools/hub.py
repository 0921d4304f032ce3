"""The local models LessonForge may download: what each is for, its size, whether it is cached.

``lessonforge models`` lists ``model_records()``; ``lessonforge models pull`` calls ``pull``. Models live
in the standard Hugging Face cache: ``HF_HUB_CACHE``, else ``HF_HOME``/hub, else
``~/.cache/huggingface/hub``; ``HF_HUB_OFFLINE=1`` forbids downloads. Both are read at call time, so a
changed environment takes effect without re-importing anything.

Sizes are a static table, the download each model's ``allow_patterns`` select (the files the backends
load: safetensors weights, configs and tokenizers), as listed on the Hub; they are approximate and
only shown to the user before a download.

``default_llm_spec(env)`` picks the LLM when none is given: ``LESSONFORGE_LLM`` if set; else the OpenAI
backend when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set; else a local model (a larger one when
CUDA is available).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lessonforge.tools.base import ConfigError
from lessonforge.tools.defaults import CLIP_CRITIC as CLIP
from lessonforge.tools.defaults import DIFFUSERS_IMAGES as IMAGES
from lessonforge.tools.defaults import KOKORO_MODEL, LOCAL_LLM, LOCAL_LLM_GPU, LOCAL_LLM_LIGHT, OPENAI_LLM, TINY_VAE
from lessonforge.tools.speech.piper_voices import DEFAULT_VOICE, REPO, voice_files

OPENAI_DEFAULT = f"openai:{OPENAI_LLM}"

_LLM_FILES = ("*.json", "*.safetensors", "merges.txt", "*.jinja")
_TRUTHY = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ModelInfo:
    """One downloadable default: the Hub id, what uses it, its approximate download and its files."""

    id: str
    purpose: str
    size_mb: int  # approximate download of the files in ``allow_patterns``
    allow_patterns: tuple[str, ...]
    check_files: tuple[str, ...]  # files whose presence in the cache means "cached"
    repo: str = ""  # the Hub repository when ``id`` is not one (a Piper voice: piper:<voice>)

    @property
    def repo_id(self) -> str:
        return self.repo or self.id

    @property
    def size_text(self) -> str:
        return human_size(self.size_mb)


@dataclass(frozen=True)
class ModelRecord:
    """What ``lessonforge models`` shows for one model."""

    info: ModelInfo
    cached: bool
    missing: tuple[str, ...]  # check files not in the cache

    @property
    def id(self) -> str:
        return self.info.id


MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(LOCAL_LLM, "LLM without an API key (default, CPU; Qwen3 1.7B, thinking off; bf16 weights)", 4060,
              _LLM_FILES, ("config.json", "tokenizer.json")),
    ModelInfo(LOCAL_LLM_LIGHT, "lighter local LLM (--llm local:Qwen/Qwen2.5-1.5B-Instruct; bf16)", 3090,
              _LLM_FILES, ("config.json", "tokenizer.json")),
    ModelInfo(LOCAL_LLM_GPU, "local LLM chosen when a CUDA GPU is present (Qwen3 4B Instruct 2507; bf16)", 8050,
              _LLM_FILES, ("config.json", "tokenizer.json")),
    ModelInfo(IMAGES, "illustrations (SD-Turbo, one step; fp32 safetensors as loaded)", 5210,
              ("model_index.json", "scheduler/*", "tokenizer/*", "*/config.json",
               "text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
               "vae/diffusion_pytorch_model.safetensors"),
              ("model_index.json", "unet/config.json")),
    ModelInfo(TINY_VAE, "fast image decoder on CPU (TAESD)", 10,
              ("config.json", "diffusion_pytorch_model.safetensors"), ("config.json",)),
    ModelInfo(CLIP, "picture critic (CLIP ViT-B/32)", 610,
              ("*.json", "merges.txt", "vocab.txt", "model.safetensors"), ("config.json",)),
)
OPTIONAL_MODELS: tuple[ModelInfo, ...] = (
    # listed, and pulled when named, but not by a bare `models pull`: their backends are optional extras
    ModelInfo(KOKORO_MODEL, "offline neural voices (--speech kokoro:, optional extra lessonforge[kokoro]; "
              "Kokoro-82M with its 54 voices)", 355,
              ("config.json", "kokoro-v1_0.pth", "voices/*.pt"),
              ("config.json", "kokoro-v1_0.pth", "voices/af_heart.pt")),
)  # the default Piper voice joins these in optional_models()


def piper_voice_model(voice: str) -> ModelInfo:
    """A Piper voice as a downloadable model: ``piper:<voice>`` in ``rhasspy/piper-voices``."""
    files = voice_files(voice)
    purpose = "offline neural voice (--speech piper:, optional extra lessonforge[piper])"
    if voice != DEFAULT_VOICE:
        purpose = f"Piper voice {voice}"
    return ModelInfo(f"piper:{voice}", purpose, files.size_mb, (files.onnx, files.config),
                     (files.onnx, files.config), repo=REPO)


def human_size(mb: float) -> str:
    if mb >= 1000:
        return f"{mb / 1000:.1f} GB"
    return f"{mb:.0f} MB" if mb >= 1 else f"{mb * 1000:.0f} kB"


# --------------------------------------------------------------------------- environment


def hf_offline(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def hub_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The Hugging Face hub cache the environment names (as huggingface_hub resolves it)."""
    env = os.environ if env is None else env
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def default_llm_spec(env: Mapping[str, str] | None = None, *, cuda: bool | None = None) -> str:
    """The LLM spec used when none is given (see the module doc). ``cuda`` overrides the CUDA probe."""
    env = os.environ if env is None else env
    chosen = env.get("LESSONFORGE_LLM", "").strip()
    if chosen:
        return chosen
    if env.get("OPENAI_API_KEY", "").strip() or env.get("OPENAI_BASE_URL", "").strip():
        return OPENAI_DEFAULT
    if cuda is None:
        cuda = _cuda_available()
    return f"local:{LOCAL_LLM_GPU if cuda else LOCAL_LLM}"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# --------------------------------------------------------------------------- cache


def hub_model(model_id: str, kind: str = "llm") -> ModelInfo:
    """What to fetch for ``model_id``: the table's entry, a Piper voice (``piper:<voice>``), else the files a
    backend of ``kind`` loads ("llm", "clip": safetensors, JSON and tokenizer files; "diffusers": a pipeline)."""
    known = find(model_id)
    if known is not None:
        return known
    if kind == "diffusers":
        return ModelInfo(model_id, "", 0, ("*.json", "*.txt", "*/diffusion_pytorch_model.safetensors",
                                           "*/model.safetensors"), ("model_index.json",))
    return ModelInfo(model_id, "", 0, _LLM_FILES + ("vocab.txt", "*.model"), ("config.json",))


def is_local(model_id: str) -> bool:
    """A folder or file on disk, not a Hub id."""
    return model_id.startswith(("/", ".", "~")) or Path(model_id).expanduser().exists()


def first_use(*wanted: tuple[str, str]) -> list[ModelInfo]:
    """What a backend's loading fetches from the Hub: a :func:`hub_model` for each (model, kind) that is
    named and not on disk."""
    return [hub_model(model, kind) for model, kind in wanted if model and not is_local(model)]


def progress_text(done: float, total: float, unit: str) -> str:
    """A download's progress as shown to the user: "1.2 GB of 4.1 GB" or "3 of 7 files"."""
    if unit == "bytes":
        return f"{human_size(done / 1e6)} of {human_size(total / 1e6)}"
    return f"{done:.0f} of {total:.0f} files"


def find(model_id: str) -> ModelInfo | None:
    """A known model, or a Piper voice named ``piper:<voice>``."""
    known = next((m for m in (*MODELS, *optional_models()) if m.id == model_id), None)
    if known is None and model_id.startswith("piper:"):
        return piper_voice_model(model_id.removeprefix("piper:").strip())
    return known


def optional_models() -> tuple[ModelInfo, ...]:
    """Models of optional backends: the default Piper voice."""
    return (*OPTIONAL_MODELS, piper_voice_model(DEFAULT_VOICE))


def missing_files(model_id: str, files: Iterable[str], env: Mapping[str, str] | None = None) -> list[str]:
    """Which of ``files`` of ``model_id`` are not in the hub cache (every one when the repo is absent)."""
    from huggingface_hub import try_to_load_from_cache

    cache = hub_cache_dir(env)
    missing = []
    for name in files:
        found = try_to_load_from_cache(model_id, name, cache_dir=cache)
        if not isinstance(found, str):  # None (unknown) or _CACHED_NO_EXIST (known absent)
            missing.append(name)
    return missing


def is_cached(model_id: str, files: Sequence[str] = ("config.json",), env: Mapping[str, str] | None = None) -> bool:
    return not missing_files(model_id, files, env)


def model_records(env: Mapping[str, str] | None = None) -> list[ModelRecord]:
    """Every default model with whether it is cached (and which key files are missing)."""
    records = []
    for info in (*MODELS, *optional_models()):
        missing = tuple(missing_files(info.repo_id, info.check_files, env))
        records.append(ModelRecord(info, cached=not missing, missing=missing))
    return records


def cached_repos(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """Every model repo in the cache with its size on disk in bytes (empty when there is no cache)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(hub_cache_dir(env))
    except CacheNotFound:
        return {}
    return {repo.repo_id: repo.size_on_disk for repo in info.repos if repo.repo_type == "model"}


# --------------------------------------------------------------------------- first use


@dataclass(frozen=True)
class Download:
    """A model that must be fetched before it can be used, and how many bytes that takes."""

    info: ModelInfo
    size: int | None  # bytes to fetch: asked of the Hub, else the table's size; None when unknown
    reachable: bool = True  # False: the Hub could not be reached (or refused access) to list the files

    @property
    def size_text(self) -> str:
        return human_size(self.size / 1e6) if self.size else "size unknown"


def plan_downloads(infos: Iterable[ModelInfo], env: Mapping[str, str] | None = None) -> list[Download]:
    """The models among ``infos`` that are not fully cached, with the bytes each download would take.

    The Hub is asked (a dry run lists the missing files and their sizes); when it cannot say, the
    table's size stands. Offline, nothing can be fetched: the list is empty and loading names what
    is missing.
    """
    if hf_offline(env):
        return []
    out: list[Download] = []
    seen: set[str] = set()
    for info in infos:
        if info.id in seen or is_cached(info.repo_id, info.check_files, env):
            continue
        seen.add(info.id)
        size, reachable = _missing_bytes(info, env)
        out.append(Download(info, size or (int(info.size_mb * 1e6) or None), reachable))
    return out


def _missing_bytes(info: ModelInfo, env: Mapping[str, str] | None) -> tuple[int | None, bool]:
    """(bytes the missing files take, whether the Hub answered)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import DryRunError, HfHubHTTPError

    try:
        with quiet_progress():
            files = snapshot_download(info.repo_id, cache_dir=hub_cache_dir(env),
                                      allow_patterns=list(info.allow_patterns), dry_run=True)
    except DryRunError:  # the repository could not be accessed: no connection, or access refused
        return None, False
    except (HfHubHTTPError, OSError, ValueError, TypeError):  # the download names the cause; TypeError: no dry runs
        return None, True
    sizes = [f.file_size for f in files if getattr(f, "will_download", False)]
    return (sum(s or 0 for s in sizes) if sizes else None), True


# --------------------------------------------------------------------------- pull

Progress = Callable[[str, float, float, str], None]  # (model id, done, total, unit: "bytes" or "files")


def pull(ids: Sequence[str | ModelInfo] | None = None, progress: Progress | None = None,
         env: Mapping[str, str] | None = None) -> list[Path]:
    """Download ``ids`` (default: every model in MODELS) into the hub cache; return their snapshot folders.

    Known ids fetch only the files their backends load, ``piper:<voice>`` that Piper voice's model and
    config; another Hub id fetches its safetensors, JSON and tokenizer files. ConfigError when offline (naming what
    is missing) or a download fails.
    """
    targets = [i if isinstance(i, ModelInfo) else hub_model(i) for i in (ids or [m.id for m in MODELS])]
    if hf_offline(env):
        missing = [t for t in targets if not is_cached(t.repo_id, t.check_files, env)]
        if missing:
            names = ", ".join(f"{t.id} ({t.size_text})" if t.size_mb else t.id for t in missing)
            raise ConfigError(
                f"HF_HUB_OFFLINE is set, so these models cannot be downloaded: {names}. Unset HF_HUB_OFFLINE "
                f"(and connect to the internet), then run `lessonforge models pull` again."
            )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    folders = []
    for target in targets:
        try:
            folder = snapshot_download(
                target.repo_id,
                cache_dir=hub_cache_dir(env),
                allow_patterns=list(target.allow_patterns),
                local_files_only=hf_offline(env),
                tqdm_class=_progress_class(target.id, progress),
            )
        except (HfHubHTTPError, OSError, ValueError) as err:
            raise hub_error(err, target.id, target.id, target.id) from None
        folders.append(Path(folder))
    return folders


def hub_error(err: Exception, repo: str, what: str, pull_id: str) -> ConfigError:
    """A failed Hub download of ``what`` (from ``repo``) as a ConfigError that names the fix; ``pull_id`` is
    what `lessonforge models pull` takes to fetch it again."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(err, GatedRepoError):  # a RepositoryNotFoundError too: asked first
        return ConfigError(f"{repo} is gated: accept its licence on huggingface.co and log in (`hf auth login`).")
    if isinstance(err, RepositoryNotFoundError):
        return ConfigError(f"No model {repo!r} on the Hugging Face Hub. Check the id.")
    text = " ".join(str(err).split())[:300]
    return ConfigError(
        f"Downloading {what} failed: {text}. Check the internet connection (or HF_ENDPOINT) and the free disk "
        f"space, then run `lessonforge models pull {pull_id}`."
    )


class NotOnHub(ConfigError):
    """A file the Hub says its repository does not have."""

    def __init__(self, repo: str, name: str) -> None:
        super().__init__(f"{repo} has no file {name}.")
        self.name = name


def hub_files(repo: str, names: Iterable[str], pull_id: str,
              env: Mapping[str, str] | None = None) -> tuple[dict[str, Path], list[str]]:
    """``names`` of ``repo`` from the hub cache, fetching what is missing unless HF_HUB_OFFLINE is set:
    (the paths found, the names neither cached nor downloadable now). Raises NotOnHub for a file the
    repository does not have, and :func:`hub_error` for any other failure."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
    )

    offline, cache = hf_offline(env), hub_cache_dir(env)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in names:
        try:
            with quiet_progress():
                found[name] = Path(hf_hub_download(repo, name, cache_dir=cache, local_files_only=offline))
        except LocalEntryNotFoundError:
            missing.append(name)
        except RemoteEntryNotFoundError:
            raise NotOnHub(repo, name) from None
        except (HfHubHTTPError, OSError, ValueError) as err:
            raise hub_error(err, repo, f"{name} of {repo}", pull_id) from None
    return found, missing


def _progress_class(model_id: str, progress: Progress | None) -> Any:
    """A silent tqdm class that forwards the hub's download progress to ``progress`` (library code never
    prints). The hub opens one bar for the bytes received ("Downloading bytes") and others (files done,
    bytes written); bytes are forwarded, or files where a hub version reports no bytes."""
    from tqdm.auto import tqdm

    state = {"bytes": False}

    class _Forward(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            desc = str(kwargs.get("desc") or "")
            self._unit = "bytes" if kwargs.get("unit") == "B" else "files"
            self._forward = progress is not None and (
                desc.startswith("Downloading") if self._unit == "bytes" else not state["bytes"]
            )
            state["bytes"] = state["bytes"] or (self._unit == "bytes" and self._forward)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self._done = 0.0

        def update(self, n: float | None = 1) -> bool | None:
            self._done += n or 0
            if self._forward and self.total and (self._unit == "bytes" or not state["bytes"]):
                progress(model_id, self._done, float(self.total or 0), self._unit)  # type: ignore[misc]
            return None

    return _Forward


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """Hide the hub's, transformers' and diffusers' progress bars while a model loads (library code never
    prints; the CLI shows its own progress). Each library's setting is restored afterwards."""
    restore: list[Callable[[], None]] = []
    for name in ("transformers.utils.logging", "diffusers.utils.logging"):
        try:
            lib = importlib.import_module(name)
        except ImportError:
            continue
        if lib.is_progress_bar_enabled():
            lib.disable_progress_bar()
            restore.append(lib.enable_progress_bar)
    import huggingface_hub.utils as hub

    if not hub.are_progress_bars_disabled():
        hub.disable_progress_bars()
        restore.append(hub.enable_progress_bars)
    try:
        yield
    finally:
        for undo in restore:
            undo()
