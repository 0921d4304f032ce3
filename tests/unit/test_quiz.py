"""Learner questions: the schema the LLM fills, edits to the quiz, and questions following their scenes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lessonforge.agent.edit import arrangement, moved_scenes
from lessonforge.agent.quiz import QuizError, apply_changes, question_count, quiz_model, renumber
from lessonforge.agent.schemas import (
    EditPlan,
    LessonChange,
    Question,
    QuestionEdit,
    Quiz,
    QuizChange,
    SceneDraft,
    SceneInsert,
)
from lessonforge.tools.llm.openai import openai_json_schema, openai_schema_problems, strict_json_schema


def q(scene: int, stem: str = "What does a leaf make?", answer: int = 1) -> Question:
    return Question(stem=stem, options=["Sugar", "Salt", "Sand"], answer=answer,
                    explanation="Leaves make sugar from light.", scene=scene)


def change(edits=(), add=(), delete=()) -> QuizChange:
    return QuizChange(edits=list(edits), add=list(add), delete=list(delete))


def edit(n: int, **fields) -> QuestionEdit:
    base = dict(stem=None, options=None, answer=None, explanation=None, scene=None)
    return QuestionEdit(question=n, **{**base, **fields})


QUIZ = Quiz(questions=[q(1, "First?"), q(2, "Second?"), q(4, "Third?")])


def test_the_llm_schema_carries_3_to_5_questions_on_scenes_of_the_lesson():
    schema = quiz_model(4)
    good = {"questions": [q(1).model_dump(), q(2).model_dump(), q(4).model_dump()]}
    assert len(schema.model_validate(good).questions) == 3
    with pytest.raises(ValidationError, match="at least 3"):  # below the schema's minimum: nothing to repair
        schema.model_validate({"questions": good["questions"][:2]})
    strict = strict_json_schema(schema)  # the limits reach the JSON schema (constrained decoding keeps to them)
    assert strict["properties"]["questions"]["minItems"] == 3 and strict["properties"]["questions"]["maxItems"] == 5
    scene = strict["$defs"]["Question"]["properties"]["scene"]
    assert (scene["minimum"], scene["maximum"]) == (1, 4)
    assert quiz_model(4) is schema and quiz_model(5) is not schema
    assert openai_schema_problems(openai_json_schema(schema)) == []  # within OpenAI's strict subset


def test_repeated_and_empty_options_are_dropped_and_the_answer_follows_its_option():
    question = Question(stem="  Which  gas? ", options=["Oxygen", "oxygen", "Oxygen ", "", "Carbon dioxide"],
                        answer=5, explanation="Plants take it in.", scene=1)
    assert question.stem == "Which gas?" and question.options == ["Oxygen", "oxygen", "Carbon dioxide"]
    assert question.answer == 3 and not question.broken
    assert any("repeated" in r for r in question.repairs) and any("empty" in r for r in question.repairs)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"answer": 4}, "answer 4 is not one of its 3 options"),
        ({"answer": 2, "options": ["Sugar", "", "Sand", "Salt"]}, "answer 2 is not one of its 3 options"),
        ({"answer": 1, "options": ["Sugar", "Sugar ", "Sand"]}, "only 2 distinct option(s), at least 3 are needed"),
        ({"stem": "   "}, "the question is empty"),
    ],
)
def test_a_question_that_cannot_be_asked_is_left_out_and_says_why(fields, why):
    broken = Question.model_validate({**q(1).model_dump(), **fields})
    assert broken.broken == why
    quiz = Quiz(questions=[q(1), broken, q(2)])
    assert quiz.questions == [q(1), q(2)] and quiz.repairs == [f"question 2 left out: {why}"]


def test_question_count_is_about_one_per_two_scenes_within_3_to_5():
    assert [question_count(n) for n in (1, 3, 6, 8, 10, 40)] == [3, 3, 3, 4, 5, 5]


def test_editing_one_question_changes_only_it():
    harder = ["Sugar, from light", "Sugar, from soil", "Salt, from light", "Sand"]
    new, changed = apply_changes(QUIZ, change(edits=[edit(2, stem="Why do leaves need light?", options=harder)]), 4)
    assert changed == ["question 2 (stem, options)"]
    assert new.questions[1].stem == "Why do leaves need light?" and new.questions[1].options == harder
    assert new.questions[0] == QUIZ.questions[0] and new.questions[2] == QUIZ.questions[2]


def test_deleting_and_adding_questions():
    new, changed = apply_changes(QUIZ, change(delete=[1], add=[q(3, "New?")]), 4)
    assert [x.stem for x in new.questions] == ["Second?", "Third?", "New?"]
    assert changed == ["deleted question 1", "new question 3"]


@pytest.mark.parametrize(
    ("quiz_change", "needle"),
    [
        (change(edits=[edit(7, stem="x?")]), r"there is no question 7: this lesson has 3 questions \(1-3\)"),
        (change(delete=[0]), "there is no question 0"),
        (change(edits=[edit(1, answer=5)]), "question 1: answer 5 is not one of its 3 options"),
        (change(edits=[edit(1, scene=9)]), "there is no scene 9: this lesson has 4 scenes"),
        (change(delete=[1, 2, 3]), "that would delete every question"),
    ],
)
def test_a_change_that_cannot_be_applied_names_the_problem(quiz_change, needle):
    with pytest.raises(QuizError, match=needle):
        apply_changes(QUIZ, quiz_change, 4)


def test_questions_follow_their_scenes_and_go_with_a_deleted_one():
    new, notes = renumber(QUIZ, {2: 1, 4: 2, 3: 3})  # scene 1 deleted, 4 moved before 3
    assert [(x.stem, x.scene) for x in new.questions] == [("Second?", 1), ("Third?", 2)]
    assert notes == ["dropped question 1 (its scene 1 was deleted)"]
    assert renumber(QUIZ, {3: 1}) == (None, [f"dropped question {k} (its scene {s} was deleted)"
                                             for k, s in ((1, 1), (2, 2), (3, 4))])


def _plan(**kw) -> EditPlan:
    lesson = LessonChange(voice=None, language=None, audience=None, minutes=None, theme=None, aspect=None)
    base = dict(action="edit", reply="", scene_edits=[], inserts=[], deletes=[], order=None, lesson=lesson)
    return EditPlan(**{**base, **kw})


def test_scene_numbers_after_a_plan_match_the_new_order():
    new = SceneDraft(role="concept", title="New", bullets=[], narration="Hello there.", key="", answer="",
                     visual={"kind": "text"})
    plan = _plan(deletes=[2], inserts=[SceneInsert(after=0, scene=new)], order=[3, 1, 4])
    assert arrangement(plan, 4) == [new, 3, 1, 4]
    assert moved_scenes(plan, 4) == {3: 2, 1: 3, 4: 4}
    plan = _plan(deletes=[2], inserts=[SceneInsert(after=2, scene=new)])  # inserted after a deleted scene
    assert arrangement(plan, 3) == [1, new, 3]
