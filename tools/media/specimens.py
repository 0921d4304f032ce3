"""Sample scenes in three script families (Latin, CJK, Arabic), one per slide layout.

The layout tests and ``scripts/gallery.py`` render these, so what the tests check is what the
gallery shows. Pictures are a flat stand-in drawn here (a tree, a meadow, the sun).
"""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw

from lessonforge.tools.media import diagrams

SCRIPTS = {
    "latin": dict(
        language="en",
        footer="How plants make food from light",
        title="The three ingredients",
        bullets=["Light from the sun", "Water from the roots", "Carbon dioxide from the air"],
        key="Chlorophyll",
        answer="Oxygen, released when the plant splits water.",
        question="Which gas does a plant give off?",
        steps=["Light is captured", "Water is split", "Glucose is built", "Oxygen is released"],
        cycle=["Evaporation", "Condensation", "Precipitation", "Collection", "Infiltration", "Transpiration"],
    ),
    "cjk": dict(
        language="ja",
        footer="植物が光から養分を作るしくみ",
        title="光合成に必要な三つのもの",
        bullets=["太陽からの光エネルギー", "根から吸い上げる水", "空気中の二酸化炭素"],
        key="葉緑素",
        answer="酸素です。植物が水を分解するときに放出されます。",
        question="植物が出す気体はどれでしょう？",
        steps=["光を受け取る", "水を分解する", "ブドウ糖を作る", "酸素を放出する"],
        cycle=["蒸発", "凝結", "降水", "集水", "浸透", "蒸散"],
    ),
    "arabic": dict(
        language="ar",
        footer="كيف تصنع النباتات غذاءها من الضوء",
        title="المكونات الثلاثة",
        bullets=["ضوء الشمس", "الماء من الجذور", "ضوء + ماء + ثاني أكسيد الكربون"],
        key="الكلوروفيل",
        answer="الأكسجين، ينطلق عندما يشطر النبات الماء.",
        question="ما الغاز الذي يطلقه النبات؟",
        steps=["التقاط الضوء", "شطر الماء", "بناء الجلوكوز", "إطلاق الأكسجين"],
        cycle=["التبخر", "التكاثف", "الهطول", "التجمع", "التسرب", "النتح"],
    ),
}


def cases(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One scene per layout, in the script family's words."""
    pic = picture()
    steps = diagrams.parse_diagram({"kind": "steps", "steps": t["steps"], "caption": ""})
    cycle = diagrams.parse_diagram({"kind": "cycle", "stages": t["cycle"], "caption": ""})
    base = dict(title=t["title"], bullets=t["bullets"], footer=t["footer"], language=t["language"])
    return {
        "hero": dict(base, role="hook", picture=pic),
        "split-picture": dict(base, role="concept", picture=pic),
        "split-pictogram": dict(base, role="concept", icon="sun"),
        "key": dict(base, role="definition", key=t["key"], icon="leaf"),
        "diagram-steps": dict(base, role="process", diagram=steps),
        "diagram-cycle": dict(base, role="process", diagram=cycle, bullets=[]),
        "columns": dict(base, role="comparison", bullets=[*t["bullets"], t["bullets"][0]]),
        "numbered": dict(base, role="recap"),
        "text": dict(base, role="concept"),
        "statement": dict(base, role="hook", bullets=[]),
        "question": dict(base, role="question", title=t["question"], bullets=[], answer=t["answer"]),
        "build": dict(base, role="concept", icon="sun", shown=2, highlight=1),
    }


def picture() -> Image.Image:
    img = Image.new("RGB", (768, 512), (120, 170, 220))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 330, 768, 512), fill=(90, 160, 80))
    d.ellipse((520, 60, 660, 200), fill=(255, 230, 120))
    d.rectangle((250, 200, 290, 360), fill=(110, 80, 50))
    d.ellipse((170, 90, 370, 260), fill=(50, 130, 60))
    return img
