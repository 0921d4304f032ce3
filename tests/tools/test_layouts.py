"""Slide layouts by role: every layout in every aspect and script family fits, stays legible and AA,
fills its frame, and its build states differ only where a bullet appears or is highlighted."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lessonforge.tools.base import ConfigError
from lessonforge.tools.media import diagrams, layouts, pictograms, slides
from lessonforge.tools.media.layouts import compose_scene, largest_empty_fraction
from lessonforge.tools.media.slides import ASPECTS, THEMES, contrast_ratio
from lessonforge.tools.media.specimens import SCRIPTS, cases

ROOT = Path(__file__).resolve().parents[2]


def inside(box, frame) -> bool:
    return frame[0] <= box[0] and frame[1] <= box[1] and box[2] <= frame[2] and box[3] <= frame[3]


def changed(a: Image.Image, b: Image.Image):
    """Bounding box of the pixels that differ between two frames (None when identical)."""
    d = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max(axis=2) > 0
    if not d.any():
        return None
    ys, xs = np.nonzero(d)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def grow(box, by):
    return (box[0] - by, box[1] - by, box[2] + by, box[3] + by)


# --------------------------------------------------------------------------- every layout, aspect, script


@pytest.mark.parametrize("aspect", sorted(ASPECTS))
@pytest.mark.parametrize("family", sorted(SCRIPTS))
@pytest.mark.slow
def test_every_layout_fits_is_legible_aa_and_fills_its_frame(family, aspect):
    t = SCRIPTS[family]
    W, H = ASPECTS[aspect]
    scale = min(W, H) / 1080
    seen = set()
    themes = sorted(THEMES)
    for i, (name, kw) in enumerate(cases(t).items()):
        theme = themes[(i + sorted(SCRIPTS).index(family)) % len(themes)]  # every layout meets every theme
        r = compose_scene(index=3, total=9, aspect=aspect, theme=theme, **kw)
        where = f"{family} {aspect} {name}"
        seen.add(r.layout)
        assert r.image.size == (W, H) and r.image.mode == "RGB", where
        assert not r.overflow, (where, r.notes)
        assert r.min_font_px >= round(28 * scale), where
        assert largest_empty_fraction(r.image, THEMES[theme].background) <= 0.40, where
        assert r.ink, where
        for what, box, colour, ground in r.ink:
            assert contrast_ratio(colour, ground) >= 4.5, (where, what, colour, ground)
            assert inside(box, (0, 0, W, H)), (where, what, box)
            if aspect == "9:16":  # out of the zones short-video apps cover
                assert inside(box, (0, 220, W - 140, H - 380)), (where, what, box)
    assert seen == set(layouts.LAYOUTS), seen ^ set(layouts.LAYOUTS)


@pytest.mark.parametrize("theme", sorted(THEMES))
def test_text_over_a_picture_gets_a_scrim_that_keeps_aa(theme):
    white = Image.new("RGB", (800, 600), (255, 255, 255))  # the worst picture for light text
    r = compose_scene(role="hook", title="Food from thin air?", bullets=["A tree's mass"], picture=white,
                      footer="Plants", index=1, total=6, theme=theme)
    assert r.layout == "hero"
    title = r.boxes["title"]
    under = np.asarray(r.image.crop(title))
    lightest = under.reshape(-1, 3)[np.argmax(under.reshape(-1, 3).sum(axis=1))]
    assert lightest.sum() < 3 * 255  # the picture under the title was darkened
    for what, _, colour, ground in r.ink:
        assert contrast_ratio(colour, ground) >= 4.5, (what, colour, ground)


def test_titles_and_bullets_are_the_same_size_on_diagram_and_text_slides():
    t = SCRIPTS["latin"]
    kw = dict(title="What the plant makes", footer="Plants", index=2, total=6)
    bullets = ["Glucose: stored energy", "Oxygen: released"]
    steps = diagrams.parse_diagram({"kind": "steps", "steps": t["steps"], "caption": ""})
    on_diagram = compose_scene(role="process", bullets=bullets, diagram=steps, **kw)
    on_split = compose_scene(role="concept", bullets=bullets, icon="sun", **kw)
    on_rows = compose_scene(role="recap", bullets=bullets, **kw)
    assert (on_diagram.layout, on_split.layout, on_rows.layout) == ("diagram", "split", "numbered")

    def title_px(r):
        return r.boxes["title"][3] - r.boxes["title"][1]

    assert title_px(on_diagram) == title_px(on_split) == title_px(on_rows)
    assert on_diagram.min_font_px == on_split.min_font_px  # bullets at one size beside a diagram or a picture


# --------------------------------------------------------------------------- build states


@pytest.mark.parametrize("aspect", sorted(ASPECTS))
@pytest.mark.parametrize("name", ["split-pictogram", "numbered", "columns", "diagram-steps", "hero"])
@pytest.mark.slow
def test_build_states_differ_only_where_a_bullet_appears_or_is_highlighted(aspect, name):
    kw = cases(SCRIPTS["latin"])[name]
    full = compose_scene(index=2, total=6, aspect=aspect, **kw)
    n = len(kw["bullets"])
    prev = None
    for shown in range(n + 1):
        state = compose_scene(index=2, total=6, aspect=aspect, **{**kw, "shown": shown})
        assert {k: v for k, v in state.boxes.items()} == full.boxes, (name, shown)  # nothing moves
        if prev is not None:
            diff = changed(prev.image, state.image)
            assert diff is not None, (name, shown)  # the new bullet appeared
            assert inside(diff, grow(full.boxes[f"bullet{shown - 1}"], 24)), (name, shown, diff)
        prev = state
    assert changed(prev.image, full.image) is None  # all shown == no build
    lit = compose_scene(index=2, total=6, aspect=aspect, **{**kw, "highlight": 1})
    diff = changed(full.image, lit.image)
    assert diff is not None and inside(diff, grow(full.boxes["bullet1"], 24)), (name, diff)


@pytest.mark.parametrize("choices", [[], ["Oxygen", "Carbon dioxide", "Nitrogen"]])
@pytest.mark.parametrize("aspect", sorted(ASPECTS))
def test_the_question_answer_is_drawn_only_when_revealed(choices, aspect):
    kw = {**cases(SCRIPTS["latin"])["question"], "bullets": choices}
    asked = compose_scene(index=6, total=6, reveal_answer=False, aspect=aspect, **kw)
    told = compose_scene(index=6, total=6, aspect=aspect, **kw)
    assert asked.boxes == told.boxes and not told.overflow
    diff = changed(asked.image, told.image)
    assert diff is not None and inside(diff, told.boxes["answer"])
    assert not any(what == "answer" for what, *_ in asked.ink)
    assert all(f"bullet{i}" in told.boxes for i in range(len(choices)))


# --------------------------------------------------------------------------- the demo lesson


def demo_frames(aspect: str, theme: str):
    """The bundled example as `make --images none` composes it: pictures fall back to pictograms."""
    script = json.loads((ROOT / "examples" / "photosynthesis.json").read_text())["script"]  # beside its "request"
    scenes = script["scenes"]
    for i, sc in enumerate(scenes, 1):
        visual = sc["visual"]
        icon = visual.get("icon") if visual["kind"] == "pictogram" else None
        if visual["kind"] == "picture":
            icon = pictograms.suggest(visual["prompt"], title=sc["title"])
        diagram = diagrams.parse_diagram(visual) if visual["kind"] in diagrams.DIAGRAM_KINDS else None
        yield compose_scene(role=sc["role"], title=sc["title"], bullets=sc["bullets"], key=sc["key"],
                            answer=sc["answer"], icon=icon, diagram=diagram, footer=script["title"], index=i,
                            total=len(scenes), aspect=aspect, theme=theme)


@pytest.mark.parametrize("aspect,theme", [("16:9", "light"), ("9:16", "dark"), ("1:1", "chalk")])
def test_the_demo_lesson_has_no_half_empty_frame(aspect, theme):
    frames = list(demo_frames(aspect, theme))
    empty = [largest_empty_fraction(r.image, THEMES[theme].background) for r in frames]
    assert statistics.median(empty) <= 0.30, empty
    assert max(empty) <= 0.40, empty
    assert not any(r.overflow for r in frames), [r.notes for r in frames]
    assert len({r.layout for r in frames}) >= 5  # not one template: layouts follow the roles


def test_largest_empty_fraction_measures_the_biggest_bare_rectangle():
    bg = (250, 250, 247)
    img = Image.new("RGB", (400, 200), bg)
    assert largest_empty_fraction(img, bg) == pytest.approx(1.0)
    img.paste((0, 0, 0), (200, 0, 400, 200))
    assert largest_empty_fraction(img, bg) == pytest.approx(0.5)
    img.paste((0, 0, 0), (0, 100, 200, 110))  # a bar across the empty half leaves its larger part
    assert largest_empty_fraction(img, bg) == pytest.approx(0.25, abs=0.01)


# --------------------------------------------------------------------------- typesetting


@pytest.mark.slow
def test_arabic_keeps_one_typeface_when_a_line_has_a_plus_sign():
    plain = slides.choose_font("ضوء ماء", bold=True, language="ar")
    mixed = slides.choose_font("ضوء + ماء", bold=True, language="ar")
    assert not mixed.missing and "dejavu" not in mixed.path.lower()
    word = "ضوء"
    a, b = plain.at(48), mixed.at(48)
    assert a.getmask(word).size == b.getmask(word).size and bytes(a.getmask(word)) == bytes(b.getmask(word))


def test_line_breaks_are_balanced_with_no_lone_last_word():
    font = slides.choose_font("x").at(48)
    m = slides._Measure(font, "ltr", None)
    text = "Plants take in light water and carbon dioxide"
    greedy = slides._wrap(text, m, m.width("Plants take in light water and carbon"))
    assert greedy[-1] == "dioxide"  # what greedy breaking does
    lines = slides.balance(text, m, m.width("Plants take in light water and carbon"), greedy)
    assert len(lines) == 2 and len(lines[-1].split()) >= 3


def test_japanese_words_are_not_split_across_lines():
    text = "植物は二酸化炭素と水から養分を作ります"
    font = slides.choose_font(text, language="ja").at(40)
    for width in (200, 260, 330, 420):
        lines = slides.wrap_text(text, font, width, language="ja")
        assert "".join(lines) == text
        assert any("二酸化炭素" in line for line in lines), (width, lines)


def test_title_case_only_where_the_language_uses_it():
    assert slides.display_title("the three ingredients of CO2", "en") == "The Three Ingredients of CO2"
    assert slides.display_title("Le théorème de Pythagore", "fr") == "Le théorème de Pythagore"
    kw = dict(role="concept", bullets=["a² + b² = c²"], footer="Maths", index=1, total=2)

    def frame(title, language):
        return np.asarray(compose_scene(title=title, language=language, **kw).image)

    assert np.array_equal(frame("the theorem of Pythagoras", "en"), frame("The Theorem of Pythagoras", "en"))
    assert not np.array_equal(frame("Le théorème de Pythagore", "fr"), frame("Le Théorème De Pythagore", "fr"))


def test_the_chalk_theme_is_a_textured_framed_board_and_deterministic():
    a = slides.canvas(THEMES["chalk"], (1920, 1080))
    b = slides.canvas(THEMES["chalk"], (1920, 1080))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    arr = np.asarray(a, np.int16)
    middle = arr[300:700, 500:1400]
    assert middle.std() > 1.0  # grain, not a flat green
    assert np.abs(middle - np.asarray(THEMES["chalk"].background)).max() <= layouts.CHALK_GRAIN
    assert np.abs(arr[2, 960] - np.asarray(THEMES["chalk"].frame)).max() <= 2  # the wooden frame


def test_a_six_stage_cycle_keeps_every_label_whole():
    t = SCRIPTS["latin"]
    cycle = diagrams.parse_diagram({"kind": "cycle", "stages": t["cycle"], "caption": ""})
    drawn = diagrams._render(cycle, width=1100, height=620, theme=THEMES["light"], language="en", min_font_px=22)
    assert drawn.cuts == []
    for label in t["cycle"]:
        for line in drawn.lines[label]:
            assert set(line.split()) <= set(label.split()), (label, drawn.lines[label])


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="pictogram"):
        compose_scene(role="concept", title="x", bullets=[], icon="no-such-icon", footer="", index=1, total=1)
    with pytest.raises(ConfigError, match="shown"):
        compose_scene(role="concept", title="x", bullets=["a"], footer="", index=1, total=1, shown=-1)
    with pytest.raises(ConfigError, match="aspect"):
        compose_scene(role="concept", title="x", bullets=[], footer="", index=1, total=1, aspect="4:3")


@pytest.mark.parametrize("aspect", sorted(ASPECTS))
def test_title_and_end_cards(aspect):
    t = SCRIPTS["latin"]
    opener = layouts.title_card(title=t["footer"], lines=t["bullets"], icon="leaf", aspect=aspect)
    closer = layouts.end_card(title=t["footer"], lines=t["bullets"][:2], aspect=aspect)
    for r in (opener, closer):
        assert not r.overflow and r.image.size == ASPECTS[aspect]
        assert largest_empty_fraction(r.image, THEMES["light"].background) <= 0.40
        assert all(contrast_ratio(c, g) >= 4.5 for _, _, c, g in r.ink)
