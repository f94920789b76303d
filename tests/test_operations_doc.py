"""docs/OPERATIONS.md stays true: it documents every key ``metrics()`` returns,
and its JSON formatter runs and prints the structured fields."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
from helpers import FakeClock, make_registry, node_info, pool

from pyscheduler import JobRequest, MigrationFlags

DOC = (Path(__file__).resolve().parents[1] / "docs" / "OPERATIONS.md").read_text()


def _documented(key: str) -> bool:
    key = re.sub(r"^failed\..*", "failed.<reason>", key)
    key = re.sub(r"^slow_lock_wait\..*", "slow_lock_wait.<lock>.<site>", key)
    return f"`{key}`" in DOC


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(MigrationFlags(shadow_compare=True), id="legacy"),
        pytest.param(MigrationFlags.all_on(), id="fast", marks=pytest.mark.hotpath),
    ],
)
def test_every_metrics_key_is_documented(flags):
    clock = FakeClock(100.0)
    reg = make_registry(["n1"], pools=[pool(1, ["en", "zh"])], flags=flags, clock=clock,
                        reservation_ttl_s=30)  # fmt: skip
    reg.register_node_with_policy(node_info("n2"))
    for k in range(70):  # enough for a sampled fast-path timing
        selection = reg.select_node(JobRequest("zh", "en", session_id=f"s{k}"))
        if selection.ok:
            (reg.commit if k % 2 else reg.release)(selection)
    reg.select_node(JobRequest("zh", "en"))
    clock.advance(31)
    reg.sweep()
    reg.set_phase3_config(reg.phase3_config)
    metrics = reg.metrics()
    keys = [*metrics["counters"], *metrics["histograms"], *metrics["gauges"]]
    assert any(k.startswith("failed.") for k in keys) and "heartbeats" in keys
    undocumented = [k for k in keys if not _documented(k)]
    assert undocumented == []
    for hist in metrics["histograms"].values():
        assert set(hist) == {"count", "sum", "max", "p50", "p99", "buckets"}


def test_the_json_formatter_of_the_doc_prints_the_fields():
    code = DOC.split("```python\nimport json, logging\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec("import json, logging\n" + code, namespace)  # the doc's snippet, as printed
    handler = namespace["handler"]
    stream = io.StringIO()
    handler.setStream(stream)
    logger = logging.getLogger("pyscheduler")
    try:
        clock = FakeClock(100.0)
        reg = make_registry(["gpu-a"], clock=clock)
        clock.advance(46)
        reg.sweep()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    swept = [r for r in records if r.get("event") == "node.status" and r["cause"] == "sweep"]
    assert swept == [{
        "time": swept[0]["time"], "level": "INFO", "logger": "pyscheduler.registry",
        "message": "node gpu-a: ready -> offline (sweep)", "event": "node.status",
        "node_id": "gpu-a", "from_state": "ready", "to_state": "offline", "cause": "sweep",
    }]  # fmt: skip
