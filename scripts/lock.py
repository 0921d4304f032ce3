"""Write constraints.txt: the exact versions of everything ``lessonforge[dev]`` installs, read from a working
environment. setup.sh installs with ``-c constraints.txt``, so every machine (CI included) gets the set the
tests passed with, while pyproject.toml keeps ranges for people who install the package into their own
environment.

    .venv/bin/python scripts/lock.py > constraints.txt     # after an upgrade whose tests pass
"""

from __future__ import annotations

import importlib.metadata as md
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = "lessonforge"


def project_requirements(extra: str) -> list[Requirement]:
    """The project's own requirements with ``extra``, read from pyproject.toml (the installed metadata of an
    editable install can lag behind it), the project's extras that it names included."""
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text("utf-8"))["project"]
    extras, wanted, out = project.get("optional-dependencies", {}), [extra], list(project["dependencies"])
    while wanted:
        for text in extras.get(wanted.pop(), []):
            req = Requirement(text)
            if canonicalize_name(req.name) == ROOT:
                wanted.extend(req.extras)
            else:
                out.append(text)
    return [Requirement(t) for t in out]


def closure(requirements: list[Requirement]) -> dict[str, str]:
    """Every distribution the requirements need, transitively, with the version installed here."""
    found: dict[str, str] = {}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo = [(r.name, tuple(r.extras)) for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]
    while todo:
        dist_name, wanted = todo.pop()
        key = (canonicalize_name(dist_name), tuple(sorted(wanted)))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(dist_name)
        except md.PackageNotFoundError:  # a requirement whose marker excludes this platform, or absent
            continue
        found[key[0]] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (*wanted, "")):
                todo.append((req.name, tuple(req.extras)))
    return found


def main() -> int:
    pins = closure(project_requirements("dev"))
    print("# Exact versions the test suite passes with (scripts/lock.py writes this file; setup.sh uses it).")
    for name in sorted(pins):
        version = pins[name].split("+")[0]  # a local build label (torch's +cpu) is the index's business
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
