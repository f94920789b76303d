"""The fast path: docs/DESIGN.md §5 run by the compiled kernels over a ``RuntimeSnapshot``.

This module only translates: a ``JobRequest`` into the snapshot's integers
(language ids, node and pool indices, the routing key), and the kernel's
integers back into a ``Selection``, whose per-pool counts stay undecoded
bytes until someone reads ``breakdown`` or ``attempts``. Every decision is
the kernel's; the legacy module is the oracle it is tested against.

The functions here require a snapshot with a compiled view
(``snapshot.compiled``); they raise rather than fall back, so the caller
(the registry) decides, visibly, which path serves.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from .. import _compat
from ..domain.errors import SchedulerError
from ..domain.languages import AUTO
from ..domain.model import CHECK_REASONS, Attempt, Breakdown, JobRequest, Reason, Selection
from ..runtime.snapshot import RuntimeSnapshot

__all__ = [
    "ATTEMPT_WIDTH",
    "FastPathUnavailable",
    "decode_records",
    "new_dispatcher",
    "prepare_batch",
    "run_batch",
    "run_kernel",
    "select",
    "to_selection",
]

ATTEMPT_WIDTH = _compat.KERNEL_CODES["ATT_WIDTH"]  # pool index, total, one count per reason
_ATT_TOTAL = _compat.KERNEL_CODES["ATT_TOTAL"]
_ATT_COUNTS = _compat.KERNEL_CODES["ATT_COUNTS"]
_ATT_SKIPPED = _compat.KERNEL_CODES["ATT_SKIPPED"]
_NO_ELIGIBLE_POOL = _compat.KERNEL_CODES["R_NO_ELIGIBLE_POOL"]
_LANG_UNKNOWN = _compat.KERNEL_CODES["LANG_UNKNOWN"]
_LANG_AUTO = _compat.KERNEL_CODES["LANG_AUTO"]


class FastPathUnavailable(SchedulerError):
    """The snapshot has no compiled view (the extension is not built or disabled)."""


def _compiled(snapshot: RuntimeSnapshot):
    compiled = snapshot.compiled
    if compiled is None:
        raise FastPathUnavailable("the fast path needs pyscheduler._hotpath (not built or disabled)")
    return compiled


def _excluded(snapshot: RuntimeSnapshot, job: JobRequest) -> np.ndarray | None:
    if not job.exclude_node_ids:
        return None
    index = snapshot.node_index
    found = [index[n] for n in job.exclude_node_ids if n in index]
    return np.array(found, dtype=np.int32) if found else None


def select(
    snapshot: RuntimeSnapshot,
    job: JobRequest,
    now: float,
    *,
    only_pool: int | None = None,
    bound_pool: int | None = None,
    reserve: bool = True,
) -> tuple[Selection, int]:
    """Place one job; returns the selection (no token) and the node index (-1: none).

    ``only_pool`` (a pool id) restricts the scan to that pool; ``bound_pool``
    is the session's bound pool id; ``reserve=False`` is a dry run.
    """
    answer = run_kernel(snapshot, job, now, only_pool=only_pool, bound_pool=bound_pool, reserve=reserve)
    return to_selection(snapshot, answer, None), answer.node


class KernelAnswer(NamedTuple):
    """The kernel's answer for one job, in snapshot indices (``-1``: none)."""

    node: int  # the node picked (its index in ``snapshot.node_ids``)
    pool: int  # the pool it was picked from (index in ``snapshot.pool_ids``)
    preferred: int  # the preferred pool (index in ``snapshot.pool_ids``)
    fallback_used: bool  # more than the preferred pool was tried
    empty_reason: int  # the kernel's code for "nothing examined" (e.g. no eligible pool)
    records: bytes  # one attempt record per pool scanned or run of pools skipped (``ATTEMPT_WIDTH`` int32 each)


def run_kernel(
    snapshot: RuntimeSnapshot,
    job: JobRequest,
    now: float,
    *,
    only_pool: int | None = None,
    bound_pool: int | None = None,
    reserve: bool = True,
) -> KernelAnswer:
    """The kernel's answer for ``job``."""
    compiled = snapshot.compiled
    if compiled is None:
        _compiled(snapshot)  # raises FastPathUnavailable
    lang_ids = snapshot.lang_ids
    src = job.src_lang
    return KernelAnswer._make(compiled.select(
        _LANG_AUTO if src == AUTO else lang_ids.get(src, _LANG_UNKNOWN),
        lang_ids.get(job.tgt_lang, _LANG_UNKNOWN),
        job.types_mask,
        job.public,
        -1 if job.preferred_node_id is None else snapshot.node_index.get(job.preferred_node_id, -1),
        -1 if job.tenant_id is None else snapshot.tenant_pool(job.tenant_id),
        -1 if bound_pool is None else snapshot.pool_index.get(bound_pool, -1),
        -1 if only_pool is None else snapshot.pool_index[only_pool],
        job.key,
        None if not job.exclude_node_ids else _excluded(snapshot, job),
        now,
        reserve,
    ))


def to_selection(snapshot: RuntimeSnapshot, answer: KernelAnswer, token: int | None) -> Selection:
    """A ``Selection`` from the kernel's answer, carrying ``token``; the
    per-pool counts stay bytes until ``breakdown`` or ``attempts`` is read."""
    node, pool, preferred, fallback_used, empty, records = answer
    if empty == _NO_ELIGIBLE_POOL:
        nothing = Breakdown(total=0, empty_reason=Reason.NO_ELIGIBLE_POOL)
        return Selection(None, None, None, False, nothing, (), "fast")
    pool_ids = snapshot.pool_ids
    return Selection._lazy(
        snapshot.node_ids[node] if node >= 0 else None,
        pool_ids[pool] if pool >= 0 else None,
        pool_ids[preferred] if preferred >= 0 else None,
        fallback_used,
        "fast",
        token,
        partial(_decode, snapshot, records, node >= 0),
    )


def _decode(snapshot: RuntimeSnapshot, records: bytes, picked: bool) -> tuple[tuple[Attempt, ...], Breakdown]:
    """``(attempts, breakdown)`` from a job's attempt records: the breakdown is
    the last attempt's when a node was picked (the search stops there), else
    the first's."""
    recs = memoryview(records).cast("i").tolist()
    attempts = []
    for base in range(0, len(recs), ATTEMPT_WIDTH):
        pool, total = recs[base], recs[base + _ATT_TOTAL]
        if total < 0:  # a run of pools listed, not scanned: their coverage cannot serve the job
            skipped, n_pools = CHECK_REASONS[_ATT_SKIPPED - total], len(snapshot.pool_ids)
            for p in range(pool, pool + recs[base + _ATT_COUNTS]):
                p %= n_pools
                attempts.append(Attempt(snapshot.pool_ids[p], snapshot.pool_names[p], Breakdown(), skipped))
            continue
        breakdown = Breakdown(recs[base + _ATT_COUNTS:base + ATTEMPT_WIDTH], total)
        if pool >= 0:
            attempts.append(Attempt(snapshot.pool_ids[pool], snapshot.pool_names[pool], breakdown))
        else:
            attempts.append(Attempt(None, "all nodes", breakdown))
    return tuple(attempts), attempts[-1 if picked else 0].breakdown


def new_dispatcher(loads: Any) -> Any:
    """A compiled ``Dispatcher`` over ``loads`` (a compiled ``LoadTable``): the
    whole fast-path decision in one call, and the reservation table and
    counters it keeps. Its token epoch is drawn at random here."""
    if not _compat.HAVE_HOTPATH:
        raise FastPathUnavailable("the fast path needs pyscheduler._hotpath (not built or disabled)")
    return _compat.hotpath.Dispatcher(
        loads, Selection._lazy, decode_records, Selection, secrets.randbits(64), job_type=JobRequest
    )


def decode_records(
    snapshot: RuntimeSnapshot, records: bytes, picked: bool, no_eligible_pool: bool
) -> tuple[tuple[Attempt, ...], Breakdown]:
    """``(attempts, breakdown)`` of a dispatcher's selection (its decode hook)."""
    if no_eligible_pool:
        return (), Breakdown(total=0, empty_reason=Reason.NO_ELIGIBLE_POOL)
    return _decode(snapshot, records, picked)


def prepare_batch(
    snapshot: RuntimeSnapshot, jobs: Sequence[JobRequest], bound_pools: Sequence[int | None] | None = None
) -> tuple[np.ndarray, ...]:
    """The jobs as the kernel's input columns (one pass over the jobs)."""
    compiled = _compiled(snapshot)
    lang_ids, node_index = snapshot.lang_ids, snapshot.node_index
    rows = [
        (
            _LANG_AUTO if j.src_lang == AUTO else lang_ids.get(j.src_lang, _LANG_UNKNOWN),
            lang_ids.get(j.tgt_lang, _LANG_UNKNOWN),
            j.types_mask,
            j.public,
            -1 if j.preferred_node_id is None else node_index.get(j.preferred_node_id, -1),
            snapshot.tenant_pool(j.tenant_id),
        )
        for j in jobs
    ]
    n = len(jobs)
    table = np.array(rows, dtype=np.int32).reshape(n, 6)
    h_key = np.fromiter((compiled.key_hash(j.key) for j in jobs), dtype=np.uint64, count=n)
    excluded = [None if not j.exclude_node_ids else _excluded(snapshot, j) for j in jobs]
    excl_ptr = np.zeros(n + 1, dtype=np.int64)
    excl_ptr[1:] = np.cumsum([0 if e is None else len(e) for e in excluded], dtype=np.int64)
    parts = [e for e in excluded if e is not None]
    excl_idx = np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, dtype=np.int32)
    columns = [np.ascontiguousarray(table[:, k]) for k in range(6)]
    columns[3] = columns[3].astype(np.uint8)
    pool_index = snapshot.pool_index
    bound = np.fromiter(
        (-1 if b is None else pool_index.get(b, -1) for b in (bound_pools or [None] * n)),
        dtype=np.int32,
        count=n,
    )
    return (*columns, bound, h_key, excl_ptr, excl_idx)


def run_batch(snapshot: RuntimeSnapshot, batch: tuple[np.ndarray, ...], now: float) -> tuple[np.ndarray, bytes]:
    """The kernel call alone: every job of ``batch`` in one ``nogil`` section.
    Returns the per-job output rows and the attempt records."""
    out = np.empty((len(batch[0]), 6), dtype=np.int32)
    records = _compiled(snapshot).select_batch(*batch, now, out)
    return out, records
