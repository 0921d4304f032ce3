"""`lessonforge doctor`: what this machine has for making lessons, each finding with its fix.

Checks, in order: the programs (ffmpeg, ffprobe, eSpeak NG), fonts for each script slides are set in,
libraqm (right-to-left and Indic shaping), the GPU and memory, the model cache and what is in it, the
API keys that are set (never their values), and whether the configured services answer. Each check is
a :class:`Finding`; the CLI prints them. Nothing here downloads or changes anything.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from lessonforge.tools.base import LessonForgeError
from lessonforge.tools.secrets import SECRET_VARS

Status = Literal["ok", "warn", "fail"]
APT = "sudo apt-get install -y"
REACH_TIMEOUT_S = 3.0

# A sample per script the slides may be set in, the language it is typeset for, and the Debian
# package with a font for it.
SCRIPTS: tuple[tuple[str, str, str, str], ...] = (
    ("Latin", "Photosynthèse", "fr", "fonts-dejavu-core"),
    ("Greek", "Φωτοσύνθεση", "el", "fonts-dejavu-core"),
    ("Cyrillic", "Фотосинтез", "ru", "fonts-dejavu-core"),
    ("Arabic", "التمثيل الضوئي", "ar", "fonts-noto-core"),
    ("Hebrew", "פוטוסינתזה", "he", "fonts-noto-core"),
    ("Devanagari", "प्रकाश संश्लेषण", "hi", "fonts-noto-core"),
    ("Bengali", "সালোকসংশ্লেষণ", "bn", "fonts-noto-core"),
    ("Thai", "การสังเคราะห์ด้วยแสง", "th", "fonts-noto-core"),
    ("Japanese", "光合成", "ja", "fonts-noto-cjk"),
    ("Korean", "광합성", "ko", "fonts-noto-cjk"),
    ("Chinese", "光合作用", "zh", "fonts-noto-cjk"),
)
EDGE_HOST = ("speech.platform.bing.com", 443)  # where edge-tts speaks


@dataclass(frozen=True)
class Finding:
    """One line of the report: what was checked, what was found, and how to fix it when not ok."""

    area: str
    status: Status
    found: str
    fix: str = ""


def _version(exe: str) -> str:
    """``ffmpeg version 5.1.6`` from the program's ``-version`` output."""
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return f"does not run ({err})"
    return " ".join((out.stdout or out.stderr or "?").split()[:3])


def programs() -> list[Finding]:
    from lessonforge.tools.media.video import ffmpeg_exe, ffprobe_exe
    from lessonforge.tools.speech.espeak import _engine

    found: list[Finding] = []
    try:
        exe = ffmpeg_exe()
        found.append(Finding("ffmpeg", "ok", f"{_version(exe)} ({exe})"))
    except LessonForgeError as err:
        found.append(Finding("ffmpeg", "fail", str(err), f"{APT} ffmpeg"))
    probe = ffprobe_exe()
    if probe:
        found.append(Finding("ffprobe", "ok", f"{_version(probe)} ({probe})"))
    else:
        found.append(Finding("ffprobe", "fail", "not found on PATH (needed to measure audio and video)",
                             f"{APT} ffmpeg"))
    engine = _engine()
    cli = shutil.which("espeak-ng")
    if engine is not None:
        found.append(Finding("eSpeak NG", "ok", f"libespeak-ng loaded (data in {engine.data_path}); word times "
                                                "from the engine"))
    elif cli:
        found.append(Finding("eSpeak NG", "warn", f"only the command line ({cli}): word times are estimated",
                             f"{APT} libespeak-ng1"))
    else:
        found.append(Finding("eSpeak NG", "fail", "not installed: no offline voice when edge-tts is unreachable",
                             f"{APT} espeak-ng libespeak-ng1"))
    return found


def fonts() -> list[Finding]:
    from lessonforge.tools.media.slides import choose_font, raqm_available

    found: list[Finding] = []
    for script, sample, language, package in SCRIPTS:
        try:
            choice = choose_font(sample, language=language)
        except LessonForgeError as err:
            found.append(Finding(f"font {script}", "fail", str(err), f"{APT} {package}"))
            continue
        if choice.missing:
            found.append(Finding(f"font {script}", "warn", f"no installed font draws {choice.missing!r} "
                                                         "(slides would show boxes)", f"{APT} {package}"))
        else:
            found.append(Finding(f"font {script}", "ok", Path(choice.path).name))
    if raqm_available():
        found.append(Finding("libraqm", "ok", "Pillow shapes right-to-left and Indic text"))
    else:
        found.append(Finding("libraqm", "warn", "Pillow cannot shape text: Arabic, Hebrew and Indic slides are "
                                                "set letter by letter", f"{APT} libraqm0"))
    return found


def _meminfo() -> dict[str, int]:
    info: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return info


def hardware() -> list[Finding]:
    found: list[Finding] = []
    torch: Any
    try:
        import torch
    except ImportError:
        found.append(Finding("torch", "fail", "not installed: no local models", "pip install 'lessonforge[local]'"))
        torch = None
    if torch is not None:
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                free, total = torch.cuda.mem_get_info(i)
                found.append(Finding(f"GPU {i}", "ok", f"{props.name}, {total / 2**30:.0f} GiB "
                                                       f"({free / 2**30:.0f} GiB free); torch {torch.__version__}"))
        else:
            found.append(Finding("GPU", "warn", f"no CUDA GPU (torch {torch.__version__}): local models run on the "
                                                "CPU, a 2-minute lesson's pictures take minutes",
                                 "use --images none for text-first slides, or a machine with an NVIDIA GPU"))
    mem = _meminfo()
    if mem.get("MemTotal"):
        avail = mem.get("MemAvailable", 0)
        status: Status = "ok" if avail >= 6 * 2**30 else "warn"
        found.append(Finding("memory", status, f"{avail / 2**30:.1f} GiB free of {mem['MemTotal'] / 2**30:.1f} GiB",
                             "" if status == "ok" else "the local LLM and SD-Turbo need about 6 GiB: close "
                             "other programs, or use an OpenAI-compatible server (OPENAI_BASE_URL)"))
    return found


def _needed(settings: Any) -> set[str]:
    """The Hub models the settings' backends would fetch on first use (not cached yet)."""
    from lessonforge.agent.context import create

    wanted: set[str] = set()
    for kind, spec in (("llm", settings.llm_spec()), ("images", settings.images), ("critic", settings.critic)):
        try:
            backend = create(kind, spec, device=settings.device)
            if backend is not None:
                wanted |= {info.id for info in backend.downloads()}
        except LessonForgeError:  # e.g. a local backend without the [local] extra (hardware() says so)
            continue
    return wanted


def model_cache(settings: Any) -> list[Finding]:
    from lessonforge.tools import hub as models

    cache = models.hub_cache_dir()
    offline = " (HF_HUB_OFFLINE is set)" if models.hf_offline() else ""
    found = [Finding("model cache", "ok", f"{cache}{offline}")]
    needed = _needed(settings)
    for rec in models.model_records():
        if rec.cached:
            found.append(Finding(f"model {rec.id}", "ok", f"cached ({rec.info.purpose})"))
        elif rec.id in needed:
            found.append(Finding(f"model {rec.id}", "warn",
                                 f"not cached: {rec.info.size_text} to fetch on first use ({rec.info.purpose})",
                                 f"lessonforge models pull {rec.id}"))
        else:
            found.append(Finding(f"model {rec.id}", "ok",
                                 f"not cached, not used by these settings ({rec.info.purpose})"))
    return found


def keys(env: dict[str, str] | None = None) -> list[Finding]:
    """Which secrets and service settings are set: the names, never a secret's value."""
    env = dict(os.environ) if env is None else env
    found = []
    for name in SECRET_VARS:
        if env.get(name, "").strip():
            found.append(Finding(name, "ok", "set (value not shown)"))
        else:
            found.append(Finding(name, "ok", "not set: OpenAI models are not used unless OPENAI_BASE_URL names a "
                                             "server"))
    base = env.get("OPENAI_BASE_URL", "").strip()
    if base:
        from lessonforge.tools.llm.openai import display_url

        found.append(Finding("OPENAI_BASE_URL", "ok", display_url(base)))
    chosen = sorted(k for k in env if k.startswith("LESSONFORGE_") and k != "LESSONFORGE_CACHE_DIR")
    if chosen:
        found.append(Finding("settings", "ok", ", ".join(f"{k}={env[k]}" for k in chosen)))
    return found


def _reach(host: str, port: int, timeout: float = REACH_TIMEOUT_S) -> str:
    """``""`` when a TCP connection to host:port opens within ``timeout``, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ""
    except OSError as err:
        return str(err) or type(err).__name__


def services(settings: Any, reach: Callable[[str, int], str] = _reach) -> list[Finding]:
    """Whether the services the settings use answer: the LLM server (GET /models, the key checked), the
    speech service, and the Hugging Face Hub when a model still has to be fetched."""
    from lessonforge.tools import hub as models
    from lessonforge.tools import registry

    found: list[Finding] = []
    llm_spec = settings.llm_spec()
    parsed = registry.parse("llm", llm_spec)
    if parsed is not None and parsed.backend == "openai":
        try:
            where = asyncio.run(_check_llm(llm_spec))
            found.append(Finding(f"LLM {llm_spec}", "ok", f"the server at {where} answers and takes the key"))
        except LessonForgeError as err:
            found.append(Finding(f"LLM {llm_spec}", "fail", str(err),
                                 "as the message says; or unset OPENAI_API_KEY/OPENAI_BASE_URL for a local model"))
    else:
        found.append(Finding(f"LLM {llm_spec}", "ok", "no service (runs here)"
                             + ("; set OPENAI_API_KEY or OPENAI_BASE_URL to use a server" if parsed and
                                parsed.backend == "local" else "")))
    speech = registry.parse("speech", settings.speech)
    if speech is not None and speech.backend == "edge":
        why = reach(*EDGE_HOST)
        if why:
            found.append(Finding("speech edge-tts", "warn", f"{EDGE_HOST[0]} unreachable ({why}): eSpeak NG "
                                                             "speaks instead (robotic)",
                                 "connect to the internet, or choose an offline voice: --speech piper: "
                                 "(pip install 'lessonforge[piper]') or kokoro:"))
        else:
            found.append(Finding("speech edge-tts", "ok", f"{EDGE_HOST[0]} reachable"))
    elif speech is not None and speech.backend == "openai":
        url = urlsplit(os.environ.get("OPENAI_BASE_URL", "").strip() or "https://api.openai.com/v1")
        why = reach(url.hostname or "", url.port or (443 if url.scheme == "https" else 80))
        found.append(Finding(f"speech {settings.speech}", "fail" if why else "ok",
                             f"{url.hostname} {'unreachable (' + why + ')' if why else 'reachable'}",
                             "check OPENAI_BASE_URL and the network, or choose --speech edge: or espeak:"
                             if why else ""))
    else:
        found.append(Finding(f"speech {settings.speech}", "ok", "no service (runs here)"))
    uncached = sorted(_needed(settings))
    if uncached and not models.hf_offline():
        hub = urlsplit(os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co")
        why = reach(hub.hostname or "", hub.port or 443)
        found.append(Finding("Hugging Face Hub", "warn" if why else "ok",
                             f"{hub.hostname} {'unreachable (' + why + ')' if why else 'reachable'}; "
                             f"{len(uncached)} model(s) still to fetch",
                             "connect to the internet or set HF_ENDPOINT to a mirror; or do without: --images none "
                             "--critic none, an LLM server (OPENAI_BASE_URL)" if why else ""))
    return found


async def _check_llm(spec: str) -> str:
    """Reach the LLM server as `make` does before any work (GET /models); where it is."""
    from lessonforge.tools import registry
    from lessonforge.tools.llm.openai import display_url

    llm = registry.create("llm", spec)
    try:
        await llm.check()
    finally:
        await llm.aclose()
    return display_url(llm.base_url)


def diagnose(settings: Any, reach: Callable[[str, int], str] = _reach) -> list[Finding]:
    """Every check, in the order the report shows them."""
    return [*programs(), *fonts(), *hardware(), *model_cache(settings), *keys(), *services(settings, reach)]
