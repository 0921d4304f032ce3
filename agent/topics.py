"""Topic sets: YAML files of lessons to make and score, validated before any work starts.

    name: smoke
    description: three quick topics
    topics:
      - topic: photosynthesis
        subject: science
        minutes: 1
        audience: primary school
        language: en
        key_concepts: [sunlight, water, carbon dioxide, sugar, oxygen]
      - prompt: a 1-minute vertical video on volcanoes for 9-year-olds, in French
        key_concepts: [magma, lave, éruption]

An entry may give a one-shot prompt instead of (or besides) topic, minutes, audience and language:
it is read as `lessonforge make` reads one, the fields given win, and the report shows the reading.
A bare list of topics is accepted too. Every problem is reported as one ConfigError naming the
file, the entry (1-based) and the field.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lessonforge.agent.project import slugify
from lessonforge.agent.state import LessonRequest
from lessonforge.agent.understand import Understanding, read_offline
from lessonforge.agent.understand import resolve as resolve_prompt
from lessonforge.tools.base import ConfigError

SETS_PACKAGE = "lessonforge.evals"  # the topic sets shipped with the evals (package data, not code)
DATASETS = "datasets"


class TopicSpec(BaseModel):
    """One lesson of a topic set and what it must teach."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field("", description="A one-shot prompt in plain words; fills topic, minutes, audience and "
                        "language where they are not given.")
    topic: str = Field(description="What the lesson teaches (passed to make as the topic).")
    minutes: float = Field(description="Target length in minutes.")
    audience: str = Field(description="Who the lesson is for; sets the expected reading grade.")
    language: str = Field("en", description="BCP-47 code of the lesson's language.")
    key_concepts: tuple[str, ...] = Field(description="3 to 6 concepts the lesson is expected to name.")
    subject: str = Field("", description="science, maths, history, languages, computing... (for grouping).")

    @model_validator(mode="before")
    @classmethod
    def _from_prompt(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("prompt"), str) or not data["prompt"].strip():
            return data
        given = {k: data[k] for k in ("topic", "minutes", "audience", "language") if data.get(k) not in (None, "")}
        try:
            request = _understanding(data["prompt"], given).request
        except ConfigError as err:
            raise ValueError(str(err)) from None
        assert request is not None
        return {**data, "topic": request.topic, "minutes": request.minutes, "audience": request.audience,
                "language": request.language}

    @field_validator("topic", "audience")
    @classmethod
    def _text(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("key_concepts")
    @classmethod
    def _concepts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        v = tuple(" ".join(c.split()) for c in v)
        if any(not c for c in v):
            raise ValueError("a key concept is empty")
        if not 1 <= len(v) <= 10:
            raise ValueError(f"give 3 to 6 key concepts, not {len(v)}")
        return v

    def understanding(self) -> Understanding | None:
        """How the entry's prompt was read (None for an entry without one)."""
        if not self.prompt.strip():
            return None
        return _understanding(self.prompt, {"topic": self.topic, "minutes": self.minutes, "audience": self.audience,
                                            "language": self.language})

    def request(self) -> LessonRequest:
        understood = self.understanding()
        if understood is not None and understood.request is not None:
            return understood.request  # with what else the prompt said (shape, tone, style notes)
        return LessonRequest(topic=self.topic, minutes=self.minutes, audience=self.audience, language=self.language)


def _understanding(prompt: str, given: dict[str, Any]) -> Understanding:
    """An entry's prompt read offline (eval runs are repeatable), the fields given winning."""
    return resolve_prompt(prompt, read_offline(prompt)[0], given)


class Dataset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    topics: list[TopicSpec]

    def slugs(self) -> list[str]:
        """A folder name per topic: its 1-based position and a slug (unique, stable while the order is)."""
        width = max(2, len(str(len(self.topics))))
        return [
            f"{i:0{width}d}-{slugify(t.topic, max_len=32, fallback=(t.language or 'lesson').lower())}"
            for i, t in enumerate(self.topics, 1)
        ]


def packaged(name: str) -> Path | None:
    """The topic set shipped as evals/datasets/NAME.yaml, if there is one."""
    path = resources.files(SETS_PACKAGE).joinpath(DATASETS, f"{name}.yaml")
    return Path(str(path)) if path.is_file() else None


def resolve(path_or_name: Path | str) -> Path:
    """A topic-set file: the path itself, or the name of one shipped with LessonForge ("smoke", "core")."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    shipped = packaged(str(path_or_name)) if path.suffix == "" and path.name == str(path_or_name) else None
    if shipped is not None:
        return shipped
    names = sorted(p.stem for p in Path(str(resources.files(SETS_PACKAGE).joinpath(DATASETS))).glob("*.yaml"))
    raise ConfigError(
        f"topic set {str(path_or_name)!r} not found; give a YAML file path or one of the shipped sets: "
        f"{', '.join(names)}"
    )


def _where(loc: tuple) -> tuple[int | None, str]:
    """(entry index, field) of a pydantic error location within {"topics": [...]}."""
    if len(loc) >= 2 and loc[0] == "topics" and isinstance(loc[1], int):
        return loc[1], ".".join(str(p) for p in loc[2:]) or "entry"
    return None, ".".join(str(p) for p in loc) or "file"


def load(path_or_name: Path | str, model: type[Dataset] = Dataset) -> Dataset:
    """Read and validate a topic set; every problem becomes one ConfigError that names where it is.

    ``model`` is the set's shape (`lessonforge.agent.batch.BatchSet` reads the same files for batch runs)."""
    path = resolve(path_or_name)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read the topic set {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}; fix the file") from None
    if isinstance(data, list):
        data = {"topics": data}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping with a 'topics' list (or a list of topics); fix the file")
    data.setdefault("name", path.stem)
    raw_topics = data.get("topics")
    try:
        dataset = model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(path, err, raw_topics)) from None
    if not dataset.topics:
        raise ConfigError(f"{path} has no topics; add at least one under 'topics:'")
    problems = []
    for i, spec in enumerate(dataset.topics):
        try:
            spec.request()  # the same checks make applies (minutes range, language code)
        except ValidationError as err:
            for e in err.errors():
                field = ".".join(str(p) for p in e["loc"])
                problems.append(
                    f"entry {i + 1} ({spec.topic!r}), field {field}: {e['msg'].removeprefix('Value error, ')}"
                )
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems) + "; fix the file")
    return dataset


def _describe(path: Path, err: ValidationError, raw_topics: object) -> str:
    lines = []
    for e in err.errors():
        index, field = _where(tuple(e["loc"]))
        msg = e["msg"].removeprefix("Value error, ")
        if index is None:
            lines.append(f"field {field}: {msg}")
            continue
        name = ""
        if isinstance(raw_topics, list) and index < len(raw_topics) and isinstance(raw_topics[index], dict):
            topic = raw_topics[index].get("topic")
            name = f" ({topic!r})" if isinstance(topic, str) else ""
        lines.append(f"entry {index + 1}{name}, field {field}: {msg}")
    return f"{path}: " + "; ".join(lines) + "; fix the file"
