"""The largest-node asv benchmark runs in-process the way asv calls it, and the
node it registers is the largest the limits allow (one more code is refused)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "asv_benchmarks"))

from benchmarks import limits as bench  # noqa: E402

sys.path.remove(str(ROOT / "asv_benchmarks"))

from pyscheduler import Heartbeat, JobRequest, LimitExceededError, NodeInfo  # noqa: E402
from pyscheduler.domain import limits  # noqa: E402


def test_the_benchmark_node_sits_at_the_limits():
    info = NodeInfo.from_dict(bench.largest_node_message())
    caps = info.language_capabilities
    assert len(caps.all_languages()) == limits.MAX_NODE_LANGUAGES
    assert len(caps.asr) == len(caps.tts) == limits.MAX_LANGUAGES_PER_CAPABILITY
    assert len(caps.nmt_pairs) == limits.MAX_NMT_PAIRS
    assert len(info.labels) == limits.MAX_LABELS
    message = bench.largest_node_message()
    message["language_capabilities"]["asr"].append("one-more")
    with pytest.raises(LimitExceededError):
        NodeInfo.from_dict(message)


@pytest.mark.parametrize("case", bench.CASES)
@pytest.mark.parametrize("path", [pytest.param("fast", marks=pytest.mark.hotpath), "legacy"])
def test_every_benchmark_runs_and_leaves_a_consistent_registry(path, case):
    b = bench.LargestNode()
    for name in ("time_parse_and_register", "time_register_and_first_select", "track_snapshot_bytes"):
        b.setup(path, case)
        result = getattr(b, name)(path, case)
        assert b.registry.verify_consistency() == []
        if name == "track_snapshot_bytes":
            assert result > 0
    b.registry.update_node_heartbeat("largest", Heartbeat(10.0, 10.0))
    sel = b.registry.select_node(JobRequest("a001", "t002"))
    assert sel.path == path
    # its codes are in no pool unless generated: only then is it a candidate
    assert sel.node_id == ("largest" if case == "generated" else None)
