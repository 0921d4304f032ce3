"""The optional extras: which packages a backend or command needs beyond the core install, and the error
that names the extra to install when they are missing.

The core install makes lessons with the online and eSpeak NG voices and no local models. ``[local]`` adds
torch, diffusers, transformers and llguidance (the local LLM, pictures and the CLIP critic), ``[voices]`` the
offline neural voices (Piper, Kokoro), ``[eval]`` what only the evals' metrics use.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from lessonforge.tools.base import ConfigError

LOCAL = "pip install 'lessonforge[local]'"
VOICES = "pip install 'lessonforge[voices]'"
EVAL = "pip install 'lessonforge[eval]'"


def missing(modules: Sequence[str]) -> list[str]:
    """Those of ``modules`` that are not installed (found without importing them)."""
    absent = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            absent.append(name)
    return absent


def require(what: str, modules: Sequence[str], install: str, instead: str = "") -> None:
    """ConfigError naming ``install`` (e.g. ``LOCAL``) when a module ``what`` needs is not installed.

    Backends call it before anything is downloaded; ``instead`` says how to do without ``what``.
    """
    absent = missing(modules)
    if absent:
        verb = "is" if len(absent) == 1 else "are"
        alternative = f", or do without it: {instead}" if instead else ""
        raise ConfigError(f"{what} needs {', '.join(absent)}, which {verb} not installed. "
                          f"Install {'it' if len(absent) == 1 else 'them'} with `{install}`{alternative}.")
