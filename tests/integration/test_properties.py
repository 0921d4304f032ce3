"""Property tests: any topic text and option values give a lesson or a clear error, never a traceback.

A hand-edited lesson.json with a wrong type or a missing field makes `lessonforge render` name the field.
Bounded: few examples, no deadline, fakes everywhere, the shortest lessons.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from benchmarks.durability import FAKES, scan_tree
from lessonforge.agent.cli import app

pytestmark = pytest.mark.slow

runner = CliRunner()

BOUNDED = settings(
    max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)

# text from every script, control characters included
any_text = st.one_of(
    st.text(min_size=0, max_size=60),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=20),
    st.sampled_from(["مرحبا بالعالم كيف تعمل المد والجزر", "光合作用", "🌊🌙 tides 🌊", "a" * 5000,
                     "\u202e\u200f reversed", "tides\x00\x1b[31m red", "   ", "-" * 40, "--help"]),
)


def _check(result, out: Path) -> None:
    text = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{text}")
    assert "Traceback" not in text and "please report it" not in text.lower(), text
    assert result.exit_code in (0, 2), text
    if result.exit_code == 2:
        assert "error" in text.lower() or "usage" in text.lower(), text
    else:
        assert json.loads((out / "lesson.json").read_text())["status"] == "done"
    corrupt, _ = scan_tree(out)
    assert not corrupt, corrupt


@BOUNDED
@given(topic=any_text)
def test_any_topic_gives_a_lesson_or_a_clear_error(topic):
    work = Path(tempfile.mkdtemp(prefix="lf-prop-"))
    try:
        out = work / "o"
        # "--" ends the options, so a topic that starts with a dash is still the topic
        result = runner.invoke(app, ["make", "--minutes", "0.5", *FAKES, "--out", str(out), "--", topic],
                               catch_exceptions=True)
        _check(result, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


options = st.fixed_dictionaries({
    "--minutes": st.one_of(st.sampled_from(["0.5", "0", "-1", "nan", "inf", "1e309", "31", "abc", ""]),
                           st.floats(allow_nan=True, allow_infinity=True).map(repr)),
    "--language": st.one_of(st.sampled_from(["en", "fr", "zz", "", "../x", "en\n"]), st.text(max_size=8)),
    "--aspect": st.sampled_from(["16:9", "9:16", "1:1", "4:3", "", "16:9\x00"]),
    "--audience": any_text,
    "--seed": st.sampled_from(["0", "-5", "99999999999999999999", "x"]),
    "--voice": st.one_of(st.just(""), st.text(max_size=12)),
    "--max-attempts": st.sampled_from(["1", "0", "11", "-3"]),
})


@BOUNDED
@given(opts=options)
def test_any_options_give_a_lesson_or_a_clear_error(opts):
    work = Path(tempfile.mkdtemp(prefix="lf-prop-"))
    try:
        out = work / "o"
        args = ["make", "tides", *FAKES, "--out", str(out)]
        for k, v in opts.items():
            args += [f"{k}={v}"]
        result = runner.invoke(app, args, catch_exceptions=True)
        _check(result, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- hand-edited lesson.json


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("made") / "o"
    result = runner.invoke(app, ["make", "tides", "--minutes", "0.5", *FAKES, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


EDITS = [
    # (path into lesson.json, new value or DELETE, a word the message must contain)
    (("scenes", 0, "narration"), 42, "narration"),
    (("scenes", 1, "bullets"), "not a list", "bullets"),
    (("scenes", 0, "title"), None, "title"),
    (("scenes", 0, "narration"), "DELETE", "narration"),
    (("request", "minutes"), "two", "minutes"),
    (("request",), "DELETE", "request"),
    (("scenes",), {"a": 1}, "scenes"),
    (("status",), "exploded", "status"),
]


def _edit(data, path, value):
    node = data
    for key in path[:-1]:
        node = node[key]
    if value == "DELETE":
        del node[path[-1]]
    else:
        node[path[-1]] = value


@pytest.mark.parametrize(("path", "value", "needle"), EDITS, ids=[".".join(map(str, e[0])) + f"={e[1]!r}"[:20]
                                                                    for e in EDITS])
def test_hand_edited_manifest_names_the_field(made, tmp_path, path, value, needle):
    out = tmp_path / "o"
    shutil.copytree(made, out)
    data = json.loads((out / "lesson.json").read_text())
    _edit(data, path, value)
    (out / "lesson.json").write_text(json.dumps(data))
    result = runner.invoke(app, ["render", str(out)], catch_exceptions=True)
    text = " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit), text
    assert "Traceback" not in text
    assert result.exit_code == 2, text
    assert needle in text, text


@BOUNDED
@given(junk=st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                      st.sampled_from(["[]", "null", "{}", '{"request": 1}', "1e999"])))
def test_garbage_manifest_is_a_clear_error(junk):
    work = Path(tempfile.mkdtemp(prefix="lf-prop-"))
    try:
        (work / "lesson.json").write_text(junk, encoding="utf-8", errors="surrogateescape")
        result = runner.invoke(app, ["render", str(work)], catch_exceptions=True)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert "Traceback" not in result.output and result.exit_code == 2, result.output
        assert "lesson.json" in " ".join(result.output.split())
    finally:
        shutil.rmtree(work, ignore_errors=True)
