"""The snapshot against hostile nodes and callers.

- A node's languages that no pool has cost the language index nothing: the
  pair table covers the pools' languages only, so its size does not grow with
  what nodes advertise, and the build is linear in the pairs pools admit.
- Snapshot arrays are read-only for good: they live in immutable ``bytes``,
  so ``setflags(write=True)`` fails and the kernels' inputs cannot be changed.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import CORE_SERVICES, make_registry, node_info, pool
from hypothesis import given
from hypothesis import strategies as st

from pyscheduler import (
    JobRequest,
    LanguageCapabilities,
    MigrationFlags,
    NodeInfo,
    Phase3Config,
    PoolConfig,
)
from pyscheduler.domain import limits
from pyscheduler.runtime.lang_index import PoolLanguageIndex, frozen, intern_languages, is_frozen
from pyscheduler.state.pools import eligible_pools


def _big_node(node_id: str, n: int, prefix: str = "x") -> NodeInfo:
    langs = ["en", "zh", *(f"{prefix}{i}" for i in range(n - 2))]
    return NodeInfo(node_id, installed_services=CORE_SERVICES,
                    language_capabilities=LanguageCapabilities(asr=langs, tts=langs, nmt_languages=langs))


@pytest.mark.parametrize("flags", [MigrationFlags(), MigrationFlags.all_on()], ids=["legacy-flags", "fast-flags"])
def test_languages_no_pool_has_do_not_grow_the_index(flags):
    pools = [pool(1, ("en", "zh")), pool(2, ("en", "ja", "zh"))]
    small = make_registry([node_info("a")], pools=pools, flags=flags)
    big = make_registry([node_info("a"), _big_node("b", limits.MAX_LANGUAGES_PER_CAPABILITY)],
                        pools=pools, flags=flags)
    s_small, s_big = small.snapshot(), big.snapshot()
    assert s_big.index.n_pool_langs == s_small.index.n_pool_langs == 3
    assert len(s_big.lang_ids) == 3 + limits.MAX_LANGUAGES_PER_CAPABILITY - 2
    for name in ("idx_ptr", "idx_pools", "auto_ptr", "auto_pools"):
        assert np.array_equal(s_big.columns[name], s_small.columns[name]), name
    assert {s_big.lang_ids[c] for c in ("en", "ja", "zh")} == {0, 1, 2}  # pool languages first


def test_the_pair_table_grows_with_the_pairs_pools_admit_not_with_node_languages():
    n = limits.MAX_POOL_LANGUAGES
    langs = tuple(f"l{i:03d}" for i in range(n))
    index = PoolLanguageIndex([PoolConfig(1, "all", langs)])
    assert index.n_pool_langs == n
    assert len(index.idx_pools) == n * (n - 1)  # any_to_any: every ordered pair once
    assert len(index.idx_ptr) == n * n + 1
    assert index.find_pools_for_lang_pair("l001", "l511") == [1]
    assert index.find_pools_for_lang_pair("l001", "l001") == []


CORE_TYPES = JobRequest("en", "zh").required_types
RULES = ("any_to_any", "any_to_en", "en_to_any", "specific_pairs")
LANGS = ("en", "zh", "ja", "de", "fr")


@st.composite
def pool_sets(draw):
    pools = []
    for pid in range(draw(st.integers(1, 5))):
        langs = draw(st.lists(st.sampled_from(LANGS), min_size=1, max_size=5, unique=True))
        rule = draw(st.sampled_from(RULES))
        all_pairs = [(a, b) for a in LANGS for b in LANGS if a != b]
        pairs = draw(st.lists(st.sampled_from(all_pairs), min_size=rule == "specific_pairs", max_size=6))
        blocked = draw(st.lists(st.sampled_from(all_pairs), max_size=4))
        pools.append(PoolConfig(pid, f"p{pid}", tuple(langs), nmt_rule=rule,
                                nmt_pairs=tuple(pairs), blocked_pairs=tuple(blocked)))
    return pools


@given(pool_sets(), st.lists(st.sampled_from(("xx", "yy", *LANGS)), max_size=4))
def test_the_vectorised_index_matches_the_scan_for_every_rule(pools, node_only):
    cfg = Phase3Config(pools=tuple(pools))
    pool_langs = {c for p in pools for c in p.languages}
    lang_ids = intern_languages(pool_langs | set(node_only), first=pool_langs)
    index = PoolLanguageIndex(pools, cfg, lang_ids)
    for src in ("auto", *LANGS, "xx"):
        for tgt in (*LANGS, "xx"):
            want = [p.pool_id for p in eligible_pools(cfg.pools, src, tgt, CORE_TYPES, cfg)]
            assert index.find_pools_for_lang_pair(src, tgt) == want, (src, tgt)


def test_lang_ids_that_do_not_number_pool_languages_first_are_refused():
    with pytest.raises(ValueError, match="first"):
        PoolLanguageIndex([pool(1, ("zh", "zz"))], None, {"aa": 0, "zh": 1, "zz": 2})


@pytest.mark.hotpath
@pytest.mark.parametrize("job", [("x5", "x6"), ("en", "x7"), ("auto", "x9"), ("x5", "zh"), ("en", "zh")])
def test_jobs_in_node_only_languages_decide_the_same_on_both_paths(job):
    pools = [pool(1, ("en", "zh"))]
    nodes = [node_info("a"), _big_node("b", 20), _big_node("c", 12)]
    fast = make_registry(nodes, pools=pools, flags=MigrationFlags.all_on())
    legacy = make_registry(nodes, pools=pools, flags=MigrationFlags())
    request = JobRequest(*job)
    got_fast, got_legacy = fast.select_node(request), legacy.select_node(request)
    assert got_fast.path == "fast" and got_legacy.path == "legacy"
    assert got_fast.decision() == got_legacy.decision()


# -- read-only arrays -----------------------------------------------------------------------


def test_frozen_arrays_cannot_be_made_writable():
    for arr in (np.arange(6, dtype=np.int32), np.zeros(0, dtype=np.uint64), np.ones((2, 3), dtype=np.uint8)):
        out = frozen(arr)
        assert np.array_equal(out, arr) and out.dtype == arr.dtype and is_frozen(out)
        with pytest.raises(ValueError):
            out.setflags(write=True)
        with pytest.raises(ValueError):
            out[...] = 0
    plain = np.arange(3)
    plain.setflags(write=False)
    assert not is_frozen(plain)  # a flag alone can be flipped back
    plain.setflags(write=True)


@pytest.mark.parametrize("flags", [MigrationFlags(), MigrationFlags.all_on()], ids=["legacy-flags", "fast-flags"])
def test_no_snapshot_array_can_be_written_from_outside(flags):
    reg = make_registry(["a", "b", node_info("c", ("en", "ja"))], pools=[pool(1, ("en", "zh"))], flags=flags)
    snap = reg.snapshot()
    arrays = dict(snap.columns)
    arrays.update({f"index.{k}": v for k, v in snap.index.columns().items()})
    for name, arr in arrays.items():
        assert is_frozen(arr), name
        with pytest.raises(ValueError):
            arr.setflags(write=True)
    with pytest.raises(TypeError):
        snap.columns["slot"] = np.zeros(3, dtype=np.int32)  # type: ignore[index]


@pytest.mark.hotpath
def test_the_kernels_keep_working_after_an_attempt_to_tamper():
    reg = make_registry(["a", "b"], pools=[pool(1, ("en", "zh"))], flags=MigrationFlags.all_on())
    snap = reg.snapshot()
    for arr in snap.columns.values():
        try:
            arr.setflags(write=True)
        except ValueError:
            pass
    assert reg.verify_consistency() == []
    sel = reg.select_node(JobRequest("en", "zh"))
    assert sel.path == "fast" and sel.node_id in ("a", "b")
    assert reg.release(sel)


@pytest.mark.parametrize("flags", [MigrationFlags(), MigrationFlags.all_on()], ids=["legacy-flags", "fast-flags"])
def test_a_dropped_registry_frees_its_snapshot_generations(flags):
    import gc
    import weakref

    reg = make_registry(["a", "b"], pools=[pool(1, ("en", "zh"))], flags=flags)
    first = weakref.ref(reg.snapshot())
    reg.register_node_with_policy(node_info("c"))
    current = weakref.ref(reg.snapshot())
    gc.collect()
    assert first() is None  # an old generation nobody reads is freed at once
    del reg
    gc.collect()
    assert current() is None  # and the registry's last one goes with the registry
