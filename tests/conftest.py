"""Shared test set-up: offline, quiet and fast on a small CPU."""

from __future__ import annotations

import os

# Before torch is imported anywhere: spinning OpenMP threads make tiny convolutions slow here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# A model that is not on disk must fail at once instead of reaching for the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A skip fails the run unless its reason is on ALLOWED_SKIPS (below); LESSONFORGE_ALLOW_SKIPS=1 lets any skip
# pass, for a machine that lacks what scripts/setup.sh installs. Read before the settings are cleared.
_ALLOW_ANY_SKIP = os.environ.get("LESSONFORGE_ALLOW_SKIPS", "").strip().lower() in {"1", "true", "yes", "on"}
# Tests never read the developer's real settings.
for _var in [v for v in os.environ if v.startswith("LESSONFORGE_")] + ["OPENAI_API_KEY", "OPENAI_BASE_URL"]:
    os.environ.pop(_var, None)
# Measured voice rates and other per-user state go to a folder of this test session, never ~/.cache.
import tempfile  # noqa: E402

os.environ["LESSONFORGE_CACHE_DIR"] = tempfile.mkdtemp(prefix="lessonforge-test-cache-")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.fake_openai import FakeOpenAIServer, fake_openai  # noqa: E402,F401


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    """A tiny random-weight Stable Diffusion pipeline saved with save_pretrained."""
    from tests.tiny_models import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """A tiny random-weight CLIP model with its processor, saved with save_pretrained."""
    from tests.tiny_models import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def lesson_answers(request: dict) -> str:
    """Answer a chat request the way a capable model would, for LessonForge's own schemas.

    The schema is recognised by the response_format name the backend sends; the content is what
    lessonforge.agent.fakes.default_answer writes for that schema from the prompt.
    """
    from lessonforge.agent import schemas
    from lessonforge.agent.fakes import default_answer
    from lessonforge.tools.base import Message

    name = request["response_format"]["json_schema"]["name"]
    schema = next(getattr(schemas, n) for n in dir(schemas) if n.lower() == name.lower())
    messages = [Message(m["role"], m["content"]) for m in request["messages"]]
    return json.dumps(default_answer(messages, schema).model_dump(mode="json"))


@pytest.fixture
def lesson_server():
    """A fake OpenAI-compatible server that writes plausible lessons (and can be scripted first)."""
    with FakeOpenAIServer(default=lesson_answers) as server:
        yield server


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A fake Hugging Face Hub on 127.0.0.1 (tests/fake_hub.py), with downloads allowed into a fresh cache.

    Add repositories to ``fake_hub.repos`` (repo id -> {path: bytes}). huggingface_hub reads its endpoint
    and offline flag when imported, so those are set on its constants too.
    """
    from huggingface_hub import constants

    from tests.fake_hub import FakeHub

    with FakeHub({}) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
        yield hub


# --------------------------------------------------------------------------- skips

# The only skips a run accepts, each for a reason setup cannot remove. A test that skips for anything else
# (a package, program or font that scripts/setup.sh installs) fails, so a missing dependency cannot pass
# unnoticed as a row of skips.
ALLOWED_SKIPS: dict[str, str] = {
    "needs root and tmpfs to mount a tiny filesystem":
        "the disk-full test mounts a 1 MB tmpfs, which needs root (CI runs as root; a developer may not)",
}


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_unexpected_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if _ALLOW_ANY_SKIP or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if any(allowed in reason for allowed in ALLOWED_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = (f"unexpected skip: {reason}\nscripts/setup.sh installs what the tests need; run it (make "
                       "setup), or set LESSONFORGE_ALLOW_SKIPS=1 to let skips pass on this machine. A skip that "
                       "setup cannot remove belongs on ALLOWED_SKIPS in tests/conftest.py, with its reason.")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    _fail_unexpected_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield
    _fail_unexpected_skip(outcome.get_result())
