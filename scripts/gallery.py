"""Render every slide layout x aspect x script family (and the title and end cards) into a folder.

    python scripts/gallery.py OUT_DIR [--theme light|dark|chalk|all] [--only LAYOUT]

The pictures are generated, never committed: look at them after a change to a layout.
Pictures are stand-ins (lessonforge.tools.fakes.FakeImages); everything else is what a lesson gets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lessonforge.tools.media import layouts, slides  # noqa: E402
from lessonforge.tools.media.specimens import SCRIPTS, cases  # noqa: E402


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
