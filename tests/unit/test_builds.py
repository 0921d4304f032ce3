"""Slides that build with the voice: when each key phrase appears, from the narration's word times."""

from __future__ import annotations

import pytest

from lessonforge.tools.media import builds


def _words(text: str, every: float = 0.4) -> list[tuple[str, float, float]]:
    return [(w, round(i * every, 3), round(i * every + 0.3, 3)) for i, w in enumerate(text.split())]


SAID = _words("Photosynthesis needs three things light from the sun water from the roots and carbon dioxide "
              "from the air around the leaf")


def test_each_phrase_appears_when_it_is_said_and_is_highlighted_while_it_is_talked_about():
    steps = builds.plan(["Light", "Water", "Carbon dioxide"], SAID, speech_end=SAID[-1][2], hold=12.0)
    assert [(s.shown, s.highlight) for s in steps] == [(0, None), (1, 0), (2, 1), (3, 2), (3, None)]
    assert [s.start for s in steps[1:4]] == [1.6, 3.2, 5.2]  # "light", "water", "carbon"
    assert steps[0].start == 0.0 and all(s.reveal_answer for s in steps)


def test_plurals_and_case_still_match_and_a_phrase_never_said_keeps_its_order():
    words = _words("Plants hold CHLOROPLASTS and then we end with a summary of it all today")
    times = builds.phrase_times(["Plant", "Never mentioned", "Chloroplast"], words, duration=5.0)
    assert times[0] == 0.0 and times[2] == 0.8 and times[0] < times[1] < times[2]


def test_steps_too_close_together_merge_so_nothing_flickers():
    words = _words("alpha beta gamma delta", every=0.2)
    steps = builds.plan(["alpha", "beta", "gamma", "delta"], words, speech_end=0.9, hold=6.0)
    gaps = [b.start - a.start for a, b in zip(steps, steps[1:])]
    assert all(g >= builds.MIN_STEP for g in gaps)
    assert steps[-1].shown == 4  # every phrase still appears


def test_a_question_holds_its_answer_until_it_is_spoken():
    steps = builds.plan([], [("Which", 0.0, 0.3), ("gas", 0.4, 0.7)], speech_end=6.5, hold=9.0, answer_at=5.2)
    assert [(s.start, s.reveal_answer) for s in steps] == [(0.0, False), (5.2, True)]


def test_a_last_step_too_near_the_end_is_not_shown_for_a_blink():
    steps = builds.plan(["Light"], _words("we see light"), speech_end=2.0, hold=2.3)
    assert steps[-1].highlight == 0 and len(steps) == 2  # the plain final state would last 0.3 s: dropped


def test_hold_times_are_whole_frames_that_add_up_to_the_hold():
    times = builds.durations([0.0, 1.61, 3.2], hold=7.0, fps=24)
    assert sum(round(t * 24) for t in times) == 168 and all(abs(t * 24 - round(t * 24)) < 1e-9 for t in times)
    with pytest.raises(ValueError, match="hold"):
        builds.plan(["a"], [], speech_end=1.0, hold=0.0)
