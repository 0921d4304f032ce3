from __future__ import annotations

import pytest
from PIL import Image, ImageChops

from lessonforge.tools.base import ConfigError, RenderError
from lessonforge.tools.media import slides
from lessonforge.tools.media.slides import (
    ASPECTS,
    THEMES,
    choose_font,
    compose_slide,
    contrast_ratio,
    raqm_available,
    wrap_text,
)

SHORT = dict(title="How plants make food", bullets=["Light is the energy", "Water and CO2 are the inputs",
                                                     "Sugar and oxygen come out"], footer="Photosynthesis")
LONG_BULLET = "a bullet that keeps going with many words and never seems to stop talking about leaves " * 6
ARABIC = "ضوء الشمس يحتوي على كل الألوان"


def picture(w: int = 400, h: int = 200, colour=(255, 0, 255)) -> Image.Image:
    return Image.new("RGB", (w, h), colour)


def ink_bbox(img: Image.Image, box, background) -> tuple[int, int, int, int] | None:
    """Bounding box (slide coordinates) of everything in ``box`` that is not the background."""
    region = img.crop(box)
    diff = ImageChops.difference(region, Image.new("RGB", region.size, background)).convert("L")
    bb = diff.point(lambda v: 255 if v > 24 else 0).getbbox()
    return None if bb is None else (bb[0] + box[0], bb[1] + box[1], bb[2] + box[0], bb[3] + box[1])


def only_background_outside(result, theme: str) -> bool:
    """Nothing is drawn outside the named boxes."""
    bg = THEMES[theme].background
    mask = Image.new("L", result.image.size, 0)
    for box in result.boxes.values():
        mask.paste(255, box)
    diff = ImageChops.difference(result.image, Image.new("RGB", result.image.size, bg)).convert("L")
    outside = ImageChops.multiply(diff.point(lambda v: 255 if v > 0 else 0), ImageChops.invert(mask))
    # The footer rule is the one element outside the boxes by design: a thin line above the footer.
    rule_y = result.boxes["footer"][1] - 18 * min(result.image.size) // 1080
    outside.paste(0, (0, rule_y - 4, result.image.width, rule_y + 6))
    return outside.getbbox() is None


# --------------------------------------------------------------------------- colour


def test_contrast_ratio_matches_wcag_reference_values():
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast_ratio((255, 255, 255), (0, 0, 0)) == pytest.approx(21.0)
    assert contrast_ratio((120, 30, 200), (120, 30, 200)) == pytest.approx(1.0)
    assert contrast_ratio((0x77, 0x77, 0x77), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)  # fails AA
    assert contrast_ratio((0x76, 0x76, 0x76), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)  # passes AA
    assert contrast_ratio((255, 0, 0), (255, 255, 255)) == pytest.approx(4.0, abs=0.01)


@pytest.mark.parametrize("name", sorted(THEMES))
def test_every_theme_meets_wcag_aa(name):
    th = THEMES[name]
    for colour in (th.title, th.text, th.muted, th.accent):
        assert contrast_ratio(colour, th.background) >= 4.5, (name, colour)


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("aspect", sorted(ASPECTS))
@pytest.mark.parametrize("with_picture", [True, False])
def test_slide_has_the_exact_size_and_fits_short_text(aspect, with_picture):
    r = compose_slide(**SHORT, illustration=picture() if with_picture else None, index=2, total=5, aspect=aspect)
    assert r.image.mode == "RGB" and r.image.size == ASPECTS[aspect]
    assert not r.overflow and r.notes == []
    assert r.min_font_px >= 28
    assert "bullets" in r.boxes and "title" in r.boxes and "footer" in r.boxes
    assert ink_bbox(r.image, r.boxes["bullets"], THEMES["light"].background) is not None
    assert only_background_outside(r, "light")


def test_text_first_layout_sets_text_larger_and_has_an_accent():
    with_pic = compose_slide(**SHORT, illustration=picture(), index=1, total=3)
    text_first = compose_slide(**SHORT, illustration=None, index=1, total=3)
    assert text_first.min_font_px > with_pic.min_font_px
    bullets = text_first.boxes["bullets"]
    assert bullets[2] - bullets[0] > 1.5 * (with_pic.boxes["bullets"][2] - with_pic.boxes["bullets"][0])
    band = text_first.boxes["band"]
    assert text_first.image.getpixel((band[0] + 2, 540)) == THEMES["light"].accent


@pytest.mark.parametrize("aspect", sorted(ASPECTS))
def test_illustration_is_letterboxed_without_distortion(aspect):
    r = compose_slide(**SHORT, illustration=picture(400, 200), index=1, total=1, aspect=aspect, theme="dark")
    box = r.boxes["illustration"]
    magenta = ink_bbox(r.image, box, THEMES["dark"].background)
    assert magenta is not None
    w, h = magenta[2] - magenta[0], magenta[3] - magenta[1]
    assert w / h == pytest.approx(2.0, rel=0.02)
    assert box[0] <= magenta[0] and magenta[2] <= box[2] and box[1] <= magenta[1] and magenta[3] <= box[3]
    assert w == box[2] - box[0] or h == box[3] - box[1]  # as large as the box allows
    assert r.image.getpixel(((magenta[0] + magenta[2]) // 2, (magenta[1] + magenta[3]) // 2)) == (255, 0, 255)
    text = r.boxes["bullets"]
    if aspect == "16:9":
        assert text[2] <= box[0]  # beside the text
    else:
        assert box[3] <= text[1]  # above the text


def test_too_much_text_shrinks_to_the_floor_then_truncates_inside_its_box():
    r = compose_slide(title="A long title " * 40, bullets=[LONG_BULLET] * 5, illustration=picture(), footer="F",
                      index=1, total=1)
    assert r.overflow
    assert r.min_font_px == 28
    assert any("bullets cut" in n for n in r.notes) and any("title cut" in n for n in r.notes)
    assert only_background_outside(r, "light")
    # Text never reaches into the illustration box.
    text, pic = r.boxes["bullets"], r.boxes["illustration"]
    assert text[2] <= pic[0]


def test_more_than_five_bullets_are_cut_and_reported():
    r = compose_slide(title="T", bullets=[f"point {i}" for i in range(7)], illustration=None, footer="F",
                      index=1, total=1)
    assert r.overflow
    assert any("7 bullets" in n for n in r.notes)


def test_fitting_text_is_not_shrunk_to_the_floor():
    r = compose_slide(title="Short", bullets=["One idea"], illustration=None, footer="F", index=1, total=1)
    assert r.min_font_px >= 60


def test_statement_slide_centres_a_large_title():
    r = compose_slide(title="What makes the sky blue?", bullets=[], illustration=None, footer="Light",
                      index=1, total=4, theme="chalk")
    ink = ink_bbox(r.image, r.boxes["title"], THEMES["chalk"].background)
    assert ink is not None
    centre = (ink[1] + ink[3]) / 2
    box = r.boxes["title"]
    assert abs(centre - (box[1] + box[3]) / 2) < 60
    assert r.min_font_px > 76


# --------------------------------------------------------------------------- wrapping and fonts


def test_wrapping_measures_pixels_not_characters():
    font = choose_font("iW").at(40)
    narrow = " ".join(["iiii"] * 30)
    wide = " ".join(["WWWW"] * 30)
    narrow_lines = wrap_text(narrow, font, 600)
    wide_lines = wrap_text(wide, font, 600)
    assert len(wide_lines) > 2 * len(narrow_lines)
    for line in narrow_lines + wide_lines:
        assert font.getlength(line) <= 600
    assert " ".join(wide_lines) == wide


def test_cjk_wraps_per_character_and_keeps_punctuation_attached():
    text = "光合作用是植物利用阳光把水和二氧化碳变成糖的过程。叶绿素吸收红光和蓝光，反射绿光。"
    font = choose_font(text, language="zh").at(40)
    lines = wrap_text(text, font, 400)
    assert len(lines) > 2
    assert "".join(lines) == text
    for line in lines:
        assert font.getlength(line) <= 400
        assert line[0] not in "。，"


def test_a_word_longer_than_the_line_is_broken():
    font = choose_font("x").at(40)
    lines = wrap_text("Pneumonoultramicroscopicsilicovolcanoconiosis", font, 300)
    assert len(lines) > 1 and "".join(lines) == "Pneumonoultramicroscopicsilicovolcanoconiosis"
    assert all(font.getlength(line) <= 300 for line in lines)


def test_fonts_are_chosen_by_script_and_cover_the_text():
    assert choose_font("Photosynthesis").missing == ""
    arabic = choose_font(ARABIC)
    assert arabic.script == "arabic" and arabic.missing == ""
    mixed = choose_font(ARABIC + " DNA")  # Noto Sans Arabic has no Latin: a font with both is chosen
    assert mixed.missing == ""
    assert choose_font("Фотосинтез").missing == ""


def test_cjk_without_a_cjk_font_falls_back_with_a_note():
    r = compose_slide(title="光合作用", bullets=["植物利用阳光"], illustration=None, footer="光", index=1, total=1,
                      language="zh")
    if choose_font("光合作用", bold=True, language="zh").missing:
        assert any("fonts-noto-cjk" in n for n in r.notes)
    else:
        assert r.notes == []
    assert r.image.size == (1920, 1080)


def test_no_font_at_all_is_a_render_error_naming_the_package(monkeypatch):
    monkeypatch.setattr(slides, "font_candidates", lambda *a, **k: [("/nonexistent/font.ttf", 0)])
    choose_font.cache_clear()
    try:
        with pytest.raises(RenderError, match="fonts-dejavu-core"):
            compose_slide(**SHORT, illustration=None, index=1, total=1)
    finally:
        choose_font.cache_clear()


@pytest.mark.skipif(not raqm_available(), reason="Pillow without libraqm cannot lay out right-to-left text")
def test_right_to_left_text_is_right_aligned_and_mirrored():
    r = compose_slide(title="لماذا السماء زرقاء؟", bullets=[ARABIC, "جزيئات الهواء تشتت الضوء"],
                      illustration=picture(), footer="الضوء", index=1, total=2, language="ar")
    assert not r.overflow and r.notes == []
    text, pic = r.boxes["bullets"], r.boxes["illustration"]
    assert pic[2] <= text[0]  # picture on the left, text on the right
    bg = THEMES["light"].background
    ink = ink_bbox(r.image, text, bg)
    assert ink is not None and text[2] - ink[2] < 30 and ink[0] - text[0] > 100
    title_ink = ink_bbox(r.image, r.boxes["title"], bg)
    assert r.boxes["title"][2] - title_ink[2] < 30


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="aspect"):
        compose_slide(**SHORT, illustration=None, index=1, total=1, aspect="4:3")
    with pytest.raises(ConfigError, match="theme"):
        compose_slide(**SHORT, illustration=None, index=1, total=1, theme="neon")
    with pytest.raises(ConfigError, match="index"):
        compose_slide(**SHORT, illustration=None, index=3, total=2)


def test_transparent_illustration_is_flattened_on_the_background():
    rgba = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    r = compose_slide(**SHORT, illustration=rgba, index=1, total=1, theme="dark")
    box = r.boxes["illustration"]
    assert ink_bbox(r.image, box, THEMES["dark"].background) is None


def test_without_libraqm_right_to_left_text_still_renders_with_a_note(monkeypatch):
    monkeypatch.setattr(slides, "raqm_available", lambda: False)
    r = compose_slide(title="عنوان", bullets=[ARABIC], illustration=None, footer="F", index=1, total=1,
                      language="ar")
    assert any("libraqm" in n for n in r.notes)
    assert ink_bbox(r.image, r.boxes["bullets"], THEMES["light"].background) is not None
