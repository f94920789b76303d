"""``RuntimeSnapshot``: the immutable struct-of-arrays copy of what dispatch reads.

Built in one pass from the fleet (the legacy structures, or the management
state) and the shared load table; a new generation is built when the topology
changes (nodes joining or leaving pools, services, languages, pools, config).
What changes often never rebuilds it: heartbeats, reservations and status
changes write the load table, which every generation shares by slot.

Nodes are numbered by sorted id and pools by sorted id, so index order is id
order in both the arrays and the kernels. Language codes are interned to
small integers once per generation.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from types import MappingProxyType
from typing import Any

import numpy as np

from .. import _compat
from ..domain.config import CoreServicesConfig, Phase3Config
from ..domain.languages import AUTO
from ..domain.model import LanguageCapabilities, ServiceType
from ..state.fleet import Fleet
from ..state.loads import LoadTableLike
from ..state.nodes import NodeRecord, provides
from .lang_index import PoolLanguageIndex, frozen, intern_languages, is_frozen, words_for

__all__ = ["NodeIndex", "RuntimeSnapshot", "assemble", "build_snapshot"]

_NF_HAS_GPU = _compat.KERNEL_CODES["NF_HAS_GPU"]
_NF_PUBLIC = _compat.KERNEL_CODES["NF_PUBLIC"]
_LOAD_RECORD_BYTES = _compat.KERNEL_CODES["LOAD_RECORD_BYTES"]


class NodeIndex(Mapping[str, int]):
    """Node id -> node index of one generation, found by binary search over its
    sorted ids: nothing per node is built, so a generation that inserts a node
    does not renumber a dict of every node after it (docs/HOTPATH.md, delta publish)."""

    __slots__ = ("_ids",)

    def __init__(self, node_ids: tuple[str, ...]) -> None:
        self._ids = node_ids

    def get(self, node_id: object, default: int | None = None) -> int | None:  # type: ignore[override]
        if isinstance(node_id, str):
            ids = self._ids
            i = bisect.bisect_left(ids, node_id)
            if i < len(ids) and ids[i] == node_id:
                return i
        return default

    def __getitem__(self, node_id: str) -> int:
        i = self.get(node_id)
        if i is None:
            raise KeyError(node_id)
        return i

    def __contains__(self, node_id: object) -> bool:
        return self.get(node_id) is not None

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __repr__(self) -> str:
        return f"NodeIndex({len(self._ids)} nodes)"


@dataclass(frozen=True, eq=False)
class RuntimeSnapshot:
    """One immutable snapshot generation (docs/DESIGN.md §1 runtime domain)."""

    version: int
    cfg: Phase3Config
    node_ids: tuple[str, ...]
    node_index: Mapping[str, int]
    node_serials: np.ndarray  # registration serial by node index (frozen int64)
    slots: np.ndarray  # load slot by node index: the "slot" column (frozen int32)
    pool_ids: tuple[int, ...]
    pool_names: tuple[str, ...]
    pool_index: Mapping[int, int]
    lang_ids: Mapping[str, int]
    index: PoolLanguageIndex
    columns: Mapping[str, np.ndarray]
    loads: LoadTableLike
    compiled: Any = field(default=None)  # _hotpath.CompiledSnapshot, or None without the extension
    core: CoreServicesConfig | None = field(default=None)  # what ``provides`` was computed with

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def nbytes(self) -> int:
        """Bytes held by this generation's arrays, plus one load record per node."""
        arrays = sum(a.nbytes for a in self.columns.values())
        return arrays + _LOAD_RECORD_BYTES * self.n_nodes

    @property
    def bytes_per_node(self) -> float:
        return self.nbytes / self.n_nodes if self.n_nodes else 0.0

    def tenant_pool(self, tenant_id: str | None) -> int:
        """Pool index of the tenant's override, or -1."""
        if tenant_id is None:
            return -1
        pool_id = self.cfg.tenant_overrides.get(tenant_id)
        return -1 if pool_id is None else self.pool_index.get(pool_id, -1)


def build_snapshot(fleet: Fleet, loads: LoadTableLike, version: int) -> RuntimeSnapshot:
    """Copy what dispatch needs out of ``fleet`` (the caller keeps it still)."""
    node_ids = tuple(fleet.live_nodes())
    records = [fleet.nodes[nid] for nid in node_ids]
    node_index = NodeIndex(node_ids)
    pools = fleet.ordered_pools()
    pool_langs = {lang for p in pools for lang in p.languages}
    langs = set(pool_langs)
    for caps in {id(r.capabilities): r.capabilities for r in records}.values():  # each object once
        langs |= caps.all_languages()
    lang_ids = intern_languages(langs, first=pool_langs)  # the index covers pool languages only
    index = PoolLanguageIndex(pools, fleet.cfg, lang_ids)
    columns = {**_node_columns(records, fleet, lang_ids), **index.columns()}
    member_lists = [fleet.members[p.pool_id] for p in pools]
    columns["mem_ptr"] = np.zeros(len(pools) + 1, dtype=np.int32)
    columns["mem_ptr"][1:] = np.cumsum([len(m) for m in member_lists], dtype=np.int64)
    rank = {node_id: i for i, node_id in enumerate(node_ids)}  # a full build renumbers everything anyway
    columns["mem_idx"] = np.fromiter(  # one C-level pass: every member's node index, pool by pool
        map(rank.__getitem__, itertools.chain.from_iterable(member_lists)),
        dtype=np.int32,
        count=int(columns["mem_ptr"][-1]),
    )
    pool_ids = tuple(p.pool_id for p in pools)
    return assemble(
        version, fleet.cfg, fleet.core, loads, columns,
        node_ids=node_ids,
        node_index=node_index,
        node_serials=np.array([r.serial for r in records], dtype=np.int64),
        pool_ids=pool_ids,
        pool_names=tuple(p.name for p in pools),
        pool_index={pool_id: i for i, pool_id in enumerate(pool_ids)},
        lang_ids=lang_ids,
        index=index,
    )  # fmt: skip


def assemble(
    version: int,
    cfg: Phase3Config,
    core: CoreServicesConfig,
    loads: LoadTableLike,
    columns: dict[str, np.ndarray],
    *,
    node_ids: tuple[str, ...],
    node_index: Mapping[str, int],
    node_serials: np.ndarray,
    pool_ids: tuple[int, ...],
    pool_names: tuple[str, ...],
    pool_index: Mapping[int, int],
    lang_ids: Mapping[str, int],
    index: PoolLanguageIndex,
) -> RuntimeSnapshot:
    """A generation from complete columns and names: the columns are frozen (a
    column already frozen is kept as it is, so a delta shares what it did not
    change) and handed to the compiled view, which checks every index once."""
    # read-only for good: the kernels trust these arrays (every index was checked once)
    columns = {name: arr if is_frozen(arr) else frozen(arr) for name, arr in columns.items()}
    serials = node_serials if is_frozen(node_serials) else frozen(node_serials)
    compiled = None
    if _compat.HAVE_HOTPATH:
        config = _kernel_config(cfg, len(lang_ids), index.n_pool_langs)
        compiled = _compat.hotpath.CompiledSnapshot(loads, dict(columns), config)
        _bind_names(compiled, cfg, lang_ids, node_index, node_ids, serials, pool_ids, pool_index, version)
    return RuntimeSnapshot(
        version=version,
        cfg=cfg,
        node_ids=node_ids,
        node_index=node_index,
        node_serials=serials,
        slots=columns["slot"],
        pool_ids=pool_ids,
        pool_names=pool_names,
        pool_index=pool_index,
        lang_ids=lang_ids,
        index=index,
        columns=MappingProxyType(columns),
        loads=loads,
        compiled=compiled,
        core=core,
    )


def _bind_names(
    compiled: Any,
    cfg: Phase3Config,
    lang_ids: Mapping[str, int],
    node_index: Mapping[str, int],
    node_ids: tuple[str, ...],
    serials: np.ndarray,
    pool_ids: tuple[int, ...],
    pool_index: Mapping[int, int],
    version: int,
) -> None:
    """Hand the compiled view the names its dispatcher maps a job's strings with."""
    tenant_pools = {t: pool_index[p] for t, p in cfg.tenant_overrides.items() if p in pool_index}
    # node_index None: the compiled view finds an id by binary search over its sorted id column
    compiled.bind_names(dict(lang_ids), None, tenant_pools, node_ids, pool_ids, serials, AUTO, version)


def _kernel_config(cfg: Phase3Config, n_langs: int, n_pool_langs: int) -> dict[str, Any]:
    return {
        "n_langs": n_langs,
        "n_pool_langs": n_pool_langs,
        "words": words_for(n_langs),
        "two_level": cfg.two_level,
        "strict": cfg.strict_pool_eligibility,
        "fallback_all": cfg.fallback_scan_all_pools,
        "affinity": cfg.enable_session_affinity,
        "scope_all": cfg.pool_match_scope == "all_required",
        "mode_exact": cfg.pool_match_mode == "exact",
        "seed": cfg.hash_seed,
        "sample_size": cfg.random_sample_size,
        "threshold": float(cfg.resource_threshold),
        "timeout": float(cfg.heartbeat_timeout_s),
    }


def _mask(langs: Iterable[str], lang_ids: Mapping[str, int]) -> int:
    """A language bitset as a Python int (bit i = language id i)."""
    m = 0
    for code in langs:
        m |= 1 << lang_ids[code]
    return m


def _words(masks: list[int], words: int) -> np.ndarray:
    """Python-int bitsets as ``words`` uint64 words each, flattened."""
    if words == 1:
        return np.array(masks, dtype=np.uint64)
    width = 8 * words  # one little-endian integer per mask = its words, low word first
    raw = b"".join(m.to_bytes(width, "little") for m in masks)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


def _node_columns(records: list[NodeRecord], fleet: Fleet, lang_ids: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The per-node columns. Capabilities and service sets are shared by many
    nodes (the same objects), so each distinct one is encoded once per build;
    the per-node reads are C-level passes (``map`` over attribute getters) and
    the columns are gathered from the distinct rows by numpy."""
    n = len(records)
    n_langs = len(lang_ids)
    words = words_for(n_langs)
    infos = list(map(_INFO, records))
    caps = list(map(_CAPS, records))  # the lists hold the objects: no id is reused meanwhile
    services = list(map(_SERVICES, records))
    caps_first, caps_of = _distinct(caps)
    services_first, services_of = _distinct(services)
    rows = _caps_rows([caps[i] for i in caps_first], lang_ids, n_langs, words)
    provided = np.array(
        [sum(int(kind) for kind in ServiceType if provides(services[i], kind, fleet.core)) for i in services_first],
        dtype=np.uint8,
    )
    flags = np.fromiter(map(_HAS_GPU, infos), dtype=np.bool_, count=n).astype(np.uint8) * np.uint8(_NF_HAS_GPU)
    flags |= np.fromiter(map(_PUBLIC, infos), dtype=np.bool_, count=n).astype(np.uint8) * np.uint8(_NF_PUBLIC)
    encoded = [node_id.encode("utf-8") for node_id in map(_NODE_ID, infos)]
    id_ptr = np.zeros(n + 1, dtype=np.int64)
    id_ptr[1:] = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n))
    pair_len = rows["pair_len"][caps_of]
    pair_ptr = np.zeros(n + 1, dtype=np.int32)
    pair_ptr[1:] = np.cumsum(pair_len, dtype=np.int64)
    # each node's run of pair codes, copied from its capabilities' run in the flat table
    starts = np.repeat(rows["pair_start"][caps_of] - pair_ptr[:-1], pair_len)
    pair_codes = rows["pair_codes"][starts + np.arange(int(pair_ptr[-1]), dtype=np.int64)]
    return {
        "slot": np.fromiter(map(_SLOT, records), dtype=np.int32, count=n),
        "node_flags": flags,
        "provides": provided[services_of],
        "max_jobs": np.fromiter(map(_MAX_JOBS, infos), dtype=np.int32, count=n),
        "id_ptr": id_ptr,
        "id_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
        "asr_bits": rows["asr"][caps_of].reshape(-1),
        "tts_bits": rows["tts"][caps_of].reshape(-1),
        "nmt_bits": rows["nmt"][caps_of].reshape(-1),
        "nmt_tgt_bits": rows["nmt_tgt"][caps_of].reshape(-1),
        "pair_ptr": pair_ptr,
        "pair_codes": pair_codes.astype(np.int32, copy=False),
    }


_INFO = attrgetter("info")
_CAPS = attrgetter("capabilities")
_SERVICES = attrgetter("services")
_SLOT = attrgetter("slot")
_HAS_GPU = attrgetter("has_gpu")
_PUBLIC = attrgetter("accept_public_jobs")
_MAX_JOBS = attrgetter("max_concurrent_jobs")
_NODE_ID = attrgetter("node_id")


def _distinct(objects: list[Any]) -> tuple[list[int], np.ndarray]:
    """The distinct objects of ``objects`` by identity: the index of each one's
    first occurrence, and for every element the number of its object (an index
    into that list). The caller holds ``objects``, so no id is reused meanwhile."""
    ids = np.fromiter(map(id, objects), dtype=np.uint64, count=len(objects))
    _, first, of = np.unique(ids, return_index=True, return_inverse=True)
    return first.tolist(), of.reshape(-1).astype(np.intp, copy=False)


def _caps_rows(
    held: list[LanguageCapabilities], lang_ids: Mapping[str, int], n_langs: int, words: int
) -> dict[str, np.ndarray]:
    """Each distinct capabilities object encoded once: its language bitsets
    (``words`` words a row) and its pair codes (a flat table with each row's
    start and length)."""
    masks: dict[str, list[int]] = {name: [] for name in ("asr", "tts", "nmt", "nmt_tgt")}
    pair_lists: list[list[int]] = []
    for caps in held:
        masks["asr"].append(_mask(caps.asr, lang_ids))
        masks["tts"].append(_mask(caps.tts, lang_ids))
        masks["nmt"].append(_mask(caps.nmt_languages, lang_ids))
        masks["nmt_tgt"].append(_mask((t for _, t in caps.nmt_pairs), lang_ids))
        pair_lists.append(sorted(lang_ids[a] * n_langs + lang_ids[b] for a, b in caps.nmt_pairs))
    pair_len = np.array([len(p) for p in pair_lists], dtype=np.int64)
    pair_start = np.zeros(len(pair_lists), dtype=np.int64)
    if len(pair_lists) > 1:
        pair_start[1:] = np.cumsum(pair_len[:-1])
    out = {name: _words(values, words).reshape(len(values), words) for name, values in masks.items()}
    out["pair_len"] = pair_len
    out["pair_start"] = pair_start
    out["pair_codes"] = np.fromiter((c for p in pair_lists for c in p), dtype=np.int64, count=int(pair_len.sum()))
    return out
