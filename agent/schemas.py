"""Every LLM output as a pydantic model, each field described for the model that fills it.

These are requested as strict JSON-schema output, so: no defaults, no extra keys, every field
required. Limits the model must respect are stated in the descriptions and enforced by validators,
whose error messages are sent back to the model on a retry.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

VisualKind = Literal["illustration", "text"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutlineSection(_Strict):
    title: str = Field(description="Short section title, at most 8 words.")
    key_points: list[str] = Field(
        description="The 1-3 ideas this section teaches, each a short phrase."
    )
    seconds: float = Field(description="Narration time for this section in seconds.")


class Outline(_Strict):
    """The lesson plan: what the viewer will learn, in what order, with a time budget."""

    title: str = Field(description="The lesson's title as shown on the slides, at most 8 words.")
    hook: str = Field(description="A question or surprising fact that opens the lesson, one sentence.")
    objectives: list[str] = Field(
        description="2 to 4 learning objectives, each starting with a verb (explain, name, compare...)."
    )
    sections: list[OutlineSection] = Field(
        description="The sections in teaching order: the hook first, one idea per section, then a recap."
    )
    check_question: str = Field(description="One check-for-understanding question for the end.")
    check_answer: str = Field(description="The answer to the check question, one or two sentences.")

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: list[str]) -> list[str]:
        if not 1 <= len(v) <= 5:
            raise ValueError(f"give 2 to 4 objectives, not {len(v)}")
        return v

    @field_validator("sections")
    @classmethod
    def _sections(cls, v: list[OutlineSection]) -> list[OutlineSection]:
        if not v:
            raise ValueError("give at least one section")
        return v


class SceneDraft(_Strict):
    """One scene: one slide held while its narration plays."""

    title: str = Field(description="Slide title, at most 8 words.")
    bullets: list[str] = Field(
        description=(
            "0 to 5 on-screen key phrases of at most 8 words each: the words the narration stresses, "
            "never the narration itself."
        )
    )
    narration: str = Field(
        description=(
            "What the narrator says while the slide is shown: written for the ear, short sentences, "
            "conversational 'you', terms defined on first use, about the word count asked for."
        )
    )
    illustration_prompt: str = Field(
        description=(
            "A text-to-image prompt for one picture that shows this scene's idea: concrete subject, "
            "setting and style, no text or letters in the picture, at most 60 words."
        )
    )
    visual: VisualKind = Field(
        description="'illustration' for a picture beside the bullets, 'text' for a text-only slide."
    )

    @field_validator("bullets")
    @classmethod
    def _bullets(cls, v: list[str]) -> list[str]:
        if len(v) > 5:
            raise ValueError(f"at most 5 bullets per slide, got {len(v)}")
        return [b.strip() for b in v if b.strip()]

    @field_validator("narration", "title")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()


class Script(_Strict):
    """The whole lesson as scenes, in order."""

    title: str = Field(description="The lesson's title, at most 8 words.")
    scenes: list[SceneDraft] = Field(description="The scenes in order, as many as asked for.")

    @field_validator("scenes")
    @classmethod
    def _scenes(cls, v: list[SceneDraft]) -> list[SceneDraft]:
        if not v:
            raise ValueError("give at least one scene")
        return v


class NarrationRewrite(_Strict):
    """A scene's narration rewritten to fit its time budget."""

    narration: str = Field(description="The rewritten narration, close to the word count asked for.")

    @field_validator("narration")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()


class PromptRevision(_Strict):
    """An illustration prompt rewritten after the critic rejected its pictures."""

    prompt: str = Field(description="The new text-to-image prompt, at most 60 words, no text in the picture.")
    reason: str = Field(description="One sentence: what was changed and why.")
