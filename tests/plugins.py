"""Install a plugin the way pip does, for the entry-point table only: a ``*.dist-info`` folder with its
``entry_points.txt`` on a folder that is then put on ``sys.path``."""

from __future__ import annotations

from pathlib import Path


def write_plugin(root: Path, package: str, entries: dict[str, str], module: str = "", source: str = "") -> Path:
    """Write distribution ``package`` registering ``entries`` (``KIND.PREFIX`` -> ``module:Class``) into ``root``,
    with ``module``.py holding ``source`` when given. Returns ``root`` (put it on sys.path)."""
    info = root / f"{package.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[lessonforge.backends]\n{lines}")
    if module:
        (root / f"{module}.py").write_text(source)
    return root
