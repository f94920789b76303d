"""Hypothesis properties of the legacy selection over random fleets, configs and
jobs (the strategies live in ``helpers`` and are shared with the fast-path
equivalence tests), and a stateful test of the registry's consistency.
"""

from __future__ import annotations

from helpers import (
    CORE,
    FakeClock,
    NodeSpec,
    Scenario,
    build_registry,
    core_services_configs,
    fleet_of,
    heartbeats,
    jobs,
    node_info,
    node_infos,
    phase3,
    phase3_configs,
    pool,
    registry_state,
    scenarios,
)
from hypothesis import assume, example, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from pyscheduler import (
    ConfigError,
    CoreServicesConfig,
    DuplicateNodeError,
    JobRequest,
    NodeRegistry,
    Reason,
    SchedulerError,
    UnknownNodeError,
)
from pyscheduler.domain.hashing import pool_hash
from pyscheduler.domain.languages import AUTO
from pyscheduler.domain.model import CHECK_REASONS
from pyscheduler.selection import legacy

# -- oracles written from docs/DESIGN.md §5, independent of the package's helpers ----------------


def oracle_admits(p, src: str, tgt: str) -> bool:
    if src == AUTO:
        return any(oracle_admits(p, s, tgt) for s in p.languages)
    if (
        src == tgt
        or src not in p.languages
        or tgt not in p.languages
        or (src, tgt) in p.blocked_pairs
    ):
        return False
    return {
        "any_to_any": True,
        "any_to_en": tgt == "en",
        "en_to_any": src == "en",
        "specific_pairs": (src, tgt) in p.nmt_pairs,
    }[p.nmt_rule]


def oracle_eligible(pools, job: JobRequest, cfg) -> list[int]:
    def services_ok(p) -> bool:
        if not p.required_services:
            return True
        wanted = (
            job.required_types & CORE if cfg.pool_match_scope == "core_only" else job.required_types
        )
        if cfg.pool_match_mode == "contains":
            return wanted & p.required_services == wanted
        return wanted == p.required_services

    found = [p for p in pools if oracle_admits(p, job.src_lang, job.tgt_lang) and services_ok(p)]
    return [p.pool_id for p in sorted(found, key=lambda p: (len(p.languages), p.pool_id))]


def precheck(reg: NodeRegistry, job: JobRequest, now: float) -> dict[str, Reason | None]:
    """Every live node's first failing check, computed before the selection reserves."""
    fleet = fleet_of(reg)
    return {nid: legacy.check_node(fleet.nodes[nid], job, fleet, now) for nid in fleet.live_nodes()}


def loads(reg: NodeRegistry) -> dict[str, tuple[int, int]]:
    """node id -> (running + reserved, max), before the selection."""
    out = {}
    for nid in reg.node_ids():
        v = reg.get_node(nid)
        out[nid] = (v.running_jobs + v.reserved_jobs, v.max_concurrent_jobs)
    return out


def window(reg: NodeRegistry, pool_id: int | None, job: JobRequest) -> list[str]:
    members = fleet_of(reg).live_nodes() if pool_id is None else reg.pool_members(pool_id)
    return list(legacy.sample_window(members, job.key, reg.phase3_config.random_sample_size))


# -- selection properties -------------------------------------------------------------------

_SIMPLE = Scenario(
    phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja", "zh"]), enable_session_affinity=True),
    CoreServicesConfig(),
    tuple(
        NodeSpec(node_info(f"n{i}", ["en", "zh", "ja"][: 2 + i % 2]), "ready", jobs=i % 3)
        for i in range(6)
    ),
    (JobRequest("en", "zh", session_id="s"), JobRequest("ja", "en"), JobRequest("auto", "zh")),
)


# docs/DESIGN.md §7.8: a ``ben`` pool and node never serve ``en``; §7.1: both directions
_WHOLE_CODES = Scenario(
    phase3(pool(1, ["ben", "zh"]), pool(2, ["en", "zh"]), strict_pool_eligibility=True),
    CoreServicesConfig(),
    (
        NodeSpec(node_info("b1", ["ben", "zh"]), "ready"),
        NodeSpec(node_info("e1", ["en", "zh"]), "ready"),
    ),
    (
        JobRequest("auto", "en"),
        JobRequest("auto", "ben"),
        JobRequest("zh", "en"),
        JobRequest("en", "zh"),
    ),
)


@given(scenarios())
@example(_SIMPLE)
@example(_WHOLE_CODES)
def test_every_selection_is_explained_and_the_pick_is_right(scenario):
    reg, clock = build_registry(scenario)
    now = clock()
    for job in scenario.jobs:
        reasons = precheck(reg, job, now)
        before = loads(reg)
        sel = reg.select_node(job)
        note(f"{job} -> {sel.explain()}")
        assert sel.path == "legacy"
        assert sel.ok == (sel.node_id is not None) == (sel.reservation is not None)
        for i, attempt in enumerate(sel.attempts):
            b = attempt.breakdown
            if attempt.skipped is not None:
                # listed, not scanned: never the first pool, and no member of the whole
                # pool can pass; each fails at the proven check or an earlier one
                assert i > 0 and b.total == 0 and attempt.top_reason is attempt.skipped
                limit = CHECK_REASONS.index(attempt.skipped)
                assert CHECK_REASONS.index(Reason.GPU_UNAVAILABLE) <= limit <= CHECK_REASONS.index(
                    Reason.TTS_LANG_UNSUPPORTED
                )
                for member in reg.pool_members(attempt.pool_id):
                    assert reasons[member] is not None
                    assert CHECK_REASONS.index(reasons[member]) <= limit, (member, reasons[member])
                continue
            examined = window(reg, attempt.pool_id, job)
            survivors = [n for n in examined if reasons[n] is None]
            # counts: one reason per rejected candidate, summing to total minus survivors
            assert b.total == len(examined)
            assert (
                sum(b.values()) == b.rejected == b.total - len(survivors) == b.total - b.available
            )
            assert dict(b) == {
                r: c for r in CHECK_REASONS if (c := sum(reasons[n] is r for n in examined))
            }
            if b.total == 0:
                assert b.top_reason is Reason.NO_NODES
            elif b.rejected:
                best = max(b.values())
                assert b.top_reason == next(r for r in CHECK_REASONS if b.get(r) == best)
            # only the last pool tried may have survivors, and only if it was picked from
            assert bool(survivors) == (sel.ok and i == len(sel.attempts) - 1)
        if sel.ok:
            assert reasons[sel.node_id] is None
            assert sel.breakdown == sel.attempts[-1].breakdown
            assert sel.pool_id == sel.attempts[-1].pool_id
            examined = window(reg, sel.pool_id, job)
            assert sel.node_id in examined
            if job.preferred_node_id != sel.node_id:
                load, cap = before[sel.node_id]
                for other in examined:
                    if reasons[other] is None:
                        o_load, o_cap = before[other]
                        assert not o_load * cap < load * o_cap, (other, sel.node_id)
            view = reg.get_node(sel.node_id)
            assert view.reserved_jobs == before[sel.node_id][0] - view.running_jobs + 1
        elif sel.attempts:
            assert sel.breakdown == sel.attempts[0].breakdown
        else:
            assert sel.breakdown.top_reason is Reason.NO_ELIGIBLE_POOL
    assert reg.verify_consistency() == []


@given(scenarios(max_jobs=12))
def test_pool_order_is_the_eligible_pools_from_the_preferred_one(scenario):
    reg, _ = build_registry(scenario)
    cfg = reg.phase3_config
    pools = reg.pools()
    for job in scenario.jobs:
        eligible = reg.select_eligible_pools(job.src_lang, job.tgt_lang, job.required_types)
        assert eligible == oracle_eligible(pools, job, cfg)
        plan = legacy.plan_pools(fleet_of(reg), job)
        order = [p.pool_id if p is not None else None for p in plan.pools]
        sel = reg.select_node(job)
        tried = [a.pool_id for a in sel.attempts]
        assert order[: len(tried)] == tried
        if not (cfg.enabled and cfg.mode == "two_level" and pools):
            assert order == tried == [None] and sel.pool_id is None and sel.preferred_pool is None
            continue
        if not eligible and cfg.strict_pool_eligibility:
            assert order == tried == [] and sel.breakdown.top_reason is Reason.NO_ELIGIBLE_POOL
            continue
        base = eligible or [p.pool_id for p in pools]
        override = cfg.tenant_overrides.get(job.tenant_id) if job.tenant_id else None
        if override in base:
            preferred = override
        elif cfg.enable_session_affinity:
            preferred = base[pool_hash(job.key, cfg.hash_seed) % len(base)]
        else:
            preferred = base[0]
        assert sel.preferred_pool == plan.preferred == order[0] == preferred
        assert sel.fallback_used == (not eligible or len(tried) > 1)
        if cfg.fallback_scan_all_pools:
            assert sorted(order) == sorted(base)  # a permutation ...
            k = base.index(preferred)
            assert order == base[k:] + base[:k]  # ... that is the ring from the preferred pool
        else:
            assert order == [preferred]


@given(scenarios())
def test_selection_is_deterministic_and_batches_equal_single_calls(scenario):
    a, _ = build_registry(scenario)
    b, _ = build_registry(scenario)
    assert registry_state(a) == registry_state(b)
    batch = a.select_nodes_batch(scenario.jobs)
    single = [b.select_node(job) for job in scenario.jobs]
    assert [s.decision() for s in batch] == [s.decision() for s in single]
    # tokens carry each registry's random epoch: compare where they were given
    assert [s.reservation is None for s in batch] == [s.reservation is None for s in single]
    assert [s.explain() for s in batch] == [s.explain() for s in single]
    assert registry_state(a) == registry_state(b)


@given(scenarios(), st.data())
def test_select_node_from_pool_is_the_scan_of_that_pool(scenario, data):
    reg, clock = build_registry(scenario)
    pools = reg.pools()
    assume(pools)
    for job in scenario.jobs:
        pool_id = data.draw(st.sampled_from([p.pool_id for p in pools]))
        reasons = precheck(reg, job, clock())
        sel = reg.select_node_from_pool(pool_id, job)
        examined = window(reg, pool_id, job)
        assert [a.pool_id for a in sel.attempts] == [pool_id] and sel.preferred_pool == pool_id
        assert sel.breakdown.total == len(examined)
        assert sel.ok == any(reasons[n] is None for n in examined)
        if sel.ok:
            assert reasons[sel.node_id] is None and sel.pool_id == pool_id


# -- stateful: random operation sequences keep every structure consistent ---------------------


class RegistryMachine(RuleBasedStateMachine):
    """Random registrations, beats, lifecycle calls, sweeps, selections, reservation
    ends and config changes; after every step the registry is consistent."""

    tokens = Bundle("tokens")

    @initialize(cfg=phase3_configs(), core=core_services_configs())
    def setup(self, cfg, core):
        self.clock = FakeClock()
        self.reg = NodeRegistry(cfg, core, clock=self.clock)

    def known(self) -> list[str]:
        return self.reg.node_ids()

    @rule(info=node_infos(), policy=st.sampled_from(["reject_duplicate", "replace"]))
    def register(self, info, policy):
        before = registry_state(self.reg)
        try:
            assert self.reg.register_node_with_policy(info, policy) == info.node_id
        except DuplicateNodeError:
            assert policy == "reject_duplicate"
            assert registry_state(self.reg) == before

    @rule(data=st.data())
    def heartbeat(self, data):
        node_id = data.draw(st.sampled_from(self.known() + ["ghost"]))
        hb = data.draw(heartbeats())
        before = registry_state(self.reg)
        try:
            self.reg.update_node_heartbeat(node_id, hb)
        except UnknownNodeError:
            assert registry_state(self.reg) == before

    @rule(
        data=st.data(), op=st.sampled_from(["mark_node_draining", "disconnect_node", "remove_node"])
    )
    def lifecycle(self, data, op):
        node_id = data.draw(st.sampled_from(self.known() + ["ghost"]))
        before = registry_state(self.reg)
        try:
            getattr(self.reg, op)(node_id)
        except UnknownNodeError:
            assert registry_state(self.reg) == before

    @rule(seconds=st.sampled_from([0, 5, 20, 31, 50, 70]))
    def sweep(self, seconds):
        self.clock.advance(seconds)
        changed = self.reg.sweep()
        assert changed == sorted(set(changed))

    @rule(target=tokens, data=st.data())
    def select(self, data):
        job = data.draw(jobs(self.known()))
        sel = self.reg.select_node(job)
        if sel.ok:
            assert sel.node_id in self.known()
        return sel.reservation

    @rule(target=tokens, data=st.data())
    def select_batch(self, data):
        batch = data.draw(st.lists(jobs(self.known()), max_size=4))
        sels = self.reg.select_nodes_batch(batch)
        assert len(sels) == len(batch)
        return None if not sels else sels[-1].reservation

    @precondition(lambda self: self.reg.pools())
    @rule(target=tokens, data=st.data())
    def select_from_pool(self, data):
        pool_id = data.draw(st.sampled_from([p.pool_id for p in self.reg.pools()]))
        return self.reg.select_node_from_pool(pool_id, data.draw(jobs(self.known()))).reservation

    @rule(token=consumes(tokens), commit=st.booleans())
    def end_reservation(self, token, commit):
        if token is None:
            return
        (self.reg.commit if commit else self.reg.release)(token)
        assert self.reg.release(token) is False

    @rule(cfg=phase3_configs())
    def set_phase3(self, cfg):
        before = registry_state(self.reg)
        try:
            self.reg.set_phase3_config(cfg)
        except ConfigError:
            assert registry_state(self.reg) == before
            return
        assert self.reg.phase3_config == cfg
        # setting the same config again changes no membership (docs/DESIGN.md §7.4)
        state = registry_state(self.reg)
        self.reg.set_phase3_config(cfg)
        assert registry_state(self.reg) == state

    @rule(core=core_services_configs())
    def set_core(self, core):
        self.reg.set_core_services_config(core)

    @rule(bad=st.sampled_from([None, "n1", 1.5]))
    def bad_input_changes_nothing(self, bad):
        before = registry_state(self.reg)
        for call in (
            lambda: self.reg.register_node_with_policy(bad),
            lambda: self.reg.update_node_heartbeat("n01", bad),
            lambda: self.reg.set_phase3_config(bad),
            lambda: self.reg.select_node(bad),
        ):
            try:
                call()
            except SchedulerError:
                pass
            else:  # pragma: no cover
                raise AssertionError("bad input accepted")
        assert registry_state(self.reg) == before

    @invariant()
    def consistent(self):
        assert self.reg.verify_consistency() == []

    @invariant()
    def reservations_add_up(self):
        total = sum(self.reg.get_node(n).reserved_jobs for n in self.reg.node_ids())
        assert total == self.reg.metrics()["gauges"]["reservations"]


RegistryMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25)
TestRegistryMachine = RegistryMachine.TestCase
