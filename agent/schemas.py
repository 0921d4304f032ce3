"""Every LLM output as a pydantic model, each field described for the model that fills it.

The JSON schema is the contract (lessonforge.tools.contract): every rule JSON Schema can say is in it —
discriminated unions for the visual and diagram kinds (each kind its own object with exactly its
fields), item counts, enums, string lengths — so a reply that is valid under the schema sent is
valid, full stop. What a backend may not enforce (OpenAI's strict subset has no ``maxLength``) is
repaired and recorded, never sent back. These are requested as strict JSON-schema output: no
defaults, no extra keys, every field required.

A scene whose visual is malformed (a reply from a server that does not constrain its output) is
kept with a text-only visual and marked :attr:`SceneDraft.degraded`; the writer asks again for that
scene alone before the lesson goes on (lessonforge.agent.nodes.write).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, create_model, model_validator

from lessonforge.tools.contract import Contract, cut_at_word, items, text, tidy
from lessonforge.tools.media import pictograms
from lessonforge.tools.media.diagrams import DIAGRAM_KINDS, BarChart, Comparison, Cycle, Steps, from_flat

TITLE_CHARS = 60
BULLET_CHARS = 60
NARRATION_CHARS = 1200
PROMPT_CHARS = 400
KEY_CHARS = 24
ANSWER_CHARS = 160
SENTENCE_CHARS = 240
MAX_BULLETS = 5

Role = Literal["hook", "objectives", "concept", "process", "key_fact", "definition", "comparison", "example",
               "recap", "question"]
ROLES: tuple[str, ...] = Role.__args__  # type: ignore[attr-defined]


def _sentence(description: str) -> Any:
    return text(SENTENCE_CHARS, description)


class OutlineSection(Contract):
    title: str = text(TITLE_CHARS, "Short section title, at most 8 words.")
    key_points: list[Annotated[str, Field(json_schema_extra={"maxLength": BULLET_CHARS})]] = items(
        1, 3, "The 1-3 ideas this section teaches, each a short phrase.")
    seconds: float = Field(description="Narration time for this section in seconds.", allow_inf_nan=False,
                           json_schema_extra={"minimum": 0})

    @model_validator(mode="after")
    def _repair(self) -> OutlineSection:
        self.fit_text("title", TITLE_CHARS)
        self.fit_list("key_points", 3, BULLET_CHARS)
        if self.seconds < 0:
            self.note(f"seconds {self.seconds} set to 0")
            object.__setattr__(self, "seconds", 0.0)
        return self


class Outline(Contract):
    """The lesson plan: what the viewer will learn, in what order, with a time budget."""

    title: str = text(TITLE_CHARS, "The lesson's title as shown on the slides, at most 8 words.")
    hook: str = _sentence("A question or surprising fact that opens the lesson, one sentence.")
    objectives: list[Annotated[str, Field(json_schema_extra={"maxLength": 120})]] = items(
        1, 5, "2 to 4 learning objectives, each starting with a verb (explain, name, compare...).")
    sections: list[OutlineSection] = items(
        1, 60, "The sections in teaching order: the hook first, one idea per section, then a recap.")
    check_question: str = _sentence("One check-for-understanding question for the end.")
    check_answer: str = _sentence("The answer to the check question, one or two sentences.")

    @model_validator(mode="after")
    def _repair(self) -> Outline:
        self.fit_text("title", TITLE_CHARS)
        for name in ("hook", "check_question", "check_answer"):
            self.fit_text(name, SENTENCE_CHARS)
        self.fit_list("objectives", 5, 120)
        if len(self.sections) > 60:
            self.note(f"sections: kept the first 60 of {len(self.sections)}")
            object.__setattr__(self, "sections", self.sections[:60])
        return self


# --------------------------------------------------------------------------- a scene's visual


class Picture(Contract):
    """A picture drawn by the image model and judged by the critic."""

    kind: Literal["picture"]
    prompt: str = text(PROMPT_CHARS, "A text-to-image prompt for one picture that shows this scene's idea: concrete "
                       "subject, setting and style, no text or letters in the picture, at most 60 words.")

    @model_validator(mode="after")
    def _repair(self) -> Picture:
        self.fit_text("prompt", PROMPT_CHARS)
        return self


class Pictogram(Contract):
    """An icon from an open icon set, drawn crisply in the theme's colours (no image model needed)."""

    kind: Literal["pictogram"]
    icon: Literal[pictograms.NAMES] = Field(  # type: ignore[valid-type]
        description="The icon that best stands for this scene's idea, one of the names offered.")


class TextOnly(Contract):
    """A text-only slide: the title and key phrases fill the frame."""

    kind: Literal["text"]


class Clip(Contract):
    """A short motion clip (4-8 s) from a hosted video model, for a scene that needs motion (--clips)."""

    kind: Literal["clip"]
    prompt: str = text(PROMPT_CHARS, "A text-to-video prompt for one short shot that shows this scene's idea in "
                       "motion (a process, an experiment): subject, action, camera, style; no text or letters; at "
                       "most 60 words.")
    seconds: int = Field(description="How long the clip runs, 4 to 8 seconds.",
                         json_schema_extra={"minimum": 4, "maximum": 8})

    @model_validator(mode="after")
    def _repair(self) -> Clip:
        self.fit_text("prompt", PROMPT_CHARS)
        if not 4 <= self.seconds <= 8:  # a server that does not enforce the bounds
            self.note(f"clip seconds {self.seconds} brought within 4-8")
            object.__setattr__(self, "seconds", min(8, max(4, self.seconds)))
        return self


Visual = Annotated[Picture | Pictogram | TextOnly | Steps | Cycle | Comparison | BarChart | Clip,
                   Field(discriminator="kind")]
# What the writer is offered: a clip only when clips are on (sized_script(..., clips=True)).
OfferedVisual = Annotated[Picture | Pictogram | TextOnly | Steps | Cycle | Comparison | BarChart,
                          Field(discriminator="kind")]
VISUAL_KINDS: tuple[str, ...] = ("picture", "pictogram", "text", *DIAGRAM_KINDS)
VISUAL_HELP = (
    "What the slide shows beside its text, one object whose 'kind' says which: 'picture' (a drawn picture, "
    "give its prompt); 'pictogram' (one icon from the names offered); 'steps' (a process in order, boxes joined "
    "by arrows), 'cycle' (stages that repeat), 'comparison' (a small table), 'bar_chart' (numbers to compare), "
    "drawn crisply with their labels; 'text' (a text-only slide: objectives, recap, question)."
)
CLIP_HELP = (" 'clip' (a short motion clip, 4-8 seconds, give its prompt and length): only for a scene whose idea "
             "needs motion, such as a process or an experiment; at most one scene in four.")


def old_visual(data: dict[str, Any]) -> dict[str, Any]:
    """The visual of a scene stored before visuals were objects (visual, illustration_prompt, diagram)."""
    kind, prompt, diagram = data.get("visual"), data.get("illustration_prompt", ""), data.get("diagram")
    if kind == "diagram" and isinstance(diagram, dict):
        return from_flat(diagram)
    if kind == "illustration":
        return {"kind": "picture", "prompt": prompt}
    return {"kind": "text"}


def upgrade_scene(data: Any) -> Any:
    """A scene dict in the earlier flat form, brought to this one (old lesson.json files keep working)."""
    if not isinstance(data, dict) or not isinstance(data.get("visual"), str | None):
        return data
    if isinstance(data.get("visual"), str) or "illustration_prompt" in data:
        data = {k: v for k, v in data.items() if k not in ("illustration_prompt", "diagram")} | {
            "visual": old_visual(data)}
        data.setdefault("role", "concept")
        data.setdefault("key", "")
        data.setdefault("answer", "")
    return data


class SceneDraft(Contract):
    """One scene: one slide held while its narration plays."""

    _degraded: str = PrivateAttr(default="")
    _raw_visual: Any = PrivateAttr(default=None)

    role: Role = Field(
        description="What the scene does in the lesson; the slide's layout follows it. 'hook' opens with a question "
        "or surprising fact; 'objectives' says what you will learn; 'concept' explains one idea; 'process' walks "
        "through steps; 'key_fact' shows one big number or fact; 'definition' defines one term; 'comparison' "
        "sets two or more things side by side; 'example' works through a concrete case; 'recap' sums up; "
        "'question' asks the check question and then reveals its answer."
    )
    title: str = text(TITLE_CHARS, "Slide title, at most 8 words. For a 'question' scene: the question.")
    bullets: list[Annotated[str, Field(json_schema_extra={"maxLength": BULLET_CHARS})]] = items(
        0, MAX_BULLETS, f"0 to {MAX_BULLETS} on-screen key phrases of at most 8 words each, in the order the "
        "narration says them: the words it stresses, never the narration itself.")
    narration: str = text(NARRATION_CHARS, "What the narrator says while the slide is shown: written for the ear, "
                          "short sentences, conversational 'you', terms defined on first use, about the word count "
                          "asked for. For a 'question' scene: the question only (the answer is read after a pause).")
    key: str = text(KEY_CHARS, "For 'key_fact' and 'definition': the one number or term the slide shows large "
                    f"(at most {KEY_CHARS} characters, e.g. '71%' or 'Chlorophyll'). '' for other roles.")
    answer: str = text(ANSWER_CHARS, "For 'question': the answer, one short sentence, revealed and read after a "
                       "pause. '' for other roles.")
    visual: Visual = Field(description=VISUAL_HELP)

    @model_validator(mode="wrap")
    @classmethod
    def _degrade(cls, data: Any, handler: Any) -> SceneDraft:
        """A malformed visual does not sink the scene: it becomes text-only and is marked degraded."""
        data = upgrade_scene(data)
        try:
            return handler(data)
        except ValidationError as err:
            problems = visual_problems(err, data)
            scene = handler({**data, "visual": {"kind": "text"}})
            scene._raw_visual = data.get("visual")
            scene._degraded = describe_problems(problems)
            return scene

    @model_validator(mode="after")
    def _repair(self) -> SceneDraft:
        self.fit_text("title", TITLE_CHARS)
        self.fit_list("bullets", MAX_BULLETS, BULLET_CHARS)
        self.fit_text("key", KEY_CHARS)
        self.fit_text("answer", ANSWER_CHARS)
        narration = tidy(self.narration)
        if len(narration) > NARRATION_CHARS:  # end at the last full sentence that fits
            head = narration[:NARRATION_CHARS]
            end = max(head.rfind(m) for m in ".!?。！？")
            cut = head[: end + 1] if end > NARRATION_CHARS // 2 else cut_at_word(narration, NARRATION_CHARS)
            self.note(f"narration cut from {len(narration)} to {len(cut)} characters")
            narration = cut
        object.__setattr__(self, "narration", narration)
        if not self.title:
            self.note("empty title replaced by the first words of the narration")
            object.__setattr__(self, "title", cut_at_word(narration, 40) or "…")
        if not narration:  # nothing to say: the slide's text is read
            spoken = ". ".join([self.title, *self.bullets])
            self.note("empty narration replaced by the slide's text")
            object.__setattr__(self, "narration", spoken)
        return self

    # ----------------------------------------------------------------- views used by the pipeline

    @property
    def degraded(self) -> str:
        """Why this scene's visual was replaced by text ('' when it was not)."""
        return self._degraded

    @property
    def raw_visual(self) -> Any:
        return self._raw_visual

    @property
    def kind(self) -> str:
        return self.visual.kind

    @property
    def picture_prompt(self) -> str:
        """The picture prompt ('' when the visual is not a picture); a clip's prompt stands in for one when
        the clip falls back to a picture."""
        return self.visual.prompt if isinstance(self.visual, Picture | Clip) else ""

    @property
    def diagram(self) -> Steps | Cycle | Comparison | BarChart | None:
        return self.visual if isinstance(self.visual, Steps | Cycle | Comparison | BarChart) else None

    @property
    def subject(self) -> str:
        """What the scene shows, in words: its picture prompt, else its title and key phrases."""
        return self.picture_prompt or ". ".join([self.title, *self.bullets])

    def degrade(self, reason: str) -> SceneDraft:
        """This scene with a text-only visual, marked degraded for ``reason``."""
        scene = self.model_copy(update={"visual": TextOnly(kind="text")})
        scene._degraded, scene._raw_visual = reason, self.visual
        return scene


def visual_problems(err: ValidationError, data: Any) -> Sequence[Mapping[str, Any]]:
    """The problems of ``err`` when all of them are in the visual (which can be replaced); else re-raise it."""
    problems = err.errors(include_url=False)
    if not isinstance(data, dict) or not all(p["loc"][:1] == ("visual",) for p in problems):
        raise err
    return problems


def describe_problems(problems: Sequence[Mapping[str, Any]], limit: int = 3) -> str:
    """Validation problems in a line: where and what."""
    parts = [f"{'.'.join(str(x) for x in p['loc'])}: {_short(p['msg'])}" for p in problems[:limit]]
    more = len(problems) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _short(message: str, limit: int = 100) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


class Script(Contract):
    """The whole lesson as scenes, in order."""

    _dropped: list[tuple[int, str]] = PrivateAttr(default_factory=list)

    title: str = text(TITLE_CHARS, "The lesson's title, at most 8 words.")
    scenes: list[SceneDraft] = items(1, 120, "The scenes in order, as many as asked for.")

    @model_validator(mode="wrap")
    @classmethod
    def _salvage(cls, data: Any, handler: Any) -> Script:
        """A scene that cannot be read at all is left out (and recorded) instead of failing the lesson."""
        if not isinstance(data, dict) or not isinstance(data.get("scenes"), list):
            return handler(data)
        kept, dropped = [], []
        for n, raw in enumerate(data["scenes"], 1):
            try:
                kept.append(raw if isinstance(raw, SceneDraft) else _scene_type(cls).model_validate(raw))
            except ValidationError as err:
                dropped.append((n, describe_problems(err.errors(include_url=False))))
        if not kept:
            return handler(data)  # nothing to salvage: the reply is wrong as a whole
        script = handler({**data, "scenes": kept})
        script._dropped = dropped
        return script

    @model_validator(mode="after")
    def _repair(self) -> Script:
        self.fit_text("title", TITLE_CHARS)
        if len(self.scenes) > 120:
            self.note(f"scenes: kept the first 120 of {len(self.scenes)}")
            object.__setattr__(self, "scenes", self.scenes[:120])
        return self

    @property
    def dropped(self) -> list[tuple[int, str]]:
        """Scenes of the reply that could not be read at all: (their 1-based place, why)."""
        return list(self._dropped)


def _scene_type(script: type[Script]) -> type[SceneDraft]:
    return script.model_fields["scenes"].annotation.__args__[0]


CHARS_PER_WORD = 8  # generous: German compounds, French elisions; CJK counts ~2.5 characters a word


@functools.cache
def sized_script(scenes: int, words: int, clips: bool = False) -> type[Script]:
    """The Script schema for one request: exactly ``scenes`` scenes, each narration within about
    ``words`` words (as ``maxLength``). A small model under constrained decoding then cannot write
    more than was asked for (or ramble until its token cap). The visual kinds offered include
    'clip' only with ``clips`` (--clips). Replies are plain :class:`Script` objects again after
    :func:`unsized`."""
    chars = min(NARRATION_CHARS, max(120, round(words * CHARS_PER_WORD * 1.5)))
    visual = (Visual, Field(description=VISUAL_HELP + CLIP_HELP)) if clips else (
        OfferedVisual, Field(description=VISUAL_HELP))
    scene = create_model(
        "SceneDraft", __base__=SceneDraft,
        narration=(str, text(chars, f"What the narrator says while the slide is shown, about {words} words at most: "
                             "written for the ear, short sentences, conversational 'you', terms defined on first use. "
                             "For a 'question' scene: the question only (the answer is read after a pause).")),
        visual=visual,
    )
    return create_model(
        "Script", __base__=Script,
        # the exact count is asked for in the schema; a reply with fewer (a server that does not
        # enforce it, or a scene left out as unreadable) still makes a lesson: the time is shared out
        scenes=(list[scene], Field(min_length=1, description=f"Exactly {scenes} scenes, in order.",  # type: ignore[valid-type]
                                   json_schema_extra={"minItems": scenes, "maxItems": scenes})),
    )


def unsized(script: Script) -> Script:
    """A reply to a :func:`sized_script` schema as a plain Script (what state and lesson.json hold), its
    repairs and degradations kept."""
    if type(script) is Script:
        return script
    scenes = []
    for sc in script.scenes:
        plain = SceneDraft.model_construct(**dict(sc))
        plain.__pydantic_private__ = dict(sc.__pydantic_private__ or {})
        scenes.append(plain)
    out = Script.model_construct(title=script.title, scenes=scenes)
    out.__pydantic_private__ = dict(script.__pydantic_private__ or {})
    return out


class SceneReplacement(Contract):
    """One scene written again, alone, after its first version could not be used."""

    scene: SceneDraft = Field(description="The scene, complete, valid, in the same place in the lesson.")


class NarrationRewrite(Contract):
    """A scene's narration rewritten to fit its time budget."""

    narration: str = text(NARRATION_CHARS, "The rewritten narration, close to the word count asked for.")

    @model_validator(mode="after")
    def _repair(self) -> NarrationRewrite:
        self.fit_text("narration", NARRATION_CHARS)
        return self


class PromptRevision(Contract):
    """An illustration prompt rewritten after the critic rejected its pictures."""

    prompt: str = text(PROMPT_CHARS, "The new text-to-image prompt, at most 60 words, no text in the picture.")
    reason: str = _sentence("One sentence: what was changed and why.")

    @model_validator(mode="after")
    def _repair(self) -> PromptRevision:
        self.fit_text("prompt", PROMPT_CHARS)
        self.fit_text("reason", SENTENCE_CHARS)
        return self


# --------------------------------------------------------------------------- editing (chat)


class SceneEdit(Contract):
    """New values for one existing scene; null leaves a field as it is."""

    scene: int = Field(
        description="The scene's number as the user sees it (1 = first).", json_schema_extra={"minimum": 1}
    )
    role: Role | None = Field(description="New role, or null to keep it.")
    title: str | None = text(TITLE_CHARS, "New slide title, or null to keep it.")
    bullets: list[Annotated[str, Field(json_schema_extra={"maxLength": BULLET_CHARS})]] | None = items(
        0, MAX_BULLETS, f"New on-screen key phrases (0-{MAX_BULLETS}), or null to keep them.")
    narration: str | None = text(NARRATION_CHARS, "New narration, complete, or null to keep it.")
    key: str | None = text(KEY_CHARS, "New big number or term (key_fact, definition), or null to keep it.")
    answer: str | None = text(ANSWER_CHARS, "New answer of a 'question' scene, or null to keep it.")
    visual: Visual | None = Field(description="A new visual, complete (e.g. a picture with a new prompt), or null "
                                  "to keep it. " + VISUAL_HELP)

    @model_validator(mode="wrap")
    @classmethod
    def _unusable_visual(cls, data: Any, handler: Any) -> SceneEdit:
        """A malformed new visual is left out (the scene keeps its own), not the whole plan."""
        try:
            return handler(data)
        except ValidationError as err:
            problems = visual_problems(err, data)
            edit = handler({**data, "visual": None})
            edit.note(f"new visual left out: {describe_problems(problems)}")
            return edit

    def changes(self) -> dict[str, Any]:
        """The fields this edit sets (as JSON-able values)."""
        return {k: getattr(self, k) for k in type(self).model_fields if k != "scene" and getattr(self, k) is not None}


class SceneInsert(Contract):
    after: int = Field(description="Insert after this scene number (0 = at the very start).",
                       json_schema_extra={"minimum": 0})
    scene: SceneDraft = Field(description="The new scene, complete.")


class LessonChange(Contract):
    """Lesson-wide settings to change; null leaves a setting as it is."""

    voice: str | None = text(80, "A voice name, or null. A wish like 'a British voice' becomes a voice name.")
    language: str | None = Field(description="A language code such as 'fr' or 'pt-BR', or null.",
                                 json_schema_extra={"pattern": "^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"})
    audience: str | None = text(120, "Who the lesson is for, or null.")
    minutes: float | None = Field(description="New target length in minutes (0.5 to 30), or null.",
                                  json_schema_extra={"minimum": 0.5, "maximum": 30})
    theme: Literal["light", "dark", "chalk"] | None = Field(description="Slide theme, or null.")
    aspect: Literal["16:9", "9:16", "1:1"] | None = Field(description="Frame shape, or null.")


class EditPlan(Contract):
    """What to do with one chat message about a lesson."""

    action: Literal["edit", "clarify", "answer"] = Field(
        description="'edit' to change the lesson; 'clarify' when the request is ambiguous (ask, do not guess); "
        "'answer' for a question about the lesson that needs no change."
    )
    reply: str = text(600, "What to tell the user: a one-sentence summary of the edit, the question, or the answer.")
    scene_edits: list[SceneEdit] = items(0, 60, "Changes to existing scenes.")
    inserts: list[SceneInsert] = items(0, 20, "New scenes to add.")
    deletes: list[Annotated[int, Field(json_schema_extra={"minimum": 1})]] = items(
        0, 60, "Numbers of scenes to remove.")
    order: list[int] | None = Field(
        description="The new order as a list of the current scene numbers (after deletes are left out), or null."
    )
    lesson: LessonChange = Field(description="Lesson-wide changes.")
    quiz: QuizChange = Field(
        default_factory=lambda: QuizChange(edits=[], add=[], delete=[]),
        description="Changes to the learner questions at the end of the lesson.",
    )


# --------------------------------------------------------------------------- learner questions


OPTION_CHARS = 120
MIN_OPTIONS, MAX_OPTIONS = 3, 5


class Question(Contract):
    """One multiple-choice question that checks what one scene taught.

    Repaired, never refused: text is tidied and cut to its length; empty and repeated options are
    dropped (the answer follows its option). A question left without a usable answer (its number
    points past the options) is marked :attr:`broken`, and a quiz leaves it out.
    """

    _broken: str = PrivateAttr(default="")

    stem: str = text(SENTENCE_CHARS, "The question, one sentence, answerable from the lesson alone.")
    options: list[Annotated[str, Field(json_schema_extra={"maxLength": OPTION_CHARS})]] = items(
        MIN_OPTIONS, MAX_OPTIONS, f"{MIN_OPTIONS} to {MAX_OPTIONS} short answer options, exactly one of them correct; "
        "the wrong ones plausible misunderstandings, never 'all of the above'.")
    answer: int = Field(description="The number of the correct option (1 = first).",
                        json_schema_extra={"minimum": 1, "maximum": MAX_OPTIONS})
    explanation: str = text(SENTENCE_CHARS, "One line: why that answer is right, in the lesson's words.")
    scene: int = Field(description="The number of the scene whose idea this question checks (1 = first).",
                       json_schema_extra={"minimum": 1})

    @model_validator(mode="after")
    def _repair(self) -> Question:
        self.fit_text("stem", SENTENCE_CHARS)
        self.fit_text("explanation", SENTENCE_CHARS)
        right = tidy(self.options[self.answer - 1]) if 1 <= self.answer <= len(self.options) else None
        self.fit_list("options", MAX_OPTIONS, OPTION_CHARS)
        unique = list(dict.fromkeys(self.options))
        if len(unique) < len(self.options):
            self.note(f"options: {len(self.options) - len(unique)} repeated option(s) dropped")
            object.__setattr__(self, "options", unique)
        right = cut_at_word(right, OPTION_CHARS) if right else None
        if len(self.options) < MIN_OPTIONS:  # repeats and blanks dropped: too few left to choose from
            self._broken = f"only {len(self.options)} distinct option(s), at least {MIN_OPTIONS} are needed"
        elif right is None or right not in self.options:
            self._broken = f"answer {self.answer} is not one of its {len(self.options)} options"
        elif self.options.index(right) + 1 != self.answer:
            object.__setattr__(self, "answer", self.options.index(right) + 1)
        if not self.stem:
            self._broken = "the question is empty"
        return self

    @property
    def broken(self) -> str:
        """Why this question cannot be asked ('' when it can)."""
        return self._broken


class Quiz(Contract):
    """The learner questions at the end of the lesson (3-5 when written; a teacher may keep fewer)."""

    questions: list[Question] = items(
        1, 10, "3 to 5 questions in the order of the scenes they check, each on a different idea.")

    @model_validator(mode="after")
    def _repair(self) -> Quiz:
        kept = [q for q in self.questions if not q.broken]
        for k, q in enumerate(self.questions, 1):
            if q.broken:
                self.note(f"question {k} left out: {q.broken}")
        if len(kept) > 10:
            self.note(f"questions: kept the first 10 of {len(kept)}")
            kept = kept[:10]
        if len(kept) != len(self.questions):
            object.__setattr__(self, "questions", kept)
        return self


class QuestionEdit(Contract):
    """New values for one existing question; null leaves a field as it is."""

    question: int = Field(description="The question's number as the user sees it (1 = first).",
                          json_schema_extra={"minimum": 1})
    stem: str | None = text(SENTENCE_CHARS, "New question text, or null to keep it.")
    options: list[Annotated[str, Field(json_schema_extra={"maxLength": OPTION_CHARS})]] | None = items(
        MIN_OPTIONS, MAX_OPTIONS, f"New options ({MIN_OPTIONS}-{MAX_OPTIONS}), complete, or null to keep them.")
    answer: int | None = Field(description="New number of the correct option (1 = first), or null to keep it.",
                               json_schema_extra={"minimum": 1, "maximum": MAX_OPTIONS})
    explanation: str | None = text(SENTENCE_CHARS, "New one-line explanation, or null to keep it.")
    scene: int | None = Field(description="New number of the scene it checks, or null to keep it.",
                              json_schema_extra={"minimum": 1})

    def changes(self) -> dict[str, Any]:
        """The fields this edit sets."""
        return {k: getattr(self, k) for k in type(self).model_fields
                if k != "question" and getattr(self, k) is not None}


class QuizChange(Contract):
    """Changes to the learner questions: edits first, then deletes, then new questions at the end."""

    edits: list[QuestionEdit] = items(0, 10, "Changes to existing questions.")
    add: list[Question] = items(0, 5, "New questions to add at the end.")
    delete: list[Annotated[int, Field(json_schema_extra={"minimum": 1})]] = items(
        0, 10, "Numbers of questions to remove.")


EditPlan.model_rebuild()
