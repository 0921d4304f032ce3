"""The pronunciation lexicon: loading, replacing for speech, and subtitles that keep the written words."""

from __future__ import annotations

import re

import pytest

from lessonforge.tools.base import ConfigError, WordTiming
from lessonforge.tools.media.subtitles import cues_from_words, with_punctuation
from lessonforge.tools.speech.lexicon import Lexicon, restore_written


def engine_words(spoken: str, step: float = 0.5) -> list[WordTiming]:
    """What an engine reports for ``spoken``: bare words (no punctuation), one every ``step`` seconds."""
    out = []
    for tok in spoken.split():
        word = re.sub(r"^\W+|\W+$", "", tok)
        if word:
            out.append(WordTiming(word, len(out) * step, len(out) * step + 0.4))
    return out


# --------------------------------------------------------------------------- loading


def test_loads_yaml_json_and_plain_lines(tmp_path):
    (tmp_path / "l.yaml").write_text(
        "# terms\nCO2: carbon dioxide\nNaCl: sodium chloride\n'1984': nineteen eighty-four\n", encoding="utf-8"
    )
    (tmp_path / "l.json").write_text('{"CO2": "carbon dioxide",\n "NaCl": "sodium chloride"}', encoding="utf-8")
    (tmp_path / "l.txt").write_text("# term = spoken\n\nCO2 = carbon dioxide\n  NaCl   =  sodium   chloride \n",
                                    encoding="utf-8")
    yaml_lex = Lexicon.load(tmp_path / "l.yaml")
    assert yaml_lex.entries == {"CO2": "carbon dioxide", "NaCl": "sodium chloride", "1984": "nineteen eighty-four"}
    assert Lexicon.load(tmp_path / "l.json").entries == {"CO2": "carbon dioxide", "NaCl": "sodium chloride"}
    assert Lexicon.load(tmp_path / "l.txt").entries == {"CO2": "carbon dioxide", "NaCl": "sodium chloride"}
    (tmp_path / "empty.yaml").write_text("# nothing yet\n", encoding="utf-8")
    assert len(Lexicon.load(tmp_path / "empty.yaml")) == 0


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("bad.txt", "CO2 = carbon dioxide\n\nNaCl sodium chloride\n", r"line 3: .*no '='"),
        ("bad2.txt", "CO2 = carbon dioxide\n = nothing\n", r"line 2: empty term"),
        ("bad3.txt", "CO2 =\n", r"line 1: term 'CO2' has no spoken form"),
        ("dup.txt", "CO2 = carbon dioxide\nco2 = see oh two\n", r"line 2: term 'co2' was already given on line 1"),
        ("bad.yaml", "CO2: carbon dioxide\nNaCl: [sodium\n", r"line \d+: not valid YAML"),
        ("list.yaml", "- CO2\n- NaCl\n", r"line 1: the lexicon must be a mapping"),
        ("nested.yaml", "CO2: carbon dioxide\nNaCl:\n  a: b\n", r"line 2: expected 'term: spoken form'"),
        ("null.yaml", "CO2: carbon dioxide\nNaCl:\n", r"line 2: entry 'NaCl': None is not text"),
        ("bad.json", '{"CO2": "carbon dioxide",\n "NaCl" "sodium"}', r"line 2: not valid JSON"),
        ("list.json", '["CO2", "NaCl"]', r"must be a JSON object"),
        ("num.json", '{"CO2": "carbon dioxide",\n\n "NaCl": ["sodium"]}',
         r"line 3: the spoken form of 'NaCl' must be text"),
    ],
)
def test_bad_files_are_config_errors_naming_the_line(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=match) as info:
        Lexicon.load(path)
    assert str(path) in str(info.value)


def test_unreadable_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*--lexicon"):
        Lexicon.load(tmp_path / "missing.yaml")
    (tmp_path / "latin1.txt").write_bytes("café = ka fay\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        Lexicon.load(tmp_path / "latin1.txt")


# --------------------------------------------------------------------------- applying


def test_replaces_whole_words_and_phrases_case_insensitively_longest_first():
    lex = Lexicon({"NY": "New York", "New York City": "the big apple", "SQL": "sequel", "C++": "C plus plus",
                   "e.g.": "for example", "Straße": "Strasse"})
    assert lex.apply("I love new  york city and NY.") == "I love the big apple and New York."
    assert lex.apply("sql, SQLite, MySQL and SQL-based") == "sequel, SQLite, MySQL and sequel-based"
    assert lex.apply("Learn C++ now, e.g. today.") == "Learn C plus plus now, for example today."
    assert lex.apply("Die STRASSE und die Straße") == "Die STRASSE und die Strasse"
    assert lex.apply("nothing here") == "nothing here"
    assert Lexicon().apply("CO2") == "CO2"


def test_unicode_words_and_cjk_terms():
    lex = Lexicon({"été": "é té", "光合成": "こうごうせい", "ДНК": "дэ эн ка"})
    assert lex.apply("L'été, l'étéisme.") == "L'é té, l'étéisme."  # not inside a longer word
    assert lex.apply("光合成は大切です") == "こうごうせいは大切です"  # CJK has no spaces: matched inside text
    assert lex.apply("Молекула днк.") == "Молекула дэ эн ка."


def test_conflicting_entries_are_rejected():
    with pytest.raises(ConfigError, match="twice"):
        Lexicon({"CO2": "carbon dioxide", "co2": "see oh two"})
    with pytest.raises(ConfigError, match="empty"):
        Lexicon({"CO2": " "})


# --------------------------------------------------------------------------- subtitles keep the written form


NARRATION = "In NY, CO2 levels rise — e.g. near SQL-based labs. Plants use CO2."
LEX = Lexicon({"NY": "New York", "CO2": "carbon dioxide", "e.g.": "for example", "SQL": "sequel"})


def test_with_punctuation_cannot_align_spoken_timings_to_the_written_text():
    spoken = LEX.apply(NARRATION)
    assert (
        spoken
        == "In New York, carbon dioxide levels rise — for example near sequel-based labs. Plants use carbon dioxide."
    )
    words = engine_words(spoken)
    got = with_punctuation(NARRATION, words)
    assert got == words  # unaligned: the engine's spoken words come back unchanged...
    assert "carbon" in [w.word for w in got] and "CO2" not in [w.word for w in got]  # ...and would be subtitled


def test_restore_written_maps_spoken_timings_back_onto_written_words():
    words = engine_words(LEX.apply(NARRATION))
    restored = restore_written(NARRATION, words, LEX)
    assert [w.word for w in restored] == ["In", "NY,", "CO2", "levels", "rise —", "e.g.", "near", "SQL-based", "labs.",
                                          "Plants", "use", "CO2."]
    by = {w.word: w for w in restored}
    assert (by["NY,"].start, by["NY,"].end) == (0.5, 1.4)  # "New York": from "New" to "York"
    assert (by["CO2"].start, by["CO2"].end) == (1.5, 2.4)  # "carbon dioxide"
    assert (by["e.g."].start, by["e.g."].end) == (3.5, 4.4)  # "for example"
    assert (by["levels"].start, by["SQL-based"].start) == (2.5, 5.0)  # unreplaced words keep their own times
    assert (restored[-1].start, restored[-1].end) == (7.0, 7.9)
    starts = [w.start for w in restored]
    assert starts == sorted(starts)
    cues = cues_from_words(restored, audio_end=9.0)
    text = " ".join(c.text.replace("\n", " ") for c in cues)
    assert "CO2" in text and "carbon" not in text and "New York" not in text


def test_a_replaced_phrase_shares_its_span_among_its_written_words():
    lex = Lexicon({"New York": "Noo Yorck", "Dr. No": "doctor number"})
    text = "New York is big. Dr. No agrees."
    restored = restore_written(text, engine_words(lex.apply(text)), lex)
    assert [(w.word, w.start, w.end) for w in restored[:2]] == [("New", 0.0, 0.4), ("York", 0.5, 0.9)]  # word for word
    lex2 = Lexicon({"New York": "Manhattan"})
    restored = restore_written(text, engine_words(lex2.apply(text)), lex2)
    assert [(w.word, w.start, w.end) for w in restored[:3]] == [("New", 0.0, 0.171), ("York", 0.171, 0.4),
                                                                ("is", 0.5, 0.9)]  # shared by letters


def test_restore_written_never_invents_timings_for_words_that_do_not_match():
    words = engine_words("something else entirely")
    assert restore_written(NARRATION, words, LEX) == words
    assert restore_written("Plain text, no terms.", engine_words("Plain text, no terms."), LEX) == [
        WordTiming("Plain", 0.0, 0.4), WordTiming("text,", 0.5, 0.9), WordTiming("no", 1.0, 1.4),
        WordTiming("terms.", 1.5, 1.9)]
