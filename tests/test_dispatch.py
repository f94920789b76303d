"""The compiled dispatcher: tokens, counters, sessions and defaults.

Tokens carry a per-registry random epoch: a forged, reused, expired or
foreign token (or ``Selection``) ends nothing, on either path. The fast
path's session table follows ``SessionRuntimeManager`` (the reference) call
for call; its counters are the registry's, present from the start.
"""

from __future__ import annotations

import logging
import threading

import pytest
from helpers import FakeClock, build_registry, make_registry, node_info, pool, scenarios
from hypothesis import given
from hypothesis import strategies as st

from pyscheduler import JobRequest, MigrationFlags, Reason, _compat
from pyscheduler.domain.config import Phase3Config
from pyscheduler.domain.model import Selection
from pyscheduler.registry import node_registry
from pyscheduler.state.reservations import EPOCH_SHIFT
from pyscheduler.state.sessions import SessionRuntimeManager

FAST = MigrationFlags.all_on()
LEGACY_SESSIONS = MigrationFlags(use_session_runtime=True)
PATHS = [pytest.param(LEGACY_SESSIONS, id="legacy"), pytest.param(FAST, id="fast", marks=pytest.mark.hotpath)]
COUNTED = ("selections", "selections_failed", "commits", "releases", "reservations_expired")


def _registry(flags, clock=None):
    """Two READY nodes of two places each in one en-zh pool."""
    nodes = [node_info("n1", max_concurrent_jobs=2), node_info("n2", max_concurrent_jobs=2)]
    return make_registry(nodes, pools=[pool(1, ["en", "zh"])], flags=flags, clock=clock)


def _loads(reg):
    return [(v.running_jobs, v.reserved_jobs) for v in map(reg.get_node, reg.node_ids())]


# -- tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize("flags", PATHS)
def test_a_token_ends_its_reservation_once(flags):
    reg = _registry(flags)
    sel = reg.select_node(JobRequest("en", "zh"))
    assert sel.ok and sel.reservation >> EPOCH_SHIFT != 0  # the epoch sits in the high bits
    assert reg.release(sel) is True
    assert reg.release(sel) is False and reg.commit(sel.reservation) is False  # reused
    assert _loads(reg) == [(0, 0), (0, 0)]


@pytest.mark.parametrize("flags", PATHS)
@pytest.mark.parametrize("forged", [0, 1, 2, 2**44, 2**63 - 1, 2**63, 2**200, -1])
def test_a_forged_token_ends_nothing(flags, forged):
    reg = _registry(flags)
    held = reg.select_node(JobRequest("en", "zh"))
    assert reg.release(forged) is False and reg.commit(forged) is False
    assert sorted(_loads(reg)) == [(0, 0), (0, 1)]
    assert reg.release(held) is True


@pytest.mark.parametrize("flags", PATHS)
def test_a_token_of_another_registry_ends_nothing_here(flags):
    ours, theirs = _registry(flags), _registry(flags)
    mine = ours.select_node(JobRequest("en", "zh"))
    foreign = theirs.select_node(JobRequest("en", "zh"))
    assert ours.release(foreign) is False and ours.commit(foreign.reservation) is False
    assert theirs.release(mine) is False
    assert sorted(_loads(ours)) == [(0, 0), (0, 1)] and sorted(_loads(theirs)) == [(0, 0), (0, 1)]
    # a neighbour of our own token (same epoch, another entry or sequence) names nothing either
    for delta in (1, -1, 1 << 20, -(1 << 20)):
        assert ours.release(mine.reservation + delta) is False
    assert ours.release(mine) is True and theirs.release(foreign) is True


@pytest.mark.parametrize("flags", PATHS)
def test_an_expired_token_ends_nothing(flags):
    clock = FakeClock()
    reg = _registry(flags, clock)
    sel = reg.select_node(JobRequest("en", "zh"))
    clock.advance(reg.phase3_config.reservation_ttl_s + 1)
    reg.sweep()
    assert reg.metrics()["counters"]["reservations_expired"] == 1
    assert reg.commit(sel) is False and _loads(reg) == [(0, 0), (0, 0)]


@pytest.mark.parametrize("flags", PATHS)
def test_a_token_of_a_removed_node_ends_nothing(flags):
    reg = _registry(flags)
    sel = reg.select_node(JobRequest("en", "zh", preferred_node_id="n1"))
    reg.remove_node("n1")
    reg.register_node_with_policy(node_info("n1", max_concurrent_jobs=2))
    assert reg.release(sel) is False
    assert reg.verify_consistency() == []


def test_a_session_bound_twice_never_shares_tokens_between_paths():
    """A registry switched between paths mid-flight ends each path's tokens."""
    reg = _registry(LEGACY_SESSIONS)
    a = reg.select_node(JobRequest("en", "zh", session_id="s"))
    reg.set_flags(FAST)
    b = reg.select_node(JobRequest("en", "zh", session_id="s"))
    assert a.reservation != b.reservation
    assert reg.release(a) is True and reg.release(b) is True
    assert _loads(reg) == [(0, 0), (0, 0)]


# -- call for call: tokens and counters --------------------------------------------------


_ACTIONS = st.sampled_from(["commit", "release", "keep", "reuse", "forged", "expire"])


@pytest.mark.hotpath
@given(scenarios(max_nodes=10, max_jobs=12), st.lists(_ACTIONS, min_size=12, max_size=12))
def test_tokens_and_counters_fast_equal_legacy_call_for_call(scenario, actions):
    legacy, legacy_clock = build_registry(scenario, flags=LEGACY_SESSIONS)
    fast, fast_clock = build_registry(scenario, flags=FAST)
    ended: list[tuple[object, object]] = []
    for job, action in zip(scenario.jobs, actions):
        a, b = legacy.select_node(job), fast.select_node(job)
        assert a.decision() == b.decision()
        if action in ("commit", "release", "reuse") and a.ok:
            end = "commit" if action == "commit" else "release"
            assert getattr(legacy, end)(a) == getattr(fast, end)(b) is True
            ended.append((a, b))
        elif action == "reuse" and ended:
            a_old, b_old = ended[-1]
            assert legacy.release(a_old) is fast.release(b_old) is False
        elif action == "forged":
            assert legacy.release(12345) is fast.release(12345) is False
        elif action == "expire":
            for reg, clock in ((legacy, legacy_clock), (fast, fast_clock)):
                clock.advance(scenario.cfg.reservation_ttl_s + 1)
                reg.sweep()
    assert _loads(legacy) == _loads(fast)
    counters = [{k: reg.metrics()["counters"][k] for k in COUNTED} for reg in (legacy, fast)]
    assert counters[0] == counters[1]
    for reg in (legacy, fast):
        assert reg.verify_consistency() == []


@pytest.mark.parametrize("flags", PATHS)
def test_every_dispatch_counter_is_there_from_the_start(flags):
    counters = _registry(flags).metrics()["counters"]
    for name in (*COUNTED, "shadow_compared", "shadow_mismatch", *(f"failed.{r}" for r in Reason)):
        assert counters[name] == 0, name


# -- sessions: the compiled table follows SessionRuntimeManager ----------------------------


_SESSION_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("use"), st.sampled_from([f"s{i}" for i in range(8)] + ["é", "s\x00"]),
                  st.floats(0, 30)),
        st.tuples(st.just("expire"), st.just(""), st.floats(0, 30)),
    ),
    max_size=60,
)


@pytest.mark.hotpath
@given(ops=_SESSION_OPS, max_sessions=st.integers(1, 5), ttl=st.sampled_from([1.0, 5.0, 50.0]))
def test_session_table_keeps_and_drops_what_the_manager_does(ops, max_sessions, ttl):
    manager = SessionRuntimeManager(max_sessions=max_sessions, idle_ttl_s=ttl, clock=lambda: 0.0)
    table = _compat.hotpath.SessionTable(max_sessions, ttl)
    now = 0.0
    for op, sid, step in ops:
        now += step
        if op == "use":
            manager.get_or_create(sid, now)
            table.use(sid, now)
        else:
            assert manager.expire(now) == table.expire(now)
        assert len(manager) == len(table)
        assert (manager.evicted, manager.expired) == (table.evicted, table.expired)
        for known in {s for o, s, _ in ops if o == "use"}:
            entry = manager.get(known)
            found = table.get(known)
            assert (entry is None) == (found is None), known
            if entry is not None:
                assert found[0] == entry.last_seen


@pytest.mark.hotpath
@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from(["s1", "s2", "s3"]),
            st.sampled_from([("en", "zh"), ("zh", "en"), ("en", "ja")]),
            st.lists(st.integers(0, 6), unique=True, max_size=4),  # eligible pools, in order
            st.integers(0, 3),  # generation
            st.floats(0, 400),  # time step
        ),
        max_size=30,
    ),
    affinity=st.booleans(),
    seed=st.integers(0, 2**63 - 1),
)
def test_compiled_binding_follows_the_manager_call_for_call(calls, affinity, seed):
    manager = SessionRuntimeManager(max_sessions=2, idle_ttl_s=600.0, clock=lambda: 0.0)
    dispatcher = _compat.hotpath.Dispatcher(
        _compat.hotpath.LoadTable(), None, None, type(None), 7
    )
    dispatcher.configure_sessions(2, 600.0, lambda *args: None)
    cfg = Phase3Config(enable_session_affinity=affinity, hash_seed=seed)
    now = 0.0
    for sid, (src, tgt), pools, generation, step in calls:
        now += step
        job = JobRequest(src, tgt, session_id=sid)
        _entry, expected = manager.bind(job, lambda pools=pools: pools, cfg, generation, now)
        got = dispatcher.bind_listed(job, lambda pools=pools: pools, affinity, seed, generation, now)
        assert got == expected
        assert len(dispatcher.sessions) == len(manager)


@pytest.mark.hotpath
def test_a_session_rebinds_with_a_log_line_when_its_pool_goes(caplog):
    reg = make_registry(
        [node_info("n1", ["en", "zh"]), node_info("n2", ["en", "zh", "ja"])],
        pools=[pool(1, ["en", "zh"]), pool(2, ["en", "zh", "ja"])],
        flags=FAST,
    )
    first = reg.select_node(JobRequest("en", "zh", session_id="s"))
    bound = reg.sessions.get("s").bound_pool
    assert first.preferred_pool == bound and reg.sessions.get("s").last_node == first.node_id
    others = [p for p in (1, 2) if p != bound]
    cfg = reg.phase3_config
    kept = tuple(p for p in cfg.pools if p.pool_id in others)
    with caplog.at_level(logging.INFO, logger="pyscheduler.sessions"):
        reg.set_phase3_config(Phase3Config(pools=kept))
        sel = reg.select_node(JobRequest("en", "zh", session_id="s"))
    assert sel.preferred_pool == others[0] == reg.sessions.get("s").bound_pool
    assert "no longer eligible" in caplog.text


# -- defaults ------------------------------------------------------------------------------


def test_the_default_registry_runs_the_fast_path_when_built(monkeypatch, caplog):
    reg = node_registry.NodeRegistry()
    assert reg.flags == (MigrationFlags.all_on() if _compat.HAVE_HOTPATH else MigrationFlags.legacy())
    assert MigrationFlags.legacy() == MigrationFlags.all_off() == MigrationFlags()
    # without the extension: the reference path, said once
    monkeypatch.setattr(_compat, "HAVE_HOTPATH", False)
    monkeypatch.setattr(node_registry, "_warned_reference_path", False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyscheduler"):
        assert node_registry._default_flags() == MigrationFlags.legacy()
        assert node_registry._default_flags() == MigrationFlags.legacy()
    warnings = [r for r in caplog.records if "reference (legacy) path" in r.getMessage()]
    assert len(warnings) == 1


# -- threads -------------------------------------------------------------------------------


@pytest.mark.parametrize("flags", PATHS)
def test_concurrent_select_and_release_keep_counts_exact(flags):
    nodes = [node_info(f"n{i}", max_concurrent_jobs=3) for i in range(6)]
    reg = make_registry(nodes, pools=[pool(1, ["en", "zh"])], flags=flags)
    rounds, workers = 400, 4
    ok = [0] * workers
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(rounds):
                sel = reg.select_node(JobRequest("en", "zh", session_id=f"s{k}-{i % 7}"))
                if sel.ok:
                    ok[k] += 1
                    assert reg.release(sel) is True
                    assert reg.release(sel) is False
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(v == (0, 0) for v in _loads(reg))
    counters = reg.metrics()["counters"]
    assert counters["selections"] == rounds * workers
    assert counters["releases"] == sum(ok)
    assert reg.metrics()["gauges"]["reservations"] == 0
    assert reg.verify_consistency() == []


# -- shadow compare: both paths read one moment ---------------------------------------------


@pytest.mark.hotpath
@pytest.mark.parametrize("serve_fast", [False, True], ids=["serve-legacy", "serve-fast"])
def test_shadow_compare_skips_a_moment_another_thread_changed(monkeypatch, serve_fast):
    """A release landing between the two shadow computations (as a dispatch
    thread without the registry lock may do) makes them incomparable: it is
    counted as skipped, never as a mismatch."""
    from pyscheduler.selection import legacy

    flags = MigrationFlags(use_runtime_snapshot=serve_fast, use_lang_index=serve_fast, shadow_compare=True)
    reg = make_registry([node_info("n1", max_concurrent_jobs=1)], pools=[pool(1, ["en", "zh"])], flags=flags)
    job = JobRequest("en", "zh")
    held = reg.select_node(job)  # a quiet moment: compared, equal; it takes the only place
    assert held.ok and held.path == ("fast" if serve_fast else "legacy")
    original, injected = legacy.select, []

    def legacy_then_a_release(*args, **kwargs):
        answer = original(*args, **kwargs)
        if not injected:  # once: the shadow's legacy computation has just seen the node full
            injected.append(reg.release(held))
        return answer

    monkeypatch.setattr(legacy, "select", legacy_then_a_release)
    reg.select_node(job)
    assert injected == [True]
    counters = reg.metrics()["counters"]
    assert (counters["shadow_compared"], counters["shadow_skipped"], counters["shadow_mismatch"]) == (1, 1, 0)


# -- one source per kernel code --------------------------------------------------------------


@pytest.mark.hotpath
def test_kernel_codes_are_the_compiled_modules_and_equal_the_fallback():
    assert dict(_compat.hotpath.KERNEL_CODES) == dict(_compat.FALLBACK_KERNEL_CODES)
    assert _compat.KERNEL_CODES == _compat.hotpath.KERNEL_CODES


def test_kernel_codes_agree_with_the_python_model():
    from pyscheduler.domain.model import CHECK_REASONS, NodeStatus
    from pyscheduler.selection import fast
    from pyscheduler.state.nodes import STATUS_CODES

    codes = _compat.KERNEL_CODES
    assert codes["ATT_WIDTH"] == codes["ATT_COUNTS"] + len(CHECK_REASONS) == fast.ATTEMPT_WIDTH
    assert list(Reason).index(Reason.NO_ELIGIBLE_POOL) == codes["R_NO_ELIGIBLE_POOL"]
    assert list(Reason).index(Reason.NO_NODES) == codes["R_NO_NODES"]
    assert STATUS_CODES[NodeStatus.READY] == codes["ST_READY"] != STATUS_CODES[NodeStatus.DRAINING]
    assert STATUS_CODES[NodeStatus.OFFLINE] == codes["ST_OFFLINE"]


@pytest.mark.hotpath
def test_the_dispatcher_fills_every_slot_of_the_selection():
    """The dispatcher writes the result's __slots__ in C (no Python frame); if a slot is
    renamed or added it would silently fall back to ``Selection._lazy``."""
    assert set(_compat.hotpath.SELECTION_SLOTS) == set(Selection.__slots__)


@pytest.mark.hotpath
def test_the_dispatcher_reads_job_fields_in_c_and_anything_else_by_name():
    """Fields of a JobRequest are read at their slot offsets; a subclass (or any
    object with the same attributes) is read by attribute lookup, with the same
    decision."""
    assert set(_compat.hotpath.JOB_FIELDS) <= set(JobRequest.__slots__)

    class Job(JobRequest):
        __slots__ = ()

    reg = make_registry([node_info("a"), node_info("b")], pools=[pool(1, ["en", "zh"])],
                        flags=MigrationFlags.all_on())
    plain = reg.select_node(JobRequest("en", "zh", session_id="s1"))
    reg.release(plain)
    sub = reg.select_node(Job("en", "zh", session_id="s1"))
    assert sub.decision() == plain.decision() and sub.path == "fast"
