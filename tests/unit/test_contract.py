"""The schema is the contract: any reply valid under the exact schema sent to a model is accepted,
repaired or degraded — never an unhandled error.

Instances are generated from the schemas as sent (hypothesis-jsonschema): the local constrained
decoder's (lengths as ``maxLength``) and OpenAI's strict subset (no lengths: they are repaired).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis_jsonschema import from_schema
from pydantic import BaseModel

from lessonforge.agent import edit
from lessonforge.agent.project import Manifest
from lessonforge.agent.quiz import quiz_model
from lessonforge.agent.schemas import (
    EditPlan,
    NarrationRewrite,
    Outline,
    PromptRevision,
    Quiz,
    SceneDraft,
    SceneReplacement,
    Script,
    sized_script,
)
from lessonforge.agent.state import LessonRequest, SceneRecord
from lessonforge.agent.understand import Reading, resolve
from lessonforge.evals.judge import QuizAnswers, QuizGrades, QuizQuestions, Rubric
from lessonforge.tools.base import ConfigError
from lessonforge.tools.contract import cut_at_word
from lessonforge.tools.llm.local import bound_schema
from lessonforge.tools.llm.openai import openai_json_schema, openai_schema_problems, strict_json_schema

TASKS: dict[str, type[BaseModel]] = {
    "outline": Outline, "script": Script, "scene": SceneReplacement, "rewrite": NarrationRewrite,
    "edit": EditPlan, "revision": PromptRevision, "quiz": QuizQuestions, "quiz_answers": QuizAnswers,
    "quiz_grades": QuizGrades, "judge": Rubric, "reading": Reading,
    "sized_script": sized_script(3, 30), "sized_script_clips": sized_script(3, 30, clips=True),
    "questions": quiz_model(4),
}
# Generating an instance of the large schemas (a script, a scene, an edit plan) takes hypothesis-jsonschema
# most of a second, so they get fewer examples; LESSONFORGE_CONTRACT_EXAMPLES sets every count (a deeper run).
LARGE = {"edit", "scene", "script", "sized_script", "sized_script_clips"}


def examples(name: str) -> settings:
    count = int(os.environ.get("LESSONFORGE_CONTRACT_EXAMPLES") or (60 if name in LARGE else 200))
    return settings(max_examples=count, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def local_schema(model: type[BaseModel]) -> dict:
    return bound_schema(strict_json_schema(model), 2000, 64)  # as lessonforge.tools.llm.local sends it by default


def _manifest(n: int = 4) -> Manifest:
    scenes = [SceneDraft(role="concept", title=f"Scene {k}", bullets=["a"], narration=f"Narration {k}.", key="",
                         answer="", visual={"kind": "text"}) for k in range(1, n + 1)]
    records = [SceneRecord(index=k, slug=f"{k:02d}", role="concept", title=s.title, bullets=s.bullets,
                           narration=s.narration, visual=s.visual, target_seconds=10.0)
               for k, s in enumerate(scenes, 1)]
    return Manifest(request=LessonRequest(topic="t"), script=Script(title="T", scenes=scenes), scenes=records)


def check(model: type[BaseModel], instance: dict) -> None:
    """What the pipeline does with a reply: parse it, then use it the way the lesson does."""
    reply = model.model_validate(instance)
    assert isinstance(reply.repairs, list)
    if isinstance(reply, Script):
        assert reply.scenes  # the schema asks for at least one; salvage never empties a script
        for sc in reply.scenes:
            assert sc.title and sc.narration and sc.kind
            assert (sc.kind == "text") if sc.degraded else True
    if isinstance(reply, Reading):  # a request, or an error that names the problem
        try:
            resolve("the prompt", reply)
        except ConfigError as err:
            assert str(err)
    if isinstance(reply, Quiz):  # the learner is asked only what can be answered
        assert all(not q.broken and q.answer <= len(q.options) for q in reply.questions)
    if isinstance(reply, EditPlan):
        manifest = _manifest()
        try:
            request, script, _ = edit.apply_plan(manifest, reply)
            edit.apply_quiz(manifest, reply, request, script)
        except edit.PlanError as err:  # a plan naming a scene that does not exist is answered in words
            assert str(err)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_schema_sent_to_openai_keeps_to_its_strict_subset(name):
    assert openai_schema_problems(openai_json_schema(TASKS[name])) == []


def test_the_subset_check_finds_what_openai_refuses():
    bad = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 5}, "b": {"oneOf": []}},
           "required": ["a"]}
    problems = " | ".join(openai_schema_problems(bad))
    assert "'maxLength' is not supported" in problems and "'oneOf' is not supported" in problems
    assert "additionalProperties must be false" in problems and "every property must be required" in problems


def test_lengths_reach_the_local_decoder_and_the_descriptions():
    local = local_schema(Script)
    scene = local["$defs"]["SceneDraft"]["properties"]
    assert scene["title"]["maxLength"] == 60 and scene["bullets"]["items"]["maxLength"] == 60
    assert scene["bullets"]["maxItems"] == 5
    sent = openai_json_schema(Script)["$defs"]["SceneDraft"]["properties"]
    assert "maxLength" not in sent["title"] and "8 words" in sent["title"]["description"]


SENT = {"local": local_schema, "openai": openai_json_schema}


@pytest.mark.slow  # up to a minute for each of the large schemas
@pytest.mark.parametrize("sent", sorted(SENT))
@pytest.mark.parametrize("name", sorted(TASKS))
def test_any_reply_valid_under_the_schema_sent_is_accepted_repaired_or_degraded(name, sent):
    model = TASKS[name]

    @examples(name)
    @given(from_schema(SENT[sent](model)))
    def run(instance):
        check(model, instance)

    run()


def test_repairs_are_recorded_not_sent_back():
    scene = SceneDraft.model_validate({
        "role": "concept", "title": "A   title that goes on and on well past the sixty characters a slide shows",
        "bullets": ["one", " ", "two", "three", "four", "five", "six"], "narration": "Words.", "key": "",
        "answer": "", "visual": {"kind": "picture", "prompt": "a leaf"}})
    assert len(scene.title) <= 60 and scene.title.endswith("sixty") is False and "  " not in scene.title
    assert scene.bullets == ["one", "two", "three", "four", "five"]
    assert any("title cut" in r for r in scene.repairs) and any("first 5" in r for r in scene.repairs)


def test_a_cut_ends_at_a_word_boundary():
    assert cut_at_word("Carbon dioxide enters the leaf", 18) == "Carbon dioxide"
    assert cut_at_word("Photosynthesis", 5) == "Photo"  # one long word: nothing else to do
    assert cut_at_word("short", 10) == "short"


def test_an_unreadable_scene_is_left_out_and_named():
    good = {"role": "hook", "title": "T", "bullets": [], "narration": "N.", "key": "", "answer": "",
            "visual": {"kind": "text"}}
    script = Script.model_validate({"title": "L", "scenes": [good, {"title": 3}, good]})
    assert len(script.scenes) == 2 and [p for p, _ in script.dropped] == [2]


def test_lessons_stored_before_the_contract_still_load():
    old = {"title": "x", "bullets": [], "narration": "y", "visual": "illustration", "illustration_prompt": "a leaf",
           "diagram": None}
    scene = SceneDraft.model_validate(old)
    assert scene.kind == "picture" and scene.picture_prompt == "a leaf" and scene.role == "concept"
    record = SceneRecord.model_validate({"index": 1, "slug": "01", "target_seconds": 5.0, **old, "visual": "diagram",
                                         "diagram": {"kind": "cycle", "labels": ["a", "b", "c"], "values": [],
                                                     "columns": [], "rows": [], "caption": ""}})
    assert record.kind == "cycle" and record.diagram.stages == ["a", "b", "c"]


@pytest.mark.slow
def test_a_script_valid_under_the_schema_sent_makes_a_lesson(tmp_path_factory):
    """Whole lessons from generated scripts (a few: each is a full make): never a failed lesson."""
    import asyncio

    from lessonforge.agent import run
    from lessonforge.agent.config import Settings
    from lessonforge.agent.fakes import FakeLLM, default_answer
    from lessonforge.agent.schemas import sized_script
    from lessonforge.agent.state import make_request
    from lessonforge.tools.fakes import FakeCritic, FakeImages, FakeSpeech

    model = sized_script(3, 20)

    @settings(max_examples=4, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(from_schema(local_schema(model)))
    def run_one(instance):
        out = tmp_path_factory.mktemp("lesson")
        llm = FakeLLM(script=[lambda m, s: instance if issubclass(s, Script) else default_answer(m, s)] * 50)
        manifest = asyncio.run(run.make(make_request(topic="tides", minutes=0.75), Settings.load(fit_rounds=0), out,
                                        llm=llm, images=FakeImages(), speech=FakeSpeech(), critic=FakeCritic()))
        assert manifest.status == "done" and (out / "lesson.mp4").stat().st_size > 0

    run_one()


def test_the_writer_is_offered_a_clip_only_when_clips_are_on():
    import json

    def kinds(schema: type[BaseModel]) -> set[str]:
        text = json.dumps(openai_json_schema(schema))
        return {k for k in ("clip", "picture") if f'"const": "{k}"' in text or f'"enum": ["{k}"]' in text}

    assert kinds(sized_script(3, 30)) == {"picture"}
    assert kinds(sized_script(3, 30, clips=True)) == {"clip", "picture"}
    scene = {"role": "process", "title": "Water boils", "bullets": [], "narration": "Watch it boil.", "key": "",
             "answer": "", "visual": {"kind": "clip", "prompt": "a pot of water boiling", "seconds": 12}}
    script = sized_script(1, 30, clips=True).model_validate({"title": "T", "scenes": [scene]})
    assert script.scenes[0].visual.seconds == 8  # outside the bounds (an unconstrained server): repaired
    assert "clip seconds 12 brought within 4-8" in script.repairs
