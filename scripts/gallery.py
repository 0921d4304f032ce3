"""Render every slide layout x aspect x script family (and the title and end cards) into a folder.

    python scripts/gallery.py OUT_DIR [--theme light|dark|chalk|all] [--only LAYOUT]

The pictures are generated, never committed: look at them after a change to a layout.
Pictures are stand-ins (tools.fakes.FakeImages); everything else is what a lesson gets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import diagrams, layouts, slides  # noqa: E402

SCRIPTS = {
    "latin": dict(
        language="en", footer="How plants make food from light", title="The three ingredients",
        bullets=["Light from the sun", "Water from the roots", "Carbon dioxide from the air"],
        key="Chlorophyll", answer="Oxygen, released when the plant splits water.",
        question="Which gas does a plant give off?", steps=["Light is captured", "Water is split",
                                                          "Glucose is built", "Oxygen is released"],
        cycle=["Evaporation", "Condensation", "Precipitation", "Collection", "Infiltration", "Transpiration"]),
    "cjk": dict(
        language="ja", footer="植物が光から養分を作るしくみ", title="光合成に必要な三つのもの",
        bullets=["太陽からの光エネルギー", "根から吸い上げる水", "空気中の二酸化炭素"],
        key="葉緑素", answer="酸素です。植物が水を分解するときに放出されます。",
        question="植物が出す気体はどれでしょう？", steps=["光を受け取る", "水を分解する", "ブドウ糖を作る", "酸素を放出する"],
        cycle=["蒸発", "凝結", "降水", "集水", "浸透", "蒸散"]),
    "arabic": dict(
        language="ar", footer="كيف تصنع النباتات غذاءها من الضوء", title="المكونات الثلاثة",
        bullets=["ضوء الشمس", "الماء من الجذور", "ضوء + ماء + ثاني أكسيد الكربون"],
        key="الكلوروفيل", answer="الأكسجين، ينطلق عندما يشطر النبات الماء.",
        question="ما الغاز الذي يطلقه النبات؟", steps=["التقاط الضوء", "شطر الماء", "بناء الجلوكوز", "إطلاق الأكسجين"],
        cycle=["التبخر", "التكاثف", "الهطول", "التجمع", "التسرب", "النتح"]),
}


def cases(t: dict) -> dict[str, dict]:
    """One scene per layout, in the script family's words."""
    from tools.fakes import FakeImages  # noqa: F401 - the stand-in picture below is drawn the same way

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


def picture():
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (768, 512), (120, 170, 220))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 330, 768, 512), fill=(90, 160, 80))
    d.ellipse((520, 60, 660, 200), fill=(255, 230, 120))
    d.rectangle((250, 200, 290, 360), fill=(110, 80, 50))
    d.ellipse((170, 90, 370, 260), fill=(50, 130, 60))
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--theme", default="light", choices=[*slides.THEMES, "all"])
    ap.add_argument("--only", default="")
    ap.add_argument("--aspect", default="all", choices=[*slides.ASPECTS, "all"])
    ap.add_argument("--script", default="all", choices=[*SCRIPTS, "all"])
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    themes = list(slides.THEMES) if args.theme == "all" else [args.theme]
    aspects = list(slides.ASPECTS) if args.aspect == "all" else [args.aspect]
    families = list(SCRIPTS) if args.script == "all" else [args.script]
    for theme in themes:
        for family in families:
            t = SCRIPTS[family]
            for aspect in aspects:
                tag = f"{theme}-{family}-{aspect.replace(':', 'x')}"
                for name, kw in cases(t).items():
                    if args.only and args.only not in name:
                        continue
                    r = layouts.compose_scene(index=3, total=9, aspect=aspect, theme=theme, **kw)
                    r.image.save(args.out / f"{tag}-{name}.png")
                    empty = layouts.largest_empty_fraction(r.image, slides.THEMES[theme].background)
                    print(f"{tag}-{name}: layout={r.layout} empty={empty:.2f} min={r.min_font_px}px "
                          f"overflow={r.overflow} {'; '.join(r.notes)}")
                if not args.only or "card" in args.only:
                    layouts.title_card(title=t["footer"], lines=t["bullets"], icon="leaf", aspect=aspect, theme=theme,
                                       language=t["language"]).image.save(args.out / f"{tag}-title_card.png")
                    layouts.end_card(title=t["footer"], lines=t["bullets"][:2], aspect=aspect, theme=theme,
                                     language=t["language"]).image.save(args.out / f"{tag}-end_card.png")


if __name__ == "__main__":
    main()
