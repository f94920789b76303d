"""Selection semantics of docs/DESIGN.md §5 on the legacy path: node checks and their
order, the pick, pool eligibility and order, sampling, breakdowns,
reservations and batches.
"""

from __future__ import annotations

import pytest
from helpers import (
    CORE,
    CORE_SERVICES,
    FakeClock,
    Scenario,
    beat,
    build_registry,
    caps,
    fleet_of,
    make_registry,
    node_info,
    phase3,
    pool,
    services,
    stopped,
    svc,
)

from pyscheduler import (
    CoreServicesConfig,
    JobRequest,
    LanguageCapabilities,
    MigrationFlags,
    NodeInfo,
    NodeRegistry,
    NodeStatus,
    Phase3Config,
    Reason,
    ServiceState,
    ServiceType,
)
from pyscheduler.domain.hashing import fnv1a64, pool_hash, tiebreak_hash
from pyscheduler.domain.model import CHECK_REASONS
from pyscheduler.selection import legacy

R = Reason
TIMEOUT = 45.0


# -- node checks, in order ---------------------------------------------------------------

LATER = {r: set(CHECK_REASONS[i + 1 :]) for i, r in enumerate(CHECK_REASONS)}
NOT_READY_VARIANTS = ("registering", "degraded", "draining")


def fault_case(
    faults: set[Reason], not_ready: str = "draining"
) -> tuple[NodeRegistry, JobRequest, FakeClock]:
    """A single-level registry with one node ``n1`` that fails exactly the checks in
    ``faults``, and the job (en→zh, ASR|NMT|TTS) to check it against.

    OFFLINE implies a stale heartbeat; OFFLINE and STATUS_NOT_READY exclude each other.
    """
    assert not {R.OFFLINE, R.STATUS_NOT_READY} <= faults
    clock = FakeClock()
    reg = NodeRegistry(Phase3Config(warmup_s=10), clock=clock)
    svcs = services("ASR", "NMT") if R.MODEL_NOT_AVAILABLE in faults else CORE_SERVICES
    info = NodeInfo(
        "n1",
        has_gpu=R.GPU_UNAVAILABLE not in faults,
        accept_public_jobs=R.NOT_IN_PUBLIC_POOL not in faults,
        max_concurrent_jobs=2,
        installed_services=svcs,
        language_capabilities=LanguageCapabilities(
            asr=("zh",) if R.ASR_LANG_UNSUPPORTED in faults else ("en", "zh"),
            tts=("en",) if R.TTS_LANG_UNSUPPORTED in faults else ("en", "zh"),
            nmt_languages=("de", "en") if R.LANG_PAIR_UNSUPPORTED in faults else ("en", "zh"),
        ),
    )
    load = {
        "cpu": 90.0 if R.RESOURCE_THRESHOLD_EXCEEDED in faults else 10.0,
        "jobs": 2 if R.CAPACITY_EXCEEDED in faults else 0,
    }
    job = JobRequest(
        "en", "zh", session_id="s", exclude_node_ids={"n1"} if R.EXCLUDED in faults else ()
    )
    reg.register_node_with_policy(info)
    if R.OFFLINE in faults:
        reg.update_node_heartbeat("n1", beat(**load))
        clock.advance(TIMEOUT + 1)
        assert reg.sweep() == ["n1"]
    elif R.STATUS_NOT_READY in faults:
        needs_beat = bool(faults & {R.CAPACITY_EXCEEDED, R.RESOURCE_THRESHOLD_EXCEEDED})
        # an unhealthy beat stops services: only allowed when the model fault is wanted too
        assert not needs_beat or R.MODEL_NOT_AVAILABLE in faults
        unhealthy = beat(installed_services=stopped(svcs), **load)
        if not_ready == "draining":
            reg.update_node_heartbeat("n1", beat(**load))
            reg.mark_node_draining("n1")
        elif not_ready == "registering":
            if needs_beat:
                reg.update_node_heartbeat("n1", unhealthy)
        elif needs_beat:  # degraded through three unhealthy beats
            reg.update_node_heartbeat("n1", beat(**load))
            for _ in range(3):
                reg.update_node_heartbeat("n1", unhealthy)
        else:  # degraded through warm-up expiry
            clock.advance(11)
            assert reg.sweep() == ["n1"]
        assert reg.get_node("n1").status is NodeStatus[not_ready.upper()]
    else:
        assert reg.update_node_heartbeat("n1", beat(**load)) is NodeStatus.READY
    if R.HEARTBEAT_STALE in faults and R.OFFLINE not in faults:
        clock.advance(TIMEOUT + 1)
    return reg, job, clock


def assert_only_reason(
    reg: NodeRegistry, job: JobRequest, clock: FakeClock, reason: Reason
) -> None:
    fleet = fleet_of(reg)
    assert legacy.check_node(fleet.nodes["n1"], job, fleet, clock()) is reason
    sel = reg.select_node(job)
    assert not sel.ok
    assert dict(sel.breakdown) == {reason: 1}
    assert sel.breakdown.total == 1 and sel.breakdown.top_reason is reason


def test_fault_free_node_is_selected():
    reg, job, _ = fault_case(set())
    sel = reg.select_node(job)
    assert sel.node_id == "n1" and sel.pool_id is None and dict(sel.breakdown) == {}


def _cases():
    for reason in CHECK_REASONS:
        variants = NOT_READY_VARIANTS if reason is R.STATUS_NOT_READY else ("draining",)
        for variant in variants:
            suffix = f"-{variant}" if reason is R.STATUS_NOT_READY else ""
            yield pytest.param(reason, variant, id=f"{reason.value}{suffix}")


@pytest.mark.parametrize("reason, variant", list(_cases()))
def test_a_node_failing_exactly_one_check(reason, variant):
    reg, job, clock = fault_case({reason}, variant)
    assert_only_reason(reg, job, clock, reason)


@pytest.mark.parametrize("reason, variant", list(_cases()))
def test_a_node_failing_one_check_and_every_later_one_gets_the_earlier_reason(reason, variant):
    faults = {reason} | LATER[reason]
    if reason in (R.EXCLUDED, R.OFFLINE):
        faults.discard(R.STATUS_NOT_READY)  # a status is either OFFLINE or not ready
    reg, job, clock = fault_case(faults, variant)
    assert_only_reason(reg, job, clock, reason)


def test_capacity_counts_running_plus_reserved():
    reg = make_registry([node_info("n1", max_concurrent_jobs=2)], pools=[pool(1, ["en", "zh"])])
    reg.update_node_heartbeat("n1", beat(jobs=1))
    job = JobRequest("en", "zh")
    first = reg.select_node(job)
    assert first.node_id == "n1"
    second = reg.select_node(job)
    assert not second.ok and dict(second.breakdown) == {R.CAPACITY_EXCEEDED: 1}
    reg.release(first)
    assert reg.select_node(job).node_id == "n1"


@pytest.mark.parametrize(
    "cpu, mem, gpu, threshold, rejected",
    [
        (84.9, 84.9, 84.9, 85.0, False),
        (85.0, 0.0, 0.0, 85.0, True),
        (0.0, 85.0, 0.0, 85.0, True),
        (0.0, 0.0, 85.0, 85.0, True),
        (0.0, 0.0, None, 85.0, False),  # an absent gpu figure is not checked
        (49.0, 49.0, None, 50.0, False),
        (50.0, 0.0, None, 50.0, True),
        (99.9, 99.9, 99.9, 100.0, False),
        (100.0, 0.0, None, 100.0, True),
    ],
)
def test_resource_threshold(cpu, mem, gpu, threshold, rejected):
    reg = make_registry([node_info("n1")], resource_threshold=threshold)
    reg.update_node_heartbeat("n1", beat(cpu=cpu, mem=mem, gpu=gpu))
    sel = reg.select_node(JobRequest("en", "zh"))
    if rejected:
        assert dict(sel.breakdown) == {R.RESOURCE_THRESHOLD_EXCEEDED: 1}
    else:
        assert sel.node_id == "n1"


@pytest.mark.parametrize(
    "core, node_services, job_types, ok",
    [
        (CoreServicesConfig(), CORE_SERVICES, CORE, True),
        (CoreServicesConfig(asr_service_id="asr-alt"), CORE_SERVICES, CORE, False),
        (
            CoreServicesConfig(asr_service_id="asr-alt"),
            CORE_SERVICES + (svc("ASR", "asr-alt"),),
            CORE,
            True,
        ),
        (CoreServicesConfig(asr_service_id="asr-main"), CORE_SERVICES, CORE, True),
        # the configured id only matters for its own type
        (
            CoreServicesConfig(tts_service_id="tts-alt"),
            CORE_SERVICES,
            ServiceType.ASR | ServiceType.NMT,
            True,
        ),
        (CoreServicesConfig(tts_service_id="tts-alt"), CORE_SERVICES, CORE, False),
        # non-core types: any RUNNING service of the type
        (CoreServicesConfig(), CORE_SERVICES, CORE | ServiceType.SEMANTIC, False),
        (
            CoreServicesConfig(),
            CORE_SERVICES + services("SEMANTIC"),
            CORE | ServiceType.SEMANTIC,
            True,
        ),
        (CoreServicesConfig(), services("ASR", "NMT"), CORE, False),
        (CoreServicesConfig(), services("ASR", "NMT"), ServiceType.ASR | ServiceType.NMT, True),
    ],
)
def test_model_not_available_honours_core_service_ids(core, node_services, job_types, ok):
    reg = make_registry([node_info("n1", svcs=node_services)], core=core)
    assert reg.get_node("n1").status is NodeStatus.READY
    sel = reg.select_node(JobRequest("en", "zh", required_types=job_types))
    assert sel.ok is ok
    if not ok:
        assert dict(sel.breakdown) == {R.MODEL_NOT_AVAILABLE: 1}


@pytest.mark.parametrize("state", [ServiceState.STOPPED, ServiceState.ERROR])
def test_a_required_service_that_is_not_running_is_not_available(state):
    reg = make_registry(
        [node_info("n1", svcs=CORE_SERVICES + (svc("ASR", "asr-alt"), svc("TONE")))],
        core=CoreServicesConfig(asr_service_id="asr-alt"),
    )
    job = JobRequest("en", "zh", required_types=CORE | ServiceType.TONE)
    assert reg.select_node(job).ok
    reg.select_node(job)
    # one unhealthy beat leaves the node READY, with the configured ASR not running
    down = tuple(
        s if s.service_id != "asr-alt" else svc("ASR", "asr-alt", state)
        for s in CORE_SERVICES + (svc("ASR", "asr-alt"), svc("TONE"))
    )
    assert reg.update_node_heartbeat("n1", beat(installed_services=down)) is NodeStatus.READY
    assert dict(reg.select_node(job).breakdown) == {R.MODEL_NOT_AVAILABLE: 1}
    # a non-core service that is not running
    tone_down = CORE_SERVICES + (svc("ASR", "asr-alt"), svc("TONE", state=state))
    assert reg.update_node_heartbeat("n1", beat(installed_services=tone_down)) is NodeStatus.READY
    assert dict(reg.select_node(job).breakdown) == {R.MODEL_NOT_AVAILABLE: 1}


@pytest.mark.parametrize(
    "capabilities, job_types, expected",
    [
        (caps(asr=["ja"], tts=["zh"], nmt=["ja", "zh"]), CORE, None),
        (caps(asr=[], tts=["zh"], nmt=["ja", "zh"]), CORE, R.ASR_LANG_UNSUPPORTED),
        (
            caps(asr=["de"], tts=["zh"], nmt=["zh"]),
            CORE,
            R.LANG_PAIR_UNSUPPORTED,
        ),  # zh alone translates nothing
        (caps(asr=["de"], tts=["zh"], nmt=["de", "en"]), CORE, R.LANG_PAIR_UNSUPPORTED),
        (caps(asr=["de"], tts=["zh"], nmt=[], pairs=[("de", "zh")]), CORE, None),
        (caps(asr=["de"], tts=["zh"], nmt=[], pairs=[("zh", "de")]), CORE, R.LANG_PAIR_UNSUPPORTED),
        (caps(asr=["de"], tts=["en"], nmt=["de", "zh"]), CORE, R.TTS_LANG_UNSUPPORTED),
        (caps(asr=[], tts=[], nmt=["de", "zh"]), ServiceType.NMT, None),
        (caps(asr=["en"], tts=[], nmt=[]), ServiceType.ASR, None),
    ],
)
def test_auto_source_needs_any_asr_and_some_nmt_source_to_the_target(
    capabilities, job_types, expected
):
    info = node_info("n1", capabilities=capabilities)
    reg = make_registry([info])
    sel = reg.select_node(JobRequest("auto", "zh", required_types=job_types))
    if expected is None:
        assert sel.node_id == "n1"
    else:
        assert dict(sel.breakdown) == {expected: 1}


@pytest.mark.parametrize(
    "job_types, expected",
    [
        (ServiceType.ASR, None),
        (ServiceType.TTS, R.TTS_LANG_UNSUPPORTED),
        (ServiceType.NMT, R.LANG_PAIR_UNSUPPORTED),
        (ServiceType.ASR | ServiceType.TTS, R.TTS_LANG_UNSUPPORTED),
    ],
)
def test_language_checks_apply_per_required_type(job_types, expected):
    # ASR en only; no translation or synthesis to ja
    reg = make_registry(
        [node_info("n1", capabilities=caps(asr=["en"], tts=["zh"], nmt=["en", "zh"]))]
    )
    sel = reg.select_node(JobRequest("en", "ja", required_types=job_types))
    assert (dict(sel.breakdown) == {expected: 1}) if expected else sel.ok


def test_private_jobs_may_use_private_nodes():
    reg = make_registry([node_info("n1", accept_public_jobs=False)])
    assert dict(reg.select_node(JobRequest("en", "zh")).breakdown) == {R.NOT_IN_PUBLIC_POOL: 1}
    assert reg.select_node(JobRequest("en", "zh", public=False)).node_id == "n1"


# -- the pick ------------------------------------------------------------------------------


def loaded_registry(loads: dict[str, tuple[int, int]], **cfg) -> NodeRegistry:
    """READY nodes ``{id: (running, max)}`` in one pool en-zh."""
    reg = make_registry(
        [node_info(n, max_concurrent_jobs=m) for n, (_, m) in loads.items()],
        pools=[pool(1, ["en", "zh"])],
        **cfg,
    )
    for node_id, (running, _) in loads.items():
        reg.update_node_heartbeat(node_id, beat(jobs=running))
    return reg


@pytest.mark.parametrize("key", ["", "a", "s1", "k2", "x"])
def test_pick_lowest_load_ratio(key):
    reg = loaded_registry({"n1": (2, 4), "n2": (1, 4), "n3": (3, 8)})
    assert reg.select_node(JobRequest("en", "zh", routing_key=key)).node_id == "n2"


@pytest.mark.parametrize("key", ["", "a", "s1", "k2", "x"])
def test_equal_ratios_by_cross_multiplication_then_fewer_jobs(key):
    # 1/3 == 2/6 exactly (floats would not be trusted): fewer jobs wins, whatever the hash
    for ids in (("n1", "n2"), ("n2", "n1")):
        reg = loaded_registry({ids[0]: (2, 6), ids[1]: (1, 3)})
        assert reg.select_node(JobRequest("en", "zh", routing_key=key)).node_id == ids[1]


def test_full_ties_go_to_the_lowest_tiebreak_hash():
    ids = [f"n{i}" for i in range(1, 6)]
    picks = set()
    for key in ["", "a", "s1", "k2"] + [f"session-{i}" for i in range(20)]:
        reg = loaded_registry({n: (1, 4) for n in ids})
        expected = min(ids, key=lambda n: tiebreak_hash(key, n))
        assert reg.select_node(JobRequest("en", "zh", session_id=key or None)).node_id == expected
        picks.add(expected)
    assert len(picks) > 1  # equal nodes are spread across sessions
    # the examples computed by hand from FNV-1a-64 of key + node id
    assert (
        loaded_registry({n: (0, 4) for n in ids}).select_node(JobRequest("en", "zh")).node_id
        == "n1"
    )
    assert (
        loaded_registry({n: (0, 4) for n in ids})
        .select_node(JobRequest("en", "zh", session_id="s1"))
        .node_id
        == "n5"
    )


def test_the_routing_key_wins_over_the_session_id():
    ids = [f"n{i}" for i in range(1, 6)]
    reg = loaded_registry({n: (0, 4) for n in ids})
    sel = reg.select_node(JobRequest("en", "zh", session_id="s1", routing_key="a"))
    assert sel.node_id == min(ids, key=lambda n: tiebreak_hash("a", n)) == "n4"


def test_reservations_spread_load():
    reg = loaded_registry({"n1": (0, 2), "n2": (0, 2)})
    picked = [reg.select_node(JobRequest("en", "zh")).node_id for _ in range(4)]
    assert sorted(picked) == ["n1", "n1", "n2", "n2"]
    assert picked[0] != picked[1]
    assert not reg.select_node(JobRequest("en", "zh")).ok


def test_preferred_node_wins_if_it_survived():
    reg = loaded_registry({"n1": (3, 4), "n2": (0, 4), "n3": (4, 4)})
    assert reg.select_node(JobRequest("en", "zh", preferred_node_id="n1")).node_id == "n1"
    # not a survivor: the usual pick
    assert reg.select_node(JobRequest("en", "zh", preferred_node_id="n3")).node_id == "n2"
    assert (
        reg.select_node(
            JobRequest("en", "zh", preferred_node_id="n1", exclude_node_ids={"n1"})
        ).node_id
        == "n2"
    )
    assert reg.select_node(JobRequest("en", "zh", preferred_node_id="ghost")).node_id == "n2"


# -- pool eligibility and order -------------------------------------------------------------


def test_eligible_pools_smallest_language_set_first_then_id():
    pools = [
        pool(1, ["en", "zh", "ja"]),
        pool(2, ["en", "zh"], name="b"),
        pool(3, ["en", "zh"], name="a"),
        pool(4, ["en", "zh", "ja", "de"]),
        pool(0, ["en", "ja"]),
    ]
    reg = make_registry(pools=pools)
    assert reg.select_eligible_pools("en", "zh") == [2, 3, 1, 4]
    assert reg.select_eligible_pools("ja", "en") == [0, 1, 4]
    assert reg.select_eligible_pools("de", "zh") == [4]
    assert reg.select_eligible_pools("en", "en") == []
    assert reg.select_eligible_pools(" EN ", "zh") == [2, 3, 1, 4]  # normalised


@pytest.mark.parametrize(
    "kw, admitted",
    [
        ({}, {("en", "zh"), ("zh", "en"), ("en", "ja"), ("ja", "en"), ("zh", "ja"), ("ja", "zh")}),
        ({"nmt_rule": "any_to_en"}, {("zh", "en"), ("ja", "en")}),
        ({"nmt_rule": "en_to_any"}, {("en", "zh"), ("en", "ja")}),
        ({"nmt_rule": "specific_pairs", "nmt_pairs": [("zh", "ja"), ("en", "de")]}, {("zh", "ja")}),
        (
            {"blocked_pairs": [("en", "zh"), ("ja", "zh")]},
            {("zh", "en"), ("en", "ja"), ("ja", "en"), ("zh", "ja")},
        ),
        ({"nmt_rule": "any_to_en", "blocked_pairs": [("ja", "en")]}, {("zh", "en")}),
    ],
)
def test_pool_rules(kw, admitted):
    reg = make_registry(pools=[pool(1, ["en", "zh", "ja"], **kw)])
    langs = ["en", "zh", "ja", "de"]
    found = {(s, t) for s in langs for t in langs if reg.select_eligible_pools(s, t) == [1]}
    assert found == admitted
    # auto: admitted when some source is
    for tgt in langs:
        assert (reg.select_eligible_pools("auto", tgt) == [1]) == any(t == tgt for _, t in admitted)


@pytest.mark.parametrize(
    "scope, mode, required, job_types, eligible",
    [
        ("core_only", "contains", ServiceType(0), CORE | ServiceType.SEMANTIC, True),  # wildcard
        ("core_only", "contains", CORE, CORE | ServiceType.SEMANTIC, True),
        ("core_only", "contains", CORE, ServiceType.ASR | ServiceType.NMT, True),
        ("core_only", "contains", ServiceType.ASR | ServiceType.NMT, CORE, False),
        ("core_only", "exact", CORE, ServiceType.ASR | ServiceType.NMT, False),
        ("core_only", "exact", CORE, CORE | ServiceType.SEMANTIC, True),
        ("all_required", "contains", CORE, CORE | ServiceType.SEMANTIC, False),
        (
            "all_required",
            "contains",
            CORE | ServiceType.SEMANTIC,
            CORE | ServiceType.SEMANTIC,
            True,
        ),
        ("all_required", "exact", CORE | ServiceType.SEMANTIC, CORE, False),
        ("all_required", "exact", CORE, CORE, True),
    ],
)
def test_pool_required_services(scope, mode, required, job_types, eligible):
    reg = make_registry(
        pools=[pool(1, ["en", "zh"], required_services=required)],
        pool_match_scope=scope,
        pool_match_mode=mode,
    )
    assert reg.select_eligible_pools("en", "zh", job_types) == ([1] if eligible else [])


def ring_registry(**cfg) -> NodeRegistry:
    """Pools eligible for en→zh in the order 2 (en-zh), 1 (en-ja-zh), 3 (en-ko-zh, no
    members), 4 (de-en-ja-zh); pool 9 (de-ja) is not. One node per language set:
    a2 (en-zh) is in 2; a1 (en-ja-zh) in 1, 2; a4 (de-en-ja-zh) in 1, 2, 4, 9."""
    pools = [
        pool(1, ["en", "zh", "ja"]),
        pool(2, ["en", "zh"]),
        pool(3, ["en", "zh", "ko"]),
        pool(4, ["en", "zh", "ja", "de"]),
        pool(9, ["de", "ja"]),
    ]
    nodes = [
        node_info("a2", ["en", "zh"], semantic=["en", "zh"]),
        node_info("a1", ["en", "zh", "ja"], semantic=["en", "zh", "ja"]),
        node_info("a4", ["en", "zh", "ja", "de"]),
    ]
    reg = make_registry(nodes, pools=pools, **cfg)
    assert reg.select_eligible_pools("en", "zh") == RING
    assert [reg.pool_members(p) for p in (1, 2, 3, 4, 9)] == [
        ["a1", "a4"],
        ["a1", "a2", "a4"],
        [],
        ["a4"],
        ["a4"],
    ]
    return reg


RING = [2, 1, 3, 4]
ALL = frozenset({"a1", "a2", "a4"})


def tried(sel) -> list[int]:
    return [a.pool_id for a in sel.attempts]


def test_first_eligible_pool_is_preferred():
    reg = ring_registry()
    sel = reg.select_node(JobRequest("en", "zh"))
    assert (sel.preferred_pool, sel.pool_id, sel.fallback_used, tried(sel)) == (2, 2, False, [2])


def test_tenant_override_is_preferred_only_if_eligible():
    reg = ring_registry(tenant_overrides={"acme": 1, "other": 9}, enable_session_affinity=True)
    sel = reg.select_node(JobRequest("en", "zh", tenant_id="acme", session_id="s1"))
    assert (sel.preferred_pool, sel.pool_id) == (1, 1)
    # not eligible: ignored, the next rule applies (affinity here)
    sel = reg.select_node(JobRequest("en", "zh", tenant_id="other", session_id="s1"))
    assert sel.preferred_pool == RING[pool_hash("s1", 0) % 4]
    sel = reg.select_node(JobRequest("en", "zh", tenant_id="nobody", session_id="s1"))
    assert sel.preferred_pool == RING[pool_hash("s1", 0) % 4]


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**63 - 1])
def test_session_affinity_hashes_the_routing_key_with_the_seed(seed):
    # without session runtime: a session's later jobs are not bound to its first pool
    reg = ring_registry(enable_session_affinity=True, hash_seed=seed, flags=MigrationFlags.legacy())
    seen = set()
    for i in range(24):
        key = f"session-{i}"
        sel = reg.select_node(JobRequest("en", "zh", session_id=key, exclude_node_ids=ALL))
        start = pool_hash(key, seed) % 4
        assert sel.preferred_pool == RING[start]
        assert tried(sel) == [RING[(start + k) % 4] for k in range(4)]  # the whole ring, all fail
        seen.add(sel.preferred_pool)
        # routing_key wins over session_id
        sel = reg.select_node(
            JobRequest("en", "zh", session_id="zzz", routing_key=key, exclude_node_ids=ALL)
        )
        assert sel.preferred_pool == RING[start]
    assert len(seen) > 1
    # neither: the key is ""
    sel = reg.select_node(JobRequest("en", "zh", exclude_node_ids=ALL))
    assert sel.preferred_pool == RING[pool_hash("", seed) % 4]


def test_without_affinity_the_key_does_not_move_the_preferred_pool():
    reg = ring_registry(hash_seed=99)
    for i in range(10):
        assert reg.select_node(JobRequest("en", "zh", session_id=f"s{i}")).preferred_pool == 2


def test_fallback_walks_the_ring_from_the_preferred_pool():
    reg = ring_registry(tenant_overrides={"acme": 3})
    # ring from 3: 3 (empty) → 4 (a4) → 2 (a1, a2, a4) → 1
    sel = reg.select_node(JobRequest("en", "zh", tenant_id="acme"))
    assert (sel.node_id, sel.pool_id, sel.preferred_pool, sel.fallback_used) == ("a4", 4, 3, True)
    assert tried(sel) == [3, 4]
    assert sel.breakdown == sel.attempts[-1].breakdown  # the picked pool's
    sel = reg.select_node(JobRequest("en", "zh", tenant_id="acme", exclude_node_ids={"a4", "a2"}))
    assert (sel.node_id, sel.pool_id) == ("a1", 2) and tried(sel) == [3, 4, 2]
    assert dict(sel.breakdown) == {R.EXCLUDED: 2} and sel.breakdown.total == 3
    sel = reg.select_node(JobRequest("en", "zh", tenant_id="acme", exclude_node_ids=ALL))
    assert not sel.ok and tried(sel) == [3, 4, 2, 1] and sel.fallback_used


def test_no_fallback_tries_only_the_preferred_pool():
    reg = ring_registry(tenant_overrides={"acme": 3}, fallback_scan_all_pools=False)
    sel = reg.select_node(JobRequest("en", "zh", tenant_id="acme"))
    assert not sel.ok and tried(sel) == [3] and sel.fallback_used is False
    assert sel.breakdown.top_reason is R.NO_NODES


def test_strict_eligibility_fails_with_no_eligible_pool():
    reg = ring_registry(strict_pool_eligibility=True)
    sel = reg.select_node(JobRequest("en", "fr"))
    assert not sel.ok and sel.attempts == () and sel.reservation is None
    assert sel.breakdown.total == 0 and dict(sel.breakdown) == {}
    assert sel.breakdown.top_reason is R.NO_ELIGIBLE_POOL
    assert (sel.pool_id, sel.preferred_pool, sel.fallback_used) == (None, None, False)
    assert "no_eligible_pool" in sel.explain()
    assert reg.metrics()["counters"]["failed.no_eligible_pool"] == 1


def test_non_strict_uses_all_pools_by_id():
    reg = ring_registry()
    sel = reg.select_node(JobRequest("en", "fr", required_types=ServiceType.ASR))
    assert sel.node_id in {"a1", "a4"} and sel.pool_id == 1 and sel.fallback_used is True
    assert sel.preferred_pool == 1 and tried(sel) == [1]
    sel = reg.select_node(JobRequest("fr", "zh"))
    assert not sel.ok and tried(sel) == [1, 2, 3, 4, 9] and sel.fallback_used is True
    assert sel.breakdown == sel.attempts[0].breakdown  # a failure reports the first pool


@pytest.mark.parametrize(
    "cfg",
    [
        {"enabled": False},
        {"mode": "single_level"},
        {"pools": []},
        {"pools": [], "auto_generate_language_pools": True},  # nothing generated yet
    ],
    ids=["disabled", "single_level", "no-pools", "nothing-generated"],
)
def test_single_level_uses_one_candidate_set_of_all_nodes(cfg):
    pools = cfg.pop("pools", [pool(1, ["en", "zh"])])
    nodes = [
        node_info("b", ["en", "zh"]),
        node_info("a", ["de"]),
        node_info("c", ["en", "zh"]),
        node_info("d"),
    ]
    reg = make_registry(nodes, pools=pools, **cfg)
    reg.disconnect_node("d")
    sel = reg.select_node(JobRequest("en", "zh", exclude_node_ids={"b"}))
    assert (sel.node_id, sel.pool_id, sel.preferred_pool, sel.fallback_used) == (
        "c",
        None,
        None,
        False,
    )
    assert tried(sel) == [None] and sel.attempts[0].pool_name == "all nodes"
    assert sel.breakdown.total == 3  # a, b, c: the disconnected one is out
    assert dict(sel.breakdown) == {R.EXCLUDED: 1, R.ASR_LANG_UNSUPPORTED: 1}


def test_sample_window_starts_at_the_key_hash_and_wraps():
    ids = [f"n{i}" for i in range(6)]
    reg = make_registry(
        [node_info(n) for n in ids], pools=[pool(1, ["en", "zh"])], random_sample_size=3
    )
    for key in ["", "a", "s1", "k2", "x", "y"]:
        start = fnv1a64(key.encode()) % 6
        window = {ids[(start + k) % 6] for k in range(3)}
        examined = set()
        for node_id in ids:
            sel = reg.select_node(
                JobRequest("en", "zh", routing_key=key, exclude_node_ids={node_id})
            )
            assert sel.breakdown.total == 3
            if sel.breakdown.get(R.EXCLUDED):
                examined.add(node_id)
            assert sel.node_id in window
            reg.release(sel)
        assert examined == window
    # a pool no larger than the sample is scanned whole
    reg.set_phase3_config(phase3(pool(1, ["en", "zh"]), random_sample_size=6))
    assert reg.select_node(JobRequest("en", "zh", routing_key="a")).breakdown.total == 6


def test_sample_window_function():
    members = ["a", "b", "c", "d", "e"]
    assert legacy.sample_window(members, "k", 0) == members
    assert legacy.sample_window(members, "k", 5) == members
    start = fnv1a64(b"k") % 5
    assert list(legacy.sample_window(members, "k", 4)) == [
        members[(start + i) % 5] for i in range(4)
    ]


# -- breakdown -----------------------------------------------------------------------------


def test_breakdown_counts_total_and_top_reason_with_ties():
    clock = FakeClock()
    nodes = [node_info(f"n{i}", max_concurrent_jobs=1) for i in range(7)]
    reg = make_registry(nodes, pools=[pool(1, ["en", "zh"])], clock=clock)
    reg.mark_node_draining("n2")
    reg.mark_node_draining("n3")
    reg.update_node_heartbeat("n4", beat(jobs=1))
    sel = reg.select_node(JobRequest("en", "zh", exclude_node_ids={"n0", "n1"}))
    assert sel.ok and sel.node_id in {"n5", "n6"}
    b = sel.breakdown
    assert dict(b) == {R.EXCLUDED: 2, R.STATUS_NOT_READY: 2, R.CAPACITY_EXCEEDED: 1}
    assert b.total == 7 and b.available == 2 and b.rejected == 5
    assert b.top_reason is R.EXCLUDED  # a tie goes to the earlier check
    assert b[R.EXCLUDED] == 2 and b["status_not_ready"] == 2 and R.OFFLINE not in b
    with pytest.raises(KeyError):
        b[R.OFFLINE]
    assert "node " + sel.node_id + " selected" in sel.explain()
    assert (
        "2/7 nodes available in pool 1 (en-zh): 2 excluded, 2 status_not_ready, 1 capacity_exceeded"
        in sel.explain()
    )


def test_a_breakdown_without_rejections_has_no_top_reason():
    reg = make_registry([node_info("n1")], pools=[pool(1, ["en", "zh"])])
    sel = reg.select_node(JobRequest("en", "zh"))
    assert sel.ok and dict(sel.breakdown) == {} and sel.breakdown.total == 1
    assert sel.breakdown.top_reason is None


def test_an_empty_pool_reports_no_nodes():
    reg = make_registry(pools=[pool(1, ["en", "zh"])])
    sel = reg.select_node(JobRequest("en", "zh"))
    assert not sel.ok and sel.breakdown.total == 0 and sel.breakdown.top_reason is R.NO_NODES
    assert tried(sel) == [1]
    assert sel.explain() == "no node selected; 0/0 nodes available in pool 1 (en-zh): no_nodes"


def test_failed_selection_reports_the_first_pool_and_every_attempt():
    reg = ring_registry(tenant_overrides={"acme": 1})
    reg.mark_node_draining("a1")
    sel = reg.select_node(JobRequest("en", "zh", tenant_id="acme", exclude_node_ids={"a2", "a4"}))
    assert not sel.ok and tried(sel) == [1, 3, 4, 2] and sel.fallback_used
    assert [dict(a.breakdown) for a in sel.attempts] == [
        {R.EXCLUDED: 1, R.STATUS_NOT_READY: 1},
        {},
        {R.EXCLUDED: 1},
        {R.EXCLUDED: 2, R.STATUS_NOT_READY: 1},
    ]
    assert [a.top_reason for a in sel.attempts] == [R.EXCLUDED, R.NO_NODES, R.EXCLUDED, R.EXCLUDED]
    assert [a.candidates for a in sel.attempts] == [2, 0, 1, 3]
    assert sel.breakdown == sel.attempts[0].breakdown
    assert sel.explain() == (
        "no node selected; 0/2 nodes available in pool 1 (en-ja-zh): 1 excluded, 1 status_not_ready; "
        "0/0 nodes available in pool 3 (en-ko-zh): no_nodes; "
        "0/1 nodes available in pool 4 (de-en-ja-zh): 1 excluded; "
        "0/3 nodes available in pool 2 (en-zh): 2 excluded, 1 status_not_ready"
    )
    assert reg.metrics()["counters"]["failed.excluded"] == 1


# -- reservations ---------------------------------------------------------------------------


def test_select_reserves_and_commit_turns_it_into_a_running_job():
    reg = loaded_registry({"n1": (1, 3)})
    sel = reg.select_node(JobRequest("en", "zh"))
    assert isinstance(sel.reservation, int)
    view = reg.get_node("n1")
    assert (view.running_jobs, view.reserved_jobs) == (1, 1)
    assert reg.commit(sel) is True
    view = reg.get_node("n1")
    assert (view.running_jobs, view.reserved_jobs) == (2, 0)
    assert reg.commit(sel) is False and reg.release(sel) is False
    # the node's next heartbeat reports its own count; reservations are left alone
    other = reg.select_node(JobRequest("en", "zh"))
    reg.update_node_heartbeat("n1", beat(jobs=0))
    view = reg.get_node("n1")
    assert (view.running_jobs, view.reserved_jobs) == (0, 1)
    assert reg.commit(other.reservation) is True  # a bare token works too
    assert reg.get_node("n1").running_jobs == 1


def test_release_ends_a_reservation_once():
    reg = loaded_registry({"n1": (0, 1)})
    sel = reg.select_node(JobRequest("en", "zh"))
    assert dict(reg.select_node(JobRequest("en", "zh")).breakdown) == {R.CAPACITY_EXCEEDED: 1}
    assert reg.release(sel) is True
    assert reg.get_node("n1").reserved_jobs == 0
    assert reg.release(sel) is False and reg.commit(sel) is False
    assert reg.get_node("n1").running_jobs == 0
    assert reg.select_node(JobRequest("en", "zh")).ok
    counters = reg.metrics()["counters"]
    assert counters["releases"] == 1 and counters["commits"] == 0  # every counter present from the start


def test_reservation_tokens_are_unique():
    reg = loaded_registry({"n1": (0, 100), "n2": (0, 100)})
    tokens = [reg.select_node(JobRequest("en", "zh")).reservation for _ in range(50)]
    assert len(set(tokens)) == 50
    assert reg.metrics()["gauges"]["reservations"] == 50
    assert reg.get_node("n1").reserved_jobs + reg.get_node("n2").reserved_jobs == 50


@pytest.mark.parametrize("how", ["remove", "disconnect", "replace"])
def test_a_reservation_never_outlives_its_node_incarnation(how):
    """A token taken before a node was removed, disconnected or replaced ends
    nothing on the node registered afterwards (same id or a new one)."""
    reg = loaded_registry({"n1": (0, 4)})
    old = reg.select_node(JobRequest("en", "zh"))
    assert old.node_id == "n1"
    if how == "remove":
        reg.remove_node("n1")
        reg.register_node_with_policy(node_info("n2"))  # may take the freed place
        reg.register_node_with_policy(node_info("n1"))
    elif how == "disconnect":
        reg.disconnect_node("n1")
        reg.register_node_with_policy(node_info("n1"))
    else:
        reg.register_node_with_policy(node_info("n1"), policy="replace")
    for node_id in reg.node_ids():
        reg.update_node_heartbeat(node_id, beat(jobs=1))
    new = reg.select_node(JobRequest("en", "zh", preferred_node_id="n1"))
    assert new.node_id == "n1"
    views = {n: reg.get_node(n) for n in reg.node_ids()}
    assert reg.commit(old) is False and reg.release(old) is False
    assert {n: reg.get_node(n) for n in reg.node_ids()} == views
    assert reg.get_node("n1").reserved_jobs == 1 and reg.get_node("n1").running_jobs == 1
    assert reg.commit(new) is True
    assert reg.get_node("n1").reserved_jobs == 0 and reg.get_node("n1").running_jobs == 2
    assert reg.verify_consistency() == []


def test_expired_reservations_are_counted_once_and_end_nothing():
    clock = FakeClock()
    reg = make_registry(
        [node_info("n1", max_concurrent_jobs=4)], pools=[pool(1, ["en", "zh"])], clock=clock
    )
    first = reg.select_node(JobRequest("en", "zh"))
    clock.advance(20)
    second = reg.select_node(JobRequest("en", "zh"))
    clock.advance(15)  # first is 35 s old, second 15 s
    reg.sweep()
    assert reg.get_node("n1").reserved_jobs == 1
    assert reg.commit(first) is False
    assert reg.commit(second) is True
    reg.sweep(now=clock() + 1000)
    view = reg.get_node("n1")
    assert (view.reserved_jobs, view.running_jobs) == (0, 1)
    assert reg.metrics()["counters"]["reservations_expired"] == 1
    assert reg.verify_consistency() == []


def _batch_scenario() -> Scenario:
    from helpers import NodeSpec

    nodes = tuple(
        NodeSpec(
            node_info(f"n{i}", ["en", "zh", "ja"][: 2 + i % 2], max_concurrent_jobs=1 + i % 3),
            kind,
            jobs=i % 2,
        )
        for i, kind in enumerate(
            ["ready", "ready", "draining", "ready", "stale", "ready", "offline", "ready"]
        )
    )
    jobs = tuple(
        JobRequest(src, tgt, session_id=f"s{i}", exclude_node_ids={"n3"} if i % 4 == 0 else ())
        for i, (src, tgt) in enumerate(
            [("en", "zh"), ("zh", "en"), ("ja", "en"), ("en", "ja"), ("auto", "zh")] * 4
        )
    )
    cfg = phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja", "zh"]), enable_session_affinity=True)
    return Scenario(cfg, CoreServicesConfig(), nodes, jobs)


def test_batch_equals_the_same_jobs_one_by_one():
    scenario = _batch_scenario()
    batch_reg, _ = build_registry(scenario)
    single_reg, _ = build_registry(scenario)
    batch = batch_reg.select_nodes_batch(scenario.jobs)
    single = [single_reg.select_node(job) for job in scenario.jobs]
    assert [s.decision() for s in batch] == [s.decision() for s in single]
    assert [s.reservation is None for s in batch] == [s.reservation is None for s in single]
    assert sum(s.ok for s in batch) > 3 and sum(not s.ok for s in batch) > 0  # capacity ran out
    assert [batch_reg.get_node(n) for n in batch_reg.node_ids()] == [
        single_reg.get_node(n) for n in single_reg.node_ids()
    ]
    assert batch_reg.select_nodes_batch([]) == []
    assert batch_reg.verify_consistency() == []


def test_select_eligible_pools_equals_the_scan():
    from pyscheduler.state.pools import eligible_pools

    reg = ring_registry()
    langs = ["en", "zh", "ja", "de", "ko", "auto"]
    for src in langs:
        for tgt in langs[:-1]:
            for types in (CORE, ServiceType.NMT, CORE | ServiceType.SEMANTIC):
                expected = [
                    p.pool_id
                    for p in eligible_pools(reg.pools(), src, tgt, types, reg.phase3_config)
                ]
                assert reg.select_eligible_pools(src, tgt, types) == expected
                assert reg.select_eligible_pools(src, tgt, types, lang_index=None) == expected
