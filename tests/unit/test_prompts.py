from __future__ import annotations

import pytest

from lessonforge import prompts

TEMPLATES = ["plan", "write", "fit", "revise_prompt", "understand", "quiz", "edit"]


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_renders_with_its_variables(name):
    values = {v: f"<{v}>" for v in prompts.variables(name)}
    system, user = prompts.messages(name, **values)
    assert system and user
    for v in values.values():
        assert v in system + user
    assert "{{" not in system + user


def test_missing_or_unused_variable_fails():
    values = {v: "x" for v in prompts.variables("plan")}
    missing = dict(values)
    missing.pop("topic")
    with pytest.raises(KeyError, match="topic"):
        prompts.render("plan", **missing)
    with pytest.raises(KeyError, match="colour"):
        prompts.render("plan", **values, colour="red")
