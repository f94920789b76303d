"""The migration is safe at every step (docs/MIGRATION.md).

A hypothesis state machine drives two registries through the same random
register / heartbeat / drain / disconnect / remove / config / sweep / select /
release sequence: a reference registry on the legacy path (with session
runtime, so both bind sessions alike) and a registry that went through
``enable_lock_optimization()`` and whose flags are switched at random while
it runs. After every step both are internally consistent (legacy structures,
management state and published snapshot agree field by field) and every
decision the new registry made equals the reference's.
"""

from __future__ import annotations

import threading

from helpers import (
    FakeClock,
    core_services_configs,
    heartbeats,
    jobs,
    node_infos,
    phase3_configs,
)
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

from pyscheduler import (
    ConfigError,
    DuplicateNodeError,
    JobRequest,
    MigrationFlags,
    NodeRegistry,
    UnknownNodeError,
)

REFERENCE = MigrationFlags(use_session_runtime=True)
# every way the new registry may be configured mid-flight (sessions stay on in all)
FLAG_STEPS = [
    MigrationFlags.all_on(),
    MigrationFlags(use_management_registry=True, use_session_runtime=True),
    MigrationFlags(use_runtime_snapshot=True, use_session_runtime=True),
    MigrationFlags(use_runtime_snapshot=True, use_lang_index=True, use_session_runtime=True, rollout_percent=50),
    MigrationFlags(True, True, True, True, shadow_compare=True),
    REFERENCE,
]


class MigrationMachine(RuleBasedStateMachine):
    tokens = Bundle("tokens")

    @initialize(cfg=phase3_configs(), core=core_services_configs())
    def setup(self, cfg, core):
        self.clock = FakeClock()
        self.old = NodeRegistry(cfg, core, flags=REFERENCE, clock=self.clock)
        self.new = NodeRegistry(cfg, core, flags=REFERENCE, clock=self.clock)
        self.new.enable_lock_optimization()

    def both(self, method: str, *args):
        """Call ``method`` on both registries; both must raise alike or return alike."""
        results = []
        for reg in (self.old, self.new):
            try:
                results.append(("ok", getattr(reg, method)(*args)))
            except (UnknownNodeError, DuplicateNodeError, ConfigError) as exc:
                results.append(("error", type(exc)))
        assert results[0][0] == results[1][0], results
        if results[0][0] == "error":
            assert results[0][1] is results[1][1]
        return results

    def known(self) -> list[str]:
        return self.old.node_ids()

    @rule(info=node_infos(), policy=st.sampled_from(["reject_duplicate", "replace"]))
    def register(self, info, policy):
        self.both("register_node_with_policy", info, policy)

    @rule(data=st.data())
    def heartbeat(self, data):
        node_id = data.draw(st.sampled_from([*self.known(), "ghost"]))
        hb = data.draw(heartbeats())
        (a, b) = self.both("update_node_heartbeat", node_id, hb)
        assert a == b

    @rule(data=st.data())
    def heartbeat_burst(self, data):
        """The new registry takes a burst in one call; the reference one beat at a time."""
        burst = [
            (data.draw(st.sampled_from([*self.known(), "ghost"])), data.draw(heartbeats(load_only=True)))
            for _ in range(data.draw(st.integers(0, 4)))
        ]
        try:
            statuses = self.new.update_node_heartbeats(burst)
        except UnknownNodeError:
            return  # nothing changed (the invariants check it against the reference)
        assert statuses == [self.old.update_node_heartbeat(node_id, hb) for node_id, hb in burst]

    @rule(data=st.data(), op=st.sampled_from(["mark_node_draining", "disconnect_node", "remove_node"]))
    def lifecycle(self, data, op):
        self.both(op, data.draw(st.sampled_from([*self.known(), "ghost"])))

    @rule(seconds=st.sampled_from([0, 5, 20, 31, 50, 70]))
    def sweep(self, seconds):
        self.clock.advance(seconds)
        (a, b) = self.both("sweep")
        assert a == b

    @rule(cfg=phase3_configs())
    def set_phase3(self, cfg):
        self.both("set_phase3_config", cfg)

    @rule(core=core_services_configs())
    def set_core(self, core):
        self.both("set_core_services_config", core)

    @rule(flags=st.sampled_from(FLAG_STEPS))
    def switch_flags(self, flags):
        self.new.set_flags(flags)

    @rule(target=tokens, data=st.data())
    def select(self, data):
        job = data.draw(jobs(self.known()))
        a, b = self.old.select_node(job), self.new.select_node(job)
        assert a.decision() == b.decision(), f"\nlegacy: {a.explain()}\nnew:    {b.explain()}"
        assert a.attempts == b.attempts
        return (a.reservation, b.reservation)

    @rule(target=tokens, data=st.data())
    def select_batch(self, data):
        batch = data.draw(st.lists(jobs(self.known()), max_size=4))
        a, b = self.old.select_nodes_batch(batch), self.new.select_nodes_batch(batch)
        assert [s.decision() for s in a] == [s.decision() for s in b]
        return (None, None) if not a else (a[-1].reservation, b[-1].reservation)

    @rule(pair=consumes(tokens), commit=st.booleans())
    def end_reservation(self, pair, commit):
        old_token, new_token = pair
        assert (old_token is None) == (new_token is None)
        if old_token is None:
            return
        ended_old = (self.old.commit if commit else self.old.release)(old_token)
        ended_new = (self.new.commit if commit else self.new.release)(new_token)
        assert ended_old == ended_new

    @rule(pair=tokens, commit=st.booleans())
    def end_reservation_again(self, pair, commit):
        """A token that may have ended already (reused): both answer alike."""
        old_token, new_token = pair
        if old_token is None:
            return
        ended_old = (self.old.commit if commit else self.old.release)(old_token)
        ended_new = (self.new.commit if commit else self.new.release)(new_token)
        assert ended_old == ended_new

    @rule(pair=tokens)
    def end_foreign_token(self, pair):
        """Each registry's token is foreign to the other: it ends nothing there."""
        old_token, new_token = pair
        if old_token is not None:
            assert self.new.release(old_token) is False and self.old.commit(new_token) is False

    @rule(forged=st.one_of(st.integers(0, 2**64), st.sampled_from([1, 2, 1 << 44, (1 << 63) - 1])))
    def end_forged_token(self, forged):
        assert self.old.release(forged) is False and self.new.release(forged) is False

    @invariant()
    def same_sessions(self):
        for sid in ("s1", "s2", "s3", "session-ü"):
            a, b = self.old.sessions.get(sid), self.new.sessions.get(sid)
            assert (a is None) == (b is None)
            if a is not None:
                assert (a.pair, a.bound_pool, a.last_node) == (b.pair, b.bound_pool, b.last_node)

    @invariant()
    def both_consistent(self):
        assert self.old.verify_consistency() == []
        assert self.new.verify_consistency() == []

    @invariant()
    def same_loads(self):
        for node_id in self.old.node_ids():
            a, b = self.old.get_node(node_id), self.new.get_node(node_id)
            assert (a.status, a.pool_ids, a.running_jobs, a.reserved_jobs) == (
                b.status,
                b.pool_ids,
                b.running_jobs,
                b.reserved_jobs,
            )


MigrationMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestMigrationMachine = MigrationMachine.TestCase


def test_enable_lock_optimization_syncs_existing_state_and_switches_flags():
    from helpers import beat, node_info, phase3, pool

    clock = FakeClock()
    reg = NodeRegistry(phase3(pool(1, ["en", "zh"])), flags=MigrationFlags(shadow_compare=True), clock=clock)
    reg.register_node_with_policy(node_info("n1"))
    reg.update_node_heartbeat("n1", beat())
    reg.enable_lock_optimization()
    assert reg.flags == MigrationFlags(True, True, True, True, shadow_compare=True)
    assert reg.verify_consistency() == []
    sel = reg.select_node(JobRequest("en", "zh", session_id="s"))
    assert sel.ok and sel.node_id == "n1"
    assert reg.metrics()["counters"].get("shadow_mismatch", 0) == 0
    assert "management_lock_wait_s" in reg.metrics()["histograms"]
    assert "management_lock_hold_s" in reg.metrics()["histograms"]


def test_explicit_sync_steps_for_a_step_by_step_migration():
    from helpers import beat, node_info, phase3, pool

    reg = NodeRegistry(phase3(pool(1, ["en", "zh"])), clock=FakeClock())
    reg.register_node_with_policy(node_info("n1"))
    reg.update_node_heartbeat("n1", beat())
    reg.sync_phase3_config_to_management()
    reg.sync_core_services_to_management()
    reg.sync_node_to_management("n1")
    reg.set_flags(MigrationFlags(use_management_registry=True))
    assert reg.verify_consistency() == []
    reg.set_flags(MigrationFlags())  # back to legacy: management stops following
    reg.remove_node("n1")
    reg.remove_node_from_management("n1")
    reg.set_flags(MigrationFlags(use_management_registry=True))  # resynced in full
    assert reg.verify_consistency() == []


def test_flags_switched_while_traffic_runs():
    """Dispatch and heartbeat threads run while another thread flips the flags
    through every migration step; every decision names a node that existed and
    the registry ends consistent."""
    from helpers import beat, node_info, phase3, pool

    clock = FakeClock()
    reg = NodeRegistry(phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja", "zh"])), clock=clock)
    ids = [f"n{i}" for i in range(12)]
    for node_id in ids:
        reg.register_node_with_policy(node_info(node_id, ["en", "ja", "zh"], max_concurrent_jobs=50))
        reg.update_node_heartbeat(node_id, beat())
    errors: list[BaseException] = []
    placed: list[str] = []

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - surfaced below
                errors.append(exc)

        return run

    def dispatch():
        for i in range(300):
            sel = reg.select_node(JobRequest("en", "zh", session_id=f"s{i % 7}"))
            if sel.ok:
                placed.append(sel.node_id)
                reg.release(sel)

    def beats():
        for i in range(600):
            reg.update_node_heartbeat(ids[i % len(ids)], beat(cpu=float(i % 50)))

    def flip():
        for i in range(60):
            reg.set_flags(FLAG_STEPS[i % len(FLAG_STEPS)])

    threads = [threading.Thread(target=guard(f)) for f in (dispatch, dispatch, beats, flip)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert placed and set(placed) <= set(ids)
    reg.set_flags(MigrationFlags.all_on())
    assert reg.verify_consistency() == []
    assert all(reg.get_node(n).reserved_jobs == 0 for n in ids)
