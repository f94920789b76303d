"""``SelectionBatch``: the answer to a batch of jobs, as columns and as ``Selection`` objects.

``NodeRegistry.select_nodes_batch`` returns one. A dispatcher that places many
jobs reads the numpy columns (one entry per job, read-only): which node, which
pool, the reservation token, the top reason of a failure — without a Python
object per job. Code written for a list of ``Selection`` keeps working: the
batch is a ``Sequence[Selection]`` whose items are made when first read (and
kept), each equal to what ``select_node`` would have returned for its job.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np

from .. import _compat
from ..domain.model import Reason, Selection
from .fast import decode_records

__all__ = ["REASONS", "SelectionBatch", "reason_code", "reason_of"]

REASONS: tuple[Reason, ...] = tuple(Reason)
"""``REASONS[code]`` is the ``Reason`` of a top-reason code (its position in
``Reason``, which is also the kernels' code); code -1 means ``None`` (nothing
was rejected)."""

_CODE = {reason: code for code, reason in enumerate(REASONS)}
_NO_ELIGIBLE_POOL = _CODE[Reason.NO_ELIGIBLE_POOL]
_ATT_BYTES = _compat.KERNEL_CODES["ATT_WIDTH"] * 4  # bytes per attempt record


def reason_of(code: int) -> Reason | None:
    """The ``Reason`` of a code of :attr:`SelectionBatch.top_reasons` (-1: ``None``)."""
    return None if code < 0 else REASONS[code]


def reason_code(reason: Reason | None) -> int:
    """The code of ``reason`` in :attr:`SelectionBatch.top_reasons` (``None``: -1)."""
    return -1 if reason is None else _CODE[reason]


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


class SelectionBatch(Sequence[Selection]):
    """One entry per job of a batch, in job order.

    Columns (numpy, read-only):

    - ``node_index`` (int32): the node's index in :attr:`node_names`, -1 for none;
    - ``pool_ids`` (int64): the pool the node came from, -1 for none (nothing
      picked, or single-level mode); ``preferred_pool_ids``: the pool tried first;
    - ``fallback_used`` (bool); ``ok`` (bool): a node was picked;
    - ``tokens`` (uint64): the reservation token, 0 for none (never a token);
    - ``top_reasons`` (int8): the code of the breakdown's top reason, -1 for
      ``None``; :func:`reason_of` (or :attr:`reasons`) maps codes to ``Reason``.

    :attr:`node_ids` gives the node ids (``None`` for none). ``batch[i]`` is
    job ``i``'s ``Selection``, built on first read; ``registry.commit_batch(
    batch.tokens)`` ends the batch's reservations in one call.
    """

    __slots__ = (
        "node_index", "pool_ids", "preferred_pool_ids", "fallback_used", "tokens", "top_reasons",
        "node_names", "path", "_items", "_node_ids", "_reasons", "_snapshot", "_records", "_offsets",
    )

    node_index: np.ndarray
    pool_ids: np.ndarray
    preferred_pool_ids: np.ndarray
    fallback_used: np.ndarray
    tokens: np.ndarray
    top_reasons: np.ndarray
    node_names: tuple[str, ...]
    path: str

    @classmethod
    def _from_fast(cls, snapshot: Any, answer: tuple[Any, ...]) -> SelectionBatch:
        """From the compiled ``Dispatcher.select_batch`` answer over ``snapshot``."""
        node, pool, preferred, fallback, tokens, reasons, records, offsets = answer
        self = object.__new__(cls)
        self.node_index = _frozen(node)
        self.pool_ids = _frozen(pool)
        self.preferred_pool_ids = _frozen(preferred)
        self.fallback_used = _frozen(fallback.view(np.bool_))
        self.tokens = _frozen(tokens)
        self.top_reasons = _frozen(reasons)
        self.node_names = snapshot.node_ids
        self.path = "fast"
        self._items = [None] * len(node)
        self._node_ids = None
        self._reasons = None
        self._snapshot = snapshot
        self._records = records
        self._offsets = offsets
        return self

    @classmethod
    def from_selections(cls, selections: Sequence[Selection], path: str = "legacy") -> SelectionBatch:
        """The batch of a list of ``Selection`` (the legacy path's); the items
        are those very objects. ``node_names`` are the batch's distinct node ids, sorted."""
        selections = list(selections)
        names = tuple(sorted({s.node_id for s in selections if s.node_id is not None}))
        where = {name: i for i, name in enumerate(names)}
        n = len(selections)
        self = object.__new__(cls)
        self.node_index = _frozen(np.fromiter(
            (-1 if s.node_id is None else where[s.node_id] for s in selections), dtype=np.int32, count=n))
        self.pool_ids = _frozen(np.fromiter(
            (-1 if s.pool_id is None else s.pool_id for s in selections), dtype=np.int64, count=n))
        self.preferred_pool_ids = _frozen(np.fromiter(
            (-1 if s.preferred_pool is None else s.preferred_pool for s in selections), dtype=np.int64, count=n))
        self.fallback_used = _frozen(np.fromiter((s.fallback_used for s in selections), dtype=np.bool_, count=n))
        self.tokens = _frozen(np.fromiter(
            (0 if s.reservation is None else s.reservation for s in selections), dtype=np.uint64, count=n))
        self.top_reasons = _frozen(np.fromiter(
            (reason_code(s.breakdown.top_reason) for s in selections), dtype=np.int8, count=n))
        self.node_names = names
        self.path = path
        self._items = selections
        self._node_ids = None
        self._reasons = None
        self._snapshot = None
        self._records = None
        self._offsets = None
        return self

    # -- columns made on request ---------------------------------------------------------

    @property
    def ok(self) -> np.ndarray:
        """Whether each job got a node (bool)."""
        return _frozen(self.node_index >= 0)

    @property
    def node_ids(self) -> tuple[str | None, ...]:
        """Each job's node id (``None``: none), made on first read."""
        if self._node_ids is None:
            names = self.node_names
            self._node_ids = tuple(None if i < 0 else names[i] for i in self.node_index.tolist())
        return self._node_ids

    @property
    def reasons(self) -> tuple[Reason | None, ...]:
        """Each job's top reason as a ``Reason`` (``None``: nothing rejected)."""
        if self._reasons is None:
            self._reasons = tuple(reason_of(c) for c in self.top_reasons.tolist())
        return self._reasons

    # -- the Sequence ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self._items)))]
        item = self._items[i]  # IndexError as a list raises it
        if item is None:
            if i < 0:
                i += len(self._items)
            item = self._items[i] = self._make(i)
        return item

    def __iter__(self) -> Iterator[Selection]:
        for i in range(len(self._items)):
            yield self[i]

    def _make(self, i: int) -> Selection:
        node = int(self.node_index[i])
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        records = self._records[start * _ATT_BYTES:end * _ATT_BYTES]
        pool, preferred, token = int(self.pool_ids[i]), int(self.preferred_pool_ids[i]), int(self.tokens[i])
        decode = partial(decode_records, self._snapshot, records, node >= 0,
                         int(self.top_reasons[i]) == _NO_ELIGIBLE_POOL)
        return Selection._lazy(
            None if node < 0 else self.node_names[node],
            None if pool < 0 else pool,
            None if preferred < 0 else preferred,
            bool(self.fallback_used[i]),
            "fast",
            token or None,
            decode,
        )

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of equal ``Selection`` objects (a list included)."""
        if not isinstance(other, (SelectionBatch, list, tuple)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SelectionBatch({len(self)} jobs, {int(np.count_nonzero(self.node_index >= 0))} placed, {self.path})"

