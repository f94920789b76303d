"""The README's dispatcher snippet runs as printed, and the commands it lists exist."""

from __future__ import annotations

import re
from pathlib import Path

from pyscheduler.tools.cli import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_dispatcher_snippet_runs_and_places_the_job():
    (snippet,) = re.findall(r"```python\n(.*?)```", README, re.S)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    registry, selection = namespace["registry"], namespace["selection"]
    assert selection.ok and selection.node_id == "gpu-1"
    view = registry.get_node("gpu-1")
    assert (view.running_jobs, view.reserved_jobs) == (1, 0)  # committed


def test_every_command_the_readme_names_exists():
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    named = set(re.findall(r"pyscheduler (simulate|explain|validate-config|bench)\b", README))
    assert named and named <= commands
    for engine in ("fast", "legacy", "shadow", "shadow-fast"):
        assert engine in README
