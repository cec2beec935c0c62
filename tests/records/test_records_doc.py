"""docs/records.md documents every record field, and the code points at it (not at a missing design file)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from codeloop.records import Pair, Problem, Result, Sample

ROOT = Path(__file__).resolve().parents[2]


def test_every_record_field_is_documented():
    doc = (ROOT / "docs" / "records.md").read_text()
    for cls in (Problem, Sample, Result, Pair):
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in doc, f"{cls.__name__}.{f.name} is not in docs/records.md"
    for shape in ("messages", "text", "instruction", "solution", "generations.json", "save_to_disk", ".parquet",
                  "format: trl"):
        assert shape in doc, shape


def test_no_reference_to_a_design_file_that_is_not_in_the_repo():
    readme = (ROOT / "README.md").read_text()
    assert "docs/records.md" in readme
    for path in [*(ROOT / "src").rglob("*.py"), ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for name in re.findall(r"\b([A-Z][A-Z_]+\.md)\b", path.read_text()):
            assert (ROOT / name).exists() or (ROOT / "docs" / name).exists(), f"{path}: {name} is not in the repo"
