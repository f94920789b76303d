"""A config change is planned outside the registry lock and swapped in under it.

Heartbeats and registrations must not wait behind the membership computation
of a config change: the plan (pools, generated pools, every node's membership)
is computed from a capture with no lock held, and installed only if the
topology did not move meanwhile; otherwise it is planned again.
"""

from __future__ import annotations

import pytest
from helpers import make_registry, membership_state, node_info, phase3, pool

from pyscheduler import AutoPoolConfig, ConfigError, MigrationFlags
from pyscheduler.registry import node_registry
from pyscheduler.state import fleet as fleet_module

ANY_SET = AutoPoolConfig(require_semantic=False)  # every node's set counts for generation
FLAGS = [
    pytest.param(MigrationFlags(), id="legacy"),
    pytest.param(MigrationFlags(use_management_registry=True), id="management"),
]


def _nodes():
    return [node_info(f"n{i}", langs) for i, langs in enumerate([["en", "zh"], ["en", "ja"], ["en", "zh", "ja"]])]


@pytest.mark.parametrize("flags", FLAGS)
def test_memberships_are_computed_with_the_registry_lock_free(monkeypatch, flags):
    reg = make_registry(_nodes(), pools=[pool(1, ["en", "zh"])], flags=flags)
    held_while_planning = []
    real = fleet_module.membership_of

    def spy(*args, **kwargs):
        held_while_planning.append(reg._lock.locked())
        return real(*args, **kwargs)

    monkeypatch.setattr(fleet_module, "membership_of", spy)
    reg.set_phase3_config(phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja"])))
    assert held_while_planning == [False]
    assert reg.pool_members(2) == ["n1", "n2"]
    assert reg.verify_consistency() == []


@pytest.mark.parametrize("flags", FLAGS)
def test_a_registration_during_planning_is_replayed_onto_the_plan(monkeypatch, flags):
    """A node registered while the plan is computed ends up in the new pools too,
    without a second plan: the install replays it on the new config."""
    reg = make_registry(_nodes(), pools=[pool(1, ["en", "zh"])], flags=flags)
    real = node_registry.plan_config
    calls = []

    def racing_plan(cfg, capture):
        calls.append(capture.version)
        reg.register_node_with_policy(node_info("late", ["en", "ja"]))
        return real(cfg, capture)

    monkeypatch.setattr(node_registry, "plan_config", racing_plan)
    reg.set_phase3_config(phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja"])))
    assert len(calls) == 1
    assert reg.pool_members(2) == ["late", "n1", "n2"]
    assert reg.verify_consistency() == []


def test_a_config_that_keeps_losing_the_race_is_applied_under_the_lock(monkeypatch):
    """A plan is refused only when a concurrent change had pools generated (the
    plan's copy of the generator would hand out their ids again); after three
    refusals the change is made in one step under the lock."""
    auto = AutoPoolConfig(min_nodes_per_pool=1, require_semantic=False)
    reg = make_registry(_nodes(), pools=[pool(1, ["en", "zh"])], auto_generate_language_pools=True, auto_pool=auto)
    real = node_registry.plan_config
    new_sets = iter([["en", "fr"], ["en", "de"], ["en", "ko"], ["en", "it"]])
    calls = []

    def always_outrun(cfg, capture):
        calls.append(capture.version)
        reg.register_node_with_policy(node_info(f"late{len(calls)}", next(new_sets)))  # a new generated pool
        return real(cfg, capture)

    monkeypatch.setattr(node_registry, "plan_config", always_outrun)
    reg.set_phase3_config(phase3(pool(900, ["en", "ja"]), auto_generate_language_pools=True, auto_pool=auto))
    assert len(calls) == 3, "three refused plans, then the one-step change under the lock"
    assert reg.pool_members(900) == ["n1", "n2"]
    sets = {p.language_set for p in reg.pools()}
    assert {frozenset({"en", "fr"}), frozenset({"en", "de"}), frozenset({"en", "ko"})} <= sets
    assert reg.verify_consistency() == []


def test_two_phase_and_one_step_changes_give_the_same_membership():
    cfgs = [
        phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja"])),
        phase3(pool(3, ["en", "zh", "ja"]), membership="most_specific"),
        phase3(auto_generate_language_pools=True, auto_pool=ANY_SET),
        phase3(pool(50, ["en", "zh"]), auto_generate_language_pools=True, auto_pool=ANY_SET),
    ]
    two_phase = make_registry(_nodes(), pools=[pool(1, ["en", "zh"])])
    one_step = make_registry(_nodes(), pools=[pool(1, ["en", "zh"])])
    for cfg in cfgs:
        two_phase.set_phase3_config(cfg)
        with one_step._locked("test"):
            one_step._fleet.set_config(cfg)
            one_step._mirror.after_change(one_step.flags)
        assert membership_state(two_phase) == membership_state(one_step)


def test_a_refused_config_changes_nothing():
    reg = make_registry(
        _nodes(), pools=[pool(1, ["en", "zh"])], auto_generate_language_pools=True, auto_pool=ANY_SET
    )
    before = membership_state(reg)
    generated_id = next(p.pool_id for p in reg.pools() if p.pool_id != 1)
    with pytest.raises(ConfigError, match="held by generated pool"):
        reg.set_phase3_config(phase3(pool(generated_id, ["en", "ja"])))
    assert membership_state(reg) == before
    assert reg.verify_consistency() == []
