"""Lessons in other languages, end to end: narration, slides and subtitles in that language."""

from __future__ import annotations

import asyncio
import re

import pytest

from lessonforge.agent import run
from lessonforge.agent.config import Settings
from lessonforge.agent.schemas import SceneDraft, Script
from lessonforge.agent.state import make_request
from lessonforge.tools.fakes import FakeSpeech
from lessonforge.tools.media import slides, video
from lessonforge.tools.speech.espeak import EspeakSpeech

pytestmark = pytest.mark.slow

LESSONS = {
    "fr": ("La photosynthèse", ["Lumière et eau", "Le dioxyde de carbone"],
           "Les plantes fabriquent leur nourriture avec la lumière. Elles utilisent l'eau et l'air, c'est étonnant !"),
    "de": ("Die Photosynthese", ["Licht und Wasser", "Kohlendioxid aus der Luft"],
           "Pflanzen stellen ihre Nahrung mit Licht her. Sie brauchen Wasser, Luft und grüne Blätter."),
    "es": ("La fotosíntesis", ["Luz y agua", "Dióxido de carbono"],
           "Las plantas fabrican su alimento con la luz. ¿Sabías que usan agua y aire?"),
    "ja": ("光合成", ["光と水", "二酸化炭素"],
           "植物は光を使って栄養を作ります。水と空気も使います。"),
    "ar": ("التمثيل الضوئي", ["الضوء والماء", "ثاني أكسيد الكربون"],
           "تصنع النباتات غذاءها باستخدام ضوء الشمس. وهي تحتاج أيضا إلى الماء والهواء."),
}


@pytest.mark.parametrize("language", list(LESSONS))
def test_lesson_in_language(tmp_path, language):
    title, bullets, narration = LESSONS[language]
    script = Script(title=title, scenes=[
        SceneDraft(title=title, bullets=bullets, narration=narration, illustration_prompt="-", visual="text"),
        SceneDraft(title=bullets[0], bullets=bullets[1:], narration=narration, illustration_prompt="-", visual="text"),
    ])
    # eSpeak NG cannot read kanji (refused before any work: test_cli); Japanese is narrated by a voice that can
    # (the fake times words split at spaces, which Japanese does not write: a slow rate gives a sentence's length)
    speech = FakeSpeech(wpm=40) if language == "ja" else EspeakSpeech("")
    out = tmp_path / language
    manifest = asyncio.run(run.make(
        make_request(topic=title, language=language, minutes=0.5), Settings.load(images="none", fit_rounds=0),
        out, script=script, speech=speech,
    ))
    # narration in the language's voice
    assert all(s.speech.voice == speech.default_voice(language) for s in manifest.scenes)
    assert all(s.speech.duration > 1.0 for s in manifest.scenes), [
        (s.speech.voice, s.speech.duration) for s in manifest.scenes
    ]
    # slides: every character of the title and bullets has a glyph in the font chosen for it
    for text in [title, *bullets]:
        choice = slides.choose_font(text, language=language)
        assert not choice.missing, f"{language}: no glyph for {choice.missing!r}"
    # subtitles carry the narration as written, in order
    srt = (out / "lesson.srt").read_text(encoding="utf-8")
    body = "".join(line for line in srt.splitlines() if line and not line[0].isdigit())
    squash = lambda t: re.sub(r"\W+", "", t)
    assert squash(narration) in squash(body)
    info = video.probe(out / "lesson.mp4")
    assert abs(info.video_duration - info.audio_duration) <= 0.2
