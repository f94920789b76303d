"""Batches: ``select_nodes_batch`` as one compiled call returning a ``SelectionBatch``,
``JobColumns``, and ``commit_batch`` / ``release_batch``.

The compiled batch must decide, reserve, count and bind sessions exactly as
``select_node`` called job by job; the columns must say what the ``Selection``
objects say; the batch token calls must end exactly what the single calls end.
"""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from helpers import LANGS, build_registry, jobs, scenarios
from hypothesis import given
from hypothesis import strategies as st

from pyscheduler import (
    InvalidRequestError,
    JobColumns,
    JobRequest,
    LimitExceededError,
    MigrationFlags,
    Reason,
    SelectionBatch,
    ServiceType,
)
from pyscheduler.selection.batch import REASONS, reason_code, reason_of

FAST = MigrationFlags.all_on()
LEGACY = MigrationFlags(use_session_runtime=True)
hotpath = pytest.mark.hotpath


def _counted(reg) -> dict[str, int]:
    """The counters a decision or a token end moves (not the per-path or timing ones)."""
    return {
        k: v
        for k, v in reg.metrics()["counters"].items()
        if k.startswith(("failed.", "selections", "commits", "releases")) and not k.endswith(("_fast", "_legacy"))
    }


def _loads(reg, scenario) -> list[tuple[int, int]]:
    return [(v.running_jobs, v.reserved_jobs) for v in (reg.get_node(n) for n in scenario.node_ids)]


def _sessions(reg, scenario) -> dict:
    out = {}
    for sid in sorted({j.session_id for j in scenario.jobs if j.session_id}):
        s = reg.sessions.get(sid)
        out[sid] = None if s is None else (s.pair, s.bound_pool, s.last_node)
    return out


def _same_selection(a, b) -> None:
    assert a.decision() == b.decision(), f"\none by one: {a.explain()}\nbatch:      {b.explain()}"
    assert a.attempts == b.attempts
    assert a.breakdown.top_reason == b.breakdown.top_reason
    assert (a.reservation is None) == (b.reservation is None)


def _columns_agree(batch: SelectionBatch) -> None:
    """Every column says what the batch's Selection objects say."""
    n = len(batch)
    for column in (batch.node_index, batch.pool_ids, batch.preferred_pool_ids, batch.fallback_used,
                   batch.tokens, batch.top_reasons):
        assert column.shape == (n,) and not column.flags.writeable
    assert batch.tokens.dtype == np.uint64 and batch.pool_ids.dtype == np.int64
    for i, s in enumerate(batch):
        assert batch.node_ids[i] == s.node_id
        assert (batch.node_names[batch.node_index[i]] if batch.node_index[i] >= 0 else None) == s.node_id
        assert bool(batch.ok[i]) == s.ok
        assert int(batch.pool_ids[i]) == (-1 if s.pool_id is None else s.pool_id)
        assert int(batch.preferred_pool_ids[i]) == (-1 if s.preferred_pool is None else s.preferred_pool)
        assert bool(batch.fallback_used[i]) == s.fallback_used
        assert int(batch.tokens[i]) == (0 if s.reservation is None else s.reservation)
        assert batch.reasons[i] == s.breakdown.top_reason == reason_of(int(batch.top_reasons[i]))


# -- the compiled batch against select_node, job by job -------------------------------------


@hotpath
@given(scenarios(max_nodes=12, max_jobs=20))
def test_fast_batch_equals_fast_one_by_one(scenario):
    one, _ = build_registry(scenario, flags=FAST)
    whole, _ = build_registry(scenario, flags=FAST)
    cols, _ = build_registry(scenario, flags=FAST)
    expected = [one.select_node(job) for job in scenario.jobs]
    got = whole.select_nodes_batch(scenario.jobs)
    from_columns = cols.select_nodes_batch(JobColumns.from_requests(scenario.jobs))
    assert isinstance(got, SelectionBatch) and got.path == "fast"
    assert len(got) == len(from_columns) == len(expected)
    for a, b, c in zip(expected, got, from_columns):
        _same_selection(a, b)
        _same_selection(a, c)
        assert b.path == c.path == "fast"
    _columns_agree(got)
    _columns_agree(from_columns)
    for reg in (whole, cols):
        assert _counted(reg) == _counted(one)
        assert _loads(reg, scenario) == _loads(one, scenario)
        assert _sessions(reg, scenario) == _sessions(one, scenario)
        assert reg.verify_consistency() == []
    # the batch's tokens are live tokens of its registry, once each
    live = got.tokens[got.tokens != 0].tolist()
    assert len(set(live)) == len(live) == int(got.ok.sum())
    assert whole.release_batch(got).tolist() == [s.ok for s in got]
    assert all(whole.get_node(n).reserved_jobs == 0 for n in scenario.node_ids)


@hotpath
@given(scenarios(max_nodes=12, max_jobs=16))
def test_fast_batch_equals_legacy_batch(scenario):
    legacy, _ = build_registry(scenario, flags=LEGACY)
    fast, _ = build_registry(scenario, flags=FAST)
    a = legacy.select_nodes_batch(scenario.jobs)
    b = fast.select_nodes_batch(scenario.jobs)
    assert isinstance(a, SelectionBatch) and a.path == "legacy" and b.path == "fast"
    for x, y in zip(a, b):
        assert x.decision() == y.decision(), f"\nlegacy: {x.explain()}\nfast:   {y.explain()}"
        assert x.attempts == y.attempts
    assert a.node_ids == b.node_ids
    for name in ("pool_ids", "preferred_pool_ids", "fallback_used", "top_reasons"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    assert ((a.tokens != 0) == (b.tokens != 0)).all()
    _columns_agree(a)
    assert _counted(legacy) == _counted(fast)
    assert _sessions(legacy, scenario) == _sessions(fast, scenario)


@hotpath
def test_batch_of_nothing_and_a_list_compare_equal():
    from pyscheduler import NodeRegistry

    reg = NodeRegistry(flags=FAST)
    empty = reg.select_nodes_batch([])
    assert empty == [] and len(empty) == 0 and empty.tokens.shape == (0,)
    one = reg.select_nodes_batch([JobRequest("en", "zh")])
    assert one == [one[0]] and one[-1] is one[0] and one[0:1] == [one[0]]
    assert one[0].breakdown.top_reason == reason_of(int(one.top_reasons[0]))
    with pytest.raises(IndexError):
        one[1]


def test_reason_codes_are_reason_positions():
    assert [reason_code(r) for r in REASONS] == list(range(len(Reason)))
    assert reason_of(-1) is None and reason_code(None) == -1
    assert reason_of(reason_code(Reason.NO_ELIGIBLE_POOL)) is Reason.NO_ELIGIBLE_POOL


@given(scenarios(max_nodes=8, max_jobs=10))
def test_legacy_batch_columns_match_its_selections(scenario):
    reg, _ = build_registry(scenario, flags=LEGACY)
    batch = reg.select_nodes_batch(scenario.jobs)
    _columns_agree(batch)
    assert batch.node_names == tuple(sorted({s.node_id for s in batch if s.ok}))


# -- commit_batch / release_batch against commit / release ----------------------------------


_RAW = (0, 1, -1, 12345, 2**63, 2**64 - 1, 2**64 + 5, -(2**70))


def _token_specs(n_live: int) -> st.SearchStrategy[list[tuple[str, int]]]:
    """What to end, per token: a live one (by position), one forged from a live
    one (another sequence, another entry), or a raw integer."""
    raw = st.sampled_from(_RAW).map(lambda v: ("raw", v))
    if not n_live:
        return st.lists(raw, max_size=6)
    position = st.integers(0, n_live - 1)
    return st.lists(st.one_of(
        position.map(lambda p: ("live", p)),
        position.map(lambda p: ("seq", p)),
        position.map(lambda p: ("entry", p)),
        raw,
    ), max_size=24)


def _tokens(specs, live: list[int], foreign: list[int]) -> list[int]:
    made = {"live": lambda p: live[p], "seq": lambda p: live[p] ^ 1, "entry": lambda p: live[p] + (1 << 20),
            "raw": lambda v: v}
    return [made[kind](v) for kind, v in specs] + foreign


@pytest.mark.parametrize("flags", [pytest.param(FAST, marks=hotpath), LEGACY], ids=["fast", "legacy"])
@given(scenario=scenarios(max_nodes=8, max_jobs=10), data=st.data())
def test_commit_and_release_batch_equal_the_single_calls(flags, scenario, data):
    singles, _ = build_registry(scenario, flags=flags)
    batched, _ = build_registry(scenario, flags=flags)
    other, _ = build_registry(scenario, flags=flags)
    a = singles.select_nodes_batch(scenario.jobs)
    b = batched.select_nodes_batch(scenario.jobs)
    foreign = [t for t in other.select_nodes_batch(scenario.jobs).tokens.tolist() if t]
    # the two registries gave different tokens for the same places: play the same list on both
    live_a = [int(t) for t in a.tokens.tolist() if t]
    live_b = [int(t) for t in b.tokens.tolist() if t]
    assert len(live_a) == len(live_b)
    specs = data.draw(_token_specs(len(live_a)))
    commit = data.draw(st.booleans())
    got = (batched.commit_batch if commit else batched.release_batch)(_tokens(specs, live_b, foreign))
    expected = [(singles.commit if commit else singles.release)(t) for t in _tokens(specs, live_a, foreign)]
    assert isinstance(got, np.ndarray) and got.dtype == np.bool_
    assert got.tolist() == expected
    assert _counted(batched) == _counted(singles)
    assert _loads(batched, scenario) == _loads(singles, scenario)
    assert batched.verify_consistency() == []


@pytest.mark.parametrize("flags", [pytest.param(FAST, marks=hotpath), LEGACY], ids=["fast", "legacy"])
def test_batch_token_calls_take_arrays_selections_and_batches(flags):
    from helpers import beat, node_info

    from pyscheduler import NodeRegistry

    reg = NodeRegistry(flags=flags)
    for i in range(4):
        reg.register_node_with_policy(node_info(f"n{i}", ["en", "zh"], max_concurrent_jobs=4))
        reg.update_node_heartbeat(f"n{i}", beat())
    batch = reg.select_nodes_batch([JobRequest("en", "zh", session_id=f"s{i}") for i in range(6)])
    assert batch.ok.all()
    # a SelectionBatch, an int64 array, Selection objects: each ends what it names once
    assert reg.release_batch(np.asarray(batch.tokens[:2], dtype=np.int64)).tolist() == [True, True]
    assert reg.commit_batch([batch[2], batch[3]]).tolist() == [True, True]
    assert reg.release_batch(batch).tolist() == [False, False, False, False, True, True]
    assert reg.commit_batch(np.array([], dtype=np.uint64)).tolist() == []
    assert sum(reg.get_node(f"n{i}").running_jobs for i in range(4)) == 2


@pytest.mark.parametrize("bad", [
    ["not a token"], [1.5], [None], [True], "abc", 5, np.array([1.0, 2.0]), np.array([[1, 2]]),
    np.array([True]), [object()],
])
def test_batch_token_calls_reject_what_is_no_token_and_end_nothing(bad):
    from helpers import beat, node_info

    from pyscheduler import NodeRegistry

    reg = NodeRegistry()
    reg.register_node_with_policy(node_info("n0", ["en", "zh"], max_concurrent_jobs=4))
    reg.update_node_heartbeat("n0", beat())
    s = reg.select_node(JobRequest("en", "zh"))
    assert s.ok
    mixed = [s.reservation, *bad] if isinstance(bad, list) else bad
    for call in (reg.commit_batch, reg.release_batch):
        with pytest.raises(InvalidRequestError):
            call(mixed)
    assert reg.get_node("n0").reserved_jobs == 1
    assert reg.commit(s) is True


# -- JobColumns ----------------------------------------------------------------------------


@given(st.lists(jobs(["n0", "n1"]), max_size=12))
def test_job_columns_rows_equal_the_job_requests(job_list):
    cols = JobColumns.from_requests(job_list)
    assert len(cols) == len(job_list)
    assert list(cols) == job_list
    assert [cols.row(i) for i in range(len(job_list))] == job_list
    by_hand = JobColumns(
        src_lang=[j.src_lang for j in job_list], tgt_lang=np.array([j.tgt_lang for j in job_list], dtype=object),
        required_types=[j.required_types for j in job_list], session_id=[j.session_id for j in job_list],
        tenant_id=tuple(j.tenant_id for j in job_list), routing_key=[j.routing_key for j in job_list],
        exclude_node_ids=[set(j.exclude_node_ids) for j in job_list], public=[j.public for j in job_list],
        preferred_node_id=[j.preferred_node_id for j in job_list],
    ) if job_list else cols
    assert list(by_hand) == job_list
    assert [c.key for c in by_hand] == [j.key for j in job_list]


def test_job_columns_broadcast_single_values():
    cols = JobColumns(["en", "ZH", "auto"], "ja", required_types=ServiceType.NMT, public=False, tenant_id="t1")
    assert list(cols) == [JobRequest(s, "ja", ServiceType.NMT, tenant_id="t1", public=False)
                          for s in ("en", "zh", "auto")]


@pytest.mark.parametrize(("kwargs", "error", "row"), [
    ({"src_lang": ["en", 5], "tgt_lang": "zh"}, InvalidRequestError, 1),
    ({"src_lang": ["en", "en"], "tgt_lang": ["zh", ""]}, InvalidRequestError, 1),
    ({"src_lang": ["en"], "tgt_lang": "zh", "required_types": [0]}, InvalidRequestError, 0),
    ({"src_lang": ["en", "de"], "tgt_lang": "zh", "public": [True, "yes"]}, InvalidRequestError, 1),
    ({"src_lang": ["en", "de", "ja"], "tgt_lang": "zh", "session_id": [None, None, 7]}, InvalidRequestError, 2),
    ({"src_lang": ["en"], "tgt_lang": "zh", "routing_key": ["k" * 100_000]}, LimitExceededError, 0),
    ({"src_lang": ["en"], "tgt_lang": "zh", "exclude_node_ids": ["n1"]}, InvalidRequestError, 0),
])
def test_job_columns_reject_a_bad_row_by_number(kwargs, error, row):
    with pytest.raises(error, match=f"JobColumns row {row}: JobRequest"):
        JobColumns(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {"src_lang": ["en", "de"], "tgt_lang": ["zh"]},
    {"src_lang": "en", "tgt_lang": "zh"},
    {"src_lang": ["en"], "tgt_lang": "zh", "exclude_node_ids": "n1"},
])
def test_job_columns_reject_bad_shapes(kwargs):
    with pytest.raises(InvalidRequestError, match="JobColumns"):
        JobColumns(**kwargs)


@given(scenarios(max_nodes=8, max_jobs=10))
def test_job_columns_place_as_their_job_requests_on_the_legacy_path(scenario):
    by_jobs, _ = build_registry(scenario, flags=LEGACY)
    by_cols, _ = build_registry(scenario, flags=LEGACY)
    a = by_jobs.select_nodes_batch(scenario.jobs)
    b = by_cols.select_nodes_batch(JobColumns.from_requests(scenario.jobs))
    assert [s.decision() for s in a] == [s.decision() for s in b]


# -- two threads, one registry ----------------------------------------------------------------


@hotpath
def test_two_threads_batching_keep_tokens_counts_and_sessions_exact():
    from helpers import beat, node_info

    from pyscheduler import NodeRegistry

    reg = NodeRegistry(flags=FAST)
    node_ids = [f"n{i:02d}" for i in range(16)]
    for i, nid in enumerate(node_ids):
        reg.register_node_with_policy(
            node_info(nid, [LANGS[i % len(LANGS)], LANGS[(i + 1) % len(LANGS)]], max_concurrent_jobs=2 + i % 3)
        )
        reg.update_node_heartbeat(nid, beat())
    results: list[list] = [[], []]
    held: list[list[int]] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def dispatcher(k: int) -> None:
        try:
            rng = random.Random(k)
            start.wait()
            for round_ in range(60):
                n = rng.randrange(1, 40)
                pairs = [rng.sample(LANGS[:4], 2) for _ in range(n)]
                sessions = [f"s{rng.randrange(30)}" if rng.random() < 0.7 else None for _ in range(n)]
                if round_ % 2:
                    batch = reg.select_nodes_batch(JobColumns([p[0] for p in pairs], [p[1] for p in pairs],
                                                              session_id=sessions))
                else:
                    batch = reg.select_nodes_batch([JobRequest(p[0], p[1], session_id=s)
                                                    for p, s in zip(pairs, sessions)])
                results[k].append((batch.tokens.copy(), batch.ok.copy()))
                tokens = batch.tokens[batch.tokens != 0]
                cut = rng.randrange(len(tokens) + 1)
                keep = rng.random() < 0.2
                assert reg.commit_batch(tokens[:cut]).all()
                if keep:
                    held[k].extend(tokens[cut:].tolist())
                else:
                    assert reg.release_batch(tokens[cut:]).all()
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=dispatcher, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    all_tokens = [t for r in results for tokens, _ in r for t in tokens.tolist() if t]
    placed = sum(int(ok.sum()) for r in results for _, ok in r)
    decided = sum(len(ok) for r in results for _, ok in r)
    assert len(all_tokens) == placed == len(set(all_tokens))  # one token per place, never shared
    counters = reg.metrics()["counters"]
    assert counters["selections"] == decided
    assert counters["selections"] - counters["selections_failed"] == placed
    assert counters["commits"] + counters["releases"] == placed - sum(len(h) for h in held)
    views = [reg.get_node(n) for n in node_ids]
    assert sum(v.reserved_jobs for v in views) == sum(len(h) for h in held)
    assert reg.verify_consistency() == []
    assert reg.release_batch([t for h in held for t in h]).all()
    assert sum(reg.get_node(n).reserved_jobs for n in node_ids) == 0


_BAD_OR_GOOD = {
    "src_lang": ["en", "zh", "auto", "ZH", "", 5, None, "e n"],
    "tgt_lang": ["zh", "en", "auto", "", 1.5],
    "required_types": [ServiceType.NMT, 7, 0, True, "asr", ["asr", "nmt"], -1],
    "session_id": [None, "s1", "", 3, "x" * 300],
    "tenant_id": [None, "t1", " ", b"t"],
    "routing_key": [None, "k", "\ud800", "r" * 100_000],
    "exclude_node_ids": [frozenset(), frozenset({"n1"}), ["n1", "n2"], "n1", [""], None],
    "public": [True, False, 1, "yes"],
    "preferred_node_id": [None, "n1", 0],
}


@given(st.data())
def test_job_columns_fail_at_the_first_bad_row_as_job_request_does(data):
    n = data.draw(st.integers(1, 6))
    columns = {name: data.draw(st.lists(st.sampled_from(values), min_size=n, max_size=n))
               for name, values in _BAD_OR_GOOD.items()}
    expected = None
    for i in range(n):
        try:
            JobRequest(**{name: col[i] for name, col in columns.items() if col[i] is not None or name != "exclude_node_ids"})
        except InvalidRequestError as exc:
            expected = (type(exc), f"JobColumns row {i}: {exc}")
            break
    if expected is None:
        cols = JobColumns(**columns)
        assert list(cols) == [JobRequest(**{k: c[i] for k, c in columns.items() if c[i] is not None or k != "exclude_node_ids"})
                              for i in range(n)]
        return
    with pytest.raises(InvalidRequestError) as caught:
        JobColumns(**columns)
    assert (type(caught.value), str(caught.value)) == expected
