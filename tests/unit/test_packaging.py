"""What the package declares matches what it imports, and the core install works without the [local] extra."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "tools", "evals", "prompts")
LOCAL_MODULES = ("torch", "diffusers", "transformers", "llguidance", "safetensors", "accelerate")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]


def _requirements(names: list[str]) -> set[str]:
    """The distributions the core (``names`` empty) or the core plus the named extras declare, transitively
    through the project's own extras, as canonical names."""
    project = _project()
    extras, wanted = project["optional-dependencies"], list(names)
    out = {canonicalize_name(Requirement(t).name) for t in project["dependencies"]}
    seen: set[str] = set()
    while wanted:
        extra = wanted.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in extras[extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == "lessonforge":
                wanted.extend(req.extras)
            else:
                out.add(canonicalize_name(req.name))
    return out


def _imports() -> dict[str, set[str]]:
    """Every module the package imports (at the top of a file or inside a function), dotted, -> the files."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in ("lessonforge", "__future__"):
                        continue
                    found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_declared_distribution() -> None:
    declared = _requirements(list(_project()["optional-dependencies"]))
    providers = md.packages_distributions()
    undeclared = {}
    for name, files in _imports().items():
        top = name.split(".")[0]
        dists = {canonicalize_name(d) for d in providers.get(top, [])}
        assert dists, f"{top} (imported in {sorted(files)}) is not installed here: run scripts/setup.sh"
        if not dists & declared:
            undeclared[top] = (sorted(dists), sorted(files))
    assert not undeclared, f"imported but declared neither in the core dependencies nor an extra: {undeclared}"


def _modules_of(dist: str) -> set[str]:
    """The dotted modules and packages a distribution installs."""
    out = set()
    for file in md.distribution(dist).files or []:
        parts = file.parts
        if file.suffix == ".py" and parts and not parts[0].endswith((".dist-info", ".data")):
            dotted = [*parts[:-1], file.stem] if file.stem != "__init__" else list(parts[:-1])
            out.update(".".join(dotted[:i]) for i in range(1, len(dotted) + 1))
    return out


def test_every_core_dependency_is_imported() -> None:
    imported = set(_imports())
    unused = []
    for dist in sorted(_requirements([])):
        modules = _modules_of(dist)
        # a namespace shared by several distributions (langgraph) counts only through this one's own modules
        if not modules & imported:
            unused.append(dist)
    assert not unused, f"declared in the core dependencies but never imported: {unused}"


def test_the_local_extra_holds_the_local_model_packages() -> None:
    core, local = _requirements([]), _requirements(["local"])
    for name in ("torch", "diffusers", "transformers", "llguidance", "safetensors", "accelerate"):
        assert name not in core, f"{name} is a core dependency; it belongs to the [local] extra"
        assert name in local
    assert {"piper-tts", "kokoro"} <= _requirements(["voices"])
    assert {"textstat", "nltk"} <= _requirements(["eval"]) and not {"textstat", "nltk"} & core
    assert _requirements(["dev"]) >= _requirements(list(_project()["optional-dependencies"])) - {"lessonforge"}


# ----------------------------------------------------------------------------- the core install


BLOCKER = f"""
import sys

BLOCKED = {set(LOCAL_MODULES)!r}


class _NotInstalled:
    # As if only the core were installed: the [local] extra's packages cannot be imported or found.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.fixture
def core_only(tmp_path: Path) -> dict[str, str]:
    """An environment in which Python starts as if the [local] extra were not installed."""
    site = tmp_path / "core-only"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _lessonforge(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lessonforge.agent.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def test_the_blocker_blocks(core_only: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=core_only)
    assert done.returncode != 0 and "No module named 'torch'" in done.stderr


def test_help_works_without_the_local_extra(core_only: dict[str, str]) -> None:
    done = _lessonforge(core_only, "--help")
    assert done.returncode == 0, done.stderr
    assert "make" in done.stdout


@pytest.mark.slow
def test_a_local_llm_without_the_extra_names_it(core_only: dict[str, str], tmp_path: Path) -> None:
    done = _lessonforge(core_only, "make", "tides", "--llm", "local:", "--images", "none", "--critic", "none",
                        "--speech", "espeak:en-us", "--out", str(tmp_path / "out"))
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, said
    assert "pip install 'lessonforge[local]'" in said
    assert "torch" in said and "Traceback" not in said
    assert not (tmp_path / "out" / "lesson.mp4").exists()


def test_every_local_backend_names_the_extra_before_downloading(core_only: dict[str, str]) -> None:
    code = """
import json
from lessonforge.tools import registry
from lessonforge.tools.base import ConfigError
said = {}
for kind, spec in (("llm", "local:Qwen/Qwen3-1.7B"), ("images", "diffusers:stabilityai/sd-turbo"),
                   ("critic", "clip:openai/clip-vit-base-patch32")):
    try:
        registry.create(kind, spec).downloads()
    except ConfigError as err:
        said[kind] = str(err)
print(json.dumps(said))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=core_only, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert set(said) == {"llm", "images", "critic"}, said
    for message in said.values():
        assert "pip install 'lessonforge[local]'" in message and "torch" in message
    assert "--images none" in said["images"] and "--critic none" in said["critic"]


@pytest.mark.slow
def test_the_offline_example_and_doctor_work_without_the_local_extra(core_only: dict[str, str],
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "photosynthesis"
    done = _lessonforge(core_only, "make", "--from", "examples/photosynthesis.json", "--out", str(out),
                        "--images", "none", "--critic", "none", "--speech", "espeak:en-us", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((out / "lesson.json").read_text("utf-8"))
    assert len(manifest["scenes"]) == 6
    assert (out / "lesson.mp4").stat().st_size > 100_000 and (out / "lesson.srt").read_text("utf-8").strip()

    doctor = _lessonforge(core_only, "doctor", timeout=120)
    report = " ".join(doctor.stdout.split())
    assert "Traceback" not in doctor.stdout + doctor.stderr, doctor.stderr
    assert "torch: not installed" in report and "pip install 'lessonforge[local]'" in report
    assert "eSpeak NG" in report
