"""A job's whole life through pyscheduler, as docs/GUIDE.md tells it.

Run it: ``python examples/guide_dispatcher.py``. No network: the "nodes" are
the calls a dispatcher makes when their messages arrive. A manual clock
stands in for time so the timeouts happen at once; a real dispatcher passes
nothing (``time.monotonic``).

Steps: configure pools; register two nodes; heartbeats make them READY;
select a node for a job and commit it when the node accepts; the node reports
its running jobs in every heartbeat (that is how finished jobs free their
place); release the reservation when a node refuses; sweep times out a
silent node; drain a node for maintenance; remove it.
"""

from __future__ import annotations

from pyscheduler import (
    Heartbeat,
    InstalledService,
    JobRequest,
    LanguageCapabilities,
    NodeInfo,
    NodeRegistry,
    NodeStatus,
    Phase3Config,
    PoolConfig,
    Reason,
    ServiceType,
)


class ManualClock:
    """Seconds that move only when told to (``NodeRegistry(clock=...)``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def node_info(node_id: str, languages: list[str], max_jobs: int) -> NodeInfo:
    """What a node sends when it connects: its services and languages."""
    services = [
        InstalledService(f"{t.name.lower()}-1", t) for t in (ServiceType.ASR, ServiceType.NMT, ServiceType.TTS)
    ]
    caps = LanguageCapabilities(asr=languages, tts=languages, nmt_languages=languages)
    return NodeInfo(node_id, installed_services=services, language_capabilities=caps,
                    max_concurrent_jobs=max_jobs)  # fmt: skip


def beat(running: int) -> Heartbeat:
    """A node's periodic report: its load and how many jobs it is running now."""
    return Heartbeat(cpu_usage=30.0, memory_usage=40.0, gpu_usage=50.0, current_jobs=running)


def run(say=print) -> NodeRegistry:
    """Walk one dispatcher through the steps; return the registry at the end."""
    clock = ManualClock()
    config = Phase3Config(
        pools=[PoolConfig(1, "en-zh", ["en", "zh"]), PoolConfig(2, "en-ja", ["en", "ja"])],
        heartbeat_interval_s=15, heartbeat_timeout_s=45, reservation_ttl_s=30,
    )  # fmt: skip
    registry = NodeRegistry(config, clock=clock)

    # 1. Nodes connect and register; each stays REGISTERING until a healthy heartbeat.
    registry.register_node_with_policy(node_info("gpu-a", ["en", "zh"], max_jobs=1))
    registry.register_node_with_policy(node_info("gpu-b", ["en", "zh", "ja"], max_jobs=2))
    for node_id in ("gpu-a", "gpu-b"):
        status = registry.update_node_heartbeat(node_id, beat(running=0))
        say(f"{node_id} registered, heartbeat -> {status.name}")
    say(f"pool 1 members: {registry.pool_members(1)}")

    # 2. A job arrives: select reserves a place on the node it picks.
    job = JobRequest("zh", "en", session_id="call-1")
    first = registry.select_node(job)
    say(f"call-1 zh->en -> {first.node_id} (pool {first.pool_id}, path {first.path})")
    # The dispatcher sends the job to that node; the node accepts: commit.
    registry.commit(first)
    running = {"gpu-a": 0, "gpu-b": 0}
    running[first.node_id] += 1  # what the node itself counts

    # 3. Each heartbeat reports the node's own running count.
    clock.now += 15
    for node_id, jobs in running.items():
        registry.update_node_heartbeat(node_id, beat(running=jobs))
    view = registry.get_node(first.node_id)
    say(f"{first.node_id} reports {view.running_jobs} running, {view.reserved_jobs} reserved")

    # 4. A node refuses (or does not answer in time): release the reservation.
    second = registry.select_node(JobRequest("en", "zh", session_id="call-2"))
    registry.release(second)
    say(f"call-2 en->zh -> {second.node_id}, which refused: released, "
        f"{registry.get_node(second.node_id).reserved_jobs} reserved")  # fmt: skip

    # 5. Fill the pool: three places in all (gpu-a 1, gpu-b 2), one already running.
    placed = [registry.select_node(JobRequest("zh", "en", session_id=f"call-{k}")) for k in (3, 4, 5)]
    for selection in placed:
        if selection.ok:
            registry.commit(selection)
            running[selection.node_id] += 1
    full = placed[-1]
    say(f"call-5: {full.explain()}")
    assert not full.ok and full.breakdown.top_reason is Reason.CAPACITY_EXCEEDED

    # 6. The jobs end on the nodes; their next heartbeats report it and free the places.
    clock.now += 15
    running = {"gpu-a": 0, "gpu-b": 0}
    for node_id, jobs in running.items():
        registry.update_node_heartbeat(node_id, beat(running=jobs))
    again = registry.select_node(JobRequest("zh", "en", session_id="call-6"))
    say(f"after the jobs ended, call-6 -> {again.node_id}")
    registry.release(again)

    # 7. gpu-a goes silent. Past heartbeat_timeout_s it is heartbeat_stale at once,
    #    and the periodic sweep marks it OFFLINE.
    clock.now += 50
    registry.update_node_heartbeat("gpu-b", beat(running=0))
    marked = registry.sweep()
    say(f"sweep marked {marked}: gpu-a is {registry.get_node('gpu-a').status.name}")

    # 8. Maintenance: drain gpu-b (no new jobs; running ones finish), then remove it.
    registry.mark_node_draining("gpu-b")
    drained = registry.select_node(JobRequest("zh", "en", session_id="call-7"))
    say(f"with gpu-b draining: {drained.explain()}")
    registry.remove_node("gpu-b")
    say(f"gpu-b removed; pool 1 members: {registry.pool_members(1)}")
    assert registry.get_node("gpu-a").status is NodeStatus.OFFLINE
    return registry


if __name__ == "__main__":
    run()
