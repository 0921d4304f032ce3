"""Every LLM output as a pydantic model, each field described for the model that fills it.

These are requested as strict JSON-schema output, so: no defaults, no extra keys, every field
required. Limits the model must respect are stated in the descriptions and enforced by validators,
whose error messages are sent back to the model on a retry.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tools.diagrams import Diagram

VisualKind = Literal["illustration", "diagram", "text"]


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
    # list limits are part of the JSON schema, so constrained decoding (local models) keeps to them
    objectives: list[str] = Field(
        min_length=1, max_length=5,
        description="2 to 4 learning objectives, each starting with a verb (explain, name, compare...).",
    )
    sections: list[OutlineSection] = Field(
        min_length=1, max_length=60,
        description="The sections in teaching order: the hook first, one idea per section, then a recap.",
    )
    check_question: str = Field(description="One check-for-understanding question for the end.")
    check_answer: str = Field(description="The answer to the check question, one or two sentences.")



class SceneDraft(_Strict):
    """One scene: one slide held while its narration plays."""

    title: str = Field(description="Slide title, at most 8 words.")
    bullets: list[str] = Field(
        max_length=5,
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
        description=(
            "'illustration' for a picture beside the bullets; 'diagram' for a small structured diagram "
            "(steps, a cycle, a comparison table, a bar chart) where a process or numbers read better "
            "drawn crisply; 'text' for a text-only slide."
        )
    )
    diagram: Diagram | None = Field(
        None, description="Only when visual is 'diagram': the diagram drawn instead of a picture; null otherwise."
    )

    @model_validator(mode="after")
    def _diagram_matches_visual(self) -> SceneDraft:
        if self.visual == "diagram" and self.diagram is None:
            raise ValueError("visual is 'diagram' but no diagram is given: give one, or use 'illustration'")
        if self.visual != "diagram" and self.diagram is not None:
            raise ValueError(f"a diagram is given but visual is {self.visual!r}: set visual to 'diagram' or diagram to null")
        return self

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
    scenes: list[SceneDraft] = Field(min_length=1, max_length=120, description="The scenes in order, as many as asked for.")


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


# --------------------------------------------------------------------------- editing (chat)


class SceneEdit(_Strict):
    """New values for one existing scene; null leaves a field as it is."""

    scene: int = Field(description="The scene's number as the user sees it (1 = first).")
    title: str | None = Field(description="New slide title, or null to keep it.")
    bullets: list[str] | None = Field(description="New on-screen key phrases (0-5), or null to keep them.")
    narration: str | None = Field(description="New narration, complete, or null to keep it.")
    illustration_prompt: str | None = Field(description="New picture prompt, or null to keep it.")
    visual: VisualKind | None = Field(description="New visual kind, or null to keep it.")


class SceneInsert(_Strict):
    after: int = Field(description="Insert after this scene number (0 = at the very start).")
    scene: SceneDraft = Field(description="The new scene, complete.")


class LessonChange(_Strict):
    """Lesson-wide settings to change; null leaves a setting as it is."""

    voice: str | None = Field(description="A voice name, or null. A wish like 'a British voice' becomes a voice name.")
    language: str | None = Field(description="A language code such as 'fr', or null.")
    audience: str | None = Field(description="Who the lesson is for, or null.")
    minutes: float | None = Field(description="New target length in minutes, or null.")
    theme: str | None = Field(description="Slide theme name, or null.")
    aspect: Literal["16:9", "9:16", "1:1"] | None = Field(description="Frame shape, or null.")


class EditPlan(_Strict):
    """What to do with one chat message about a lesson."""

    action: Literal["edit", "clarify", "answer"] = Field(
        description="'edit' to change the lesson; 'clarify' when the request is ambiguous (ask, do not guess); "
        "'answer' for a question about the lesson that needs no change."
    )
    reply: str = Field(description="What to tell the user: a one-sentence summary of the edit, the question, or the answer.")
    scene_edits: list[SceneEdit] = Field(description="Changes to existing scenes.")
    inserts: list[SceneInsert] = Field(description="New scenes to add.")
    deletes: list[int] = Field(description="Numbers of scenes to remove.")
    order: list[int] | None = Field(
        description="The new order as a list of the current scene numbers (after deletes are left out), or null."
    )
    lesson: LessonChange = Field(description="Lesson-wide changes.")
