"""What batch and eval runs share: a topic's result written as it finishes, and read back on a rerun."""

from __future__ import annotations

import time

from lessonforge.agent.batch import BatchResult, done_before, failed, finish, load_result
from lessonforge.agent.state import LessonRequest
from lessonforge.agent.topics import TopicSpec
from lessonforge.evals.results import TopicResult


def _batch(status="done", key="k1") -> BatchResult:
    return BatchResult(slug="tides", index=1, request=LessonRequest(topic="tides"), key=key, status=status,
                       lesson_dir="lessons/tides", duration=None)


def test_a_finished_result_is_written_reported_and_read_back_by_either_run(tmp_path):
    events = []
    result = _batch()
    started = time.perf_counter() - 1.25
    finish(tmp_path, "tides", result, started, "tides", {"stage": "batch", "topic": "tides"}, events.append,
           message="Tides")
    path = tmp_path / "results" / "tides.json"
    assert load_result(path, BatchResult) == result and result.seconds >= 1.25 and result.finished
    assert events == [{"stage": "batch", "topic": "tides", "status": "done", "message": "Tides",
                       "seconds": result.seconds}]
    assert done_before(path, BatchResult, "k1") == result
    assert done_before(path, BatchResult, "k2") is None  # settings or backends changed: made again
    assert load_result(path, TopicResult) is None  # another kind of result is not mistaken for one

    spec = TopicSpec(topic="tides", minutes=1, audience="adults", key_concepts=["moon"])
    topic = TopicResult(slug="tides", index=1, spec=spec, key="e1", status="done", lesson_dir="lessons/tides")
    finish(tmp_path, "tides", topic, time.perf_counter(), "tides", {}, events.append, message="tides")
    assert done_before(path, TopicResult, "e1") == topic


def test_a_failed_topic_is_recorded_with_its_reason_and_made_again(tmp_path):
    events = []
    result = _batch(status="failed")
    failed(result, ValueError("the voice is missing"))
    finish(tmp_path, "tides", result, time.perf_counter(), "tides", {"topic": "tides"}, events.append,
           message="never shown")
    assert (result.error, result.error_type) == ("the voice is missing", "ValueError")
    assert events == [{"topic": "tides", "status": "failed", "level": "error",
                       "message": "tides: the voice is missing", "error_type": "ValueError"}]
    assert done_before(tmp_path / "results" / "tides.json", BatchResult, "k1") is None
    failed(result, TimeoutError())
    assert result.error == "TimeoutError()"  # an error with no message still says what it was


def test_a_missing_or_damaged_result_is_redone(tmp_path):
    assert load_result(tmp_path / "nothing.json", BatchResult) is None
    (tmp_path / "half.json").write_text('{"slug": "tid')
    assert load_result(tmp_path / "half.json", BatchResult) is None
