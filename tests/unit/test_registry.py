"""Backends by name: built-ins and plugins through one entry-point table, options checked against the
options model each backend declares."""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
from pydantic import BaseModel

from lessonforge.agent.config import Settings
from lessonforge.agent.context import create as create_from_settings
from lessonforge.agent.context import create_clips, create_critic
from lessonforge.agent.fakes import FakeLLM
from lessonforge.tools import registry
from lessonforge.tools.base import ConfigError
from lessonforge.tools.fakes import FakeCritic, FakeImages
from tests.plugins import write_plugin

BUILTINS = {
    "llm": {"openai", "local", "fake"},
    "images": {"diffusers", "openai", "fake", "ray"},
    "speech": {"edge", "espeak", "openai", "piper", "kokoro", "fake"},
    "critic": {"clip", "openai", "fake", "ray"},
    "clips": {"veo", "videos"},
}

PLUGIN = '''
from lessonforge.tools.registry import BackendOptions


class Coqui:
    class Options(BackendOptions):
        speed: float = 1.0

    def __init__(self, model: str, *, speed: float = 1.0) -> None:
        self.name, self.speed = f"coqui:{model}", speed


class Plain:
    def __init__(self, model: str) -> None:
        self.name = f"plain:{model}"
'''


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A folder on sys.path for plugin distributions; the registry reads the table again before and after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    yield tmp_path
    monkeypatch.undo()
    registry.refresh()


def test_parse_and_create():
    spec = registry.parse("llm", "openai:gpt-6-luna")
    assert spec is not None and (spec.backend, spec.model) == ("openai", "gpt-6-luna")
    assert registry.parse("llm", "openai:org/model:tag").model == "org/model:tag"
    assert registry.parse("images", "none") is None
    assert isinstance(registry.create("llm", "fake:x"), FakeLLM)
    assert isinstance(registry.create("images", "fake:"), FakeImages)
    assert registry.create("critic", "none") is None


def test_llm_and_speech_cannot_be_switched_off():
    with pytest.raises(ConfigError):
        registry.parse("llm", "none")
    with pytest.raises(ConfigError):
        registry.parse("speech", "none")


def test_every_builtin_is_an_entry_point_of_lessonforge():
    table = entry_points(group=registry.GROUP)
    ours = {ep.name: ep for ep in table if ep.dist is not None and ep.dist.name == "lessonforge"}
    assert set(ours) == {f"{kind}.{prefix}" for kind, prefixes in BUILTINS.items() for prefix in prefixes}
    for kind, prefixes in BUILTINS.items():
        assert set(registry.prefixes(kind)) - {"none"} == prefixes
        for prefix in prefixes:
            factory = registry.resolve(kind, prefix)
            assert factory is ours[f"{kind}.{prefix}"].load()
            # the lesson's fake LLM knows the agent's schemas, so it lives with them; tools never import the agent
            home = "lessonforge.agent.fakes" if (kind, prefix) == ("llm", "fake") else "lessonforge.tools."
            assert factory.__module__.startswith(home)


def test_each_builtin_options_model_matches_its_constructor():
    for kind, prefixes in BUILTINS.items():
        for prefix in prefixes:
            factory = registry.resolve(kind, prefix)
            model = registry.options_of(factory)
            assert model is not registry.BackendOptions and issubclass(model, BaseModel), (kind, prefix)
            params = inspect.signature(factory).parameters
            for name, field in model.model_fields.items():
                assert name in params, (kind, prefix, name)
                assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (kind, prefix, name)
                assert field.default == params[name].default, (kind, prefix, name)


def test_listing_and_checking_specs_imports_no_model_library():
    code = ("import sys\nfrom lessonforge.tools import registry\n"
            "for kind in registry.KINDS:\n    registry.prefixes(kind)\n"
            "for kind, spec in [('images', 'diffusers:'), ('llm', 'local:'), ('critic', 'clip:')]:\n"
            "    registry.parse(kind, spec)\n"
            "heavy = {'torch', 'diffusers', 'transformers', 'openai', 'lessonforge.tools.images.diffusers'}\n"
            "print(sorted(heavy & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_plugin_registers_through_the_same_table(plugin_path):
    write_plugin(plugin_path, "lessonforge-coqui", {"speech.coqui": "coqui_voice:Coqui", "images.plain":
                                                    "coqui_voice:Plain"}, "coqui_voice", PLUGIN)
    registry.refresh()
    assert "coqui" in registry.prefixes("speech") and "plain" in registry.prefixes("images")
    voice = registry.create("speech", "coqui:vits", speed="1.5")
    assert (voice.name, voice.speed) == ("coqui:vits", 1.5)  # validated by its options model
    with pytest.raises(ConfigError, match=r"'coqui' does not take the option 'pitch'; it takes speed\."):
        registry.create("speech", "coqui:vits", pitch=2)
    # a plugin without an options model takes none, and is offered nothing
    assert registry.create("images", "plain:x", offered={"device": "cuda"}).name == "plain:x"
    with pytest.raises(ConfigError, match="'plain' does not take the option 'device'; it takes no options"):
        registry.create("images", "plain:x", device="cuda")


def test_a_plugin_cannot_take_a_builtin_name(plugin_path):
    write_plugin(plugin_path, "voices-clash", {"speech.edge": "clash:Edge", "speech.mine": "clash:Mine"})
    registry.refresh()
    with pytest.raises(ConfigError) as info:
        registry.parse("speech", "edge:")
    text = str(info.value)
    assert "'edge' is registered twice" in text and "lessonforge (lessonforge.tools.speech.edge:EdgeSpeech)" in text
    assert "voices-clash (clash:Edge)" in text and "another name" in text
    with pytest.raises(ConfigError, match="registered twice"):
        Settings.load(speech="edge:")
    assert registry.parse("speech", "espeak:") is not None  # the other names are untouched


def test_an_unknown_option_is_refused_naming_what_is_taken():
    with pytest.raises(ConfigError) as info:
        registry.create("critic", "clip:", margin=0.1, sharpness=2)
    text = str(info.value)
    assert "critic backend 'clip' does not take the option 'sharpness'" in text
    assert "it takes floor, margin, device, device_preprocess." in text
    with pytest.raises(ConfigError, match=r"Bad option for the images backend 'diffusers': steps: .*integer"):
        registry.create("images", "diffusers:", steps="many")


def test_run_settings_reach_only_the_backends_that_take_them(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    # --device concerns local models: offered to a hosted backend it is not passed, and not an error
    assert create_from_settings("llm", "fake:", device="cuda", on_tokens=lambda *a: None).name == "fake:"
    critic = create_critic(Settings.load(critic="fake:", critic_floor=0.7, critic_margin=0.1, device="cpu"))
    assert isinstance(critic, FakeCritic) and (critic.floor, critic.margin) == (0.7, 0.1)
    # a setting the chosen backend cannot honour is an error, not silently dropped
    with pytest.raises(ConfigError, match="critic backend 'openai' does not take the option 'margin'"):
        create_critic(Settings.load(critic="openai:", critic_margin=0.1))
    with pytest.raises(ConfigError, match="images backend 'fake' does not take the option 'quality'"):
        create_from_settings("images", "fake:", quality="high")
    assert create_clips(Settings.load(clips="videos:", clip_price=0.2)).inner.price_per_second == 0.2


@pytest.mark.parametrize(("kind", "spec", "options"), [
    # what the CLI's settings pass to each backend today (agent.context.from_settings, create_critic, ...)
    ("llm", "local:", {"device": "cpu", "on_tokens": print}),
    ("images", "diffusers:", {"device": "cpu"}),
    ("images", "openai:gpt-image-1", {"quality": "high", "api_key": "k"}),
    ("critic", "clip:", {"device": "cpu", "floor": 0.7, "margin": 0.02}),
    ("critic", "openai:", {"floor": 3.5, "api_key": "k"}),
    ("critic", "ray:clip:", {"floor": 0.7, "margin": 0.02}),
    ("clips", "veo:", {"price_per_second": 0.4}),
    ("clips", "videos:", {"price_per_second": 0.1}),
    ("speech", "piper:", {"length_scale": 1.1}),
    ("speech", "kokoro:", {"device": "cpu", "speed": 1.2}),
    # ray's image deployment offers its batch size and device
    ("images", "diffusers:", {"max_batch": 16}),
])
def test_options_models_take_what_callers_pass(kind, spec, options):
    backend = registry.parse(kind, spec)
    factory = registry.resolve(kind, backend.backend)
    checked = registry.check_options(kind, backend.backend, factory, options)
    assert checked == options


def test_the_ray_deployments_offer_device_and_batch_size():
    from lessonforge.tools.ray_serve import CriticModel, ImageModel

    assert isinstance(ImageModel("fake:", device="cuda", max_batch=8).backend, FakeImages)  # takes neither
    critic = CriticModel("fake:", device="cpu", floor=0.7, margin=0.1).critic
    assert isinstance(critic, FakeCritic) and (critic.floor, critic.margin) == (0.7, 0.1)


def test_an_install_without_the_table_says_to_reinstall(monkeypatch, request):
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    registry.refresh()
    request.addfinalizer(registry.refresh)
    with pytest.raises(ConfigError, match=r"No backends are registered.*pip install -e \."):
        registry.parse("llm", "fake:")
