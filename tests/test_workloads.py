"""The standard workloads of docs/DESIGN.md §8: reproducible from a seed, of the stated size
and shape, and a job stream with the stated mix."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from pyscheduler import NodeStatus, ServiceState, ServiceType
from pyscheduler.domain.languages import AUTO
from pyscheduler.domain.model import CORE_TYPES
from pyscheduler.tools.workloads import (
    EXCLUDE_SHARE,
    WORKLOADS,
    JobStream,
    Workload,
    build_registry,
    make_jobs,
    make_workload,
)


@pytest.fixture(scope="module")
def small() -> Workload:
    return make_workload("small", 1)


@pytest.fixture(scope="module")
def w10k() -> Workload:
    return make_workload("10k", 1)


@pytest.fixture(scope="module")
def registry10k(w10k):
    return build_registry(w10k, clock=lambda: 0.0)


def _broken(info) -> bool:
    return any(
        s.type & CORE_TYPES and s.state is not ServiceState.RUNNING for s in info.installed_services
    )


# -- reproducibility ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["small", "10k"])
def test_same_seed_gives_the_same_workload(name):
    assert make_workload(name, 5) == make_workload(name, 5)


@pytest.mark.parametrize("name", ["small", "10k"])
def test_different_seeds_give_different_workloads(name):
    a, b = make_workload(name, 1), make_workload(name, 2)
    assert a != b
    assert a.initial_heartbeats != b.initial_heartbeats
    assert [n.language_capabilities for n in a.nodes] != [n.language_capabilities for n in b.nodes]


def test_same_seed_gives_the_same_job_stream(w10k):
    assert make_jobs(w10k, 2000, 9) == make_jobs(w10k, 2000, 9)
    # The first jobs of a stream do not depend on how many are taken.
    assert make_jobs(w10k, 300, 9)[:100] == make_jobs(w10k, 100, 9)
    assert JobStream(w10k, 9).take(50) == make_jobs(w10k, 50, 9)


def test_job_seed_defaults_to_the_workload_seed(small):
    assert make_jobs(small, 100) == make_jobs(small, 100, small.seed)


def test_different_seeds_give_different_job_streams(w10k):
    assert make_jobs(w10k, 500, 1) != make_jobs(w10k, 500, 2)


def test_unknown_workload_names_the_known_ones():
    with pytest.raises(ValueError) as info:
        make_workload("1m")
    message = str(info.value)
    assert "'1m'" in message
    for name in WORKLOADS:
        assert name in message


@pytest.mark.parametrize("seed", [-1, 1.5, "1", True])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="seed"):
        make_workload("small", seed)


def test_bad_job_count_is_rejected(small):
    with pytest.raises(ValueError, match="count"):
        make_jobs(small, -1)


# -- small --------------------------------------------------------------------------------------


def test_small_has_the_stated_shape(small):
    cfg = small.phase3
    assert len(small.nodes) == 100
    assert len(small.initial_heartbeats) == 100
    assert len(small.languages) == 6
    assert len(cfg.pools) == 10
    assert not cfg.auto_generate_language_pools
    rules = Counter(p.nmt_rule for p in cfg.pools)
    for rule in ("any_to_any", "any_to_en", "en_to_any", "specific_pairs"):
        assert rules[rule] >= 1, rule
    assert any(p.blocked_pairs for p in cfg.pools)
    assert any(p.required_services for p in cfg.pools)
    pool_ids = {p.pool_id for p in cfg.pools}
    assert cfg.tenant_overrides and set(cfg.tenant_overrides.values()) <= pool_ids
    assert set(cfg.tenant_overrides) <= set(small.tenants)
    for pool in cfg.pools:
        assert set(pool.languages) <= set(small.languages)


def test_small_registry_has_every_healthy_node_ready_and_every_pool_populated(small):
    registry = build_registry(small, clock=lambda: 0.0)
    assert registry.verify_consistency() == []
    assert len(registry.pools()) == 10
    for info in small.nodes:
        status = registry.get_node(info.node_id).status
        assert status is (NodeStatus.REGISTERING if _broken(info) else NodeStatus.READY), (
            info.node_id
        )
    for pool in registry.pools():
        assert registry.pool_members(pool.pool_id), pool.name


def test_build_registry_without_heartbeats_leaves_nodes_registering(small):
    registry = build_registry(small, clock=lambda: 0.0, heartbeats=False)
    assert {registry.get_node(n.node_id).status for n in small.nodes} == {NodeStatus.REGISTERING}


# -- 10k ------------------------------------------------------------------------------------------


def test_10k_has_the_stated_shape(w10k):
    assert len(w10k.nodes) == 10_000
    assert len(w10k.initial_heartbeats) == 10_000
    assert len(w10k.languages) == 40
    assert w10k.phase3.auto_generate_language_pools
    assert w10k.phase3.auto_pool.max_pools >= len(w10k.language_sets)
    assert len(set(w10k.node_ids)) == 10_000
    sizes = Counter(len(n.language_capabilities.language_set()) for n in w10k.nodes)
    assert set(sizes) <= {2, 3, 4} and len(sizes) == 3
    distinct = Counter(n.language_capabilities.language_set() for n in w10k.nodes)
    assert 450 <= len(distinct) <= 550
    assert min(distinct.values()) >= w10k.phase3.auto_pool.min_nodes_per_pool
    # skewed: the most common set has many times the nodes of the median one
    counts = sorted(distinct.values())
    assert counts[-1] >= 20 * counts[len(counts) // 2]
    assert sum(w10k.set_node_counts) == 10_000


def test_10k_registry_generates_about_500_pools_each_with_enough_nodes(w10k, registry10k):
    pools = registry10k.pools()
    assert 450 <= len(pools) <= 550
    assert len(pools) == w10k.expected_pools
    minimum = w10k.phase3.auto_pool.min_nodes_per_pool
    for pool in pools:
        assert len(registry10k.pool_members(pool.pool_id)) >= minimum, pool.name
        assert pool.name == "-".join(pool.languages)


def test_10k_registry_is_consistent_and_mostly_ready(w10k, registry10k):
    assert registry10k.verify_consistency() == []
    gauges = registry10k.metrics()["gauges"]
    assert gauges["nodes"] == 10_000
    assert gauges["generated_pools"] == len(registry10k.pools())
    healthy = sum(1 for n in w10k.nodes if not _broken(n))
    assert gauges["nodes_ready"] == healthy
    assert healthy >= 0.95 * 10_000


def test_generating_once_or_per_registration_gives_the_same_pools(w10k, registry10k):
    incremental = build_registry(w10k, clock=lambda: 0.0, generate_once=False)
    assert incremental.verify_consistency() == []

    def by_name(registry):
        return {p.name: frozenset(registry.pool_members(p.pool_id)) for p in registry.pools()}

    assert by_name(incremental) == by_name(registry10k)


def test_10k_nodes_are_realistic(w10k):
    n = len(w10k.nodes)
    no_gpu_or_private = sum(1 for i in w10k.nodes if not i.has_gpu or not i.accept_public_jobs)
    assert 0.015 * n <= no_gpu_or_private <= 0.05 * n
    assert 0.015 * n <= sum(map(_broken, w10k.nodes)) <= 0.05 * n
    pairs_only = [i for i in w10k.nodes if i.language_capabilities.nmt_pairs]
    assert pairs_only and all(not i.language_capabilities.nmt_languages for i in pairs_only)
    assert 0.03 * n <= len(pairs_only) <= 0.15 * n
    for info, beat in zip(w10k.nodes, w10k.initial_heartbeats):
        assert 2 <= info.max_concurrent_jobs <= 8
        assert 0 <= beat.current_jobs <= info.max_concurrent_jobs
        assert (beat.gpu_usage is None) == (not info.has_gpu)
    hot = sum(
        1
        for b in w10k.initial_heartbeats
        if max(b.cpu_usage, b.memory_usage, b.gpu_usage or 0.0) >= w10k.phase3.resource_threshold
    )
    assert 0.005 * n <= hot <= 0.06 * n
    assert len({b.current_jobs for b in w10k.initial_heartbeats}) == 9  # 0..8
    assert any(ServiceType.SEMANTIC in {s.type for s in i.installed_services} for i in w10k.nodes)


# -- the job stream -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jobs10k(w10k):
    return make_jobs(w10k, 20_000, 1)


def test_five_percent_of_jobs_exclude_one_known_node(w10k, jobs10k):
    excluding = [j for j in jobs10k if j.exclude_node_ids]
    assert abs(len(excluding) / len(jobs10k) - EXCLUDE_SHARE) <= 0.01
    ids = set(w10k.node_ids)
    assert all(len(j.exclude_node_ids) == 1 and j.exclude_node_ids <= ids for j in excluding)


def test_excluded_nodes_mostly_serve_the_pair(w10k, jobs10k):
    langs = {n.node_id: n.language_capabilities.language_set() for n in w10k.nodes}
    excluding = [j for j in jobs10k if j.exclude_node_ids and j.src_lang != AUTO]
    serving = [
        j for j in excluding if {j.src_lang, j.tgt_lang} <= langs[next(iter(j.exclude_node_ids))]
    ]
    assert len(serving) >= 0.9 * len(excluding)


def test_job_pairs_are_skewed_and_mostly_servable(w10k, jobs10k):
    servable = set(w10k.pairs)
    pairs = Counter((j.src_lang, j.tgt_lang) for j in jobs10k)
    servable_share = sum(c for p, c in pairs.items() if p in servable) / len(jobs10k)
    assert 0.9 <= servable_share < 1.0
    auto = sum(1 for j in jobs10k if j.src_lang == AUTO) / len(jobs10k)
    assert 0.005 <= auto <= 0.08
    unservable = sum(c for p, c in pairs.items() if p in set(w10k.unservable_pairs)) / len(jobs10k)
    assert 0.002 <= unservable <= 0.06
    ranked = [c for _, c in pairs.most_common()]
    assert ranked[0] >= 5 * ranked[len(ranked) // 2]  # Zipf-like head
    assert pairs.most_common(1)[0][0] in w10k.pairs[:4]


def test_sessions_are_bounded_and_bound_to_one_pair(w10k, jobs10k):
    by_session: dict[str, set] = {}
    for j in jobs10k:
        by_session.setdefault(j.session_id, set()).add(
            (j.src_lang, j.tgt_lang, j.tenant_id, j.required_types)
        )
    assert len(by_session) <= w10k.sessions
    assert all(len(v) == 1 for v in by_session.values())
    assert len(by_session) >= w10k.sessions // 2  # 20k jobs over 5k sessions touch most of them


def test_jobs_carry_a_few_tenants_and_service_mixes(w10k, jobs10k):
    tenants = Counter(j.tenant_id for j in jobs10k)
    assert tenants[None] >= 0.6 * len(jobs10k)
    assert set(tenants) - {None} and set(tenants) - {None} <= set(w10k.tenants)
    types = Counter(j.required_types for j in jobs10k)
    assert types.most_common(1)[0][0] == CORE_TYPES
    assert ServiceType.NMT in types


def test_workload_is_frozen(small):
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.name = "other"  # type: ignore[misc]
