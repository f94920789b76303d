"""Delta publish (docs/HOTPATH.md): the generation derived from the previous one
and the nodes that changed equals a full rebuild of the same state.

The oracle is ``build_snapshot`` of the fleet at the same version: after every
step of a random sequence of registrations, removals, disconnections,
capability changes (with languages no node had), drains, load beats and config
changes, the published generation is compared with it column by column
(``generation_differences``: every array, the names, lang ids, pool index) and
decision by decision (the compiled kernels on both give the same selections).
The previous generation's arrays are checked unchanged after each publish.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from helpers import (
    CORE_SERVICES,
    FakeClock,
    beat,
    capabilities,
    caps,
    fleet_of,
    installed_services,
    make_registry,
    node_info,
    phase3,
    pool,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pyscheduler import JobRequest, MigrationFlags, NodeInfo
from pyscheduler.domain.errors import ConfigError
from pyscheduler.domain.model import LanguageCapabilities, ServiceType
from pyscheduler.runtime.delta import derive_snapshot, generation_differences
from pyscheduler.runtime.snapshot import NodeIndex, build_snapshot
from pyscheduler.selection import fast
from pyscheduler.state.changes import CHANGE_LOG_LIMIT, ChangeLog

pytestmark = pytest.mark.hotpath

# ids that sort before, between and after each other (and one outside ASCII)
IDS = ("a0", "b1", "b2", "m5", "n00", "n01", "n10", "z9", "zé")
# node-only languages no pool has, some sorting before every pool language
EXTRA = ("aa", "ko", "xx", "zz")
CONFIGS = (
    phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja", "zh"]), pool(3, ["de", "en"])),
    phase3(pool(1, ["en", "zh"]), pool(4, ["ben", "en"]), membership="most_specific", hash_seed=7),
    phase3(pool(2, ["en", "zh"]), auto_generate_language_pools=True),
)
FLAGS = {
    "management": MigrationFlags.all_on(),
    "fleet": MigrationFlags(False, True, True, True, False, 100),  # built under the registry lock
}
CORE = ServiceType.ASR | ServiceType.NMT | ServiceType.TTS
JOBS = tuple(
    JobRequest(src, tgt, required_types=types, exclude_node_ids=frozenset(excl), preferred_node_id=pref)
    for src, tgt in (("en", "zh"), ("zh", "en"), ("auto", "ja"), ("de", "en"), ("aa", "en"), ("en", "zz"))
    for types, excl, pref in ((CORE, (), None), (ServiceType.NMT, ("b1", "zé"), "m5"), (ServiceType.ASR, ("a0",), None))
)  # fmt: skip


@st.composite
def extended_caps(draw) -> LanguageCapabilities:
    """The helpers' capabilities, sometimes with node-only languages added."""
    base = draw(capabilities())
    extra = draw(st.lists(st.sampled_from(EXTRA), max_size=2, unique=True))
    if not extra:
        return base
    return replace(base, asr=tuple(sorted({*base.asr, *extra})), nmt_languages=tuple(sorted({*base.nmt_languages, *extra})))


@st.composite
def infos(draw, node_id: str) -> NodeInfo:
    return NodeInfo(
        node_id,
        has_gpu=draw(st.sampled_from([True, True, False])),
        accept_public_jobs=draw(st.booleans()),
        max_concurrent_jobs=draw(st.integers(1, 4)),
        installed_services=draw(installed_services()),
        language_capabilities=draw(extended_caps()),
    )


def compare_with_full_rebuild(reg) -> None:
    snap = reg.snapshot()
    fresh = build_snapshot(fleet_of(reg), snap.loads, snap.version)
    assert generation_differences(snap, fresh) == []
    now = reg._clock()
    for job in JOBS:
        got, got_node = fast.select(snap, job, now, reserve=False)
        want, want_node = fast.select(fresh, job, now, reserve=False)
        assert got.decision() == want.decision() and got_node == want_node, job
    assert reg.verify_consistency() == []


class DeltaMachine(RuleBasedStateMachine):
    """Random topology changes; after each, delta publish == full rebuild."""

    flags = FLAGS["management"]

    @initialize(cfg=st.sampled_from(CONFIGS))
    def start(self, cfg) -> None:
        self.clock = FakeClock()
        self.reg = make_registry(cfg=cfg, flags=self.flags, clock=self.clock)
        self.previous = None  # (generation, copies of its arrays)

    def _live(self) -> list[str]:
        return [n for n in self.reg.node_ids() if self.reg.get_node(n).status.value != "offline"]

    @rule(data=st.data(), node_id=st.sampled_from(IDS))
    def register(self, data, node_id) -> None:
        self.reg.register_node_with_policy(data.draw(infos(node_id)), "replace")
        self.reg.update_node_heartbeat(node_id, beat())

    @rule(node_id=st.sampled_from(IDS))
    def remove(self, node_id) -> None:
        if node_id in self.reg.node_ids():
            self.reg.remove_node(node_id)

    @rule(node_id=st.sampled_from(IDS))
    def disconnect(self, node_id) -> None:
        if node_id in self._live():
            self.reg.disconnect_node(node_id)

    @rule(data=st.data(), node_id=st.sampled_from(IDS))
    def new_capabilities(self, data, node_id) -> None:
        if node_id in self._live():
            hb = beat(language_capabilities=data.draw(extended_caps()))
            if data.draw(st.booleans()):
                hb = replace(hb, installed_services=data.draw(installed_services()))
            self.reg.update_node_heartbeat(node_id, hb)

    @rule(node_id=st.sampled_from(IDS), cpu=st.sampled_from([5.0, 95.0]))
    def load_beat(self, node_id, cpu) -> None:
        if node_id in self._live():
            self.reg.update_node_heartbeat(node_id, beat(cpu=cpu))

    @rule(node_id=st.sampled_from(IDS))
    def drain(self, node_id) -> None:
        if node_id in self._live():
            self.reg.mark_node_draining(node_id)

    @rule(cfg=st.sampled_from(CONFIGS))
    def config_change(self, cfg) -> None:
        try:
            self.reg.set_phase3_config(cfg)
        except ConfigError:  # a configured id held by a generated pool: refused, nothing changed
            pass

    @invariant()
    def delta_equals_full_rebuild(self) -> None:
        if not hasattr(self, "reg"):
            return
        compare_with_full_rebuild(self.reg)
        if self.previous is not None:  # the generation before is untouched
            old, copies = self.previous
            for name, arr in old.columns.items():
                assert not arr.flags.writeable and np.array_equal(arr, copies[name]), name
        snap = self.reg.snapshot()
        self.previous = (snap, {name: arr.copy() for name, arr in snap.columns.items()})


class DeltaMachineOnTheFleet(DeltaMachine):
    flags = FLAGS["fleet"]


_SETTINGS = settings(max_examples=20, stateful_step_count=15, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
TestDeltaMachine = DeltaMachine.TestCase
TestDeltaMachine.settings = _SETTINGS
TestDeltaMachineOnTheFleet = DeltaMachineOnTheFleet.TestCase
TestDeltaMachineOnTheFleet.settings = _SETTINGS


# -- the delta path is taken, and falls back where it must ---------------------------------


@pytest.mark.parametrize("flags", FLAGS.values(), ids=FLAGS.keys())
def test_a_registration_is_published_as_a_delta(flags):
    reg = make_registry([node_info(f"n{i:02d}", ["en", "zh"]) for i in range(0, 20, 2)], cfg=CONFIGS[0], flags=flags)
    first = reg.snapshot()
    before = reg.metrics()["counters"].get("snapshot_deltas", 0)
    reg.register_node_with_policy(node_info("n05", ["en", "zh", "aa"]))  # a middle rank, a new language
    snap = reg.snapshot()
    assert reg.metrics()["counters"]["snapshot_deltas"] == before + 1
    assert snap.node_ids.index("n05") == 3 and snap.lang_ids["aa"] == len(first.lang_ids)
    assert snap.columns["idx_ptr"] is first.columns["idx_ptr"]  # the language index is shared
    compare_with_full_rebuild(reg)
    reg.remove_node("n00")
    reg.disconnect_node("n18")
    compare_with_full_rebuild(reg)
    assert reg.metrics()["counters"]["snapshot_deltas"] == before + 2


@pytest.mark.parametrize("flags", FLAGS.values(), ids=FLAGS.keys())
def test_a_config_change_and_too_many_languages_rebuild_in_full(flags):
    reg = make_registry(["n1", "n2"], cfg=CONFIGS[0], flags=flags)
    reg.snapshot()
    deltas = reg.metrics()["counters"].get("snapshot_deltas", 0)
    reg.set_phase3_config(CONFIGS[1])
    reg.snapshot()
    many = [f"q{i:02d}" for i in range(70)]  # more languages than one bitset word holds
    reg.register_node_with_policy(node_info("n3", ["en", *many]))
    snap = reg.snapshot()
    assert reg.metrics()["counters"].get("snapshot_deltas", 0) == deltas
    assert len(snap.columns["asr_bits"]) == 2 * snap.n_nodes  # two words per bitset
    compare_with_full_rebuild(reg)


def test_a_derived_generation_shares_what_it_did_not_change():
    reg = make_registry(["n1", "n2", "n3"], cfg=CONFIGS[0])
    prev = reg.snapshot()
    fleet = fleet_of(reg)
    same = derive_snapshot(prev, fleet, prev.loads, prev.version + 1, ["n2"])  # a row rewritten as it was
    assert generation_differences(same, build_snapshot(fleet, prev.loads, prev.version + 1)) == []
    assert same.node_index is prev.node_index and same.index is prev.index
    assert derive_snapshot(prev, fleet, prev.loads, prev.version - 1, ["n2"]) is None  # never backwards
    other = make_registry(["n1"], cfg=CONFIGS[0])
    assert derive_snapshot(prev, fleet, other.snapshot().loads, prev.version + 1, ["n2"]) is None


def test_the_comparison_sees_a_changed_column_and_a_stray_language():
    reg = make_registry(["n1", "n2"], cfg=CONFIGS[0])
    snap = reg.snapshot()
    fresh = build_snapshot(fleet_of(reg), snap.loads, snap.version)
    assert generation_differences(snap, fresh) == []
    columns = dict(snap.columns)
    columns["max_jobs"] = columns["max_jobs"] + 1
    assert generation_differences(replace(snap, columns=columns), fresh) == ["column max_jobs differs"]
    langs = {**snap.lang_ids, "stray": len(snap.lang_ids)}
    assert generation_differences(replace(snap, lang_ids=langs), fresh) == []  # an id no row holds
    bits = np.array(snap.columns["asr_bits"])
    bits[0] |= np.uint64(1) << np.uint64(len(snap.lang_ids))
    columns = {**snap.columns, "asr_bits": bits}
    problems = generation_differences(replace(snap, lang_ids=langs, columns=columns), fresh)
    assert problems == ["column asr_bits sets a language the registry's nodes lack"]


def test_excluded_and_preferred_ids_are_found_by_binary_search():
    reg = make_registry([node_info(n, ["en", "zh"]) for n in IDS], cfg=CONFIGS[0])
    snap = reg.snapshot()
    assert isinstance(snap.node_index, NodeIndex)
    assert dict(snap.node_index) == {n: i for i, n in enumerate(sorted(IDS))}
    assert snap.node_index.get("ghost") is None and snap.node_index.get(3) is None and "zé" in snap.node_index
    for keep in IDS:  # every other node excluded: only `keep` can be picked, on the dispatcher
        sel = reg.select_node(JobRequest("en", "zh", exclude_node_ids=frozenset(set(IDS) - {keep})))
        assert sel.node_id == keep
        reg.release(sel)


# -- the record of changes ------------------------------------------------------------------


@given(st.lists(st.tuples(st.sampled_from(["node", "reset"]), st.integers(0, 3), st.sampled_from("abcd")), max_size=40),
       st.integers(0, 30))  # fmt: skip
def test_the_change_log_is_complete_or_says_so(ops, query):
    log, version = ChangeLog(limit=8), 0
    history: list[tuple[int, str | None]] = []  # (version, node id or None for a reset)
    for kind, step, node_id in ops:
        version += step
        if kind == "node":
            log.node(version, node_id)
            history.append((version, node_id))
        else:
            log.reset(version)
            history.append((version, None))
    got = log.since(query)
    if got is not None:
        assert all(v <= query for v, n in history if n is None)  # no reset after ``query``
        assert got >= {n for v, n in history if v >= query and n is not None}
    else:
        assert query < log.floor


def test_the_fleet_records_each_change_and_resets_on_config():
    reg = make_registry(["n1", "n2"], cfg=CONFIGS[0])
    fleet = fleet_of(reg)
    v = fleet.topology_version
    reg.register_node_with_policy(node_info("n3"))
    reg.update_node_heartbeat("n1", beat(language_capabilities=caps(["en", "ja", "zh"])))
    reg.update_node_heartbeat("n2", beat(cpu=50.0, installed_services=CORE_SERVICES))  # load only: not recorded
    assert fleet.changes.since(v + 1) == {"n3", "n1"}
    reg.set_phase3_config(CONFIGS[1])
    assert fleet.changes.since(v + 1) is None and fleet.changes.since(fleet.topology_version) == frozenset()



@pytest.mark.parametrize("flags", FLAGS.values(), ids=FLAGS.keys())
def test_more_changes_than_the_log_keeps_rebuild_in_full(flags):
    reg = make_registry(["n1"], cfg=CONFIGS[0], flags=flags)
    reg.snapshot()
    deltas = reg.metrics()["counters"].get("snapshot_deltas", 0)
    for i in range(CHANGE_LOG_LIMIT + 10):  # the oldest records are forgotten
        reg.register_node_with_policy(node_info(f"m{i:04d}", ["en", "zh"]))
    assert fleet_of(reg).changes.since(reg.snapshot().version - 1) is not None
    assert reg.metrics()["counters"].get("snapshot_deltas", 0) == deltas  # that one was rebuilt in full
    compare_with_full_rebuild(reg)
