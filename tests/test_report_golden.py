"""summary.md of a fixed fixture store, byte for byte: any change to the report's text shows up here."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from report_fixtures import golden_store

from jobs.report import write_report

GOLDEN = Path(__file__).resolve().parent / "golden" / "summary.md"
REGENERATE = "REGIMEN_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_report_golden.py"


def test_summary_md_matches_the_golden_file(tmp_path):
    results = tmp_path / "results"
    written = Path(write_report(golden_store(results), tmp_path / "report")["summary.md"]).read_text()
    text = written.replace(str(results), "<results>")  # the only part that depends on where the test runs
    if os.environ.get("REGIMEN_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
        pytest.skip(f"regenerated {GOLDEN}: review `git diff tests/golden/`, then rerun without the variable")
    expected = GOLDEN.read_text() if GOLDEN.exists() else ""
    diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(GOLDEN), "this run", n=1))
    assert text == expected, (
        f"summary.md differs from {GOLDEN}. If the change is intended, regenerate it with\n"
        f"    {REGENERATE}\nand review `git diff tests/golden/` before committing.\n{diff[:6000]}"
    )
