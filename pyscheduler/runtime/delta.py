"""Delta publish: the next snapshot generation from the previous one and the nodes that changed.

A registration, a removal or disconnection, a capability change or a
membership change touches a few nodes; :func:`derive_snapshot` re-encodes only
those nodes' rows and splices them into the previous generation's arrays:

- nodes stay numbered by sorted id (index order = id order, which the
  kernels' last tiebreak and ascending member lists rely on): a new node's row
  is inserted at its rank, a removed node's row cut out, a changed node's row
  replaced. Each per-node column is rebuilt as a few slices of the old column
  and the fresh rows, joined into one new immutable ``bytes`` buffer (one
  memmove of the column, no Python loop over nodes);
- member lists: every old member index is renumbered through one vectorised
  map; the changed nodes' entries are dropped and re-inserted where their
  current pools say, at their rank;
- languages: a code no earlier node had is appended after the existing ids
  (the pair codes are re-based when the count of languages grows) as long as
  the bitsets keep their number of words; the pool-language block, and so the
  :class:`~.lang_index.PoolLanguageIndex` tables, are shared unchanged;
- everything else (the index tables, the pool columns) is the previous
  generation's own arrays: published arrays are never written.

Whatever the delta does not cover (another config or core config, another
pool set, too many languages for the words, a record of changes that does not
reach back to the previous generation) returns ``None``: the caller rebuilds
in full with :func:`~.snapshot.build_snapshot`, which stays the oracle.

The delta numbers languages differently from a full rebuild when a new code
sorts before an existing one, and it keeps codes no node has any more; an
extra id that no row has behaves exactly like an unknown code in every check.
:func:`generation_differences` compares two generations modulo that numbering.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..domain.config import CoreServicesConfig, Phase3Config, PoolConfig
from ..state.loads import LoadTableLike
from .lang_index import words_for
from .snapshot import NodeIndex, RuntimeSnapshot, _node_columns, assemble

__all__ = ["derive_snapshot", "generation_differences", "DELTA_LIMIT"]

#: Changed nodes above which a delta is not attempted (a full rebuild is as quick).
DELTA_LIMIT = 1024

_ADD, _UPDATE, _REMOVE = 0, 1, 2
_FIXED = ("slot", "node_flags", "provides", "max_jobs")
_BITS = ("asr_bits", "tts_bits", "nmt_bits", "nmt_tgt_bits")


def derive_snapshot(
    prev: RuntimeSnapshot,
    source: Any,
    loads: LoadTableLike,
    version: int,
    changed: Iterable[str],
) -> RuntimeSnapshot | None:
    """The generation ``version`` of ``source`` (a ``Fleet``, ``ManagementState`` or
    ``ChangeCapture``: ``cfg``, ``core``, ``pools`` and ``nodes`` by id) derived
    from ``prev``, given every node whose row or memberships changed since
    ``prev`` was built (``changed``; nodes not named must be as ``prev`` has
    them). ``None`` when the change is not one a delta covers."""
    if prev.loads is not loads or version < prev.version:
        return None
    if not (_same(source.cfg, prev.cfg) and _same(source.core, prev.core)):
        return None
    pools: Mapping[int, PoolConfig] = source.pools
    pool_index = prev.pool_index
    if pools.keys() != pool_index.keys():
        return None
    changed = sorted(set(changed))
    if len(changed) > DELTA_LIMIT:
        return None
    old_ids, old_index, nodes = prev.node_ids, prev.node_index, source.nodes
    events: list[tuple[int, int, Any]] = []  # (old position, kind, record)
    for node_id in changed:  # by id: new nodes at one position keep id order
        record = nodes.get(node_id)
        live = record is not None and not record.disconnected
        i = old_index.get(node_id)
        if i is None:
            if live:
                events.append((bisect.bisect_left(old_ids, node_id), _ADD, record))
        elif live:
            events.append((i, _UPDATE, record))
        else:
            events.append((i, _REMOVE, None))
    events.sort(key=lambda e: (e[0], e[1]))  # stable: adds at one position stay by id
    fresh = [record for _, kind, record in events if kind != _REMOVE]
    for record in fresh:
        if any(pid not in pool_index for pid in record.pool_ids):
            return None

    lang_ids, index = prev.lang_ids, prev.index
    n_langs = len(lang_ids)
    codes: set[str] = set()
    for caps in {record.capabilities for record in fresh}:
        codes |= caps.all_languages()
    new_codes = sorted(codes.difference(lang_ids))
    if new_codes:
        if words_for(n_langs + len(new_codes)) != words_for(n_langs):
            return None
        lang_ids = {**lang_ids, **{code: n_langs + k for k, code in enumerate(new_codes)}}
        index = copy.copy(index)  # shares every table: only the names grew
        index.lang_ids = dict(lang_ids)

    columns = dict(prev.columns)
    if not events:
        return assemble(
            version, prev.cfg, prev.core, loads, columns,
            node_ids=prev.node_ids, node_index=prev.node_index, node_serials=prev.node_serials,
            pool_ids=prev.pool_ids, pool_names=prev.pool_names,
            pool_index=prev.pool_index, lang_ids=lang_ids, index=index,
        )  # fmt: skip

    n_old = len(old_ids)
    pieces: list[tuple[int, int] | int] = []  # old rows [a, b), or the k-th fresh row
    cursor = k = 0
    for pos, kind, _ in events:
        if pos > cursor:
            pieces.append((cursor, pos))
            cursor = pos
        if kind != _REMOVE:
            pieces.append(k)
            k += 1
        if kind != _ADD:
            cursor = pos + 1
    if cursor < n_old:
        pieces.append((cursor, n_old))

    new = _node_columns(fresh, source, lang_ids)
    words = words_for(len(lang_ids))
    for name in _FIXED:
        columns[name] = _rows(columns[name], new[name], pieces, 1)
    for name in _BITS:
        columns[name] = _rows(columns[name], new[name], pieces, words)
    columns["id_ptr"], columns["id_bytes"] = _csr(
        columns["id_ptr"], columns["id_bytes"], new["id_ptr"], new["id_bytes"], pieces
    )
    pair_codes = columns["pair_codes"]
    if len(lang_ids) != n_langs and len(pair_codes):  # codes are src * n_langs + tgt
        pair_codes = ((pair_codes // n_langs) * len(lang_ids) + pair_codes % n_langs).astype(np.int32)
    columns["pair_ptr"], columns["pair_codes"] = _csr(
        columns["pair_ptr"], pair_codes, new["pair_ptr"], new["pair_codes"], pieces
    )

    node_ids = _edited(prev.node_ids, events, [r.node_id for r in fresh])
    node_serials = _rows(prev.node_serials, np.array([r.serial for r in fresh], dtype=np.int64), pieces, 1)

    node_index = NodeIndex(node_ids) if len(node_ids) != n_old or any(
        kind != _UPDATE for _, kind, _ in events
    ) else old_index  # nobody moved: the names are the same

    columns["mem_ptr"], columns["mem_idx"] = _members(
        prev, events, pieces, fresh, node_index, n_old
    )
    return assemble(
        version, prev.cfg, prev.core, loads, columns,
        node_ids=node_ids, node_index=node_index, node_serials=node_serials,
        pool_ids=prev.pool_ids, pool_names=prev.pool_names, pool_index=pool_index,
        lang_ids=lang_ids, index=index,
    )  # fmt: skip


def _same(a: Phase3Config | CoreServicesConfig | None, b: Phase3Config | CoreServicesConfig | None) -> bool:
    return a is b or (a is not None and a == b)


def _frozen_join(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """The parts, in order, as one array over a new immutable ``bytes`` (one copy)."""
    return np.frombuffer(b"".join(parts), dtype=dtype)


def _rows(old: np.ndarray, new: np.ndarray, pieces: list, width: int) -> np.ndarray:
    """A fixed-width per-node column (``width`` items per node) spliced from pieces."""
    parts = []
    for piece in pieces:
        if type(piece) is tuple:
            a, b = piece
            parts.append(old[a * width:b * width])
        else:
            parts.append(new[piece * width:(piece + 1) * width])
    return _frozen_join(parts, old.dtype)


def _csr(
    old_ptr: np.ndarray, old_vals: np.ndarray, new_ptr: np.ndarray, new_vals: np.ndarray, pieces: list
) -> tuple[np.ndarray, np.ndarray]:
    """A per-node CSR column (offsets, values) spliced from pieces."""
    ptr_parts = [np.zeros(1, dtype=old_ptr.dtype)]
    val_parts = []
    offset = 0
    for piece in pieces:
        if type(piece) is tuple:
            ptr, vals, a, b = old_ptr, old_vals, piece[0], piece[1]
        else:
            ptr, vals, a, b = new_ptr, new_vals, piece, piece + 1
        lo, hi = int(ptr[a]), int(ptr[b])
        val_parts.append(vals[lo:hi])
        ptr_parts.append((ptr[a + 1:b + 1] + (offset - lo)).astype(old_ptr.dtype, copy=False))
        offset += hi - lo
    return _frozen_join(ptr_parts, old_ptr.dtype), _frozen_join(val_parts, old_vals.dtype)


def _edited(old: tuple, events: list, values: list) -> tuple:
    """A per-node tuple with the events applied (last position first, so the
    earlier positions hold): O(n) memmoves, no Python loop over nodes."""
    out = list(old)
    k = len(values)
    for pos, kind, _ in reversed(events):
        if kind == _REMOVE:
            del out[pos]
            continue
        k -= 1
        if kind == _ADD:
            out.insert(pos, values[k])
        else:
            out[pos] = values[k]
    return tuple(out)


def _members(
    prev: RuntimeSnapshot,
    events: list,
    pieces: list,
    fresh: list,
    node_index: Mapping[str, int],
    n_old: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``mem_ptr``/``mem_idx``: the old lists renumbered, the changed nodes'
    entries dropped and put back where their current pools say."""
    old_ptr, old_idx = prev.columns["mem_ptr"], prev.columns["mem_idx"]
    n_pools = len(old_ptr) - 1
    remap = np.empty(n_old, dtype=np.int32)
    gone = np.zeros(n_old, dtype=bool)
    offset = 0
    for piece in pieces:
        if type(piece) is tuple:
            a, b = piece
            remap[a:b] = np.arange(offset, offset + b - a, dtype=np.int32)
            offset += b - a
        else:
            offset += 1
    for pos, kind, _ in events:
        if kind != _ADD:
            gone[pos] = True  # re-added below from its current pools, if still live
    if any(kind != _ADD for _, kind, _ in events):
        drop = gone[old_idx]
        dropped = np.flatnonzero(drop)
        kept = remap[old_idx[~drop]] if len(dropped) else remap[old_idx]
    else:  # registrations only: every old entry stays, renumbered
        dropped, kept = (), remap[old_idx]
    counts = np.diff(old_ptr).astype(np.int64)
    if len(dropped):
        counts -= np.bincount(np.searchsorted(old_ptr, dropped, side="right") - 1, minlength=n_pools)
    kept_ptr = np.zeros(n_pools + 1, dtype=np.int64)
    kept_ptr[1:] = np.cumsum(counts)
    # (position in kept, pool, node index): a position at the end of one pool's list
    # is also the start of the next one's, so the pool orders entries there
    adds: list[tuple[int, int, int]] = []
    pool_index = prev.pool_index
    for record in fresh:
        j = node_index[record.node_id]
        for pid in record.pool_ids:
            p = pool_index[pid]
            lo, hi = int(kept_ptr[p]), int(kept_ptr[p + 1])
            adds.append((lo + int(np.searchsorted(kept[lo:hi], j)), p, j))
    if adds:
        adds.sort()
        kept = np.insert(kept, [a for a, _, _ in adds], np.array([j for _, _, j in adds], dtype=np.int32))
        counts += np.bincount(np.array([p for _, p, _ in adds], dtype=np.int64), minlength=n_pools)
    mem_ptr = np.zeros(n_pools + 1, dtype=np.int32)
    mem_ptr[1:] = np.cumsum(counts)
    return _frozen_join([mem_ptr], mem_ptr.dtype), _frozen_join([kept.astype(np.int32, copy=False)], np.int32)


# -- comparing generations (the oracle's check) ---------------------------------------------


_LANG_COLUMNS = frozenset((*_BITS, "pool_lang_bits", "pair_ptr", "pair_codes"))


def generation_differences(got: RuntimeSnapshot, want: RuntimeSnapshot) -> list[str]:
    """How generation ``got`` differs from ``want``, column by column and name by
    name; empty when they are the same generation. Language ids may differ
    where :func:`derive_snapshot` numbers them differently from a full rebuild
    (appended codes, codes no node has any more): language columns are
    compared through the codes' names, and an id only ``got`` has must be
    held by no row."""
    problems: list[str] = []
    for name in ("version", "node_ids", "pool_ids", "pool_names"):
        if getattr(got, name) != getattr(want, name):
            problems.append(f"{name} differ")
    for name in ("node_serials", "slots"):
        if not _equal(getattr(got, name), getattr(want, name)):
            problems.append(f"{name} differ")
    for name in ("node_index", "pool_index"):
        if dict(getattr(got, name)) != dict(getattr(want, name)):
            problems.append(f"{name} differs")
    if got.cfg != want.cfg or got.core != want.core:
        problems.append("configs differ")
    if set(got.columns) != set(want.columns):
        return [*problems, f"column names differ: {sorted(set(got.columns) ^ set(want.columns))}"]
    same_langs = dict(got.lang_ids) == dict(want.lang_ids)
    for name in sorted(set(want.columns) - (set() if same_langs else _LANG_COLUMNS)):
        if not _equal(got.columns[name], want.columns[name]):
            problems.append(f"column {name} differs")
    if not same_langs:
        problems += _language_differences(got, want)
    return problems


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())


def _language_differences(got: RuntimeSnapshot, want: RuntimeSnapshot) -> list[str]:
    problems = []
    n_pool = want.index.n_pool_langs
    if got.index.n_pool_langs != n_pool:
        return [f"pool languages differ: {got.index.n_pool_langs} != {n_pool}"]
    missing = sorted(set(want.lang_ids) - set(got.lang_ids))
    if missing:
        return [f"lang_ids lack {missing}"]
    if any(got.lang_ids[code] != i for code, i in want.lang_ids.items() if i < n_pool):
        return ["pool languages are numbered differently"]
    to_want = np.full(len(got.lang_ids), -1, dtype=np.int64)
    for code, i in got.lang_ids.items():
        to_want[i] = want.lang_ids.get(code, -1)
    g_words, w_words = words_for(len(got.lang_ids)), words_for(len(want.lang_ids))
    for name in (*_BITS, "pool_lang_bits"):
        mapped, stray = _map_bits(got.columns[name], g_words, w_words, to_want)
        if stray:
            problems.append(f"column {name} sets a language the registry's nodes lack")
        elif not _equal(mapped, want.columns[name]):
            problems.append(f"column {name} differs")
    if not _equal(got.columns["pair_ptr"], want.columns["pair_ptr"]):
        problems.append("column pair_ptr differs")
        return problems
    ptr, codes = got.columns["pair_ptr"], got.columns["pair_codes"].astype(np.int64)
    n_got, n_want = len(got.lang_ids), len(want.lang_ids)
    src, tgt = to_want[codes // n_got], to_want[codes % n_got]
    if (src < 0).any() or (tgt < 0).any():
        problems.append("column pair_codes names a language the registry's nodes lack")
        return problems
    mapped = src * n_want + tgt
    rows = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    mapped = mapped[np.lexsort((mapped, rows))].astype(np.int32)
    if not _equal(mapped, want.columns["pair_codes"]):
        problems.append("column pair_codes differs")
    return problems


def _map_bits(bits: np.ndarray, g_words: int, w_words: int, to_want: np.ndarray) -> tuple[np.ndarray, bool]:
    """Bitsets renumbered through ``to_want``; True when a bit has no target."""
    rows = len(bits) // g_words
    flags = np.unpackbits(bits.astype("<u8").view(np.uint8), bitorder="little").reshape(rows, g_words * 64)
    ids = np.arange(len(to_want))
    stray = bool(flags[:, ids[to_want < 0]].any())
    out = np.zeros((rows, w_words * 64), dtype=np.uint8)
    out[:, to_want[to_want >= 0]] = flags[:, ids[to_want >= 0]]
    packed = np.packbits(out, axis=1, bitorder="little").view("<u8").astype(np.uint64)
    return packed.reshape(-1), stray
