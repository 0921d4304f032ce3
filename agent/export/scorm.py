"""A SCORM 1.2 package: the lesson page (which reports to the LMS), its files and imsmanifest.xml, zipped.

One SCO whose page finds the LMS's API object, reports the score of the questions
(cmi.core.score.raw, 0-100) and the lesson status (passed or failed against the mastery score, or
completed when the lesson has no questions and the video was watched to the end).
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

from lessonforge.agent.export.common import lesson_title
from lessonforge.agent.export.page import MASTERY, page_files
from lessonforge.agent.project import Manifest, Project, slugify
from lessonforge.tools.cache import atomic_path

CP = "http://www.imsproject.org/xsd/imscp_rootv1p1p2"
ADLCP = "http://www.adlnet.org/xsd/adlcp_rootv1p2"
PACKAGE = "lesson-scorm12.zip"


def manifest_xml(manifest: Manifest, files: list[str]) -> bytes:
    """imsmanifest.xml for one SCO (SCORM 1.2 content packaging: organizations, item, resource, files)."""
    ET.register_namespace("", CP)
    ET.register_namespace("adlcp", ADLCP)
    ident = f"lessonforge-{slugify(lesson_title(manifest), fallback='lesson')}"
    root = ET.Element(f"{{{CP}}}manifest", {"identifier": ident, "version": "1.0"})
    meta = ET.SubElement(root, f"{{{CP}}}metadata")
    ET.SubElement(meta, f"{{{CP}}}schema").text = "ADL SCORM"
    ET.SubElement(meta, f"{{{CP}}}schemaversion").text = "1.2"
    orgs = ET.SubElement(root, f"{{{CP}}}organizations", {"default": "org-1"})
    org = ET.SubElement(orgs, f"{{{CP}}}organization", {"identifier": "org-1"})
    ET.SubElement(org, f"{{{CP}}}title").text = lesson_title(manifest)
    item = ET.SubElement(org, f"{{{CP}}}item", {"identifier": "item-1", "identifierref": "resource-1",
                                                 "isvisible": "true"})
    ET.SubElement(item, f"{{{CP}}}title").text = lesson_title(manifest)
    if manifest.quiz is not None and manifest.quiz.questions:
        ET.SubElement(item, f"{{{ADLCP}}}masteryscore").text = str(MASTERY)
    resources = ET.SubElement(root, f"{{{CP}}}resources")
    res = ET.SubElement(resources, f"{{{CP}}}resource", {"identifier": "resource-1", "type": "webcontent",
                                                          f"{{{ADLCP}}}scormtype": "sco", "href": "index.html"})
    for name in files:
        ET.SubElement(res, f"{{{CP}}}file", {"href": name})
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_package(project: Project, manifest: Manifest, out: Path) -> Path:
    """DIR/export/lesson-scorm12.zip: upload it to the LMS (Moodle, Canvas, Blackboard...) as a SCORM package."""
    final = out / PACKAGE
    with tempfile.TemporaryDirectory(dir=out, prefix=".scorm-", suffix=".tmp") as scratch:
        files = page_files(project, manifest, Path(scratch), scorm=True)
        with atomic_path(final) as tmp, zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr("imsmanifest.xml", manifest_xml(manifest, files), zipfile.ZIP_DEFLATED)
            for name in files:  # the video is already compressed: stored as it is
                method = zipfile.ZIP_STORED if name.endswith((".mp4", ".png")) else zipfile.ZIP_DEFLATED
                zf.write(Path(scratch) / name, name, compress_type=method)
    return final
