"""One-shot prompts read offline: topic, minutes, audience, language and aspect from plain words."""

from __future__ import annotations

import pytest

from lessonforge.agent.understand import MissingTopic, correct, read_offline, resolve, understand

# prompt, topic, minutes, audience, language, aspect (after defaults: 2 min, a general audience, en, 16:9)
TABLE = [
    # English
    ("make a 2-minute video on photosynthesis", "photosynthesis", 2, None, "en", "16:9"),
    ("a 5 minute lesson on fractions for 9-year-olds, in French", "fractions", 5, "9-year-olds", "fr", "16:9"),
    ("a vertical 60-second explainer on black holes", "black holes", 1, None, "en", "9:16"),
    ("the 1918 flu in 3 minutes", "the 1918 flu", 3, None, "en", "16:9"),
    ("a 2-minute-read on the French Revolution", "the French Revolution", 2, None, "en", "16:9"),
    ("photosynthesis", "photosynthesis", 2, None, "en", "16:9"),
    ("explain plate tectonics to 10 year olds in 90 seconds", "plate tectonics", 1.5, "10 year olds", "en", "16:9"),
    ("Create a three-minute lesson about the water cycle for first-year undergraduates",
     "the water cycle", 3, "first-year undergraduates", "en", "16:9"),
    ("a square 1 min video about compound interest for beginners", "compound interest", 1, "beginners", "en", "1:1"),
    ("Can you make a TikTok about the Roman Empire?", "the Roman Empire", 1, None, "en", "9:16"),
    ("how do vaccines work? 4 minutes, for high school students", "how do vaccines work?", 4,
     "high school students", "en", "16:9"),
    ("a lesson on square roots for grade 7", "square roots", 2, "grade 7", "en", "16:9"),
    ("vertical farming in 2 minutes", "vertical farming", 2, None, "en", "16:9"),
    ("the first 3 minutes of the universe", "the first 3 minutes of the universe", 2, None, "en", "16:9"),
    ("a portrait of Napoleon in 5 minutes", "a portrait of Napoleon", 5, None, "en", "16:9"),
    ("World War 2 in 5 minutes for kids", "World War 2", 5, "kids", "en", "16:9"),
    ("Apollo 11 in 90 seconds, vertical", "Apollo 11", 1.5, None, "en", "9:16"),
    ("a half-minute explainer on rainbows", "rainbows", 0.5, None, "en", "16:9"),
    ("a minute and a half on the speed of light", "the speed of light", 1.5, None, "en", "16:9"),
    ("make me a 10-minute lecture on entropy for physics students, with lots of examples",
     "entropy", 10, "physics students", "en", "16:9"),
    ("teach me about the French Revolution in Spanish", "the French Revolution", 2, None, "es", "16:9"),
    ("art in French cinema", "art in French cinema", 2, None, "en", "16:9"),
    ("a quick video on tides", "tides", 1, None, "en", "16:9"),
    ("a YouTube short about honeybees", "honeybees", 1, None, "en", "9:16"),
    ("2-3 minute video on the causes of World War I for 5th graders", "the causes of World War I", 2.5,
     "5th graders", "en", "16:9"),
    ("an introduction to calculus for adults with no maths background, 5 min",
     "calculus", 5, "adults with no maths background", "en", "16:9"),
    ("a fun 3-minute video about volcanoes for kids aged 8-10", "volcanoes", 3, "kids aged 8-10", "en", "16:9"),
    ("a beginner's guide to Python lists, landscape", "Python lists", 2, "beginners", "en", "16:9"),
    ("a 4 minute lesson on the Pythagorean theorem in Brazilian Portuguese", "the Pythagorean theorem", 4,
     None, "pt-BR", "16:9"),
    ("make a 2 minute video on supply and demand for year 9 students with a British voice",
     "supply and demand", 2, "year 9 students", "en-GB", "16:9"),
    ("I want a short, funny video about how bees make honey for my class of 7-year-olds, in a vertical format",
     "how bees make honey", 1, "class of 7-year-olds", "en", "9:16"),
    ("the Krebs cycle, 6 minutes, for med students, in a serious tone", "the Krebs cycle", 6, "med students",
     "en", "16:9"),
    # French
    ("fais une vidéo de 3 minutes sur la photosynthèse pour des enfants de 9 ans", "la photosynthèse", 3,
     "enfants de 9 ans", "fr", "16:9"),
    ("une leçon de 5 minutes sur les fractions", "les fractions", 5, None, "fr", "16:9"),
    ("explique-moi la tectonique des plaques en 2 minutes", "la tectonique des plaques", 2, None, "fr", "16:9"),
    ("crée une vidéo verticale d'une minute sur les trous noirs", "les trous noirs", 1, None, "fr", "9:16"),
    ("une vidéo sur la Révolution française pour débutants, en anglais", "la Révolution française", 2,
     "débutants", "en", "16:9"),
    ("la Révolution française en trois minutes", "la Révolution française", 3, None, "fr", "16:9"),
    # Spanish
    ("haz un video de dos minutos sobre los volcanes para niños", "los volcanes", 2, "niños", "es", "16:9"),
    ("explica la fotosíntesis en 90 segundos", "la fotosíntesis", 1.5, None, "es", "16:9"),
    ("un vídeo vertical de un minuto sobre los agujeros negros para principiantes", "los agujeros negros", 1,
     "principiantes", "es", "9:16"),
    ("una lección de 4 minutos sobre la Segunda Guerra Mundial para estudiantes de secundaria",
     "la Segunda Guerra Mundial", 4, "estudiantes de secundaria", "es", "16:9"),
    # German
    ("Erstelle ein 3-minütiges Video über die Photosynthese für Kinder", "die Photosynthese", 3, "Kinder",
     "de", "16:9"),
    ("Erkläre mir die Plattentektonik in zwei Minuten", "die Plattentektonik", 2, None, "de", "16:9"),
    ("ein Video im Hochformat über schwarze Löcher, 60 Sekunden", "schwarze Löcher", 1, None, "de", "9:16"),
    ("eine Lektion über Brüche für 9-Jährige", "Brüche", 2, "9-Jährige", "de", "16:9"),
    ("make a video on the Berlin Wall auf Deutsch", "the Berlin Wall", 2, None, "de", "16:9"),
    ("Mach ein kurzes Video über Vulkane für Anfänger", "Vulkane", 1, "Anfänger", "de", "16:9"),
    ("Photosynthese für die 5. Klasse, 3 Minuten", "Photosynthese", 3, "5. Klasse", "de", "16:9"),
    # more English, and phrasings that must not be taken apart
    ("Newton's laws of motion explained for 12-year-olds", "Newton's laws of motion", 2, "12-year-olds", "en", "16:9"),
    ("make a 2 minute video on photosynthesis for my 5th grade class", "photosynthesis", 2, "5th grade class",
     "en", "16:9"),
    ("avoid maths, explain black holes to adults", "black holes", 2, "adults", "en", "16:9"),
    ("make a short on the Fibonacci sequence", "the Fibonacci sequence", 1, None, "en", "9:16"),
    ("the class struggle in 2 minutes", "the class struggle", 2, None, "en", "16:9"),
    ("Python for data science", "Python for data science", 2, None, "en", "16:9"),
    ("the 1960s in 3 minutes", "the 1960s", 3, None, "en", "16:9"),
    ("tides, make it short", "tides", 1, None, "en", "16:9"),
    ("what causes the seasons? 2 mins, 9:16", "what causes the seasons?", 2, None, "en", "9:16"),
    ("¿Qué es la inflación? Un video de 2 minutos", "¿Qué es la inflación?", 2, None, "es", "16:9"),
]


@pytest.mark.parametrize(("prompt", "topic", "minutes", "audience", "language", "aspect"), TABLE,
                         ids=[row[0][:40] for row in TABLE])
def test_prompt_table(prompt, topic, minutes, audience, language, aspect):
    reading, _ = read_offline(prompt)
    request = resolve(prompt, reading).request
    assert (request.topic, request.minutes, request.language, request.aspect) == (topic, minutes, language, aspect)
    assert request.audience == (audience or "a general audience")


def test_the_table_is_large_and_spans_four_languages():
    assert len(TABLE) >= 40
    assert {row[4].split("-")[0] for row in TABLE} >= {"en", "fr", "es", "de"}


def test_voice_tone_and_style_notes_are_kept_for_the_writer():
    reading, _ = read_offline("a playful 2-minute video on magnets for kids, with a calm female voice, "
                              "with lots of everyday examples, no jargon")
    assert reading.topic == "magnets"
    assert "female" in reading.voice and "calm" in reading.voice
    assert reading.tone == "playful"
    assert "lots of everyday examples" in reading.style and "no jargon" in reading.style
    request = resolve("x", reading).request
    assert "playful" in request.style and "no jargon" in request.style


def test_a_voice_named_outright_becomes_the_voice():
    reading, _ = read_offline("tides in 2 minutes with the voice en-GB-SoniaNeural")
    assert resolve("x", reading).request.voice == "en-GB-SoniaNeural"


def test_flags_win_and_each_conflict_is_named():
    prompt = "a 3-minute video on tides for kids in French"
    reading, _ = read_offline(prompt)
    u = resolve(prompt, reading, {"minutes": 2.0, "language": "de", "aspect": None})
    assert (u.request.minutes, u.request.language, u.request.audience) == (2.0, "de", "kids")
    assert any("--minutes 2" in c and "3 min" in c for c in u.conflicts)
    assert any("--language de" in c and "'fr'" in c for c in u.conflicts)
    assert len(u.conflicts) == 2
    assert u.summary() == "tides · 2 min · kids · de · 16:9"


def test_a_flag_that_agrees_is_no_conflict():
    reading, _ = read_offline("tides in 3 minutes")
    assert resolve("tides in 3 minutes", reading, {"minutes": 3.0}).conflicts == []


@pytest.mark.parametrize("prompt", ["make a video", "a 2 minute lesson for kids please", "fais une vidéo",
                                    "make a vertical video in Spanish", "   "])
def test_a_prompt_without_a_topic_names_what_is_missing(prompt):
    reading, unsure = read_offline(prompt)
    assert reading.topic == "" and "no topic found" in unsure
    with pytest.raises(MissingTopic) as err:
        resolve(prompt, reading)
    assert err.value.missing == ["topic"]
    message = str(err.value)
    assert "topic" in message and ("photosynthesis" in message)


def test_the_missing_topic_error_says_what_was_understood():
    with pytest.raises(MissingTopic, match="2 min · kids"):
        resolve("a 2 minute lesson for kids", read_offline("a 2 minute lesson for kids")[0])


def test_a_topic_flag_completes_a_prompt_without_one():
    reading, _ = read_offline("a 3 minute video for kids")
    u = resolve("a 3 minute video for kids", reading, {"topic": "tides"})
    assert (u.request.topic, u.request.minutes, u.request.audience) == ("tides", 3, "kids")


@pytest.mark.parametrize(("prompt", "said"), [("volcanoes in 45 minutes", "45 minutes"),
                                              ("volcanoes in 10 seconds", "10 seconds")])
def test_a_length_out_of_range_is_refused_naming_the_prompt(prompt, said):
    from lessonforge.tools.base import ConfigError

    with pytest.raises(ConfigError, match=said) as err:
        resolve(prompt, read_offline(prompt)[0])
    assert "--minutes" in str(err.value)
    assert resolve(prompt, read_offline(prompt)[0], {"minutes": 2.0}).request.minutes == 2.0  # a flag fixes it


def test_plain_topics_are_sure_and_odd_phrasings_are_not():
    assert read_offline("make a 2-minute video on photosynthesis")[1] == []
    assert read_offline("a short video about how bees make honey")[1] == []
    _, unsure = read_offline("so my daughter keeps asking me why the sky is blue and I never know what to say to her")
    assert unsure and "long" in " ".join(unsure)


def test_corrections_by_field_or_by_phrase():
    reading, _ = read_offline("a 3 minute video on tides for kids")
    u = resolve("a 3 minute video on tides for kids", reading)
    fixed = correct(u, "topic: ocean tides; minutes: 4")
    assert (fixed.request.topic, fixed.request.minutes, fixed.request.audience) == ("ocean tides", 4, "kids")
    fixed = correct(u, "in Spanish, vertical")
    assert (fixed.request.topic, fixed.request.language, fixed.request.aspect) == ("tides", "es", "9:16")
    from lessonforge.tools.base import ConfigError

    with pytest.raises(ConfigError, match="not a number"):
        correct(u, "minutes: three-ish")


async def test_offline_mode_never_calls_the_llm():
    class Refuses:
        async def structured(self, messages, schema):
            raise AssertionError("the LLM was asked")

    u = await understand("so my daughter keeps asking me why the sky is blue and I never know what to say",
                         llm=Refuses(), mode="offline")
    assert u.via == "offline" and u.unsure


def test_eval_topic_sets_may_give_prompts(tmp_path):
    from lessonforge.agent import topics

    path = tmp_path / "t.yaml"
    path.write_text(
        "topics:\n"
        "  - prompt: a 1-minute vertical video on volcanoes for 9-year-olds, in French\n"
        "    key_concepts: [magma, lave]\n"
        "  - prompt: the 1918 flu in 3 minutes\n"
        "    minutes: 2\n"
        "    audience: historians\n"
        "    key_concepts: [pandemic]\n", "utf-8")
    first, second = topics.load(path).topics
    assert (first.topic, first.minutes, first.audience, first.language) == ("volcanoes", 1, "9-year-olds", "fr")
    assert first.request().aspect == "9:16"
    assert first.understanding().summary() == "volcanoes · 1 min · 9-year-olds · fr · 9:16"
    assert (second.topic, second.minutes, second.audience) == ("the 1918 flu", 2, "historians")  # fields win
    assert second.understanding().conflicts == ["--minutes 2 wins over the prompt's 3 min"]


def test_an_eval_prompt_without_a_topic_names_its_entry(tmp_path):
    from lessonforge.agent import topics
    from lessonforge.tools.base import ConfigError

    path = tmp_path / "t.yaml"
    path.write_text("topics:\n  - prompt: make a 2 minute video for kids\n    key_concepts: [x]\n", "utf-8")
    with pytest.raises(ConfigError, match=r"entry 1.*does not say what the lesson should teach"):
        topics.load(path)


def test_a_gender_hint_picks_a_voice_of_that_gender_in_the_right_region():
    from lessonforge.agent.understand import hinted_gender, pick_voice
    from lessonforge.tools.base import Voice

    voices = [Voice("en-US-GuyNeural", "en-US", "male"), Voice("en-US-AriaNeural", "en-US", "female"),
              Voice("en-GB-SoniaNeural", "en-GB", "female"), Voice("fr-FR-DeniseNeural", "fr-FR", "female")]
    assert hinted_gender("calm female voice") == "female" and hinted_gender("voix féminine") == "female"
    assert hinted_gender("deep voice") == ""
    assert pick_voice(voices, "en-GB", "female") == "en-GB-SoniaNeural"
    assert pick_voice(voices, "en", "female") == "en-US-AriaNeural"
    assert pick_voice(voices, "en", "male") == "en-US-GuyNeural"
    assert pick_voice(voices, "fr", "male") == ""


@pytest.mark.parametrize(("prompt", "topic", "gender", "language"), [
    ("une vidéo sur les arcs-en-ciel, avec une voix féminine", "les arcs-en-ciel", "female", "fr"),
    ("un video sobre volcanes con una voz masculina", "volcanes", "male", "es"),
    ("ein Video über Vulkane mit einer weiblichen Stimme", "Vulkane", "female", "de"),
    ("tides narrated by a man", "tides", "male", None),
    ("tides with a British accent", "tides", "", "en-GB"),
])
def test_voice_hints_in_four_languages(prompt, topic, gender, language):
    from lessonforge.agent.understand import hinted_gender

    reading, unsure = read_offline(prompt)
    assert (reading.topic, hinted_gender(reading.voice), reading.language) == (topic, gender, language)
    assert unsure == []


def test_a_prompt_that_is_a_text_is_refused_by_its_length():
    from lessonforge.tools.base import ConfigError

    with pytest.raises(ConfigError, match="5000 characters long; keep it under 500"):
        read_offline("a" * 5000)
