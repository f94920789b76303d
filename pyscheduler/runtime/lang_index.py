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

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..domain.config import Phase3Config, PoolConfig
from ..domain.languages import AUTO, pool_admits
from ..domain.model import CORE_TYPES, ServiceType
from ..state.pools import pool_sort_key, services_match

__all__ = ["PoolLanguageIndex", "intern_languages", "lang_bits", "words_for"]


def words_for(n_langs: int) -> int:
    """uint64 words per language bitset."""
    return max(1, (n_langs + 63) // 64)


def intern_languages(codes: Iterable[str]) -> dict[str, int]:
    """Small integer ids for language codes, in sorted order."""
    return {code: i for i, code in enumerate(sorted(set(codes)))}


def lang_bits(langs: Iterable[str], lang_ids: Mapping[str, int], words: int) -> np.ndarray:
    """A uint64 bitset (``words`` words) of the known languages in ``langs``."""
    bits = np.zeros(words, dtype=np.uint64)
    for code in langs:
        i = lang_ids.get(code)
        if i is not None:
            bits[i >> 6] |= np.uint64(1) << np.uint64(i & 63)
    return bits


def _csr(lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(lists) + 1, dtype=np.int32)
    ptr[1:] = np.cumsum([len(x) for x in lists], dtype=np.int64)
    flat = np.fromiter((v for x in lists for v in x), dtype=np.int32, count=int(ptr[-1]))
    return ptr, flat


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
        if lang_ids is None:
            lang_ids = intern_languages(lang for p in self.pools for lang in p.languages)
        self.lang_ids = dict(lang_ids)
        n_langs = len(self.lang_ids)
        self.words = words_for(n_langs)
        pair_lists: list[list[int]] = [[] for _ in range(n_langs * n_langs)]
        auto_lists: list[list[int]] = [[] for _ in range(n_langs)]
        for pool in sorted(self.pools, key=pool_sort_key):  # eligible order
            p = self.pool_index[pool.pool_id]
            targets: set[int] = set()
            for src in pool.languages:
                for tgt in pool.languages:
                    if pool_admits(pool.language_set, pool.nmt_rule, pool.nmt_pairs, pool.blocked_pairs, src, tgt):
                        t = self.lang_ids[tgt]
                        pair_lists[self.lang_ids[src] * n_langs + t].append(p)
                        targets.add(t)
            for t in targets:
                auto_lists[t].append(p)
        self.idx_ptr, self.idx_pools = _csr(pair_lists)
        self.auto_ptr, self.auto_pools = _csr(auto_lists)
        self.pool_lang_bits = np.concatenate(
            [lang_bits(p.languages, self.lang_ids, self.words) for p in self.pools]
        ) if self.pools else np.zeros(0, dtype=np.uint64)
        self.pool_req = np.array([int(p.required_services) for p in self.pools], dtype=np.uint8)
        for arr in (self.idx_ptr, self.idx_pools, self.auto_ptr, self.auto_pools, self.pool_lang_bits, self.pool_req):
            arr.setflags(write=False)

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
        if t is None:
            return self.idx_pools[:0]
        if src == AUTO:
            return self.auto_pools[self.auto_ptr[t]:self.auto_ptr[t + 1]]
        s = self.lang_ids.get(src)
        if s is None:
            return self.idx_pools[:0]
        code = s * len(self.lang_ids) + t
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
