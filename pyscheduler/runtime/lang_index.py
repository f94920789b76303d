"""``PoolLanguageIndex``: the eligible, ordered pool list of a language pair in O(1).

Built when the pool config changes (``rebuild_from_pools``), from plain pool
configs: for every known pair ``(src, tgt)`` — and for every ``tgt`` with
source ``auto`` — the pools that admit it, already in eligible order (fewest
languages, then id). A lookup is one offset pair in a CSR table plus the
service filter over the few pools found. The compiled kernels read the same
tables; the O(pools) scan in :mod:`pyscheduler.pools` is the oracle both are
tested against.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

import numpy as np

from ..domain.config import Phase3Config, PoolConfig
from ..domain.languages import AUTO
from ..domain.model import CORE_TYPES, ServiceType
from ..state.pools import pool_sort_key, services_match

__all__ = ["PoolLanguageIndex", "frozen", "intern_languages", "is_frozen", "lang_bits", "words_for"]


def words_for(n_langs: int) -> int:
    """uint64 words per language bitset."""
    return max(1, (n_langs + 63) // 64)


def intern_languages(codes: Iterable[str], first: Iterable[str] = ()) -> dict[str, int]:
    """Small integer ids for language codes: the codes of ``first`` (the pools'
    languages) numbered first, in sorted order, then the others in sorted order.

    The pair table of :class:`PoolLanguageIndex` covers only the first block,
    so a node advertising many languages no pool has costs the index nothing."""
    head = sorted(set(first))
    rest = sorted(set(codes).difference(head))
    return {code: i for i, code in enumerate(head + rest)}


def frozen(arr: np.ndarray) -> np.ndarray:
    """A read-only copy of ``arr`` whose memory is an immutable ``bytes`` object:
    unlike ``setflags(write=False)``, nobody can set it writable again."""
    data = np.ascontiguousarray(arr)
    out = np.frombuffer(data.tobytes(), dtype=data.dtype)
    return out if data.ndim == 1 else out.reshape(data.shape)


def is_frozen(arr: np.ndarray) -> bool:
    """Whether ``arr`` is read-only over an immutable ``bytes`` buffer (see :func:`frozen`)."""
    base = arr
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    return isinstance(base, bytes)


def lang_bits(langs: Iterable[str], lang_ids: Mapping[str, int], words: int) -> np.ndarray:
    """A uint64 bitset (``words`` words) of the known languages in ``langs``."""
    bits = np.zeros(words, dtype=np.uint64)
    for code in langs:
        i = lang_ids.get(code)
        if i is not None:
            bits[i >> 6] |= np.uint64(1) << np.uint64(i & 63)
    return bits


def _csr(rows: np.ndarray, values: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR offsets and values of ``(row, value)`` entries; entries of one row keep
    their given order (a stable sort), so lists stay in eligible order."""
    if len(rows) > 1 and (rows[1:] < rows[:-1]).any():
        order = np.argsort(rows, kind="stable")
        values = values[order]
    ptr = np.zeros(n_rows + 1, dtype=np.int32)
    ptr[1:] = np.cumsum(np.bincount(rows, minlength=n_rows), dtype=np.int64)
    return ptr, values.astype(np.int32)


def _admitted_codes(pool: PoolConfig, lang_ids: Mapping[str, int], n: int) -> np.ndarray:
    """``src * n + tgt`` for every pair the pool admits (docs/DESIGN.md §5 pool eligibility:
    both its languages, different, allowed by its rule, not blocked) — built from
    the rule, in time proportional to the pairs admitted.

    Memoized (a read-only array) on the pool and the numbers of the languages it
    uses: a rebuild for a config change that keeps the pools and the language
    numbering encodes no pool again."""
    numbering = tuple(sorted((c, lang_ids[c]) for c in pool.language_set))  # all the encoding reads
    return _admitted_codes_memo(pool, numbering, n)


@functools.lru_cache(maxsize=8192)
def _admitted_codes_memo(pool: PoolConfig, numbering: tuple[tuple[str, int], ...], n: int) -> np.ndarray:
    codes = _encode_admitted(pool, dict(numbering), n)
    codes.setflags(write=False)
    return codes


def _encode_admitted(pool: PoolConfig, lang_ids: Mapping[str, int], n: int) -> np.ndarray:
    ids = np.array(sorted(lang_ids[c] for c in pool.languages), dtype=np.int64)
    en = lang_ids.get("en") if "en" in pool.language_set else None
    if pool.nmt_rule == "any_to_any":
        src, tgt = np.repeat(ids, len(ids)), np.tile(ids, len(ids))
    elif pool.nmt_rule in ("any_to_en", "en_to_any"):
        others = ids[ids != en] if en is not None else ids[:0]
        fixed = np.full(len(others), -1 if en is None else en, dtype=np.int64)
        src, tgt = (others, fixed) if pool.nmt_rule == "any_to_en" else (fixed, others)
    else:  # specific_pairs: the listed pairs inside the pool's languages
        inside = [(a, b) for a, b in pool.nmt_pairs if a in pool.language_set and b in pool.language_set]
        src = np.array([lang_ids[a] for a, _ in inside], dtype=np.int64)
        tgt = np.array([lang_ids[b] for _, b in inside], dtype=np.int64)
    keep = src != tgt
    codes = src[keep] * n + tgt[keep]
    blocked = [
        lang_ids[a] * n + lang_ids[b]
        for a, b in pool.blocked_pairs
        if a in pool.language_set and b in pool.language_set
    ]
    if blocked:
        codes = codes[~np.isin(codes, blocked)]
    return codes if pool.nmt_rule == "any_to_any" else np.sort(codes)  # any_to_any: ids sorted


class PoolLanguageIndex:
    """Eligible pools per language pair, as compiled lookup tables."""

    def __init__(
        self,
        pools: Iterable[PoolConfig] = (),
        cfg: Phase3Config | None = None,
        lang_ids: Mapping[str, int] | None = None,
    ) -> None:
        self.rebuild_from_pools(pools, cfg, lang_ids)

    def rebuild_from_pools(
        self,
        pools: Iterable[PoolConfig],
        cfg: Phase3Config | None = None,
        lang_ids: Mapping[str, int] | None = None,
    ) -> None:
        """Rebuild every table from ``pools``; ``lang_ids`` (default: the pools'
        own languages) fixes the language numbering shared with a snapshot."""
        self.cfg = cfg if cfg is not None else Phase3Config()
        self.pools: tuple[PoolConfig, ...] = tuple(sorted(pools, key=lambda p: p.pool_id))
        self.pool_index = {p.pool_id: i for i, p in enumerate(self.pools)}
        pool_langs = {lang for p in self.pools for lang in p.languages}
        if lang_ids is None:
            lang_ids = intern_languages(pool_langs, first=pool_langs)
        self.lang_ids = dict(lang_ids)
        n = self.n_pool_langs = len(pool_langs)
        if any(self.lang_ids[code] >= n for code in pool_langs):
            raise ValueError("lang_ids must number the pools' languages first (see intern_languages)")
        self.words = words_for(len(self.lang_ids))
        pair_codes, pair_pools, auto_codes, auto_pools = [], [], [], []
        for pool in sorted(self.pools, key=pool_sort_key):  # eligible order
            p = self.pool_index[pool.pool_id]
            codes = _admitted_codes(pool, self.lang_ids, n)
            targets = np.unique(codes % n) if n else codes
            pair_codes.append(codes)
            pair_pools.append(np.full(len(codes), p, dtype=np.int32))
            auto_codes.append(targets)
            auto_pools.append(np.full(len(targets), p, dtype=np.int32))
        empty = np.zeros(0, dtype=np.int64)
        self.idx_ptr, self.idx_pools = _csr(
            np.concatenate([empty, *pair_codes]), np.concatenate([empty, *pair_pools]), n * n
        )
        self.auto_ptr, self.auto_pools = _csr(
            np.concatenate([empty, *auto_codes]), np.concatenate([empty, *auto_pools]), n
        )
        self.pool_lang_bits = np.concatenate(
            [lang_bits(p.languages, self.lang_ids, self.words) for p in self.pools]
        ) if self.pools else np.zeros(0, dtype=np.uint64)
        self.pool_req = np.array([int(p.required_services) for p in self.pools], dtype=np.uint8)
        for name in ("idx_ptr", "idx_pools", "auto_ptr", "auto_pools", "pool_lang_bits", "pool_req"):
            setattr(self, name, frozen(getattr(self, name)))

    def columns(self) -> dict[str, np.ndarray]:
        """The tables under the names the compiled snapshot takes."""
        return {
            "idx_ptr": self.idx_ptr,
            "idx_pools": self.idx_pools,
            "auto_ptr": self.auto_ptr,
            "auto_pools": self.auto_pools,
            "pool_lang_bits": self.pool_lang_bits,
            "pool_req": self.pool_req,
        }

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.columns().values())

    def _candidates(self, src: str, tgt: str) -> np.ndarray:
        t = self.lang_ids.get(tgt)
        if t is None or t >= self.n_pool_langs:  # a language no pool has
            return self.idx_pools[:0]
        if src == AUTO:
            return self.auto_pools[self.auto_ptr[t]:self.auto_ptr[t + 1]]
        s = self.lang_ids.get(src)
        if s is None or s >= self.n_pool_langs:
            return self.idx_pools[:0]
        code = s * self.n_pool_langs + t
        return self.idx_pools[self.idx_ptr[code]:self.idx_ptr[code + 1]]

    def find_pools_for_lang_pair(
        self, src: str, tgt: str, required_types: ServiceType = CORE_TYPES
    ) -> list[int]:
        """Ids of the pools eligible for ``src -> tgt`` (``src`` may be ``auto``)
        whose required services accept ``required_types``, in eligible order.
        Codes must already be normalised."""
        cfg = self.cfg
        found = []
        for p in self._candidates(src, tgt).tolist():
            pool = self.pools[p]
            if services_match(pool.required_services, required_types, cfg.pool_match_scope, cfg.pool_match_mode):
                found.append(pool.pool_id)
        return found

    def find_pools_for_lang_set(self, langs: Iterable[str]) -> list[int]:
        """Ids of the pools whose language set lies inside ``langs`` (the pools a
        node with that language set covers), by id."""
        query = lang_bits(langs, self.lang_ids, self.words)  # unknown codes are in no pool
        table = self.pool_lang_bits.reshape(len(self.pools), self.words)
        inside = ~np.any(table & ~query, axis=1)
        return [self.pools[p].pool_id for p in np.flatnonzero(inside).tolist()]
