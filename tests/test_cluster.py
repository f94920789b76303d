"""Cluster sync against a real redis-server: convergence, ownership, config, failures.

Every wait polls against a deadline (``wait_until``); nothing sleeps for a
fixed time and hopes. Each test uses its own key prefix on the session's
server, or its own server when it kills or restarts Redis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from cluster_support import FAST, Make, cluster_factory, picks, status, stream, wait_until
from helpers import beat, node_info, phase3, pool, unhealthy_beat

from pyscheduler import JobRequest, NodeRegistry, NodeStatus, Phase3Config
from pyscheduler.cluster import RedisClusterSync, RedisServer, codec
from pyscheduler.cluster.scripts import SET_CONFIG

pytestmark = pytest.mark.redis

@pytest.fixture
def cluster(redis_env) -> Iterator[Make]:
    """``make(name, cfg=None, **sync_kwargs)`` -> a started (registry, sync); all closed after."""
    yield from cluster_factory(redis_env)


# -- convergence ------------------------------------------------------------------------------


def test_three_instances_converge_on_every_kind_of_change(cluster, redis_env):
    (a, sa), (b, sb), (c, sc) = cluster("a"), cluster("b"), cluster("c")

    a.register_node_with_policy(node_info("n1"))
    wait_until(lambda: "n1" in b.node_ids() and "n1" in c.node_ids(), what="registration")
    assert status(b, "n1") is NodeStatus.REGISTERING
    a.update_node_heartbeat("n1", beat(cpu=12.5, jobs=1))
    wait_until(lambda: picks(b, "n1") and picks(c, "n1"), what="n1 dispatchable on b and c")
    assert b.get_node("n1").cpu_usage == 12.5 and c.get_node("n1").running_jobs == 1

    # a heartbeat with new languages changes pool membership everywhere
    b.set_phase3_config(phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja"])))
    wait_until(lambda: all(len(r.phase3_config.pools) == 2 for r in (a, b, c)), what="config change")
    # b records the version its write got once the compare-and-set returns, which may be
    # after the others have already adopted that version: wait for it, do not race it
    wait_until(lambda: sa.config_version == sb.config_version == sc.config_version, what="one version")
    a.update_node_heartbeat("n1", beat(language_capabilities=node_info("n1", ["en", "ja"]).language_capabilities))
    wait_until(lambda: b.pool_members(2) == ["n1"] and c.pool_members(1) == [], what="membership")
    assert picks(c, "n1", "en", "ja")

    # a node registered on c is dispatchable on a
    c.register_node_with_policy(node_info("n2"))
    c.update_node_heartbeat("n2", beat())
    wait_until(lambda: picks(a, "n2") and picks(b, "n2"), what="n2 dispatchable on a and b")

    a.mark_node_draining("n1")
    wait_until(lambda: status(b, "n1") is NodeStatus.DRAINING and status(c, "n1") is NodeStatus.DRAINING)
    assert not picks(b, "n1", "en", "ja")

    c.disconnect_node("n2")
    wait_until(lambda: status(a, "n2") is NodeStatus.OFFLINE and b.pool_members(1) == [])

    a.remove_node("n1")
    c.remove_node("n2")
    wait_until(lambda: all(r.node_ids() == [] for r in (a, b, c)), what="removals")
    assert redis_env.client.scard(f"{redis_env.prefix}:nodes") == 0
    for reg in (a, b, c):
        assert reg.verify_consistency() == []


def test_changes_applied_from_redis_are_never_published_again(cluster, redis_env):
    (a, _), (b, sb) = cluster("a"), cluster("b")
    a.register_node_with_policy(node_info("n1"))
    a.update_node_heartbeat("n1", beat())
    wait_until(lambda: picks(b, "n1"))
    entries = stream(redis_env)
    assert [e[3] for e in entries if e[1] == b"b"] in ([], [b"cfg"])  # at most its first config
    assert [e[3] for e in entries if e[1] == b"a"][-2:] == [b"reg", b"hb"]
    assert [int(e[0]) for e in entries] == list(range(1, len(entries) + 1))
    assert sb.owned_nodes() == frozenset()


def test_dispatcher_threads_never_talk_to_redis(cluster):
    (a, sa), (b, sb) = cluster("a"), cluster("b")
    callers: set[str] = set()
    for sync in (sa, sb):
        for client in (sync._writer.client, sync._reader.client):
            connections = client.connection_pool
            original = connections.get_connection

            def recording(*args, _original=original, **kwargs):
                callers.add(threading.current_thread().name)
                return _original(*args, **kwargs)

            connections.get_connection = recording
    a.register_node_with_policy(node_info("n1"))
    for i in range(200):
        a.update_node_heartbeat("n1", beat(cpu=float(i % 50)))
    wait_until(lambda: picks(b, "n1"))
    a.mark_node_draining("n1")
    a.set_phase3_config(phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja"])))
    a.sweep()
    b.select_node(JobRequest("en", "zh"))
    wait_until(lambda: status(b, "n1") is NodeStatus.DRAINING and len(b.pools()) == 2)
    assert callers and all(name.startswith("pyscheduler-cluster-") for name in callers), callers


def test_load_only_heartbeats_are_coalesced_and_the_last_one_wins(cluster, redis_env):
    (a, sa), (b, _) = cluster("a"), cluster("b")
    a.register_node_with_policy(node_info("n1"))
    for i in range(2000):
        a.update_node_heartbeat("n1", beat(cpu=float(i % 80), jobs=i % 4))
    assert sa.flush(10)
    wait_until(lambda: b.get_node("n1").cpu_usage == float(1999 % 80) and b.get_node("n1").running_jobs == 3)
    beats = sum(1 for e in stream(redis_env) if e[3] == b"hb")
    assert 1 <= beats <= 2000


def test_a_degraded_owner_node_is_degraded_everywhere_even_with_coalesced_beats(cluster):
    (a, _), (b, _) = cluster("a"), cluster("b")
    a.register_node_with_policy(node_info("n1"))
    a.update_node_heartbeat("n1", beat())
    wait_until(lambda: status(b, "n1") is NodeStatus.READY)
    assert a.update_node_heartbeat("n1", unhealthy_beat()) is NodeStatus.READY
    a.update_node_heartbeat("n1", beat())  # load only: services stay stopped, streak goes on
    assert a.update_node_heartbeat("n1", beat()) is NodeStatus.DEGRADED
    wait_until(lambda: status(b, "n1") is NodeStatus.DEGRADED, what="DEGRADED on b")
    a.update_node_heartbeat("n1", beat(installed_services=node_info("n1").installed_services))
    wait_until(lambda: status(b, "n1") is NodeStatus.READY, what="READY again on b")


def test_a_node_that_registers_on_another_instance_moves_there(cluster, redis_env):
    (a, sa), (b, sb) = cluster("a"), cluster("b")
    a.register_node_with_policy(node_info("n1"))
    wait_until(lambda: "n1" in b.node_ids())
    b.register_node_with_policy(node_info("n1"), policy="replace")  # it reconnected to b
    b.update_node_heartbeat("n1", beat())
    wait_until(lambda: "n1" not in sa.owned_nodes() and picks(a, "n1"), what="ownership moved")
    assert sb.owned_nodes() == {"n1"}
    assert redis_env.client.hget(f"{redis_env.prefix}:node:n1", "owner") == b"b"


def test_instances_started_later_read_the_whole_fleet(cluster, redis_env):
    a, _ = cluster("a")
    for i in range(50):
        a.register_node_with_policy(node_info(f"n{i:02d}"))
        a.update_node_heartbeat(f"n{i:02d}", beat())
    a.mark_node_draining("n07")
    # a registry that had a node before its sync started: the node is its own
    early = NodeRegistry(phase3(pool(1, ["en", "zh"])))
    early.register_node_with_policy(node_info("early"))
    early.update_node_heartbeat("early", beat())
    sync = RedisClusterSync(early, redis_env.url, instance_id="b", prefix=redis_env.prefix, **FAST)
    try:
        sync.start()
        assert sync.wait_synced(10)
        wait_until(lambda: len(early.node_ids()) == 51 and picks(a, "early"))
        assert status(early, "n07") is NodeStatus.DRAINING and status(early, "n08") is NodeStatus.READY
        assert sync.owned_nodes() == {"early"}
    finally:
        sync.close(timeout=2.0)


# -- config ------------------------------------------------------------------------------------


def test_config_compare_and_set_race_leaves_one_winner_and_both_converge(cluster, redis_env):
    (a, sa), (b, sb) = cluster("a"), cluster("b")
    wait_until(lambda: sa.config_version == sb.config_version >= 1)
    start = sa.config_version
    cfg_a = phase3(pool(1, ["en", "zh"]), pool(7, ["en", "ja"]))
    cfg_b = phase3(pool(1, ["en", "zh"]), pool(8, ["de", "en"]))
    barrier = threading.Barrier(2)

    def change(reg, cfg):
        barrier.wait()
        reg.set_phase3_config(cfg)

    threads = [threading.Thread(target=change, args=x) for x in ((a, cfg_a), (b, cfg_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sa.flush(10) and sb.flush(10)
    wait_until(lambda: a.phase3_config == b.phase3_config and sa.config_version == sb.config_version)
    winner = a.phase3_config
    assert winner in (cfg_a, cfg_b)
    stored = redis_env.client.hgetall(f"{redis_env.prefix}:config")
    assert codec.decode_config(stored[b"doc"]) == winner
    assert int(stored[b"version"]) == sa.config_version > start


def test_config_compare_and_set_script_refuses_a_stale_version(cluster, redis_env):
    (a, sa), _ = cluster("a"), cluster("b")
    wait_until(lambda: sa.config_version >= 1)
    script = redis_env.client.register_script(SET_CONFIG)
    keys = [f"{redis_env.prefix}:config", f"{redis_env.prefix}:events", f"{redis_env.prefix}:gen"]
    v = sa.config_version
    doc = codec.encode_config(phase3(pool(3, ["en", "de"])))
    ok, new = script(keys=keys, args=[v, doc, "x", 1000, time.time()])
    assert ok == 1 and new > v  # a version is the generation of its change: it only grows
    lost = script(keys=keys, args=[v, doc, "y", 1000, time.time()])
    assert lost[:2] == [0, new] and lost[3] == b"x"
    wait_until(lambda: [p.pool_id for p in a.phase3_config.pools] == [3], what="a adopts version v+1")


def test_an_empty_or_missing_remote_config_never_replaces_local_pools(cluster, redis_env):
    local = phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja"]))
    a, sa = cluster("a", cfg=local)  # Redis had no config: a publishes its own
    stored = redis_env.client.hgetall(f"{redis_env.prefix}:config")
    assert codec.decode_config(stored[b"doc"]) == local
    b, _ = cluster("b", cfg=Phase3Config())  # a newcomer without pools takes the fleet's
    assert b.phase3_config.pools == local.pools

    # another instance publishes a config without pools: the pools stay everywhere
    script = redis_env.client.register_script(SET_CONFIG)
    keys = [f"{redis_env.prefix}:config", f"{redis_env.prefix}:events", f"{redis_env.prefix}:gen"]
    empty = Phase3Config(resource_threshold=70.0)
    v = sa.config_version
    assert script(keys=keys, args=[v, codec.encode_config(empty), "x", 1000, time.time()])[0] == 1
    wait_until(lambda: a.phase3_config.resource_threshold == 70.0 == b.phase3_config.resource_threshold)
    assert a.phase3_config.pools == local.pools == b.phase3_config.pools
    # ... and the pools are published back over the empty document
    wait_until(lambda: codec.decode_config(
        redis_env.client.hget(f"{redis_env.prefix}:config", "doc")).pools == local.pools)

    # a document that does not validate is refused (logged), never applied
    redis_env.client.hset(f"{redis_env.prefix}:config", mapping={"doc": '{"pools": 5}', "version": 99})
    redis_env.client.delete(f"{redis_env.prefix}:epoch")  # make both resync (as after a restart)
    wait_until(lambda: codec.decode_config(
        redis_env.client.hget(f"{redis_env.prefix}:config", "doc")).pools == local.pools, what="repaired")
    assert a.phase3_config.pools == local.pools == b.phase3_config.pools


# -- failures ---------------------------------------------------------------------------------


def test_redis_down_keeps_local_dispatch_and_an_empty_restart_brings_every_node_back(own_redis):
    syncs = []
    regs = []
    try:
        for name in ("a", "b", "c"):
            reg = NodeRegistry(phase3(pool(1, ["en", "zh"])))
            sync = RedisClusterSync(reg, own_redis.url, instance_id=name, prefix="p", **FAST)
            sync.start()
            assert sync.wait_synced(10)
            regs.append(reg)
            syncs.append(sync)
        a, b, c = regs
        for reg, name in zip(regs, ("a", "b", "c")):
            reg.register_node_with_policy(node_info(f"{name}1"))
            reg.update_node_heartbeat(f"{name}1", beat())
        wait_until(lambda: all(len(r.node_ids()) == 3 for r in regs), what="initial convergence")

        own_redis.server.kill()
        wait_until(lambda: not any(s.connected for s in syncs), what="all see Redis down")
        # local registration and dispatch go on, for local and remote nodes alike
        a.register_node_with_policy(node_info("a2"))
        a.update_node_heartbeat("a2", beat())
        assert picks(a, "a2") and picks(a, "b1") and picks(b, "a1")
        c.update_node_heartbeat("c1", beat(cpu=33.0))

        own_redis.server.start()  # empty: no persistence
        wait_until(lambda: all(s.connected for s in syncs), timeout=10, what="reconnection")
        want = {"a1", "a2", "b1", "c1"}
        wait_until(lambda: all(set(r.node_ids()) == want for r in regs), timeout=10, what="every node back")
        wait_until(lambda: all(picks(r, n) for r in regs for n in want), what="all dispatchable")
        # the beat c1 sent while Redis was down arrives with c's republish, which
        # may land after the others' first resync: wait for it, do not race it
        wait_until(lambda: a.get_node("c1").cpu_usage == 33.0, timeout=10, what="c1's last beat on a")
        client = own_redis.client
        wait_until(
            lambda: {m.decode() for m in client.smembers("p:nodes")} == want, what="the node set in Redis"
        )
        assert all(s.config_version >= 1 for s in syncs)
    finally:
        for s in syncs:
            s.close(timeout=2.0)


def test_a_node_whose_owner_stops_expires_everywhere(cluster, redis_env):
    short = Phase3Config(pools=(pool(1, ["en", "zh"]),), heartbeat_interval_s=0.2, heartbeat_timeout_s=0.6)
    (a, sa), (b, _), (c, _) = cluster("a", cfg=short), cluster("b", cfg=short), cluster("c", cfg=short)
    a.register_node_with_policy(node_info("n1"))
    a.update_node_heartbeat("n1", beat())
    wait_until(lambda: picks(b, "n1") and picks(c, "n1"))
    # while the owner beats, the node stays, past several timeouts
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        a.update_node_heartbeat("n1", beat())
        time.sleep(0.05)
    wait_until(lambda: "n1" in b.node_ids() and "n1" in c.node_ids(), timeout=2)
    sa.close()  # no cleanup: as if the instance had crashed
    t0 = time.monotonic()
    wait_until(lambda: "n1" not in b.node_ids() and "n1" not in c.node_ids(), timeout=5, what="expiry")
    assert time.monotonic() - t0 >= 0.3  # not before the hash expired
    assert redis_env.client.sismember(f"{redis_env.prefix}:nodes", "n1") == 0


def test_close_with_withdraw_removes_the_nodes_at_once(cluster):
    (a, sa), (b, _) = cluster("a"), cluster("b")
    a.register_node_with_policy(node_info("n1"))
    wait_until(lambda: "n1" in b.node_ids())
    sa.close(withdraw=True)
    wait_until(lambda: b.node_ids() == [], timeout=2)


def test_malformed_stream_entries_are_logged_and_skipped(cluster, redis_env, caplog):
    (a, _), (b, sb) = cluster("a"), cluster("b")
    r = redis_env.client
    events, gen = f"{redis_env.prefix}:events", f"{redis_env.prefix}:gen"

    def entry(*parts) -> bytes:
        return b"\x1f".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)

    r.xadd(events, {"junk": "yes"})
    r.xadd(events, {"e": "abc"})
    r.xadd(events, {"e": b"\xff\xfe\x1f\xff\x1f1\x1fhb\x1fn"})
    r.xadd(events, {"e": entry(1, "x", time.time(), "nope", "bad", "")})
    # well-formed headers (with the next generations) over bad bodies
    r.xadd(events, {"e": entry(r.incr(gen), "x", time.time(), "reg", "bad", "{not json")})
    r.xadd(events, {"e": entry(r.incr(gen), "x", time.time(), "reg", "bad",
                               '{"node_id": "bad", "max_concurrent_jobs": -3}')})
    r.xadd(events, {"e": entry(r.incr(gen), "x", time.time(), "put", "bad", "{}", "ready", "1,2,,0", "")})
    wait_until(lambda: sb.stats()["counts"].get("malformed", 0) >= 7, what="seven entries skipped")
    assert sb.stats()["counts"].get("gaps", 0) == 0
    assert "bad" not in b.node_ids()
    assert "skipping malformed stream entry" in caplog.text
    a.register_node_with_policy(node_info("n1"))  # the reader goes on
    a.update_node_heartbeat("n1", beat())
    wait_until(lambda: picks(b, "n1"))


def test_a_gap_in_the_stream_makes_readers_resync(cluster, redis_env):
    (a, _), (b, sb) = cluster("a"), cluster("b")
    a.register_node_with_policy(node_info("n1"))
    wait_until(lambda: "n1" in b.node_ids())
    resyncs = sb.stats()["counts"]["resyncs"]
    # entries b never read: the stream was trimmed past them
    redis_env.client.incrby(f"{redis_env.prefix}:gen", 5)
    redis_env.client.xtrim(f"{redis_env.prefix}:events", maxlen=0)
    a.register_node_with_policy(node_info("n2"))
    a.remove_node("n1")
    wait_until(lambda: b.node_ids() == ["n2"], what="b resynced")
    # a resync applies the nodes first and counts itself last: wait for the count too
    wait_until(lambda: sb.stats()["counts"]["resyncs"] > resyncs, what="the resync counted")
    assert sb.stats()["counts"]["gaps"] >= 1


# -- connections --------------------------------------------------------------------------------


def test_a_password_url_works_and_a_wrong_password_only_stops_the_sync():
    with RedisServer(password="s3cr3t") as server:
        reg = NodeRegistry(phase3(pool(1, ["en", "zh"])))
        other = NodeRegistry(phase3(pool(1, ["en", "zh"])))
        with RedisClusterSync(reg, server.url, instance_id="a", **FAST) as sa, \
                RedisClusterSync(other, server.url, instance_id="b", **FAST) as sb:
            assert sa.wait_synced(10) and sb.wait_synced(10)
            reg.register_node_with_policy(node_info("n1"))
            reg.update_node_heartbeat("n1", beat())
            wait_until(lambda: picks(other, "n1"))
        wrong = server.url.replace("s3cr3t", "nope")
        lone = NodeRegistry(phase3(pool(1, ["en", "zh"])))
        sync = RedisClusterSync(lone, wrong, instance_id="c", **FAST).start()
        try:
            assert not sync.wait_synced(0.5)
            lone.register_node_with_policy(node_info("n9"))
            lone.update_node_heartbeat("n9", beat())
            assert picks(lone, "n9")
        finally:
            sync.close(timeout=0.2)


def test_rediss_tls_url_works(tls_files):
    with RedisServer(tls=tls_files) as server:
        assert server.url.startswith("rediss://")
        a, b = NodeRegistry(phase3(pool(1, ["en", "zh"]))), NodeRegistry(phase3(pool(1, ["en", "zh"])))
        with RedisClusterSync(a, server.url, instance_id="a", **FAST) as sa, \
                RedisClusterSync(b, server.url, instance_id="b", **FAST) as sb:
            assert sa.wait_synced(10) and sb.wait_synced(10)
            a.register_node_with_policy(node_info("n1"))
            a.update_node_heartbeat("n1", beat())
            wait_until(lambda: picks(b, "n1"))


def test_bad_arguments_are_refused():
    from pyscheduler import ConfigError

    reg = NodeRegistry()
    with pytest.raises(ConfigError, match="registry"):
        RedisClusterSync(object(), "redis://x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="instance_id"):
        RedisClusterSync(reg, "redis://x", instance_id="")
    with pytest.raises(ConfigError, match="batch_size"):
        RedisClusterSync(reg, "redis://x", batch_size=0)


# -- separate processes: simulate --instances, bench --cluster -----------------------------------------


def test_three_dispatcher_processes_share_one_fleet(redis_env):
    from pyscheduler.tools.cluster_sim import format_cluster_report, simulate_cluster

    report = simulate_cluster("small", 300, 2, instances=3, redis_url=redis_env.url, timeout_s=120)
    assert report.consistent, "instances ended with different nodes or pools"
    assert report.nodes == 100 and sum(i.owned_nodes for i in report.instances) == 100
    for inst in report.instances:
        assert inst.jobs == 300 and inst.successes > 0
        assert inst.placed_on_remote > 0  # dispatched to nodes another process owns
        assert inst.changes_applied > 0 and inst.decisions_per_s > 0
    assert report.delay_ms["samples"] > 0 and report.delay_ms["p50"] < 1000
    text = format_cluster_report(report)
    assert "sim-0" in text and "convergence" in text and "total" in text
    assert not list(redis_env.client.scan_iter(match="pyscheduler-sim-*"))  # cleaned up


def test_cli_simulate_instances_json(redis_env, capsys):
    import json

    from pyscheduler.tools.cli import main

    code = main(["simulate", "--instances", "2", "--redis", redis_env.url, "--jobs", "100", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert len(data["instances"]) == 2 and data["jobs"] == 200 and data["consistent"] is True
    assert {"p50", "p99"} <= set(data["delay_ms"]) and data["decisions_per_s"] > 0


def test_cli_cluster_commands_without_redis_say_why(monkeypatch, capsys):
    from pyscheduler.tools.cli import main

    monkeypatch.setenv("PYSCHEDULER_REDIS_SERVER", "/nonexistent/redis-server")
    unavailable = 3  # the exit status of a missing dependency or service
    assert main(["simulate", "--instances", "3", "--jobs", "10"]) == unavailable
    assert "redis-server is not installed" in capsys.readouterr().err
    assert main(["bench", "--cluster"]) == unavailable
    assert "redis-server is not installed" in capsys.readouterr().err
    assert main(["simulate", "--instances", "3", "--redis", "redis://127.0.0.1:1/0"]) == unavailable
    assert "cannot reach Redis" in capsys.readouterr().err
    assert main(["simulate", "--instances", "0"]) == 2


def test_bench_cluster_measures_throughput_and_delay(redis_env):
    from pyscheduler.tools.cluster_sim import bench_cluster, format_cluster_bench

    report = bench_cluster(redis_env.url, instances=2, nodes_per_instance=50, events=2000,
                           rates=(500.0,), duration_s=0.3, timeout_s=120)
    assert len(report.applied_per_s) == 2 and all(r > 0 for r in report.applied_per_s)
    assert report.delay_ms[500.0]["samples"] > 0
    assert "applied/s alone" in format_cluster_bench(report)
