"""Where a clip plays on its slide: in the picture's box, never over the slide's text."""

from __future__ import annotations

import pytest
from PIL import Image

from lessonforge.agent.scene_clips import clip_box
from lessonforge.tools.media import layouts


def _overlaps(a, b) -> bool:
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


@pytest.mark.parametrize(("role", "aspect"), [("hook", "16:9"), ("hook", "9:16"), ("concept", "16:9"),
                                              ("process", "1:1")])
def test_the_clip_box_keeps_clear_of_the_title_and_the_key_phrases(role, aspect):
    slide = layouts.compose_scene(role=role, title="Why does water boil?", bullets=["Heat", "Bubbles of vapour"],
                                  picture=Image.new("RGB", (512, 512), (90, 140, 200)), footer="Boiling", index=1,
                                  total=3, aspect=aspect, theme="light", language="en")
    box = clip_box(slide.boxes)
    assert box is not None
    px0, py0, px1, py1 = slide.boxes["picture"]
    assert px0 <= box[0] < box[2] <= px1 and py0 <= box[1] < box[3] <= py1
    for name, other in slide.boxes.items():
        if name.startswith(("title", "bullet", "footer")):
            assert not _overlaps(box, other), (name, box, other)


def test_no_picture_or_no_room_means_no_clip_box():
    assert clip_box({"title": (0, 0, 100, 40)}) is None
    assert clip_box({"picture": (0, 0, 200, 100), "title": (0, 40, 200, 80)}) is None  # 40 px left above


class _Clips:
    """A clip generator that writes a few bytes, or fails; counts its (paid) calls."""

    name = "test:clips"
    price_per_second = 0.1

    def __init__(self, fail: str = "") -> None:
        self.calls, self.fail = 0, fail

    async def generate(self, request, out):
        from lessonforge.tools.base import ClipError
        from lessonforge.tools.clips import Clip

        self.calls += 1
        if self.fail:
            raise ClipError(self.fail)
        out.write_bytes(b"mp4 " + request.prompt.encode())
        return Clip(path=out, seconds=float(request.seconds), model="test-video", cost=0.5, prompt=request.prompt)


def _clip_state():
    from lessonforge.agent.schemas import SceneDraft
    from lessonforge.agent.state import LessonRequest

    draft = SceneDraft.model_validate({"role": "concept", "title": "Boiling", "bullets": ["heat"], "key": "",
                                       "answer": "", "narration": "Water boils.",
                                       "visual": {"kind": "clip", "prompt": "water boiling in a pot", "seconds": 5}})
    return {"request": LessonRequest(topic="boiling"), "draft": draft}


def test_a_clip_is_paid_for_once_and_placed_in_each_scene_folder(tmp_path):
    import asyncio

    from lessonforge.agent.context import Context
    from lessonforge.agent.project import Project
    from lessonforge.agent.scene_clips import make

    clips = _Clips()
    ctx = Context(project=Project(tmp_path / "lesson"), clips=clips)
    first, why = asyncio.run(make(ctx, _clip_state(), tmp_path / "lesson" / "scenes" / "01"))
    again, _ = asyncio.run(make(ctx, _clip_state(), tmp_path / "lesson" / "scenes" / "02"))
    assert why == "" and clips.calls == 1  # the second scene found it in the store
    assert first.file.path == "scenes/01/clip.mp4" and again.file.path == "scenes/02/clip.mp4"
    assert first.file.sha256 == again.file.sha256 and (first.model, first.seconds, first.cost) == ("test-video", 5, 0.5)
    assert (tmp_path / "lesson" / "scenes" / "02" / "clip.mp4").read_bytes() == b"mp4 water boiling in a pot"


def test_a_clip_that_fails_leaves_nothing_and_says_why(tmp_path):
    import asyncio

    from lessonforge.agent.context import Context
    from lessonforge.agent.project import Project
    from lessonforge.agent.scene_clips import make

    ctx = Context(project=Project(tmp_path / "lesson"), clips=_Clips(fail="the service refused the prompt"))
    clip, why = asyncio.run(make(ctx, _clip_state(), tmp_path / "lesson" / "scenes" / "01"))
    assert clip is None and why == "the service refused the prompt"
    assert not list((tmp_path / "lesson").rglob("*.mp4")) and not list((tmp_path / "lesson").rglob("*.tmp*"))
