"""The project stands on its own: docs, code and help cite the design as
docs/DESIGN.md (whose sections exist), never a file outside the repository or
an internal issue number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyscheduler.tools.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "pyscheduler").rglob("*.py"),
     *(ROOT / "pyscheduler").rglob("*.pyi"), *(ROOT / "examples").glob("*.py"),
     *(ROOT / "examples").glob("*.toml"), *(ROOT / "asv_benchmarks" / "benchmarks").glob("*.py")]  # fmt: skip
)
SECTIONS = {int(n) for n in re.findall(r"^## (\d+)\.", (ROOT / "docs" / "DESIGN.md").read_text(), re.M)}


def _help_texts() -> str:
    parser = build_parser()
    texts = [parser.format_help()]
    for action in parser._subparsers._group_actions:  # the sub-commands
        texts += [sub.format_help() for sub in action.choices.values()]
    return "\n".join(texts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\bissues? \d", text), "cites an internal issue number"
    assert "shared/" not in text
    for match in re.finditer(r"DESIGN\b(\.md)?", text):
        assert match.group(1), f"'DESIGN' without '.md' at {match.start()}"
    for section in re.findall(r"DESIGN\.md §(\d+)", text):
        assert int(section) in SECTIONS, f"docs/DESIGN.md has no section {section}"


def test_help_points_to_the_design_in_the_project():
    text = _help_texts()
    assert "DESIGN §" not in text and "shared/" not in text
    assert "docs/DESIGN.md" in text


def test_the_design_has_every_section():
    assert SECTIONS == set(range(1, 10))
