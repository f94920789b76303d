"""Pools as sets of nodes (docs/DESIGN.md §5 "Pool eligibility", §6 "Membership" and
"Generated pools", §7.1, §7.2, §7.4): the O(N) scans every faster structure is
checked against, checked here against independent restatements of the design."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pyscheduler import AutoPoolConfig, ConfigError, Phase3Config, PoolConfig, ServiceType
from pyscheduler.domain.hashing import node_hash
from pyscheduler.state.pools import (
    PoolGenerator,
    PoolLookup,
    eligible_pools,
    generated_pool_name,
    node_pools,
    pool_sort_key,
    services_match,
)

ASR, NMT, TTS, SEMANTIC, TONE = (
    ServiceType.ASR,
    ServiceType.NMT,
    ServiceType.TTS,
    ServiceType.SEMANTIC,
    ServiceType.TONE,
)
NONE = ServiceType(0)
CORE = ASR | NMT | TTS


def fs(*langs: str) -> frozenset[str]:
    return frozenset(langs)


def cfg(scope="core_only", mode="contains") -> Phase3Config:
    return Phase3Config(pool_match_scope=scope, pool_match_mode=mode)


# --- services_match -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("required", "job", "scope", "mode", "expected"),
    [
        # empty requirement: a wildcard in every scope and mode
        (NONE, CORE, "core_only", "contains", True),
        (NONE, CORE | SEMANTIC, "all_required", "exact", True),
        (NONE, ASR, "core_only", "exact", True),
        # contains x core_only: extra job types beyond the core are ignored
        (CORE, CORE, "core_only", "contains", True),
        (CORE | SEMANTIC, CORE, "core_only", "contains", True),
        (CORE, CORE | SEMANTIC, "core_only", "contains", True),
        (ASR | NMT, CORE, "core_only", "contains", False),
        (ASR | NMT, ASR, "core_only", "contains", True),
        # contains x all_required
        (CORE, CORE | SEMANTIC, "all_required", "contains", False),
        (CORE | SEMANTIC, CORE | SEMANTIC, "all_required", "contains", True),
        (CORE | SEMANTIC | TONE, CORE | SEMANTIC, "all_required", "contains", True),
        # exact x core_only
        (CORE, CORE | SEMANTIC, "core_only", "exact", True),
        (CORE | SEMANTIC, CORE, "core_only", "exact", False),
        (ASR | NMT, CORE, "core_only", "exact", False),
        (ASR | NMT, ASR | NMT | TONE, "core_only", "exact", True),
        # exact x all_required
        (CORE, CORE | SEMANTIC, "all_required", "exact", False),
        (CORE | SEMANTIC, CORE | SEMANTIC, "all_required", "exact", True),
        (CORE | SEMANTIC | TONE, CORE | SEMANTIC, "all_required", "exact", False),
    ],
)
def test_services_match(required, job, scope, mode, expected):
    assert services_match(required, job, scope, mode) is expected


def spec_services_match(required: int, job: int, scope: str, mode: str) -> bool:
    """docs/DESIGN.md §5 restated on sets of bit positions."""
    req = {b for b in range(5) if required >> b & 1}
    wanted = {b for b in range(5) if job >> b & 1}
    if scope == "core_only":
        wanted &= {0, 1, 2}
    if not req:
        return True
    return wanted <= req if mode == "contains" else wanted == req


@given(
    st.integers(0, 31),
    st.integers(1, 31),
    st.sampled_from(["core_only", "all_required"]),
    st.sampled_from(["contains", "exact"]),
)
def test_services_match_property(required, job, scope, mode):
    got = services_match(ServiceType(required), ServiceType(job), scope, mode)
    assert got == spec_services_match(required, job, scope, mode)


# --- eligible_pools ---------------------------------------------------------------------

LANGS = ["en", "zh", "ja", "de", "fr", "ben"]
lang = st.sampled_from(LANGS)
pair = st.tuples(lang, lang).filter(lambda p: p[0] != p[1])
RULES = ["any_to_any", "any_to_en", "en_to_any", "specific_pairs"]


@st.composite
def pool_lists(draw, rules=RULES, blocked=True, max_size=10):
    ids = draw(st.lists(st.integers(0, 60), unique=True, max_size=max_size))
    out = []
    for pool_id in ids:
        rule = draw(st.sampled_from(rules))
        out.append(
            PoolConfig(
                pool_id,
                f"p{pool_id}",
                draw(st.lists(lang, min_size=1, max_size=5)),
                nmt_rule=rule,
                nmt_pairs=draw(st.lists(pair, min_size=rule == "specific_pairs", max_size=4)),
                blocked_pairs=draw(st.lists(pair, max_size=3)) if blocked else (),
                required_services=ServiceType(draw(st.sampled_from([0, 0, 7, 3, 15, 31, 1]))),
            )
        )
    return out


def brute_eligible(pools, src, tgt, job, scope, mode):
    """docs/DESIGN.md §5 "Pool eligibility" restated independently of pyscheduler.domain.languages."""

    def admits_pair(p, s):
        langs = set(p.languages)
        if s == tgt or s not in langs or tgt not in langs:
            return False
        if (s, tgt) in set(p.blocked_pairs):
            return False
        if p.nmt_rule == "any_to_any":
            return True
        if p.nmt_rule == "any_to_en":
            return tgt == "en"
        if p.nmt_rule == "en_to_any":
            return s == "en"
        return (s, tgt) in set(p.nmt_pairs)

    chosen = []
    for p in pools:
        ok = any(admits_pair(p, s) for s in p.languages) if src == "auto" else admits_pair(p, src)
        if ok and spec_services_match(int(p.required_services), int(job), scope, mode):
            chosen.append(p)
    return sorted(chosen, key=lambda p: (len(set(p.languages)), p.pool_id))


def test_eligible_pools_order_smallest_set_then_id():
    pools = [
        PoolConfig(1, "big", ["en", "zh", "ja", "de"]),
        PoolConfig(9, "pair-b", ["en", "zh"]),
        PoolConfig(4, "pair-a", ["zh", "en"]),
        PoolConfig(2, "mid", ["en", "zh", "fr"]),
        PoolConfig(3, "other", ["de", "fr"]),
        PoolConfig(5, "blocked", ["en", "zh"], blocked_pairs=[("en", "zh")]),
    ]
    got = eligible_pools(pools, "en", "zh", CORE, cfg())
    assert [p.pool_id for p in got] == [4, 9, 2, 1]
    assert pool_sort_key(pools[0]) == (4, 1)


def test_eligible_pools_filters_by_required_services():
    pools = [
        PoolConfig(1, "asr-only", ["en", "zh"], required_services=ASR),
        PoolConfig(2, "core", ["en", "zh"], required_services=CORE),
        PoolConfig(3, "any", ["en", "zh"]),
        PoolConfig(4, "core+sem", ["en", "zh"], required_services=CORE | SEMANTIC),
    ]

    def ids(job, config):
        return [p.pool_id for p in eligible_pools(pools, "en", "zh", job, config)]

    assert ids(CORE, cfg("core_only", "contains")) == [2, 3, 4]
    assert ids(CORE, cfg("core_only", "exact")) == [2, 3]
    assert ids(CORE | SEMANTIC, cfg("all_required", "contains")) == [3, 4]
    assert ids(CORE | SEMANTIC, cfg("all_required", "exact")) == [3, 4]
    assert ids(ASR, cfg("core_only", "exact")) == [1, 3]


def test_eligible_pools_auto_source():
    pools = [
        PoolConfig(1, "a", ["en", "zh"]),
        PoolConfig(2, "b", ["ja"]),
        PoolConfig(3, "c", ["ben", "zh"]),
    ]
    assert [p.pool_id for p in eligible_pools(pools, "auto", "zh", CORE, cfg())] == [1, 3]
    assert eligible_pools(pools, "auto", "en", CORE, cfg()) != []
    assert [p.pool_id for p in eligible_pools(pools, "auto", "en", CORE, cfg())] == [1]


@given(
    pool_lists(),
    st.sampled_from(["auto", *LANGS]),
    lang,
    st.integers(1, 31),
    st.sampled_from(["core_only", "all_required"]),
    st.sampled_from(["contains", "exact"]),
)
def test_eligible_pools_is_exactly_the_filtered_set_in_order(pools, src, tgt, job, scope, mode):
    got = eligible_pools(pools, src, tgt, ServiceType(job), cfg(scope, mode))
    want = brute_eligible(pools, src, tgt, ServiceType(job), scope, mode)
    assert [p.pool_id for p in got] == [p.pool_id for p in want]
    keys = [(len(p.languages), p.pool_id) for p in got]
    assert keys == sorted(keys)


@given(pool_lists(rules=["any_to_any"], blocked=False), lang, lang)
@example(
    [PoolConfig(1, "en-zh", ["en", "zh"]), PoolConfig(2, "en-ja-zh", ["zh", "ja", "en"])],
    "zh",
    "en",
)
def test_reverse_direction_finds_the_same_any_to_any_pools(pools, a, b):
    # docs/DESIGN.md §7.1: zh->en and en->zh find the same language-set pools.
    forward = [p.pool_id for p in eligible_pools(pools, a, b, CORE, cfg())]
    backward = [p.pool_id for p in eligible_pools(pools, b, a, CORE, cfg())]
    assert forward == backward
    if a != b:
        assert set(forward) == {
            p.pool_id
            for p in pools
            if ({a, b} <= set(p.languages)
            and (p.required_services & CORE) == CORE)
            or ({a, b} <= set(p.languages)
            and not p.required_services)
        }


# --- PoolLookup.covered --------------------------------------------------------------------

MANY = [f"l{i:02d}" for i in range(20)]


@st.composite
def lookup_cases(draw):
    alphabet = draw(st.sampled_from([MANY[:5], MANY[:14], MANY]))
    langs_of = st.frozensets(st.sampled_from(alphabet), min_size=1, max_size=len(alphabet))
    ids = draw(st.lists(st.integers(0, 200), unique=True, max_size=25))
    pools = [PoolConfig(i, f"p{i}", sorted(draw(langs_of))) for i in ids]
    node_set = draw(st.frozensets(st.sampled_from(alphabet), max_size=len(alphabet)))
    return pools, node_set


@given(lookup_cases())
@example(([PoolConfig(1, "a", MANY[:13]), PoolConfig(2, "b", ["l00"])], frozenset(MANY[:13])))
@example(
    (
        [
            PoolConfig(1, "a", ["l00", "l01"]),
            PoolConfig(2, "b", ["l00"]),
            PoolConfig(3, "c", ["l00"]),
        ],
        frozenset(["l00", "l01"]),
    )
)
def test_pool_lookup_covered_equals_a_subset_scan(case):
    pools, node_set = case
    got = [p.pool_id for p in PoolLookup(pools).covered(node_set)]
    want = sorted(p.pool_id for p in pools if all(lang in node_set for lang in p.languages))
    assert got == want


def test_pool_lookup_covered_large_node_set():
    pools = [
        PoolConfig(1, "wide", MANY[:15]),
        PoolConfig(2, "pair", ["l00", "l19"]),
        PoolConfig(3, "out", ["l00", "x"]),
    ]
    lookup = PoolLookup(pools)
    assert [p.pool_id for p in lookup.covered(frozenset(MANY))] == [1, 2]
    assert [p.pool_id for p in lookup.covered(frozenset(MANY[:15]))] == [1]
    assert lookup.covered(frozenset()) == []


# --- node_pools --------------------------------------------------------------------------


def test_node_pools_all_matching_covers_languages_and_services():
    pools = [
        PoolConfig(1, "en-zh", ["en", "zh"]),
        PoolConfig(2, "en-ja-zh", ["en", "ja", "zh"]),
        PoolConfig(3, "en-zh-core", ["en", "zh"], required_services=CORE),
        PoolConfig(4, "en-zh-sem", ["en", "zh"], required_services=SEMANTIC),
        PoolConfig(5, "de-en", ["de", "en"]),
        PoolConfig(6, "ben-zh", ["ben", "zh"]),
    ]
    lookup = PoolLookup(pools)
    node_set = fs("en", "ja", "zh")
    assert node_pools("n", node_set, CORE, lookup, "all_matching") == (1, 2, 3)
    assert node_pools("n", node_set, CORE | SEMANTIC, lookup, "all_matching") == (1, 2, 3, 4)
    assert node_pools("n", node_set, ASR | NMT, lookup, "all_matching") == (1, 2)
    assert node_pools("n", fs("en"), CORE, lookup, "all_matching") == ()
    assert node_pools("n", fs("en", "zh", "ja"), NONE, lookup, "all_matching") == (1, 2)


def test_node_pools_most_specific_picks_the_widest_covered_pool():
    pools = [
        PoolConfig(1, "en-zh", ["en", "zh"]),
        PoolConfig(2, "en-ja-zh", ["en", "ja", "zh"]),
        PoolConfig(3, "en-ja-zh-core", ["en", "ja", "zh"], required_services=CORE | SEMANTIC),
        PoolConfig(4, "de-en-ja-zh", ["de", "en", "ja", "zh"]),
    ]
    lookup = PoolLookup(pools)
    assert node_pools("n", fs("en", "ja", "zh"), CORE, lookup, "most_specific") == (2,)
    assert node_pools("n", fs("en", "zh"), CORE, lookup, "most_specific") == (1,)
    assert node_pools("n", fs("de", "en", "ja", "zh"), CORE, lookup, "most_specific") == (4,)
    assert node_pools("n", fs("fr"), CORE, lookup, "most_specific") == ()


@pytest.mark.parametrize("node_id", ["n-0", "n-1", "gpu-17", "", "节点-3", "x" * 256])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_node_pools_most_specific_tie_break_is_fnv_of_node_id(node_id, k):
    # k pools with the same (widest) language set, given in scrambled id order
    ids = [40, 7, 23, 11, 3][:k]
    pools = [PoolConfig(i, f"p{i}", ["en", "ja", "zh"]) for i in ids]
    pools.append(PoolConfig(99, "narrow", ["en", "zh"]))
    expected = sorted(ids)[node_hash(node_id) % k]
    got = node_pools(node_id, fs("en", "ja", "zh"), CORE, PoolLookup(pools), "most_specific")
    assert got == (expected,)


def test_most_specific_tie_break_spreads_nodes():
    pools = [PoolConfig(i, f"p{i}", ["en", "zh"]) for i in (1, 2, 3)]
    lookup = PoolLookup(pools)
    chosen = {
        node_pools(f"node-{i}", fs("en", "zh"), CORE, lookup, "most_specific")[0] for i in range(60)
    }
    assert chosen == {1, 2, 3}


@given(lookup_cases(), st.integers(0, 31), st.text(max_size=8))
def test_most_specific_is_one_of_all_matching_with_most_languages(case, installed, node_id):
    pools, node_set = case
    pools = [
        PoolConfig(
            p.pool_id, p.name, p.languages, required_services=ServiceType(p.pool_id % 3 and 1)
        )
        for p in pools
    ]
    lookup = PoolLookup(pools)
    every = node_pools(node_id, node_set, ServiceType(installed), lookup, "all_matching")
    by_id = {p.pool_id: p for p in pools}
    assert list(every) == sorted(
        p.pool_id
        for p in pools
        if set(p.languages) <= node_set
        and int(p.required_services) & installed == int(p.required_services)
    )
    one = node_pools(node_id, node_set, ServiceType(installed), lookup, "most_specific")
    if not every:
        assert one == ()
        return
    widest = max(len(by_id[i].languages) for i in every)
    tied = sorted(i for i in every if len(by_id[i].languages) == widest)
    assert one == (tied[node_hash(node_id) % len(tied)],)


# --- PoolGenerator -------------------------------------------------------------------------

AUTO = AutoPoolConfig(min_nodes_per_pool=1, max_pools=50)


def ids_by_set(pools) -> dict[frozenset[str], int]:
    return {p.language_set: p.pool_id for p in pools}


def test_generated_pool_shape():
    gen = PoolGenerator()
    (p,) = gen.generate({fs("zh", "en"): 2}, AUTO, [], [])
    assert p.name == "en-zh" == generated_pool_name(["zh", "en"])
    assert p.languages == ("en", "zh")
    assert p.nmt_rule == "any_to_any"
    assert p.required_services == NONE
    assert p.blocked_pairs == () and p.nmt_pairs == ()


def test_generated_ids_start_above_the_largest_configured_id():
    configured = [
        PoolConfig(3, "a", ["en"]),
        PoolConfig(17, "b", ["de"]),
        PoolConfig(5, "c", ["fr"]),
    ]
    pools = PoolGenerator().generate({fs("en", "zh"): 3, fs("de", "fr"): 1}, AUTO, configured, [])
    assert ids_by_set(pools) == {fs("en", "zh"): 18, fs("de", "fr"): 19}
    assert PoolGenerator().generate({fs("en", "zh"): 1}, AUTO, [], [])[0].pool_id == 0


def test_generated_ids_follow_population_then_sorted_set():
    counts = {
        fs("ja", "zh"): 2,
        fs("de", "en"): 5,
        fs("en", "zh"): 2,
        fs("en", "fr"): 2,
        fs("de", "fr"): 9,
    }
    pools = PoolGenerator().generate(counts, AUTO, [PoolConfig(9, "x", ["en"])], [])
    order = sorted(pools, key=lambda p: p.pool_id)
    assert [p.name for p in order] == ["de-fr", "de-en", "en-fr", "en-zh", "ja-zh"]
    assert [p.pool_id for p in order] == [10, 11, 12, 13, 14]


def test_max_pools_keeps_the_most_populous():
    counts = {fs("a1", "b1"): 1, fs("c1", "d1"): 7, fs("e1", "f1"): 3, fs("g1", "h1"): 3}
    pools = PoolGenerator().generate(counts, AutoPoolConfig(max_pools=2), [], [])
    assert {p.name for p in pools} == {"c1-d1", "e1-f1"}
    assert PoolGenerator().generate(counts, AutoPoolConfig(max_pools=0), [], []) == ()


def test_max_pools_counts_existing_generated_pools():
    gen = PoolGenerator()
    auto = AutoPoolConfig(max_pools=2)
    first = gen.generate({fs("en", "zh"): 1, fs("de", "en"): 1}, auto, [], [])
    assert len(first) == 2
    again = gen.generate(
        {fs("en", "zh"): 1, fs("de", "en"): 1, fs("en", "ja"): 50}, auto, [], first
    )
    assert again == first  # full: the new set waits, nothing is evicted


def test_min_nodes_per_pool():
    counts = {fs("en", "zh"): 3, fs("de", "en"): 2, fs("en", "ja"): 1}
    pools = PoolGenerator().generate(counts, AutoPoolConfig(min_nodes_per_pool=2), [], [])
    assert {p.name for p in pools} == {"en-zh", "de-en"}


def test_single_language_sets_are_not_generated():
    pools = PoolGenerator().generate({fs("en"): 100, fs("zh"): 5, fs("en", "zh"): 1}, AUTO, [], [])
    assert [p.name for p in pools] == ["en-zh"]


def test_generation_with_no_qualifying_set_changes_nothing():
    # docs/DESIGN.md §6 "a generation that finds no sets changes nothing", §7.2
    gen = PoolGenerator()
    current = gen.generate({fs("en", "zh"): 2}, AUTO, [], [])
    assert gen.generate({}, AUTO, [], current) == current
    assert gen.generate({fs("en"): 4}, AUTO, [], current) == current
    assert (
        gen.generate({fs("de", "fr"): 1}, AutoPoolConfig(min_nodes_per_pool=2), [], current)
        == current
    )
    assert gen.generate({}, AUTO, [], ()) == ()


def test_existing_generated_pools_are_kept_when_their_nodes_leave():
    gen = PoolGenerator()
    current = gen.generate({fs("en", "zh"): 2, fs("de", "en"): 1}, AUTO, [], [])
    kept = gen.generate({fs("en", "zh"): 2}, AUTO, [], current)
    assert kept == current  # de-en lost its node but keeps its pool: no flapping


def test_ids_stay_with_their_set_and_are_never_reused():
    gen = PoolGenerator()
    first = ids_by_set(gen.generate({fs("en", "zh"): 2, fs("de", "en"): 1}, AUTO, [], []))
    assert first == {fs("en", "zh"): 0, fs("de", "en"): 1}
    # regenerate afresh (a config change): de-en is gone, a new set arrives
    second = ids_by_set(gen.generate({fs("en", "zh"): 2, fs("en", "ja"): 9}, AUTO, [], []))
    assert second[fs("en", "zh")] == 0
    assert second[fs("en", "ja")] == 2  # not 1: that id belongs to de-en forever
    # de-en comes back and gets its old id
    third = ids_by_set(gen.generate({fs("de", "en"): 1}, AUTO, [], []))
    assert third == {fs("de", "en"): 1}
    assert gen.id_owners() == {0: fs("en", "zh"), 1: fs("de", "en"), 2: fs("en", "ja")}


def test_new_ids_move_above_a_grown_configuration_old_ids_stay():
    gen = PoolGenerator()
    gen.generate({fs("en", "zh"): 1}, AUTO, [PoolConfig(4, "c", ["fr"])], [])
    configured = [PoolConfig(4, "c", ["fr"]), PoolConfig(30, "d", ["de"])]
    gen.check_configured(configured)
    pools = gen.generate({fs("en", "zh"): 1, fs("de", "ja"): 1}, AUTO, configured, [])
    assert ids_by_set(pools) == {fs("en", "zh"): 5, fs("de", "ja"): 31}


def test_candidates_limit_the_sets_looked_at():
    gen = PoolGenerator()
    counts = {fs("en", "zh"): 5, fs("de", "en"): 5}
    pools = gen.generate(counts, AUTO, [], [], candidates=[fs("de", "en")])
    assert [p.name for p in pools] == ["de-en"]
    assert gen.generate(counts, AUTO, [], pools, candidates=[fs("fr", "ja")]) == pools


def test_result_is_sorted_by_id_and_includes_current():
    gen = PoolGenerator()
    current = gen.generate({fs("en", "zh"): 1}, AUTO, [], [])
    pools = gen.generate({fs("en", "zh"): 1, fs("de", "en"): 3}, AUTO, [], current)
    assert [p.pool_id for p in pools] == sorted(p.pool_id for p in pools)
    assert current[0] in pools and len(pools) == 2


def test_check_configured_rejects_an_id_held_by_a_generated_set():
    gen = PoolGenerator()
    pools = gen.generate(
        {fs("en", "zh"): 1, fs("de", "en"): 1}, AUTO, [PoolConfig(9, "c", ["fr"])], []
    )
    assert ids_by_set(pools) == {fs("de", "en"): 10, fs("en", "zh"): 11}
    gen.check_configured([PoolConfig(9, "c", ["fr"]), PoolConfig(12, "d", ["ja"])])
    with pytest.raises(ConfigError) as info:
        gen.check_configured([PoolConfig(12, "d", ["ja"]), PoolConfig(11, "mine", ["ja", "ko"])])
    assert "11" in str(info.value) and "en-zh" in str(info.value)
    with pytest.raises(ConfigError, match="de-en"):
        gen.check_configured([PoolConfig(10, "mine", ["de", "en"])])


sets = st.frozensets(st.sampled_from(["en", "zh", "ja", "de", "fr"]), min_size=1, max_size=4)


@given(
    st.lists(
        st.tuples(
            st.dictionaries(sets, st.integers(0, 5), max_size=6),
            st.integers(-1, 40),  # largest configured id (-1: none)
            st.booleans(),  # start afresh (a config change)
            st.integers(1, 3),
            st.integers(0, 6),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_generator_ids_are_stable_and_unique_across_regenerations(steps):
    gen = PoolGenerator()
    owner_of: dict[int, frozenset[str]] = {}
    id_of: dict[frozenset[str], int] = {}
    current: tuple[PoolConfig, ...] = ()
    for counts, top, fresh, min_nodes, max_pools in steps:
        if top in owner_of:  # the registry refuses such a config (check_configured)
            top = -1
        configured = [PoolConfig(top, "cfg", ["xx"])] if top >= 0 else []
        auto = AutoPoolConfig(min_nodes_per_pool=min_nodes, max_pools=max_pools)
        before = () if fresh else current
        out = gen.generate(counts, auto, configured, before)
        assert [p.pool_id for p in out] == sorted({p.pool_id for p in out})
        assert set(before) <= set(out)
        new = [p for p in out if p not in before]
        qualifying = {s for s, c in counts.items() if len(s) >= 2 and c >= min_nodes}
        have = {p.language_set for p in before}
        assert len(new) == min(len(qualifying - have), max(max_pools - len(before), 0))
        for p in new:
            s = p.language_set
            assert s in qualifying and len(s) >= 2
            if s in id_of:
                assert p.pool_id == id_of[s]  # stays with its set
            else:
                assert p.pool_id not in owner_of  # never reused
                assert p.pool_id > top  # above every configured id
                id_of[s], owner_of[p.pool_id] = p.pool_id, s
        if new:
            # most populous first, ties by sorted set: the taken sets are a prefix
            ranked = sorted(qualifying - have, key=lambda s: (-counts[s], sorted(s)))
            assert {p.language_set for p in new} == set(ranked[: len(new)])
        current = out
    assert dict(gen.id_owners()) == owner_of
