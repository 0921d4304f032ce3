from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lessonforge.agent.project import Manifest, Project, slugify
from lessonforge.agent.state import AssetRef, LessonRequest
from lessonforge.tools.base import ConfigError


@pytest.mark.parametrize(
    ("text", "slug"),
    [("Photosynthesis", "photosynthesis"), ("../../etc/passwd", "etc-passwd"), ("Ça va? Über!", "ca-va-uber"),
     ("光合作用", "lesson"), ("", "lesson")],
)
def test_slugify_is_path_safe(text, slug):
    assert slugify(text) == slug


def test_manifest_refs_cannot_leave_the_project(tmp_path):
    p = Project(tmp_path / "p")
    p.prepare()
    with pytest.raises(ConfigError, match="outside"):
        p.resolve(AssetRef(path="../../secret", sha256="0"))


def test_unwritable_out_dir_is_clear(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        Project(f).prepare()
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(ConfigError, match="cannot write"):
            Project(ro / "lesson").prepare()


def test_hand_broken_manifest_names_the_field(tmp_path):
    p = Project(tmp_path)
    p.save(Manifest(request=LessonRequest(topic="x")))
    data = json.loads(p.manifest_path.read_text())
    data["request"]["minutes"] = "lots"
    p.manifest_path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="request.minutes"):
        p.load()
    p.manifest_path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        p.load()


def test_second_run_on_same_folder_is_refused(tmp_path):
    p = Project(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import sys,time; sys.path.insert(0, {os.getcwd()!r}); from lessonforge.agent.project import Project\n"
         f"with Project({str(tmp_path)!r}).lock():\n    print('locked', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"pid {holder.pid}"):
            with p.lock():
                pass
    finally:
        holder.kill()
        holder.wait()
    with p.lock():  # free again once the other run is gone
        pass


def test_a_run_sweeps_what_a_killed_run_left_half_written(tmp_path):
    project = Project(tmp_path / "lesson")
    assets = project.root / ".lessonforge" / "assets" / "ab"
    (assets / ".captions-x1.tmp").mkdir(parents=True)
    (assets / ".captions-x1.tmp" / "caption-0.png").write_bytes(b"png")
    (assets / ".seg.mp4.tmp123").write_bytes(b"half")
    (assets / "seg.mp4").write_bytes(b"done")
    with project.lock():
        pass
    assert sorted(p.name for p in assets.iterdir()) == ["seg.mp4"]  # finished files stay
