from __future__ import annotations

import pytest

from lessonforge.agent.edit import PlanError, apply_plan
from lessonforge.agent.project import Manifest
from lessonforge.agent.schemas import EditPlan, LessonChange, SceneDraft, SceneEdit, SceneInsert, Script
from lessonforge.agent.state import LessonRequest, SceneRecord


def _scene(n: int) -> SceneDraft:
    return SceneDraft(title=f"S{n}", bullets=[f"b{n}"], narration=f"Narration {n}.", illustration_prompt=f"p{n}",
                      visual="illustration")


def _manifest(n: int = 4) -> Manifest:
    scenes = [_scene(i) for i in range(1, n + 1)]
    records = [SceneRecord(index=i, slug=f"{i:02d}-s", target_seconds=10, **sc.model_dump())
               for i, sc in enumerate(scenes, 1)]
    return Manifest(request=LessonRequest(topic="t"), script=Script(title="T", scenes=scenes), scenes=records)


NO_CHANGE = LessonChange(voice=None, language=None, audience=None, minutes=None, theme=None, aspect=None)


def _plan(**kw) -> EditPlan:
    base = dict(action="edit", reply="ok", scene_edits=[], inserts=[], deletes=[], order=None, lesson=NO_CHANGE)
    return EditPlan(**{**base, **kw})


def titles(script):
    return [s.title for s in script.scenes]


def test_edit_changes_only_named_fields():
    edit = SceneEdit(
        scene=2, role=None, title=None, bullets=["new"], narration=None, key=None, answer=None, visual=None
    )
    _, script, changed = apply_plan(_manifest(), _plan(scene_edits=[edit]))
    assert script.scenes[1].bullets == ["new"] and script.scenes[1].narration == "Narration 2."
    assert changed == ["scene 2 (bullets)"]


def test_insert_delete_and_reorder_use_current_numbers():
    plan = _plan(inserts=[SceneInsert(after=1, scene=_scene(9)), SceneInsert(after=0, scene=_scene(0))],
                 deletes=[3], order=[4, 1, 2])
    _, script, changed = apply_plan(_manifest(), plan)
    assert titles(script) == ["S0", "S4", "S1", "S9", "S2"]
    assert "deleted scene 3" in changed and "scene order" in changed


def test_insert_after_a_deleted_scene_stays_in_place():
    plan = _plan(inserts=[SceneInsert(after=2, scene=_scene(9))], deletes=[2])
    _, script, _ = apply_plan(_manifest(), plan)
    assert titles(script) == ["S1", "S9", "S3", "S4"]


def test_lesson_wide_changes_update_the_request():
    change = NO_CHANGE.model_copy(update={"voice": "en-GB-SoniaNeural", "minutes": 3.0})
    request, script, changed = apply_plan(_manifest(), _plan(lesson=change))
    assert request.voice == "en-GB-SoniaNeural" and request.minutes == 3.0
    assert titles(script) == ["S1", "S2", "S3", "S4"]
    assert set(changed) == {"voice -> en-GB-SoniaNeural", "minutes -> 3.0"}


@pytest.mark.parametrize(
    ("plan", "needle"),
    [
        (_plan(deletes=[7]), "no scene 7"),
        (_plan(order=[1, 2, 3]), "each remaining scene once"),
        (_plan(deletes=[1, 2, 3, 4]), "every scene"),
        (_plan(lesson=NO_CHANGE.model_copy(update={"minutes": 90.0})), "between 0.5 and 30"),
    ],
)
def test_impossible_plans_are_explained(plan, needle):
    with pytest.raises(PlanError, match=needle):
        apply_plan(_manifest(), plan)
