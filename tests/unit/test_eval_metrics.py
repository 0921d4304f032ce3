"""Eval metrics on lessons and texts built by hand, with answers worked out beforehand."""

from __future__ import annotations

import asyncio

import pytest

from lessonforge.agent import topics
from lessonforge.agent.fakes import FakeLLM
from lessonforge.agent.state import AssetRef, Attempt, SceneRecord
from lessonforge.evals import judge as J
from lessonforge.evals import metrics as m
from lessonforge.evals import prompts as eval_prompts
from lessonforge.tools.base import ConfigError

# --------------------------------------------------------------------------- delivery


def test_duration_error_is_signed_and_relative():
    assert m.duration_error(66.0, 60.0) == pytest.approx(0.1)
    assert m.duration_error(45.0, 60.0) == pytest.approx(-0.25)
    with pytest.raises(ValueError):
        m.duration_error(10.0, 0.0)


def test_audio_video_gap():
    assert m.av_gap(10.0, 10.04) == pytest.approx(0.04)
    assert m.av_gap(12.5, 12.0) == pytest.approx(0.5)
    assert m.av_gap(None, 3.0) is None


GOOD_SRT = "1\n00:00:00,000 --> 00:00:02,000\nHello there\n\n2\n00:00:02,000 --> 00:00:04,500\nand welcome\n"


def test_valid_subtitles_pass():
    check = m.check_subtitles(GOOD_SRT, 5.0)
    assert check.valid and check.cues == 2 and check.problems == []


def test_subtitle_problems_are_each_named():
    srt_text = (
        "1\n00:00:00,000 --> 00:00:03,000\nHello\n\n"
        "3\n00:00:02,000 --> 00:00:04,500\nWorld\n\n"  # numbered 3, overlaps cue 1 by 1 s
        "4\n00:00:01,000 --> 00:00:06,000\nAgain\n"  # starts before cue 2, ends after the 5 s video
    )
    check = m.check_subtitles(srt_text, 5.0)
    assert not check.valid and check.cues == 3
    text = "\n".join(check.problems)
    assert "cue 2 is numbered 3" in text
    assert "cue 2 overlaps cue 1 by 1.000 s" in text
    assert "cue 3 starts before cue 2" in text
    assert "cue 3 ends at 6.000 s, after the video (5.000 s)" in text


def test_backwards_and_empty_cues_and_garbage_are_invalid():
    check = m.check_subtitles("1\n00:00:02,000 --> 00:00:01,000\n \n", 5.0)
    assert check.problems == ["cue 1 ends (1.000 s) before it starts (2.000 s)", "cue 1 is empty"]
    assert m.check_subtitles("", 5.0).problems == ["no cues"]
    garbage = m.check_subtitles("this is not a subtitle file\n", 5.0)
    assert not garbage.valid and garbage.problems[0].startswith("not valid SRT")


def test_words_per_minute():
    assert m.words_per_minute(150, 60.0) == pytest.approx(150.0)
    assert m.words_per_minute(75, 20.0) == pytest.approx(225.0)
    assert m.words_per_minute(10, 0.0) is None


@pytest.mark.parametrize(
    ("ease", "grade"),
    [(100, 5), (95, 5), (85, 6), (80, 6.5), (65, 8.5), (60, 9.75), (40, 14), (0, 17), (-20, 17)],
)
def test_flesch_ease_maps_to_grades(ease, grade):
    assert m.ease_to_grade(ease) == pytest.approx(grade)


def test_readability_orders_easy_and_hard_text_and_names_its_formula():
    easy = "The cat sat on the mat. The dog ran to the park. It was fun."
    hard = (
        "Photosynthetic organisms convert electromagnetic radiation into chemical potential energy, "
        "subsequently synthesising carbohydrates through enzymatically regulated biochemical pathways."
    )
    g_easy, formula = m.readability(easy, "en")
    g_hard, _ = m.readability(hard, "en-GB")
    assert formula == "coleman-liau"
    assert g_easy < 3 and g_hard > 14
    de, de_formula = m.readability("Die Katze sitzt auf der Matte. Der Hund läuft nach Hause.", "de")
    assert de is not None and de_formula == "wiener-sachtextformel"
    fr, fr_formula = m.readability("Le chat dort. Il fait beau.", "fr")
    assert fr is not None and fr_formula == "flesch-fr"
    assert m.readability("猫がいます。", "ja") == (None, "no readability formula for 'ja'")
    assert m.readability("   ", "en") == (None, "no text")


@pytest.mark.parametrize(
    ("audience", "band"),
    [
        ("primary school", (1, 6)),
        ("école primaire", (1, 6)),
        ("children aged 8 to 10", (1, 5)),
        ("collège (12-14 ans)", (5, 9)),
        ("Gymnasium, Klasse 8", (6, 9)),
        ("grade 7", (5, 8)),
        ("中学生 (middle school)", (5, 9)),
        ("high school", (8, 12)),
        ("first-year university students", (11, 16)),
        ("university undergraduates", (11, 16)),  # not "graduate"
        ("universidad", (11, 16)),
        ("PhD students", (13, 18)),
        ("a general audience", (6, 11)),
        ("my grandmother's knitting club", None),
    ],
)
def test_audience_grade_bands(audience, band):
    assert m.grade_band(audience) == band


def test_grade_gap_is_zero_inside_the_band():
    assert m.grade_gap(8.0, (1.0, 6.0)) == pytest.approx(2.0)
    assert m.grade_gap(0.5, (1.0, 6.0)) == pytest.approx(-0.5)
    assert m.grade_gap(3.0, (1.0, 6.0)) == 0.0
    assert m.grade_gap(None, (1.0, 6.0)) is None and m.grade_gap(3.0, None) is None


# --------------------------------------------------------------------------- visuals


def _ref(name: str) -> AssetRef:
    return AssetRef(path=f"scenes/{name}.png", sha256=f"sha-{name}")


def _attempt(n: int, name: str, score: float, accepted: bool) -> Attempt:
    return Attempt(n=n, prompt="p", seed=n, image=_ref(name), score=score, accepted=accepted)


def _scene(i: int, attempts: list[Attempt], used: str | None, critic: str) -> SceneRecord:
    return SceneRecord(
        index=i, slug=f"{i:02d}-s", title=f"Scene {i}", bullets=["a"], narration="Some words here.",
        illustration_prompt="p", visual="illustration" if used else "text", target_seconds=10.0,
        illustration=_ref(used) if used else None, attempts=attempts, critic=critic,  # type: ignore[arg-type]
    )


def test_picture_stats_use_the_picture_each_scene_kept():
    scenes = [
        # rejected once, then accepted: the scene uses the second picture (0.31)
        _scene(1, [_attempt(1, "1a", 0.20, False), _attempt(2, "1b", 0.31, True)], "1b", "accepted"),
        # nothing passed in three attempts: the best (0.25) is kept, below bar
        _scene(2, [_attempt(1, "2a", 0.10, False), _attempt(2, "2b", 0.25, False), _attempt(3, "2c", 0.20, False)],
               "2b", "below_bar"),
        _scene(3, [], None, "no_image"),  # a text slide
        _scene(4, [_attempt(1, "4a", 0.40, True)], "4a", "accepted"),  # accepted at once
    ]
    stats = m.picture_stats(scenes)
    assert stats.scenes == 4 and stats.illustrated == 3
    assert stats.scores == (0.31, 0.25, 0.40)
    assert stats.attempts == 6 and stats.below_bar == 1 and stats.first_try == 1


def test_picture_stats_fall_back_to_the_best_score():
    # the illustration's hash matches no attempt (say, a file replaced by hand): the best attempt counts
    scene = _scene(1, [_attempt(1, "a", 0.1, False), _attempt(2, "b", 0.3, False)], "elsewhere", "below_bar")
    assert m.picture_stats([scene]).scores == (0.3,)


def test_theme_contrast_meets_wcag_aa_for_text():
    from lessonforge.tools.media.slides import THEMES, contrast_ratio

    for name, theme in THEMES.items():
        ratios = m.theme_contrast(name)
        assert set(ratios) == {"title", "text", "accent", "muted"}
        assert ratios["text"] == pytest.approx(contrast_ratio(theme.text, theme.background), abs=0.005)
        assert min(ratios["title"], ratios["text"], ratios["muted"]) >= 4.5
    assert m.theme_contrast("no-such-theme") == {}


# --------------------------------------------------------------------------- content


def test_concept_coverage_ignores_case_and_word_endings():
    texts = ["Plants use sunlight and water.", "Leaves release OXYGEN and a little carbon."]
    frac, found, missing = m.concept_coverage(
        ["Sunlight", "waters", "carbon dioxide", "Oxygen", "glucose"], texts, "en"
    )
    assert found == ["Sunlight", "waters", "Oxygen"]
    assert missing == ["carbon dioxide", "glucose"]  # "carbon" alone is not "carbon dioxide"
    assert frac == pytest.approx(3 / 5)


def test_concept_coverage_in_other_languages():
    fr = m.concept_coverage(["triangle rectangle", "hypoténuse", "carré"],
                            ["Dans les triangles rectangles, l'HYPOTENUSE est le plus long côté."], "fr")
    assert fr == (pytest.approx(2 / 3), ["triangle rectangle", "hypoténuse"], ["carré"])
    ja = m.concept_coverage(["プレート", "震源"], ["地球の表面はプレートでできています。"], "ja")
    assert ja == (0.5, ["プレート"], ["震源"])
    ar = m.concept_coverage(["معادلة", "المميز", "جذر"], ["نحسب المميز لحل المعادلات التربيعية"], "ar")
    assert ar[1] == ["معادلة", "المميز"] and ar[2] == ["جذر"]


def test_a_phrase_must_appear_in_order():
    assert m.concept_coverage(["dioxide carbon"], ["carbon dioxide"], "en")[0] == 0.0
    assert m.concept_coverage(["carbon dioxide"], ["Carbon dioxides are gases"], "en")[0] == 1.0


def test_quiz_score_counts_missing_grades_as_wrong():
    assert J.quiz_score({1: True, 2: False, 3: True}, 3) == pytest.approx(2 / 3)
    assert J.quiz_score({1: True}, 4) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        J.quiz_score({}, 0)


class _Scene:
    def __init__(self, title: str, bullets: list[str], narration: str) -> None:
        self.title, self.bullets, self.narration = title, bullets, narration


LESSON = J.lesson_text([
    _Scene("Light", ["Sunlight"], "Plants catch sunlight with their leaves."),
    _Scene("Air", ["Carbon dioxide in"], "Leaves take in carbon dioxide from the air."),
])


def test_quiz_writes_from_the_topic_answers_from_the_lesson_and_grades():
    questions = J.QuizQuestions(questions=[
        J.QuizItem(question="What do plants catch?", answer="sunlight"),
        J.QuizItem(question="Which gas do leaves take in?", answer="carbon dioxide"),
        J.QuizItem(question="What sugar is made?", answer="glucose"),
    ])
    answers = J.QuizAnswers(answers=[J.QuizAnswer(number=1, answer="sunlight"),
                                     J.QuizAnswer(number=2, answer="oxygen")])  # 3 left unanswered
    grades = J.QuizGrades(grades=[J.Grade(number=1, correct=True, reason="same"),
                                  J.Grade(number=2, correct=False, reason="wrong gas"),
                                  J.Grade(number=3, correct=True, reason="a lenient judge")])
    llm = FakeLLM(script=[questions, answers, grades])
    result = asyncio.run(J.quiz(llm, topic="photosynthesis", audience="primary school", language="en",
                                lesson=LESSON, count=3))
    assert [it.correct for it in result.items] == [True, False, False]  # no answer is never correct
    assert result.score == pytest.approx(1 / 3)
    write, answer, grade = (" ".join(msg.content for msg in convo) for convo, _ in llm.calls)
    assert "photosynthesis" in write and "catch sunlight" not in write  # written from the topic alone
    assert "catch sunlight" in answer and "glucose" not in answer  # answered without the references
    assert "Reference answer: glucose" in grade and "Given answer: (none)" in grade


def test_rubric_out_of_range_is_repaired_without_asking_again():
    bad = {"accuracy": {"score": 7, "reason": "x"}, "clarity": {"score": 4, "reason": "x"},
           "logical_flow": {"score": 4, "reason": "x"}, "engagement": {"score": 0, "reason": "x"}}
    llm = FakeLLM(script=[bad])
    rubric = asyncio.run(J.rubric(llm, topic="photosynthesis", audience="kids", language="en", minutes=1.5,
                                  lesson=LESSON))
    assert rubric.mean() == pytest.approx((5 + 4 + 4 + 1) / 4)
    assert len(llm.calls) == 1 and any("score 7 is outside 1-5" in r for r in rubric.repairs)


@pytest.mark.parametrize("name", ["rubric", "quiz_write", "quiz_answer", "quiz_grade"])
def test_judge_prompts_render_with_their_variables(name):
    values = {v: f"<{v}>" for v in eval_prompts.variables(name)}
    system, user = eval_prompts.messages(name, **values)
    assert system and user and "{{" not in system + user
    assert all(v in system + user for v in values.values())
    with pytest.raises(KeyError, match="does not use"):
        eval_prompts.messages(name, **values, colour="red")


# --------------------------------------------------------------------------- cost and catalogue


def test_price_estimate_from_the_table():
    assert m.estimate_price("openai:gpt-4.1-mini", 1_000_000, 500_000) == pytest.approx(0.40 + 0.80)
    assert m.estimate_price("openai:gpt-4.1-mini-2025-04-14", 1_000_000, 0) == pytest.approx(0.40)
    assert m.estimate_price("gpt-4.1", 1_000_000, 0) == pytest.approx(2.00)  # not the mini's row
    assert m.estimate_price("fake:", 10, 10) is None
    assert m.estimate_price("openai:qwen2.5:7b-instruct", 10, 10) is None  # a local model: no guess


def test_metric_directions_and_tolerances():
    cov = m.METRIC_BY_KEY["content.concept_coverage"]  # higher is better, 0.05 absolute
    assert cov.worse(0.80, 0.74) and not cov.worse(0.80, 0.76) and cov.better_than(0.74, 0.80)
    tokens = m.METRIC_BY_KEY["cost.total_tokens"]  # lower is better, 10 % of the baseline
    assert tokens.worse(1000, 1101) and not tokens.worse(1000, 1090) and not tokens.worse(1000, 10)
    wpm = m.METRIC_BY_KEY["delivery.wpm"]  # shown only
    assert not wpm.worse(150, 20) and not wpm.worse(150, 400)


def test_lesson_metrics_values_by_key():
    c = J.Criterion(score=4, reason="r")
    lm = m.LessonMetrics(
        delivery=m.Delivery(target_s=60, subtitles_valid=False, duration_abs_error=0.1),
        content=m.Content(rubric=J.Rubric(accuracy=c, clarity=c, logical_flow=c, engagement=c)),
    )
    assert lm.value("delivery.subtitles_valid") == 0.0
    assert lm.value("delivery.duration_abs_error") == pytest.approx(0.1)
    assert lm.value("content.rubric.clarity.score") == 4.0
    assert lm.value("content.quiz_score") is None
    assert set(lm.flat()) == {metric.key for metric in m.METRICS}


# --------------------------------------------------------------------------- topic sets


def test_shipped_topic_sets_are_valid_and_broad():
    smoke = topics.load("smoke")
    assert len(smoke.topics) == 3
    core = topics.load("core")
    assert len(core.topics) >= 30
    assert {"science", "maths", "history", "languages", "computing"} <= {t.subject for t in core.topics}
    assert {"en", "fr", "de", "es", "ja", "ar"} <= {t.language for t in core.topics}
    assert all(1 <= t.minutes <= 5 and 3 <= len(t.key_concepts) <= 6 for t in core.topics)
    bands = {m.grade_band(t.audience) for t in core.topics}
    assert None not in bands and (1.0, 6.0) in bands and (11.0, 16.0) in bands  # primary to university
    assert len(set(core.slugs())) == len(core.topics)


def _write(tmp_path, text: str):
    path = tmp_path / "set.yaml"
    path.write_text(text, "utf-8")
    return path


def test_topic_set_errors_name_file_entry_and_field(tmp_path):
    path = _write(tmp_path, """
topics:
  - {topic: tides, minutes: 1, audience: kids, key_concepts: [moon, gravity, ocean]}
  - {topic: volcanoes, minutes: 1, audience: kids}
  - {topic: rivers, minutes: 45, audience: kids, key_concepts: [water, sea, source]}
  - {topic: rain, minutes: 1, audience: kids, language: "french!", key_concepts: [cloud, drop, water]}
""")
    with pytest.raises(ConfigError) as err:
        topics.load(path)
    text = str(err.value)
    assert str(path) in text and "entry 2 ('volcanoes'), field key_concepts: Field required" in text
    # the request checks run once the file's shape is right
    path = _write(tmp_path, """
topics:
  - {topic: rivers, minutes: 45, audience: kids, key_concepts: [water, sea, source]}
  - {topic: rain, minutes: 1, audience: kids, language: "french!", key_concepts: [cloud, drop, water]}
""")
    with pytest.raises(ConfigError) as err:
        topics.load(path)
    text = str(err.value)
    assert "entry 1 ('rivers'), field minutes" in text and "between 0.5 and 30" in text
    assert "entry 2 ('rain'), field language" in text


def test_topic_set_yaml_errors_give_the_line(tmp_path):
    path = _write(tmp_path, "topics:\n  - topic: tides\n    minutes: [1\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        topics.load(path)
    with pytest.raises(ConfigError, match="not found.*core, smoke"):
        topics.load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="has no topics"):
        topics.load(_write(tmp_path, "topics: []\n"))
