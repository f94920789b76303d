"""The compiled fast path returns exactly what the reference scheduler returns.

Every property runs the same scenario through a legacy registry and an all-on
registry, call for call, reservations included (docs/DESIGN.md §5).
"""

from __future__ import annotations

import threading

import pytest
from helpers import LANGS, build_registry, phase3_configs, scenarios
from hypothesis import given
from hypothesis import strategies as st

from pyscheduler import JobRequest, MigrationFlags, Reason
from pyscheduler.domain.languages import AUTO
from pyscheduler.domain.model import CHECK_REASONS, CORE_TYPES, ServiceType
from pyscheduler.runtime.lang_index import PoolLanguageIndex
from pyscheduler.state.pools import PoolLookup, eligible_pools

pytestmark = pytest.mark.hotpath

FAST = MigrationFlags.all_on()


def _pair(scenario, flags=FAST):
    legacy, legacy_clock = build_registry(scenario)
    fast, fast_clock = build_registry(scenario, flags=flags)
    return legacy, fast


def _same(a, b) -> None:
    assert a.decision() == b.decision(), f"\nlegacy: {a.explain()}\nfast:   {b.explain()}"
    assert a.attempts == b.attempts
    assert a.path == "legacy" and b.path == "fast"


def test_kernel_reason_codes_follow_reason_order():
    from pyscheduler import _compat

    codes = _compat.hotpath.REASON_CODES
    assert [codes[r.value] for r in CHECK_REASONS] == list(range(len(CHECK_REASONS)))
    assert codes[Reason.NO_ELIGIBLE_POOL.value] == 12 and codes[Reason.NO_NODES.value] == 13
    assert len(CHECK_REASONS) == _compat.hotpath.N_REASONS


@given(scenarios(max_nodes=12, max_jobs=12), st.randoms(use_true_random=False))
def test_fast_equals_legacy_call_for_call(scenario, rnd):
    legacy, fast = _pair(scenario)
    for job in scenario.jobs:
        a, b = legacy.select_node(job), fast.select_node(job)
        _same(a, b)
        if a.ok:  # end the reservation the same way on both, or keep it
            action = rnd.choice(("commit", "release", "keep"))
            if action != "keep":
                assert getattr(legacy, action)(a) and getattr(fast, action)(b)
    for reg in (legacy, fast):
        assert reg.verify_consistency() == []
    for node_id in scenario.node_ids:
        la, fa = legacy.get_node(node_id), fast.get_node(node_id)
        assert (la.running_jobs, la.reserved_jobs) == (fa.running_jobs, fa.reserved_jobs)
    # failures are counted by top reason alike (the fast path reads only the first record)
    # (the per-path counters, selections_fast / selections_legacy, say which path served)
    failed = [
        {
            k: v
            for k, v in reg.metrics()["counters"].items()
            if k.startswith(("failed.", "selections")) and not k.endswith(("_fast", "_legacy"))
        }
        for reg in (legacy, fast)
    ]
    assert failed[0] == failed[1]


@given(scenarios(max_nodes=12, max_jobs=16), st.randoms(use_true_random=False))
def test_fast_equals_legacy_with_session_runtime(scenario, rnd):
    """Sessions bind pools in the session domain, shared by both paths: with
    session runtime on, both must still agree call for call."""
    legacy, _ = build_registry(scenario, flags=MigrationFlags(use_session_runtime=True))
    fast, _ = build_registry(scenario, flags=FAST)
    for job in scenario.jobs:
        a, b = legacy.select_node(job), fast.select_node(job)
        _same(a, b)
        if a.ok and rnd.random() < 0.5:
            assert legacy.release(a) and fast.release(b)
    for sid in {j.session_id for j in scenario.jobs if j.session_id}:
        la, fa = legacy.sessions.get(sid), fast.sessions.get(sid)
        assert (la.pair, la.bound_pool, la.last_node) == (fa.pair, fa.bound_pool, fa.last_node)


@given(scenarios(max_nodes=12, max_jobs=16))
def test_batch_equals_one_by_one(scenario):
    one_by_one, _ = build_registry(scenario, flags=MigrationFlags(use_session_runtime=True))
    batch, _ = build_registry(scenario, flags=FAST)
    expected = [one_by_one.select_node(job) for job in scenario.jobs]
    got = batch.select_nodes_batch(scenario.jobs)
    assert [s.path for s in got] == ["fast"] * len(got)
    for a, b in zip(expected, got):
        assert a.decision() == b.decision()
        assert a.attempts == b.attempts
    assert batch.verify_consistency() == []


@given(scenarios(max_nodes=10, max_jobs=6), st.data())
def test_select_from_pool_equals_legacy(scenario, data):
    legacy, fast = _pair(scenario)
    pools = [p.pool_id for p in legacy.pools()]
    if not pools:
        return
    for job in scenario.jobs:
        pool_id = data.draw(st.sampled_from(pools))
        _same(legacy.select_node_from_pool(pool_id, job), fast.select_node_from_pool(pool_id, job))


def _types() -> st.SearchStrategy[ServiceType]:
    return st.sampled_from([CORE_TYPES, ServiceType.ASR, ServiceType.NMT | ServiceType.TTS,
                            CORE_TYPES | ServiceType.SEMANTIC, ServiceType.TONE])


@given(phase3_configs(max_pools=8), _types())
def test_index_lookup_equals_scan(cfg, types):
    index = PoolLanguageIndex(cfg.pools, cfg)
    codes = list(LANGS) + ["xx-unknown"]
    for src in codes + [AUTO]:
        for tgt in codes:
            scan = [p.pool_id for p in eligible_pools(cfg.pools, src, tgt, types, cfg)]
            assert index.find_pools_for_lang_pair(src, tgt, types) == scan, (src, tgt)


@given(phase3_configs(max_pools=8), st.sets(st.sampled_from(list(LANGS) + ["xx-unknown"])))
def test_index_lang_set_equals_covered_scan(cfg, langs):
    index = PoolLanguageIndex(cfg.pools, cfg)
    expected = [p.pool_id for p in PoolLookup(cfg.pools).covered(frozenset(langs))]
    assert index.find_pools_for_lang_set(langs) == expected


@given(scenarios(max_nodes=10, max_jobs=4))
def test_eligible_pools_through_the_index_equal_the_scan(scenario):
    legacy, fast = _pair(scenario)
    for job in scenario.jobs:
        args = (job.src_lang, job.tgt_lang, job.required_types)
        assert fast.select_eligible_pools(*args) == legacy.select_eligible_pools(*args)


@given(scenarios(min_nodes=3, max_nodes=10, max_jobs=4))
def test_shadow_compare_finds_no_difference(scenario):
    legacy, _ = _pair(scenario)
    shadow = MigrationFlags(use_runtime_snapshot=True, use_lang_index=True, shadow_compare=True)
    reg, _clock = build_registry(scenario, flags=shadow)
    for job in scenario.jobs:
        _same(legacy.select_node(job), reg.select_node(job))
    counters = reg.metrics()["counters"]
    assert counters.get("shadow_compared") == len(scenario.jobs)
    assert counters.get("shadow_mismatch", 0) == 0


def test_concurrent_fast_selections_never_overbook():
    """Threads racing for the same few places: the CAS never lets a node exceed
    its capacity, and every place is accounted for by a live token."""
    from helpers import FakeClock, beat, node_info, phase3, pool

    from pyscheduler import NodeRegistry

    clock = FakeClock()
    reg = NodeRegistry(phase3(pool(1, ["en", "zh"])), flags=FAST, clock=clock)
    for i in range(4):
        reg.register_node_with_policy(node_info(f"n{i}", ["en", "zh"], max_concurrent_jobs=3))
        reg.update_node_heartbeat(f"n{i}", beat())
    job = JobRequest("en", "zh", session_id="s")
    results: list = []
    lock = threading.Lock()

    def worker() -> None:
        got = [reg.select_node(job) for _ in range(50)]
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    placed = [s for s in results if s.ok]
    assert len(placed) == 12  # 4 nodes x 3 places, no more, no fewer
    for i in range(4):
        view = reg.get_node(f"n{i}")
        assert view.reserved_jobs == 3 == sum(1 for s in placed if s.node_id == f"n{i}")
    assert reg.verify_consistency() == []
    for s in placed:
        assert reg.release(s)
    assert all(reg.get_node(f"n{i}").reserved_jobs == 0 for i in range(4))
