# The kernels' codes and records: reason, status, node-flag and language codes,
# the attempt-record layout, and the structs the kernels pass around.
# Declarations only (no code is generated); ``csrc/_hotpath.pyx`` cimports them
# by name and exports the codes Python needs as ``KERNEL_CODES``. Compiler
# directives are set in setup.py.

from _types cimport float64_t, int32_t, int64_t, uint8_t, uint64_t


# --- reason codes ------------------------------------------------------------
# The order is DESIGN §5's check order and must equal pyscheduler.model.Reason's
# first twelve members (a test holds them together). NO_ELIGIBLE_POOL and
# NO_NODES are whole-job outcomes, never a node's reason.
cdef enum:
    R_OK = -1
    R_EXCLUDED = 0
    R_OFFLINE = 1
    R_STATUS_NOT_READY = 2
    R_HEARTBEAT_STALE = 3
    R_GPU_UNAVAILABLE = 4
    R_NOT_IN_PUBLIC_POOL = 5
    R_MODEL_NOT_AVAILABLE = 6
    R_ASR_LANG_UNSUPPORTED = 7
    R_LANG_PAIR_UNSUPPORTED = 8
    R_TTS_LANG_UNSUPPORTED = 9
    R_CAPACITY_EXCEEDED = 10
    R_RESOURCE_THRESHOLD_EXCEEDED = 11
    R_NO_ELIGIBLE_POOL = 12
    R_NO_NODES = 13
    N_CHECK_REASONS = 12

# Node status codes in the snapshot's ``status`` column.
cdef enum:
    ST_READY = 0
    ST_NOT_READY = 1     # REGISTERING, DEGRADED or DRAINING
    ST_OFFLINE = 2

# Bits of the snapshot's ``node_flags`` column.
cdef enum:
    NF_HAS_GPU = 1
    NF_PUBLIC = 2

# Language ids in a job: >= 0 interned, or one of these.
cdef enum:
    LANG_UNKNOWN = -1    # not served by any node or pool of this snapshot
    LANG_AUTO = -2       # source "auto" (detected later)

# One attempt record in an attempt buffer: pool index, total, 12 counts.
cdef enum:
    ATT_POOL = 0
    ATT_TOTAL = 1
    ATT_COUNTS = 2
    ATT_WIDTH = 14
    # ATT_TOTAL of a run of pools skipped because their coverage proves no
    # member can pass reason r's check: ATT_SKIPPED - r (always negative); the
    # record's pool is the run's first, its first count the run's length (the
    # pools follow by index, wrapping), the other counts are 0
    ATT_SKIPPED = -1

# The coverage bitsets of a pool, in this order (``words`` words each).
cdef enum:
    COV_ASR = 0
    COV_TTS = 1
    COV_NMT = 2              # nmt_languages
    COV_PAIR_SRC = 3         # sources of nmt_pairs
    COV_PAIR_TGT = 4         # targets of nmt_pairs
    COV_SETS = 5


cdef struct NodeLoad:
    # What changes without a topology change, one record per node slot: the
    # figures a heartbeat or a reservation changes, and the lifecycle status.
    # 64 bytes, one cache line (chunks are 64-byte aligned): a candidate's
    # checks read its whole record, so a record never straddles two lines.
    # running/reserved/status use atomics.
    int32_t running          # jobs the node runs (its last beat, plus commits since)
    int32_t reserved         # reservations not yet committed, released or expired
    int32_t status           # ST_READY / ST_NOT_READY / ST_OFFLINE
    int32_t _pad             # keeps the doubles 8-byte aligned
    float64_t cpu_usage      # percent, finite, [0, 100]
    float64_t memory_usage   # percent
    float64_t gpu_usage      # percent, or NaN when the node reports none
    float64_t last_heartbeat # clock seconds
    uint8_t _line[16]        # up to the 64-byte line


cdef struct JobIn:
    # One job, in the snapshot's integer terms.
    int32_t src              # language id, LANG_UNKNOWN or LANG_AUTO
    int32_t tgt              # language id or LANG_UNKNOWN
    int32_t types            # ServiceType mask the job needs
    int32_t public           # 1 for a public job
    int32_t preferred        # node index of preferred_node_id, or -1
    int32_t tenant_pool      # pool index of the tenant override, or -1
    int32_t bound_pool       # pool index the session is bound to, or -1
    int32_t only_pool        # pool index for select_node_from_pool, or -1
    uint64_t h_key           # FNV-1a-64 of the routing key's UTF-8 bytes
    const int32_t* excluded  # node indices to exclude
    Py_ssize_t n_excluded


cdef struct JobOut:
    int32_t node             # node index picked, or -1
    int32_t picked           # attempt number the node came from, or -1
    int32_t n_attempts       # pools tried for this job (scanned or skipped)
    int32_t preferred_pool   # pool index tried first; -1 single-level / none
    int32_t fallback         # 1 if every pool was used because none was eligible
    int32_t empty_reason     # R_NO_ELIGIBLE_POOL when nothing could be tried, else -1


cdef struct Survivors:
    # The nodes of one window that passed every check, with what the scan read
    # (three arrays of up to n_nodes, in the caller's scratch).
    int32_t* node            # node index
    int32_t* load            # running + reserved
    int32_t* cap             # max_concurrent_jobs


cdef struct IntBuf:
    # A growable int32 buffer (malloc/realloc; usable without the GIL).
    int32_t* data
    Py_ssize_t size
    Py_ssize_t capacity
