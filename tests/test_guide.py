"""docs/GUIDE.md's example, ``examples/guide_dispatcher.py``, runs as it is and
leaves the registry where the guide says."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from pyscheduler import NodeStatus

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "guide_dispatcher.py"


def _load():
    spec = importlib.util.spec_from_file_location("guide_dispatcher", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_runs_and_tells_each_step():
    proc = subprocess.run([sys.executable, "-W", "error", str(EXAMPLE)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for line in (
        "gpu-a registered, heartbeat -> READY",
        "pool 1 members: ['gpu-a', 'gpu-b']",
        "reports 1 running, 0 reserved",
        "which refused: released, 0 reserved",
        "call-5: no node selected; 0/2 nodes available in pool 1 (en-zh): 2 capacity_exceeded",
        "sweep marked ['gpu-a']: gpu-a is OFFLINE",
        "with gpu-b draining: no node selected",
        "gpu-b removed; pool 1 members: ['gpu-a']",
    ):
        assert line in out, line


def test_the_steps_leave_the_registry_as_the_guide_says():
    lines: list[str] = []
    registry = _load().run(say=lines.append)
    assert len(lines) == 11
    assert registry.node_ids() == ["gpu-a"]
    assert registry.get_node("gpu-a").status is NodeStatus.OFFLINE
    assert registry.metrics()["gauges"]["reservations"] == 0  # every reservation ended
    counters = registry.metrics()["counters"]
    assert counters["commits"] == 3 and counters["releases"] == 2
    assert registry.verify_consistency() == []


def test_the_guide_covers_every_step_and_the_glossary():
    guide = (ROOT / "docs" / "GUIDE.md").read_text()
    for call in ("register_node_with_policy", "update_node_heartbeat", "current_jobs", "select_node",
                 "commit", "release", "sweep", "mark_node_draining", "disconnect_node", "remove_node"):
        assert f"{call}" in guide, call
    for term in ("`Phase3Config`", "`preferred_pool`", "`bound_lang_pair`", "`NodeRegistry(clock=...)`",
                 "`release(selection_or_token)`", "`NodeInfo(max_concurrent_jobs=4)`",
                 "`register_node_with_policy(info, policy)`"):
        assert f"| {term}" in guide, term
    assert "examples/guide_dispatcher.py" in guide
