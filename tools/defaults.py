"""The model ids and voices LessonForge uses by default, and what replaces a model its provider retired.

This is the one place for them: the backends, the settings, the CLI's help and the error messages all
read from here. Checked against OpenAI's model pages and its deprecations page (2026-11-30):

- gpt-4.1-mini (the old default) is legacy and shuts down on 2027-01-14, with gpt-6-luna named as its
  replacement; gpt-6-luna takes images (the vision critic) and JSON-schema structured output.
- gpt-5-mini shuts down on 2026-12-11 (replacement gpt-6.1-terra), so it is not a default either.
- The gpt-4o-mini-tts-2025-03-20 snapshot was shut down on 2026-07-23; the alias gpt-4o-mini-tts now
  means the 2025-12-15 snapshot, which the default pins so a lesson sounds the same next month.

Local models (Hugging Face ids, their sizes and purposes) are listed in `lessonforge.tools.hub`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

OPENAI_LLM = "gpt-6-luna"  # plan, write, fit, edit, the eval judge
OPENAI_CRITIC = "gpt-6-luna"  # the vision critic (openai: critic backend): takes image inputs
OPENAI_TTS = "gpt-4o-mini-tts-2025-12-15"  # openai: speech backend
OPENAI_LLM_STRONGER = "gpt-6.1-terra"  # suggested when the default model cannot follow a schema
OPENAI_IMAGES = "gpt-image-1"  # openai: images backend

LOCAL_LLM = "Qwen/Qwen3-1.7B"  # local: LLM without an API key (CPU)
LOCAL_LLM_LIGHT = "Qwen/Qwen2.5-1.5B-Instruct"  # a lighter local LLM
LOCAL_LLM_GPU = "Qwen/Qwen3-4B-Instruct-2507"  # the local LLM chosen when a CUDA GPU is present
DIFFUSERS_IMAGES = "stabilityai/sd-turbo"  # diffusers: images backend
TINY_VAE = "madebyollin/taesd"  # its fast decoder on the CPU
CLIP_CRITIC = "openai/clip-vit-base-patch32"  # clip: critic backend

PIPER_VOICE = "en_US-lessac-medium"  # piper: speech
KOKORO_MODEL = "hexgrad/Kokoro-82M"  # kokoro: speech, the model
KOKORO_VOICE = "af_heart"  # and its voice

VEO_CLIPS = "veo-3.1-generate-preview"  # veo: clips backend
VIDEOS_CLIPS = "sora-2"  # videos: clips backend (any server with the OpenAI Videos API shape)


@dataclass(frozen=True)
class Retired:
    """A model its provider shut down (or has scheduled to), and the one that replaces it."""

    replacement: str
    shutdown: str  # YYYY-MM-DD


# OpenAI's deprecations page: model id -> replacement and shutdown date. Dated snapshots are listed
# as OpenAI lists them; an alias (gpt-4.1-mini) stops with its snapshots.
RETIRED: dict[str, Retired] = {
    "gpt-4o-mini-tts-2025-03-20": Retired("gpt-4o-mini-tts-2025-12-15", "2026-07-23"),
    "gpt-5": Retired("gpt-6.1-sol", "2026-12-11"),
    "gpt-5-2025-08-07": Retired("gpt-6.1-sol", "2026-12-11"),
    "gpt-5-mini": Retired("gpt-6.1-terra", "2026-12-11"),
    "gpt-5-mini-2025-08-07": Retired("gpt-6.1-terra", "2026-12-11"),
    "gpt-4o": Retired("gpt-6.1-sol", "2027-01-14"),
    "gpt-4o-2024-08-06": Retired("gpt-6.1-sol", "2027-01-14"),
    "gpt-4o-2024-11-20": Retired("gpt-6.1-sol", "2027-01-14"),
    "gpt-4o-mini": Retired("gpt-6-luna", "2027-01-14"),
    "gpt-4o-mini-2024-07-18": Retired("gpt-6-luna", "2027-01-14"),
    "gpt-4.1": Retired("gpt-6.1-sol", "2027-01-14"),
    "gpt-4.1-2025-04-14": Retired("gpt-6.1-sol", "2027-01-14"),
    "gpt-4.1-mini": Retired("gpt-6-luna", "2027-01-14"),
    "gpt-4.1-mini-2025-04-14": Retired("gpt-6-luna", "2027-01-14"),
}


def retired_hint(model: str, flag: str, today: date | None = None) -> str:
    """A sentence naming the replacement of ``model`` when its provider retired it, else ``""``.

    ``flag`` is how the user names the model (``--llm``, ``--speech``, ``--critic``).
    """
    found = RETIRED.get(model.strip().lower())
    if found is None:
        return ""
    when = date.fromisoformat(found.shutdown)
    said = (f"OpenAI shut {model} down on {found.shutdown}" if when <= (today or date.today())
            else f"OpenAI retires {model} on {found.shutdown}")
    return f"{said}; its replacement is {found.replacement}: pass {flag} openai:{found.replacement}."
