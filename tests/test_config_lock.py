"""What a config change does under the registry lock: a swap, never a pass over the fleet.

``set_phase3_config`` captures under the lock, prepares pools, memberships and
the management copy's new state without it, and installs them under it. The
tests here check that the locked part is bounded *by structure*: a test double
for the fleet's node table counts every pass over it and every per-node write,
and ``NodeEntry.of`` is counted, while the lock is held by a config change.
They also check that nodes changed between the capture and the install (the
journal) reach the management copy, and that heartbeats, registrations,
removals and drains racing a loop of config changes leave a consistent
registry. No test measures time.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter, defaultdict
from contextlib import contextmanager

import pytest
from helpers import (
    CORE_SERVICES,
    beat,
    caps,
    make_registry,
    node_info,
    node_infos,
    phase3,
    pool,
    unhealthy_beat,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyscheduler import AutoPoolConfig, ConfigError, MigrationFlags, NodeStatus
from pyscheduler.registry import mirror as mirror_module
from pyscheduler.registry import node_registry
from pyscheduler.state.nodes import NodeRecord
from pyscheduler.state.pools import PoolLookup, node_pools

ANY_SET = AutoPoolConfig(require_semantic=False)
LANGS = ["en", "zh", "ja", "de", "fr"]
CONFIGS = [
    phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja"])),
    phase3(pool(3, ["en", "zh", "ja"]), pool(4, ["de", "en"]), membership="most_specific"),
    phase3(auto_generate_language_pools=True, auto_pool=ANY_SET),
    phase3(pool(90, ["en", "zh"]), auto_generate_language_pools=True, auto_pool=ANY_SET, hash_seed=7),
]
#: Configs a loop may cycle through: generated ids (above 5000) never collide with configured ones.
RACE_CONFIGS = [
    phase3(pool(1001, ["en", "zh"]), pool(1002, ["en", "ja"])),
    phase3(pool(1003, ["en", "zh", "ja"]), pool(1004, ["de", "en"]), membership="most_specific"),
    phase3(pool(5000, ["de", "fr"]), auto_generate_language_pools=True, auto_pool=ANY_SET),
    phase3(pool(5000, ["en", "zh"]), auto_generate_language_pools=True, auto_pool=ANY_SET, hash_seed=7),
]
MANAGED = MigrationFlags(use_management_registry=True)
FLAGS = [
    pytest.param(MigrationFlags(), id="legacy"),
    pytest.param(MANAGED, id="management"),
]


def _fleet(n: int) -> list:
    return [node_info(f"n{i:04d}", LANGS[i % 3 : i % 3 + 2 + i % 3]) for i in range(n)]


class _CountingNodes(dict):
    """The fleet's node table, counting every pass over it while ``armed``."""

    armed = False
    passes: list[str]

    def _count(self, how: str) -> None:
        if self.armed:
            self.passes.append(how)

    def __iter__(self):
        self._count("iter")
        return super().__iter__()

    def values(self):
        self._count("values")
        return super().values()

    def items(self):
        self._count("items")
        return super().items()

    def keys(self):
        self._count("keys")
        return super().keys()


@contextmanager
def _locked_work(monkeypatch, reg):
    """Count, per lock site of a config change, what is done while the registry
    lock is held there: ``holds``, passes over the node table (``values`` — a
    C-level copy of the records — apart from the others), ``NodeEntry.of``
    calls (``entries``) and per-node pool-id writes."""
    counts: dict[str, Counter] = defaultdict(Counter)
    current: list[str] = []
    nodes = _CountingNodes(reg._fleet.nodes)
    nodes.passes = []
    reg._fleet.nodes = nodes
    real_locked = reg._locked

    @contextmanager
    def locked(site):
        with real_locked(site):
            if not site.startswith("set_phase3_config"):
                yield
                return
            current.append(site)
            nodes.passes.clear()
            nodes.armed = True
            try:
                yield
            finally:
                nodes.armed = False
                current.pop()
                counts[site]["holds"] += 1
                counts[site]["values"] += nodes.passes.count("values")
                counts[site]["passes"] += len(nodes.passes) - nodes.passes.count("values")

    monkeypatch.setattr(reg, "_locked", locked)
    real_of = mirror_module.NodeEntry.of

    class _Entry:
        @staticmethod
        def of(record):
            if current:
                counts[current[-1]]["entries"] += 1
            return real_of(record)

    monkeypatch.setattr(mirror_module, "NodeEntry", _Entry)
    real_prop = NodeRecord.pool_ids

    def write(record, value):
        if current:
            counts[current[-1]]["pool_id_writes"] += 1
        real_prop.fset(record, value)

    monkeypatch.setattr(NodeRecord, "pool_ids", property(real_prop.fget, write))
    yield counts


@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=["configured", "most_specific", "generated", "both"])
def test_the_locked_part_of_a_config_change_makes_no_pass_over_the_fleet(monkeypatch, flags, cfg):
    reg = make_registry(_fleet(300), pools=[pool(1, ["en", "zh"])], flags=flags)
    before = {p.pool_id: reg.pool_members(p.pool_id) for p in reg.pools()}
    with _locked_work(monkeypatch, reg) as counts:
        reg.set_phase3_config(cfg)
    apply = counts["set_phase3_config"]
    assert apply["holds"] == 1, "installed at the first try"
    # the install: no pass over the node table, no entry built, no node written
    assert (apply["passes"], apply["values"], apply["entries"], apply["pool_id_writes"]) == (0, 0, 0, 0)
    # the capture: one C-level reference copy of the records, nothing per node in Python
    capture = counts["set_phase3_config_capture"]
    assert (capture["passes"], capture["values"], capture["entries"]) == (0, 1, 0)
    assert reg.verify_consistency() == []
    after = {p.pool_id: reg.pool_members(p.pool_id) for p in reg.pools()}
    assert after != before  # the change did change the membership


def test_a_node_changed_between_capture_and_install_is_copied_again(monkeypatch):
    """A drain lands after the capture, before the install: the prepared
    management state holds the node's old entry, and the install copies exactly
    that node again (one entry, no pass over the fleet)."""
    reg = make_registry(_fleet(200), pools=[pool(1, ["en", "zh"])], flags=MigrationFlags.all_on())
    real = mirror_module.ManagementMirror.prepare_config

    def drain_then_prepare(self, prep, plan):
        real(self, prep, plan)  # the entries are read here, with n0007 still READY
        reg.mark_node_draining("n0007")

    monkeypatch.setattr(mirror_module.ManagementMirror, "prepare_config", drain_then_prepare)
    with _locked_work(monkeypatch, reg) as counts:
        reg.set_phase3_config(CONFIGS[0])
    assert counts["set_phase3_config"]["entries"] == 1
    assert counts["set_phase3_config"]["passes"] == 0
    entry = reg._mirror.capture().nodes["n0007"]
    assert entry.draining and entry.status is NodeStatus.DRAINING
    assert entry.pool_ids == reg.get_node("n0007").pool_ids
    assert reg.verify_consistency() == []
    assert reg._mirror._journals == ()


def test_a_refused_config_closes_its_journal(monkeypatch):
    reg = make_registry(
        _fleet(20), pools=[pool(1, ["en", "zh"])], flags=MANAGED,
        auto_generate_language_pools=True, auto_pool=ANY_SET,
    )  # fmt: skip
    generated = next(p.pool_id for p in reg.pools() if p.pool_id != 1)
    with pytest.raises(ConfigError):
        reg.set_phase3_config(phase3(pool(generated, ["en", "ja"])))
    assert reg._mirror._journals == ()
    reg.mark_node_draining("n0001")  # writes after the refusal journal nowhere
    assert reg.verify_consistency() == []


def test_a_registration_during_planning_is_replayed_and_the_journals_close(monkeypatch):
    reg = make_registry(_fleet(20), pools=[pool(1, ["en", "zh"])], flags=MANAGED)
    real = node_registry.plan_config
    calls = []

    def racing(cfg, capture):
        calls.append((len(reg._fleet._journals), len(reg._mirror._journals)))
        reg.register_node_with_policy(node_info("late", ["en", "ja"]))
        reg.remove_node("n0001")
        return real(cfg, capture)

    monkeypatch.setattr(node_registry, "plan_config", racing)
    with _locked_work(monkeypatch, reg) as counts:
        reg.set_phase3_config(CONFIGS[0])
    assert calls == [(1, 1)], "planned once: the registration is replayed, not re-planned"
    assert reg._fleet._journals == () and reg._mirror._journals == ()
    assert "late" in reg.pool_members(2) and "n0001" not in reg.node_ids()
    # the install replayed two nodes: no pass over the table, an entry for each
    assert counts["set_phase3_config"]["passes"] == 0
    assert counts["set_phase3_config"]["entries"] == 1  # "late" (n0001 is gone)
    assert reg.verify_consistency() == []


def test_changes_replayed_onto_a_plan_count_for_generation(monkeypatch):
    """Nodes registered while a generating config is planned count for the
    generated pools like any registration after it: their set gets its pool."""
    generating = phase3(pool(500, ["de", "fr"]), auto_generate_language_pools=True,
                        auto_pool=AutoPoolConfig(min_nodes_per_pool=2, require_semantic=False))  # fmt: skip
    reg = make_registry(_fleet(12), pools=[pool(500, ["de", "fr"])], flags=MANAGED)
    real = node_registry.plan_config

    def racing(cfg, capture):
        for k in range(2):  # a new language set reaches the threshold meanwhile
            reg.register_node_with_policy(node_info(f"ko{k}", ["en", "ko"]))
        return real(cfg, capture)

    monkeypatch.setattr(node_registry, "plan_config", racing)
    reg.set_phase3_config(generating)
    ko = [p for p in reg.pools() if p.language_set == frozenset({"en", "ko"})]
    assert len(ko) == 1 and reg.pool_members(ko[0].pool_id) == ["ko0", "ko1"]
    assert reg.verify_consistency() == []
    assert reg._fleet._journals == () and reg._mirror._journals == ()


def test_a_management_copy_switched_off_meanwhile_is_resynced_when_on_again(monkeypatch):
    reg = make_registry(_fleet(30), pools=[pool(1, ["en", "zh"])], flags=MANAGED)
    real = mirror_module.ManagementMirror.prepare_config

    def switch_off_then_prepare(self, prep, plan):
        real(self, prep, plan)
        reg.set_flags(MigrationFlags())
        reg.mark_node_draining("n0003")  # missed by the copy: it goes stale

    monkeypatch.setattr(mirror_module.ManagementMirror, "prepare_config", switch_off_then_prepare)
    reg.set_phase3_config(CONFIGS[1])
    assert reg._mirror.stale
    reg.set_flags(MANAGED)
    assert not reg._mirror.stale
    assert reg._mirror.capture().nodes["n0003"].draining
    assert reg.verify_consistency() == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    infos=st.lists(node_infos(), min_size=1, max_size=12, unique_by=lambda i: i.node_id),
    cfg=st.sampled_from(CONFIGS),
    flags=st.sampled_from([MigrationFlags(), MANAGED]),
)
def test_grouped_planning_gives_every_node_the_pools_of_node_pools(infos, cfg, flags):
    """The plan computes memberships once per (language set, services) group;
    each node must still get exactly what the per-node definition gives it."""
    reg = make_registry(infos, pools=[pool(1, ["en", "zh"])], flags=flags)
    reg.set_phase3_config(cfg)
    lookup = PoolLookup(reg.pools())
    for node_id in reg.node_ids():
        view = reg.get_node(node_id)
        want = node_pools(
            node_id, view.info.language_capabilities.language_set(),
            _installed(view.info.installed_services), lookup, cfg.membership,
        )  # fmt: skip
        assert view.pool_ids == want
    assert reg.verify_consistency() == []


def _installed(services):
    from pyscheduler.state.nodes import installed_types

    return installed_types(services)


# -- threads -------------------------------------------------------------------------


@pytest.fixture
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


ROUNDS = 3
CHANGES = 12


@pytest.mark.parametrize("flags", FLAGS + [pytest.param(None, id="all_on")])
def test_heartbeats_and_registrations_racing_config_changes_stay_consistent(monkeypatch, fast_switching, flags):
    flags = MigrationFlags.all_on() if flags is None else flags
    for seed in range(ROUNDS):
        _race(monkeypatch, flags, seed)


def _race(monkeypatch, flags, seed):
    reg = make_registry(_fleet(150), pools=[pool(1001, ["en", "zh"])], flags=flags)
    errors: list[BaseException] = []
    done = threading.Event()
    journaled = []
    real_install = mirror_module.ManagementMirror.install_config

    def install(self, prep, plan, flags):
        if prep is not None:
            journaled.append(len(prep.journal))
        return real_install(self, prep, plan, flags)

    monkeypatch.setattr(mirror_module.ManagementMirror, "install_config", install)

    def guarded(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # reported below
                errors.append(exc)
                done.set()

        return run

    def config_changes():
        for k in range(CHANGES):
            reg.set_phase3_config(RACE_CONFIGS[(k + seed) % len(RACE_CONFIGS)])
            assert reg.verify_consistency() == []
        done.set()

    def heartbeats():
        i = 0
        while not done.is_set():
            node_id = f"n{i % 150:04d}"
            try:
                if i % 7 == 0:  # a status change (journaled by the management copy)
                    reg.update_node_heartbeat(node_id, unhealthy_beat())
                elif i % 11 == 0:  # a capability change (outruns a plan)
                    reg.update_node_heartbeat(node_id, beat(language_capabilities=caps(LANGS[i % 4 : i % 4 + 2])))
                else:
                    reg.update_node_heartbeat(node_id, beat(installed_services=CORE_SERVICES))
            except node_registry.UnknownNodeError:
                pass  # removed by the other thread meanwhile
            i += 1

    def registrations():
        i = 0
        while not done.is_set():
            node_id = f"x{i // 3 % 20:02d}"
            if i % 3 == 0:
                reg.register_node_with_policy(node_info(node_id, LANGS[i % 4 : i % 4 + 2]), "replace")
            elif i % 3 == 1:
                reg.mark_node_draining(node_id)
            else:
                reg.remove_node(node_id)
            i += 1

    threads = [threading.Thread(target=guarded(f)) for f in (config_changes, heartbeats, registrations)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert reg.verify_consistency() == []
    assert reg._mirror._journals == ()
    if flags.use_management_registry:
        assert journaled, "some config changes were installed from a prep"


def test_a_capture_keeps_its_member_lists_when_nodes_move_after_it():
    """Captures share the management copy's member lists (no copy per capture):
    a later membership change must replace a list, never edit one a capture holds."""
    reg = make_registry(_fleet(30), pools=[pool(1, ["en", "zh"])], flags=MANAGED)
    before = reg._mirror.capture()
    frozen = {pid: tuple(members) for pid, members in before.members.items()}
    assert "n0000" in frozen[1]
    reg.register_node_with_policy(node_info("late", ["en", "zh"]))
    reg.remove_node("n0000")
    assert {pid: tuple(members) for pid, members in before.members.items()} == frozen
    after = reg._mirror.capture()
    assert "late" in after.members[1] and "n0000" not in after.members[1]
    assert reg.verify_consistency() == []


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["register", "replace", "remove", "disconnect", "languages", "drain"]),
        st.integers(0, 11),
        st.sampled_from([["en", "zh"], ["en", "ja"], ["de", "fr"], ["en", "ko"], ["en", "zh", "ja"]]),
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=_OPS,
    cfg=st.sampled_from(RACE_CONFIGS),
    flags=st.sampled_from([MigrationFlags(), MANAGED, MigrationFlags.all_on()]),
)
def test_changes_during_planning_are_replayed_as_if_made_after_the_change(monkeypatch_ops, ops, cfg, flags):
    """Any mix of topology changes between the capture and the install ends in
    the state the per-node definitions give: memberships, generation counts,
    the management copy and the snapshot agree (verify_consistency), and every
    journal is closed."""
    from pyscheduler.state.fleet import counted_set

    reg = make_registry(_fleet(12), pools=[pool(1001, ["en", "zh"])], flags=flags)
    real = node_registry.plan_config

    def racing(c, capture):
        for op, k, langs in ops:
            node_id = f"n{k:04d}" if k < 12 else "fresh"
            try:
                if op == "register":
                    reg.register_node_with_policy(node_info(f"new{k}", langs), "replace")
                elif op == "replace":
                    reg.register_node_with_policy(node_info(node_id, langs), "replace")
                elif op == "remove":
                    reg.remove_node(node_id)
                elif op == "disconnect":
                    reg.disconnect_node(node_id)
                elif op == "languages":
                    reg.update_node_heartbeat(node_id, beat(language_capabilities=caps(langs)))
                else:
                    reg.mark_node_draining(node_id)
            except node_registry.UnknownNodeError:
                pass  # removed or disconnected by an earlier op
        return real(c, capture)

    with monkeypatch_ops.context() as patch:
        patch.setattr(node_registry, "plan_config", racing)
        reg.set_phase3_config(cfg)
    assert reg.verify_consistency() == []
    fleet = reg._fleet
    live = [r for r in fleet.nodes.values() if not r.disconnected]
    assert fleet.set_counts == Counter(s for s in (counted_set(r, fleet.cfg) for r in live) if s is not None)
    assert fleet._journals == () and reg._mirror._journals == ()


@pytest.fixture(scope="module")
def monkeypatch_ops():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()
