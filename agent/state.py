"""Graph state: the input (a LessonRequest) ⊂ the lesson state ⊂ the output; reducers are named.

The records here (SceneRecord and what it holds) are also what `lesson.json` stores per scene.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator
from typing_extensions import TypedDict  # pydantic (the server's schemas) needs this one on 3.11

from lessonforge.agent.request import ASPECTS, MAX_MINUTES, MIN_MINUTES, Aspect, LessonRequest, make_request  # noqa: F401
from lessonforge.agent.schemas import Outline, Picture, Quiz, SceneDraft, Script, Visual, old_visual


class AssetRef(BaseModel):
    """A file of the project: where it is (relative to the project folder) and its content hash."""

    path: str
    sha256: str
    key: str = Field("", description="Content key of the inputs that produced it (the cache key).")


class Attempt(BaseModel):
    """One illustration attempt and the critic's verdict on it."""

    n: int
    prompt: str
    seed: int
    image: AssetRef
    score: float | None = None
    scores: list[float] = Field(default_factory=list)
    rank: int | None = None
    accepted: bool | None = None
    reason: str = ""
    seconds: float = 0.0
    cost: float | None = None  # dollars, for a hosted image model that reports or lists its price


class ClipRecord(BaseModel):
    """A scene's motion clip (--clips): what made it, how long it runs, what it cost, the critic's view."""

    file: AssetRef
    model: str  # the full "backend:model" spec
    prompt: str
    seconds: float  # as generated
    cost: float  # dollars
    score: float | None = None  # the critic's mean score over the sampled frames
    accepted: bool | None = None
    reason: str = ""
    box: tuple[int, int, int, int] | None = None  # where it plays on the slide (below the title band)


class SpeechRecord(BaseModel):
    audio: AssetRef
    duration: float
    voice: str
    backend: str
    tempo: float = 1.0
    loudness: dict[str, Any] = Field(default_factory=dict)  # EBU R128 before and after normalising
    words: list[tuple[str, float, float]] = Field(default_factory=list)
    answer_at: float | None = None  # a question scene: when its spoken answer starts (after the pause)


class BuildRecord(BaseModel):
    """One build state of a slide: from ``start`` (seconds into the scene), ``shown`` key phrases visible,
    the one at ``highlight`` highlighted, the question's answer shown or not."""

    start: float
    shown: int
    highlight: int | None = None
    reveal_answer: bool = True
    slide: AssetRef


CriticStatus = Literal["accepted", "below_bar", "unjudged", "no_critic", "no_image"]


class SceneRecord(BaseModel):
    """Everything about one produced scene; a list of these is the heart of the manifest."""

    index: int  # 1-based
    slug: str
    role: str = "concept"
    title: str
    bullets: list[str]
    narration: str
    key: str = ""
    answer: str = ""
    visual: Visual
    repairs: list[str] = Field(
        default_factory=list
    )  # what was repaired in the LLM's reply (lessonforge.tools.contract)
    degraded: str = ""  # why the scene's visual was replaced ('' when it was not)
    target_seconds: float
    planned_words: int = 0
    speech: SpeechRecord | None = None
    illustration: AssetRef | None = None
    final_prompt: str = ""
    attempts: list[Attempt] = Field(default_factory=list)
    critic: CriticStatus = "no_critic"
    critic_note: str = ""
    slide: AssetRef | None = None
    slide_overflow: bool = False
    min_font_px: int | None = None  # smallest text size on the slide
    picture_box: tuple[int, int, int, int] | None = None  # where the picture sits (for --motion)
    builds: list[BuildRecord] = Field(default_factory=list)  # the slide's build states ([]: one still)
    layout: str = ""  # the slide layout chosen for the scene's role and aspect (lessonforge.tools.media.layouts)
    pictogram: str = ""  # the icon drawn on the slide (its own, or standing in for a picture not drawn)
    clip: ClipRecord | None = None  # the motion clip shown in the picture's place (--clips)
    hold_seconds: float = 0.0  # how long the slide stays up
    start: float = 0.0
    end: float = 0.0
    timings: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """Scenes stored before visuals were objects (visual, illustration_prompt, diagram) still load."""
        if isinstance(data, dict) and isinstance(data.get("visual"), str):
            data = {k: v for k, v in data.items() if k not in ("illustration_prompt", "diagram")} | {
                "visual": old_visual(data)}
        return data

    @property
    def kind(self) -> str:
        return self.visual.kind

    @property
    def spoken_text(self) -> str:
        """Everything the narrator says: a question scene's answer follows its narration after a pause."""
        if self.speech is not None and self.speech.answer_at is not None and self.answer:
            return f"{self.narration} {self.answer}"
        return self.narration

    @property
    def illustration_prompt(self) -> str:
        return self.visual.prompt if isinstance(self.visual, Picture) else ""

    @property
    def diagram(self) -> Any:
        return self.draft().diagram

    def draft(self) -> SceneDraft:
        return SceneDraft(role=self.role, title=self.title, bullets=self.bullets, narration=self.narration,
                          key=self.key, answer=self.answer, visual=self.visual)


# --------------------------------------------------------------------------- reducers


def merge_scenes(left: dict[int, Any] | None, right: dict[int, Any] | None) -> dict[int, Any]:
    """Scenes finish concurrently; each branch adds its own index."""
    return {**(left or {}), **(right or {})}


def add_timings(left: dict[str, float] | None, right: dict[str, float] | None) -> dict[str, float]:
    out = dict(left or {})
    for k, v in (right or {}).items():
        out[k] = out.get(k, 0.0) + v
    return out


def extend(left: list | None, right: list | None) -> list:
    return [*(left or []), *(right or [])]


# --------------------------------------------------------------------------- graph states


class Duration(BaseModel):
    """The lesson's length: asked for, planned by word budgets, and measured after speech."""

    target: float
    tolerance: float
    planned: float = 0.0
    actual: float = 0.0
    words_per_minute: float = 0.0  # measured for the voice that spoke
    tempo: float = 1.0  # speech sped up (> 1) or slowed down (< 1) to fit
    rewrites: int = 0  # rounds of narration rewritten after measuring
    within: bool = False


class LessonInput(LessonRequest):
    """What a run of the graph is given by LangGraph's server or Studio: the request's own fields (Studio's
    input form asks for them) and one switch. `lessonforge.agent.run` gives the graph more (a script to
    produce, targets), so its graph takes the whole `LessonState`."""

    review: bool = Field(False, description='Pause after the outline (a LangGraph interrupt) until resumed '
                                            'with {"approve": true}, or {"approve": false, "feedback": "..."}.')

    def state(self) -> dict[str, Any]:
        """The lesson state a run starts from."""
        return {"request": LessonRequest(**self.model_dump(exclude={"review"})), "review": self.review}


class LessonOutput(TypedDict, total=False):
    """What a run returns; `lesson` is the folder holding lesson.json, lesson.mp4 and the subtitles."""

    lesson: str
    request: LessonRequest
    outline: Outline
    script: Script
    duration: Duration
    scenes: Annotated[dict[int, SceneRecord], merge_scenes]
    video: dict[str, Any]
    timings: Annotated[dict[str, float], add_timings]
    warnings: Annotated[list[str], extend]


class LessonState(TypedDict, total=False):
    request: LessonRequest
    outline: Outline
    script: Script
    targets: list[float]  # seconds per scene
    fit_duration: bool  # measure after speech and adjust (make, and when absent); render keeps what it is given
    review: bool  # pause after the outline for the user's approval (--review)
    feedback: str  # the user's notes on the outline, for a new plan
    reviews: int  # review rounds so far (bounded)
    tempo: float
    retimed: bool
    refits: int
    duration: Duration
    scenes: Annotated[dict[int, SceneRecord], merge_scenes]
    timings: Annotated[dict[str, float], add_timings]
    warnings: Annotated[list[str], extend]
    video: dict[str, Any]
    lesson: str  # the project folder, absolute, once lesson.json is recorded
    quiz: Quiz | None  # the learner questions (lessonforge.agent.quiz), written after assemble


class SceneState(TypedDict, total=False):
    """One scene's branch (a LangGraph Send payload and the scene subgraph's state)."""

    request: LessonRequest
    lesson_title: str
    index: int  # 1-based
    total: int
    draft: SceneDraft
    target_seconds: float
    tempo: float
    prompts: list[str]  # every scene's illustration prompt, for contrastive judging
    narrations: list[str]  # every scene's narration, for a critic that judges slides as a viewer would
    # the illustrate <-> critique loop
    attempt: int  # attempts made so far; the loop's own bound (not LangGraph's recursion limit)
    prompt: str
    attempts: list[Attempt]
    revised: int
    clip: ClipRecord | None  # the scene's motion clip, once made (--clips)
    clip_tried: bool  # a clip was asked for (made, failed or refused): the next attempts draw pictures
    # results
    speech: SpeechRecord
    chosen: int | None  # index into attempts of the picture to use
    critic: CriticStatus
    critic_note: str
    scenes: Annotated[dict[int, SceneRecord], merge_scenes]
    timings: Annotated[dict[str, float], add_timings]
    warnings: Annotated[list[str], extend]


class SceneOutput(TypedDict, total=False):
    scenes: Annotated[dict[int, SceneRecord], merge_scenes]
    timings: Annotated[dict[str, float], add_timings]
    warnings: Annotated[list[str], extend]
