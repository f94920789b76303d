"""Load-only heartbeats of steady nodes in one compiled call (``_hotpath.SteadyBeats``).

A READY node's load-only, healthy beat is applied by one compiled call when
the registry lock is free; every other beat takes the Python path. These
tests pin down which beats go where, that the compiled beat reads the clock
once and leaves everything but the load record alone, and — with a
``RuleBasedStateMachine`` driving a registry with the compiled beat and one
without it through the same steps — that nothing observable differs: node
views (status and load figures), membership, counters, consistency and every
selection. docs/HOTPATH.md, "Heartbeats in one call", has the design.
"""

from __future__ import annotations

import random
import threading

import pytest
from helpers import (
    CORE_SERVICES,
    FakeClock,
    beat,
    caps,
    core_services_configs,
    heartbeats,
    jobs,
    make_registry,
    node_info,
    node_infos,
    phase3_configs,
    registry_state,
    services,
    unhealthy_beat,
)
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

from pyscheduler import (
    Heartbeat,
    InvalidHeartbeatError,
    JobRequest,
    MigrationFlags,
    NodeRegistry,
    NodeStatus,
    UnknownNodeError,
)
from pyscheduler.domain.events import ChangeKind

pytestmark = pytest.mark.hotpath


def applied(reg: NodeRegistry) -> int:
    """Beats the compiled call applied so far."""
    return reg._steady.applied


def heartbeat_count(reg: NodeRegistry) -> int:
    return reg.metrics()["counters"].get("heartbeats", 0)


def ready_registry(*ids: str, clock: FakeClock | None = None, **kw) -> NodeRegistry:
    return make_registry(ids or ("n1",), clock=clock or FakeClock(), pools=[], **kw)


# -- which beats take the compiled call -------------------------------------------------------


@pytest.mark.parametrize("flags", [MigrationFlags.all_on(), MigrationFlags.legacy()], ids=["fast", "legacy"])
def test_a_steady_nodes_load_only_beat_is_one_compiled_call(flags):
    clock = FakeClock()
    reg = ready_registry("n1", "n2", clock=clock, flags=flags)  # the first beat made them READY
    assert applied(reg) == 0 and heartbeat_count(reg) == 2
    holds = reg.metrics()["histograms"]["registry_lock_hold_s"]["count"]
    clock.advance(3)
    assert reg.update_node_heartbeat("n1", beat(cpu=42.5, mem=7.0, gpu=None, jobs=3)) is NodeStatus.READY
    assert applied(reg) == 1
    view = reg.get_node("n1")
    assert (view.cpu_usage, view.memory_usage, view.gpu_usage, view.running_jobs) == (42.5, 7.0, None, 3)
    assert view.last_heartbeat == clock.now and view.status is NodeStatus.READY
    assert reg.get_node("n2").cpu_usage == 10.0  # only that node's record
    metrics = reg.metrics()
    assert metrics["counters"]["heartbeats"] == 3  # counted with the Python path's beats
    # no registry lock was taken for it: the holds since are the first metrics()
    # call's own (recorded after its snapshot) and the two get_node calls
    assert metrics["histograms"]["registry_lock_hold_s"]["count"] == holds + 3
    assert reg.verify_consistency() == []


def test_registration_and_first_beat_take_the_python_path():
    reg = ready_registry("n1", ready=False)
    assert reg._steady.slot_of("n1") == -1  # REGISTERING
    assert reg.update_node_heartbeat("n1", beat()) is NodeStatus.READY
    assert applied(reg) == 0  # the transition to READY is the Python path's
    assert reg._steady.slot_of("n1") == reg._fleet.nodes["n1"].slot
    reg.update_node_heartbeat("n1", beat())
    assert applied(reg) == 1


def test_unhealthy_beats_and_their_streak_take_the_python_path():
    reg = ready_registry("n1")
    assert reg.update_node_heartbeat("n1", unhealthy_beat()) is NodeStatus.READY  # streak 1
    assert reg._steady.slot_of("n1") == -1
    # a load-only beat is unhealthy too now (the node reports its services stopped)
    for _ in range(2):
        reg.update_node_heartbeat("n1", beat())
    assert reg.get_node("n1").status is NodeStatus.DEGRADED
    assert applied(reg) == 0
    # healthy again: the Python path makes it READY, the next beat is compiled
    assert reg.update_node_heartbeat("n1", beat(installed_services=CORE_SERVICES)) is NodeStatus.READY
    reg.update_node_heartbeat("n1", beat(cpu=1.0))
    assert applied(reg) == 1 and reg.get_node("n1").cpu_usage == 1.0


def test_a_ready_node_with_an_unhealthy_streak_is_not_steady():
    reg = ready_registry("n1")
    reg.update_node_heartbeat("n1", unhealthy_beat())  # streak 1, still READY
    reg.update_node_heartbeat("n1", beat(installed_services=CORE_SERVICES))  # healthy: streak 0
    assert reg._fleet.nodes["n1"].unhealthy_streak == 0 and applied(reg) == 0
    reg.update_node_heartbeat("n1", beat())
    assert applied(reg) == 1


def test_capability_changes_take_the_python_path():
    reg = make_registry(["n1"], pools=[], auto_generate_language_pools=True, clock=FakeClock())
    reg.update_node_heartbeat("n1", beat(language_capabilities=caps(["en", "ja"])))
    reg.update_node_heartbeat("n1", beat(installed_services=services("ASR", "NMT", "TTS", "SEMANTIC")))
    assert applied(reg) == 0
    assert reg.get_node("n1").info.language_capabilities == caps(["en", "ja"])
    reg.update_node_heartbeat("n1", beat())
    assert applied(reg) == 1


@pytest.mark.parametrize("op", ["mark_node_draining", "disconnect_node", "remove_node", "sweep"])
def test_a_node_leaving_ready_leaves_the_steady_set(op):
    clock = FakeClock()
    reg = ready_registry("n1", clock=clock)
    if op == "sweep":
        clock.advance(reg.phase3_config.heartbeat_timeout_s + 1)
        assert reg.sweep() == ["n1"]
    else:
        getattr(reg, op)("n1")
    assert reg._steady.slot_of("n1") == -1 and len(reg._steady) == 0
    if op in ("disconnect_node", "remove_node"):
        with pytest.raises(UnknownNodeError):
            reg.update_node_heartbeat("n1", beat())
    else:
        status = reg.update_node_heartbeat("n1", beat())
        assert status is (NodeStatus.DRAINING if op == "mark_node_draining" else NodeStatus.READY)
    assert applied(reg) == 0


def test_a_re_registered_node_is_steady_at_its_new_slot_only():
    reg = ready_registry("n1")
    old_slot = reg._fleet.nodes["n1"].slot
    held = reg.snapshot()  # a live generation keeps the old slot out of reuse
    reg.register_node_with_policy(node_info("n1"), "replace")
    assert reg._steady.slot_of("n1") == -1
    reg.update_node_heartbeat("n1", beat())
    new_slot = reg._fleet.nodes["n1"].slot
    assert new_slot != old_slot and reg._steady.slot_of("n1") == new_slot
    reg._steady.evict("n1", old_slot)  # the old registration's eviction: not this one's
    assert reg._steady.slot_of("n1") == new_slot
    del held


def test_bad_input_gets_the_python_paths_named_errors():
    reg = ready_registry("n1")
    before = registry_state(reg)
    for node_id, hb, error in [
        ("ghost", beat(), UnknownNodeError),
        (1, beat(), UnknownNodeError),
        ("n1", None, InvalidHeartbeatError),
        ("n1", (10.0, 10.0), InvalidHeartbeatError),
    ]:
        with pytest.raises(error):
            reg.update_node_heartbeat(node_id, hb)
    assert registry_state(reg) == before and applied(reg) == 0


def test_a_heartbeat_subclass_or_a_str_subclass_id_takes_the_python_path():
    class MyBeat(Heartbeat):
        __slots__ = ()

    class MyId(str):
        pass

    reg = ready_registry("n1")
    assert reg.update_node_heartbeat("n1", MyBeat(5.0, 5.0)) is NodeStatus.READY
    assert reg.update_node_heartbeat(MyId("n1"), beat(cpu=6.0)) is NodeStatus.READY
    assert applied(reg) == 0 and reg.get_node("n1").cpu_usage == 6.0
    reg2 = ready_registry(MyId("m1"))  # an id of a str subclass is never admitted
    assert len(reg2._steady) == 0
    reg2.update_node_heartbeat("m1", beat())
    assert applied(reg2) == 0


def test_with_a_listener_every_beat_emits_its_event():
    reg = ready_registry("n1")
    events = []
    unsubscribe = reg.subscribe(events.append)
    reg.update_node_heartbeat("n1", beat(cpu=3.0))
    assert applied(reg) == 0
    assert [(e.kind, e.node_id, e.status) for e in events] == [(ChangeKind.HEARTBEAT, "n1", NodeStatus.READY)]
    unsubscribe()
    reg.update_node_heartbeat("n1", beat(cpu=4.0))
    assert applied(reg) == 1 and len(events) == 1
    assert reg.get_node("n1").cpu_usage == 4.0


def test_two_listeners_keep_the_python_path_until_both_left():
    reg = ready_registry("n1")
    first, second = reg.subscribe(lambda e: None), reg.subscribe(lambda e: None)
    first()
    reg.update_node_heartbeat("n1", beat())
    assert applied(reg) == 0
    second()
    reg.update_node_heartbeat("n1", beat())
    assert applied(reg) == 1


# -- the clock and the registry lock ------------------------------------------------------------


class CountingClock(FakeClock):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return super().__call__()


def test_the_clock_is_read_once_per_beat_on_either_path():
    clock = CountingClock()
    reg = ready_registry("n1", clock=clock)
    for hb, compiled in [(beat(), True), (unhealthy_beat(), False), (beat(installed_services=CORE_SERVICES), False)]:
        before, was = clock.calls, applied(reg)
        reg.update_node_heartbeat("n1", hb)
        assert clock.calls == before + 1
        assert applied(reg) == was + compiled


def test_a_failing_clock_changes_nothing():
    clock = FakeClock()
    reg = ready_registry("n1", clock=clock)
    before = registry_state(reg)

    def broken() -> float:
        raise RuntimeError("clock failed")

    reg._steady.__init__(reg._loads, reg._lock.probe, broken, Heartbeat)  # a registry with this clock
    reg._steady.admit("n1", reg._fleet.nodes["n1"].slot)
    with pytest.raises(RuntimeError, match="clock failed"):
        reg.update_node_heartbeat("n1", beat(cpu=99.0))
    assert registry_state(reg) == before and applied(reg) == 0


def test_a_clock_value_that_is_not_a_number_changes_nothing():
    reg = ready_registry("n1")
    slot = reg._fleet.nodes["n1"].slot
    before = reg._loads.get(slot)
    steady = reg._steady
    steady.__init__(reg._loads, reg._lock.probe, lambda: "soon", Heartbeat)
    steady.admit("n1", slot)
    with pytest.raises(TypeError):
        steady.beat("n1", beat(cpu=50.0))
    assert reg._loads.get(slot) == before and steady.applied == 0


def test_a_beat_never_lands_while_the_registry_lock_is_held():
    """The compiled call finds the lock held, hands its clock reading to the
    Python path, which waits for the lock: the holder sees no change."""
    reg = ready_registry("n1")
    slot = reg._fleet.nodes["n1"].slot
    clock_read = threading.Event()

    def clock() -> float:
        clock_read.set()
        return 2000.0

    reg._clock = clock
    reg._steady.__init__(reg._loads, reg._lock.probe, clock, Heartbeat)
    reg._steady.admit("n1", slot)
    before = reg._loads.get(slot)
    with reg._lock.at("test"):
        worker = threading.Thread(target=reg.update_node_heartbeat, args=("n1", beat(cpu=77.0, jobs=2)))
        worker.start()
        assert clock_read.wait(30)
        # the worker read the clock; whatever it does next, it cannot write while we hold the lock
        for _ in range(1000):
            assert reg._loads.get(slot) == before
        clock_read.clear()
    worker.join(30)
    assert not worker.is_alive()
    assert not clock_read.is_set()  # the Python path used the compiled call's reading
    view = reg.get_node("n1")
    assert (view.cpu_usage, view.running_jobs, view.last_heartbeat) == (77.0, 2, 2000.0)
    assert applied(reg) == 0 and heartbeat_count(reg) == 2


def test_steady_beats_direct_interface():
    from pyscheduler import _compat

    hp = _compat.hotpath
    loads = hp.LoadTable()
    loads.ensure(3)
    loads.reset(3, 1.0)
    lock = threading.Lock()
    steady = hp.SteadyBeats(loads, lock.locked, lambda: 5.0, Heartbeat)
    assert steady.beat("a", beat()) is None  # not steady
    with pytest.raises(IndexError):
        steady.admit("a", 1 << 40)
    steady.admit("a", 3)
    assert steady.beat("a", beat(cpu=1.0, mem=2.0, gpu=3.0, jobs=4)) is True
    assert loads.get(3) == (4, 0, 1.0, 2.0, 3.0, 5.0)
    with lock:
        assert steady.beat("a", beat()) == (5.0,)
    assert steady.beat("a", beat(installed_services=CORE_SERVICES)) is None
    steady.set_enabled(False)
    assert steady.beat("a", beat()) is None
    steady.set_enabled(True)
    steady.set_quiet(False)
    assert steady.beat("a", beat()) is None
    steady.set_quiet(True)
    steady.evict("a", 3)
    assert steady.beat("a", beat()) is None and len(steady) == 0
    assert steady.applied == 1 and loads.get(3) == (4, 0, 1.0, 2.0, 3.0, 5.0)
    with pytest.raises(TypeError):
        hp.SteadyBeats(loads, lock.locked, lambda: 5.0, JobRequest)  # not Heartbeat-shaped
    bare = hp.SteadyBeats.__new__(hp.SteadyBeats)  # never initialised: inert, never crashes
    assert bare.beat("a", beat()) is None
    with pytest.raises(RuntimeError):
        bare.admit("a", 0)


# -- equivalence: the compiled beat on and off, step for step ---------------------------------


_STEADY_BEATS = st.builds(
    Heartbeat,
    st.sampled_from([0.0, 20.0, 84.9, 90.0, 100.0]),
    st.sampled_from([0.0, 20.0, 90.0]),
    st.sampled_from([None, 0.0, 10.0, 95.0]),
    st.integers(0, 5),
)


class CompiledBeatMachine(RuleBasedStateMachine):
    """Two registries driven through the same steps, the compiled heartbeat on
    in one and off in the other; after every step they agree on everything."""

    pairs = Bundle("pairs")  # (selection on, selection off)

    @initialize(cfg=phase3_configs(), core=core_services_configs(), legacy=st.booleans())
    def setup(self, cfg, core, legacy):
        flags = MigrationFlags.legacy() if legacy else MigrationFlags.all_on()
        self.clock = FakeClock()
        self.on = NodeRegistry(cfg, core, flags=flags, clock=self.clock)
        self.off = NodeRegistry(cfg, core, flags=flags, clock=self.clock)
        self.off._steady.set_enabled(False)

    def both(self, call):
        """``call(registry)`` on both; the same result or the same error type."""
        results = []
        for reg in (self.on, self.off):
            try:
                results.append(("ok", call(reg)))
            except Exception as exc:  # noqa: BLE001 - compared below
                results.append(("error", type(exc)))
        assert results[0] == results[1]
        return results[0]

    def known(self) -> list[str]:
        return self.on.node_ids()

    @rule(info=node_infos(), policy=st.sampled_from(["reject_duplicate", "replace"]), hb=_STEADY_BEATS)
    def register(self, info, policy, hb):
        """Register, then report once (READY when the node's services are healthy)."""
        self.both(lambda reg: reg.register_node_with_policy(info, policy))
        self.both(lambda reg: reg.update_node_heartbeat(info.node_id, hb))

    @rule(data=st.data(), seconds=st.sampled_from([0, 1, 15]))
    def steady_beats(self, data, seconds):
        """The common case: load-only healthy reports, from a few nodes."""
        self.clock.advance(seconds)
        ids = self.known() + ["ghost"]
        for node_id, hb in data.draw(st.lists(st.tuples(st.sampled_from(ids), _STEADY_BEATS), max_size=6)):
            self.both(lambda reg, node_id=node_id, hb=hb: reg.update_node_heartbeat(node_id, hb))

    @rule(data=st.data(), hb=heartbeats())
    def any_beat(self, data, hb):
        """Any report: unhealthy, new services or languages, loads over the threshold."""
        node_id = data.draw(st.sampled_from(self.known() + ["ghost"]))
        self.both(lambda reg, node_id=node_id, hb=hb: reg.update_node_heartbeat(node_id, hb))

    @rule(data=st.data())
    def unhealthy(self, data):
        node_id = data.draw(st.sampled_from(self.known() + ["ghost"]))
        self.both(lambda reg: reg.update_node_heartbeat(node_id, unhealthy_beat()))

    @rule(data=st.data(), op=st.sampled_from(["mark_node_draining", "disconnect_node", "remove_node"]))
    def lifecycle(self, data, op):
        node_id = data.draw(st.sampled_from(self.known() + ["ghost"]))
        self.both(lambda reg: getattr(reg, op)(node_id))

    @rule(seconds=st.sampled_from([0, 5, 20, 31, 50, 70]))
    def sweep(self, seconds):
        self.clock.advance(seconds)
        self.both(lambda reg: reg.sweep())

    @rule(target=pairs, data=st.data())
    def select(self, data):
        job = data.draw(jobs(self.known()))
        on, off = self.on.select_node(job), self.off.select_node(job)
        assert on.decision() == off.decision()
        return (on, off)

    @rule(pair=consumes(pairs), commit=st.booleans())
    def end(self, pair, commit):
        on, off = pair
        if on.reservation is None:
            return
        self.both(lambda reg: (reg.commit if commit else reg.release)(on if reg is self.on else off))

    @rule(cfg=phase3_configs())
    def set_phase3(self, cfg):
        self.both(lambda reg: reg.set_phase3_config(cfg))

    @rule(data=st.data())
    def beats_with_a_listener(self, data):
        """A subscriber takes every beat to the Python path (which emits its
        event) while it is there; unsubscribed, the compiled beat is back."""
        events: list = []
        unsubscribe = self.on.subscribe(events.append)
        ids = self.known() + ["ghost"]
        beats = data.draw(st.lists(st.tuples(st.sampled_from(ids), _STEADY_BEATS), max_size=4))
        applied_before, beaten = applied(self.on), []
        try:
            for node_id, hb in beats:
                if self.both(lambda reg, node_id=node_id, hb=hb: reg.update_node_heartbeat(node_id, hb))[0] == "ok":
                    beaten.append(node_id)
        finally:
            unsubscribe()
        assert applied(self.on) == applied_before
        assert [e.node_id for e in events] == beaten

    @invariant()
    def same_everything(self):
        if not hasattr(self, "on"):
            return
        assert registry_state(self.on) == registry_state(self.off)
        assert heartbeat_count(self.on) == heartbeat_count(self.off)
        assert self.on.verify_consistency() == [] and self.off.verify_consistency() == []
        gauges_on, gauges_off = self.on.metrics()["gauges"], self.off.metrics()["gauges"]
        assert gauges_on["nodes_by_status"] == gauges_off["nodes_by_status"]

    @invariant()
    def steady_set_is_the_steady_nodes(self):
        if not hasattr(self, "on"):
            return
        fleet = self.on._fleet
        want = {nid: rec.slot for nid, rec in fleet.nodes.items() if rec.steady}
        assert {nid: self.on._steady.slot_of(nid) for nid in fleet.nodes if self.on._steady.slot_of(nid) >= 0} == want
        assert len(self.on._steady) == len(want)


CompiledBeatMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30)
TestCompiledBeatMachine = CompiledBeatMachine.TestCase


def test_the_machine_exercises_the_compiled_beat():
    """A fixed run of the machine's steps: the compiled call does apply beats
    (so the equivalence above is not vacuous)."""
    clock = FakeClock()
    on = make_registry([f"n{i}" for i in range(4)], pools=[], clock=clock)
    off = make_registry([f"n{i}" for i in range(4)], pools=[], clock=clock)
    off._steady.set_enabled(False)
    rng = random.Random(7)
    for step in range(400):
        node_id = f"n{rng.randrange(4)}"
        hb = beat(cpu=rng.choice([1.0, 50.0, 90.0]), jobs=rng.randrange(4))
        if step % 37 == 0:
            hb = unhealthy_beat()
        elif step % 53 == 0:
            hb = beat(installed_services=CORE_SERVICES)
        clock.advance(rng.choice([0, 1, 20]))
        assert on.update_node_heartbeat(node_id, hb) is off.update_node_heartbeat(node_id, hb)
        if step % 41 == 0:
            assert on.sweep() == off.sweep()
        job = JobRequest("en", "zh", routing_key=str(step))
        assert on.select_node(job).decision() == off.select_node(job).decision()
        assert registry_state(on) == registry_state(off)
    assert applied(on) > 100 and applied(off) == 0
    assert heartbeat_count(on) == heartbeat_count(off)


# -- threads ------------------------------------------------------------------------------------


def test_concurrent_beats_selects_and_lifecycle_keep_the_registry_whole():
    """Beat threads (each owning some nodes), a selecting thread and a thread
    that sweeps, drains and re-registers one node and toggles a listener: no
    exception, every beat counted, each node's record holds its last beat."""
    n_nodes, beaters, beats_each = 24, 3, 3000
    ids = [f"n{i:02d}" for i in range(n_nodes)]
    reg = NodeRegistry(flags=MigrationFlags.all_on())  # the real clock: nothing times out here
    for node_id in ids:
        reg.register_node_with_policy(node_info(node_id))
        reg.update_node_heartbeat(node_id, beat())
    last: dict[str, Heartbeat] = {}
    errors: list[BaseException] = []
    stop = threading.Event()
    start = threading.Barrier(beaters + 2)
    owned = [ids[k::beaters] for k in range(beaters)]
    owned[0] = [i for i in owned[0] if i != "n00"]  # n00 belongs to the lifecycle thread

    def guard(fn):
        def run(*args):
            try:
                start.wait()
                fn(*args)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                stop.set()
        return run

    @guard
    def beater(k: int) -> None:
        rng = random.Random(k)
        mine = owned[k]
        for i in range(beats_each):
            node_id = mine[i % len(mine)]
            hb = Heartbeat(rng.choice([5.0, 30.0, 60.0]), rng.choice([5.0, 40.0]), None, rng.randrange(3))
            assert reg.update_node_heartbeat(node_id, hb) is NodeStatus.READY
            last[node_id] = hb

    @guard
    def selector() -> None:
        i = 0
        while not stop.is_set():
            sel = reg.select_node(JobRequest("en", "zh", routing_key=str(i)))
            if sel.ok:
                assert sel.node_id in ids
                # n00 may be registered again (lifecycle) between the select and the
                # release, which ends its old registration's reservations: False then
                assert reg.release(sel) or sel.node_id == "n00"
            i += 1

    lifecycle_beats = [0]

    @guard
    def lifecycle() -> None:
        i = 0
        while not stop.is_set():
            lifecycle_beats[0] += 1
            reg.sweep()
            if i % 3 == 0:
                unsubscribe = reg.subscribe(lambda e: None)
                reg.update_node_heartbeat("n00", beat())
                unsubscribe()
            elif i % 3 == 1:
                reg.mark_node_draining("n00")
                assert reg.update_node_heartbeat("n00", beat()) is NodeStatus.DRAINING
            else:
                reg.register_node_with_policy(node_info("n00"), "replace")
                assert reg.update_node_heartbeat("n00", beat()) is NodeStatus.READY
            i += 1

    threads = [threading.Thread(target=beater, args=(k,)) for k in range(beaters)]
    threads += [threading.Thread(target=selector), threading.Thread(target=lifecycle)]
    for t in threads:
        t.start()
    for t in threads[:beaters]:
        t.join(300)
    stop.set()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    for node_id, hb in last.items():
        view = reg.get_node(node_id)
        assert view.status is NodeStatus.READY
        assert (view.cpu_usage, view.memory_usage, view.gpu_usage, view.running_jobs) == (
            hb.cpu_usage, hb.memory_usage, hb.gpu_usage, hb.current_jobs,
        )
        assert view.reserved_jobs == 0
    assert reg.verify_consistency() == []
    assert applied(reg) > 0
    counters = reg.metrics()["counters"]
    assert counters["heartbeats"] == n_nodes + beaters * beats_each + lifecycle_beats[0]


def test_the_compiled_beat_holds_no_references():
    """No reference is kept or lost on any of the call's answers (applied,
    declined, lock busy)."""
    import sys

    from pyscheduler import _compat

    loads = _compat.hotpath.LoadTable()
    loads.ensure(0)
    lock = threading.Lock()
    now = 12345.5
    steady = _compat.hotpath.SteadyBeats(loads, lock.locked, lambda: now, Heartbeat)
    steady.admit("a", 0)
    hb = Heartbeat(11.5, 22.5, 33.5, 700)
    fields = (hb, hb.cpu_usage, hb.memory_usage, hb.gpu_usage, hb.current_jobs, now)
    before = [sys.getrefcount(x) for x in fields]
    for _ in range(1000):
        assert steady.beat("a", hb) is True
        assert steady.beat("b", hb) is None
        with lock:
            assert steady.beat("a", hb) == (now,)
    assert [sys.getrefcount(x) for x in fields] == before


def test_verify_consistency_checks_the_steady_table():
    reg = ready_registry("n1", "n2")
    assert reg.verify_consistency() == []
    slot = reg._fleet.nodes["n1"].slot
    reg._steady.evict("n1", slot)  # a record that did not get out of the table ...
    assert reg.verify_consistency() == [f"node n1: steady-table slot -1 != expected {slot} (status ready)"]
    reg._steady.admit("n1", slot)
    reg._steady.admit("ghost", slot)  # ... or an id the registry does not know
    assert reg.verify_consistency() == ["steady table holds 3 ids, 1 of them unknown nodes"]
