"""One typed settings object: defaults with descriptions; LESSONFORGE_* env fills gaps; explicit wins."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lessonforge.tools import registry
from lessonforge.tools.base import ConfigError
from lessonforge.tools.defaults import CLIP_CRITIC, DIFFUSERS_IMAGES, OPENAI_IMAGES, OPENAI_LLM

DEFAULT_LLM = f"openai:{OPENAI_LLM}"  # with OPENAI_API_KEY or OPENAI_BASE_URL set; else a local model
DEFAULT_IMAGES = f"diffusers:{DIFFUSERS_IMAGES}"
DEFAULT_SPEECH = "edge:"  # the voice follows the language; espeak-ng takes over offline
DEFAULT_CRITIC = f"clip:{CLIP_CRITIC}"


class Settings(BaseModel):
    """How a lesson is produced (what is produced is the LessonRequest)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    llm: str = Field(
        "",
        description="LLM backend, BACKEND:MODEL (env LESSONFORGE_LLM); empty: chosen when an LLM is needed "
        "(llm_spec), openai: when OPENAI_API_KEY or OPENAI_BASE_URL is set, else a local model.",
    )
    images: str = Field(DEFAULT_IMAGES, description="Image backend or 'none' (env LESSONFORGE_IMAGES).")
    speech: str = Field(DEFAULT_SPEECH, description="Speech backend (env LESSONFORGE_SPEECH).")
    critic: str = Field(DEFAULT_CRITIC, description="Critic backend or 'none' (env LESSONFORGE_CRITIC).")
    speech_fallback: str = Field(
        "espeak:", description="Offline speech used when the speech service is unreachable ('none' or '' for none)."
    )
    device: str = Field("", description="Torch device for local models; empty picks CUDA when present.")
    max_attempts: int = Field(3, ge=1, le=10, description="Illustration attempts per scene before the best is kept.")
    critic_floor: float | None = Field(
        None,
        description="The critic's acceptance floor (CLIP: CLIPScore 0-2.5, default 0.65; openai: 1-5, default 3.5).",
    )
    critic_margin: float | None = Field(
        None, description="How much a picture must match its own scene better than any other (CLIP, default 0.02)."
    )
    words_per_minute: float = Field(
        150.0, gt=40, lt=300, description="Speaking rate used for word budgets (default voices speak ~150)."
    )
    fit_rounds: int = Field(2, ge=0, le=5, description="Rounds of narration rewrites for scenes off their word budget.")
    fit_tolerance: float = Field(
        0.25, gt=0, lt=1, description="A scene is off budget when its word count differs by more than this share."
    )
    scene_seconds: float = Field(15.0, ge=6, le=30, description="Typical scene length (short scenes teach better).")
    gap_seconds: float = Field(0.6, ge=0, le=3, description="Pause after each scene's narration.")
    reading_wpm: float = Field(
        180.0, gt=50, description="On-screen reading speed: a slide stays up at least this long for its text."
    )
    image_size: int = Field(512, ge=64, le=2048, description="Side of generated pictures in pixels.")
    fps: int = Field(24, ge=1, le=60, description="Video frame rate.")
    lexicon: str = Field("", description="Pronunciation lexicon file (term -> spoken form), applied to speech only.")
    burn_subtitles: bool = Field(False, description="Draw styled captions into the video as well as writing SRT/VTT.")
    motion: bool = Field(False, description="Gentle pan/zoom on pictures and fades between scenes (slower to encode).")
    builds: bool = Field(True, description="Slides build with the voice: key phrases appear as they are said, the "
                         "one being said highlighted; a question's answer is revealed after a pause. Off: one still "
                         "per scene.")
    cards: bool = Field(True, description="A title card opens the lesson (over the first seconds of its hook) and "
                        "an end card closes it (a few silent seconds, counted in the target length).")
    answer_pause: float = Field(3.0, ge=0, le=10, description="Seconds of thinking time between a question and its "
                                "spoken answer.")
    clips: str = Field("none", description="Motion clips for scenes that need motion, BACKEND:MODEL (veo:MODEL, "
                       "videos:MODEL) or 'none' (env LESSONFORGE_CLIPS).")
    clip_budget: float = Field(2.0, ge=0, description="Most dollars one lesson may spend on clips; a clip that would "
                               "go over it is not requested (the scene gets a picture).")
    clip_price: float | None = Field(None, ge=0, description="Dollars per second of clip, for a model whose list "
                                     "price is not known (default: the list price).")
    image_quality: str = Field("auto", pattern="^(low|medium|high|auto)$",
                               description=f"Quality of hosted pictures (openai:{OPENAI_IMAGES}): low, medium, high, "
                               "auto (a backend that does not take it refuses low, medium and high).")
    loudness_lufs: float | None = Field(
        -16.0, ge=-40, le=-5, description="Integrated loudness of the narration (EBU R128); null leaves it as spoken."
    )

    @field_validator("llm", "images", "speech", "critic", "clips")
    @classmethod
    def _spec(cls, v: str, info: Any) -> str:
        kind = {"llm": "llm", "images": "images", "speech": "speech", "critic": "critic",
                "clips": "clips"}[info.field_name]
        if kind == "llm" and not v.strip():  # the default, chosen when an LLM is needed
            return ""
        registry.parse(kind, v)  # raises ConfigError naming the known backends
        return v.strip()

    @field_validator("speech_fallback")
    @classmethod
    def _fallback(cls, v: str) -> str:
        text = v.strip()
        if text.lower() in ("", "none", "none:"):  # no fallback voice
            return ""
        registry.parse("speech", text)  # raises ConfigError naming the known backends
        return text

    @classmethod
    def load(cls, **explicit: Any) -> Settings:
        """Explicit values (flags) win; then LESSONFORGE_<FIELD> env vars; then defaults."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            env = os.environ.get(f"LESSONFORGE_{name.upper()}")
            if env is not None and env != "":
                values[name] = env
        values.update({k: v for k, v in explicit.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as err:
            raise ConfigError(describe_validation(err, prefix="setting")) from None


    def llm_spec(self) -> str:
        """The LLM to use: the one chosen, else the default for this environment and machine: OpenAI when
        a key or server is set, else a local model (`lessonforge.tools.hub`; the CUDA probe imports torch, so it
        runs only when an LLM is really needed and a run without one records none)."""
        if self.llm:
            return self.llm
        from lessonforge.tools.hub import default_llm_spec

        return default_llm_spec()


def describe_validation(err: ValidationError, prefix: str = "") -> str:
    """A pydantic error as one readable line per problem."""
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "value"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{prefix + ' ' if prefix else ''}{where}: {msg}")
    return "; ".join(lines)
