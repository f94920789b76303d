"""Poisoned keys in Redis: each is skipped with a logged, counted reason, and
nothing else stops.

Whoever can write to Redis can store anything under the cluster's prefix. A
node hash whose info nests 100,000 deep, a config version of ``1e400`` or
``abc``, a config document nested as deep, a node key of the wrong Redis type:
each must be skipped (or repaired) while every instance keeps applying the
other nodes' changes, the writer keeps writing, and no reader loops on
resyncs. Each test runs against the suite's real ``redis-server``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from cluster_support import Make, cluster_factory, counts, picks, wait_until
from helpers import beat, node_info, phase3, pool

from pyscheduler.cluster import codec
from pyscheduler.cluster.scripts import SET_CONFIG

pytestmark = pytest.mark.redis

NESTED = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def cluster(redis_env) -> Iterator[Make]:
    """``make(name, cfg=None, **sync_kwargs)`` -> a started (registry, sync); all closed after."""
    yield from cluster_factory(redis_env)


def keys(env) -> dict[str, str]:
    p = env.prefix
    return {"config": f"{p}:config", "events": f"{p}:events", "gen": f"{p}:gen",
            "nodes": f"{p}:nodes", "epoch": f"{p}:epoch", "node": f"{p}:node:"}


def no_errors(*syncs) -> bool:
    """No reader or writer thread hit an unexpected error (they would loop on resyncs)."""
    return all(
        counts(s).get(name, 0) == 0
        for s in syncs for name in ("reader_errors", "writer_errors", "apply_errors")
    )


def force_resync(env) -> None:
    """Make every instance read Redis whole, as after a restart (a new epoch)."""
    env.client.delete(keys(env)["epoch"])


# -- a node hash with deeply nested info ------------------------------------------------


def test_a_node_hash_with_deeply_nested_info_is_skipped_and_sync_goes_on(cluster, redis_env, caplog):
    (a, sa), (b, sb) = cluster("a"), cluster("b")
    k = keys(redis_env)
    a.register_node_with_policy(node_info("n1"))
    a.update_node_heartbeat("n1", beat())
    wait_until(lambda: picks(b, "n1"), what="n1 on b")

    r = redis_env.client
    r.hset(k["node"] + "evil", mapping={"owner": "x", "info": NESTED, "status": "ready", "g": 1})
    r.expire(k["node"] + "evil", 60)
    r.sadd(k["nodes"], "evil")
    resyncs = counts(sb)["resyncs"]
    force_resync(redis_env)
    wait_until(lambda: counts(sb)["resyncs"] > resyncs, what="b resynced")

    c, sc = cluster("c")  # a newcomer syncs, with every valid node
    assert c.node_ids() == ["n1"] and picks(c, "n1")
    a.register_node_with_policy(node_info("n2"))  # running instances go on both ways
    a.update_node_heartbeat("n2", beat())
    b.register_node_with_policy(node_info("n3"))
    b.update_node_heartbeat("n3", beat())
    wait_until(lambda: all(picks(reg, "n2") for reg in (b, c)) and picks(a, "n3") and picks(c, "n3"))
    for sync in (sb, sc):
        assert counts(sync)["malformed"] >= 1
    assert no_errors(sa, sb, sc)
    assert "evil" not in b.node_ids() + c.node_ids()
    assert "nests deeper than" in caplog.text


def test_a_stream_entry_with_deeply_nested_info_is_skipped(cluster, redis_env):
    (a, sa), (b, sb) = cluster("a"), cluster("b")
    k = keys(redis_env)
    r = redis_env.client
    gen = r.incr(k["gen"])
    r.xadd(k["events"], {"e": codec.SEP.join([str(gen).encode(), b"x", str(time.time()).encode(),
                                             b"reg", b"evil", NESTED.encode()])})
    a.register_node_with_policy(node_info("n1"))
    a.update_node_heartbeat("n1", beat())
    wait_until(lambda: picks(b, "n1"), what="n1 on b after the poisoned entry")
    assert counts(sb)["malformed"] >= 1 and counts(sb).get("gaps", 0) == 0
    assert "evil" not in b.node_ids() and no_errors(sa, sb)


# -- a corrupted config version ---------------------------------------------------------

CORRUPT_VERSIONS = [b"1e400", b"inf", b"nan", b"-5", b"12345678901234567890", b"abc", b"0", b"007",
                    b"999999999999999"]
WENT_BACK = b"1"  # readable, but lower than any instance's: versions only grow


@pytest.mark.parametrize("version", [*CORRUPT_VERSIONS, WENT_BACK])
def test_a_corrupted_config_version_is_replaced_and_later_changes_stick(cluster, redis_env, version):
    (a, sa), (b, sb) = cluster("a"), cluster("b")
    k = keys(redis_env)
    r = redis_env.client
    wait_until(lambda: sa.config_version == sb.config_version >= 1)
    r.hset(k["config"], "version", version)

    # a running instance changes the config: it is published, not reverted
    first = phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja"]))
    a.set_phase3_config(first)
    assert sa.flush(10)
    wait_until(lambda: b.phase3_config == first, what="b adopts a's change")
    assert a.phase3_config == first
    stored = codec.decode_version(r.hget(k["config"], "version"))
    assert codec.decode_config(r.hget(k["config"], "doc")) == first
    wait_until(lambda: sa.config_version == sb.config_version == stored)

    # corrupted again, then every instance reads Redis whole: they agree on one config
    r.hset(k["config"], "version", version)
    b.set_phase3_config(phase3(pool(1, ["en", "zh"]), pool(3, ["de", "en"])))  # b differs locally
    force_resync(redis_env)
    wait_until(lambda: a.phase3_config == b.phase3_config and sa.config_version == sb.config_version
               and codec.decode_version(r.hget(k["config"], "version")) == sa.config_version,
               what="a and b agree on the config and its version")

    # and later changes from either side stick
    second = phase3(pool(1, ["en", "zh"]), pool(4, ["en", "fr"]))
    b.set_phase3_config(second)
    wait_until(lambda: a.phase3_config == second and sa.config_version == sb.config_version)
    third = phase3(pool(5, ["en", "ko"]))
    a.set_phase3_config(third)
    wait_until(lambda: b.phase3_config == third and sa.config_version == sb.config_version)
    assert a.phase3_config == third and b.phase3_config == third
    assert codec.decode_config(r.hget(k["config"], "doc")) == third
    assert no_errors(sa, sb)


def test_the_config_script_reads_an_unreadable_version_as_none(redis_env):
    k = keys(redis_env)
    r = redis_env.client
    script = r.register_script(SET_CONFIG)
    doc = codec.encode_config(phase3(pool(3, ["en", "de"])))
    args = [0, doc, "x", 1000, time.time()]
    ok, v1 = script(keys=[k["config"], k["events"], k["gen"]], args=args)
    assert ok == 1 and v1 >= 1
    for bad in CORRUPT_VERSIONS:
        r.hset(k["config"], "version", bad)
        lost = script(keys=[k["config"], k["events"], k["gen"]], args=[v1, *args[1:]])
        assert lost[:2] == [0, 0], bad  # what it holds is no version at all ...
        ok, v2 = script(keys=[k["config"], k["events"], k["gen"]], args=args)
        assert ok == 1 and v2 > v1, bad  # ... so a document on version 0 replaces it, higher
        v1 = v2


# -- a deeply nested config document ----------------------------------------------------


def test_a_deeply_nested_config_doc_is_replaced_without_looping(cluster, redis_env, caplog):
    local = phase3(pool(1, ["en", "zh"]), pool(2, ["en", "ja"]))
    (a, sa), (b, sb) = cluster("a", cfg=local), cluster("b", cfg=local)
    k = keys(redis_env)
    r = redis_env.client
    wait_until(lambda: sa.config_version == sb.config_version >= 1)
    script = r.register_script(SET_CONFIG)  # a peer wins a compare-and-set with the poison
    ok, _ = script(keys=[k["config"], k["events"], k["gen"]],
                   args=[sa.config_version, NESTED, "x", 1000, time.time()])
    assert ok == 1
    wait_until(lambda: codec.decode_config(r.hget(k["config"], "doc")) == local, what="doc replaced")
    a.register_node_with_policy(node_info("n1"))
    a.update_node_heartbeat("n1", beat())
    wait_until(lambda: picks(b, "n1"))
    later = phase3(pool(1, ["en", "zh"]))
    b.set_phase3_config(later)
    wait_until(lambda: a.phase3_config == later and sa.config_version == sb.config_version)
    assert counts(sa)["malformed"] + counts(sb)["malformed"] >= 1
    assert no_errors(sa, sb) and counts(sb)["resyncs"] == 1 and counts(sa)["resyncs"] == 1
    assert "nests deeper than" in caplog.text


@pytest.mark.parametrize("doc", [b"", None])
def test_a_config_version_without_a_document_is_no_version(cluster, redis_env, doc):
    (a, sa), (b, sb) = cluster("a"), cluster("b")
    k = keys(redis_env)
    r = redis_env.client
    wait_until(lambda: sa.config_version == sb.config_version >= 1)
    if doc is None:
        r.hdel(k["config"], "doc")
    else:
        r.hset(k["config"], "doc", doc)
    force_resync(redis_env)  # both find no document and publish theirs on "no version"
    wait_until(lambda: codec.decode_config(r.hget(k["config"], "doc")) == a.phase3_config,
               what="the document restored")
    cfg = phase3(pool(1, ["en", "zh"]), pool(9, ["en", "ja"]))
    a.set_phase3_config(cfg)  # published on "no version", not looping on a conflict
    wait_until(lambda: b.phase3_config == cfg and sa.config_version == sb.config_version, timeout=10)
    assert codec.decode_config(r.hget(k["config"], "doc")) == cfg and sa.flush(5)
    assert no_errors(sa, sb)


# -- a node key of the wrong Redis type -------------------------------------------------


@pytest.mark.parametrize("kind", ["set", "string", "list"])
def test_a_node_key_of_the_wrong_type_never_blocks_its_owner(cluster, redis_env, kind):
    (a, sa), (b, sb) = cluster("a"), cluster("b")
    k = keys(redis_env)
    r = redis_env.client
    a.register_node_with_policy(node_info("n1"))
    a.update_node_heartbeat("n1", beat())
    wait_until(lambda: picks(b, "n1"))
    key = k["node"] + "n1"
    r.delete(key)
    {"set": lambda: r.sadd(key, "x"), "string": lambda: r.set(key, "x"),
     "list": lambda: r.rpush(key, "x")}[kind]()

    a.update_node_heartbeat("n1", beat(cpu=33.0))  # over the garbage: the owner republishes it
    a.register_node_with_policy(node_info("n2"))  # and its other nodes still reach b
    a.update_node_heartbeat("n2", beat())
    wait_until(lambda: picks(b, "n2"), what="n2 on b")
    wait_until(lambda: r.type(key) == b"hash", what="the owner repaired the key")
    wait_until(lambda: b.get_node("n1").cpu_usage == 33.0, what="n1's beat on b")
    assert counts(sa)["replaced_keys"] >= 1 and no_errors(sa, sb)


def test_a_foreign_key_of_the_wrong_type_is_skipped_by_readers(cluster, redis_env):
    (a, sa), _ = cluster("a"), cluster("b")
    k = keys(redis_env)
    r = redis_env.client
    a.register_node_with_policy(node_info("n1"))
    a.update_node_heartbeat("n1", beat())
    assert sa.flush(10)
    r.sadd(k["node"] + "zz", "x")
    r.sadd(k["nodes"], "zz")
    c, sc = cluster("c")  # its resync reads the set whole
    assert c.node_ids() == ["n1"] and counts(sc)["malformed"] >= 1 and no_errors(sc)
    a.remove_node("n1")  # and sa's writer is not blocked either (it republishes over the set)
    wait_until(lambda: c.node_ids() == [], what="removal reaches c")
    assert no_errors(sa)


# -- the shared keys: stream, node-id set, counter, epoch, config -------------------------------


@pytest.mark.parametrize("key, garbage", [
    ("gen", "abc"), ("gen", "-5"), ("gen", "12345678901234567890"), ("gen", None),
    ("events", None), ("nodes", None), ("epoch", None), ("config", None),
])
def test_a_shared_key_holding_garbage_is_repaired_and_sync_goes_on(cluster, redis_env, key, garbage):
    (a, sa), (b, sb) = cluster("a"), cluster("b")
    k = keys(redis_env)
    r = redis_env.client
    a.register_node_with_policy(node_info("n1"))
    a.update_node_heartbeat("n1", beat())
    wait_until(lambda: picks(b, "n1"))
    if garbage is None:  # a key of another Redis type
        r.delete(k[key])
        r.rpush(k[key], "x")
    else:
        r.set(k[key], garbage)

    a.register_node_with_policy(node_info("n2"))  # the writer repairs what it writes through
    a.update_node_heartbeat("n2", beat())
    if key != "epoch":  # (deleting the epoch is itself the resync)
        force_resync(redis_env)  # the readers repair the rest
    wait_until(lambda: picks(b, "n2") and picks(b, "n1"), timeout=10, what="n1 and n2 on b")
    cfg = phase3(pool(1, ["en", "zh"]), pool(6, ["en", "ja"]))
    b.set_phase3_config(cfg)
    wait_until(lambda: a.phase3_config == cfg and sa.config_version == sb.config_version, timeout=30)
    assert r.get(k["gen"]).isdigit() and r.type(k["events"]) == b"stream" and r.type(k["nodes"]) == b"set"
    assert no_errors(sa, sb)


def test_a_stream_entry_with_the_largest_id_stops_writes_only_until_the_stream_is_deleted(
        cluster, redis_env, caplog):
    (a, sa), (b, sb) = cluster("a"), cluster("b")
    k = keys(redis_env)
    r = redis_env.client
    a.register_node_with_policy(node_info("n1"))
    a.update_node_heartbeat("n1", beat())
    wait_until(lambda: picks(b, "n1"))
    r.xadd(k["events"], {"e": "x"}, id="18446744073709551615-18446744073709551615")
    a.register_node_with_policy(node_info("n2"))
    a.update_node_heartbeat("n2", beat())
    wait_until(lambda: counts(sa).get("write_refused", 0) >= 1, what="Redis refuses a's writes")
    assert picks(a, "n2")  # local dispatch goes on
    r.delete(k["events"])  # what the operator does (docs/SECURITY.md)
    wait_until(lambda: picks(b, "n2"), timeout=10, what="n2 on b once the stream is deleted")
    a.update_node_heartbeat("n2", beat(cpu=21.0))
    wait_until(lambda: b.get_node("n2").cpu_usage == 21.0, what="later beats reach b")
    assert no_errors(sa, sb)
