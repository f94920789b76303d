"""Concurrent use of one registry: dispatch threads, heartbeat threads and a config
changer run a bounded number of iterations each (no sleeps, no timing asserts);
afterwards every structure must agree.
"""

from __future__ import annotations

import random
import sys
import threading

import pytest
from helpers import (
    CORE_SERVICES,
    FakeClock,
    beat,
    caps,
    make_registry,
    node_info,
    phase3,
    pool,
    unhealthy_beat,
)

from pyscheduler import (
    AutoPoolConfig,
    JobRequest,
    MigrationFlags,
    Selection,
    UnknownNodeError,
)

LANGS = ["en", "zh", "ja", "de"]
NODE_IDS = [f"n{i:02d}" for i in range(24)]
ITERATIONS = 300


def _langs(i: int) -> list[str]:
    return [LANGS[i % 4], LANGS[(i + 1) % 4]] + ([LANGS[(i + 2) % 4]] if i % 3 == 0 else [])


CONFIGS = [
    phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja", "zh"]), pool(3, ["de", "en"])),
    phase3(pool(1, ["en", "zh"]), enable_session_affinity=True, random_sample_size=3),
    phase3(
        pool(1, ["en", "zh"]),
        pool(3, ["de", "en"]),
        auto_generate_language_pools=True,
        auto_pool=AutoPoolConfig(require_semantic=False),
    ),
    phase3(mode="single_level"),
    phase3(pool(2, ["en", "ja", "zh"]), membership="most_specific", strict_pool_eligibility=True),
]


@pytest.fixture
def fast_switching():
    """Switch threads often so the interleavings vary."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(targets) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(len(targets))

    def wrap(fn):
        def run():
            try:
                start.wait()
                fn()
            except BaseException as exc:
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_dispatch_heartbeats_and_config_changes_in_parallel(fast_switching):
    clock = FakeClock()
    reg = make_registry(
        [node_info(n, _langs(i), max_concurrent_jobs=3 + i % 4) for i, n in enumerate(NODE_IDS)],
        cfg=CONFIGS[0],
        clock=clock,
        flags=MigrationFlags.legacy(),  # the legacy path under churn
    )
    ever_known = set(NODE_IDS)
    selections: list[list[Selection]] = []
    outstanding: list[list[int]] = []

    def dispatcher(seed: int):
        rng = random.Random(seed)
        mine: list[Selection] = []
        held: list[int] = []
        selections.append(mine)
        outstanding.append(held)
        for i in range(ITERATIONS):
            src, tgt = rng.sample(LANGS, 2)
            job = JobRequest(
                rng.choice([src, "auto"]),
                tgt,
                session_id=f"s{rng.randrange(50)}",
                tenant_id=rng.choice([None, "t1"]),
                exclude_node_ids=frozenset(rng.sample(NODE_IDS, rng.randrange(2))),
            )
            if i % 10 == 0:
                batch = reg.select_nodes_batch([job, job])
            else:
                batch = [reg.select_node(job)]
            for sel in batch:
                mine.append(sel)
                if sel.reservation is None:
                    continue
                action = rng.randrange(3)
                if action == 0:
                    reg.commit(sel)
                elif action == 1:
                    reg.release(sel)
                else:
                    held.append(sel.reservation)

    def heartbeats(seed: int):
        rng = random.Random(seed)
        for i in range(ITERATIONS):
            node_id = rng.choice(NODE_IDS)
            k = rng.randrange(20)
            if k < 14:
                hb = beat(cpu=rng.choice([5.0, 50.0, 90.0]), jobs=rng.randrange(4))
            elif k < 16:
                hb = beat(language_capabilities=caps(rng.sample(LANGS, rng.randrange(2, 4))))
            elif k < 17:
                hb = unhealthy_beat()
            else:
                hb = beat(installed_services=CORE_SERVICES)
            try:
                reg.update_node_heartbeat(node_id, hb)
            except UnknownNodeError:
                # disconnected or removed by the churn thread: come back
                reg.register_node_with_policy(node_info(node_id, _langs(i)), policy="replace")

    def churn():
        rng = random.Random(99)
        for i in range(ITERATIONS // 3):
            node_id = rng.choice(NODE_IDS)
            op = rng.randrange(5)
            try:
                if op == 0:
                    reg.disconnect_node(node_id)
                elif op == 1:
                    reg.remove_node(node_id)
                elif op == 2:
                    reg.mark_node_draining(node_id)
                elif op == 3:
                    reg.register_node_with_policy(node_info(node_id, _langs(i)), policy="replace")
                else:
                    clock.advance(rng.choice([1.0, 20.0]))
                    reg.sweep()
            except UnknownNodeError:
                pass

    def config_changer():
        for i in range(ITERATIONS // 5):
            reg.set_phase3_config(CONFIGS[i % len(CONFIGS)])
            assert reg.verify_consistency() == []

    run_threads(
        [lambda s=s: dispatcher(s) for s in range(3)]
        + [lambda s=s: heartbeats(100 + s) for s in range(2)]
        + [churn, config_changer]
    )

    assert reg.verify_consistency() == []
    all_selections = [s for mine in selections for s in mine]
    assert len(all_selections) == 3 * (ITERATIONS + ITERATIONS // 10)
    assert any(s.ok for s in all_selections)
    for sel in all_selections:
        if sel.ok:
            assert sel.node_id in ever_known
            assert sel.reservation is not None
        assert sum(sel.breakdown.values()) == sel.breakdown.total - sel.breakdown.available
    # reserved counts equal the live reservations, which are at most those still held
    gauges = reg.metrics()["gauges"]
    reserved = sum(reg.get_node(n).reserved_jobs for n in reg.node_ids())
    assert reserved == gauges["reservations"] <= sum(len(h) for h in outstanding)
    tokens = [t for held in outstanding for t in held]
    assert len(set(tokens)) == len(tokens)
    ended = sum(reg.release(t) for t in tokens)
    assert ended == reserved
    assert reg.metrics()["gauges"]["reservations"] == 0
    assert all(reg.get_node(n).reserved_jobs == 0 for n in reg.node_ids())
    assert reg.verify_consistency() == []


def test_concurrent_selects_never_overbook_a_node(fast_switching):
    """Capacity is checked and reserved under one lock: no more reservations than slots."""
    reg = make_registry(
        [node_info(n, max_concurrent_jobs=2) for n in NODE_IDS[:5]], pools=[pool(1, ["en", "zh"])]
    )
    results: list[Selection] = []

    def dispatcher():
        for _ in range(20):
            results.append(reg.select_node(JobRequest("en", "zh")))

    run_threads([dispatcher for _ in range(4)])
    ok = [s for s in results if s.ok]
    assert len(ok) == 10  # 5 nodes x 2 slots
    assert sorted(s.node_id for s in ok) == sorted(NODE_IDS[:5] * 2)
    assert len({s.reservation for s in ok}) == 10
    assert all(s.breakdown.top_reason == "capacity_exceeded" for s in results if not s.ok)
    assert reg.verify_consistency() == []


def test_concurrent_registrations_of_one_id(fast_switching):
    """Many threads register the same ids: each id ends registered once, consistently."""
    reg = make_registry(pools=[pool(1, ["en", "zh"])])
    outcomes: list[str] = []

    def registrar(seed: int):
        rng = random.Random(seed)
        for node_id in rng.sample(NODE_IDS, len(NODE_IDS)):
            try:
                reg.register_node_with_policy(node_info(node_id))
                outcomes.append(node_id)
            except Exception as exc:
                outcomes.append(type(exc).__name__)

    run_threads([lambda s=s: registrar(s) for s in range(4)])
    assert sorted(o for o in outcomes if o in NODE_IDS) == NODE_IDS
    assert outcomes.count("DuplicateNodeError") == 3 * len(NODE_IDS)
    assert reg.pool_members(1) == NODE_IDS
    assert reg.verify_consistency() == []
