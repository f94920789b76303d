"""Compiled hot path of pyscheduler (``pyscheduler._hotpath``).

Arrays and integers in, arrays and integers out: this module imports nothing
from the ``pyscheduler`` package. Python code reaches it through
``pyscheduler.hashing`` (and, later, ``pyscheduler.selection.fast``), which fall
back to pure-Python equivalents when the extension is not built.

Hashes (DESIGN §5, "Routing key" / "Pick"): FNV-1a-64 with 64-bit wraparound
arithmetic, offset basis 0xcbf29ce484222325 and prime 0x100000001b3.
"""

cimport cython
import numpy as np
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.number cimport PyNumber_Index
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.math cimport NAN, isnan
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset


cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void** memptr, size_t alignment, size_t size)

from _atomic cimport pys_add, pys_cas, pys_load, pys_popcount64, pys_prefetch, pys_store
from _kernel_codes cimport (
    ATT_COUNTS,
    ATT_POOL,
    ATT_SKIPPED,
    ATT_TOTAL,
    ATT_WIDTH,
    COV_ASR,
    COV_NMT,
    COV_PAIR_SRC,
    COV_PAIR_TGT,
    COV_SETS,
    COV_TTS,
    LANG_AUTO,
    LANG_UNKNOWN,
    N_CHECK_REASONS,
    NF_HAS_GPU,
    NF_PUBLIC,
    R_ASR_LANG_UNSUPPORTED,
    R_CAPACITY_EXCEEDED,
    R_EXCLUDED,
    R_GPU_UNAVAILABLE,
    R_HEARTBEAT_STALE,
    R_LANG_PAIR_UNSUPPORTED,
    R_MODEL_NOT_AVAILABLE,
    R_NO_ELIGIBLE_POOL,
    R_NO_NODES,
    R_NOT_IN_PUBLIC_POOL,
    R_OFFLINE,
    R_OK,
    R_RESOURCE_THRESHOLD_EXCEEDED,
    R_STATUS_NOT_READY,
    R_TTS_LANG_UNSUPPORTED,
    ST_NOT_READY,
    ST_OFFLINE,
    ST_READY,
    IntBuf,
    JobIn,
    JobOut,
    NodeLoad,
)
from _types cimport float64_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t


cdef extern from *:
    """
    #define PYSCHED_FNV64_OFFSET_BASIS 0xcbf29ce484222325ULL
    #define PYSCHED_FNV64_PRIME 0x00000100000001b3ULL
    """
    const uint64_t _FNV64_OFFSET_BASIS "PYSCHED_FNV64_OFFSET_BASIS"
    const uint64_t _FNV64_PRIME "PYSCHED_FNV64_PRIME"


FNV64_OFFSET_BASIS = _FNV64_OFFSET_BASIS
FNV64_PRIME = _FNV64_PRIME


# --- C-level kernels ---------------------------------------------------------

cdef inline uint64_t fnv1a64_update(uint64_t h, const unsigned char* data, Py_ssize_t n) noexcept nogil:
    """Continue an FNV-1a-64 hash ``h`` over ``data[0:n]``.

    ``fnv1a64_update(fnv1a64_bytes(a, na), b, nb) == fnv1a64_bytes(a + b, na + nb)``:
    hashing a concatenation never needs the concatenated buffer.
    """
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ data[i]) * _FNV64_PRIME  # unsigned: wraps mod 2**64
    return h


cdef inline uint64_t fnv1a64_bytes(const unsigned char* data, Py_ssize_t n) noexcept nogil:
    """FNV-1a-64 of ``data[0:n]``; n == 0 gives the offset basis."""
    return fnv1a64_update(_FNV64_OFFSET_BASIS, data, n)


# --- argument checks (same messages as pyscheduler.hashing's pure versions) --

cdef inline const unsigned char* _utf8(str s, Py_ssize_t* n) except NULL:
    # UTF-8 view of ``s`` without a copy for ASCII strings (CPython caches the
    # UTF-8 form of other strings on the str object). Lone surrogates raise
    # UnicodeEncodeError, exactly as ``s.encode("utf-8")`` does.
    return <const unsigned char*>PyUnicode_AsUTF8AndSize(s, n)


cdef str _type_name(object obj):
    return type(obj).__name__


cdef uint64_t _checked_seed(str func, object seed) except? 0:
    if isinstance(seed, bool):
        raise TypeError(f"{func}() argument 'seed' must be an int, not bool")
    try:
        seed = PyNumber_Index(seed)
    except TypeError:
        raise TypeError(
            f"{func}() argument 'seed' must be an int, not {_type_name(seed)}"
        ) from None
    if not 0 <= seed <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(
            f"{func}() argument 'seed' must satisfy 0 <= seed < 2**64, got {seed}"
        )
    return <uint64_t>seed


# --- Python-visible functions ------------------------------------------------

def fnv1a64(data):
    """FNV-1a-64 of ``data``: start from 0xcbf29ce484222325 and, for each byte b,
    ``h = ((h ^ b) * 0x100000001b3) % 2**64``. ``fnv1a64(b"")`` is the offset basis.
    Raises TypeError unless ``data`` is bytes.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"fnv1a64() argument 'data' must be bytes, not {_type_name(data)}")
    cdef const unsigned char* buf = <bytes>data
    return fnv1a64_bytes(buf, len(<bytes>data))


def pool_hash(routing_key, seed):
    """``fnv1a64(routing_key.encode("utf-8") + seed.to_bytes(8, "little"))``: the hash
    whose value mod n picks the session-affine pool among n eligible pools.
    ``seed`` is an unsigned 64-bit int (TypeError if not an int, ValueError unless
    ``0 <= seed < 2**64``); ``routing_key`` must be a str (TypeError).
    """
    if not isinstance(routing_key, str):
        raise TypeError(
            f"pool_hash() argument 'routing_key' must be str, not {_type_name(routing_key)}"
        )
    cdef uint64_t s = _checked_seed("pool_hash", seed)
    cdef Py_ssize_t n = 0
    cdef const unsigned char* key = _utf8(<str>routing_key, &n)
    cdef unsigned char seed_le[8]
    cdef int i
    for i in range(8):
        seed_le[i] = <unsigned char>((s >> (8 * i)) & 0xFF)  # little-endian on every host
    return fnv1a64_update(fnv1a64_bytes(key, n), seed_le, 8)


def tiebreak_hash(routing_key, node_id):
    """``fnv1a64((routing_key + node_id).encode("utf-8"))``: the last key of the
    pick order, so that equally loaded nodes are spread across sessions.
    Both arguments must be str (TypeError).
    """
    if not isinstance(routing_key, str):
        raise TypeError(
            f"tiebreak_hash() argument 'routing_key' must be str, not {_type_name(routing_key)}"
        )
    if not isinstance(node_id, str):
        raise TypeError(
            f"tiebreak_hash() argument 'node_id' must be str, not {_type_name(node_id)}"
        )
    cdef Py_ssize_t nk = 0, nn = 0
    cdef const unsigned char* key = _utf8(<str>routing_key, &nk)
    cdef const unsigned char* node = _utf8(<str>node_id, &nn)
    return fnv1a64_update(fnv1a64_bytes(key, nk), node, nn)


# =============================================================================
# Node loads, selection kernels and the language index (DESIGN §5)
# =============================================================================



cdef enum:
    CHUNK_BITS = 12
    CHUNK_SIZE = 4096          # 1 << CHUNK_BITS slots per chunk (256 KiB)
    MAX_CHUNKS = 16384         # at most 67,108,864 slots
    CORE_MASK = 7              # ASR | NMT | TTS
    ASR_BIT = 1
    NMT_BIT = 2
    TTS_BIT = 4
    SCAN_CHUNK = 64            # candidates whose load records scan() prefetches before checking them
    SCRATCH_STACK = 4096       # ints of scratch on the stack before select() mallocs
    ATT_STACK = 8 * ATT_WIDTH  # attempt records on the stack (8 pools) before it mallocs

N_REASONS = N_CHECK_REASONS
ATTEMPT_WIDTH = ATT_WIDTH
REASON_CODES = {  # reason name -> kernel code; must match pyscheduler.model.CHECK_REASONS order
    "excluded": R_EXCLUDED,
    "offline": R_OFFLINE,
    "status_not_ready": R_STATUS_NOT_READY,
    "heartbeat_stale": R_HEARTBEAT_STALE,
    "gpu_unavailable": R_GPU_UNAVAILABLE,
    "not_in_public_pool": R_NOT_IN_PUBLIC_POOL,
    "model_not_available": R_MODEL_NOT_AVAILABLE,
    "asr_lang_unsupported": R_ASR_LANG_UNSUPPORTED,
    "lang_pair_unsupported": R_LANG_PAIR_UNSUPPORTED,
    "tts_lang_unsupported": R_TTS_LANG_UNSUPPORTED,
    "capacity_exceeded": R_CAPACITY_EXCEEDED,
    "resource_threshold_exceeded": R_RESOURCE_THRESHOLD_EXCEEDED,
    "no_eligible_pool": R_NO_ELIGIBLE_POOL,
    "no_nodes": R_NO_NODES,
}
MAX_SLOTS = <Py_ssize_t>MAX_CHUNKS * CHUNK_SIZE
KERNEL_CODES = {  # the one source of the codes Python hands the kernels or reads back
    "ST_READY": ST_READY,
    "ST_NOT_READY": ST_NOT_READY,
    "ST_OFFLINE": ST_OFFLINE,
    "NF_HAS_GPU": NF_HAS_GPU,
    "NF_PUBLIC": NF_PUBLIC,
    "LANG_UNKNOWN": LANG_UNKNOWN,
    "LANG_AUTO": LANG_AUTO,
    "ATT_POOL": ATT_POOL,
    "ATT_TOTAL": ATT_TOTAL,
    "ATT_COUNTS": ATT_COUNTS,
    "ATT_WIDTH": ATT_WIDTH,
    "ATT_SKIPPED": ATT_SKIPPED,
    "LOAD_RECORD_BYTES": sizeof(NodeLoad),
    "R_NO_ELIGIBLE_POOL": R_NO_ELIGIBLE_POOL,
    "R_NO_NODES": R_NO_NODES,
}


# --- reservations: lock-free counters ------------------------------------------

cdef inline int32_t node_load(NodeLoad* rec) noexcept nogil:
    """Jobs counted against a node's capacity: running + reserved."""
    return pys_load(&rec.running) + pys_load(&rec.reserved)


cdef inline bint reserve(NodeLoad* rec, int32_t max_jobs) noexcept nogil:
    """reserved += 1 unless running + reserved >= max_jobs; a CAS loop, so two
    concurrent kernels can never both take a node's last free place."""
    cdef int32_t r
    while True:
        r = pys_load(&rec.reserved)
        if pys_load(&rec.running) + r >= max_jobs:
            return False
        if pys_cas(&rec.reserved, r, r + 1):
            return True


cdef inline bint unreserve(NodeLoad* rec) noexcept nogil:
    """reserved -= 1 unless it is already 0."""
    cdef int32_t r
    while True:
        r = pys_load(&rec.reserved)
        if r <= 0:
            return False
        if pys_cas(&rec.reserved, r, r - 1):
            return True


@cython.final
cdef class LoadTable:
    """Per-node load records addressed by slot.

    Records live in fixed chunks that are never moved or freed before the
    table itself, so a slot's address is stable: a kernel reading any snapshot
    generation may update ``reserved`` while the registry publishes the next.
    """


    def __cinit__(self):
        self.chunks = <NodeLoad**>calloc(MAX_CHUNKS, sizeof(NodeLoad*))
        if self.chunks == NULL:
            raise MemoryError()
        self.n_chunks = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.chunks != NULL:
            for i in range(self.n_chunks):
                free(self.chunks[i])
            free(self.chunks)

    cdef NodeLoad* at(self, Py_ssize_t slot) noexcept nogil:
        # Callers guarantee 0 <= slot < capacity (checked once, when a snapshot is built).
        return &self.chunks[slot >> CHUNK_BITS][slot & (CHUNK_SIZE - 1)]

    cdef NodeLoad* _checked(self, Py_ssize_t slot) except NULL:
        if slot < 0 or slot >= self.n_chunks * CHUNK_SIZE:
            raise IndexError(f"load slot {slot} out of range (capacity {self.n_chunks * CHUNK_SIZE})")
        return self.at(slot)

    @property
    def capacity(self):
        """Slots allocated so far (a multiple of the chunk size)."""
        return self.n_chunks * CHUNK_SIZE

    def ensure(self, Py_ssize_t slot):
        """Allocate (zeroed) chunks until ``slot`` is addressable."""
        cdef NodeLoad* chunk
        if slot < 0 or slot >= MAX_SLOTS:
            raise IndexError(f"load slot {slot} out of range (at most {MAX_SLOTS})")
        while (slot >> CHUNK_BITS) >= self.n_chunks:
            if posix_memalign(<void**>&chunk, 64, CHUNK_SIZE * sizeof(NodeLoad)) != 0:
                raise MemoryError()
            memset(chunk, 0, CHUNK_SIZE * sizeof(NodeLoad))
            self.chunks[self.n_chunks] = chunk
            self.n_chunks += 1

    def reset(self, Py_ssize_t slot, float64_t now):
        """A fresh record: no jobs, no reservations, zero usages, no GPU figure."""
        cdef NodeLoad* rec = self._checked(slot)
        pys_store(&rec.running, 0)
        pys_store(&rec.reserved, 0)
        pys_store(&rec.status, ST_NOT_READY)
        rec.cpu_usage = 0.0
        rec.memory_usage = 0.0
        rec.gpu_usage = NAN
        rec.last_heartbeat = now

    def set_load(self, Py_ssize_t slot, float64_t cpu_usage, float64_t memory_usage,
                 gpu_usage, int32_t running, float64_t last_heartbeat):
        """Apply a heartbeat's figures (``gpu_usage=None``: no GPU figure). Reservations stay."""
        cdef NodeLoad* rec = self._checked(slot)
        rec.cpu_usage = cpu_usage
        rec.memory_usage = memory_usage
        rec.gpu_usage = NAN if gpu_usage is None else <float64_t>gpu_usage
        rec.last_heartbeat = last_heartbeat
        pys_store(&rec.running, running)

    def set_status(self, Py_ssize_t slot, int32_t status):
        """Publish a node's status code (ST_READY=0, ST_NOT_READY=1, ST_OFFLINE=2)
        to every snapshot generation at once."""
        if status < ST_READY or status > ST_OFFLINE:
            raise ValueError(f"status code {status} out of range")
        pys_store(&self._checked(slot).status, status)

    def status(self, Py_ssize_t slot):
        return pys_load(&self._checked(slot).status)

    def get(self, Py_ssize_t slot):
        """``(running, reserved, cpu, memory, gpu or None, last_heartbeat)``."""
        cdef NodeLoad* rec = self._checked(slot)
        gpu = None if isnan(rec.gpu_usage) else rec.gpu_usage
        return (pys_load(&rec.running), pys_load(&rec.reserved), rec.cpu_usage,
                rec.memory_usage, gpu, rec.last_heartbeat)

    def running(self, Py_ssize_t slot):
        return pys_load(&self._checked(slot).running)

    def reserved(self, Py_ssize_t slot):
        return pys_load(&self._checked(slot).reserved)

    def try_reserve(self, Py_ssize_t slot, int32_t max_jobs):
        """Atomically reserve a place if running + reserved < max_jobs; True if reserved."""
        return reserve(self._checked(slot), max_jobs)

    def unreserve(self, Py_ssize_t slot):
        """Atomically give a reservation back; False if there was none."""
        return unreserve(self._checked(slot))

    def commit(self, Py_ssize_t slot):
        """A reservation becomes a running job; False if there was no reservation."""
        cdef NodeLoad* rec = self._checked(slot)
        if not unreserve(rec):
            return False
        pys_add(&rec.running, 1)
        return True


# --- the compiled snapshot ---------------------------------------------------

cdef inline bint has_bit(const uint64_t* words, int32_t bit) noexcept nogil:
    return (words[bit >> 6] >> (bit & 63)) & 1


cdef inline void reverse(int32_t* a, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Reverse a[lo:hi] in place."""
    cdef int32_t t
    hi -= 1
    while lo < hi:
        t = a[lo]
        a[lo] = a[hi]
        a[hi] = t
        lo += 1
        hi -= 1


cdef inline void rotate(int32_t* a, Py_ssize_t n, Py_ssize_t start) noexcept nogil:
    """Rotate a[0:n] left so that a[start] comes first (ring order from start)."""
    if start <= 0 or start >= n:
        return
    reverse(a, 0, start)
    reverse(a, start, n)
    reverse(a, 0, n)


cdef inline int32_t* buf_push(IntBuf* buf, Py_ssize_t n) noexcept nogil:
    """Append n zeroed ints; return a pointer to them (NULL when out of memory)."""
    # capacity < 0 marks a caller-owned (stack) buffer of -capacity ints: it is
    # copied to the heap, never realloc'ed or freed here.
    cdef Py_ssize_t need = buf.size + n, cap, k, have = buf.capacity
    cdef int32_t* data
    if have < 0:
        have = -have
    if need > have:
        cap = have * 2 if have else 256
        while cap < need:
            cap *= 2
        if buf.capacity < 0:
            data = <int32_t*>malloc(cap * sizeof(int32_t))
            if data != NULL:
                memcpy(data, buf.data, buf.size * sizeof(int32_t))
        else:
            data = <int32_t*>realloc(buf.data, cap * sizeof(int32_t))
        if data == NULL:
            return NULL
        buf.data = data
        buf.capacity = cap
    data = buf.data + buf.size
    for k in range(n):
        data[k] = 0
    buf.size = need
    return data


cdef inline bint contains(const int32_t* a, Py_ssize_t n, int32_t value) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n):
        if a[k] == value:
            return True
    return False


cdef inline Py_ssize_t find(const int32_t* a, Py_ssize_t n, int32_t value) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n):
        if a[k] == value:
            return k
    return -1


cdef inline int32_t _record_pool(bytes records, Py_ssize_t attempt):
    """The pool index of attempt ``attempt`` in a bytes object of attempt records."""
    cdef const int32_t* recs = <const int32_t*><const char*>records
    return recs[attempt * ATT_WIDTH + ATT_POOL]


def _require_range(name, arr, Py_ssize_t low, Py_ssize_t high):
    # Every index a kernel follows without a bounds check is proven here, once.
    if len(arr) and (arr.min() < low or arr.max() >= high):
        raise ValueError(f"{name}: index out of range [{low}, {high})")


def _require_csr(name, ptr, Py_ssize_t rows, Py_ssize_t size):
    if len(ptr) != rows + 1 or ptr[0] != 0 or ptr[rows] != size or (rows > 0 and (ptr[1:] < ptr[:rows]).any()):
        raise ValueError(f"{name}: not a CSR offset array for {rows} rows over {size} items")


@cython.final
cdef class CompiledSnapshot:
    """The immutable, typed view of one snapshot generation that the kernels scan.

    Built from numpy columns (see ``pyscheduler.snapshot``); every index the
    kernels follow is range-checked here once, which is what lets the kernels
    run without bounds checks. The arrays must not be written afterwards.
    """

    # nodes, by index (= node ids sorted); bitsets are ``words`` uint64 per node
    # pools, by index (= pool ids sorted)
    # the language index: eligible pools per (src, tgt) and per tgt for "auto",
    # each list in eligible order (fewest languages, then pool id)
    # configuration (Phase3Config)
    # names, for the dispatcher (see bind_names): what maps a job's strings to indices

    def __init__(self, LoadTable loads not None, dict columns not None, dict config not None):
        c = columns
        self.loads = loads
        self.slot = c["slot"]
        self.node_flags = c["node_flags"]
        self.provides = c["provides"]
        self.max_jobs = c["max_jobs"]
        self.id_ptr = c["id_ptr"]
        self.id_bytes = c["id_bytes"]
        self.asr_bits = c["asr_bits"]
        self.tts_bits = c["tts_bits"]
        self.nmt_bits = c["nmt_bits"]
        self.nmt_tgt_bits = c["nmt_tgt_bits"]
        self.pair_ptr = c["pair_ptr"]
        self.pair_codes = c["pair_codes"]
        self.pool_req = c["pool_req"]
        self.mem_ptr = c["mem_ptr"]
        self.mem_idx = c["mem_idx"]
        self.idx_ptr = c["idx_ptr"]
        self.idx_pools = c["idx_pools"]
        self.auto_ptr = c["auto_ptr"]
        self.auto_pools = c["auto_pools"]
        self.pool_lang_bits = c["pool_lang_bits"]
        self.n_nodes = len(c["slot"])
        self.n_pools = len(c["pool_req"])
        self.n_langs = int(config["n_langs"])
        self.words = int(config["words"])
        self.n_pool_langs = int(config.get("n_pool_langs", self.n_langs))
        self.two_level = bool(config["two_level"]) and self.n_pools > 0
        self.strict = bool(config["strict"])
        self.fallback_all = bool(config["fallback_all"])
        self.affinity = bool(config["affinity"])
        self.scope_all = bool(config["scope_all"])
        self.mode_exact = bool(config["mode_exact"])
        self.seed = <uint64_t>config["seed"]
        self.sample_size = int(config["sample_size"])
        self.threshold = float(config["threshold"])
        self.timeout = float(config["timeout"])
        self._validate(c)
        self.cover_pools()
        self.max_window = self.widest_window()

    def _validate(self, dict c):
        cdef Py_ssize_t n = self.n_nodes, p = self.n_pools, L = self.n_langs, W = self.words
        cdef Py_ssize_t P = self.n_pool_langs
        if W < 1 or L > W * 64 or L > 46340:
            raise ValueError(f"words={W} cannot hold n_langs={L} (at most 46340)")
        if P < 0 or P > L:
            raise ValueError(f"n_pool_langs={P} must be within [0, n_langs={L}]")
        for name in ("node_flags", "provides", "max_jobs"):
            if len(c[name]) != n:
                raise ValueError(f"{name}: expected {n} entries, got {len(c[name])}")
        for name in ("asr_bits", "tts_bits", "nmt_bits", "nmt_tgt_bits"):
            if len(c[name]) != n * W:
                raise ValueError(f"{name}: expected {n * W} words, got {len(c[name])}")
        if len(c["pool_lang_bits"]) != p * W:
            raise ValueError(f"pool_lang_bits: expected {p * W} words")
        _require_range("slot", c["slot"], 0, self.loads.capacity)
        _require_range("max_jobs", c["max_jobs"], 1, 2**31 - 1)
        _require_csr("id_ptr", c["id_ptr"], n, len(c["id_bytes"]))
        _require_csr("pair_ptr", c["pair_ptr"], n, len(c["pair_codes"]))
        _require_range("pair_codes", c["pair_codes"], 0, max(L * L, 1))
        _require_csr("mem_ptr", c["mem_ptr"], p, len(c["mem_idx"]))
        _require_range("mem_idx", c["mem_idx"], 0, max(n, 1))
        _require_csr("idx_ptr", c["idx_ptr"], P * P, len(c["idx_pools"]))
        _require_range("idx_pools", c["idx_pools"], 0, max(p, 1))
        _require_csr("auto_ptr", c["auto_ptr"], P, len(c["auto_pools"]))
        _require_range("auto_pools", c["auto_pools"], 0, max(p, 1))
        if self.sample_size < 0:
            raise ValueError("sample_size must be >= 0")

    cdef int cover_pools(self) except -1:
        """Each pool's coverage: the OR over its members of node_flags, provides
        and the ASR, TTS, NMT, pair-source and pair-target language bitsets.
        A pool whose coverage fails a job (see ``cannot_serve``) has no member
        that can pass the job's static checks, whatever the loads say."""
        cdef Py_ssize_t p, k, w, i, c, W = self.words, L = self.n_langs
        cdef int32_t code
        flags = np.zeros(self.n_pools, dtype=np.uint8)
        provides = np.zeros(self.n_pools, dtype=np.uint8)
        bits = np.zeros(max(self.n_pools * COV_SETS * W, 1), dtype=np.uint64)
        cdef uint8_t[::1] f = flags, pr = provides
        cdef uint64_t[::1] b = bits
        cdef uint64_t* cov
        with nogil:
            for p in range(self.n_pools):
                cov = &b[p * COV_SETS * W]
                for k in range(self.mem_ptr[p], self.mem_ptr[p + 1]):
                    i = self.mem_idx[k]
                    f[p] |= self.node_flags[i]
                    pr[p] |= self.provides[i]
                    for w in range(W):
                        cov[COV_ASR * W + w] |= self.asr_bits[i * W + w]
                        cov[COV_TTS * W + w] |= self.tts_bits[i * W + w]
                        cov[COV_NMT * W + w] |= self.nmt_bits[i * W + w]
                        cov[COV_PAIR_TGT * W + w] |= self.nmt_tgt_bits[i * W + w]
                    for c in range(self.pair_ptr[i], self.pair_ptr[i + 1]):
                        code = self.pair_codes[c] // <int32_t>L  # the pair's source
                        cov[COV_PAIR_SRC * W + (code >> 6)] |= (<uint64_t>1) << (code & 63)
        self.cov_flags = flags
        self.cov_provides = provides
        self.cov_bits = bits
        return 0

    def bind_names(self, dict lang_ids not None, object node_index, dict tenant_pools not None,
                   tuple node_ids not None, tuple pool_ids not None, serials, str auto_code not None,
                   int64_t version):
        """Give the dispatcher the names of this generation, once, before any
        ``Dispatcher.select`` reads it: language ids, node indices (a dict, or
        ``None``: a node id is then found by binary search over the id column,
        whose ids are sorted), each tenant override's pool index, node and pool
        ids by index, registration serials by node index, the code of a
        detected source language, and the generation's snapshot version.
        Every index is range-checked here (ValueError)."""
        cdef Py_ssize_t n = self.n_nodes
        if self.named:
            raise ValueError("bind_names: names are bound once per generation")
        if node_index is not None and type(node_index) is not dict:
            raise TypeError("bind_names: node_index must be a dict or None")
        if len(node_ids) != n or len(serials) != n or len(pool_ids) != self.n_pools or (
                node_index is not None and len(node_index) != n):
            raise ValueError("bind_names: node and pool names must match the columns")
        if len(lang_ids) != self.n_langs:
            raise ValueError("bind_names: lang_ids must match n_langs")
        for name, table, high in (("lang_ids", lang_ids, self.n_langs), ("node_index", node_index or {}, n),
                                  ("tenant_pools", tenant_pools, self.n_pools)):
            for value in table.values():
                if type(value) is not int or not 0 <= value < high:
                    raise ValueError(f"bind_names: {name} holds an index out of range [0, {high})")
        self.serial = serials
        self.pool_id_arr = np.array(pool_ids, dtype=np.int64)
        self.version = version
        self.lang_index = dict(lang_ids)
        self.node_index = None if node_index is None else dict(node_index)
        self.tenant_index = dict(tenant_pools)
        self.node_names = node_ids
        self.pool_keys = pool_ids
        self.auto_code = auto_code
        self.named = True

    # -- stage 1: eligible pools (the language index) ---------------------------------

    cdef Py_ssize_t node_of(self, object node_id) except -2:
        """The index of ``node_id``, or -1: its entry in ``node_index``, or a binary
        search over the id column (sorted: UTF-8 byte order is code point order)."""
        cdef Py_ssize_t n, lo = 0, hi = self.n_nodes, mid, a, m
        cdef const unsigned char* kb
        cdef int c
        if self.node_index is not None:
            v = self.node_index.get(node_id)
            return -1 if v is None else <Py_ssize_t>v
        if type(node_id) is not str:
            return -1
        kb = _utf8(<str>node_id, &n)
        while lo < hi:
            mid = (lo + hi) >> 1
            a = self.id_ptr[mid]
            m = self.id_ptr[mid + 1] - a
            c = memcmp(&self.id_bytes[a], kb, m if m < n else n) if m > 0 and n > 0 else 0
            if c == 0:
                c = (m > n) - (m < n)
            if c == 0:
                return mid
            if c < 0:
                lo = mid + 1
            else:
                hi = mid
        return -1

    cdef bint services_match(self, Py_ssize_t p, int32_t types) noexcept nogil:
        """A pool's required services: empty = wildcard; else contain / equal the
        job's core types (core_only) or all its types (all_required)."""
        cdef int32_t req = self.pool_req[p]
        cdef int32_t wanted = types if self.scope_all else (types & CORE_MASK)
        if req == 0:
            return True
        if self.mode_exact:
            return req == wanted
        return (req & wanted) == wanted

    cdef Py_ssize_t eligible(self, const JobIn* job, int32_t* out) noexcept nogil:
        """Write the eligible pools of the job into ``out``, in eligible order
        (fewest languages, then id: the index lists are stored that way)."""
        cdef Py_ssize_t lo = 0, hi = 0, k, n = 0
        cdef const int32_t* pools = NULL
        cdef int32_t p
        if job.tgt < 0 or job.tgt >= self.n_pool_langs:
            return 0  # a language no pool has: no pool is eligible
        if job.src == LANG_AUTO:
            lo = self.auto_ptr[job.tgt]
            hi = self.auto_ptr[job.tgt + 1]
            if hi > lo:
                pools = &self.auto_pools[lo]
        elif job.src < 0 or job.src >= self.n_pool_langs:
            return 0
        else:
            lo = self.idx_ptr[job.src * self.n_pool_langs + job.tgt]
            hi = self.idx_ptr[job.src * self.n_pool_langs + job.tgt + 1]
            if hi > lo:
                pools = &self.idx_pools[lo]
        for k in range(hi - lo):
            p = pools[k]
            if self.services_match(p, job.types):
                out[n] = p
                n += 1
        return n

    cdef int cannot_serve(self, Py_ssize_t p, const JobIn* job) noexcept nogil:
        """The first static check (DESIGN §5 order) that pool ``p``'s coverage
        proves every member fails for ``job``, or R_OK when some member might
        pass. An empty pool is never proven (its scan is free and exact)."""
        cdef Py_ssize_t W = self.words
        cdef const uint64_t* cov = &self.cov_bits[p * COV_SETS * W]
        cdef int32_t types = job.types, src = job.src, tgt = job.tgt
        cdef Py_ssize_t w
        cdef bint any_asr = False
        if self.mem_ptr[p + 1] == self.mem_ptr[p]:
            return R_OK
        if not (self.cov_flags[p] & NF_HAS_GPU):
            return R_GPU_UNAVAILABLE
        if job.public and not (self.cov_flags[p] & NF_PUBLIC):
            return R_NOT_IN_PUBLIC_POOL
        if (self.cov_provides[p] & types) != types:
            return R_MODEL_NOT_AVAILABLE
        if types & ASR_BIT:
            if src == LANG_AUTO:
                for w in range(W):
                    any_asr = any_asr or cov[COV_ASR * W + w] != 0
                if not any_asr:
                    return R_ASR_LANG_UNSUPPORTED
            elif src < 0 or not has_bit(&cov[COV_ASR * W], src):
                return R_ASR_LANG_UNSUPPORTED
        if types & NMT_BIT:
            if tgt < 0:
                return R_LANG_PAIR_UNSUPPORTED
            if src == LANG_AUTO:
                if not (has_bit(&cov[COV_PAIR_TGT * W], tgt) or has_bit(&cov[COV_NMT * W], tgt)):
                    return R_LANG_PAIR_UNSUPPORTED
            elif src < 0 or src == tgt:
                return R_LANG_PAIR_UNSUPPORTED
            elif not ((has_bit(&cov[COV_PAIR_SRC * W], src) and has_bit(&cov[COV_PAIR_TGT * W], tgt))
                      or (has_bit(&cov[COV_NMT * W], src) and has_bit(&cov[COV_NMT * W], tgt))):
                return R_LANG_PAIR_UNSUPPORTED
        if types & TTS_BIT and (tgt < 0 or not has_bit(&cov[COV_TTS * W], tgt)):
            return R_TTS_LANG_UNSUPPORTED
        return R_OK

    # -- stage 4: node checks ---------------------------------------------------------

    cdef bint serves_nmt(self, Py_ssize_t i, int32_t src, int32_t tgt) noexcept nogil:
        """LanguageCapabilities.supports_nmt over the node's bitsets and sorted pair codes."""
        cdef const uint64_t* langs = &self.nmt_bits[i * self.words]
        cdef Py_ssize_t w, lo, hi, mid
        cdef int count = 0
        cdef int32_t code
        if tgt < 0:
            return False
        if src == LANG_AUTO:
            if has_bit(&self.nmt_tgt_bits[i * self.words], tgt):
                return True
            if not has_bit(langs, tgt):
                return False
            for w in range(self.words):
                count += pys_popcount64(langs[w])
            return count >= 2
        if src < 0 or src == tgt:
            return False
        if has_bit(langs, src) and has_bit(langs, tgt):
            return True  # both in nmt_languages: no need to search the pairs
        code = src * <int32_t>self.n_langs + tgt
        lo = self.pair_ptr[i]
        hi = self.pair_ptr[i + 1]
        while lo < hi:  # binary search; invariant: the code is not in [old lo, lo) nor [hi, old hi)
            mid = (lo + hi) >> 1
            if self.pair_codes[mid] < code:
                lo = mid + 1
            elif self.pair_codes[mid] > code:
                hi = mid
            else:
                return True
        return False

    cdef int check_node(self, Py_ssize_t i, NodeLoad* rec, const JobIn* job, float64_t now,
                        int32_t* load) noexcept nogil:
        """The first check node ``i`` (its load record ``rec``) fails, in DESIGN §5 order, or R_OK;
        past the language checks, ``load`` receives running + reserved as read."""
        cdef uint8_t flags = self.node_flags[i]
        cdef int32_t types = job.types
        cdef Py_ssize_t w
        cdef bint any_asr
        cdef float64_t limit
        cdef int32_t status
        if job.n_excluded and contains(job.excluded, job.n_excluded, <int32_t>i):
            return R_EXCLUDED
        status = pys_load(&rec.status)
        if status == ST_OFFLINE:
            return R_OFFLINE
        if status != ST_READY:
            return R_STATUS_NOT_READY
        if now - rec.last_heartbeat > self.timeout:
            return R_HEARTBEAT_STALE
        if not (flags & NF_HAS_GPU):
            return R_GPU_UNAVAILABLE
        if job.public and not (flags & NF_PUBLIC):
            return R_NOT_IN_PUBLIC_POOL
        if (self.provides[i] & types) != types:
            return R_MODEL_NOT_AVAILABLE
        if types & ASR_BIT:
            if job.src == LANG_AUTO:
                any_asr = False
                for w in range(self.words):
                    any_asr = any_asr or self.asr_bits[i * self.words + w] != 0
                if not any_asr:
                    return R_ASR_LANG_UNSUPPORTED
            elif job.src < 0 or not has_bit(&self.asr_bits[i * self.words], job.src):
                return R_ASR_LANG_UNSUPPORTED
        if types & NMT_BIT and not self.serves_nmt(i, job.src, job.tgt):
            return R_LANG_PAIR_UNSUPPORTED
        if types & TTS_BIT and (job.tgt < 0 or not has_bit(&self.tts_bits[i * self.words], job.tgt)):
            return R_TTS_LANG_UNSUPPORTED
        load[0] = node_load(rec)
        if load[0] >= self.max_jobs[i]:
            return R_CAPACITY_EXCEEDED
        limit = self.threshold
        if (rec.cpu_usage >= limit or rec.memory_usage >= limit
                or (not isnan(rec.gpu_usage) and rec.gpu_usage >= limit)):
            return R_RESOURCE_THRESHOLD_EXCEEDED
        return R_OK

    # -- stages 3-4: one pool's window and checks --------------------------------------

    cdef int scan(self, Py_ssize_t pool, const JobIn* job, float64_t now, IntBuf* att,
                  Survivors* surv, Py_ssize_t* n_survivors) noexcept nogil:
        """Check the window of ``pool`` (-1: every node); append its attempt record
        to ``att`` and its survivors to ``survivors``. -1 when out of memory.

        The window is checked SCAN_CHUNK candidates at a time: first every
        candidate's load record (the one random access per candidate) is looked
        up and prefetched, then the chunk is checked, so the misses overlap."""
        cdef Py_ssize_t n, size, start = 0, k, j, lo = 0, base, m
        cdef int32_t* rec
        cdef int32_t nodes[SCAN_CHUNK]
        cdef NodeLoad* loads[SCAN_CHUNK]
        cdef int reason
        cdef int32_t load = 0
        if pool >= 0:
            lo = self.mem_ptr[pool]
            n = self.mem_ptr[pool + 1] - lo
        else:
            n = self.n_nodes
        size = n
        if self.sample_size > 0 and n > self.sample_size:
            size = self.sample_size
            start = <Py_ssize_t>(job.h_key % <uint64_t>n)
        rec = buf_push(att, ATT_WIDTH)
        if rec == NULL:
            return -1
        rec[ATT_POOL] = <int32_t>pool
        rec[ATT_TOTAL] = <int32_t>size
        n_survivors[0] = 0
        base = 0
        while base < size:
            m = min(<Py_ssize_t>SCAN_CHUNK, size - base)
            j = start + base
            if j >= n:
                j -= n
            for k in range(m):
                nodes[k] = self.mem_idx[lo + j] if pool >= 0 else <int32_t>j
                loads[k] = self.loads.at(self.slot[nodes[k]])
                pys_prefetch(loads[k])
                j += 1
                if j == n:
                    j = 0
            for k in range(m):
                reason = self.check_node(nodes[k], loads[k], job, now, &load)
                if reason == R_OK:
                    surv.node[n_survivors[0]] = nodes[k]
                    surv.load[n_survivors[0]] = load
                    surv.cap[n_survivors[0]] = self.max_jobs[nodes[k]]
                    n_survivors[0] += 1
                else:
                    rec[ATT_COUNTS + reason] += 1
            base += m
        return 0

    # -- stage 5: pick ----------------------------------------------------------------

    cdef Py_ssize_t pick(self, const Survivors* surv, Py_ssize_t n, const JobIn* job) noexcept nogil:
        """Index in ``surv`` of the node to take: the preferred node if it
        survived; else the lowest (running+reserved)/max by cross-multiplication,
        then the fewest jobs, then the lowest FNV-1a-64(key + node_id), then the
        lowest index (= node id order). Loads are as the scan read them.

        Two passes: the best (load, max) first, then the tiebreak hash of the
        nodes that tie with it only, four hashes at a time (idle nodes all tie,
        and one hash is a chain of dependent multiplications: interleaving four
        chains hides their latency)."""
        cdef Py_ssize_t k, best = 0, n_tied = 0, t
        cdef int64_t ls, lb, ms, mb
        cdef int32_t tied[4]
        cdef uint64_t hashes[4]
        cdef uint64_t h_best = 0
        cdef bint have_best = False
        if n <= 0:
            return -1
        for k in range(n):
            if surv.node[k] == job.preferred:
                return k
        lb = surv.load[0]
        mb = surv.cap[0]
        for k in range(1, n):
            ls = surv.load[k]
            ms = surv.cap[k]
            if ls * mb < lb * ms or (ls * mb == lb * ms and ls < lb):
                best, lb, mb = k, ls, ms
        for k in range(n):  # the nodes tied with the best
            ls = surv.load[k]
            if ls != lb or ls * mb != lb * surv.cap[k]:
                continue
            tied[n_tied] = <int32_t>k
            n_tied += 1
            if n_tied == 4:
                self.tiebreak4(surv.node, tied, n_tied, job.h_key, hashes)
                for t in range(n_tied):
                    if not have_best or self.before(hashes[t], surv.node[tied[t]], h_best, surv.node[best]):
                        best, h_best, have_best = tied[t], hashes[t], True
                n_tied = 0
        if n_tied:
            self.tiebreak4(surv.node, tied, n_tied, job.h_key, hashes)
            for t in range(n_tied):
                if not have_best or self.before(hashes[t], surv.node[tied[t]], h_best, surv.node[best]):
                    best, h_best, have_best = tied[t], hashes[t], True
        return best

    cdef inline bint before(self, uint64_t h, int32_t node, uint64_t h_other, int32_t other) noexcept nogil:
        """Tiebreak order: the lower hash, then the lower node index."""
        return h < h_other or (h == h_other and node < other)

    cdef void tiebreak4(self, const int32_t* survivors, const int32_t* tied, Py_ssize_t m,
                        uint64_t h_key, uint64_t* out) noexcept nogil:
        """``out[t]`` = FNV-1a-64(key + node id) of ``survivors[tied[t]]`` for t < m <= 4,
        the four hash chains advanced together over their common length."""
        cdef const unsigned char* ids[4]
        cdef Py_ssize_t lens[4]
        cdef Py_ssize_t t, i, common
        cdef int32_t node
        cdef uint64_t h0, h1, h2, h3
        for t in range(m):
            node = survivors[tied[t]]
            ids[t] = &self.id_bytes[self.id_ptr[node]] if self.id_ptr[node + 1] > self.id_ptr[node] else NULL
            lens[t] = self.id_ptr[node + 1] - self.id_ptr[node]
        if m == 4:
            common = min(min(lens[0], lens[1]), min(lens[2], lens[3]))
            h0 = h1 = h2 = h3 = h_key
            for i in range(common):
                h0 = (h0 ^ ids[0][i]) * _FNV64_PRIME
                h1 = (h1 ^ ids[1][i]) * _FNV64_PRIME
                h2 = (h2 ^ ids[2][i]) * _FNV64_PRIME
                h3 = (h3 ^ ids[3][i]) * _FNV64_PRIME
            out[0] = fnv1a64_update(h0, ids[0] + common, lens[0] - common) if lens[0] > common else h0
            out[1] = fnv1a64_update(h1, ids[1] + common, lens[1] - common) if lens[1] > common else h1
            out[2] = fnv1a64_update(h2, ids[2] + common, lens[2] - common) if lens[2] > common else h2
            out[3] = fnv1a64_update(h3, ids[3] + common, lens[3] - common) if lens[3] > common else h3
            return
        for t in range(m):
            out[t] = fnv1a64_update(h_key, ids[t], lens[t]) if lens[t] else h_key

    # -- the whole selection ------------------------------------------------------------

    cdef Py_ssize_t skip(self, IntBuf* att, int32_t pool, int reason, Py_ssize_t run) noexcept nogil:
        """Record ``pool`` as skipped for ``reason``. ``run`` is the offset in
        ``att`` of the skip record just written (-1: none): a pool that follows
        its last pool by index, for the same reason, extends it (the fallback
        ring skips whole runs of pools). Returns the offset of the record now
        open, or -2 when out of memory.

        A skip record: pool index of the run's first pool, ATT_TOTAL =
        ATT_SKIPPED - reason, and the run's length in the first count."""
        cdef int32_t* rec
        if run >= 0:
            rec = &att.data[run]
            if (rec[ATT_TOTAL] == ATT_SKIPPED - reason
                    and (rec[ATT_POOL] + rec[ATT_COUNTS]) % <int32_t>self.n_pools == pool):
                rec[ATT_COUNTS] += 1
                return run
        rec = buf_push(att, ATT_WIDTH)
        if rec == NULL:
            return -2
        rec[ATT_POOL] = pool
        rec[ATT_TOTAL] = ATT_SKIPPED - reason
        rec[ATT_COUNTS] = 1
        return att.size - ATT_WIDTH

    cdef Py_ssize_t widest_window(self) noexcept:
        """The most candidates one scan can examine: every node (single level),
        else the largest pool, at most ``sample_size`` when sampling."""
        cdef Py_ssize_t p, widest = 0
        if not self.two_level:
            widest = self.n_nodes
        for p in range(self.n_pools):  # any pool can be scanned (select_node_from_pool, fallback)
            widest = max(widest, <Py_ssize_t>(self.mem_ptr[p + 1] - self.mem_ptr[p]))
        if self.sample_size > 0:
            widest = min(widest, <Py_ssize_t>self.sample_size)
        return widest

    cdef inline Py_ssize_t scratch_ints(self) noexcept nogil:
        """Ints of ``scratch`` select_job needs: the pool order, then the
        survivors of one scan with their load and capacity (three arrays of
        ``max_window``): a few KiB with sampling, however large the fleet."""
        return self.n_pools + 3 * self.max_window + 1

    cdef int select_job(self, const JobIn* job, float64_t now, IntBuf* att, int32_t* scratch,
                        JobOut* out, bint reserve_node) noexcept nogil:
        """Stages 1-6 for one job (stage 6 only when ``reserve_node``). ``scratch``
        holds n_pools + n_nodes ints. Returns -1 when out of memory, else 0 with
        ``out`` filled."""
        cdef int32_t* order = scratch
        cdef Survivors surv
        cdef int reason
        cdef Py_ssize_t n_order, n_surv = 0, start = 0, a, k, p
        cdef Py_ssize_t first = att.size, run = -1
        cdef unsigned char seed_le[8]
        cdef uint64_t h
        surv.node = scratch + self.n_pools
        surv.load = surv.node + self.max_window
        surv.cap = surv.load + self.max_window
        out.node = -1
        out.picked = -1
        out.n_attempts = 0
        out.preferred_pool = -1
        out.fallback = 0
        out.empty_reason = -1
        if job.only_pool >= 0:
            order[0] = job.only_pool
            n_order = 1
            out.preferred_pool = job.only_pool
        elif not self.two_level:
            order[0] = -1
            n_order = 1
        else:
            n_order = self.eligible(job, order)
            if n_order == 0:
                if self.strict:
                    out.empty_reason = R_NO_ELIGIBLE_POOL
                    return 0
                for p in range(self.n_pools):
                    order[p] = <int32_t>p
                n_order = self.n_pools
                out.fallback = 1
            # stage 2: the preferred pool first, then ring order from it
            start = -1
            if job.tenant_pool >= 0:
                start = find(order, n_order, job.tenant_pool)
            if start < 0 and job.bound_pool >= 0:
                start = find(order, n_order, job.bound_pool)
            if start < 0 and self.affinity:
                for k in range(8):
                    seed_le[k] = <unsigned char>((self.seed >> (8 * k)) & 0xFF)
                h = fnv1a64_update(job.h_key, seed_le, 8)
                start = <Py_ssize_t>(h % <uint64_t>n_order)
            if start < 0:
                start = 0
            rotate(order, n_order, start)
            if not self.fallback_all:
                n_order = 1
            out.preferred_pool = order[0]
        for a in range(n_order):
            out.n_attempts += 1
            if a > 0 and order[a] >= 0:
                # past the first pool (whose scan is the breakdown of a failure), a
                # pool whose coverage cannot serve the job is listed, not scanned
                reason = self.cannot_serve(order[a], job)
                if reason != R_OK:
                    run = self.skip(att, order[a], reason, run)
                    if run == -2:
                        return -1
                    continue
            run = -1
            if self.scan(order[a], job, now, att, &surv, &n_surv) < 0:
                return -1
            while n_surv > 0:  # stage 6: reserve; a lost race tries the next survivor
                k = self.pick(&surv, n_surv, job)
                if not reserve_node or reserve(self.loads.at(self.slot[surv.node[k]]), surv.cap[k]):
                    out.node = surv.node[k]
                    out.picked = <int32_t>((att.size - first) // ATT_WIDTH - 1)  # its record, the last
                    return 0
                n_surv -= 1
                surv.node[k] = surv.node[n_surv]
                surv.load[k] = surv.load[n_surv]
                surv.cap[k] = surv.cap[n_surv]
        return 0

    # -- Python entry points ------------------------------------------------------------

    def select(self, int32_t src, int32_t tgt, int32_t types, bint public, int32_t preferred,
               int32_t tenant_pool, int32_t bound_pool, int32_t only_pool, str key not None,
               excluded, float64_t now, bint reserve_node=True):
        """Select (and reserve) a node for one job.

        Returns ``(node, pool, preferred_pool, fallback_used, empty_reason, attempts)``:
        node index or -1; the pool index it came from (-1: none, or the
        single-level set); the pool index tried first or -1; whether a pool
        beyond the preferred one was tried or every pool was used because none
        was eligible; -1 or R_NO_ELIGIBLE_POOL; and the attempt records as
        bytes (ATTEMPT_WIDTH native int32 per attempt: pool index, total, 12
        reason counts).
        ``excluded`` is None or an int32 array of node indices. With
        ``reserve_node=False`` nothing is reserved (a dry run).
        """
        cdef JobIn job
        cdef JobOut out
        cdef Py_ssize_t n = 0
        cdef const unsigned char* kb = _utf8(key, &n)
        cdef const int32_t[::1] excl
        if only_pool >= self.n_pools or tenant_pool >= self.n_pools or bound_pool >= self.n_pools:
            raise IndexError("pool index out of range")
        job.src = src if src < self.n_langs else LANG_UNKNOWN
        job.tgt = tgt if tgt < self.n_langs else LANG_UNKNOWN
        job.types = types
        job.public = public
        job.preferred = preferred
        job.tenant_pool = tenant_pool
        job.bound_pool = bound_pool
        job.only_pool = only_pool
        job.h_key = fnv1a64_bytes(kb, n)
        job.excluded = NULL
        job.n_excluded = 0
        if excluded is not None:
            excl = excluded
            job.n_excluded = excl.shape[0]
            if job.n_excluded:
                job.excluded = &excl[0]
        records = self.run(&job, now, &out, reserve_node)
        picked_pool = -1
        if out.picked >= 0:
            picked_pool = _record_pool(records, out.picked)
        return (out.node, picked_pool, out.preferred_pool,
                out.fallback != 0 or out.n_attempts > 1, out.empty_reason, records)

    cdef bytes run(self, const JobIn* job, float64_t now, JobOut* out, bint reserve_node):
        """Stages 1-6 for one job with the GIL released; returns its attempt
        records as bytes (``out`` is filled)."""
        cdef IntBuf att
        cdef int32_t* scratch
        cdef int32_t scratch_stack[SCRATCH_STACK]
        cdef int32_t att_stack[ATT_STACK]
        cdef int rc
        att.data = att_stack
        att.size = 0
        att.capacity = -ATT_STACK  # negative: data is on the stack (see buf_push)
        scratch = scratch_stack
        if self.scratch_ints() > SCRATCH_STACK:
            scratch = <int32_t*>malloc(self.scratch_ints() * sizeof(int32_t))
            if scratch == NULL:
                raise MemoryError()
        with nogil:
            rc = self.select_job(job, now, &att, scratch, out, reserve_node)
        if scratch != scratch_stack:
            free(scratch)
        try:
            if rc < 0:
                raise MemoryError()
            return PyBytes_FromStringAndSize(<char*>att.data, att.size * sizeof(int32_t))
        finally:
            if att.data != att_stack:
                free(att.data)

    def select_batch(self, const int32_t[::1] src, const int32_t[::1] tgt, const int32_t[::1] types,
                     const uint8_t[::1] public, const int32_t[::1] preferred,
                     const int32_t[::1] tenant_pool, const int32_t[::1] bound_pool,
                     const uint64_t[::1] h_key,
                     const int64_t[::1] excl_ptr, const int32_t[::1] excl_idx, float64_t now,
                     int32_t[:, ::1] out):
        """Select (and reserve) for many jobs in one ``nogil`` section, in order.

        Per job j the inputs are row j of each column (excluded node indices are
        ``excl_idx[excl_ptr[j]:excl_ptr[j+1]]``). ``out`` (n_jobs x 6) receives
        node, picked, preferred_pool, fallback, empty_reason and the job's first
        attempt record number. Returns the attempt records as bytes.
        """
        cdef Py_ssize_t n_jobs = src.shape[0], j
        cdef JobIn job
        cdef JobOut res
        cdef IntBuf att
        cdef int32_t* scratch
        cdef int rc = 0
        if (tgt.shape[0] != n_jobs or types.shape[0] != n_jobs or public.shape[0] != n_jobs
                or preferred.shape[0] != n_jobs or tenant_pool.shape[0] != n_jobs
                or bound_pool.shape[0] != n_jobs or h_key.shape[0] != n_jobs or out.shape[0] != n_jobs or out.shape[1] != 6):
            raise ValueError("select_batch: every column needs one entry per job")
        if excl_ptr.shape[0] != n_jobs + 1 or (n_jobs and excl_ptr[n_jobs] != excl_idx.shape[0]):
            raise ValueError("select_batch: excl_ptr must be a CSR offset array")
        for j in range(n_jobs):
            if excl_ptr[j] > excl_ptr[j + 1] or excl_ptr[j] < 0:
                raise ValueError("select_batch: excl_ptr must be non-decreasing")
            if tenant_pool[j] >= self.n_pools or bound_pool[j] >= self.n_pools:
                raise IndexError("select_batch: pool index out of range")
        att.data = NULL
        att.size = 0
        att.capacity = 0
        scratch = <int32_t*>malloc(self.scratch_ints() * sizeof(int32_t))
        if scratch == NULL:
            raise MemoryError()
        with nogil:
            for j in range(n_jobs):
                job.src = src[j] if src[j] < self.n_langs else LANG_UNKNOWN
                job.tgt = tgt[j] if tgt[j] < self.n_langs else LANG_UNKNOWN
                job.types = types[j]
                job.public = public[j]
                job.preferred = preferred[j]
                job.tenant_pool = tenant_pool[j]
                job.bound_pool = bound_pool[j]
                job.only_pool = -1
                job.h_key = h_key[j]
                job.n_excluded = excl_ptr[j + 1] - excl_ptr[j]
                job.excluded = &excl_idx[excl_ptr[j]] if job.n_excluded else NULL
                out[j, 5] = <int32_t>(att.size // ATT_WIDTH)
                rc = self.select_job(&job, now, &att, scratch, &res, True)
                if rc < 0:
                    break
                out[j, 0] = res.node
                out[j, 1] = res.picked
                out[j, 2] = res.preferred_pool
                out[j, 3] = res.fallback
                out[j, 4] = res.empty_reason
        free(scratch)
        try:
            if rc < 0:
                raise MemoryError()
            records = PyBytes_FromStringAndSize(<char*>att.data, att.size * sizeof(int32_t))
        finally:
            free(att.data)
        return records

    def eligible_pools(self, int32_t src, int32_t tgt, int32_t types):
        """Pool indices eligible for (src, tgt) with these service types, in eligible order."""
        cdef JobIn job
        cdef int32_t* out
        cdef Py_ssize_t n, k
        job.src = src if src < self.n_langs else LANG_UNKNOWN
        job.tgt = tgt if tgt < self.n_langs else LANG_UNKNOWN
        job.types = types
        out = <int32_t*>malloc((self.n_pools + 1) * sizeof(int32_t))
        if out == NULL:
            raise MemoryError()
        with nogil:
            n = self.eligible(&job, out)
        try:
            return [out[k] for k in range(n)]
        finally:
            free(out)

    def covered_pools(self, const uint64_t[::1] langs):
        """Pool indices whose language set is a subset of ``langs`` (a bitset of
        ``words`` words), in index order."""
        cdef Py_ssize_t p, w, W = self.words
        cdef list found = []
        cdef bint inside
        if langs.shape[0] != W:
            raise ValueError(f"covered_pools: expected {W} words")
        for p in range(self.n_pools):
            inside = True
            for w in range(W):
                if self.pool_lang_bits[p * W + w] & ~langs[w]:
                    inside = False
                    break
            if inside:
                found.append(p)
        return found

    def key_hash(self, str key not None):
        """FNV-1a-64 of the key's UTF-8 bytes (the state the kernels start from)."""
        cdef Py_ssize_t n = 0
        cdef const unsigned char* kb = _utf8(key, &n)
        return fnv1a64_bytes(kb, n)


include "_sessions.pxi"
include "_dispatch.pxi"
include "_beats.pxi"
