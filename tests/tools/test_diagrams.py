"""The diagram visual kind: the LLM-facing model, and drawing that is exact, legible and deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from lessonforge.tools.base import ConfigError
from lessonforge.tools.llm.openai import strict_json_schema
from lessonforge.tools.media import diagrams, slides
from lessonforge.tools.media.diagrams import (
    Diagram,
    TypeAdapter,
    compose_diagram_slide,
    draw_diagram,
    format_value,
    palette,
)

# Distinctive colours: label text is pure-ish red, nothing else in the picture is red.
PROBE = slides.Theme("probe", background=(255, 255, 255), title=(0, 0, 0), text=(200, 0, 0),
                     accent=(0, 0, 190), muted=(0, 110, 0))


def make(kind: str, **kw) -> Diagram:
    base = {"kind": kind, "labels": [], "values": [], "columns": [], "rows": [], "caption": ""}
    return diagrams.parse_diagram({**base, **kw})  # the earlier flat form is read too


STEPS = make("steps", labels=["Light hits the leaf", "Water splits", "Carbon dioxide enters", "Sugar is made",
                              "Oxygen leaves"], caption="Photosynthesis in five steps")
CYCLE = make("cycle", labels=["Evaporation", "Condensation", "Precipitation", "Collection"],
             caption="The water cycle")
TABLE = make("comparison", columns=["Feature", "Plant cell", "Animal cell"],
             rows=[["Cell wall", "Yes", "No"], ["Chloroplasts", "Yes", "No"], ["Vacuole", "One large", "Many small"]],
             caption="")
BARS = make("bar_chart", labels=["Mercury", "Venus", "Earth", "Mars"], values=[0.38, 0.91, 1.0, -0.2],
            caption="Surface gravity (Earth = 1)")
ALL = {"steps": STEPS, "cycle": CYCLE, "comparison": TABLE, "bar_chart": BARS}


def red_mask(img: Image.Image) -> np.ndarray:
    a = np.asarray(img).astype(int)
    return (a[..., 0] - np.maximum(a[..., 1], a[..., 2])) > 60


def box_mask(shape: tuple[int, int], boxes) -> np.ndarray:
    m = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        m[max(0, int(np.floor(y0))): int(np.ceil(y1)) + 1, max(0, int(np.floor(x0))): int(np.ceil(x1)) + 1] = True
    return m


# --------------------------------------------------------------------------- drawing


@pytest.mark.parametrize("kind", list(ALL))
@pytest.mark.parametrize("size", [(826, 727), (936, 611), (333, 517)])
def test_each_kind_draws_at_the_exact_size_on_the_theme_background(kind, size):
    theme = slides.THEMES["dark"]
    img = draw_diagram(ALL[kind], width=size[0], height=size[1], theme=theme)
    assert img.mode == "RGB" and img.size == size
    a = np.asarray(img)
    assert tuple(a[0, 0]) == theme.background and tuple(a[-1, -1]) == theme.background
    assert (a != np.array(theme.background)).any(axis=-1).mean() > 0.03  # something was drawn


@pytest.mark.parametrize("kind", list(ALL))
def test_every_label_is_drawn_inside_its_box_and_no_text_outside_the_boxes(kind):
    drawn = diagrams._render(ALL[kind], width=830, height=700, theme=PROBE)
    img, placed = drawn.image, drawn.placed
    red = red_mask(img)
    labels = [(t, b) for t, b, colour in placed if colour == PROBE.text]
    expected = {"comparison": [c for row in TABLE.rows for c in row]}.get(kind, ALL[kind].labels)
    if kind == "bar_chart":
        expected = [*BARS.labels, *(format_value(v) for v in BARS.values)]
    assert sorted(t for t, _ in labels) == sorted(expected)
    for text, box in labels:
        inside = red & box_mask(red.shape, [box])
        assert inside.sum() > 20 * len(text.replace(" ", "")), f"{text!r} is not visible in its box"
    outside = red & ~box_mask(red.shape, [b for _, b in labels])
    assert outside.sum() == 0


@pytest.mark.parametrize("kind", ["steps", "cycle", "bar_chart"])
def test_long_labels_wrap_and_shrink_but_never_leave_their_boxes(kind):
    long = ["Light energy is absorbed by chlorophyll", "Water molecules are split apart",
            "Hydrogen joins carbon dioxide", "Glucose is built step by step", "Oxygen escapes through stomata",
            "Supercalifragilisticexpialidocious"]
    d = make(kind, labels=long, values=[1, 2, 3, 4, 5, 6] if kind == "bar_chart" else [],
             caption="A deliberately long caption that must wrap onto a second line to fit under the diagram here")
    drawn = diagrams._render(d, width=420, height=360, theme=PROBE)
    img, placed = drawn.image, drawn.placed
    red = red_mask(img)
    boxes = [b for _, b, colour in placed if colour == PROBE.text]
    assert red.sum() > 0
    assert (red & ~box_mask(red.shape, boxes)).sum() == 0
    caption = [b for t, b, colour in placed if colour == PROBE.muted]
    assert len(caption) == 1 and caption[0][3] <= 360


def test_a_table_header_is_set_on_the_accent_colour_in_the_background_colour():
    drawn = diagrams._render(TABLE, width=830, height=700, theme=PROBE)
    img, placed = drawn.image, drawn.placed
    a = np.asarray(img).astype(int)
    headers = [(t, b) for t, b, colour in placed if colour == PROBE.background]
    assert [t for t, _ in headers] == TABLE.columns
    for _, (x0, y0, x1, y1) in headers:
        region = a[int(y0): int(y1), int(x0): int(x1)]
        blue = (region[..., 2] > 150) & (region[..., 0] < 60)
        white = region.min(axis=-1) > 200
        assert blue.mean() > 0.5 and white.sum() > 50  # text drawn on the header band


def test_steps_flow_left_to_right_and_mirror_for_right_to_left_languages():
    d = make("steps", labels=["one", "two", "three"])
    ltr = diagrams._render(d, width=900, height=400, theme=PROBE, language="en").placed
    rtl = diagrams._render(d, width=900, height=400, theme=PROBE, language="ar").placed

    def xs(placed):
        return [b[0] for t, b, colour in placed if colour == PROBE.text]

    assert xs(ltr) == sorted(xs(ltr)) and xs(rtl) == sorted(xs(rtl), reverse=True)


def test_arabic_labels_flow_right_to_left_whatever_the_language_setting():
    d = make("steps", labels=["الضوء", "الماء", "السكر"])
    placed = diagrams._render(d, width=900, height=400, theme=PROBE, language="en").placed
    xs = [b[0] for t, b, colour in placed if colour == PROBE.text]
    assert xs == sorted(xs, reverse=True)


def test_text_that_cannot_fit_at_the_floor_is_cut_inside_its_box_and_reported_on_the_slide():
    long = "Photosynthesisandchlorophyllmakesugarfas"  # 40 characters, no break
    d = make("steps", labels=[long] * 6)
    drawn = diagrams._render(d, width=160, height=100, theme=PROBE, min_font_px=14)
    assert drawn.cuts == [long] * 6
    red = red_mask(drawn.image)
    assert red.sum() > 0
    assert (red & ~box_mask(red.shape, [b for _, b, c in drawn.placed if c == PROBE.text])).sum() == 0
    table = make("comparison", columns=["Feature", "Plant", "Animal", "Fungus"], rows=[[long] * 4] * 6, caption="")
    r = compose_diagram_slide(table, title="t", bullets=["b"], footer="f", index=1, total=1, aspect="1:1")
    assert r.overflow and any("diagram text cut" in n for n in r.notes)
    fine = compose_diagram_slide(TABLE, title="t", bullets=["b"], footer="f", index=1, total=1, aspect="1:1")
    assert not fine.overflow and not fine.notes


def test_many_steps_wrap_to_rows():
    d = make("steps", labels=[f"Step {c}" for c in "ABCDEF"])
    placed = diagrams._render(d, width=830, height=700, theme=PROBE).placed
    tops = {round(b[1]) for t, b, colour in placed if colour == PROBE.text}
    assert len(tops) >= 2


def test_bars_are_as_tall_as_their_values():
    d = make("bar_chart", labels=["a", "b"], values=[1.0, 3.0])
    img = draw_diagram(d, width=600, height=500, theme=PROBE)
    a = np.asarray(img).astype(int)
    accent = (a[..., 2] > 150) & (a[..., 0] < 40) & (a[..., 1] < 40)
    cols = accent.sum(axis=0)
    left, right = cols[: 300].max(), cols[300:].max()
    assert right == pytest.approx(3 * left, rel=0.05)


@pytest.mark.slow
def test_drawing_is_deterministic():
    for d in ALL.values():
        a = draw_diagram(d, width=640, height=480, theme=slides.THEMES["chalk"])
        b = draw_diagram(d, width=640, height=480, theme=slides.THEMES["chalk"])
        assert a.tobytes() == b.tobytes()
    other = make("steps", labels=["Light hits the leaf", "Water splits"])
    assert draw_diagram(other, width=640, height=480, theme=slides.THEMES["chalk"]).tobytes() != \
        draw_diagram(STEPS, width=640, height=480, theme=slides.THEMES["chalk"]).tobytes()


def test_non_latin_labels_use_a_font_that_covers_them():
    d = make("cycle", labels=["Испарение", "Конденсация", "Осадки"], caption="Κύκλος του νερού")
    drawn = diagrams._render(d, width=700, height=600, theme=PROBE, language="ru")
    img, placed = drawn.image, drawn.placed
    assert img.size == (700, 600) and len(placed) == 4
    for text, *_ in placed:
        assert not slides.choose_font(text, bold=True, language="ru").missing


def test_palette_colours_meet_wcag_aa_on_what_they_are_drawn_on():
    for theme in slides.THEMES.values():
        p = palette(theme)
        assert slides.contrast_ratio(p.text, p.fill) >= 4.5
        assert slides.contrast_ratio(p.text, p.background) >= 4.5
        assert slides.contrast_ratio(p.strong, p.edge) >= 4.5
        assert slides.contrast_ratio(p.muted, p.background) >= 4.5


def test_a_diagram_slide_holds_the_diagram_at_its_illustration_box_one_to_one():
    for aspect in ("16:9", "9:16"):
        r = compose_diagram_slide(CYCLE, title="The water cycle", bullets=["Heat lifts water", "Cold brings it down"],
                                  footer="Water", index=2, total=4, aspect=aspect, theme="light")
        box = r.boxes["illustration"]
        assert r.boxes["picture"] == box
        alone = draw_diagram(CYCLE, width=box[2] - box[0], height=box[3] - box[1], theme=slides.THEMES["light"])
        assert r.image.crop(box).tobytes() == alone.tobytes()
        assert not r.overflow


def test_too_small_a_size_is_a_config_error():
    with pytest.raises(ConfigError, match="at least 64"):
        draw_diagram(STEPS, width=40, height=300, theme=PROBE)


def test_format_value():
    assert [format_value(v) for v in (1500.0, 3.75, 0.042, -2.0, 12.5, 250.4)] == \
        ["1,500", "3.75", "0.042", "-2", "12.5", "250"]


# --------------------------------------------------------------------------- the model


class _Holder(diagrams.Contract):
    diagram: Diagram


def test_each_kind_is_its_own_strict_object_with_its_limits_in_the_schema():
    schema = strict_json_schema(_Holder)  # what a local decoder is constrained to
    branches = {b["properties"]["kind"]["enum"][0]: b for b in
                (schema["$defs"][ref["$ref"].split("/")[-1]] for ref in schema["properties"]["diagram"]["anyOf"])}
    assert set(branches) == {"steps", "cycle", "comparison", "bar_chart"}
    for kind, b in branches.items():
        assert b["additionalProperties"] is False and set(b["required"]) == set(b["properties"]), kind
        assert all(p.get("description") for k, p in b["properties"].items() if k != "kind"), kind
    assert branches["steps"]["properties"]["steps"].items() >= {"minItems": 2, "maxItems": 6}.items()
    assert branches["steps"]["properties"]["steps"]["items"]["maxLength"] == 40
    assert branches["cycle"]["properties"]["stages"]["minItems"] == 3
    table = branches["comparison"]["properties"]["table"]
    cells = table["items"]
    assert (table["minItems"], table["maxItems"], cells["minItems"], cells["maxItems"]) == (1, 6, 2, 4)
    assert branches["bar_chart"]["properties"]["bars"]["minItems"] == 2
    assert "labels" not in branches["comparison"]["properties"]  # a kind has exactly its own fields


@pytest.mark.parametrize("fields, message", [
    ({"kind": "steps", "steps": ["only one"]}, "at least 2 item"),
    ({"kind": "steps", "steps": ["one", " "]}, "at least 2 steps"),  # an empty one does not count
    ({"kind": "cycle", "stages": ["a", "b"]}, "at least 3 item"),
    ({"kind": "cycle", "stages": ["a", "b", "\n"]}, "a cycle needs at least 3 stages, got 2"),
    ({"kind": "comparison", "header": ["only"], "table": [["x"]]}, "at least 2 item"),
    ({"kind": "comparison", "header": ["a", "b"], "table": []}, "at least 1 item"),
    ({"kind": "comparison", "header": ["a", "b"], "table": [["", ""]]}, "at least one row with text"),
    ({"kind": "bar_chart", "bars": [{"label": "a", "value": 1}, {"label": "b", "value": float("nan")}]}, "finite"),
    ({"kind": "steps", "steps": ["a", "b"], "values": [1, 2]}, "Extra inputs"),
    ({"kind": "pie", "steps": ["a", "b"]}, "does not match any of the expected tags"),
])
def test_what_the_schema_forbids_is_rejected(fields, message):
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(Diagram).validate_python({"caption": "", **fields})


def test_what_a_backend_may_not_enforce_is_repaired_and_recorded():
    d = diagrams.parse_diagram({"kind": "steps", "caption": "c " * 80,
                                "steps": ["a", "  ", "Carbon dioxide enters the leaf through pores", *"bcdefg"]})
    assert d.steps == ["a", "Carbon dioxide enters the leaf through", "b", "c", "d", "e"]  # cut at a word, 6 kept
    assert len(d.caption) <= 120 and not d.caption.endswith(" ")
    assert any("empty" in r for r in d.repairs) and any("first 6" in r for r in d.repairs)
    assert any("caption cut" in r for r in d.repairs)
    t = diagrams.parse_diagram({"kind": "comparison", "caption": "", "header": ["Feature", "A", "B"],
                                "table": [["wall", "yes"], ["x", "y", "z", "extra"], ["", "", ""]]})
    assert t.rows == [["wall", "yes", ""], ["x", "y", "z"]]
    assert len(t.repairs) == 3


@pytest.mark.parametrize("kind, field", [("steps", "steps"), ("cycle", "stages")])
def test_steps_and_cycles_repair_their_labels_alike(kind, field):
    d = diagrams.parse_diagram({"kind": kind, "caption": "",
                                field: ["a", "  ", "Carbon dioxide enters the leaf through pores", *"bcdefg"]})
    assert getattr(d, field) == d.labels == ["a", "Carbon dioxide enters the leaf through", "b", "c", "d", "e"]
    assert [r.split(":")[0].split("[")[0] for r in d.repairs] == [field] * 3  # empty, cut, first 6, by its own name


def test_whitespace_in_labels_is_normalised():
    d = make("steps", labels=["  Light \n hits ", "leaf"], caption="  two   steps ")
    assert d.labels == ["Light hits", "leaf"] and d.caption == "two steps"
