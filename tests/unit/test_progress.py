"""Progress lines for a slow local model: tokens, rate and the time left."""

from __future__ import annotations

from lessonforge.agent.context import _token_progress


def test_token_progress_shows_rate_and_time_left():
    events: list[dict] = []
    on_tokens = _token_progress(events.append)
    on_tokens(15, 4.0, 100)  # between reports: nothing
    on_tokens(32, 4.0, 100)
    on_tokens(48, 4.0, None)  # no estimate: no ETA is made up
    on_tokens(64, 0.5, 2000)
    on_tokens(112, 4.0, 100)  # past the estimate
    assert [e["message"] for e in events] == [
        "32 of ~100 tokens, 4.0 tokens/s, about 17s left",
        "48 tokens, 4.0 tokens/s",
        "64 of ~2000 tokens, 0.5 tokens/s, about 64m 32s left",
        "112 of ~100 tokens, 4.0 tokens/s, finishing",
    ]
    assert events[0]["stage"] == "llm"
    assert events[0]["data"] == {"tokens": 32, "rate": 4.0, "expected": 100, "eta_s": 17.0}


def test_plain_progress_prints_a_model_line_every_ten_seconds(monkeypatch):
    from lessonforge.agent import cli

    clock = iter([0.0, 1.0, 5.0, 9.0, 12.0, 13.0, 25.0])
    monkeypatch.setattr(cli.time, "monotonic", lambda: next(clock))
    progress = cli.Progress("plain", "lesson")  # starts at 0.0
    with cli.console.capture() as captured:
        for n in (16, 32, 48, 64, 80):  # at 1, 5, 9, 12, 13 s
            progress({"stage": "llm", "message": f"{n} tokens, 4.0 tokens/s"})
        progress({"stage": "write", "message": "Writing 4 scenes"})  # other stages always print (25 s)
    lines = captured.get().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["16 tokens, 4.0 tokens/s", "64 tokens, 4.0 tokens/s",
                                                         "Writing 4 scenes"]


def test_download_progress_prints_first_last_and_every_ten_seconds(monkeypatch):
    from rich.progress_bar import ProgressBar

    from lessonforge.agent import cli

    clock = iter([0.0, 0.5, 3.0, 6.0, 7.0, 8.0])
    monkeypatch.setattr(cli.time, "monotonic", lambda: next(clock))
    progress = cli.Progress("plain", "lesson")
    with cli.console.capture() as captured:
        for done in (10, 40, 70, 100):  # at 0.5, 3, 6, 7 s: the first and the finished one print
            progress({"stage": "download", "message": f"m: {done} of 100",
                      "data": {"model": "m", "done": done, "total": 100, "unit": "bytes"}})
    assert [line.split(": ", 1)[1] for line in captured.get().splitlines()] == ["m: 10 of 100", "m: 100 of 100"]
    assert progress.download == (100.0, 100.0)
    bar = progress._render().renderables[1]  # the live panel shows a bar while downloading
    assert isinstance(bar, ProgressBar) and bar.completed == 100
