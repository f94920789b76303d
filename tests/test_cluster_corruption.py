"""Random corruption written into Redis never stops an instance from applying
the valid changes of the others (hypothesis, against the suite's redis-server).

Each example starts two instances on a prefix of their own, then runs a few
rounds: write random corruptions under the prefix - keys of the wrong Redis
type, garbage bytes, deeply nested JSON, huge values, in node hashes, the
node-id set, the config hash, the change stream, the generation counter and
the epoch - sometimes make every
instance read Redis whole, then make a valid change on one instance and check
that the other applies it (and a config change, both ways). Corruption
accumulates over the rounds of an example.
"""

from __future__ import annotations

import uuid

import pytest
import redis
from cluster_support import FAST, counts, picks, wait_until
from helpers import beat, node_info, phase3, pool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyscheduler import NodeRegistry
from pyscheduler.cluster import RedisClusterSync, codec

pytestmark = pytest.mark.redis

NESTED = b"[" * 50_000 + b"]" * 50_000
HUGE = b"x" * (5 << 20)

BIG = {"NESTED": NESTED, "HUGE": HUGE}  # drawn by name: a short repr in hypothesis' reports
garbage = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(["NESTED", "HUGE", b"1e400", b"nan", b"-5", b"99999999999999999999", b"\xff\xfe",
                     b'{"node_id": "g"}', b"{}", b"[]", b"", b"ready"]),
)
HASH_FIELDS = [b"owner", b"info", b"status", b"hb", b"hb_at", b"flags", b"g"]


@st.composite
def corruptions(draw) -> tuple:
    """One corruption: (where, how, payload) as plain data."""
    where = draw(st.sampled_from(["own node", "foreign node", "node set", "config", "stream",
                                  "shared key"]))
    how = draw(st.sampled_from(["wrong type", "field"]))
    if where.endswith("node"):
        field = draw(st.sampled_from(HASH_FIELDS))
    elif where == "shared key":
        field = draw(st.sampled_from([b"events", b"gen", b"nodes", b"epoch"]))
    else:
        field = draw(st.sampled_from([b"version", b"doc", b"x"]))
    return where, how, field, draw(garbage)


class Fleet:
    """Two started instances on a prefix of their own, and a raw client to corrupt Redis with."""

    def __init__(self, server) -> None:
        self.r = redis.Redis.from_url(server.url, socket_timeout=5)
        self.p = f"corrupt-{uuid.uuid4().hex[:10]}"
        url = server.url
        self.a = NodeRegistry(phase3(pool(1, ["en", "zh"])))
        self.b = NodeRegistry(phase3(pool(1, ["en", "zh"])))
        self.sa = RedisClusterSync(self.a, url, instance_id="a", prefix=self.p, **FAST).start()
        self.sb = RedisClusterSync(self.b, url, instance_id="b", prefix=self.p, **FAST).start()
        assert self.sa.wait_synced(10) and self.sb.wait_synced(10)
        self.step = 0

    def close(self) -> None:
        self.sa.close(timeout=2.0)
        self.sb.close(timeout=2.0)
        self.r.close()

    def corrupt(self, where: str, how: str, field: bytes, payload: bytes | str) -> None:
        r, p = self.r, self.p
        payload = BIG[payload] if isinstance(payload, str) else payload
        if where == "stream":
            gen = r.incr(f"{p}:gen") if how == "field" else 0  # the next generation, or a gap
            r.xadd(f"{p}:events", {"e": codec.SEP.join([str(gen).encode(), b"x", b"1", b"reg", b"g", payload])})
            return
        if where == "node set":
            r.sadd(f"{p}:nodes", payload[:300] or b"?")
            return
        if where == "shared key":
            key = f"{p}:{field.decode()}"
            if how == "wrong type":
                r.delete(key)
                r.hset(key, "x", payload[:300])
            elif field in (b"gen", b"epoch"):
                r.set(key, payload[:300])
            return
        key = {"own node": f"{p}:node:a{self.step}", "foreign node": f"{p}:node:g",
               "config": f"{p}:config"}[where]
        if where == "foreign node":
            r.sadd(f"{p}:nodes", "g")
        if how == "wrong type":
            r.delete(key)
            r.rpush(key, payload or b"?")
        elif r.type(key) in (b"hash", b"none"):
            r.hset(key, field, payload)
            if where != "config":
                r.expire(key, 30)

    def valid_change(self) -> str:
        """A registers and beats a new node; returns its id."""
        self.step += 1
        node_id = f"a{self.step}"
        self.a.register_node_with_policy(node_info(node_id))
        self.a.update_node_heartbeat(node_id, beat(cpu=float(self.step % 90)))
        return node_id


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.lists(corruptions(), max_size=4), st.booleans(), st.booleans()),
                min_size=1, max_size=4))
def test_an_instance_keeps_applying_valid_changes_over_random_corruption(redis_server, rounds):
    fleet = Fleet(redis_server)
    try:
        for harm, resync, new_config in rounds:
            for where, how, field, payload in harm:
                try:
                    fleet.corrupt(where, how, field, payload)
                except redis.ResponseError:
                    pass  # Redis refused the corruption itself (e.g. SADD into a hash)
            if resync:
                fleet.r.delete(f"{fleet.p}:epoch")  # every instance reads Redis whole
            node_id = fleet.valid_change()
            wait_until(lambda node_id=node_id: picks(fleet.b, node_id), timeout=10, what=f"{node_id} dispatchable on b")
            assert fleet.b.get_node(node_id).cpu_usage == float(fleet.step % 90)
            if new_config:
                # the change is made once both instances have settled the repairs the
                # corruption caused: a repair's republish racing a local change can
                # still undo that change (a known limit, docs/CLUSTER.md "Config")
                assert fleet.sa.flush(10) and fleet.sb.flush(10)
                wait_until(lambda: fleet.sa.config_version == fleet.sb.config_version,
                           timeout=10, what="one config version before the change")
                cfg = phase3(pool(1, ["en", "zh"]), pool(2 + fleet.step, ["en", "ja"]))
                fleet.b.set_phase3_config(cfg)
                wait_until(lambda cfg=cfg: fleet.a.phase3_config == cfg == fleet.b.phase3_config
                           and fleet.sa.config_version == fleet.sb.config_version,
                           timeout=10, what="b's config on a")
        for sync in (fleet.sa, fleet.sb):
            got = counts(sync)
            assert got.get("reader_errors", 0) == got.get("writer_errors", 0) == got.get("apply_errors", 0) == 0
    finally:
        fleet.close()
