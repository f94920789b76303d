"""Consistency under churn: a published snapshot never carries the current
topology version with older pools or an older core config.

A full resync of the management copy used to install the new version (with
the core config) first and the new pools in a second step. A snapshot built
from a capture taken between the two steps (by a dispatch thread, outside the
registry lock) was labelled with the current version while holding the old
pools, so dispatch used stale pools until the next change and
``verify_consistency`` reported "pool ids differ". The deterministic test
below builds a snapshot exactly at that point; the stress test runs the
pattern that exposed it a bounded number of times.
"""

from __future__ import annotations

import random
import sys
import threading

import pytest
from helpers import CORE_SERVICES, beat, caps, make_registry, node_info, phase3, pool

from pyscheduler import CoreServicesConfig, JobRequest, MigrationFlags
from pyscheduler.state.management import ManagementRegistry

CONFIG_A = phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja", "zh"]))
CONFIG_B = phase3(pool(3, ["de", "en"]), pool(4, ["en", "zh"]), enable_session_affinity=True)
LANGS = ["en", "zh", "ja", "de"]


def _fleet(n: int) -> list:
    rng = random.Random(n)
    return [node_info(f"n{i:04d}", rng.sample(LANGS, rng.randrange(2, 5))) for i in range(n)]


def _capture_mid_resync(monkeypatch, reg) -> list:
    """Publish a snapshot from inside every pool swap of the management copy
    (a full resync's ``set_pools``, a prepared config change's ``install``), as
    a dispatch thread could (it takes no registry lock)."""
    published = []
    for name in ("set_pools", "install"):
        real = getattr(ManagementRegistry, name)

        def hooked(self, *args, _real=real, **kwargs):
            published.append(reg._publish_from_management())  # the capture a reader may take here
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(ManagementRegistry, name, hooked)
    return published


@pytest.mark.hotpath
@pytest.mark.parametrize("change", ["phase3", "core_services"])
def test_a_capture_between_resync_steps_never_looks_current(monkeypatch, change):
    reg = make_registry(_fleet(20), cfg=CONFIG_A, flags=MigrationFlags.all_on())
    reg.select_node(JobRequest("en", "zh"))
    published = _capture_mid_resync(monkeypatch, reg)
    if change == "phase3":
        reg.set_phase3_config(CONFIG_B)
    else:
        reg.set_core_services_config(CoreServicesConfig(asr_service_id="asr"))
    assert published, "the hook did not run"
    assert reg.verify_consistency() == []
    snap = reg.snapshot()
    assert snap.pool_ids == tuple(p.pool_id for p in reg.pools())
    assert snap.version == reg.metrics()["gauges"]["topology_version"]
    for mid in published:  # what a reader built mid-swap is not taken for the new version
        assert mid.version < snap.version or mid.pool_ids == snap.pool_ids


@pytest.fixture
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


ROUNDS = 5
FLIPS = 40


def _one_round(seed: int) -> None:
    reg = make_registry(_fleet(400), cfg=CONFIG_A, flags=MigrationFlags.all_on())
    done = threading.Event()
    errors: list[BaseException] = []

    def guarded(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # reported below
                errors.append(exc)
                done.set()
        return run

    def dispatcher(seed: int) -> None:
        rng = random.Random(seed)
        while not done.is_set():
            src, tgt = rng.sample(LANGS, 2)
            sel = reg.select_node(JobRequest(src, tgt, session_id=f"s{rng.randrange(30)}"))
            if sel.reservation is not None:
                reg.release(sel)

    def heartbeats(seed: int) -> None:
        rng = random.Random(seed)
        while not done.is_set():
            node_id = f"n{rng.randrange(400):04d}"
            if rng.randrange(10) == 0:
                hb = beat(language_capabilities=caps(rng.sample(LANGS, 3)))
            else:
                hb = beat(cpu=rng.choice([5.0, 50.0]), installed_services=CORE_SERVICES)
            reg.update_node_heartbeat(node_id, hb)

    def flipper() -> None:
        try:
            for i in range(FLIPS):
                reg.set_phase3_config(CONFIG_B if i % 2 == 0 else CONFIG_A)
        finally:
            done.set()

    work = (lambda: dispatcher(seed), lambda: dispatcher(seed + 50), lambda: heartbeats(seed + 100), flipper)
    threads = [threading.Thread(target=guarded(f)) for f in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert reg.verify_consistency() == [], f"round {seed}"
    snap = reg.snapshot()
    assert snap.pool_ids == tuple(p.pool_id for p in reg.pools())
    assert reg.metrics()["gauges"]["reservations"] == 0


@pytest.mark.hotpath
def test_dispatch_heartbeats_and_config_flips_leave_a_consistent_registry(fast_switching):
    """Two dispatch threads, a heartbeat thread and a thread flipping the config,
    on a 400-node fleet with every flag on; the flipper does a fixed number of
    flips (no timing), the others run until it is done; afterwards everything agrees."""
    for seed in range(ROUNDS):
        _one_round(seed)
