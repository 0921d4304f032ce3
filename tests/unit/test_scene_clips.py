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
