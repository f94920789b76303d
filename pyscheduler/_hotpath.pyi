# Stub for the compiled extension pyscheduler._hotpath (sources: csrc/_hotpath.pyx).
# Import it only through pyscheduler._compat / pyscheduler.hashing: it may be absent.

from collections.abc import Callable, Sequence
from typing import Any, Final, final

import numpy as np
import numpy.typing as npt

FNV64_OFFSET_BASIS: Final[int]  # 0xcbf29ce484222325
FNV64_PRIME: Final[int]  # 0x100000001b3

def fnv1a64(data: bytes) -> int:
    """FNV-1a-64 of ``data``. TypeError unless ``data`` is bytes."""

def pool_hash(routing_key: str, seed: int) -> int:
    """``fnv1a64(routing_key.encode("utf-8") + seed.to_bytes(8, "little"))``.

    TypeError for a non-str key or non-int seed; ValueError unless 0 <= seed < 2**64.
    """

def tiebreak_hash(routing_key: str, node_id: str) -> int:
    """``fnv1a64((routing_key + node_id).encode("utf-8"))``. TypeError for non-str."""


N_REASONS: Final[int]  # 12 node-check reasons
ATTEMPT_WIDTH: Final[int]  # int32 per attempt record: pool index, total, 12 counts
MAX_SLOTS: Final[int]
REASON_CODES: Final[dict[str, int]]  # reason name -> kernel code (CHECK_REASONS order)
KERNEL_CODES: Final[dict[str, int]]  # status, node-flag, language and reason codes; attempt-record layout

@final
class LoadTable:
    """Per-node load records by slot, in chunks that never move; atomic counters."""

    @property
    def capacity(self) -> int: ...
    def ensure(self, slot: int) -> None: ...
    def reset(self, slot: int, now: float) -> None: ...
    def set_load(
        self,
        slot: int,
        cpu_usage: float,
        memory_usage: float,
        gpu_usage: float | None,
        running: int,
        last_heartbeat: float,
    ) -> None: ...
    def set_status(self, slot: int, status: int) -> None: ...
    def status(self, slot: int) -> int: ...
    def get(self, slot: int) -> tuple[int, int, float, float, float | None, float]: ...
    def running(self, slot: int) -> int: ...
    def reserved(self, slot: int) -> int: ...
    def try_reserve(self, slot: int, max_jobs: int) -> bool: ...
    def unreserve(self, slot: int) -> bool: ...
    def commit(self, slot: int) -> bool: ...

@final
class CompiledSnapshot:
    """The typed, range-checked view of one snapshot generation the kernels scan."""

    loads: LoadTable
    n_nodes: int
    n_pools: int
    n_langs: int
    n_pool_langs: int  # languages 0 .. n_pool_langs-1 occur in pools; the index covers those
    words: int

    version: int

    def __init__(
        self, loads: LoadTable, columns: dict[str, npt.NDArray[np.generic]], config: dict[str, object]
    ) -> None: ...
    def bind_names(
        self,
        lang_ids: dict[str, int],
        node_index: dict[str, int] | None,
        tenant_pools: dict[str, int],
        node_ids: tuple[str, ...],
        pool_ids: tuple[int, ...],
        serials: npt.NDArray[np.int64],
        auto_code: str,
        version: int,
    ) -> None: ...
    def select(
        self,
        src: int,
        tgt: int,
        types: int,
        public: bool,
        preferred: int,
        tenant_pool: int,
        bound_pool: int,
        only_pool: int,
        key: str,
        excluded: npt.NDArray[np.int32] | None,
        now: float,
        reserve_node: bool = True,
    ) -> tuple[int, int, int, bool, int, bytes]: ...
    def select_batch(
        self,
        src: npt.NDArray[np.int32],
        tgt: npt.NDArray[np.int32],
        types: npt.NDArray[np.int32],
        public: npt.NDArray[np.uint8],
        preferred: npt.NDArray[np.int32],
        tenant_pool: npt.NDArray[np.int32],
        bound_pool: npt.NDArray[np.int32],
        h_key: npt.NDArray[np.uint64],
        excl_ptr: npt.NDArray[np.int64],
        excl_idx: npt.NDArray[np.int32],
        now: float,
        out: npt.NDArray[np.int32],
    ) -> bytes: ...
    def eligible_pools(self, src: int, tgt: int, types: int) -> list[int]: ...
    def covered_pools(self, langs: npt.NDArray[np.uint64]) -> list[int]: ...
    def key_hash(self, key: str) -> int: ...

TOKEN_EPOCH_SHIFT_BITS: Final[int]  # tokens carry their table's epoch from this bit up (44)
COUNTER_NAMES: Final[tuple[str, ...]]  # the dispatcher's counters besides failed.<reason>
JOB_FIELDS: Final[tuple[str, ...]]  # the job fields a decision reads (in C, when the job is job_type)
SELECTION_SLOTS: Final[tuple[str, ...]]  # the result type's __slots__ the dispatcher writes in C

@final
class SessionTable:
    """The fast path's session bindings: LRU-bounded, expiring after idle_ttl_s."""

    max_sessions: int
    idle_ttl_s: float
    evicted: int
    expired: int

    def __init__(self, max_sessions: int, idle_ttl_s: float) -> None: ...
    def __len__(self) -> int: ...
    def use(self, session_id: str, now: float) -> None: ...
    def expire(self, now: float) -> int: ...
    def get(self, session_id: str) -> tuple[float, tuple[str, str, object] | None, int | None, str | None] | None: ...

@final
class SelectionRecords:
    """A fast selection's attempt records, decoded when called."""

    def __call__(self) -> tuple[tuple[object, ...], object]: ...

@final
class Dispatcher:
    """One registry's compiled dispatch, reservation table and counters."""

    loads: LoadTable
    epoch: int
    sessions: SessionTable | None

    def __init__(
        self,
        loads: LoadTable,
        make_selection: Callable[..., object] | None,
        decode: Callable[[object, bytes, bool, bool], tuple[tuple[object, ...], object]] | None,
        selection_type: type,
        entropy: int,
        job_type: type | None = None,
    ) -> None: ...
    def configure_sessions(
        self, max_sessions: int, idle_ttl_s: float, on_rebind: Callable[[str, int, str, str], object]
    ) -> None: ...
    def select(
        self,
        snapshot: object,
        job: object,
        now: float,
        bound_pool: int = -1,
        only_pool: int = -1,
        bind_session: bool = False,
    ) -> Any: ...
    def note_session_node(self, session_id: str, node_id: str) -> None: ...
    def bind_listed(
        self,
        job: object,
        eligible: Callable[[], Sequence[int]],
        affinity: bool,
        seed: int,
        generation: int,
        now: float,
    ) -> int | None: ...
    def claim_slot(self, slot: int, serial: int) -> None: ...
    def free_slot(self, slot: int) -> None: ...
    def end(self, selection_or_token: object, commit: bool) -> int: ...
    def end_batch(self, tokens: npt.NDArray[np.uint64], commit: bool, out: npt.NDArray[np.int8]) -> int: ...
    def select_batch(
        self,
        snapshot: object,
        jobs: list[Any] | None,
        columns: tuple[list[Any], ...] | None,
        now: float,
        bind_session: bool = False,
    ) -> tuple[
        npt.NDArray[np.int32],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        npt.NDArray[np.uint8],
        npt.NDArray[np.uint64],
        npt.NDArray[np.int8],
        bytes,
        npt.NDArray[np.int32],
    ]: ...
    def expire(self, now: float, ttl_s: float) -> int: ...
    def held(self) -> list[tuple[int, int]]: ...
    def held_and_reserved(self, slots: Sequence[int]) -> tuple[list[tuple[int, int]], list[int]]: ...
    def activity(self) -> tuple[int, int]: ...
    def __len__(self) -> int: ...
    def counters(self) -> dict[str, int]: ...

@final
class SteadyBeats:
    """Steady nodes (id -> load slot) and the one-call load-only heartbeat.

    ``lock_probe`` must be a builtin ``locked`` method (of the registry lock);
    ``heartbeat_type`` a class keeping the six Heartbeat fields in ``__slots__``.
    """

    applied: int  # beats applied by ``beat``
    def __init__(
        self, loads: LoadTable, lock_probe: Callable[[], bool], clock: Callable[[], float], heartbeat_type: type
    ) -> None: ...
    def __len__(self) -> int: ...
    def admit(self, node_id: str, slot: int) -> None: ...
    def evict(self, node_id: str, slot: int) -> None: ...
    def slot_of(self, node_id: object) -> int: ...
    def set_quiet(self, quiet: bool) -> None: ...
    def set_enabled(self, enabled: bool) -> None: ...
    @property
    def is_enabled(self) -> bool: ...
    def beat(self, node_id: object, hb: object) -> bool | tuple[float] | None:
        """True: applied; None: not for this path (clock not read); ``(now,)``:
        the clock was read but the registry lock was busy."""
