"""The cluster codec's bounds and the sync's small parts, without Redis.

Properties: the nesting pre-scan measures exactly what ``json.loads`` would
build (brackets inside strings and escapes included); bounded decoding
round-trips every document within the limits and refuses every one past
them with ``MalformedEntry``; a config version is exactly 1 to 15 digits.
Then the writer queue's coalescing and bound, and the retry backoff.
"""

from __future__ import annotations

import json
import threading

import pytest
from helpers import beat
from hypothesis import given
from hypothesis import strategies as st

from pyscheduler import NodeStatus
from pyscheduler.cluster import codec
from pyscheduler.cluster.backoff import Backoff
from pyscheduler.cluster.changes import Beat, ChangeQueue, Registered
from pyscheduler.cluster.counters import Counters
from pyscheduler.cluster.ownership import Ownership

tricky_text = st.text(alphabet=st.sampled_from('[]{}"\\ab\u00e9\x1f'), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=40,
)


def depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def nest(value, levels: int):
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


@given(json_values, st.integers(0, 30))
def test_the_prescan_measures_the_nesting_exactly(value, extra):
    value = nest(value, extra)
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
        got = codec.json_depth(text, codec.MAX_JSON_DEPTH)
        assert got == min(depth(value), codec.MAX_JSON_DEPTH + 1)


@given(json_values, st.integers(0, 30))
def test_bounded_decoding_round_trips_within_the_limits_and_refuses_past_them(value, extra):
    value = nest(value, extra)
    text = json.dumps(value)
    if depth(value) <= codec.MAX_JSON_DEPTH:
        assert codec.loads_bounded(text.encode(), "doc", codec.MAX_INFO_BYTES) == value
        with pytest.raises(codec.MalformedEntry, match="bytes long"):
            codec.loads_bounded(text.encode(), "doc", len(text.encode()) - 1)
    else:
        with pytest.raises(codec.MalformedEntry, match="nests deeper"):
            codec.loads_bounded(text, "doc", codec.MAX_INFO_BYTES)


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000, "[" * 50 + "}" * 50, '{"a": [' * 20 + "1" + "]}" * 20, "]]][[[",
])
def test_deep_or_unbalanced_json_is_refused_before_json_loads(text):
    with pytest.raises(codec.MalformedEntry):
        codec.loads_bounded(text, "doc", codec.MAX_INFO_BYTES)


@given(st.integers(1, 10**15 - 1))
def test_every_version_of_1_to_15_digits_decodes(version):
    assert codec.decode_version(str(version).encode()) == version


@given(st.binary(max_size=20))
def test_a_version_is_exactly_1_to_15_digits_without_a_leading_zero(raw):
    valid = raw.isdigit() and 1 <= len(raw) <= 15 and not raw.startswith(b"0")
    if valid:
        assert codec.decode_version(raw) == int(raw)
    else:
        with pytest.raises(codec.MalformedEntry):
            codec.decode_version(raw)


def test_short_fields_past_their_limit_are_refused():
    big = b"r" * (codec.MAX_FIELD_BYTES + 1)
    for decode in (codec.decode_owner, codec.decode_status, codec.decode_flags, codec.decode_load):
        with pytest.raises(codec.MalformedEntry):
            decode(big)


def test_the_queue_coalesces_load_only_beats_until_the_writer_takes_them():
    counters = Counters()
    queue = ChangeQueue(10, counters)
    queue.beat("n1", beat(cpu=1.0), NodeStatus.READY, 1.0)
    queue.beat("n1", beat(cpu=2.0), NodeStatus.READY, 2.0)  # folded into the queued one
    assert len(queue) == 1
    (item,) = queue.take(5)
    assert isinstance(item, Beat)
    hb, _, at = queue.claim(item)
    assert hb.cpu_usage == 2.0 and at == 2.0
    queue.beat("n1", beat(cpu=3.0), NodeStatus.READY, 3.0)  # the window closed: queued anew
    assert len(queue) == 1
    queue.cut("n1")
    queue.beat("n1", beat(cpu=4.0), NodeStatus.READY, 4.0)
    assert [i.heartbeat.cpu_usage for i in queue.take(5)] == [3.0, 4.0]


def test_a_full_queue_sets_the_overflow_flag_instead_of_blocking():
    counters = Counters()
    queue = ChangeQueue(2, counters)
    for i in range(4):
        queue.submit(Registered(f"n{i}", None, float(i)))  # type: ignore[arg-type]
    assert len(queue) == 2 and queue.overflow and counters.snapshot()["queue_overflows"] == 2
    assert queue.wake.is_set()


def test_ownership_tracks_claims_disconnections_and_drops():
    owned = Ownership()
    owned.claim("n1")
    assert "n1" in owned and owned.alive("n1", 60.0)
    owned.disconnected("n1")
    assert not owned.alive("n1", 60.0)
    owned.claim("n1")  # registering again reconnects it
    assert owned.alive("n1", 60.0)
    assert owned.drop("n1") and not owned.drop("n1") and owned.ids() == []


def test_backoff_doubles_up_to_its_ceiling_and_starts_again_after_a_success():
    stop = threading.Event()
    stop.set()  # pauses return at once
    backoff = Backoff(0.05, 2.0)
    seen = []
    for _ in range(8):
        seen.append(backoff.delay)
        backoff.pause(stop)
    assert seen == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    backoff.reset()
    assert backoff.delay == 0.05
    immediate = Backoff(0.0, 1.0)  # the writer's pacing between lost config compare-and-sets
    seen = []
    for _ in range(9):
        seen.append(immediate.delay)
        immediate.pause(stop)
    assert seen == [0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0]
