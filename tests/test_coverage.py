"""Pool coverage: past the first pool tried, a pool no member of which can pass the
job's static checks is listed as skipped, not scanned (docs/DESIGN.md §5), on both
paths alike."""

from __future__ import annotations

import pytest
from helpers import make_registry, node_info, pool, services
from hypothesis import given
from hypothesis import strategies as st

from pyscheduler import JobRequest, MigrationFlags, Reason, ServiceType
from pyscheduler.domain.model import CHECK_REASONS
from pyscheduler.selection import coverage

PATHS = [
    pytest.param(MigrationFlags.legacy(), id="legacy"),
    pytest.param(MigrationFlags.all_on(), id="fast", marks=pytest.mark.hotpath),
]

# fr -> de: no pool has both languages, so (non-strict) every pool is tried, by id
POOLS = (
    pool(1, ["en", "zh"]),  # a: scanned first, rejects (no fr ASR)
    pool(2, ["en", "ja"]),  # b: no GPU in the whole pool -> skipped
    pool(3, ["en", "it"]),  # no member: scanned (an empty scan is exact and free)
    pool(4, ["en", "ko"]),  # c: no TTS installed -> skipped
    pool(5, ["en", "es"]),  # d: serves fr -> de
)
NODES = (
    node_info("a", ["en", "zh"]),
    node_info("b", ["en", "ja", "fr", "de"], has_gpu=False),
    node_info("c", ["en", "ko", "fr", "de"], svcs=services("ASR", "NMT")),
    node_info("d", ["en", "es", "fr", "de"]),
)


def _registry(flags):
    return make_registry(NODES, pools=POOLS, flags=flags)


@pytest.mark.parametrize("flags", PATHS)
def test_pools_that_cannot_serve_are_listed_not_scanned(flags):
    reg = _registry(flags)
    sel = reg.select_node(JobRequest("fr", "de"))
    assert sel.node_id == "d" and sel.pool_id == 5 and sel.fallback_used
    got = [(a.pool_id, a.skipped, a.candidates) for a in sel.attempts]
    assert got == [
        (1, None, 1),
        (2, Reason.GPU_UNAVAILABLE, 0),
        (3, None, 0),
        (4, Reason.MODEL_NOT_AVAILABLE, 0),
        (5, None, 1),
    ]
    assert sel.attempts[1].top_reason is Reason.GPU_UNAVAILABLE
    assert sel.breakdown == sel.attempts[-1].breakdown


@pytest.mark.parametrize("flags", PATHS)
def test_the_first_pool_is_always_scanned(flags):
    """A failure's breakdown is the first pool's scan, so the first pool is never skipped."""
    reg = _registry(flags)
    sel = reg.select_node(JobRequest("fr", "de", tenant_id="t"))  # no override: starts at pool 1
    assert sel.attempts[0].skipped is None
    # a job nobody serves: every pool after the first that holds members is skipped
    sel = reg.select_node(JobRequest("sw", "de", required_types=ServiceType.NMT))
    assert not sel.ok
    assert sel.attempts[0].skipped is None and sel.attempts[0].candidates == 1
    assert sel.breakdown == sel.attempts[0].breakdown
    assert [a.skipped for a in sel.attempts[1:]] == [
        Reason.GPU_UNAVAILABLE, None, Reason.LANG_PAIR_UNSUPPORTED, Reason.LANG_PAIR_UNSUPPORTED,
    ]


@pytest.mark.hotpath
def test_both_paths_skip_the_same_pools():
    legacy, fast = _registry(MigrationFlags.legacy()), _registry(MigrationFlags.all_on())
    for src, tgt, types in [("fr", "de", 7), ("sw", "de", 2), ("auto", "de", 7), ("fr", "fr", 2),
                            ("de", "fr", 1), ("en", "it", 4), ("auto", "xx", 3)]:
        job = JobRequest(src, tgt, required_types=ServiceType(types))
        a, b = legacy.select_node(job), fast.select_node(job)
        assert a.decision() == b.decision() and a.attempts == b.attempts, (job, a.explain(), b.explain())


def test_coverage_follows_the_topology():
    """The cached coverage is dropped when the topology changes: a node joining pool 2
    with a GPU makes it scannable again."""
    reg = _registry(MigrationFlags.legacy())
    assert reg.select_node(JobRequest("fr", "de")).attempts[1].skipped is Reason.GPU_UNAVAILABLE
    reg.register_node_with_policy(node_info("e", ["en", "ja"]))
    attempt = reg.select_node(JobRequest("fr", "de")).attempts[1]
    assert attempt.skipped is None and attempt.candidates == 2


_LANGS = ("en", "fr", "de")


@st.composite
def _coverages(draw):
    def langs():
        return frozenset(draw(st.sets(st.sampled_from(_LANGS))))

    return coverage.PoolCoverage(
        members=draw(st.integers(0, 3)), any_gpu=draw(st.booleans()), any_public=draw(st.booleans()),
        provides=draw(st.integers(0, 7)), asr=langs(), tts=langs(), nmt=langs(),
        pair_sources=langs(), pair_targets=langs(),
    )


@given(_coverages(), st.sampled_from(("auto",) + _LANGS), st.sampled_from(_LANGS), st.integers(1, 7),
       st.booleans())
def test_a_proven_reason_is_a_static_check_and_empty_pools_are_never_proven(cov, src, tgt, types, public):
    reason = coverage.cannot_serve(cov, JobRequest(src, tgt, required_types=ServiceType(types), public=public))
    if cov.members == 0:
        assert reason is None
    if reason is not None:
        static = CHECK_REASONS[CHECK_REASONS.index(Reason.GPU_UNAVAILABLE):CHECK_REASONS.index(Reason.CAPACITY_EXCEEDED)]
        assert reason in static


@pytest.mark.hotpath
@pytest.mark.parametrize("key", [f"session-{k}" for k in range(12)])
def test_runs_of_skipped_pools_wrap_around_the_ring(key):
    """With affinity the fallback ring starts anywhere and wraps: the fast path
    records runs of skipped pools and must list exactly the legacy path's pools."""
    pools = [pool(i, ["en", lang]) for i, lang in enumerate(["zh", "ja", "ko", "it", "es", "pt", "ru", "ar"], 1)]
    nodes = [node_info(f"n{i}", ["en", p.languages[1]], has_gpu=i % 3 != 0) for i, p in enumerate(pools)]
    regs = [make_registry(nodes, pools=pools, flags=f, enable_session_affinity=True)
            for f in (MigrationFlags.legacy(), MigrationFlags.all_on())]
    for job in (JobRequest("fr", "de", routing_key=key), JobRequest("en", "fr", routing_key=key),
                JobRequest("auto", "de", routing_key=key, required_types=ServiceType.NMT)):
        a, b = (reg.select_node(job) for reg in regs)
        assert a.decision() == b.decision() and a.attempts == b.attempts, (a.explain(), b.explain())
        assert len(a.attempts) == len(pools) and a.attempts[0].skipped is None
        assert {x.pool_id for x in a.attempts} == {p.pool_id for p in pools}


@pytest.mark.parametrize("flags", PATHS)
def test_explain_names_a_skipped_pool_and_its_check(flags):
    text = _registry(flags).select_node(JobRequest("fr", "de")).explain()
    assert "pool 2 (en-ja) skipped: no member passes gpu_unavailable" in text
    assert "pool 4 (en-ko) skipped: no member passes model_not_available" in text
    assert text.startswith("node d selected")
