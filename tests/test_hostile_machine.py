"""A state machine that mixes valid and invalid calls, on both paths at once.

Every step runs the same call on a legacy registry and (with the extension
built) a fast one. Valid calls (registrations, heartbeats, selections, ends of
reservations, sweeps) must leave the two in the same state; invalid ones (bad
ids, unhashable or wrongly typed arguments, NaN / negative / huge usages,
unencodable strings, values past the documented limits) must raise a
``SchedulerError`` and change nothing: the registry state, the members, the
metrics counters, and ``verify_consistency()`` stays empty.
"""

from __future__ import annotations

import math

from helpers import (
    FakeClock,
    heartbeats,
    jobs,
    node_infos,
    phase3,
    pool,
    registry_state,
)
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pyscheduler import (
    AutoPoolConfig,
    DuplicateNodeError,
    Heartbeat,
    InstalledService,
    JobRequest,
    LanguageCapabilities,
    MigrationFlags,
    NodeInfo,
    NodeRegistry,
    SchedulerError,
    UnknownNodeError,
    _compat,
)
from pyscheduler.domain import limits

BAD_IDS = [[], {}, None, 1, 1.5, b"n01", "\ud800", "n" * (limits.MAX_ID_LENGTH + 1), ("n01",)]
BAD_NUMBERS = [math.nan, -1.0, math.inf, -math.inf, 2**2000, 100.5, "50", None, [], True]
BAD_TIMES = ["abc", "1e12", math.nan, math.inf, 10**400, [], True, object()]
BAD_POOL_IDS = [[], "1", 2**2000, 1.5, None, {}]
BAD_TOKENS = ["1", None, [], 1.5, {}]


def _bad_constructions() -> list:
    """Values that must not even become model objects (a node would send them)."""
    many = [f"l{i}" for i in range(limits.MAX_LANGUAGES_PER_CAPABILITY + 1)]
    return [
        lambda: NodeInfo.from_dict({"node_id": "x", "language_capabilities": {"asr": many}}),
        lambda: NodeInfo.from_dict({"node_id": "x", "labels": {"k": "\udc00"}}),
        lambda: NodeInfo.from_dict({"node_id": [], "max_concurrent_jobs": 2**70}),
        lambda: NodeInfo.from_dict({"installed_services": [{"service_id": "a", "type": [[]]}]}),
        lambda: NodeInfo.from_dict({"installed_services": {"service_id": "a"}}),
        lambda: LanguageCapabilities(nmt_pairs=[[[], "en"]]),
        lambda: InstalledService("a", "ASR", state=[]),
        lambda: JobRequest("en", "zh", routing_key="\ud800"),
        lambda: JobRequest("en", "zh", exclude_node_ids=[[]]),
        lambda: JobRequest("en", "zh", required_types=0),
        lambda: JobRequest([], "zh"),
    ]


def _bad_calls(reg: NodeRegistry, value) -> list:
    job = JobRequest("en", "zh")
    return [
        lambda: reg.register_node_with_policy(value),
        lambda: reg.update_node_heartbeat(value, Heartbeat(1, 1)),
        lambda: reg.update_node_heartbeat("n01", value),
        lambda: reg.update_node_heartbeats([("n01", Heartbeat(1, 1)), (value, Heartbeat(1, 1))]),
        lambda: reg.mark_node_draining(value),
        lambda: reg.disconnect_node(value),
        lambda: reg.remove_node(value),
        lambda: reg.get_node(value),
        lambda: reg.select_node(value),
        lambda: reg.select_nodes_batch([job, value]),
        lambda: reg.set_phase3_config(value),
        lambda: reg.set_core_services_config(value),
        lambda: reg.set_flags(value),
    ]


class HostileMachine(RuleBasedStateMachine):
    """Valid and invalid calls on a legacy and a fast registry side by side."""

    @initialize(generated=st.booleans())
    def setup(self, generated):
        self.clock = FakeClock()
        cfg = phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja", "zh"]),
                     auto_generate_language_pools=generated,
                     auto_pool=AutoPoolConfig(require_semantic=False))
        paths = [MigrationFlags()] + ([MigrationFlags.all_on()] if _compat.HAVE_HOTPATH else [])
        self.regs = [NodeRegistry(cfg, flags=f, clock=self.clock) for f in paths]

    # -- helpers --------------------------------------------------------------------------

    def _same_everywhere(self, call):
        """Run ``call(reg)`` on every registry; all must do the same (value or error class)."""
        outcomes = []
        for reg in self.regs:
            try:
                outcomes.append(("ok", call(reg)))
            except SchedulerError as exc:
                outcomes.append(("error", type(exc)))
        assert all(o == outcomes[0] for o in outcomes), outcomes
        return outcomes[0]

    def _rejected_without_change(self, call):
        for reg in self.regs:
            before, counters = registry_state(reg), reg.metrics()["counters"]
            try:
                call(reg)
            except SchedulerError:
                pass
            else:
                raise AssertionError("invalid input accepted")
            assert registry_state(reg) == before
            assert reg.metrics()["counters"] == counters
            assert reg.verify_consistency() == []

    # -- valid calls -------------------------------------------------------------------------

    @rule(info=node_infos(), policy=st.sampled_from(["reject_duplicate", "replace"]))
    def register(self, info, policy):
        kind, _ = self._same_everywhere(lambda r: r.register_node_with_policy(info, policy))
        assert kind == "ok" or policy == "reject_duplicate"

    @rule(data=st.data())
    def heartbeat(self, data):
        node_id = data.draw(st.sampled_from(self.regs[0].node_ids() + ["ghost"]))
        hb = data.draw(heartbeats())
        self._same_everywhere(lambda r: r.update_node_heartbeat(node_id, hb))

    @rule(data=st.data())
    def select_and_end(self, data):
        job = data.draw(jobs(self.regs[0].node_ids()))
        end = data.draw(st.sampled_from(["keep", "commit", "release"]))

        def place(reg):
            sel = reg.select_node(job)
            if sel.reservation is not None and end != "keep":
                (reg.commit if end == "commit" else reg.release)(sel)
            return sel.decision()

        self._same_everywhere(place)

    @rule(seconds=st.sampled_from([0, 5, 31, 50]))
    def sweep(self, seconds):
        self.clock.advance(seconds)
        self._same_everywhere(lambda r: r.sweep())

    # -- invalid calls -------------------------------------------------------------------------

    @rule(value=st.sampled_from(BAD_IDS), which=st.integers(0, 12))
    def bad_argument(self, value, which):
        self._rejected_without_change(lambda r: _bad_calls(r, value)[which]())

    @rule(value=st.sampled_from(BAD_NUMBERS), field=st.sampled_from(["cpu", "memory", "gpu", "jobs"]))
    def bad_usage(self, value, field):
        def call(reg):
            args = {"cpu": (value, 1.0), "memory": (1.0, value), "gpu": (1.0, 1.0, value),
                    "jobs": (1.0, 1.0, None, value)}[field]
            if field == "gpu" and value is None:
                raise SchedulerError("None is a valid gpu_usage: nothing to test")
            node_id = (reg.node_ids() or ["ghost"])[0]
            reg.update_node_heartbeat(node_id, Heartbeat(*args))

        self._rejected_without_change(call)

    @rule(value=st.sampled_from(BAD_TIMES))
    def bad_sweep(self, value):
        self._rejected_without_change(lambda r: r.sweep(value))

    @rule(value=st.sampled_from(BAD_POOL_IDS), members=st.booleans())
    def bad_pool_id(self, value, members):
        if members:
            self._rejected_without_change(lambda r: r.pool_members(value))
        else:
            self._rejected_without_change(lambda r: r.select_node_from_pool(value, JobRequest("en", "zh")))

    @rule(value=st.sampled_from(BAD_TOKENS), commit=st.booleans())
    def bad_token(self, value, commit):
        self._rejected_without_change(lambda r: (r.commit if commit else r.release)(value))

    @rule(which=st.integers(0, len(_bad_constructions()) - 1))
    def bad_message(self, which):
        self._rejected_without_change(lambda r: _bad_constructions()[which]())

    @rule(types=st.sampled_from([0, [], "XYZ", -1, 2**40, None]))
    def bad_types(self, types):
        self._rejected_without_change(lambda r: r.select_eligible_pools("en", "zh", required_types=types))

    @rule(data=st.data())
    def duplicate_registration(self, data):
        ids = self.regs[0].node_ids()
        if not ids:
            return
        info = data.draw(node_infos(data.draw(st.sampled_from(ids))))
        for reg in self.regs:
            if reg.get_node(info.node_id).status.value == "offline":
                return  # a disconnected node may register again

        def call(reg):
            try:
                reg.register_node_with_policy(info)
            except DuplicateNodeError:
                raise
            except UnknownNodeError:  # pragma: no cover
                raise AssertionError("wrong error") from None

        self._rejected_without_change(call)

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def consistent_and_alike(self):
        states = [registry_state(r) for r in self.regs]
        for reg in self.regs:
            assert reg.verify_consistency() == []
        assert all(s == states[0] for s in states)


HostileMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30)
TestHostileMachine = HostileMachine.TestCase
