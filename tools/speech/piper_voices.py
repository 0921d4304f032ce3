"""Piper's voice catalogue: names, where each voice lives in ``rhasspy/piper-voices``, approximate sizes.

Data only (no Piper runtime), so the model table (tools/hub.py) and the backend (tools/speech/piper.py) both
read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lessonforge.tools.base import ConfigError
from lessonforge.tools.defaults import PIPER_VOICE

REPO = "rhasspy/piper-voices"
DEFAULT_VOICE = PIPER_VOICE
VOICE_MB = {"x_low": 28, "low": 63, "medium": 63, "high": 114}  # approximate .onnx sizes per quality

# One well-rated voice per language (the voices' own names in rhasspy/piper-voices).
DEFAULT_VOICES: dict[str, str] = {
    "en": "en_US-lessac-medium",
    "en-us": "en_US-lessac-medium",
    "en-gb": "en_GB-alan-medium",
    "de": "de_DE-thorsten-medium",
    "fr": "fr_FR-siwis-medium",
    "es": "es_ES-davefx-medium",
    "it": "it_IT-paola-medium",
    "pt": "pt_BR-faber-medium",
    "pt-br": "pt_BR-faber-medium",
    "ru": "ru_RU-irina-medium",
    "zh": "zh_CN-huayan-medium",
    "zh-cn": "zh_CN-huayan-medium",
}

VOICE_PATTERN = re.compile(
    r"^(?P<family>[a-z]{2,3})_(?P<region>[A-Z]{2})-(?P<name>[^-/\\]+)-(?P<quality>x_low|low|medium|high)$"
)



@dataclass(frozen=True)
class VoiceFiles:
    """A voice's model and its config, as paths in the repository (or on disk)."""

    key: str
    onnx: str
    config: str

    @property
    def size_mb(self) -> int:
        quality = self.key.rsplit("-", 1)[-1]
        return VOICE_MB.get(quality, 63)


def voice_files(voice: str) -> VoiceFiles:
    """Where a named voice lives in ``rhasspy/piper-voices``; ConfigError for a malformed name."""
    m = VOICE_PATTERN.match(voice)
    if m is None:
        raise ConfigError(
            f"{voice!r} is not a Piper voice name. Voices are named <lang>_<REGION>-<name>-<quality>, e.g. "
            f"{DEFAULT_VOICE}, en_GB-alan-medium, de_DE-thorsten-medium (all: https://huggingface.co/{REPO}), "
            "or give a path to a local .onnx voice."
        )
    code = f"{m['family']}_{m['region']}"
    folder = f"{m['family']}/{code}/{m['name']}/{m['quality']}"
    return VoiceFiles(voice, f"{folder}/{voice}.onnx", f"{folder}/{voice}.onnx.json")
