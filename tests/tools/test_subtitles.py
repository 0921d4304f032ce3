from __future__ import annotations

import io
import random

import pytest
import srt
import webvtt

from lessonforge.tools.base import WordTiming
from lessonforge.tools.media.subtitles import Cue, break_lines, cues_from_words, display_width, to_srt, to_vtt

VOCAB = [
    "light",
    "plants",
    "water",
    "energy",
    "sugar",
    "leaf",
    "oxygen",
    "carbon",
    "dioxide",
    "chlorophyll",
    "cell",
    "sun",
    "root",
    "the",
    "a",
    "of",
    "and",
    "into",
    "every",
    "small",
    "green",
    "molecule",
    "photosynthesis",
    "process",
    "glucose",
]


def timed(words: list[str], *, t0: float = 0.0, rng: random.Random | None = None) -> list[WordTiming]:
    """Word timings at a speaking pace, with a pause after sentences and commas."""
    rng = rng or random.Random(0)
    out, t = [], t0
    for w in words:
        d = 0.06 * len(w) + 0.12 + rng.uniform(0, 0.05)
        out.append(WordTiming(w, round(t, 3), round(t + d, 3)))
        t += d + (0.4 if w.endswith((".", "?", "!")) else 0.15 if w.endswith(",") else 0.04)
    return out


def generated_words(n: int, seed: int = 1) -> list[WordTiming]:
    rng = random.Random(seed)
    words = []
    sentence_left = rng.randint(4, 30)
    for _ in range(n):
        w = rng.choice(VOCAB)
        sentence_left -= 1
        if sentence_left == 0:
            w += rng.choice([".", "?", "!"])
            sentence_left = rng.randint(4, 30)
        elif rng.random() < 0.08:
            w += ","
        words.append(w)
    words[-1] = words[-1].rstrip(".,?!") + "."
    return timed(words, rng=rng)


def test_broadcast_rules_hold_on_a_long_narration():
    words = generated_words(600)
    offset, audio_end = 12.5, words[-1].end + 0.6
    cues = cues_from_words(words, offset=offset, audio_end=audio_end)

    assert len(cues) > 40
    for cue in cues:
        lines = cue.text.split("\n")
        assert 1 <= len(lines) <= 2, cue
        assert all(0 < len(line) <= 42 for line in lines), cue
        assert 1.0 - 1e-6 <= cue.end - cue.start <= 7.0 + 1e-6, cue
    for a, b in zip(cues, cues[1:]):
        assert a.end <= b.start, (a, b)
    assert cues[0].start >= offset
    assert cues[-1].end <= audio_end + offset + 1e-6
    # No word lost, none duplicated, order kept.
    assert " ".join(c.text.replace("\n", " ") for c in cues).split() == [w.word for w in words]
    # Each cue starts when its first word is spoken.
    i = 0
    for cue in cues:
        assert cue.start == pytest.approx(words[i].start + offset, abs=1e-3)
        i += len(cue.text.split())


def test_cues_end_at_sentence_ends_when_sentences_fit():
    text = ("Plants make food from light. Water comes up from the roots. The leaves take in carbon dioxide. "
            "Oxygen goes out into the air. Sugar feeds the whole plant.")
    cues = cues_from_words(timed(text.split()))
    assert len(cues) == 5
    assert all(c.text.endswith(".") for c in cues)


def test_a_long_sentence_is_split_at_its_comma():
    text = ("When sunlight reaches the green leaves of a plant in the morning, the chlorophyll inside "
            "every single cell starts turning water and air into sugar.")
    cues = cues_from_words(timed(text.split()))
    assert len(cues) == 2
    assert cues[0].text.replace("\n", " ").endswith("morning,")


def test_two_lines_are_balanced_and_prefer_punctuation():
    lines = break_lines(
        ["Chlorophyll", "absorbs", "red", "and", "blue", "light,", "and", "reflects", "green", "light", "back"]
    )
    assert lines == ["Chlorophyll absorbs red and blue light,", "and reflects green light back"]
    assert break_lines(["word"] * 40) is None  # cannot fit two lines


def test_short_cue_is_held_for_the_minimum_but_never_overlaps():
    words = [WordTiming("Yes.", 0.0, 0.3), WordTiming("Exactly", 3.0, 3.5), WordTiming("right.", 3.5, 4.0)]
    cues = cues_from_words(words)
    assert cues[0].end - cues[0].start >= 1.0
    assert cues[0].end <= cues[1].start

    crowded = [WordTiming("Yes.", 0.0, 0.3), WordTiming("No.", 0.5, 0.8)]
    c2 = cues_from_words(crowded, audio_end=0.9)
    for a, b in zip(c2, c2[1:]):
        assert a.end <= b.start
    assert c2[-1].end <= 0.9


def test_nothing_lasts_past_the_audio_even_with_bad_timings():
    words = [WordTiming("Hello", 0.0, 0.5), WordTiming("there.", 0.5, 12.0)]  # last word overruns
    cues = cues_from_words(words, offset=2.0, audio_end=1.2)
    assert cues and cues[-1].end <= 3.2 + 1e-9


def test_cjk_words_are_joined_without_spaces_and_measured_double():
    chars = list("光合作用是植物利用阳光把水和二氧化碳变成糖的过程。叶绿素吸收红光和蓝光，反射绿光。")
    cues = cues_from_words(timed(chars))
    for cue in cues:
        assert " " not in cue.text
        assert all(display_width(line) <= 42 for line in cue.text.split("\n"))
    assert "".join(c.text.replace("\n", "") for c in cues) == "".join(chars)


def test_empty_input_gives_no_cues():
    assert cues_from_words([]) == []
    assert cues_from_words([WordTiming("  ", 0, 1)]) == []
    assert to_srt([]) == ""
    assert to_vtt([]).startswith("WEBVTT")


def _vtt_seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_srt_and_vtt_parse_with_independent_parsers():
    cues = cues_from_words(generated_words(120, seed=3), offset=3601.25)
    cues.append(Cue(cues[-1].end + 1, cues[-1].end + 2.5, "Salt & <pepper> --> done"))

    parsed = list(srt.parse(to_srt(cues)))
    assert len(parsed) == len(cues)
    for p, c in zip(parsed, cues):
        assert p.start.total_seconds() == pytest.approx(c.start, abs=1e-3)
        assert p.end.total_seconds() == pytest.approx(c.end, abs=1e-3)
        assert p.content == c.text

    vtt = webvtt.read_buffer(io.StringIO(to_vtt(cues)))
    captions = list(vtt)
    assert len(captions) == len(cues)
    for p, c in zip(captions, cues):
        assert _vtt_seconds(p.start) == pytest.approx(c.start, abs=1e-3)
        assert _vtt_seconds(p.end) == pytest.approx(c.end, abs=1e-3)
    for p, c in zip(captions[:-1], cues[:-1]):
        assert p.text == c.text
    assert captions[-1].text == "Salt &amp; &lt;pepper&gt; --&gt; done"


def test_blank_lines_inside_a_cue_do_not_break_the_files():
    cues = [Cue(0.0, 1.5, "first\n\nsecond"), Cue(2.0, 3.0, "third")]
    parsed = list(srt.parse(to_srt(cues)))
    assert [p.content for p in parsed] == ["first\nsecond", "third"]
    assert [c.text for c in webvtt.read_buffer(io.StringIO(to_vtt(cues)))] == ["first\nsecond", "third"]


def test_punctuation_is_put_back_on_engine_words():
    from lessonforge.tools.media.subtitles import with_punctuation

    text = "Hello, world! It's well-known — really."
    engine = [WordTiming("hello", 0.0, 0.4), WordTiming("world", 0.5, 0.9), WordTiming("it's", 1.0, 1.2),
              WordTiming("well", 1.2, 1.4), WordTiming("known", 1.4, 1.7), WordTiming("really", 1.8, 2.2)]
    got = with_punctuation(text, engine)
    assert [w.word for w in got] == ["Hello,", "world!", "It's", "well-known —", "really."]
    assert got[3].start == 1.2 and got[3].end == 1.7
    # words that do not spell the text are left alone rather than guessed
    assert with_punctuation("something else entirely", engine) == engine


def test_text_without_spaces_keeps_the_engines_words():
    from lessonforge.tools.media.subtitles import with_punctuation

    engine = [WordTiming("植物は", 0.0, 0.5), WordTiming("光を", 0.5, 0.9), WordTiming("使います", 0.9, 1.5)]
    got = with_punctuation("植物は、光を使います。", engine)
    assert [w.word for w in got] == ["植物は、", "光を", "使います。"]
    assert [(w.start, w.end) for w in got] == [(0.0, 0.5), (0.5, 0.9), (0.9, 1.5)]
