"""Pictograms: every offered name draws, crisply and deterministically, in the colour asked for."""

from __future__ import annotations

import numpy as np
import pytest

from lessonforge.tools.base import ConfigError
from lessonforge.tools.media import pictograms


def test_every_offered_name_is_a_free_solid_icon_of_the_set():
    points = pictograms.codepoints()
    assert len(pictograms.NAMES) == len(set(pictograms.NAMES)) >= 100
    assert [n for n in pictograms.NAMES if n not in points] == []
    assert "CC BY 4.0" in pictograms.LICENCE


def test_an_icon_is_drawn_centred_in_its_colour_and_the_same_every_time():
    a = pictograms.draw("leaf", 256, (0, 95, 184))
    b = pictograms.draw("leaf", 256, (0, 95, 184))
    assert a.size == (256, 256) and a.mode == "RGBA" and a.tobytes() == b.tobytes()
    px = np.asarray(a)
    ink = px[..., 3] > 200
    assert 0.15 < ink.mean() < 0.8  # a solid shape, not a speck or a block
    assert (px[ink][:, :3] == (0, 95, 184)).all()  # exactly the colour asked for where it is opaque
    ys, xs = np.nonzero(ink)
    assert abs((xs.min() + xs.max()) / 2 - 128) < 8 and abs((ys.min() + ys.max()) / 2 - 128) < 8
    assert pictograms.draw("sun", 256, (0, 95, 184)).tobytes() != a.tobytes()


def test_an_unknown_name_is_named_with_ones_that_exist():
    with pytest.raises(ConfigError, match="unknown pictogram 'leaves'.*leaf"):
        pictograms.draw("leaves", 64, (0, 0, 0))


@pytest.mark.parametrize("title, prompt, icon", [
    ("Inside the leaf", "a cross-section of a green leaf showing chloroplasts in its cells, microscope style", "leaf"),
    ("Food from thin air?", "a tall oak tree in an open meadow at sunrise", "tree"),
    ("Volcanoes", "an erupting volcano with lava", "volcano"),
    ("Measuring length", "a wooden ruler on a desk", "ruler"),
])
def test_a_picture_scene_without_an_image_model_gets_a_fitting_icon(title, prompt, icon):
    assert pictograms.suggest(prompt, title=title) == icon


def test_nothing_fitting_gives_no_icon():
    assert pictograms.suggest("zzz qqq", title="xyzzy") is None
