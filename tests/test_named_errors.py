"""Every public constructor and registry method, every argument, a set of hostile
values: each call works or raises a ``SchedulerError`` subclass — never a bare
``TypeError`` / ``AttributeError`` / ``OverflowError`` / ``ValueError`` — and a
registry stays consistent after all of them."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from pyscheduler import (
    AutoPoolConfig,
    CoreServicesConfig,
    Heartbeat,
    InstalledService,
    JobRequest,
    LanguageCapabilities,
    MigrationFlags,
    NodeInfo,
    NodeRegistry,
    Phase3Config,
    PoolConfig,
    SchedulerError,
)

HOSTILE = [
    None, [], {}, [[]], {1: 2}, 1.5, math.nan, math.inf, -1, 2**2000, -(2**70), "", " ", "\ud800",
    "x" * 5000, b"x", object(), True, ("a", "b"), {"a"}, [["en", "zh"]], ["en", [1]], "en:zh",
    [("en", "en")], {"asr": []},
]
IDS = [repr(v)[:20] for v in HOSTILE]

POOL_FIELDS = ("pool_id", "name", "languages", "nmt_rule", "nmt_pairs", "blocked_pairs", "required_services")
PHASE3_FIELDS = tuple(f for f in Phase3Config().to_dict())
NODE_FIELDS = ("node_id", "has_gpu", "accept_public_jobs", "max_concurrent_jobs", "installed_services",
               "language_capabilities", "labels")
CAPS_FIELDS = ("asr", "tts", "semantic", "nmt_languages", "nmt_pairs")
BEAT_FIELDS = ("cpu_usage", "memory_usage", "gpu_usage", "current_jobs", "installed_services",
               "language_capabilities")
JOB_FIELDS = ("src_lang", "tgt_lang", "required_types", "session_id", "tenant_id", "routing_key",
              "exclude_node_ids", "public", "preferred_node_id")


def _model_calls(b) -> dict[str, Callable[[], object]]:
    pool_kw = {"pool_id": 1, "name": "p", "languages": ["en"], "nmt_rule": "any_to_any"}
    calls: dict[str, Callable[[], object]] = {
        "Phase3Config.from_dict": lambda: Phase3Config.from_dict(b),
        "Phase3Config.from_dict(pools)": lambda: Phase3Config.from_dict({"pools": [b]}),
        "AutoPoolConfig.from_dict": lambda: AutoPoolConfig.from_dict(b),
        "CoreServicesConfig": lambda: CoreServicesConfig(asr_service_id=b),
        "CoreServicesConfig.from_dict": lambda: CoreServicesConfig.from_dict(b),
        "MigrationFlags": lambda: MigrationFlags(use_runtime_snapshot=b),
        "MigrationFlags.rollout_percent": lambda: MigrationFlags(rollout_percent=b),
        "MigrationFlags.from_dict": lambda: MigrationFlags.from_dict(b),
        "InstalledService.from_dict": lambda: InstalledService.from_dict(b),
        "LanguageCapabilities.from_dict": lambda: LanguageCapabilities.from_dict(b),
        "NodeInfo.from_dict": lambda: NodeInfo.from_dict(b),
        "NodeInfo.from_dict(services)": lambda: NodeInfo.from_dict({"installed_services": [b]}),
    }
    for f in POOL_FIELDS:
        calls[f"PoolConfig.{f}"] = lambda f=f: PoolConfig(**{**pool_kw, f: b})
    for f in PHASE3_FIELDS:
        calls[f"Phase3Config.{f}"] = lambda f=f: Phase3Config(**{f: b})
        calls[f"Phase3Config.from_dict.{f}"] = lambda f=f: Phase3Config.from_dict({f: b})
    for f in ("min_nodes_per_pool", "max_pools", "require_semantic"):
        calls[f"AutoPoolConfig.{f}"] = lambda f=f: AutoPoolConfig(**{f: b})
    for f in ("service_id", "type", "state"):
        kw = {"service_id": "a", "type": "ASR", "state": "running", f: b}
        calls[f"InstalledService.{f}"] = lambda kw=kw: InstalledService(**kw)
        calls[f"InstalledService.from_dict.{f}"] = lambda kw=kw: InstalledService.from_dict(kw)
    for f in CAPS_FIELDS:
        calls[f"LanguageCapabilities.{f}"] = lambda f=f: LanguageCapabilities(**{f: b})
        calls[f"LanguageCapabilities.from_dict.{f}"] = lambda f=f: LanguageCapabilities.from_dict({f: b})
    for f in NODE_FIELDS:
        calls[f"NodeInfo.{f}"] = lambda f=f: NodeInfo(**{f: b})
        calls[f"NodeInfo.from_dict.{f}"] = lambda f=f: NodeInfo.from_dict({f: b})
    for f in BEAT_FIELDS:
        calls[f"Heartbeat.{f}"] = lambda f=f: Heartbeat(**{"cpu_usage": 1, "memory_usage": 1, f: b})
    for f in JOB_FIELDS:
        calls[f"JobRequest.{f}"] = lambda f=f: JobRequest(**{"src_lang": "en", "tgt_lang": "zh", f: b})
    return calls


def _registry_calls(reg: NodeRegistry, b) -> dict[str, Callable[[], object]]:
    job = JobRequest("en", "zh")
    return {
        "NodeRegistry(phase3)": lambda: NodeRegistry(b),
        "NodeRegistry(core_services)": lambda: NodeRegistry(None, b),
        "NodeRegistry(flags)": lambda: NodeRegistry(flags=b),
        "NodeRegistry(clock)": lambda: NodeRegistry(clock=b),
        "register_node_with_policy(policy)": lambda: reg.register_node_with_policy(NodeInfo("n2"), b),
        "update_node_heartbeats": lambda: reg.update_node_heartbeats(b),
        "update_node_heartbeats(pair)": lambda: reg.update_node_heartbeats([b]),
        "select_eligible_pools(src)": lambda: reg.select_eligible_pools(b, "zh"),
        "select_eligible_pools(types)": lambda: reg.select_eligible_pools("en", "zh", b),
        "select_eligible_pools(index)": lambda: reg.select_eligible_pools("en", "zh", lang_index=b),
        "select_node_from_pool(pool)": lambda: reg.select_node_from_pool(b, job),
        "select_node_from_pool(snapshot)": lambda: reg.select_node_from_pool(1, job, b),
        "select_nodes_batch": lambda: reg.select_nodes_batch(b),
        "commit": lambda: reg.commit(b),
        "release": lambda: reg.release(b),
        "subscribe": lambda: reg.subscribe(b),
        "sweep": lambda: reg.sweep(b),
        "pool_members": lambda: reg.pool_members(b),
        "get_node": lambda: reg.get_node(b),
        "remove_node": lambda: reg.remove_node(b),
        "disconnect_node": lambda: reg.disconnect_node(b),
        "mark_node_draining": lambda: reg.mark_node_draining(b),
        "update_node_heartbeat(id)": lambda: reg.update_node_heartbeat(b, Heartbeat(1, 1)),
        "update_node_heartbeat(hb)": lambda: reg.update_node_heartbeat("n1", b),
        "sync_node_to_management": lambda: reg.sync_node_to_management(b),
        "remove_node_from_management": lambda: reg.remove_node_from_management(b),
        "set_phase3_config": lambda: reg.set_phase3_config(b),
        "set_core_services_config": lambda: reg.set_core_services_config(b),
        "set_flags": lambda: reg.set_flags(b),
    }


def _bare_errors(calls: dict[str, Callable[[], object]]) -> list[str]:
    bare = []
    for name, call in calls.items():
        try:
            call()
        except SchedulerError:
            pass
        except Exception as exc:  # noqa: BLE001 - what this test hunts
            bare.append(f"{name}: {type(exc).__name__}: {exc!r:.120}")
    return bare


@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
def test_models_and_configs_raise_only_named_errors(value):
    assert _bare_errors(_model_calls(value)) == []


@pytest.mark.parametrize("flags", [
    pytest.param(MigrationFlags(), id="legacy"),
    pytest.param(MigrationFlags.all_on(), id="fast", marks=pytest.mark.hotpath),
])
@pytest.mark.parametrize("value", HOSTILE, ids=IDS)
def test_registry_methods_raise_only_named_errors(flags, value):
    reg = NodeRegistry(Phase3Config(pools=(PoolConfig(1, "p", ("en", "zh")),)), flags=flags)
    reg.register_node_with_policy(NodeInfo("n1"))
    assert _bare_errors(_registry_calls(reg, value)) == []
    assert reg.verify_consistency() == []
